package layer_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer"
	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/testutil"
)

func xattr(t *testing.T, p, name string) (string, error) {
	t.Helper()
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// TestApplyUserXattr: in the user. form an opaque dir carries user.overlay.opaque=y and no
// trusted. mark, whiteouts stay 0/0 devices, and an image's own user.overlay.* is escaped.
func TestApplyUserXattr(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	tarb := lt.Tar(t,
		lt.Dir("var"), lt.Opaque("var"), lt.File("var/new", "n"),
		lt.Whiteout("etc/gone"),
		lt.Dir("evil").Xattr("user.overlay.opaque", "y"),
	)
	if _, err := layer.ApplyWith(dir, bytes.NewReader(tarb), layer.Options{UserXattr: true}); err != nil {
		t.Fatal(err)
	}
	if v, err := xattr(t, filepath.Join(dir, "var"), layer.UserOpaqueXattr); err != nil || v != "y" {
		t.Errorf("var: %s = %q, %v; want y", layer.UserOpaqueXattr, v, err)
	}
	if v, err := xattr(t, filepath.Join(dir, "var"), layer.OpaqueXattr); err == nil {
		t.Errorf("var: %s = %q in the user form", layer.OpaqueXattr, v)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(dir, "etc/gone"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("etc/gone is not a 0/0 char device: mode %o rdev %d, %v", st.Mode, st.Rdev, err)
	}
	if v, err := xattr(t, filepath.Join(dir, "evil"), layer.UserOpaqueXattr); err == nil {
		t.Errorf("the image's own %s was obeyed: %q", layer.UserOpaqueXattr, v)
	}
	if v, err := xattr(t, filepath.Join(dir, "evil"), "user.overlay.overlay.opaque"); err != nil || v != "y" {
		t.Errorf("evil: escaped xattr = %q, %v", v, err)
	}
}

// TestUserXattrMount: the kernel obeys the user form when the overlay is mounted with
// userxattr: the opaque dir hides the lower layer's files, the whiteout hides its file.
func TestUserXattrMount(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	lower, upper, merged := filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "merged")
	for _, d := range []string{lower, upper, merged} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := layer.Apply(lower, bytes.NewReader(lt.Tar(t, lt.File("var/old", "o"), lt.File("etc/gone", "g"), lt.File("etc/kept", "k"))), nil); err != nil {
		t.Fatal(err)
	}
	if _, err := layer.ApplyWith(upper, bytes.NewReader(lt.Tar(t, lt.Dir("var"), lt.Opaque("var"), lt.File("var/new", "n"), lt.Whiteout("etc/gone"))), layer.Options{UserXattr: true}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("overlay", merged, "overlay", unix.MS_RDONLY, "userxattr,lowerdir="+upper+":"+lower); err != nil {
		t.Fatalf("mount overlay with userxattr: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(merged, unix.MNT_DETACH) })
	for p, want := range map[string]bool{"var/new": true, "var/old": false, "etc/kept": true, "etc/gone": false} {
		_, err := os.Lstat(filepath.Join(merged, p))
		if got := err == nil; got != want {
			t.Errorf("merged /%s exists = %v, want %v (%v)", p, got, want, err)
		}
	}
}

// TestExtractBlobProgress: the progress writer sees every compressed byte of the blob.
func TestExtractBlobProgress(t *testing.T) {
	testutil.RequireRoot(t)
	tarb := lt.Tar(t, lt.File("hello", "world"))
	blob := gz(tarb)
	p := filepath.Join(t.TempDir(), "blob")
	if err := os.WriteFile(p, blob, 0o644); err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.FromBytes(blob), Size: int64(len(blob))}
	var seen countWriter
	if _, err := layer.ExtractBlobWith(t.TempDir(), p, desc, digest.FromBytes(tarb), layer.Options{Progress: &seen}); err != nil {
		t.Fatal(err)
	}
	if int(seen) != len(blob) {
		t.Errorf("progress saw %d bytes, the blob has %d", seen, len(blob))
	}
}

type countWriter int

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }
