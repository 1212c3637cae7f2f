package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/trace"
)

var timeAfter = time.After

// parallelBlobs bounds the concurrent blob downloads.
const parallelBlobs = 3

// progressResetsBudget is how much a broken download must have brought for the break not
// to count against the retries (containers/image's rule): a slow but moving transfer goes
// on, a drip or a flapping server runs out of tries.
const progressResetsBudget = 1 << 20

// copyBufs are the download buffers: bigger than io.Copy's 32 KiB, for fewer writes.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// fetchBlobs brings every blob into the store, a few at a time, skipping those already
// there and verified. The first failure stops the rest.
func (c *client) fetchBlobs(ctx context.Context, blobs []Blob, prog *progress) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer prog.finish()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		sem      = make(chan struct{}, parallelBlobs)
	)
	for i := range blobs {
		b := &blobs[i]
		if err := b.Digest.Validate(); err != nil {
			return fmt.Errorf("%s %q: %w", b.Kind, b.Digest, err)
		}
		bar := prog.add(b)
		if layout.HasBlob(b.Digest, b.Size) {
			trace.Step(fmt.Sprintf("%s %s is already in the store and verifies: skip it", b.Kind, short(b.Digest)),
				trace.Cmd("sha256sum", layout.BlobPath(b.Digest)))
			bar.set("already exists")
			continue
		}
		sem <- struct{}{} // taken here, in order: the config first, then the layers
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			err := c.fetchBlob(ctx, b, bar)
			if err != nil {
				bar.set("failed")
				mu.Lock()
				if firstErr == nil {
					firstErr = err
					cancel()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// fatalError is a download failure that another try would not fix.
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

// fetchBlob downloads one blob into its partial file, going on with Range after a broken
// connection (or from where a killed pull left it), and renames it into place once size and
// digest are right.
func (c *client) fetchBlob(ctx context.Context, b *Blob, bar *bar) error {
	return c.fetchBlobOnce(ctx, b, bar, true)
}

// fetchBlobOnce is fetchBlob; mayRestart lets a blob whose resumed download does not verify
// be taken once more from the start.
func (c *client) fetchBlobOnce(ctx context.Context, b *Blob, bar *bar, mayRestart bool) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	url := c.base + "/v2/" + c.repo + "/blobs/" + b.Digest.String()
	p, done, err := layout.OpenPartial(ctx, b.Digest, b.Size)
	if err != nil {
		return fmt.Errorf("%s %s: %w", b.Kind, short(b.Digest), err)
	}
	if done {
		trace.Step(fmt.Sprintf("%s %s was finished by another pull meanwhile: skip it", b.Kind, short(b.Digest)))
		bar.set("already exists")
		return nil
	}
	committed := false
	defer func() {
		switch {
		case committed:
		case p.Size() == 0:
			p.Discard() // nothing worth keeping
		default:
			p.Close() // keep the bytes for the next pull to go on from
		}
	}()
	resumed := p.Size()
	if resumed > 0 {
		trace.Step(fmt.Sprintf("an earlier pull left %d of the %d bytes of %s %s: hash them again and go on from there",
			p.Size(), b.Size, b.Kind, short(b.Digest)), trace.Cmd("sha256sum", layout.PartialPath(b.Digest)))
	}
	bar.add(p.Size())
	failures := 0
	for p.Size() < b.Size { // an earlier pull may have brought every byte and died before the rename
		got, err := c.fetchRange(ctx, url, b, p, bar)
		if err == nil {
			break
		}
		var fe *fatalError
		if errors.As(err, &fe) || ctx.Err() != nil {
			return fmt.Errorf("%s %s: %w", b.Kind, short(b.Digest), err)
		}
		if got < progressResetsBudget {
			failures++
		}
		if failures > c.retries {
			return fmt.Errorf("%s %s: %w (gave up after %d tries)", b.Kind, short(b.Digest), err, failures)
		}
		trace.Step(fmt.Sprintf("the download of %s broke at byte %d of %d (%v): go on from there", short(b.Digest), p.Size(), b.Size, err))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-timeAfter(c.backoff(failures)):
		}
	}
	if err := p.Commit(b.Size); err != nil {
		committed = true // Commit has removed the wrong bytes
		var ve *layout.VerifyError
		if errors.As(err, &ve) && resumed > 0 && mayRestart {
			// The bytes an earlier pull left may be what failed: a power loss can leave
			// zeros in a file nobody synced. Commit removed them; one more try from byte 0.
			trace.Step(fmt.Sprintf("%s %s does not verify (%v), and %d of its bytes came from an earlier pull: throw them away and download it from the start",
				b.Kind, short(b.Digest), ve, resumed))
			bar.add(-b.Size)
			return c.fetchBlobOnce(ctx, b, bar, false)
		}
		if errors.As(err, &ve) {
			return cli.Errorf("the registry's copy is damaged or it lied about the size; nothing was stored",
				"%s %s does not verify: %v", b.Kind, short(b.Digest), err)
		}
		return fmt.Errorf("%s %s: %w", b.Kind, short(b.Digest), err)
	}
	committed = true
	trace.Step(fmt.Sprintf("verified: %d bytes hashing to %s; rename into place", b.Size, short(b.Digest)),
		"echo "+trace.Quote(b.Digest.Encoded()+"  "+layout.PartialPath(b.Digest))+" | sha256sum -c",
		trace.Cmd("mv", layout.PartialPath(b.Digest), layout.BlobPath(b.Digest)))
	bar.set("done")
	b.Fetched = true
	return nil
}

// fetchRange makes one request for the rest of the blob and appends what arrives. It
// returns how many bytes this attempt brought.
func (c *client) fetchRange(ctx context.Context, url string, b *Blob, p *layout.Partial, bar *bar) (int64, error) {
	off := p.Size()
	hdr := http.Header{}
	cmd := []string{"curl", "-sL"}
	if off > 0 {
		hdr.Set("Range", fmt.Sprintf("bytes=%d-", off))
		cmd = append(cmd, "-H", "Range: "+hdr.Get("Range"))
	}
	trace.Step(fmt.Sprintf("fetch %s %s (%d bytes) into %s, hashing as it streams", b.Kind, short(b.Digest), b.Size-off, layout.PartialPath(b.Digest)),
		trace.Cmd(append(cmd, url, "-o", layout.PartialPath(b.Digest))...))
	resp, err := c.do(ctx, http.MethodGet, url, hdr)
	if err != nil {
		return 0, &fatalError{err} // do has already retried
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && off > 0:
		want := fmt.Sprintf("bytes %d-%d/%d", off, b.Size-1, b.Size)
		if cr := resp.Header.Get("Content-Range"); cr != want {
			// Splicing a range we did not ask for would corrupt the blob: start over.
			trace.Step(fmt.Sprintf("the registry answered Content-Range %q, not %q: throw the %d bytes away and start over", cr, want, off))
			bar.add(-off)
			if err := p.Reset(); err != nil {
				return 0, &fatalError{err}
			}
			return 0, fmt.Errorf("the registry answered the wrong range %q", cr)
		}
		trace.Step(fmt.Sprintf("206 Partial Content, %s: append to the %d bytes we have", want, off))
	case resp.StatusCode == http.StatusOK:
		if off > 0 {
			trace.Step(fmt.Sprintf("the registry ignored Range and sent the whole blob: throw the %d bytes away and take it from the start", off))
			bar.add(-off)
			if err := p.Reset(); err != nil {
				return 0, &fatalError{err}
			}
		}
	case resp.StatusCode == http.StatusUnauthorized:
		return 0, &fatalError{c.auth.refused(resp)}
	default:
		return 0, &fatalError{statusError(resp, b.Kind+" "+b.Digest.String())}
	}
	remaining := b.Size - p.Size()
	if resp.ContentLength >= 0 && resp.ContentLength != remaining {
		p.Reset()
		return 0, &fatalError{cli.Errorf("the registry's copy is damaged or it lies about the size; nothing was stored",
			"it announces %d bytes where the descriptor leaves %d", resp.ContentLength, remaining)}
	}
	// One byte more than promised shows a body that is too long; Commit refuses it.
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	n, err := io.CopyBuffer(io.MultiWriter(p, bar), io.LimitReader(resp.Body, remaining+1), *buf)
	if err != nil {
		return n, err
	}
	if p.Size() < b.Size {
		return n, fmt.Errorf("the connection ended after %d of %d bytes", p.Size(), b.Size)
	}
	return n, nil
}
