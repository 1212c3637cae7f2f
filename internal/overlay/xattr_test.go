package overlay_test

import (
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
)

// TestImageOverlayXattrsNotObeyed: an image that carries overlayfs's own xattrs (an opaque
// mark, a redirect) gets them stored escaped; the merged root shows them as the image
// has them, and the kernel obeys none.
func TestImageOverlayXattrsNotObeyed(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, lt.Image{Config: ocispec.ImageConfig{Cmd: []string{"sh"}}, Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.Dir("d"), lt.File("d/lower", "l"), lt.Dir("etc"), lt.File("etc/shadow", "secret"))},
		{Tar: lt.Tar(t, lt.Dir("d").Xattr("trusted.overlay.opaque", "y"),
			lt.File("innocent", "").Xattr("trusted.overlay.redirect", "/etc/shadow").Xattr("user.overlay.metacopy", ""))},
	}}.Write(t))
	layers, err := overlay.Unpack(im)
	if err != nil {
		t.Fatal(err)
	}
	diff := filepath.Join(overlay.LayerDir(layers[1].ChainID), "diff")
	buf := make([]byte, 64)
	if n, err := unix.Lgetxattr(filepath.Join(diff, "d"), "trusted.overlay.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("diff/d: escaped opaque xattr %q %v", buf[:n], err)
	}
	if _, err := unix.Lgetxattr(filepath.Join(diff, "d"), "trusted.overlay.opaque", buf); err == nil {
		t.Error("diff/d carries a live trusted.overlay.opaque from the image")
	}
	rootfs := filepath.Join(create(t, im, overlay.Options{ID: testutil.ID("xattr")}), "rootfs")
	if _, err := os.Stat(filepath.Join(rootfs, "d/lower")); err != nil {
		t.Errorf("d/lower hidden: the image's opaque xattr was obeyed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(rootfs, "innocent")); err != nil || len(b) != 0 {
		t.Errorf("innocent reads %q %v: the image's redirect or metacopy was obeyed", b, err)
	}
	if n, err := unix.Lgetxattr(filepath.Join(rootfs, "d"), "trusted.overlay.opaque", buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("merged d shows trusted.overlay.opaque %q %v, want the image's y (unescaped by the kernel)", buf[:n], err)
	}
}
