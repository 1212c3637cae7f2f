package layer_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer"
	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/testutil"
)

// du is the bytes dir really occupies on disk (blocks), to prove a bomb was not written.
func du(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil {
			n += fi.Sys().(*syscallStat).Blocks * 512
		}
		return nil
	})
	return n
}

func TestDeviceNumberRange(t *testing.T) {
	testutil.RequireRoot(t)
	gnu := func(e lt.Entry) lt.Entry { e.Hdr.Format = tar.FormatGNU; return e } // base-256 numbers
	for _, c := range []struct {
		name   string
		e      lt.Entry
		wantOK bool
	}{
		{"largest the kernel takes", gnu(lt.Char("dev/ok", 4095, 1<<20-1)), true},
		{"major 4096", gnu(lt.Char("dev/bad", 4096, 0)), false},
		{"minor 2^20", gnu(lt.Char("dev/bad", 1, 1<<20)), false},
		{"major 2^32", gnu(lt.Char("dev/bad", 1<<32, 0)), false},
		{"negative major", gnu(lt.Char("dev/bad", -1, 0)), false},
		{"negative minor block", func() lt.Entry {
			e := gnu(lt.Char("dev/bad", 8, -1))
			e.Hdr.Typeflag = tar.TypeBlock
			return e
		}(), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			err := apply(t, dir, c.e)
			if c.wantOK {
				var st unix.Stat_t
				if err != nil || unix.Lstat(filepath.Join(dir, "dev/ok"), &st) != nil ||
					unix.Major(st.Rdev) != 4095 || unix.Minor(st.Rdev) != 1<<20-1 {
					t.Fatalf("want dev/ok 4095:1048575, got %v rdev %d:%d", err, unix.Major(st.Rdev), unix.Minor(st.Rdev))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "out of range") {
				t.Fatalf("want an out of range error, got %v", err)
			}
			if _, err := os.Lstat(filepath.Join(dir, "dev/bad")); err == nil {
				t.Error("dev/bad was created")
			}
		})
	}
}

// TestDuplicateEntries: the spec says a layer MUST NOT repeat a name, but images do; the
// last entry wins, whatever the types (a dir over a dir only changes its metadata).
func TestDuplicateEntries(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	err := apply(t, dir,
		lt.File("a", "first"), lt.File("a", "second").Mode(0o600),
		lt.File("b", "file"), lt.Symlink("b", "a"),
		lt.Symlink("c", "a"), lt.File("c", "file now"),
		lt.Dir("d"), lt.File("d/inner", "x"), lt.File("d", "file over a dir"),
		lt.Hardlink("e", "a"), lt.File("e", "own inode"),
		lt.Dir("f").Mode(0o700), lt.File("f/kept", "k"), lt.Dir("f").Mode(0o751).Owner(7, 8),
		lt.Fifo("g"), lt.Char("g", 1, 3),
	)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "second", "c": "file now", "d": "file over a dir", "e": "own inode", "f/kept": "k"}
	for p, body := range want {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != body {
			t.Errorf("%s = %q %v, want %q", p, b, err, body)
		}
	}
	if l, err := os.Readlink(filepath.Join(dir, "b")); err != nil || l != "a" {
		t.Errorf("b -> %q %v", l, err)
	}
	var st unix.Stat_t
	unix.Lstat(filepath.Join(dir, "a"), &st)
	if st.Mode&0o777 != 0o600 || st.Nlink != 1 {
		t.Errorf("a: mode %o nlink %d, want 600 and 1 (e's later entry unlinked it)", st.Mode&0o777, st.Nlink)
	}
	unix.Lstat(filepath.Join(dir, "f"), &st)
	if st.Mode&0o777 != 0o751 || st.Uid != 7 || st.Gid != 8 {
		t.Errorf("f: %o %d:%d, want the second entry's 751 7:8", st.Mode&0o777, st.Uid, st.Gid)
	}
	unix.Lstat(filepath.Join(dir, "g"), &st)
	if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("g is not the later char device")
	}
}

