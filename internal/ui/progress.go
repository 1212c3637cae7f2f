// Package ui draws what the tools show a person at a terminal: one progress bar per blob or
// layer, redrawn in place on stderr. pull and unpack share it.
package ui

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/hardway/hardway/internal/trace"
)

// Output is where progress bars go: w itself when it is a terminal and --trace is off (the
// trace is the narration then, and a bar would tear its lines), else nil: no bars at all.
func Output(w io.Writer) io.Writer {
	f, ok := w.(*os.File)
	if !ok || f == nil || !term.IsTerminal(int(f.Fd())) || trace.Enabled() {
		return nil
	}
	return w
}

// Progress draws one bar per item, redrawing them all in place a few times a second. A nil
// *Progress (no terminal) draws nothing, and so do the nil *Bar values it hands out.
type Progress struct {
	w     io.Writer
	color bool
	mu    sync.Mutex
	bars  []*Bar
	drawn int
	stop  chan struct{}
	done  chan struct{}
}

// Bar is one line: NAME, then bytes done of total, or a final state such as "done".
type Bar struct {
	p     *Progress
	name  string
	total int64
	got   int64
	state string
}

// New starts drawing on w, which it treats as a terminal (callers pass Output(os.Stderr));
// nil w gives a nil *Progress. Colour follows the NO_COLOR convention (no-color.org).
func New(w io.Writer) *Progress {
	if w == nil {
		return nil
	}
	p := &Progress{w: w, color: os.Getenv("NO_COLOR") == "", stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(150 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				p.draw()
				return
			case <-t.C:
				p.draw()
			}
		}
	}()
	return p
}

// Add appends a bar for name, total bytes long.
func (p *Progress) Add(name string, total int64) *Bar {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	b := &Bar{p: p, name: name, total: total}
	p.bars = append(p.bars, b)
	return b
}

// Finish draws the bars one last time and stops.
func (p *Progress) Finish() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}

// draw moves the cursor up over the last drawing and writes every bar again.
func (p *Progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", p.drawn)
	}
	for _, b := range p.bars {
		sb.WriteString("\x1b[2K" + b.line(p.color) + "\n")
	}
	p.drawn = len(p.bars)
	io.WriteString(p.w, sb.String())
}

func (b *Bar) line(color bool) string {
	if b.state != "" {
		state := b.state
		if color {
			code := "32" // green
			if state == "failed" {
				code = "31" // red
			}
			state = "\x1b[" + code + "m" + state + "\x1b[0m"
		}
		return fmt.Sprintf("%s: %s (%s)", b.name, state, HumanSize(b.total))
	}
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = float64(b.got) / float64(b.total)
	}
	fill := min(int(frac*width), width)
	return fmt.Sprintf("%s [%s%s] %3.0f%% of %s", b.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, HumanSize(b.total))
}

// Write counts len(x) bytes done, so a Bar can sit in an io.MultiWriter or io.TeeReader.
func (b *Bar) Write(x []byte) (int, error) {
	b.Add(int64(len(x)))
	return len(x), nil
}

// Add counts n more bytes done (negative: a restart threw some away).
func (b *Bar) Add(n int64) {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	b.got += n
	b.p.mu.Unlock()
}

// Set replaces the bar by a final state, e.g. "done", "failed", "already exists".
func (b *Bar) Set(state string) {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	b.state = state
	b.p.mu.Unlock()
}

// HumanSize writes n bytes the way a person reads them: 512 B, 1.5 KiB, 3.2 MiB.
func HumanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
