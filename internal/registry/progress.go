package registry

import (
	"io"

	"github.com/hardway/hardway/internal/ui"
)

// progress adapts the shared terminal bars of internal/ui to pull's blobs. A nil *progress
// (no terminal) draws nothing.
type progress ui.Progress

// bar is one blob's line; a nil *bar counts nothing.
type bar ui.Bar

func newProgress(w io.Writer) *progress { return (*progress)(ui.New(w)) }

func (p *progress) add(b *Blob) *bar {
	return (*bar)((*ui.Progress)(p).Add(short(b.Digest)+" "+b.Kind, b.Size))
}

func (p *progress) finish() { (*ui.Progress)(p).Finish() }

func (b *bar) Write(x []byte) (int, error) { return (*ui.Bar)(b).Write(x) }
func (b *bar) add(n int64)                 { (*ui.Bar)(b).Add(n) }
func (b *bar) set(state string)            { (*ui.Bar)(b).Set(state) }
