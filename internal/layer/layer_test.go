package layer_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer"
	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/testutil"
)

func apply(t *testing.T, dir string, entries ...lt.Entry) error {
	t.Helper()
	_, err := layer.Apply(dir, bytes.NewReader(lt.Tar(t, entries...)), nil)
	return err
}

func TestApplyEntryTypes(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	err := apply(t, dir,
		lt.Dir("bin").Owner(0, 0).Mode(0o755),
		lt.File("bin/su", "suid").Owner(0, 0).Mode(0o4755),
		lt.File("bin/wall", "sgid").Owner(0, 5).Mode(0o2755),
		lt.File("home/user/file", "mine").Owner(1000, 1001).Mode(0o600), // parents missing
		lt.Symlink("bin/sh", "/bin/busybox"),
		lt.Hardlink("bin/su2", "bin/su"),
		lt.Char("dev/null", 1, 3),
		lt.Fifo("run/fifo"),
		lt.File("cap", "x").Xattr("trusted.hardway", "v").Xattr("user.note", "n"),
		lt.Dir("tmp").Mode(0o1777),
		lt.File("replace", "old"),
		lt.Dir("replace"), // a dir replaces a file
		lt.Dir("keep"),
		lt.File("keep/a", "a"),
		lt.Dir("keep"), // dir over dir keeps the contents
	)
	if err != nil {
		t.Fatal(err)
	}
	stat := func(p string) unix.Stat_t {
		t.Helper()
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(dir, p), &st); err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := stat("bin/su"); st.Mode&0o7777 != 0o4755 {
		t.Errorf("bin/su mode %o, want 4755", st.Mode&0o7777)
	}
	if st := stat("bin/wall"); st.Mode&0o7777 != 0o2755 || st.Gid != 5 {
		t.Errorf("bin/wall mode %o gid %d, want 2755 gid 5", st.Mode&0o7777, st.Gid)
	}
	if st := stat("home/user/file"); st.Uid != 1000 || st.Gid != 1001 || st.Mode&0o777 != 0o600 {
		t.Errorf("home/user/file %d:%d %o", st.Uid, st.Gid, st.Mode&0o777)
	}
	if st := stat("home/user"); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Error("missing parent home/user not created as a dir")
	}
	if l, _ := os.Readlink(filepath.Join(dir, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("bin/sh -> %q", l)
	}
	if a, b := stat("bin/su"), stat("bin/su2"); a.Ino != b.Ino || a.Nlink != 2 {
		t.Error("bin/su2 is not a hardlink of bin/su")
	}
	if st := stat("dev/null"); st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != 1 || unix.Minor(st.Rdev) != 3 {
		t.Errorf("dev/null: mode %o rdev %d:%d", st.Mode, unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	if st := stat("run/fifo"); st.Mode&unix.S_IFMT != unix.S_IFIFO {
		t.Error("run/fifo is not a fifo")
	}
	buf := make([]byte, 16)
	if n, err := unix.Lgetxattr(filepath.Join(dir, "cap"), "trusted.hardway", buf); err != nil || string(buf[:n]) != "v" {
		t.Errorf("xattr trusted.hardway: %q %v", buf[:n], err)
	}
	if st := stat("tmp"); st.Mode&0o7777 != 0o1777 {
		t.Errorf("tmp mode %o, want 1777", st.Mode&0o7777)
	}
	if st := stat("replace"); st.Mode&unix.S_IFMT != unix.S_IFDIR {
		t.Error("replace: the later dir entry did not replace the file")
	}
	if _, err := os.Stat(filepath.Join(dir, "keep/a")); err != nil {
		t.Error("keep/a vanished when its dir was listed again")
	}
	if st := stat("bin"); st.Mtim.Sec != lt.Epoch.Unix() {
		t.Errorf("bin mtime %d, want %d (dir mtimes are applied last)", st.Mtim.Sec, lt.Epoch.Unix())
	}
}

func TestApplyWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	err := apply(t, dir,
		lt.Whiteout("etc/gone").Owner(0, 0),
		lt.Dir("var"),
		lt.Opaque("var"),
		lt.File("var/new", "n"),
		lt.Opaque("opt/deep"), // opaque dir whose parents are not in the tar
	)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone is not a 0/0 char device: mode %o rdev %d", st.Mode, st.Rdev)
	}
	for _, d := range []string{"var", "opt/deep"} {
		buf := make([]byte, 8)
		n, err := unix.Lgetxattr(filepath.Join(dir, d), layer.OpaqueXattr, buf)
		if err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s: %s = %q, %v", d, layer.OpaqueXattr, buf[:n], err)
		}
	}
	for _, p := range []string{"etc/.wh.gone", "var/.wh..wh..opq"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("marker %s was written as a file", p)
		}
	}
}

