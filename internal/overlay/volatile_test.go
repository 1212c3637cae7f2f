package overlay_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
)

// overlay --volatile (what docker-run --rm passes) mounts with overlayfs' volatile option
// and records it, so a re-run after an unmount mounts the same way: over the marker the
// first volatile mount left, which the kernel alone would refuse to mount over.
func TestOverlayVolatile(t *testing.T) { bothMountPaths(t, testOverlayVolatile) }

func testOverlayVolatile(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, twoLayers(t).Write(t))
	if _, err := overlay.UnpackWith(im, overlay.UnpackOptions{}); err != nil {
		t.Fatal(err)
	}
	id := testutil.ID("ovvol")
	dir := create(t, im, overlay.Options{ID: id, Volatile: true})
	rootfs := filepath.Join(dir, "rootfs")
	if opts := superOptions(t, rootfs); !isVolatile(opts) {
		t.Errorf("overlay options %q: want volatile", opts)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.Annotations[overlay.AnnotationVolatile] != "true" {
		t.Errorf("config.json annotations %v: want %s=true", s.Annotations, overlay.AnnotationVolatile)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "written"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}

	// Unmounted (a reboot), then overlay run again without the flag: the kernel's marker is
	// there, yet the container mounts again, volatile, with what it had written.
	if err := unix.Unmount(rootfs, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "work", "work", "incompat", "volatile")); err != nil {
		t.Fatalf("no marker after a volatile mount (the re-mount below would prove nothing): %v", err)
	}
	if _, err := overlay.Create(im, overlay.Options{ID: id}); err != nil {
		t.Fatalf("re-run after the unmount: %v", err)
	}
	if opts := superOptions(t, rootfs); !isVolatile(opts) {
		t.Errorf("re-mounted with %q: the bundle's volatile option was lost", opts)
	}
	if got, err := os.ReadFile(filepath.Join(rootfs, "written")); err != nil || string(got) != "x" {
		t.Errorf("after the re-mount: written = %q, %v; want x", got, err)
	}
	if err := overlay.Remove(id); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left after overlay rm: %v", dir, err)
	}

	// An overlay --volatile killed after its mount, before config.json (played: unmounted,
	// config.json gone), then run again without the flag: it mounts, not volatile.
	id2 := testutil.ID("ovvol")
	dir2 := create(t, im, overlay.Options{ID: id2, Volatile: true})
	rootfs2 := filepath.Join(dir2, "rootfs")
	if err := unix.Unmount(rootfs2, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir2, "config.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := overlay.Create(im, overlay.Options{ID: id2}); err != nil {
		t.Fatalf("re-run without --volatile of a half-made volatile bundle: %v", err)
	}
	if opts := superOptions(t, rootfs2); isVolatile(opts) {
		t.Errorf("re-run without --volatile mounted %q: want no volatile", opts)
	}
}

// isVolatile: Linux 6.1 shows the option as volatile, kernels with overlayfs' fsync= option
// (6.5 on) as fsync=volatile.
func isVolatile(opts string) bool {
	o := "," + opts + ","
	return strings.Contains(o, ",volatile,") || strings.Contains(o, ",fsync=volatile,")
}
