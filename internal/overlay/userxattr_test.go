package overlay_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
)

// superOptions are the overlay's own options where it is mounted on dir.
func superOptions(t *testing.T, dir string) string {
	t.Helper()
	ms, err := mountinfo.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.Point == dir {
			return m.SuperOptions
		}
	}
	t.Fatalf("%s is not mounted", dir)
	return ""
}

// overlay --userxattr mounts the layers unpack --userxattr made with the userxattr option,
// and the kernel then obeys their user.overlay.opaque: the merged view is the same as the
// trusted form's. A re-run without the flag keeps the form the bundle was made with.
func TestOverlayUserXattr(t *testing.T) { bothMountPaths(t, testOverlayUserXattr) }

// bothMountPaths runs test once with the new mount API and once with mount(2), the way a
// kernel without lowerdir+ mounts.
func bothMountPaths(t *testing.T, test func(*testing.T)) {
	for _, legacy := range []bool{false, true} {
		name := "new mount API"
		if legacy {
			name = "mount(2)"
		}
		t.Run(name, func(t *testing.T) {
			overlay.ForceLegacyMount(legacy)
			defer overlay.ForceLegacyMount(false)
			test(t)
		})
	}
}

func testOverlayUserXattr(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	handle := twoLayers(t).Write(t)
	im := resolve(t, handle)
	id := testutil.ID("ovux")

	if _, err := overlay.Create(im, overlay.Options{ID: id, UserXattr: true}); err == nil ||
		!strings.Contains(err.Error(), "run: unpack --userxattr "+handle) {
		t.Fatalf("before unpack --userxattr: want a hint naming it, got %v", err)
	}
	layers, err := overlay.UnpackWith(im, overlay.UnpackOptions{UserXattr: true})
	if err != nil {
		t.Fatal(err)
	}
	dir := create(t, im, overlay.Options{ID: id, UserXattr: true})
	rootfs := filepath.Join(dir, "rootfs")
	opts := superOptions(t, rootfs)
	if !strings.Contains(","+opts+",", ",userxattr,") {
		t.Errorf("overlay options %q: want userxattr", opts)
	}
	for _, l := range layers {
		if !strings.HasSuffix(l.Dir(), "-userxattr") || !strings.Contains(opts, "l/"+l.Link) {
			t.Errorf("overlay options %q: want the user-form layer %s (l/%s)", opts, l.Dir(), l.Link)
		}
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "etc/a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etc/a visible in the merged root: %v", err)
	}
	ents, _ := os.ReadDir(filepath.Join(rootfs, "dir"))
	if len(ents) != 1 || ents[0].Name() != "z" {
		t.Errorf("opaque dir shows %v, want only z (user.overlay.opaque not obeyed)", ents)
	}

	// Unmounted (a reboot), then overlay run again without the flag: same form, same view.
	if err := unix.Unmount(rootfs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := overlay.Create(im, overlay.Options{ID: id}); err != nil {
		t.Fatalf("re-run without --userxattr: %v", err)
	}
	if opts := superOptions(t, rootfs); !strings.Contains(","+opts+",", ",userxattr,") {
		t.Errorf("re-mounted with %q: the bundle's userxattr form was lost", opts)
	}
	if ents, _ := os.ReadDir(filepath.Join(rootfs, "dir")); len(ents) != 1 {
		t.Errorf("after the re-mount the opaque dir shows %v, want only z", ents)
	}
}
