package layout

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// A partial download survives its writer (as after kill -9) and the next writer goes on
// from its end; Commit puts the blob under its name and nothing else remains.
func TestPartialResumesAndCommits(t *testing.T) {
	testutil.TempState(t)
	data := bytes.Repeat([]byte("hardway "), 1000)
	d := digest.FromBytes(data)
	p, done, err := OpenPartial(context.Background(), d, int64(len(data)))
	if err != nil || done {
		t.Fatalf("open: %v, done %v", err, done)
	}
	p.Write(data[:3000])
	p.Close() // the writer dies

	p, done, err = OpenPartial(context.Background(), d, int64(len(data)))
	if err != nil || done || p.Size() != 3000 {
		t.Fatalf("reopen: %v, done %v, size %d; want 3000 bytes kept", err, done, p.Size())
	}
	p.Write(data[3000:])
	if err := p.Commit(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if !HasBlob(d, int64(len(data))) {
		t.Fatal("the committed blob does not verify")
	}
	if _, err := os.Stat(PartialPath(d)); !os.IsNotExist(err) {
		t.Fatalf("the partial file is still there: %v", err)
	}
	if _, done, _ := OpenPartial(context.Background(), d, int64(len(data))); !done {
		t.Fatal("OpenPartial of a stored blob does not say done")
	}
}

// Wrong bytes are refused at Commit and thrown away, never renamed into place.
func TestPartialRefusesWrongBytes(t *testing.T) {
	testutil.TempState(t)
	d := digest.FromString("right")
	p, _, err := OpenPartial(context.Background(), d, 5)
	if err != nil {
		t.Fatal(err)
	}
	p.Write([]byte("wrong"))
	if err := p.Commit(5); err == nil {
		t.Fatal("Commit accepted bytes of another digest")
	}
	ents, _ := os.ReadDir(filepath.Dir(BlobPath(d)))
	if len(ents) != 0 {
		t.Fatalf("%d files left in blobs/sha256", len(ents))
	}
}

// A partial with every byte (the pull died between the last byte and the rename) is kept
// as it is when right, and started over when complete but wrong: it can never verify.
func TestPartialCompleteKeptOrReset(t *testing.T) {
	testutil.TempState(t)
	data := []byte("every byte arrived")
	d := digest.FromBytes(data)
	p, _, err := OpenPartial(context.Background(), d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	p.Write(data)
	p.Close()
	if p, _, err = OpenPartial(context.Background(), d, int64(len(data))); err != nil || p.Size() != int64(len(data)) {
		t.Fatalf("reopen of a complete, right partial: %v, size %d; want all %d bytes kept", err, p.Size(), len(data))
	}
	if err := p.Commit(int64(len(data))); err != nil {
		t.Fatalf("commit without another byte: %v", err)
	}

	wrong := digest.FromString("something else, same size")
	p, _, err = OpenPartial(context.Background(), wrong, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	p.Write(data)
	p.Close()
	if p, _, err = OpenPartial(context.Background(), wrong, int64(len(data))); err != nil || p.Size() != 0 {
		t.Fatalf("reopen of a complete, wrong partial: %v, size %d; want it started over", err, p.Size())
	}
	p.Discard()
}

// Two pulls of the same blob: the second waits for the first's lock, then finds the blob
// done instead of downloading it again.
func TestPartialSecondWriterWaits(t *testing.T) {
	testutil.TempState(t)
	data := []byte("shared layer")
	d := digest.FromBytes(data)
	p, _, err := OpenPartial(context.Background(), d, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var done2 bool
	var err2 error
	wg.Add(1)
	go func() {
		defer wg.Done()
		var p2 *Partial
		p2, done2, err2 = OpenPartial(context.Background(), d, int64(len(data)))
		if p2 != nil {
			p2.Close()
		}
	}()
	time.Sleep(100 * time.Millisecond) // let it block on the lock (the outcome does not depend on it)
	p.Write(data)
	if err := p.Commit(int64(len(data))); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err2 != nil || !done2 {
		t.Fatalf("second writer: %v, done %v; want done", err2, done2)
	}
	// A writer that gives up waiting (its context ends) gets the context's error.
	p, _, _ = OpenPartial(context.Background(), digest.FromString("other"), -1)
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, err := OpenPartial(ctx, digest.FromString("other"), -1); err == nil {
		t.Fatal("a locked partial did not block a second writer")
	}
}

// Init drops a partial download older than a week unless a pull holds it.
func TestInitClearsStalePartials(t *testing.T) {
	testutil.TempState(t)
	dir := filepath.Join(state.OCIDir(), "blobs", "sha256")
	os.MkdirAll(dir, 0o755)
	old := time.Now().Add(-2 * partialStaleAfter)
	stale := PartialPath(digest.FromString("stale"))
	os.WriteFile(stale, []byte("x"), 0o644)
	os.Chtimes(stale, old, old)
	held, _, err := OpenPartial(context.Background(), digest.FromString("held"), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	heldPath := PartialPath(digest.FromString("held"))
	os.Chtimes(heldPath, old, old)
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale partial survived: %v", err)
	}
	if _, err := os.Stat(heldPath); err != nil {
		t.Errorf("a held partial was removed: %v", err)
	}
}
