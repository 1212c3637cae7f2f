package layout

import (
	"context"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"time"

	digest "github.com/opencontainers/go-digest"
	"golang.org/x/sys/unix"
)

// Partial is a blob being downloaded: blobs/<alg>/.partial-<hex>, under an exclusive flock
// for as long as it is open. Its name is stable so that a pull killed halfway leaves the
// bytes it had for the next pull to resume from (the lock dies with the process), and
// nothing ever appears under the blob's own name until Commit has verified it.
type Partial struct {
	d    digest.Digest
	f    *os.File
	h    hash.Hash
	n    int64
	path string
}

// PartialPath is where blob d is downloaded before it is verified.
func PartialPath(d digest.Digest) string {
	final := BlobPath(d)
	return filepath.Join(filepath.Dir(final), ".partial-"+d.Encoded())
}

// OpenPartial locks the partial download of d, waiting while another pull holds it, and
// hashes the bytes already there so the download can go on from Size(). done is true (and
// the Partial nil) when the blob is already in the store, verified, for instance because
// the pull that held the lock finished it.
func OpenPartial(ctx context.Context, d digest.Digest, size int64) (p *Partial, done bool, err error) {
	if err := d.Validate(); err != nil {
		return nil, false, err
	}
	path := PartialPath(d)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, false, err
	}
	for {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return nil, false, err
		}
		if err := flockCtx(ctx, f); err != nil {
			f.Close()
			return nil, false, err
		}
		// The holder may have renamed the file into place (or removed it) while we waited:
		// then our descriptor is of a file no longer at the path. Start over.
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) != nil || unix.Stat(path, &b) != nil || a.Ino != b.Ino || a.Dev != b.Dev {
			f.Close()
			continue
		}
		if HasBlob(d, size) {
			os.Remove(path)
			f.Close()
			return nil, true, nil
		}
		p := &Partial{d: d, f: f, h: d.Algorithm().Hash(), path: path}
		n, err := io.Copy(p.h, f)
		if err != nil {
			f.Close()
			return nil, false, err
		}
		p.n = n
		// Too long, or complete but wrong: those bytes can never become the blob. Complete
		// and right (killed between the last byte and the rename): only the rename is left.
		if size >= 0 && (n > size || n == size && digest.NewDigest(d.Algorithm(), p.h) != d) {
			if err := p.Reset(); err != nil {
				f.Close()
				return nil, false, err
			}
		}
		return p, false, nil
	}
}

func flockCtx(ctx context.Context, f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			return fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Size is how many bytes the partial file holds.
func (p *Partial) Size() int64 { return p.n }

// Write appends to the partial file and the running hash.
func (p *Partial) Write(b []byte) (int, error) {
	n, err := p.f.Write(b)
	p.h.Write(b[:n])
	p.n += int64(n)
	return n, err
}

// Reset throws the bytes away, to download from the start.
func (p *Partial) Reset() error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	if _, err := p.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	p.h.Reset()
	p.n = 0
	return nil
}

// Commit checks size and digest and renames the file under the blob's name. On a
// mismatch the partial file is removed (its bytes are wrong, resuming them is pointless)
// and a *VerifyError returned.
func (p *Partial) Commit(size int64) error {
	if size >= 0 && p.n != size {
		p.Discard()
		return &VerifyError{p.d, fmt.Sprintf("got %d bytes, the descriptor says %d", p.n, size)}
	}
	if got := digest.NewDigest(p.d.Algorithm(), p.h); got != p.d {
		p.Discard()
		return &VerifyError{p.d, fmt.Sprintf("content hashes to %s", got)}
	}
	// No fsync before the rename: see WriteBlob.
	if err := os.Rename(p.path, BlobPath(p.d)); err != nil {
		return err
	}
	return p.f.Close() // releases the lock only now that the blob is in place
}

// Close keeps the bytes for a later resume and releases the lock.
func (p *Partial) Close() error { return p.f.Close() }

// Discard removes the partial file and releases the lock.
func (p *Partial) Discard() {
	os.Remove(p.path)
	p.f.Close()
}
