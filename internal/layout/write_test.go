package layout

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

func TestInitWritesAnEmptyLayoutOnce(t *testing.T) {
	testutil.TempState(t)
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(state.OCIDir(), "oci-layout"))
	if err != nil || !strings.Contains(string(b), `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("oci-layout = %q, %v", b, err)
	}
	idx, err := ReadIndex()
	if err != nil || idx.SchemaVersion != 2 || len(idx.Manifests) != 0 {
		t.Fatalf("index = %+v, %v", idx, err)
	}
	if err := Tag(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("a"), Size: 1}, "r/a:1"); err != nil {
		t.Fatal(err)
	}
	if err := Init(); err != nil { // a second Init keeps what is there
		t.Fatal(err)
	}
	if idx, _ := ReadIndex(); len(idx.Manifests) != 1 {
		t.Fatalf("Init reset index.json: %+v", idx)
	}
}

func TestWriteBlobVerifiesBeforeRename(t *testing.T) {
	testutil.TempState(t)
	data := []byte("hello layer")
	d := digest.FromBytes(data)
	for _, c := range []struct {
		name string
		body []byte
		size int64
	}{
		{"short", data[:5], int64(len(data))},
		{"long", append(append([]byte(nil), data...), '!'), int64(len(data))},
		{"other bytes", []byte("jello layer"), int64(len(data))},
	} {
		if _, err := WriteBlob(d, c.size, bytes.NewReader(c.body)); err == nil {
			t.Fatalf("%s: WriteBlob accepted content that does not match", c.name)
		}
		if ents, _ := os.ReadDir(filepath.Dir(BlobPath(d))); len(ents) != 0 {
			t.Fatalf("%s: %d files left in the blob dir", c.name, len(ents))
		}
	}
	if _, err := WriteBlob(d, int64(len(data)), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if !HasBlob(d, int64(len(data))) || HasBlob(d, 3) {
		t.Fatal("HasBlob does not check presence and size")
	}
	if got, err := ReadBlob(d); err != nil || string(got) != string(data) {
		t.Fatalf("ReadBlob = %q, %v", got, err)
	}
	os.WriteFile(BlobPath(d), []byte("tampered!!!"), 0o644)
	if HasBlob(d, int64(len(data))) {
		t.Fatal("HasBlob trusted a blob whose content does not hash to its name")
	}
}

func TestTagReplacesTheSameNameOnly(t *testing.T) {
	testutil.TempState(t)
	m1 := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("1"), Size: 1}
	m2 := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("2"), Size: 2}
	for _, step := range []struct {
		d    ocispec.Descriptor
		name string
	}{{m1, "reg/x:latest"}, {m1, "reg/y:latest"}, {m2, "reg/x:latest"}, {m2, "reg/x:latest"}} {
		if err := Tag(step.d, step.name); err != nil {
			t.Fatal(err)
		}
	}
	idx, _ := ReadIndex()
	got := map[string]digest.Digest{}
	for _, m := range idx.Manifests {
		got[m.Annotations[ocispec.AnnotationRefName]] = m.Digest
	}
	if len(idx.Manifests) != 2 || got["reg/x:latest"] != m2.Digest || got["reg/y:latest"] != m1.Digest {
		t.Fatalf("index.json entries %v", got)
	}
}

// Writers in parallel (as concurrent pulls are) all land: the flock serialises them.
func TestTagConcurrentWritersAllLand(t *testing.T) {
	testutil.TempState(t)
	var wg sync.WaitGroup
	const n = 20
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString(string(rune('a' + i))), Size: 1}
			errs <- Tag(d, "reg/img:"+string(rune('a'+i)))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(filepath.Join(state.OCIDir(), "index.json"))
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != n {
		t.Fatalf("index.json has %d entries (%v), want %d", len(idx.Manifests), err, n)
	}
}

// A killed pull leaves a temporary file; the next one clears it once it is clearly stale,
// and leaves a fresh one (a pull in progress) alone.
func TestInitClearsStaleTemps(t *testing.T) {
	testutil.TempState(t)
	dir := filepath.Join(state.OCIDir(), "blobs", "sha256")
	os.MkdirAll(dir, 0o755)
	stale, fresh := filepath.Join(dir, ".tmp-aaaa-1"), filepath.Join(dir, ".tmp-bbbb-2")
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	old := time.Now().Add(-2 * staleAfter)
	os.Chtimes(stale, old, old)
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale temp file survived: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("fresh temp file was removed: %v", err)
	}
}

// index.json and oci-layout are only written under the store's lock, so a temp copy that
// Init finds while holding it is a killed writer's leftover, whatever its age.
func TestInitClearsIndexTemps(t *testing.T) {
	testutil.TempState(t)
	dir := state.OCIDir()
	os.MkdirAll(dir, 0o755)
	left := []string{filepath.Join(dir, ".index.json.tmp-123"), filepath.Join(dir, ".oci-layout.tmp-456")}
	for _, f := range left {
		os.WriteFile(f, []byte("{"), 0o644)
	}
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	for _, f := range left {
		if _, err := os.Stat(f); !os.IsNotExist(err) {
			t.Errorf("%s survived Init: %v", filepath.Base(f), err)
		}
	}
	if _, err := ReadIndex(); err != nil {
		t.Errorf("index.json after Init: %v", err)
	}
}