// TestApplyWhiteoutsUnderOpaque: whiteouts in a dir the same layer makes opaque vanish,
// whether they come before or after the marker, also in subdirs; nested opaques stay.
func TestApplyWhiteoutsUnderOpaque(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	err := apply(t, dir,
		lt.Whiteout("d/before"),
		lt.Whiteout("d/sub/deep"),
		lt.Whiteout("other/kept"),
		lt.Opaque("d"),
		lt.Whiteout("d/after"),
		lt.File("d/file", "f"),
		lt.Opaque("d/sub"),
	)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"d/before", "d/sub/deep", "d/after"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
			t.Errorf("whiteout %s left in an opaque dir", p)
		}
	}
	for _, p := range []string{"other/kept", "d/file"} {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, d := range []string{"d", "d/sub"} {
		buf := make([]byte, 4)
		if n, err := unix.Lgetxattr(filepath.Join(dir, d), layer.OpaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
			t.Errorf("%s not opaque: %v", d, err)
		}
	}
}

func TestApplyInvalidWhiteouts(t *testing.T) {
	testutil.RequireRoot(t)
	for _, name := range []string{".wh.", ".wh..", ".wh...", "etc/.wh..", "etc/.wh..."} {
		t.Run(name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "layer")
			os.Mkdir(dir, 0o755)
			os.WriteFile(filepath.Join(base, "canary"), []byte("x"), 0o644)
			err := apply(t, dir, lt.Dir("etc"), lt.File("etc/passwd", "root"), lt.File(name, ""))
			if err == nil || !strings.Contains(err.Error(), "invalid whiteout") {
				t.Fatalf("want an invalid whiteout error, got %v", err)
			}
			if _, err := os.Stat(filepath.Join(base, "canary")); err != nil {
				t.Error("canary beside the layer is gone")
			}
		})
	}
}

