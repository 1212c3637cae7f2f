package overlay_test

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"encoding/json"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
)

// stackImage is an image of n tiny layers: layer i adds f<i> and rewrites "top".
func stackImage(t *testing.T, n int) lt.Image {
	var ls []lt.Layer
	for i := range n {
		s := strconv.Itoa(i)
		ls = append(ls, lt.Layer{Tar: lt.Tar(t, lt.File("f"+s, s), lt.File("top", s)), MediaType: ocispec.MediaTypeImageLayer})
	}
	return lt.Image{Name: "test.local/stack", Tag: strconv.Itoa(n), Layers: ls, Config: ocispec.ImageConfig{Cmd: []string{"sh"}}}
}

// mountOptions is the super options field of rootfs's mountinfo line.
func mountOptions(t *testing.T, rootfs string) string {
	for _, line := range strings.Split(read(t, "/proc/self/mountinfo"), "\n") {
		if f := strings.Fields(line); len(f) > 4 && f[4] == rootfs {
			return f[len(f)-1]
		}
	}
	t.Fatalf("%s not in mountinfo", rootfs)
	return ""
}

// TestMountStacks mounts images of 1, 3, 128 and 499 layers (500 lower dirs with the init
// layer, the kernel's limit) and fails clearly at 500 layers.
func TestMountStacks(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	// The images share their bottom layers, so the big ones reuse what the small unpacked.
	for _, n := range []int{1, 3, 128, 499, 500} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			im := resolve(t, stackImage(t, n).Write(t))
			if _, err := overlay.Unpack(im); err != nil {
				t.Fatal(err)
			}
			id := testutil.ID("stack")
			if n > 499 {
				_, err := overlay.Create(im, overlay.Options{ID: id})
				if err == nil || !strings.Contains(err.Error(), "overlayfs stacks at most 500") {
					t.Fatalf("want a clear limit error, got %v", err)
				}
				if _, err := os.Stat(filepath.Join(os.Getenv("HARDWAY_ROOT"), "containers", id)); err == nil {
					t.Error("the failed container's dir is left behind")
				}
				return
			}
			dir := create(t, im, overlay.Options{ID: id})
			rootfs := filepath.Join(dir, "rootfs")
			if got := read(t, filepath.Join(rootfs, "top")); got != strconv.Itoa(n-1) {
				t.Errorf("top = %q, want the top layer's %d", got, n-1)
			}
			for _, i := range []int{0, n / 2, n - 1} {
				if got := read(t, filepath.Join(rootfs, "f"+strconv.Itoa(i))); got != strconv.Itoa(i) {
					t.Errorf("f%d = %q", i, got)
				}
			}
			opts := mountOptions(t, rootfs)
			// The kernel lists only what differs from its defaults (index and metacopy are
			// off by default), so: redirects pinned off, index and metacopy not on.
			if !strings.Contains(opts, "redirect_dir=nofollow") || strings.Contains(opts, "index=on") || strings.Contains(opts, "metacopy=on") {
				t.Errorf("mount options %.300s…", opts)
			}
		})
	}
}

// TestLegacyMountAndInitLayer mounts through mount(2) (the fallback for kernels without
// lowerdir+) and checks the init layer and the user lookup in the merged root.
func TestLegacyMountAndInitLayer(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	overlay.ForceLegacyMount(true)
	t.Cleanup(func() { overlay.ForceLegacyMount(false) })
	im := resolve(t, lt.Image{
		Config: ocispec.ImageConfig{User: "web:www", Cmd: []string{"sh"}},
		Layers: []lt.Layer{
			{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/hosts", "image hosts"), lt.File("etc/mtab", "stale"),
				lt.File("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\n"),
				lt.File("etc/group", "root:x:0:\nweb:x:1000:\nwww:x:33:\naudio:x:29:web,other\nvideo:x:44:other\n"))},
			// The top layer points passwd at the host's file: it must be read inside the image.
			{Tar: lt.Tar(t, lt.File("etc/realpasswd", "root:x:0:0:root:/root:/bin/sh\nweb:x:1000:1000:web:/home/web:/bin/sh\n"),
				lt.Symlink("etc/passwd", "/etc/realpasswd"), lt.Symlink("hostetc", "/../../../etc"))},
		},
	}.Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	dir := create(t, im, overlay.Options{ID: testutil.ID("legacy")})
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"proc", "sys", "dev/pts", "dev/shm"} {
		if st, err := os.Stat(filepath.Join(rootfs, d)); err != nil || !st.IsDir() {
			t.Errorf("mount point /%s missing: %v", d, err)
		}
	}
	for _, f := range []string{"etc/hostname", "etc/resolv.conf", "dev/console"} {
		if _, err := os.Stat(filepath.Join(rootfs, f)); err != nil {
			t.Errorf("placeholder /%s missing: %v", f, err)
		}
	}
	if got := read(t, filepath.Join(rootfs, "etc/hosts")); got != "" {
		t.Errorf("/etc/hosts = %q: the init layer's placeholder should hide the image's", got)
	}
	if l, err := os.Readlink(filepath.Join(rootfs, "etc/mtab")); err != nil || l != "/proc/mounts" {
		t.Errorf("/etc/mtab -> %q %v", l, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "init", "proc")); err != nil {
		t.Errorf("no init layer in the bundle: %v", err)
	}
	var spec specs.Spec
	if err := json.Unmarshal([]byte(read(t, filepath.Join(dir, "config.json"))), &spec); err != nil {
		t.Fatal(err)
	}
	u := spec.Process.User
	if u.UID != 1000 || u.GID != 33 || !slices.Equal(u.AdditionalGids, []uint32{29}) {
		t.Errorf("user web:www = %d:%d %v, want 1000:33 [29]", u.UID, u.GID, u.AdditionalGids)
	}
	if !slices.Contains(spec.Process.Env, "HOME=/home/web") {
		t.Errorf("env %q lacks HOME=/home/web", spec.Process.Env)
	}
}

// TestUnknownUserLeavesNothing: a User the image's passwd lacks fails, and the half-made
// container (mount included) is taken down.
func TestUnknownUserLeavesNothing(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	im := resolve(t, lt.Image{Config: ocispec.ImageConfig{User: "nobody", Cmd: []string{"sh"}},
		Layers: []lt.Layer{{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/passwd", "root:x:0:0::/root:/bin/sh\n"))}}}.Write(t))
	if _, err := overlay.Unpack(im); err != nil {
		t.Fatal(err)
	}
	id := testutil.ID("nouser")
	_, err := overlay.Create(im, overlay.Options{ID: id})
	if err == nil || !strings.Contains(err.Error(), "no such user") {
		t.Fatalf("want a no such user error, got %v", err)
	}
	dir := filepath.Join(os.Getenv("HARDWAY_ROOT"), "containers", id)
	if mounted(t, filepath.Join(dir, "rootfs")) {
		t.Error("rootfs still mounted")
	}
	if _, err := os.Stat(dir); err == nil {
		t.Error("container dir left behind")
	}
}
