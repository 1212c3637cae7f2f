package overlay_test

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/layer"
	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
	"github.com/hardway/hardway/internal/trace"
)

// twoLayers is a 2-layer image: the top layer deletes etc/a and makes dir/ opaque.
func twoLayers(t *testing.T) lt.Image {
	return lt.Image{
		Config: ocispec.ImageConfig{
			Entrypoint: []string{"/bin/entry"},
			Cmd:        []string{"serve", "--port", "80"},
			Env:        []string{"FOO=bar"},
			WorkingDir: "/srv",
		},
		Layers: []lt.Layer{
			{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/a", "a"), lt.File("etc/b", "b"),
				lt.Dir("dir"), lt.File("dir/x", "x"), lt.File("dir/y", "y"))},
			{Tar: lt.Tar(t, lt.Whiteout("etc/a"), lt.Dir("dir"), lt.Opaque("dir"), lt.File("dir/z", "z")),
				MediaType: ocispec.MediaTypeImageLayerZstd},
		},
	}
}

func resolve(t *testing.T, handle string) *layout.Image {
	t.Helper()
	im, err := layout.Resolve(handle)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func read(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var shortRE = regexp.MustCompile(`^[A-Z2-7]{26}$`)

func TestUnpackTwoLayers(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, twoLayers(t).Write(t))

	// A temp dir left by an interrupted unpack is cleaned on the next run.
	stale := filepath.Join(state.OverlayDir(), ".tmp-0123456789ab-crashed")
	if err := os.MkdirAll(filepath.Join(stale, "diff"), 0o755); err != nil {
		t.Fatal(err)
	}

	layers, err := overlay.Unpack(im)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("stale temp dir not cleaned: %v", err)
	}
	chains := layout.ChainIDs(im.Config.RootFS.DiffIDs)
	if len(layers) != 2 {
		t.Fatalf("%d layers", len(layers))
	}
	for i, l := range layers {
		dir := filepath.Join(state.OverlayDir(), chains[i].Encoded())
		if l.ChainID != chains[i] {
			t.Errorf("layer %d chain id %s, want %s", i, l.ChainID, chains[i])
		}
		if link := read(t, filepath.Join(dir, "link")); link != l.Link || !shortRE.MatchString(link) {
			t.Errorf("layer %d link %q (want 26 uppercase base32 chars)", i, link)
		}
		target, err := os.Readlink(filepath.Join(state.OverlayDir(), "l", l.Link))
		if err != nil || target != "../"+chains[i].Encoded()+"/diff" {
			t.Errorf("l/%s -> %q, %v", l.Link, target, err)
		}
	}
	bottom := filepath.Join(state.OverlayDir(), chains[0].Encoded())
	top := filepath.Join(state.OverlayDir(), chains[1].Encoded())
	if _, err := os.Stat(filepath.Join(bottom, "lower")); !errors.Is(err, fs.ErrNotExist) {
		t.Error("the bottom layer has a lower file")
	}
	if got := read(t, filepath.Join(top, "lower")); got != "l/"+layers[0].Link {
		t.Errorf("top lower = %q, want l/%s", got, layers[0].Link)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(top, "diff/etc/a"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		t.Errorf("top diff/etc/a is not a 0/0 whiteout: %v mode %o", err, st.Mode)
	}
	buf := make([]byte, 4)
	if n, err := unix.Lgetxattr(filepath.Join(top, "diff/dir"), layer.OpaqueXattr, buf); err != nil || string(buf[:n]) != "y" {
		t.Errorf("top diff/dir not opaque: %q %v", buf[:n], err)
	}
	if got := read(t, filepath.Join(bottom, "diff/etc/a")); got != "a" {
		t.Errorf("bottom etc/a = %q", got)
	}

	// Again: the layers are reused, with the same short names.
	again, err := overlay.Unpack(im)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, layers) {
		t.Errorf("second unpack %v, first %v", again, layers)
	}
	// A second image sharing the bottom layer reuses it.
	im2 := resolve(t, lt.Image{Name: "test.local/second", Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/a", "a"), lt.File("etc/b", "b"),
			lt.Dir("dir"), lt.File("dir/x", "x"), lt.File("dir/y", "y"))},
		{Tar: lt.Tar(t, lt.File("other", "o"))},
	}}.Write(t))
	l2, err := overlay.Unpack(im2)
	if err != nil {
		t.Fatal(err)
	}
	if l2[0] != layers[0] {
		t.Errorf("shared bottom layer not reused: %v vs %v", l2[0], layers[0])
	}
}

func TestUnpackDiffIDMismatch(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	img := twoLayers(t)
	img.Layers[1].DiffID = digest.FromString("not the layer")
	im := resolve(t, img.Write(t))
	_, err := overlay.Unpack(im)
	if err == nil || !strings.Contains(err.Error(), "diff_id") {
		t.Fatalf("want a diff_id error, got %v", err)
	}
	chains := layout.ChainIDs(im.Config.RootFS.DiffIDs)
	if _, err := os.Stat(overlay.LayerDir(chains[1])); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the bad layer's dir exists: %v", err)
	}
	if _, err := os.Stat(overlay.LayerDir(chains[0])); err != nil {
		t.Errorf("the good bottom layer is missing: %v", err)
	}
	ents, _ := os.ReadDir(state.OverlayDir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temp dir %s left behind", e.Name())
		}
	}
}

