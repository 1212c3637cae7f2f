package registry

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// progress draws one bar per blob on a terminal, redrawing them in place a few times a
// second. A nil *progress (no terminal) draws nothing.
type progress struct {
	w     io.Writer
	mu    sync.Mutex
	bars  []*bar
	drawn int
	stop  chan struct{}
	done  chan struct{}
}

type bar struct {
	p     *progress
	name  string
	total int64
	got   int64
	state string
}

func newProgress(w io.Writer) *progress {
	if w == nil {
		return nil
	}
	p := &progress{w: w, stop: make(chan struct{}), done: make(chan struct{})}
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

func (p *progress) add(b *Blob) *bar {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	br := &bar{p: p, name: short(b.Digest) + " " + b.Kind, total: b.Size}
	p.bars = append(p.bars, br)
	return br
}

func (p *progress) finish() {
	if p == nil {
		return
	}
	close(p.stop)
	<-p.done
}

// draw moves the cursor up over the last drawing and writes every bar again.
func (p *progress) draw() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sb strings.Builder
	if p.drawn > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", p.drawn)
	}
	for _, b := range p.bars {
		sb.WriteString("\x1b[2K" + b.line() + "\n")
	}
	p.drawn = len(p.bars)
	io.WriteString(p.w, sb.String())
}

func (b *bar) line() string {
	if b.state != "" {
		return fmt.Sprintf("%s: %s (%s)", b.name, b.state, humanSize(b.total))
	}
	const width = 30
	frac := 0.0
	if b.total > 0 {
		frac = float64(b.got) / float64(b.total)
	}
	fill := int(frac * width)
	if fill > width {
		fill = width
	}
	return fmt.Sprintf("%s [%s%s] %3.0f%% of %s", b.name, strings.Repeat("=", fill), strings.Repeat(" ", width-fill), frac*100, humanSize(b.total))
}

func (b *bar) Write(x []byte) (int, error) {
	b.add(int64(len(x)))
	return len(x), nil
}

func (b *bar) add(n int64) {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	b.got += n
	b.p.mu.Unlock()
}

func (b *bar) set(state string) {
	if b == nil {
		return
	}
	b.p.mu.Lock()
	b.state = state
	b.p.mu.Unlock()
}
