package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/testutil"
)

func getxattr(p, name string) string {
	buf := make([]byte, 16)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(buf[:n])
}

// TestUnpackUserXattr: --userxattr (or HARDWAY_UNPACK_USERXATTR=1) stores the layers apart,
// marked, with user.overlay.opaque; a plain unpack of the same image gets its own
// trusted.-form copy. Stderr stays empty: it is not a terminal, so no progress bars.
func TestUnpackUserXattr(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	handle := lt.Image{Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.File("var/old", "o"))},
		{Tar: lt.Tar(t, lt.Dir("var"), lt.Opaque("var"), lt.File("var/new", "n"))},
	}}.Write(t)
	im, err := layout.Resolve(handle)
	if err != nil {
		t.Fatal(err)
	}
	chain := layout.ChainIDs(im.Config.RootFS.DiffIDs)[1]

	out, errs, err := unpack(t, "--userxattr", handle)
	if err != nil || strings.TrimSpace(out) != handle || errs != "" {
		t.Fatalf("unpack --userxattr: %v: %q, stderr %q", err, out, errs)
	}
	user := overlay.LayerDirFor(chain, true)
	if v := getxattr(filepath.Join(user, "diff/var"), "user.overlay.opaque"); v != "y" {
		t.Errorf("user form: user.overlay.opaque = %q, want y", v)
	}
	if _, err := os.Stat(filepath.Join(user, "userxattr")); err != nil {
		t.Errorf("user form: no marker file beside diff/: %v", err)
	}
	if _, err := os.Stat(overlay.LayerDir(chain)); err == nil {
		t.Errorf("unpack --userxattr wrote the trusted.-form dir %s too", overlay.LayerDir(chain))
	}
	layers, err := overlay.LayersFor(im, true)
	if err != nil || len(layers) != 2 || !layers[1].UserXattr {
		t.Fatalf("LayersFor(user): %+v, %v", layers, err)
	}
	if _, err := overlay.Layers(im); err == nil {
		t.Error("the trusted.-form layers are reported unpacked though only the user form is")
	}

	// The plain form: its own copy with the trusted. xattr; the env var picks the user form.
	if out, errs, err := unpack(t, handle); err != nil || errs != "" {
		t.Fatalf("unpack: %v: %q, stderr %q", err, out, errs)
	}
	plain := overlay.LayerDir(chain)
	if v := getxattr(filepath.Join(plain, "diff/var"), "trusted.overlay.opaque"); v != "y" {
		t.Errorf("trusted form: trusted.overlay.opaque = %q, want y", v)
	}
	if _, err := os.Stat(filepath.Join(plain, "userxattr")); err == nil {
		t.Error("trusted form carries the userxattr marker")
	}
	cmd := exec.Command(testutil.Bin(t, "unpack"), "--trace", handle)
	cmd.Env = append(os.Environ(), "HARDWAY_UNPACK_USERXATTR=1")
	b, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(b), "already unpacked in "+user) {
		t.Errorf("HARDWAY_UNPACK_USERXATTR=1 did not reuse the user-form layers: %v\n%s", err, b)
	}
}

// TestUnpackProgressOnTerminal: on a terminal (script(1) gives unpack one) each new layer
// gets a bar that ends "done"; with --trace the narration replaces the bars.
func TestUnpackProgressOnTerminal(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	handle := lt.Image{Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.File("a", "a"))},
		{Tar: lt.Tar(t, lt.File("b", "b"))},
	}}.Write(t)
	im, err := layout.Resolve(handle)
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		t.Helper()
		line := testutil.Bin(t, "unpack") + " " + strings.Join(args, " ") + " " + handle + " >/dev/null"
		cmd := exec.Command("script", "-qec", line, "/dev/null")
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", line, err, b)
		}
		return string(b)
	}
	out := run("--userxattr")
	for _, l := range im.Manifest.Layers {
		if want := l.Digest.String()[:19] + " layer: done"; !strings.Contains(out, want) {
			t.Errorf("no %q on the terminal:\n%q", want, out)
		}
	}
	out = run("--trace")
	if strings.Contains(out, "\x1b[2K") || !strings.Contains(out, "extract layer") {
		t.Errorf("with --trace want the narration and no bars:\n%q", out)
	}
}