// TestSizeCap: bombs stop at the cap with ErrTooBig, before the oversize entry is written.
func TestSizeCap(t *testing.T) {
	testutil.RequireRoot(t)
	const capBytes = 4 << 20
	zeros := strings.Repeat("\x00", 16<<20)
	t.Run("one huge file", func(t *testing.T) {
		dir := t.TempDir()
		_, err := layer.Apply(dir, bytes.NewReader(lt.Tar(t, lt.File("bomb", zeros))), layer.NewBudget(capBytes))
		if !errors.Is(err, layer.ErrTooBig) {
			t.Fatalf("want ErrTooBig, got %v", err)
		}
		if _, err := os.Lstat(filepath.Join(dir, "bomb")); err == nil {
			t.Error("the bomb was created")
		}
	})
	t.Run("many files", func(t *testing.T) {
		dir := t.TempDir()
		var es []lt.Entry
		mib := zeros[:1<<20]
		for i := range 12 {
			es = append(es, lt.File("f"+itoa(int64(i)), mib))
		}
		_, err := layer.Apply(dir, bytes.NewReader(lt.Tar(t, es...)), layer.NewBudget(capBytes))
		if !errors.Is(err, layer.ErrTooBig) {
			t.Fatalf("want ErrTooBig, got %v", err)
		}
		if n := du(t, dir); n > capBytes+1<<20 {
			t.Errorf("%d bytes on disk, cap %d", n, capBytes)
		}
	})
	t.Run("inode bomb", func(t *testing.T) {
		dir := t.TempDir()
		var es []lt.Entry
		for i := range 2500 {
			es = append(es, lt.File("e"+itoa(int64(i)), ""))
		}
		st, err := layer.Apply(dir, bytes.NewReader(lt.Tar(t, es...)), layer.NewBudget(1<<20))
		if !errors.Is(err, layer.ErrTooBig) || st.Entries > 2049 {
			t.Fatalf("want ErrTooBig after ~2048 entries (512 bytes each), got %v after %d", err, st.Entries)
		}
	})
	t.Run("sparse file", func(t *testing.T) {
		// GNU tar stores a 1 TiB hole in a few blocks; its logical size is what counts.
		src := t.TempDir()
		f, _ := os.Create(filepath.Join(src, "sparse"))
		f.Truncate(1 << 40)
		f.WriteAt([]byte("end"), 1<<40-3)
		f.Close()
		out, err := exec.Command("tar", "--sparse", "-cf", "-", "-C", src, "sparse").Output()
		if err != nil {
			t.Fatal(err)
		}
		if len(out) > 1<<20 {
			t.Fatalf("GNU tar wrote %d bytes: not sparse", len(out))
		}
		dir := t.TempDir()
		_, err = layer.Apply(dir, bytes.NewReader(out), nil) // the default cap
		if !errors.Is(err, layer.ErrTooBig) || !strings.Contains(err.Error(), layer.EnvMaxSize) {
			t.Fatalf("want ErrTooBig naming %s, got %v", layer.EnvMaxSize, err)
		}
		if n := du(t, dir); n > 1<<20 {
			t.Errorf("%d bytes written", n)
		}
	})
	t.Run("gzip bomb through ExtractBlob", func(t *testing.T) {
		tb := lt.Tar(t, lt.File("bomb", zeros))
		blob := gz(tb)
		p := filepath.Join(t.TempDir(), "blob")
		os.WriteFile(p, blob, 0o644)
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
		dir := t.TempDir()
		if _, err := layer.ExtractBlob(dir, p, desc, digest.FromBytes(tb), layer.NewBudget(capBytes)); !errors.Is(err, layer.ErrTooBig) {
			t.Fatalf("want ErrTooBig, got %v", err)
		}
		if n := du(t, dir); n > 1<<20 {
			t.Errorf("%d bytes written", n)
		}
	})
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "512K": 512 << 10, "100M": 100 << 20, "64G": 64 << 30, "1T": 1 << 40, "2GiB": 2 << 30} {
		if got, err := layer.ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, in := range []string{"", "0", "-1", "12Q", "G", "99999999999T"} {
		if _, err := layer.ParseSize(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestCorruptStreams: broken framing is an error, never a silently short layer.
func TestCorruptStreams(t *testing.T) {
	testutil.RequireRoot(t)
	good := lt.Tar(t, lt.File("a", strings.Repeat("A", 3000)), lt.File("b", "b"))
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 0xff; return c }
	lying := func() []byte {
		// A header that says 10 bytes followed by 600: the rest is read as a header.
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		tw.WriteHeader(&tar.Header{Name: "short", Typeflag: tar.TypeReg, Size: 10, Mode: 0o644})
		tw.Write([]byte("0123456789"))
		tw.Flush()
		buf.Write(bytes.Repeat([]byte("X"), 1024))
		tw.Close()
		return buf.Bytes()
	}
	tars := map[string][]byte{
		"bad header checksum":    flip(good, 3),
		"truncated in a body":    good[:1024],
		"truncated in a header":  good[:3*512+100],
		"size larger than data":  good[:512+1000],
		"size smaller than data": lying(),
	}
	for name, tb := range tars {
		t.Run(name, func(t *testing.T) {
			_, err := layer.Apply(t.TempDir(), bytes.NewReader(tb), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
	gzGood := gz(good)
	blobs := map[string][]byte{
		"gzip body corrupt":  flip(gzGood, len(gzGood)/2),
		"gzip crc corrupt":   flip(gzGood, len(gzGood)-6),
		"gzip truncated":     gzGood[:len(gzGood)-20],
		"gzip bad magic":     flip(gzGood, 0),
		"gzip trailing junk": append(bytes.Clone(gzGood), "junk"...),
	}
	for name, blob := range blobs {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "blob")
			os.WriteFile(p, blob, 0o644)
			desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
			_, err := layer.ExtractBlob(t.TempDir(), p, desc, digest.FromBytes(good), nil)
			if err == nil {
				t.Fatal("accepted")
			}
			t.Log(err)
		})
	}
}

// TestDeepAndWideTrees: a tree as deep as PATH_MAX allows, with its parents missing from the
// tar, and a wide dir extract whole; a name past PATH_MAX is an error, not a hang.
func TestDeepAndWideTrees(t *testing.T) {
	testutil.RequireRoot(t)
	deep := strings.Repeat("d/", 2000) // 4000 bytes, 2000 levels, none of them in the tar
	var es []lt.Entry
	for i := range 50 {
		es = append(es, lt.File(deep+"f"+itoa(int64(i)), "x"))
	}
	for i := range 2000 {
		es = append(es, lt.File("wide/e"+itoa(int64(i)), ""))
	}
	dir := t.TempDir()
	if err := apply(t, dir, es...); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstatat(fd, deep+"f49", &st, 0); err != nil {
		t.Errorf("the deepest file: %v", err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "wide")); len(ents) != 2000 {
		t.Errorf("wide has %d entries, want 2000", len(ents))
	}
	err = apply(t, t.TempDir(), lt.File(strings.Repeat("d/", 2100)+"f", "x"))
	if err == nil || !errors.Is(err, unix.ENAMETOOLONG) {
		t.Errorf("a name past PATH_MAX: want ENAMETOOLONG, got %v", err)
	}
}
