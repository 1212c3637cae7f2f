package registry

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

func mustParse(t *testing.T, s string) reference.Reference {
	t.Helper()
	r, err := reference.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestPullSeededImages pulls every seeded image from a real registry and checks what a
// user would: the handle, the digest the registry itself reports, blobs that verify, the
// ref name in index.json, and that pulling again changes nothing.
func TestPullSeededImages(t *testing.T) {
	addr := testutil.StartRegistry(t)
	refs := testutil.SeedImages(t, addr)
	testutil.TempState(t)

	want := map[string]bool{
		addr + "/library/busybox:latest":     false,
		addr + "/library/busybox-oci:latest": false,
		addr + "/hardway/layered:latest":     false,
		addr + "/hardway/multi:latest":       false,
		addr + "/hardway/nested:latest":      false,
		addr + "/hardway/plain:latest":       false,
		addr + "/hardway/list:latest":        false, // a Docker manifest list
		addr + "/hardway/zstd:latest":        false, // zstd layers
		addr + "/hardway/zero:latest":        false, // a 0-byte layer blob
	}
	for _, r := range refs {
		if _, ok := want[r]; ok {
			want[r] = true
		}
	}
	for r, seen := range want {
		if !seen {
			t.Fatalf("seed-images did not report %s (it printed %q)", r, refs)
		}
	}

	for ref := range want {
		t.Run(ref[strings.Index(ref, "/")+1:], func(t *testing.T) {
			r := mustParse(t, ref)
			res, err := Pull(context.Background(), r, Options{})
			if err != nil {
				t.Fatalf("pull %s: %v", ref, err)
			}
			oracle := testutil.CraneDigest(t, strings.Replace(ref, "nested", "multi", 1), "linux/amd64")
			if wantHandle := r.Name() + "@" + oracle; res.Handle != wantHandle {
				t.Fatalf("handle %s, crane digest says %s", res.Handle, wantHandle)
			}
			if i, ok := indexType[ref[strings.Index(ref, "/")+1:]]; ok {
				if res.Index == nil {
					t.Fatalf("%s is an index but the result names none", ref)
				}
				if res.Index.MediaType != i {
					t.Errorf("index media type %s, want %s", res.Index.MediaType, i)
				}
				if !layout.HasBlob(res.Index.Digest, res.Index.Size) {
					t.Errorf("the index %s was not stored", res.Index.Digest)
				}
			}

			// The store resolves the handle the next stage gets, and every blob verifies.
			im, err := layout.Resolve(res.Handle)
			if err != nil {
				t.Fatalf("resolve %s: %v", res.Handle, err)
			}
			if !layout.HasBlob(im.ManifestDigest, -1) || !layout.HasBlob(im.Manifest.Config.Digest, im.Manifest.Config.Size) {
				t.Fatal("manifest or config missing or damaged in the store")
			}
			for _, l := range im.Manifest.Layers {
				if !layout.HasBlob(l.Digest, l.Size) {
					t.Errorf("layer %s missing or damaged in the store", l.Digest)
				}
			}
			if n, ok := layerCount[ref[strings.Index(ref, "/")+1:]]; ok && len(im.Manifest.Layers) != n {
				t.Errorf("%s has %d layers, want %d", ref, len(im.Manifest.Layers), n)
			}
			if lt, ok := layerType[ref[strings.Index(ref, "/")+1:]]; ok {
				for _, l := range im.Manifest.Layers {
					if l.MediaType != lt {
						t.Errorf("layer %s is %s, want %s", l.Digest, l.MediaType, lt)
					}
				}
			}
			if got := strings.Join(im.Config.Config.Cmd, " "); got != "sh" {
				t.Errorf("config Cmd %q, want sh", got)
			}

			// index.json names it, and the name resolves to the same manifest.
			byName, err := layout.Resolve(r.RefName())
			if err != nil || byName.ManifestDigest != im.ManifestDigest {
				t.Fatalf("resolve by ref name %s: %v, %v", r.RefName(), byName, err)
			}

			// A second pull is a no-op: same handle, nothing fetched, index.json untouched.
			idxPath := filepath.Join(state.OCIDir(), "index.json")
			before, _ := os.ReadFile(idxPath)
			st1, _ := os.Stat(idxPath)
			again, err := Pull(context.Background(), r, Options{})
			if err != nil {
				t.Fatalf("second pull: %v", err)
			}
			if again.Handle != res.Handle {
				t.Fatalf("second pull printed %s, first %s", again.Handle, res.Handle)
			}
			for _, b := range again.Blobs {
				if b.Fetched {
					t.Errorf("second pull fetched %s again", b.Digest)
				}
			}
			after, _ := os.ReadFile(idxPath)
			st2, _ := os.Stat(idxPath)
			if string(before) != string(after) || !st1.ModTime().Equal(st2.ModTime()) {
				t.Error("second pull rewrote index.json")
			}
		})
	}

	// One ref name, one entry; besides them only the registry's Docker manifests that a
	// name's OCI translation comes from, once each.
	idx, err := layout.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	names, from, unnamed := map[string]bool{}, map[string]bool{}, map[string]int{}
	for _, m := range idx.Manifests {
		if n := m.Annotations[ocispec.AnnotationRefName]; n != "" {
			names[n] = true
			if f := m.Annotations[layout.AnnotationConvertedFrom]; f != "" {
				from[f] = true
			}
		} else {
			unnamed[m.Digest.String()]++
		}
	}
	if len(names) != len(want) || len(names)+len(unnamed) != len(idx.Manifests) || len(unnamed) != len(from) {
		t.Errorf("index.json has %d entries: %d names (want %d), unnamed %v, translations of %v", len(idx.Manifests), len(names), len(want), unnamed, from)
	}
	for d, n := range unnamed {
		if n != 1 || !from[d] {
			t.Errorf("unnamed entry %s (%d times) is not the source of a translation", d, n)
		}
	}

	t.Run("by digest", func(t *testing.T) {
		d := testutil.CraneDigest(t, addr+"/library/busybox:latest", "")
		r := mustParse(t, addr+"/library/busybox@"+d)
		res, err := Pull(context.Background(), r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Handle != addr+"/library/busybox@"+d {
			t.Fatalf("handle %s", res.Handle)
		}
	})
	t.Run("tampered blob in the store is fetched again", func(t *testing.T) {
		r := mustParse(t, addr+"/library/busybox-oci:latest")
		im, err := layout.Resolve(r.RefName())
		if err != nil {
			t.Fatal(err)
		}
		p := layout.BlobPath(im.Manifest.Config.Digest)
		if err := os.WriteFile(p, []byte(strings.Repeat("x", int(im.Manifest.Config.Size))), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Pull(context.Background(), r, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Blobs[0].Fetched || !layout.HasBlob(im.Manifest.Config.Digest, im.Manifest.Config.Size) {
			t.Fatal("the damaged config was not replaced by a verified copy")
		}
	})
	t.Run("platform not in the index", func(t *testing.T) {
		_, err := Pull(context.Background(), mustParse(t, addr+"/hardway/multi"), Options{Platform: "linux/s390x"})
		if err == nil || !strings.Contains(err.Error(), "linux/arm64/v8") {
			t.Fatalf("err = %v, want one listing the platforms the index has", err)
		}
	})
	for _, repo := range []string{"hardway/multi", "hardway/list"} {
		t.Run("platform arm64 picks the other manifest of "+repo, func(t *testing.T) {
			res, err := Pull(context.Background(), mustParse(t, addr+"/"+repo), Options{Platform: "linux/arm64/v8"})
			if err != nil {
				t.Fatal(err)
			}
			if want := addr + "/" + repo + "@" + testutil.CraneDigest(t, addr+"/"+repo, "linux/arm64/v8"); res.Handle != want {
				t.Fatalf("handle %s, want %s", res.Handle, want)
			}
			if amd := testutil.CraneDigest(t, addr+"/"+repo, "linux/amd64"); strings.HasSuffix(res.Handle, amd) {
				t.Fatal("arm64 and amd64 resolved to the same manifest: the index has one platform")
			}
			im, err := layout.Resolve(res.Handle)
			if err != nil {
				t.Fatal(err)
			}
			if im.Config.Architecture != "arm64" || im.Config.Variant != "v8" {
				t.Errorf("config says %s/%s, want arm64/v8", im.Config.Architecture, im.Config.Variant)
			}
			for _, l := range im.Manifest.Layers {
				if !layout.HasBlob(l.Digest, l.Size) {
					t.Errorf("layer %s missing or damaged in the store", l.Digest)
				}
			}
		})
	}
	// The next stage reads what pull stored: the zstd and the 0-byte layers unpack, and their
	// files are where the image says.
	for _, c := range []struct{ repo, file, want string }{
		{"hardway/zstd", "zstd.txt", "hello from a zstd layer\n"},
		{"hardway/zero", "hello.txt", "hello from the second layer\n"},
	} {
		t.Run("unpack "+c.repo, func(t *testing.T) {
			im, err := layout.Resolve(mustParse(t, addr+"/"+c.repo).RefName())
			if err != nil {
				t.Fatal(err)
			}
			if c.repo == "hardway/zero" && im.Manifest.Layers[1].Size != 0 {
				t.Fatalf("the middle layer of hardway/zero is %d bytes, want a 0-byte blob", im.Manifest.Layers[1].Size)
			}
			ls, err := overlay.Unpack(im)
			if err != nil {
				t.Fatalf("unpack %s: %v", c.repo, err)
			}
			if len(ls) != len(im.Manifest.Layers) {
				t.Fatalf("%d layers unpacked, the manifest has %d", len(ls), len(im.Manifest.Layers))
			}
			got, err := os.ReadFile(filepath.Join(ls[len(ls)-1].Dir(), "diff", c.file))
			if err != nil || string(got) != c.want {
				t.Fatalf("top layer's /%s: %q, %v; want %q", c.file, got, err, c.want)
			}
			if _, err := os.Stat(filepath.Join(ls[0].Dir(), "diff", "bin", "busybox")); err != nil {
				t.Errorf("bottom layer has no /bin/busybox: %v", err)
			}
		})
	}
	// Seeding again rebuilds every image byte for byte: the same references, the same digests.
	t.Run("seed-images is reproducible", func(t *testing.T) {
		before := map[string]string{}
		for _, r := range refs {
			before[r] = testutil.CraneDigest(t, r, "")
		}
		again := testutil.ReseedImages(t, addr)
		if strings.Join(again, " ") != strings.Join(refs, " ") {
			t.Fatalf("second seed printed %q, first %q", again, refs)
		}
		for _, r := range again {
			if d := testutil.CraneDigest(t, r, ""); d != before[r] {
				t.Errorf("%s moved from %s to %s when seeded again", r, before[r], d)
			}
		}
	})
	t.Run("unknown tag", func(t *testing.T) {
		_, err := Pull(context.Background(), mustParse(t, addr+"/library/busybox:nope"), Options{})
		if err == nil || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
			t.Fatalf("err = %v, want the registry's manifest unknown", err)
		}
	})
}

// What the seed images are (scripts/seed-images), by repository:tag.
var (
	indexType = map[string]string{
		"hardway/multi:latest":  ocispec.MediaTypeImageIndex,
		"hardway/nested:latest": ocispec.MediaTypeImageIndex,
		"hardway/list:latest":   layout.MediaTypeDockerManifestList,
	}
	layerCount = map[string]int{"hardway/layered:latest": 2, "hardway/plain:latest": 2,
		"hardway/zstd:latest": 2, "hardway/zero:latest": 3}
	layerType = map[string]string{
		"hardway/plain:latest": ocispec.MediaTypeImageLayer,
		"hardway/zero:latest":  ocispec.MediaTypeImageLayer,
		"hardway/zstd:latest":  ocispec.MediaTypeImageLayerZstd,
	}
)

// fakeRegistry serves one manifest and whatever blobs it is given, for the cases a real
// registry will not produce.
func fakeRegistry(t *testing.T, manifestType string, manifest []byte, blobs map[digest.Digest][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/v2/":
			w.WriteHeader(http.StatusOK)
		case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
			w.Header().Set("Content-Type", manifestType)
			// A lying Docker-Content-Digest must not be believed.
			w.Header().Set("Docker-Content-Digest", digest.FromString("lie").String())
			w.Write(manifest)
		case strings.HasPrefix(r.URL.Path, "/v2/x/blobs/"):
			b, ok := blobs[digest.Digest(strings.TrimPrefix(r.URL.Path, "/v2/x/blobs/"))]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func manifestFor(t *testing.T, config []byte, cfgDigest digest.Digest) []byte {
	t.Helper()
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cfgDigest, Size: int64(len(config))},
		Layers:    []ocispec.Descriptor{},
	}
	m.SchemaVersion = 2
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPullRejectsBlobThatDoesNotMatchItsDigest: the registry serves other bytes than the
// digest names; pull fails and nothing is left under the digest's name.
func TestPullRejectsBlobThatDoesNotMatchItsDigest(t *testing.T) {
	testutil.TempState(t)
	good := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	bad := append([]byte(nil), good...)
	bad[3] ^= 1 // one flipped bit, same length
	d := digest.FromBytes(good)
	m := manifestFor(t, good, d)
	addr := fakeRegistry(t, ocispec.MediaTypeImageManifest, m, map[digest.Digest][]byte{d: bad})

	_, err := Pull(context.Background(), mustParse(t, addr+"/x:latest"), Options{})
	if err == nil || !strings.Contains(err.Error(), "does not verify") {
		t.Fatalf("err = %v, want a verification failure", err)
	}
	if _, serr := os.Stat(layout.BlobPath(d)); !os.IsNotExist(serr) {
		t.Fatalf("%s exists after a failed verification (stat: %v)", layout.BlobPath(d), serr)
	}
	left, _ := os.ReadDir(filepath.Dir(layout.BlobPath(d)))
	if len(left) != 0 {
		t.Fatalf("blobs/sha256 holds %d files after the failure, want none", len(left))
	}
	idx, _ := layout.ReadIndex()
	if len(idx.Manifests) != 0 {
		t.Fatalf("index.json names %d images after the failure", len(idx.Manifests))
	}

	// A body longer than the descriptor says fails too.
	long := append(append([]byte(nil), good...), ' ')
	addr = fakeRegistry(t, ocispec.MediaTypeImageManifest, m, map[digest.Digest][]byte{d: long})
	_, err = Pull(context.Background(), mustParse(t, addr+"/x:latest"), Options{})
	if err == nil || !strings.Contains(err.Error(), "bytes") {
		t.Fatalf("err = %v, want a size failure", err)
	}

	// The honest registry: the handle carries the digest of the manifest bytes, not the
	// Docker-Content-Digest header.
	addr = fakeRegistry(t, ocispec.MediaTypeImageManifest, m, map[digest.Digest][]byte{d: good})
	res, err := Pull(context.Background(), mustParse(t, addr+"/x:latest"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := addr + "/x@" + digest.FromBytes(m).String(); res.Handle != want {
		t.Fatalf("handle %s, want %s", res.Handle, want)
	}
}

func TestPullRejectsBadManifests(t *testing.T) {
	testutil.TempState(t)
	cfg := []byte(`{}`)
	m := manifestFor(t, cfg, digest.FromBytes(cfg))
	cases := []struct {
		name, ct string
		body     []byte
		ref      string
		want     string
	}{
		{"schema1", "application/vnd.docker.distribution.manifest.v1+prettyjws", []byte(`{"schemaVersion":1,"name":"x","tag":"latest"}`), "x:latest", "schema1"},
		{"too large", ocispec.MediaTypeImageManifest, []byte(`{"pad":"` + strings.Repeat("a", MaxManifestBytes) + `"}`), "x:latest", "larger than"},
		{"type mismatch", layout.MediaTypeDockerManifest, m, "x:latest", "does not match"},
		{"unknown type", "application/vnd.example+json", []byte(`{"schemaVersion":2}`), "x:latest", "unsupported media type"},
		{"digest mismatch", ocispec.MediaTypeImageManifest, m, "x@" + digest.FromString("other").String(), "not the digest asked for"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			addr := fakeRegistry(t, c.ct, c.body, nil)
			_, err := Pull(context.Background(), mustParse(t, addr+"/"+c.ref), Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}

func TestPullNamesAMissingRegistry(t *testing.T) {
	testutil.TempState(t)
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := strings.TrimPrefix(srv.URL, "http://")
	srv.Close() // nothing listens there now
	_, err := Pull(context.Background(), mustParse(t, addr+"/x"), Options{})
	if err == nil || !strings.Contains(err.Error(), "scripts/registry start") {
		t.Fatalf("err = %v, want a hint to start the registry", err)
	}
}

// TestPullWithAnonymousToken plays Docker Hub's dance: /v2/ says 401 with a Bearer
// challenge, the realm hands out a token for the repository's pull scope, and every later
// request carries it.
func TestPullWithAnonymousToken(t *testing.T) {
	testutil.TempState(t)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	d := digest.FromBytes(cfg)
	m := manifestFor(t, cfg, d)
	var realm string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/token" {
			if got := r.URL.Query().Get("scope"); got != "repository:x:pull" || r.URL.Query().Get("service") != "test" {
				http.Error(w, "bad scope "+got, http.StatusBadRequest)
				return
			}
			w.Write([]byte(`{"token":"t0k"}`))
			return
		}
		if r.Header.Get("Authorization") != "Bearer t0k" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="test",scope="repository:x:pull"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(m)
		case r.URL.Path == "/v2/x/blobs/"+d.String():
			w.Write(cfg)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	realm = srv.URL + "/token"
	addr := strings.TrimPrefix(srv.URL, "http://")
	res, err := Pull(context.Background(), mustParse(t, addr+"/x"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := addr + "/x@" + digest.FromBytes(m).String(); res.Handle != want {
		t.Fatalf("handle %s, want %s", res.Handle, want)
	}
}