func mounted(t *testing.T, dir string) bool {
	t.Helper()
	m, err := mountinfo.Mounted(dir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func mountCount(t *testing.T, dir string) int {
	n := 0
	for _, line := range strings.Split(read(t, "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == dir {
			n++
		}
	}
	return n
}

func create(t *testing.T, im *layout.Image, o overlay.Options) string {
	t.Helper()
	t.Cleanup(func() {
		if err := overlay.Remove(o.ID); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	dir, err := overlay.Create(im, o)
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOverlayCreateAndRemove(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	handle := twoLayers(t).Write(t)
	im := resolve(t, handle)
	id := testutil.ID("ov")

	if _, err := overlay.Create(im, overlay.Options{ID: id}); err == nil ||
		!strings.Contains(err.Error(), "is not unpacked") || !strings.Contains(err.Error(), "run: unpack "+handle) {
		t.Fatalf("before unpack: want a not-unpacked error with a hint, got %v", err)
	}
	layers, err := overlay.Unpack(im)
	if err != nil {
		t.Fatal(err)
	}
	dir := create(t, im, overlay.Options{ID: id})
	if dir != state.ContainerDir(id) {
		t.Errorf("bundle %s, want %s", dir, state.ContainerDir(id))
	}
	rootfs := filepath.Join(dir, "rootfs")
	if !mounted(t, rootfs) {
		t.Fatal("rootfs is not mounted")
	}
	// The merged view: etc/a deleted by the whiteout, dir/ holds only the top layer's z.
	if _, err := os.Lstat(filepath.Join(rootfs, "etc/a")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("etc/a visible in the merged root: %v", err)
	}
	if got := read(t, filepath.Join(rootfs, "etc/b")); got != "b" {
		t.Errorf("etc/b = %q", got)
	}
	ents, _ := os.ReadDir(filepath.Join(rootfs, "dir"))
	if len(ents) != 1 || ents[0].Name() != "z" {
		t.Errorf("opaque dir shows %v, want only z", ents)
	}
	// A write lands in upper/, the layer stays as it was.
	if err := os.WriteFile(filepath.Join(rootfs, "etc/b"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := read(t, filepath.Join(dir, "upper/etc/b")); got != "changed" {
		t.Errorf("upper/etc/b = %q", got)
	}
	if got := read(t, filepath.Join(overlay.LayerDir(layers[0].ChainID), "diff/etc/b")); got != "b" {
		t.Errorf("layer diff changed: etc/b = %q", got)
	}

	// The bundle files.
	if got := read(t, filepath.Join(dir, "hostname")); got != id+"\n" {
		t.Errorf("hostname %q", got)
	}
	if got := read(t, filepath.Join(dir, "hosts")); !strings.Contains(got, "127.0.0.1\tlocalhost") || !strings.Contains(got, id) {
		t.Errorf("hosts:\n%s", got)
	}
	if got := read(t, filepath.Join(dir, "resolv.conf")); strings.Contains(got, "nameserver 127.") {
		t.Errorf("resolv.conf keeps a local nameserver:\n%s", got)
	}
	var spec specs.Spec
	if err := json.Unmarshal([]byte(read(t, filepath.Join(dir, "config.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	if want := []string{"/bin/entry", "serve", "--port", "80"}; !slices.Equal(spec.Process.Args, want) {
		t.Errorf("args %q, want %q", spec.Process.Args, want)
	}
	if spec.Process.Cwd != "/srv" || spec.Hostname != id || spec.Root.Path != "rootfs" {
		t.Errorf("cwd %q hostname %q root %q", spec.Process.Cwd, spec.Hostname, spec.Root.Path)
	}
	for _, e := range []string{"FOO=bar", "HOSTNAME=" + id, "PATH="} {
		if !slices.ContainsFunc(spec.Process.Env, func(s string) bool { return strings.HasPrefix(s, e) }) {
			t.Errorf("env %q lacks %s", spec.Process.Env, e)
		}
	}
	if spec.Linux.CgroupsPath != state.CgroupPath(id) || spec.Annotations["hardway.image"] != im.Handle() {
		t.Errorf("cgroupsPath %q annotations %v", spec.Linux.CgroupsPath, spec.Annotations)
	}

	// Again with the same image: a no-op, still one mount.
	again, err := overlay.Create(im, overlay.Options{ID: id})
	if err != nil || again != dir {
		t.Fatalf("second create: %s %v", again, err)
	}
	if n := mountCount(t, rootfs); n != 1 {
		t.Errorf("rootfs mounted %d times", n)
	}
	// Same id, another image: refused.
	other := resolve(t, lt.Image{Name: "test.local/other", Layers: []lt.Layer{{Tar: lt.Tar(t, lt.File("f", "f"))}},
		Config: ocispec.ImageConfig{Cmd: []string{"sh"}}}.Write(t))
	if _, err := overlay.Unpack(other); err != nil {
		t.Fatal(err)
	}
	if _, err := overlay.Create(other, overlay.Options{ID: id}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("same id, other image: %v", err)
	}

	// rm: no mount, no dir; twice is fine.
	if err := overlay.Remove(id); err != nil {
		t.Fatal(err)
	}
	if mountCount(t, rootfs) != 0 {
		t.Error("rootfs still in mountinfo after rm")
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("container dir still there: %v", err)
	}
	if err := overlay.Remove(id); err != nil {
		t.Errorf("second rm: %v", err)
	}
	if _, err := os.Stat(overlay.LayerDir(layers[1].ChainID)); err != nil {
		t.Errorf("rm removed a layer: %v", err)
	}
}

func TestOverlayCmdOverride(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, twoLayers(t).Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	id := testutil.ID("ov")
	dir := create(t, im, overlay.Options{ID: id, Hostname: "web", Cmd: []string{"sh", "-c", "true"}, Tty: true})
	var spec specs.Spec
	json.Unmarshal([]byte(read(t, filepath.Join(dir, "config.json"))), &spec)
	if want := []string{"/bin/entry", "sh", "-c", "true"}; !slices.Equal(spec.Process.Args, want) {
		t.Errorf("args %q, want %q (CMD replaces Cmd, Entrypoint stays)", spec.Process.Args, want)
	}
	if !spec.Process.Terminal || !slices.Contains(spec.Process.Env, "TERM=xterm") || spec.Hostname != "web" {
		t.Errorf("terminal %v env %q hostname %q", spec.Process.Terminal, spec.Process.Env, spec.Hostname)
	}
	if got := read(t, filepath.Join(dir, "hostname")); got != "web\n" {
		t.Errorf("hostname file %q", got)
	}
}

// TestRuncRunsBundle checks the bundle against a real runtime: runc runs a static busybox
// from a single-layer image.
func TestRuncRunsBundle(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	testutil.CgroupParent(t)
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("needs busybox-static: ", err)
	}
	im := resolve(t, lt.Image{
		Config: ocispec.ImageConfig{Cmd: []string{"/bin/sh", "-c", "echo hello from $(hostname) in $(pwd); cat /etc/hostname"}, WorkingDir: "/tmp"},
		Layers: []lt.Layer{{Tar: lt.Tar(t, lt.Dir("bin"), lt.File("bin/busybox", string(bb)).Mode(0o755),
			lt.Symlink("bin/sh", "busybox"), lt.Symlink("bin/hostname", "busybox"), lt.Symlink("bin/cat", "busybox"),
			lt.Dir("tmp").Mode(0o1777), lt.Dir("etc"))}},
	}.Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	id := testutil.ID("runc")
	dir := create(t, im, overlay.Options{ID: id})
	runcRoot := t.TempDir()
	t.Cleanup(func() { exec.Command("runc", "--root", runcRoot, "delete", "-f", id).Run() })
	cmd := exec.Command("runc", "--root", runcRoot, "run", "-b", dir, id)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("runc run: %v\n%s", err, out)
	}
	if want := "hello from " + id + " in /tmp\n" + id + "\n"; string(out) != want {
		t.Errorf("runc output %q, want %q", out, want)
	}
}

// TestUnpackDockerMediaTypesAndTrace unpacks layers under Docker's media type names
// (gzip and plain tar) and checks that --trace narrates verification and translation.
func TestUnpackDockerMediaTypesAndTrace(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	var buf strings.Builder
	trace.Setup("unpack", true)
	trace.SetOutput(&buf)
	t.Cleanup(func() { trace.SetOutput(os.Stderr) })
	im := resolve(t, lt.Image{Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/a", "a")), MediaType: layout.MediaTypeDockerLayerGzip},
		{Tar: lt.Tar(t, lt.Whiteout("etc/a"), lt.Opaque("var")), MediaType: layout.MediaTypeDockerLayerTar},
	}}.Write(t))
	layers, err := overlay.Unpack(im)
	if err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Lstat(filepath.Join(overlay.LayerDir(layers[1].ChainID), "diff/etc/a"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFCHR {
		t.Errorf("whiteout from an uncompressed Docker layer: %v", err)
	}
	out := buf.String()
	for _, want := range []string{"blob digest verified: " + im.Manifest.Layers[0].Digest.String(),
		"diff_id verified: " + im.Config.RootFS.DiffIDs[1].String(), "whiteout /etc/a", "opaque directory /var",
		"mknod", "setfattr -n trusted.overlay.opaque", "mv ", "ln -s "} {
		if !strings.Contains(out, want) {
			t.Errorf("trace lacks %q:\n%s", want, out)
		}
	}
}
