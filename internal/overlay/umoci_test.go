package overlay_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// treeOf lists every path under root with its type, mode, owner, size, link target,
// content and user/trusted xattrs (overlayfs's own excepted), one line each; skip names
// paths (relative) whose own line is left out.
func treeOf(t *testing.T, root string, skip map[string]bool) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if skip[rel] {
			return nil
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %s %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case fi.Mode().IsRegular():
			b, _ := os.ReadFile(p)
			line += fmt.Sprintf(" %q mtime=%d", b, st.Mtim.Sec)
		case fi.Mode()&os.ModeDevice != 0:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		buf := make([]byte, 4096)
		if n, err := unix.Llistxattr(p, buf); err == nil {
			var names []string
			for _, a := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
				if a != "" && !strings.Contains(a, ".overlay.") && !strings.HasPrefix(a, "security.selinux") {
					v := make([]byte, 256)
					m, _ := unix.Lgetxattr(p, a, v)
					names = append(names, a+"="+string(v[:max(m, 0)]))
				}
			}
			sort.Strings(names)
			if len(names) > 0 {
				line += " xattrs=" + strings.Join(names, ",")
			}
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// TestMergedTreeMatchesUmoci: the merged root of a multi-layer image with deletions,
// opaque dirs and replacements equals what umoci (the OCI reference unpacker) makes of the
// same image, apart from what the init layer adds on purpose.
func TestMergedTreeMatchesUmoci(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	if _, err := exec.LookPath("umoci"); err != nil {
		t.Fatal("needs umoci (apt-get install umoci)")
	}
	img := lt.Image{Name: "test.local/umoci", Config: ocispec.ImageConfig{Cmd: []string{"sh"}}, Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/a", "a"), lt.File("etc/b", "b").Mode(0o600).Owner(1, 2),
			lt.Dir("opt").Owner(5, 5), lt.File("opt/x", "x"), lt.Dir("opt/sub"), lt.File("opt/sub/y", "y"),
			lt.Dir("var"), lt.Dir("var/lib"), lt.File("var/lib/db", "db"), lt.Symlink("var/run", "/run"),
			lt.File("usr/bin/suid", "s").Mode(0o4755), lt.Hardlink("usr/bin/suid2", "usr/bin/suid"),
			lt.Fifo("var/fifo"), lt.File("replaced", "file"), lt.File("tagged", "t").Xattr("user.note", "hello"))},
		{Tar: lt.Tar(t, lt.Whiteout("etc/a"), lt.Dir("opt").Mode(0o750), lt.Opaque("opt"), lt.File("opt/new", "n"),
			lt.Whiteout("var/lib"), lt.Dir("replaced"), lt.File("replaced/inside", "i"),
			lt.File("etc/b", "b2").Mode(0o640).Owner(3, 4)), MediaType: ocispec.MediaTypeImageLayer}, // umoci 0.4.7 reads no zstd
		{Tar: lt.Tar(t, lt.Dir("var"), lt.Dir("var/lib"), lt.File("var/lib/fresh", "f"), lt.Whiteout("usr/bin/suid2"),
			lt.Symlink("etc/link", "b"), lt.Whiteout("var/fifo"), lt.Opaque("newdir"), lt.File("newdir/z", "z"))},
	}}
	handle := img.Write(t)
	im := resolve(t, handle)
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	dir := create(t, im, overlay.Options{ID: testutil.ID("umoci")})

	bundle := filepath.Join(t.TempDir(), "bundle")
	out, err := exec.Command("umoci", "unpack", "--image", state.OCIDir()+":"+handle[:strings.Index(handle, "@")]+":latest", bundle).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci unpack: %v\n%s", err, out)
	}
	// The init layer's mount points and placeholders are ours on purpose (Docker's too).
	skip := map[string]bool{".": true, "etc": true, "etc/hosts": true, "etc/hostname": true, "etc/resolv.conf": true,
		"etc/mtab": true, "dev": true, "dev/pts": true, "dev/shm": true, "dev/mqueue": true, "dev/console": true, "proc": true, "sys": true}
	ours := treeOf(t, filepath.Join(dir, "rootfs"), skip)
	theirs := treeOf(t, filepath.Join(bundle, "rootfs"), skip)
	if strings.Join(ours, "\n") != strings.Join(theirs, "\n") {
		t.Errorf("merged tree differs from umoci's\nours:\n%s\numoci:\n%s", strings.Join(ours, "\n"), strings.Join(theirs, "\n"))
	}
	t.Logf("%d paths compared", len(ours))
}