// snapshot lists everything under dir with type, size and link count, to prove a dir
// untouched.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscallStat)
		lines = append(lines, strings.TrimPrefix(p, dir)+" "+fi.Mode().String()+" "+itoa(fi.Size())+" nlink="+itoa(int64(st.Nlink)))
		return nil
	})
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestHostileTars extracts tars that try to reach outside the layer dir. Each runs in its
// own base dir holding the layer dir and a canary dir beside it; whatever the tar does
// (fail or succeed), the canary and the base must be unchanged.
func TestHostileTars(t *testing.T) {
	testutil.RequireRoot(t)
	type tc struct {
		name    string
		entries func(canary string) []lt.Entry
		inside  func(canary string) string // where the write must land instead, if anywhere
	}
	cases := []tc{
		{"write through dangling symlink", func(string) []lt.Entry {
			return []lt.Entry{lt.Symlink("lib", "/usr/lib"), lt.File("lib/pwned", "x")}
		}, nil},
		{"absolute path", func(c string) []lt.Entry { return []lt.Entry{lt.File(c+"/pwned", "x")} },
			func(c string) string { return c + "/pwned" }},
		{"dotdot escape", func(string) []lt.Entry { return []lt.Entry{lt.File("../canary/pwned", "x")} },
			func(string) string { return "canary/pwned" }},
		{"deep dotdot escape", func(string) []lt.Entry { return []lt.Entry{lt.File("a/../../../../canary/pwned", "x")} },
			func(string) string { return "canary/pwned" }},
		{"write through absolute symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.Symlink("evil", c), lt.File("evil/pwned", "x")}
		}, func(c string) string { return c + "/pwned" }},
		{"write through symlink to /", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("root", "/"), lt.File("root"+c+"/pwned", "x")}
		}, nil},
		{"write through relative escaping symlink", func(string) []lt.Entry {
			return []lt.Entry{lt.Symlink("up", "../canary"), lt.File("up/pwned", "x")}
		}, nil},
		{"write through symlink to ..", func(string) []lt.Entry {
			return []lt.Entry{lt.Dir("d"), lt.Symlink("d/dotdot", ".."), lt.File("d/dotdot/../canary/pwned", "x")}
		}, nil},
		{"symlink chain then absolute", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("escape", ".."), lt.Symlink("escape/abs", c), lt.File("escape/abs/pwned", "x")}
		}, nil},
		{"overwrite through symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("secret", c+"/secret"), lt.File("secret", "overwritten")}
		}, nil},
		{"hardlink to dotdot path", func(string) []lt.Entry {
			return []lt.Entry{lt.Hardlink("stolen", "../../canary/secret"), lt.File("stolen", "overwritten")}
		}, nil},
		{"hardlink to absolute path", func(c string) []lt.Entry {
			return []lt.Entry{lt.Hardlink("stolen", c+"/secret")}
		}, nil},
		{"hardlink through symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("evil", c), lt.Hardlink("stolen", "evil/secret")}
		}, nil},
		{"hardlink to a symlink to outside", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("s", c+"/secret"), lt.Hardlink("h", "s"), lt.File("h", "x").Mode(0o777)}
		}, nil},
		{"whiteout through symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("evil", c), lt.Whiteout("evil/secret")}
		}, nil},
		{"opaque through symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("evil", c), lt.Opaque("evil")}
		}, nil},
		{"chmod and chown through symlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("evil", c), lt.Dir("evil").Mode(0o777).Owner(1234, 1234)}
		}, nil},
		{"device through escaping path", func(string) []lt.Entry { return []lt.Entry{lt.Char("../canary/null", 1, 3)} },
			func(string) string { return "canary/null" }},
		// containerd TestBreakouts, restated (c is the canary's host path, reused inside).
		{"SymlinkUpAndOut", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("localetc", "/dummy/.."+c), lt.File("localetc/pwned", "x")}
		}, nil},
		{"SymlinkMultipleAbsolute", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.Symlink("dummy/etc", c), lt.Symlink("localetc", "/dummy/etc"), lt.File("localetc/pwned", "x")}
		}, func(c string) string { return c + "/pwned" }},
		{"SymlinkMultipleRelative", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.Symlink("dummy/etc", "../../../../.."+c), lt.Symlink("localetc", "./dummy/etc"), lt.File("localetc/pwned", "x")}
		}, func(c string) string { return c + "/pwned" }},
		{"SymlinkEmptyFile", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"), lt.Symlink("s", c+"/secret"), lt.File("s", "")}
		}, func(c string) string { return c + "/secret" }},
		{"HardlinkRelative", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"), lt.Dir("breakouts"),
				lt.Symlink("breakouts/d1", "../.."+c), lt.Hardlink("linked", "breakouts/d1/secret")}
		}, func(string) string { return "linked" }},
		{"HardlinkRelativeLong", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"),
				lt.Symlink("localetc", "../../../../../../../.."+c), lt.Hardlink("linked", "localetc/secret")}
		}, func(string) string { return "linked" }},
		{"HardlinkRelativeUpAndOut", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"),
				lt.Symlink("localetc", "upandout/../../../.."+c), lt.Hardlink("linked", "localetc/secret")}
		}, nil},
		{"HardlinkDirectRelative", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"), lt.Hardlink("linked", "../../../../.."+c+"/secret")}
		}, func(string) string { return "linked" }},
		{"HardlinkDirectAbsolute", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir(c[1:]), lt.File(c[1:]+"/secret", "inside"), lt.Hardlink("linked", c+"/secret")}
		}, func(string) string { return "linked" }},
		{"SymlinkParentDirectory", func(c string) []lt.Entry { return []lt.Entry{lt.Symlink("..", c)} }, nil},
		{"SymlinkParentRelative", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir("localetc"), lt.Symlink("localetc/sub/..", c), lt.File("localetc/pwned", "x")}
		}, nil},
		{"SymlinkOverrideDirectory", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir("localetc"), lt.Symlink("localetc", c), lt.File("localetc/pwned", "x")}
		}, nil},
		{"DirectoryOverrideSymlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("localetc", c), lt.Dir("localetc"), lt.File("localetc/pwned", "x")}
		}, func(string) string { return "localetc/pwned" }},
		{"WhiteoutSymlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("localetc", c), lt.Whiteout("localetc")}
		}, func(string) string { return "localetc" }},
		{"WhiteoutDirectoryName", func(string) []lt.Entry { return []lt.Entry{lt.File(".wh.etc/somefile", "x")} },
			func(string) string { return ".wh.etc/somefile" }},
		{"WhiteoutRelativePath", func(string) []lt.Entry { return []lt.Entry{lt.Dir("etc"), lt.File("dne/../.wh.etc", "")} },
			func(string) string { return "etc" }},
		{"WhiteoutDeadSymlinkParent", func(string) []lt.Entry {
			return []lt.Entry{lt.Symlink("dead", "/nowhere"), lt.Whiteout("dead/x")}
		}, nil},
		{"SymlinkOverridePath", func(c string) []lt.Entry {
			return []lt.Entry{lt.Dir("foo"), lt.Symlink("foo", "/"), lt.File("foo"+c+"/pwned", "x")}
		}, func(c string) string { return c + "/pwned" }},
		{"HardlinkSymlinkBeforeCreateTarget", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("s", c+"/secret"), lt.Hardlink("h", "s"), lt.File(c[1:]+"/secret", "inside")}
		}, func(string) string { return "h" }},
		// moby go-archive untar tests.
		{"moby InvalidFilenames slash-dotdot", func(string) []lt.Entry { return []lt.Entry{lt.File("/../canary/slash-dotdot", "x")} },
			func(string) string { return "canary/slash-dotdot" }},
		{"moby ParentTraversal dotdot dir", func(string) []lt.Entry { return []lt.Entry{lt.Dir("..").Mode(0o777)} }, nil},
		{"moby SiblingPrefix hardlink", func(string) []lt.Entry { return []lt.Entry{lt.Hardlink("h", "../canary-evil/secret")} }, nil},
		{"moby InvalidHardlink to dir", func(string) []lt.Entry {
			return []lt.Entry{lt.Dir("d"), lt.Hardlink("h", "../../canary"), lt.File("h/x", "x")}
		}, nil},
		{"moby InvalidSymlink loophole", func(string) []lt.Entry {
			return []lt.Entry{lt.Dir("dir"), lt.Symlink("dir/loophole", "../../canary"), lt.File("dir/loophole/newdir/newfile", "x")}
		}, nil},
		{"moby SymlinkBreakout two hops", func(string) []lt.Entry {
			return []lt.Entry{lt.Dir("inner"), lt.Symlink("inner/go_up", ".."), lt.Symlink("inner/go_up/escape", "../canary"),
				lt.File("inner/go_up/escape/pwned", "x")}
		}, nil},
		{"moby RelativeEscapeBeforeAbsoluteSymlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("escape", ".."), lt.Dir(c[1:]), lt.Symlink("escape/absolute", c), lt.File("escape/absolute/file", "x")}
		}, func(c string) string { return c + "/file" }},
		{"moby HardlinkSourceThroughAbsoluteSymlink", func(c string) []lt.Entry {
			return []lt.Entry{lt.Symlink("abs", c), lt.Hardlink("h", "abs/secret"), lt.File("h", "overwritten")}
		}, nil},
		// umoci scoping and hardening tests.
		{"umoci SanitiseScoping", func(string) []lt.Entry { return []lt.Entry{lt.File("/../../canary/pwned", "x")} },
			func(string) string { return "canary/pwned" }},
		{"umoci SymlinkScoping many dotdots", func(string) []lt.Entry {
			return []lt.Entry{lt.Symlink("link", strings.Repeat("../", 15)), lt.File("link/canary/pwned", "x")}
		}, func(string) string { return "canary/pwned" }},
		{"umoci SymlinkScoping slash-dot", func(string) []lt.Entry {
			return []lt.Entry{lt.Symlink("link", "/./.././../."), lt.File("link/canary/pwned", "x")}
		}, func(string) string { return "canary/pwned" }},
		{"umoci NonDirParent", func(string) []lt.Entry { return []lt.Entry{lt.File("file", "f"), lt.File("file/foo/bar/baz", "x")} },
			func(string) string { return "file/foo/bar/baz" }},
		{"umoci OpaqueWhiteout verybadlink", func(string) []lt.Entry {
			return []lt.Entry{lt.Dir("dir"), lt.Opaque("dir"), lt.Symlink("dir/verybadlink", strings.Repeat("../", 10)+"canary/secret"),
				lt.File("dir/verybadlink", "overwritten")}
		}, func(string) string { return "dir/verybadlink" }},
		{"hardlink before its target", func(string) []lt.Entry { return []lt.Entry{lt.Hardlink("h", "later"), lt.File("later", "x")} }, nil},
		{"root replaced by a file", func(string) []lt.Entry { return []lt.Entry{lt.File(".", "x")} }, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := t.TempDir()
			dir := filepath.Join(base, "layer")
			canary := filepath.Join(base, "canary")
			for _, d := range []string{dir, canary} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(canary, "secret"), []byte("secret"), 0o400); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, canary)
			var cst unix.Stat_t
			unix.Stat(canary, &cst)
			err := apply(t, dir, c.entries(canary)...)
			t.Logf("apply: %v", err)
			if after := snapshot(t, canary); after != before {
				t.Errorf("canary changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			var cst2 unix.Stat_t
			unix.Stat(canary, &cst2)
			if cst2.Mode != cst.Mode || cst2.Uid != cst.Uid {
				t.Errorf("canary dir mode/owner changed: %o %d -> %o %d", cst.Mode, cst.Uid, cst2.Mode, cst2.Uid)
			}
			if b, _ := os.ReadFile(filepath.Join(canary, "secret")); string(b) != "secret" {
				t.Errorf("canary secret now %q", b)
			}
			if c.inside != nil {
				if _, err := os.Lstat(filepath.Join(dir, c.inside(canary))); err != nil {
					t.Errorf("the entry did not land inside the layer: %v", err)
				}
			}
			ents, _ := os.ReadDir(base)
			if len(ents) != 2 {
				t.Errorf("base dir has %d entries, want layer and canary only", len(ents))
			}
		})
	}
}

