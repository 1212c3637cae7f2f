//go:build vmtest

// Package vm holds the Go tests that scripts/test-vm runs inside its VM (Debian 12's kernel
// 6.1, cgroup v2 only), compiled there with `go test -c -tags vmtest`. The build tag keeps
// them out of `make test`: they assert what an older kernel does.
package vm

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/testutil"
)

// hasLowerdirPlus says whether this kernel takes overlay's lowerdir+ (Linux ≥ 6.8).
func hasLowerdirPlus(t *testing.T) bool {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	return major > 6 || major == 6 && minor >= 8
}

func run(t *testing.T, name string, args ...string) (string, string) {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, name), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), errb.String()
}

// TestOverlay128Layers mounts an image of 128 layers. Without lowerdir+ (kernel 6.1) the
// overlay tool must fall back to one mount(2) whose option string fits a page only because
// it names the layers by their short l/<SHORT> links; the merged tree must be the layers'
// union, top layer winning, whiteouts obeyed.
func TestOverlay128Layers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	const n = 128
	im := layertest.Image{Name: "test.local/deep", Config: ocispec.ImageConfig{Cmd: []string{"/top"}}}
	for i := 0; i < n; i++ {
		es := []layertest.Entry{
			layertest.File(fmt.Sprintf("l%03d", i), fmt.Sprint(i)),
			layertest.File("top", fmt.Sprint(i)),
		}
		if i == n-1 {
			es = append(es, layertest.Whiteout("l000"))
		}
		im.Layers = append(im.Layers, layertest.Layer{Tar: layertest.Tar(t, es...)})
	}
	img := im.Write(t)
	run(t, "unpack", img)

	id := testutil.ID("deep")
	bundle, trace := run(t, "overlay", "--trace", "--id", id, img, "--", "/top")
	t.Cleanup(func() { exec.Command(testutil.Bin(t, "overlay"), "rm", id).Run() })
	rootfs := filepath.Join(bundle, "rootfs")

	fallback := strings.Contains(trace, "mount(2) with one option string")
	if want := !hasLowerdirPlus(t); fallback != want {
		t.Errorf("fell back to mount(2): %v, want %v on this kernel; trace:\n%s", fallback, want, trace)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	var line string
	for _, l := range strings.Split(string(mi), "\n") {
		if strings.Contains(l, " "+rootfs+" ") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("%s is not a mount point:\n%s", rootfs, mi)
	}
	if fallback && !strings.Contains(line, ":l/") {
		t.Errorf("the mount(2) fallback does not name the layers by their short links: %s", line)
	}
	if got, _ := os.ReadFile(filepath.Join(rootfs, "top")); string(got) != fmt.Sprint(n-1) {
		t.Errorf("/top = %q, want the top layer's %d", got, n-1)
	}
	for i := 1; i < n; i++ {
		p := filepath.Join(rootfs, fmt.Sprintf("l%03d", i))
		if got, err := os.ReadFile(p); err != nil || string(got) != fmt.Sprint(i) {
			t.Fatalf("%s = %q, %v: want layer %d's file", p, got, err, i)
		}
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "l000")); !os.IsNotExist(err) {
		t.Errorf("l000 was whited out by the top layer, yet: %v", err)
	}

	run(t, "overlay", "rm", id)
	mi, _ = os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), " "+rootfs+" ") {
		t.Errorf("%s still mounted after overlay rm", rootfs)
	}
}
