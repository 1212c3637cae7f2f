package layer_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer"
	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/testutil"
)

// modeTree lists every path under dir with its type, permission bits and owner.
func modeTree(t *testing.T, dir string) map[string][3]uint32 {
	t.Helper()
	out := map[string][3]uint32{}
	err := filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out[rel] = [3]uint32{st.Mode, st.Uid, st.Gid}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// On kernels without fchmodat2 (Debian 12's 6.1) modes go through O_PATH and
// /proc/self/fd: the extracted tree must be the same, bit for bit, as with fchmodat2.
func TestApplyModesWithoutFchmodat2(t *testing.T) {
	testutil.RequireRoot(t)
	entries := []lt.Entry{
		lt.Dir(".").Mode(0o700),
		lt.Dir("bin").Owner(0, 0).Mode(0o751),
		lt.File("bin/su", "suid").Owner(0, 0).Mode(0o4755),
		lt.File("bin/wall", "sgid").Owner(0, 5).Mode(0o2711),
		lt.File("secret", "s").Owner(1000, 1001).Mode(0o400),
		lt.File("none", "n").Mode(0),
		lt.Symlink("bin/sh", "/bin/busybox"),
		lt.Symlink("dangling", "/nonexistent"),
		lt.Hardlink("bin/su2", "bin/su"),
		lt.Char("dev/null", 1, 3).Mode(0o666),
		lt.Fifo("run/fifo").Mode(0o620),
		lt.Dir("tmp").Mode(0o1777),
	}
	want := t.TempDir()
	if err := apply(t, want, entries...); err != nil {
		t.Fatal(err)
	}
	layer.ForceProcFdChmod(true)
	t.Cleanup(func() { layer.ForceProcFdChmod(false) })
	got := t.TempDir()
	if err := apply(t, got, entries...); err != nil {
		t.Fatalf("apply without fchmodat2: %v", err)
	}
	w, g := modeTree(t, want), modeTree(t, got)
	if len(w) != len(g) {
		t.Errorf("%d entries without fchmodat2, %d with", len(g), len(w))
	}
	for p, m := range w {
		if g[p] != m {
			t.Errorf("%s: mode %o owner %d:%d without fchmodat2, want mode %o owner %d:%d", p, g[p][0], g[p][1], g[p][2], m[0], m[1], m[2])
		}
	}
}

// The fallback opens the entry itself (O_NOFOLLOW): an entry that is a symlink is left
// alone, and the file it points to keeps its mode.
func TestChmodFallbackNeverFollowsSymlinks(t *testing.T) {
	testutil.RequireRoot(t)
	layer.ForceProcFdChmod(true)
	t.Cleanup(func() { layer.ForceProcFdChmod(false) })
	dir, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "host-file")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dfd)
	if err := layer.ChmodAt(dfd, "link", 0o4777); err != nil {
		t.Fatalf("chmod of a symlink: %v, want it skipped", err)
	}
	if fi, err := os.Stat(target); err != nil || fi.Mode().Perm() != 0o600 || fi.Mode()&os.ModeSetuid != 0 {
		t.Errorf("the symlink's target was chmodded: %v %v", fi.Mode(), err)
	}
	if err := os.WriteFile(filepath.Join(dir, "file"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := layer.ChmodAt(dfd, "file", 0o4750); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "file")); fi.Mode().Perm() != 0o750 || fi.Mode()&os.ModeSetuid == 0 {
		t.Errorf("file mode %v after the fallback chmod, want setuid 0750", fi.Mode())
	}
}
