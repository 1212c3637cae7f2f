package overlay_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
	"github.com/hardway/hardway/internal/trace"
)

// mergedView lists every path of a merged root with its content (files) or target (links).
func mergedView(t *testing.T, rootfs string) map[string]string {
	t.Helper()
	view := map[string]string{}
	err := filepath.WalkDir(rootfs, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(rootfs, p)
		switch {
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			view[rel] = "file " + string(b)
			return err
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			view[rel] = "link " + l
			return err
		default:
			view[rel] = d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return view
}

// On Debian 12's Linux 6.1 overlayfs has no fs_context of its own: the kernel's legacy
// adapter takes lowerdir+ at fsconfig and refuses it at FSCONFIG_CMD_CREATE ("unrecognized
// mount option"), or overflows its one-page buffer ("Cumulative options too large"), both
// EINVAL. Either way the mount falls back to mount(2) and shows the same merged root, and
// the process then skips the new API.
func TestNewMountAPIRefusedFallsBack(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, stackImage(t, 3).Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	want := mergedView(t, filepath.Join(create(t, im, overlay.Options{ID: testutil.ID("newapi")}), "rootfs"))
	for _, c := range []struct {
		name, key string
		n         int
	}{{"refused at create", "create", 1}, {"refused at the second lowerdir+", "lowerdir+", 2}, {"refused at workdir", "workdir", 1}} {
		t.Run(c.name, func(t *testing.T) {
			fired := overlay.FailNewMountAPI(t, c.key, c.n, unix.EINVAL)
			var buf strings.Builder
			was := trace.Enabled()
			trace.SetEnabled(true)
			trace.SetOutput(&buf)
			t.Cleanup(func() { trace.SetOutput(os.Stderr); trace.SetEnabled(was) })
			rootfs := filepath.Join(create(t, im, overlay.Options{ID: testutil.ID("nolowerdirplus")}), "rootfs")
			if *fired != 1 {
				t.Fatalf("the simulated refusal fired %d times, want 1", *fired)
			}
			got := mergedView(t, rootfs)
			if len(got) != len(want) {
				t.Errorf("merged root has %d entries via mount(2), %d via the new API", len(got), len(want))
			}
			for p, v := range want {
				if got[p] != v {
					t.Errorf("/%s = %q via mount(2), want %q", p, got[p], v)
				}
			}
			if out := buf.String(); !strings.Contains(out, "mount(2) with one option string") || !strings.Contains(out, "EINVAL") && !strings.Contains(out, "invalid argument") {
				t.Errorf("trace does not say mount(2) was used and why:\n%s", out)
			}
			// Learnt once per process: the next mount goes straight to mount(2).
			create(t, im, overlay.Options{ID: testutil.ID("again")})
			if *fired != 1 {
				t.Errorf("the new API was tried again after the kernel refused lowerdir+")
			}
		})
	}
}

// Errors other than EINVAL are real failures of this mount, not a missing lowerdir+: they
// are reported, nothing is mounted and no container dir is left.
func TestNewMountAPIOtherErrorsStayErrors(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, stackImage(t, 2).Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	for _, errno := range []unix.Errno{unix.EBUSY, unix.EPERM, unix.ENOENT} {
		t.Run(errno.Error(), func(t *testing.T) {
			fired := overlay.FailNewMountAPI(t, "create", 1, errno)
			id := testutil.ID("busy")
			_, err := overlay.Create(im, overlay.Options{ID: id})
			if err == nil || !strings.Contains(err.Error(), errno.Error()) {
				t.Fatalf("got %v, want the %v of FSCONFIG_CMD_CREATE", err, errno)
			}
			if *fired != 1 {
				t.Errorf("the simulated error fired %d times", *fired)
			}
			if _, err := os.Stat(filepath.Join(os.Getenv("HARDWAY_ROOT"), "containers", id)); err == nil {
				t.Error("the failed container's dir is left behind")
			}
		})
	}
}
