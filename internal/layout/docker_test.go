package layout

import (
	"encoding/json"
	"strconv"
	"strings"
	"sync"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/testutil"
)

// dockerManifest is a schema2 manifest as registries serve them (crane's key order).
func dockerManifest(cfg, layer digest.Digest, extra string) []byte {
	return []byte(`{"schemaVersion":2,"mediaType":"` + MediaTypeDockerManifest + `","config":{"mediaType":"` + MediaTypeDockerConfig +
		`","size":2,"digest":"` + cfg.String() + `"},"layers":[{"mediaType":"` + MediaTypeDockerLayerGzip + `","size":3,"digest":"` + layer.String() +
		`"},{"mediaType":"` + MediaTypeDockerLayerTar + `","size":4,"digest":"` + layer.String() + `"}]` + extra + `}`)
}

func TestToOCIRenamesOnlyTheMediaTypes(t *testing.T) {
	cfg, layer := digest.FromString("c"), digest.FromString("l")
	in := dockerManifest(cfg, layer, "")
	out, err := ToOCI(in)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.NewReplacer(MediaTypeDockerManifest, ocispec.MediaTypeImageManifest, MediaTypeDockerConfig, ocispec.MediaTypeImageConfig,
		MediaTypeDockerLayerGzip, ocispec.MediaTypeImageLayerGzip, MediaTypeDockerLayerTar, ocispec.MediaTypeImageLayer).Replace(string(in))
	if string(out) != want {
		t.Fatalf("ToOCI:\n%s\nwant (the same bytes, types renamed):\n%s", out, want)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(out, &m); err != nil || m.Config.Digest != cfg || len(m.Layers) != 2 || m.Layers[1].Size != 4 {
		t.Fatalf("translation %+v, %v", m, err)
	}

	// A Docker type repeated where it is not a media type cannot be edited in place: the
	// manifest is re-encoded, with the repeat left alone.
	odd := dockerManifest(cfg, layer, `,"annotations":{"x":"`+MediaTypeDockerConfig+`"}`)
	out, err = ToOCI(odd)
	if err != nil {
		t.Fatal(err)
	}
	m = ocispec.Manifest{}
	if err := json.Unmarshal(out, &m); err != nil || m.MediaType != ocispec.MediaTypeImageManifest ||
		m.Config.MediaType != ocispec.MediaTypeImageConfig || m.Annotations["x"] != MediaTypeDockerConfig {
		t.Fatalf("re-encoded translation %s: %v", out, err)
	}

	if _, err := ToOCI([]byte(`{"schemaVersion":2,"mediaType":"` + ocispec.MediaTypeImageManifest + `"}`)); err == nil {
		t.Fatal("ToOCI took an OCI manifest")
	}
}

// A Docker manifest is kept unnamed; its name leads to the OCI translation, which says
// where it came from; Resolve by that name gives the registry's manifest again.
func TestTagDockerManifestNamesItsTranslation(t *testing.T) {
	testutil.TempState(t)
	cfgBody := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + digest.FromString("t").String() + `","` + digest.FromString("t").String() + `"]}}`)
	cfg, err := PutBlob(cfgBody)
	if err != nil {
		t.Fatal(err)
	}
	put := func(extra string) ocispec.Descriptor {
		b := dockerManifest(cfg, digest.FromString("l"), extra)
		b = []byte(strings.Replace(string(b), `"size":2`, `"size":`+strconv.Itoa(len(cfgBody)), 1))
		d, err := PutBlob(b)
		if err != nil {
			t.Fatal(err)
		}
		return ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: d, Size: int64(len(b))}
	}
	d1, d2 := put(""), put(` `)
	entries := func() (named map[string]ocispec.Descriptor, unnamed []digest.Digest) {
		idx, err := ReadIndex()
		if err != nil {
			t.Fatal(err)
		}
		named = map[string]ocispec.Descriptor{}
		for _, m := range idx.Manifests {
			if n := m.Annotations[ocispec.AnnotationRefName]; n != "" {
				named[n] = m
			} else {
				unnamed = append(unnamed, m.Digest)
			}
		}
		return named, unnamed
	}

	got, err := TagImage(d1, "reg/a:1")
	if err != nil {
		t.Fatal(err)
	}
	named, unnamed := entries()
	if e := named["reg/a:1"]; e.MediaType != ocispec.MediaTypeImageManifest || e.Digest != got.Digest || e.Digest == d1.Digest ||
		e.Annotations[AnnotationConvertedFrom] != d1.Digest.String() || !HasBlob(e.Digest, e.Size) {
		t.Fatalf("reg/a:1 names %+v, want the stored OCI translation of %s", e, d1.Digest)
	}
	if len(unnamed) != 1 || unnamed[0] != d1.Digest {
		t.Fatalf("unnamed entries %v, want the Docker manifest %s", unnamed, d1.Digest)
	}
	if im, err := Resolve("reg/a:1"); err != nil || im.Handle() != "reg/a@"+d1.Digest.String() {
		t.Fatalf("Resolve(reg/a:1) = %v, %v; want the registry's manifest", im, err)
	}

	// Again: nothing changes. A second name for the same image shares the unnamed entry.
	before, _ := ReadIndex()
	if err := Tag(d1, "reg/a:1"); err != nil {
		t.Fatal(err)
	}
	if after, _ := ReadIndex(); len(after.Manifests) != len(before.Manifests) {
		t.Fatalf("tagging again changed index.json: %d entries, were %d", len(after.Manifests), len(before.Manifests))
	}
	if err := Tag(d1, "reg/b:1"); err != nil {
		t.Fatal(err)
	}
	// reg/a:1 moves to another image: d1's entry stays while reg/b:1 leads to it.
	if err := Tag(d2, "reg/a:1"); err != nil {
		t.Fatal(err)
	}
	named, unnamed = entries()
	if len(named) != 2 || len(unnamed) != 2 {
		t.Fatalf("after the move: names %v, unnamed %v", named, unnamed)
	}
	// skopeo copy to an existing name strips the name off the old entry and keeps it: such a
	// leftover translation of d1 does not keep d1's entry.
	idx, _ := ReadIndex()
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == "reg/b:1" {
			m.Annotations = copyAnnotations(m.Annotations)
			delete(m.Annotations, ocispec.AnnotationRefName)
			idx.Manifests = append(idx.Manifests, m)
		}
	}
	if err := writeIndex(idx); err != nil {
		t.Fatal(err)
	}
	// reg/b:1 moves to an OCI manifest: no name leads to d1 any more, and its entry goes.
	if err := Tag(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("o"), Size: 1}, "reg/b:1"); err != nil {
		t.Fatal(err)
	}
	named, unnamed = entries()
	if len(named) != 2 || len(unnamed) != 2 || unnamed[0] != d2.Digest || unnamed[1] == d1.Digest {
		t.Fatalf("after the second move: names %v, unnamed %v (want only %s)", named, unnamed, d2.Digest)
	}
}

// Concurrent pulls of one Docker image under several names (busybox, a list and an index
// that hold it) agree: every name leads to the same translation, and the Docker manifest is
// kept once.
func TestTagDockerManifestConcurrently(t *testing.T) {
	testutil.TempState(t)
	b := dockerManifest(digest.FromString("c"), digest.FromString("l"), "")
	d, err := PutBlob(b)
	if err != nil {
		t.Fatal(err)
	}
	desc := ocispec.Descriptor{MediaType: MediaTypeDockerManifest, Digest: d, Size: int64(len(b))}
	const n = 12
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := TagImage(desc, "reg/img:"+strconv.Itoa(i%4)) // each name three times
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	idx, err := ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	translations, kept := map[digest.Digest]int{}, 0
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == "" {
			if m.Digest != d {
				t.Errorf("unnamed entry %s", m.Digest)
			}
			kept++
		} else {
			translations[m.Digest]++
		}
	}
	if kept != 1 || len(translations) != 1 || len(idx.Manifests) != 5 {
		t.Fatalf("index.json: %d entries, the Docker manifest %d times, translations %v; want 5, 1, one digest", len(idx.Manifests), kept, translations)
	}
}
