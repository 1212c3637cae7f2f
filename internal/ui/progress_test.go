package ui_test

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/trace"
	"github.com/hardway/hardway/internal/ui"
)

// lines splits the output at each line's erase code: the last n are what the terminal
// shows after the last redraw of n bars.
func lines(out string) []string {
	var ls []string
	for _, f := range strings.Split(out, "\x1b[2K")[1:] {
		ls = append(ls, strings.TrimSuffix(strings.SplitN(f, "\x1b[", 2)[0], "\n"))
	}
	return ls
}

// TestProgressRenders: forced onto a buffer, bars show bytes done of total, then their
// final state; NO_COLOR leaves no colour codes.
func TestProgressRenders(t *testing.T) {
	t.Setenv("NO_COLOR", "1")
	var buf bytes.Buffer
	p := ui.New(&buf)
	a := p.Add("sha256:0123456789ab layer", 2048)
	b := p.Add("sha256:ba9876543210 layer", 1000)
	io.WriteString(a, strings.Repeat("x", 1024))
	b.Add(1000)
	b.Set("done")
	p.Finish()
	out := buf.String()
	ls := lines(out)
	if len(ls) < 2 {
		t.Fatalf("no bars drawn: %q", out)
	}
	last := ls[len(ls)-2:]
	if want := "sha256:0123456789ab layer [" + strings.Repeat("=", 15) + strings.Repeat(" ", 15) + "]  50% of 2.0 KiB"; last[0] != want {
		t.Errorf("bar line\n got %q\nwant %q", last[0], want)
	}
	if want := "sha256:ba9876543210 layer: done (1000 B)"; last[1] != want {
		t.Errorf("state line\n got %q\nwant %q", last[1], want)
	}
	if strings.Contains(out, "\x1b[3") {
		t.Errorf("colour codes despite NO_COLOR: %q", out)
	}
}

// TestProgressColor: without NO_COLOR a final state is coloured.
func TestProgressColor(t *testing.T) {
	t.Setenv("NO_COLOR", "")
	var buf bytes.Buffer
	p := ui.New(&buf)
	p.Add("x", 1).Set("failed")
	p.Finish()
	if !strings.Contains(buf.String(), "\x1b[31mfailed\x1b[0m") {
		t.Errorf("failed is not red: %q", buf.String())
	}
}

// TestNoTerminalNoOutput: a file, a pipe or a buffer is not a terminal: no bars, nothing
// written, and the nil values are safe to use.
func TestNoTerminalNoOutput(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	for name, out := range map[string]io.Writer{"file": f, "pipe": w, "buffer": &bytes.Buffer{}} {
		if got := ui.Output(out); got != nil {
			t.Errorf("%s: Output = %v, want nil (not a terminal)", name, got)
		}
	}
	p := ui.New(ui.Output(f))
	bar := p.Add("layer", 10)
	bar.Write([]byte("12345"))
	bar.Set("done")
	p.Finish()
	if st, _ := f.Stat(); st.Size() != 0 {
		t.Errorf("%d bytes written to a non-terminal", st.Size())
	}
}

// TestTraceNoBars: with --trace the narration owns stderr, so a terminal gets no bars.
func TestTraceNoBars(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatalf("open a pseudo-terminal: %v", err)
	}
	defer tty.Close()
	if ui.Output(tty) == nil {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	trace.SetEnabled(true)
	t.Cleanup(func() { trace.SetEnabled(false) })
	if ui.Output(tty) != nil {
		t.Error("bars on a terminal despite --trace")
	}
}