func gz(b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestExtractBlobVerifies(t *testing.T) {
	testutil.RequireRoot(t)
	tarb := lt.Tar(t, lt.File("hello", "world"))
	// Trailing zero padding after the end-of-archive marker is part of the diff_id.
	padded := append(append([]byte{}, tarb...), make([]byte, 4096)...)
	blob := gz(padded)
	p := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(p, blob, 0o644)
	good := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	diffID := digest.FromBytes(padded)

	if _, err := layer.ExtractBlob(t.TempDir(), p, good, diffID, nil); err != nil {
		t.Fatalf("good blob: %v", err)
	}
	if _, err := layer.ExtractBlob(t.TempDir(), p, good, digest.FromBytes(tarb), nil); err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Errorf("diff_id without the trailing bytes: want a diff_id error, got %v", err)
	}
	bad := good
	bad.Digest = digest.FromString("other")
	if _, err := layer.ExtractBlob(t.TempDir(), p, bad, diffID, nil); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Errorf("wrong blob digest: got %v", err)
	}
	short := good
	short.Size--
	if _, err := layer.ExtractBlob(t.TempDir(), p, short, diffID, nil); err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Errorf("wrong size: got %v", err)
	}
	odd := good
	odd.MediaType = "application/x-unknown"
	if _, err := layer.ExtractBlob(t.TempDir(), p, odd, diffID, nil); err == nil {
		t.Error("unknown media type accepted")
	}
}

func TestCompressionOf(t *testing.T) {
	for mt, want := range map[string]layer.Compression{
		ocispec.MediaTypeImageLayerGzip:                     layer.Gzip,
		ocispec.MediaTypeImageLayerZstd:                     layer.Zstd,
		ocispec.MediaTypeImageLayer:                         layer.Uncompressed,
		"application/vnd.docker.image.rootfs.diff.tar.gzip": layer.Gzip,
		"application/vnd.docker.image.rootfs.diff.tar":      layer.Uncompressed,
	} {
		if got, err := layer.CompressionOf(mt); err != nil || got != want {
			t.Errorf("%s: %v %v", mt, got, err)
		}
	}
}
