package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	lt "github.com/hardway/hardway/internal/layer/layertest"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

func unpack(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, "unpack"), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// tmpDirs lists the temporary dirs of extractions in the store.
func tmpDirs(t *testing.T) []string {
	ents, err := os.ReadDir(state.OverlayDir())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			out = append(out, filepath.Join(state.OverlayDir(), e.Name()))
		}
	}
	return out
}

// TestKillDuringUnpack kills unpack -9 while it extracts a big layer: the store then holds
// no dir that looks complete for that layer, and the next unpack finishes the job.
func TestKillDuringUnpack(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	const files = 1500
	body := strings.Repeat("0123456789abcdef", 1024) // 16 KiB
	var es []lt.Entry
	for i := range files {
		es = append(es, lt.File("data/f"+strconv.Itoa(i), body))
	}
	handle := lt.Image{Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.Dir("etc"), lt.File("etc/small", "s"))},
		{Tar: lt.Tar(t, es...), MediaType: ocispec.MediaTypeImageLayer},
	}}.Write(t)
	im, err := layout.Resolve(handle)
	if err != nil {
		t.Fatal(err)
	}
	big := overlay.LayerDir(layout.ChainIDs(im.Config.RootFS.DiffIDs)[1])

	cmd := exec.Command(testutil.Bin(t, "unpack"), "--jobs", "1", handle)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	killed := false
	for !killed {
		for _, d := range tmpDirs(t) {
			if ents, _ := os.ReadDir(filepath.Join(d, "diff", "data")); len(ents) >= 50 {
				cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		if cmd.ProcessState != nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("unpack ended (%v) before it could be killed mid-layer", err)
	}
	if _, err := os.Stat(big); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("after kill -9 the half-extracted layer is in place at %s: %v", big, err)
	}
	if len(tmpDirs(t)) == 0 {
		t.Error("no temporary dir left by the killed unpack: was it killed mid-layer?")
	}

	out, errs, err := unpack(t, handle)
	if err != nil || strings.TrimSpace(out) != handle {
		t.Fatalf("unpack after kill: %v: %q\n%s", err, out, errs)
	}
	ents, err := os.ReadDir(filepath.Join(big, "diff", "data"))
	if err != nil || len(ents) != files {
		t.Fatalf("re-run extracted %d files, want %d: %v", len(ents), files, err)
	}
	if left := tmpDirs(t); len(left) != 0 {
		t.Errorf("temporary dirs left after the re-run: %v", left)
	}
}

// TestUnpackBombCLI: past --max-size the tool fails with one line naming the cap and its
// knob, and the store holds nothing of the layer.
func TestUnpackBombCLI(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	handle := lt.Image{Layers: []lt.Layer{
		{Tar: lt.Tar(t, lt.File("bomb", strings.Repeat("\x00", 8<<20)))},
	}}.Write(t)
	out, errs, err := unpack(t, "--max-size", "1M", handle)
	if err == nil || out != "" {
		t.Fatalf("want a failure, got %v %q", err, out)
	}
	if lines := strings.Split(strings.TrimSpace(errs), "\n"); len(lines) != 1 ||
		!strings.HasPrefix(lines[0], "unpack: error: ") || !strings.Contains(errs, "HARDWAY_UNPACK_MAX_SIZE") {
		t.Errorf("stderr is not one error line naming the cap:\n%s", errs)
	}
	ents, _ := os.ReadDir(state.OverlayDir())
	for _, e := range ents {
		if e.Name() != "l" {
			t.Errorf("left in the store: %s", e.Name())
		}
	}
	if _, _, err := unpack(t, "--max-size", "lots", handle); err == nil {
		t.Error("--max-size lots accepted")
	}
	// With room enough it goes through.
	if _, errs, err := unpack(t, "--max-size", "16M", handle); err != nil {
		t.Errorf("16M: %v\n%s", err, errs)
	}
}
