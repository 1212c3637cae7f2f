package registry

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// faultRegistry serves one image (a config and a 256 KiB layer) correctly, Range included,
// unless fault answers a request first. n counts the requests to that path so far.
type faultRegistry struct {
	addr                 string
	cfg, layer, manifest []byte
	cfgD, layerD, manD   digest.Digest
	fault                func(w http.ResponseWriter, r *http.Request, n int) bool
	mu                   sync.Mutex
	hits                 map[string]int
	layerRanges          []string
}

func newFaultRegistry(t *testing.T, fault func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool) *faultRegistry {
	t.Helper()
	f := &faultRegistry{hits: map[string]int{}}
	f.layer = make([]byte, 256<<10)
	rand.Read(f.layer)
	f.layerD = digest.FromBytes(f.layer)
	f.cfg = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["` + f.layerD.String() + `"]}}`)
	f.cfgD = digest.FromBytes(f.cfg)
	m := ocispec.Manifest{
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: f.cfgD, Size: int64(len(f.cfg))},
		Layers:    []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayer, Digest: f.layerD, Size: int64(len(f.layer))}},
	}
	m.SchemaVersion = 2
	f.manifest, _ = json.Marshal(m)
	f.manD = digest.FromBytes(f.manifest)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.Path]++
		n := f.hits[r.URL.Path]
		if r.URL.Path == f.blobPath(f.layerD) {
			f.layerRanges = append(f.layerRanges, r.Header.Get("Range"))
		}
		f.mu.Unlock()
		if fault != nil && fault(f, w, r, n) {
			return
		}
		switch r.URL.Path {
		case "/v2/":
		case "/v2/x/manifests/latest":
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(f.manifest)
		case f.blobPath(f.cfgD):
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.cfg))
		case f.blobPath(f.layerD):
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(f.layer))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	f.addr = strings.TrimPrefix(srv.URL, "http://")
	return f
}

func (f *faultRegistry) blobPath(d digest.Digest) string { return "/v2/x/blobs/" + d.String() }

// cut answers with the right status and headers for the whole (rest of the) layer, sends
// only n bytes of it and drops the connection with a reset.
func (f *faultRegistry) cut(w http.ResponseWriter, r *http.Request, n int) {
	off := 0
	fmt.Sscanf(r.Header.Get("Range"), "bytes=%d-", &off)
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(err)
	}
	status := "200 OK"
	extra := ""
	if off > 0 {
		status = "206 Partial Content"
		extra = fmt.Sprintf("Content-Range: bytes %d-%d/%d\r\n", off, len(f.layer)-1, len(f.layer))
	}
	fmt.Fprintf(buf, "HTTP/1.1 %s\r\nContent-Length: %d\r\n%s\r\n", status, len(f.layer)-off, extra)
	end := min(off+n, len(f.layer))
	buf.Write(f.layer[off:end])
	buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0) // close with RST, as a dying server or middlebox does
	}
	conn.Close()
}

// fast shortens the waits so the faults play out in milliseconds.
var fast = Options{RetryBase: 2 * time.Millisecond, IdleTimeout: 300 * time.Millisecond}

// checkStore asserts what a user relies on after any pull, failed or not: every file under
// a digest's name verifies, a partial download is a true prefix of its blob, and
// index.json names only complete images.
func checkStore(t *testing.T, f *faultRegistry) {
	t.Helper()
	dir := filepath.Join(state.OCIDir(), "blobs", "sha256")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, ".partial-"):
			b, _ := os.ReadFile(filepath.Join(dir, name))
			if d := "sha256:" + strings.TrimPrefix(name, ".partial-"); d == f.layerD.String() && !bytes.HasPrefix(f.layer, b) {
				t.Errorf("the partial download of the layer (%d bytes) is not a prefix of it", len(b))
			}
		case strings.HasPrefix(name, "."):
			t.Errorf("temporary file %s left behind", name)
		default:
			if !layout.HasBlob(digest.NewDigestFromEncoded(digest.SHA256, name), -1) {
				t.Errorf("blob %s does not verify", name)
			}
		}
	}
	idx, err := layout.ReadIndex()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if _, err := layout.Resolve(m.Annotations[ocispec.AnnotationRefName]); err != nil {
			t.Errorf("index.json names %s, which does not resolve: %v", m.Digest, err)
		}
	}
}

func TestPullFaults(t *testing.T) {
	cases := []struct {
		name  string
		opts  func(o *Options)
		fault func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool
		want  string // "" = success; else a piece of the error
		check func(t *testing.T, f *faultRegistry)
	}{
		{name: "500 then success on the manifest", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if strings.Contains(r.URL.Path, "/manifests/") && n == 1 {
				http.Error(w, "oops", http.StatusInternalServerError)
				return true
			}
			return false
		}, check: func(t *testing.T, f *faultRegistry) {
			if f.hits["/v2/x/manifests/latest"] != 2 {
				t.Errorf("manifest asked %d times, want 2", f.hits["/v2/x/manifests/latest"])
			}
		}},
		{name: "429 with Retry-After on a blob", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) && n == 1 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
				return true
			}
			return false
		}},
		{name: "408 then a reset on the manifest", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if !strings.Contains(r.URL.Path, "/manifests/") {
				return false
			}
			switch n {
			case 1:
				w.WriteHeader(http.StatusRequestTimeout)
				return true
			case 2:
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.(*net.TCPConn).SetLinger(0)
				conn.Close()
				return true
			}
			return false
		}},
		{name: "the manifest breaks off halfway", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if !strings.Contains(r.URL.Path, "/manifests/") || n > 1 {
				return false
			}
			conn, buf, _ := w.(http.Hijacker).Hijack()
			fmt.Fprintf(buf, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n", ocispec.MediaTypeImageManifest, len(f.manifest))
			buf.Write(f.manifest[:len(f.manifest)/2])
			buf.Flush()
			conn.(*net.TCPConn).SetLinger(0)
			conn.Close()
			return true
		}},
		{name: "503 forever", want: "503", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				w.WriteHeader(http.StatusServiceUnavailable)
				return true
			}
			return false
		}},
		{name: "reset mid-blob resumes with Range", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) && n == 1 {
				f.cut(w, r, 100000)
				return true
			}
			return false
		}, check: func(t *testing.T, f *faultRegistry) {
			if len(f.layerRanges) != 2 || f.layerRanges[1] != "bytes=100000-" {
				t.Errorf("layer requests had Range %q, want a second one from byte 100000", f.layerRanges)
			}
		}},
		{name: "200 to a Range request starts over", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != f.blobPath(f.layerD) {
				return false
			}
			if n == 1 {
				f.cut(w, r, 100000)
				return true
			}
			w.Write(f.layer) // Range ignored: the whole blob, 200
			return true
		}},
		{name: "wrong Content-Range starts over", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != f.blobPath(f.layerD) {
				return false
			}
			switch n {
			case 1:
				f.cut(w, r, 100000)
				return true
			case 2: // answers 206 with the wrong piece, from byte 0
				rest := len(f.layer) - 100000
				w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-%d/%d", rest-1, len(f.layer)))
				w.WriteHeader(http.StatusPartialContent)
				w.Write(f.layer[:rest])
				return true
			}
			return false
		}, check: func(t *testing.T, f *faultRegistry) {
			if len(f.layerRanges) != 3 || f.layerRanges[2] != "" {
				t.Errorf("layer requests had Range %q, want a third one from the start", f.layerRanges)
			}
		}},
		{name: "the connection always dies", want: "gave up", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				f.cut(w, r, 1000)
				return true
			}
			return false
		}},
		{name: "Content-Length larger than the descriptor", want: "announces", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				w.Header().Set("Content-Length", fmt.Sprint(len(f.layer)+1))
				w.Write(append(f.layer, 0))
				return true
			}
			return false
		}},
		{name: "Content-Length smaller than the descriptor", want: "announces", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				w.Header().Set("Content-Length", fmt.Sprint(len(f.layer)-1))
				w.Write(f.layer[:len(f.layer)-1])
				return true
			}
			return false
		}},
		{name: "short body without Content-Length", want: "gave up", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				w.WriteHeader(http.StatusOK)
				w.(http.Flusher).Flush() // chunked: no Content-Length
				w.Write(f.layer[:1000])  // ends cleanly, too soon; Range ignored
				return true
			}
			return false
		}},
		{name: "a redirect to storage", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				http.Redirect(w, r, "/storage/layer", http.StatusTemporaryRedirect)
				return true
			}
			if r.URL.Path == "/storage/layer" {
				w.Write(f.layer)
				return true
			}
			return false
		}},
		{name: "a redirect loop", want: "redirects", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) || r.URL.Path == "/loop" {
				http.Redirect(w, r, "/loop?"+fmt.Sprint(n), http.StatusFound)
				return true
			}
			return false
		}},
		{name: "a redirect to another scheme", want: "only http and https", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				w.Header().Set("Location", "file:///etc/passwd")
				w.WriteHeader(http.StatusFound)
				return true
			}
			return false
		}},
		{name: "a redirect to the cloud metadata address", want: "link-local", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path == f.blobPath(f.layerD) {
				http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusTemporaryRedirect)
				return true
			}
			return false
		}},
		{name: "a slow drip", want: "read timeout", opts: func(o *Options) { o.Retries = 1 }, fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if r.URL.Path != f.blobPath(f.layerD) {
				return false
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(f.layer)))
			w.Write(f.layer[:1])
			w.(http.Flusher).Flush()
			select { // one byte, then nothing until the client gives up
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
			return true
		}},
		{name: "a manifest served as HTML", want: "does not match", fault: func(f *faultRegistry, w http.ResponseWriter, r *http.Request, n int) bool {
			if strings.Contains(r.URL.Path, "/manifests/") {
				w.Header().Set("Content-Type", "text/html")
				w.Write(f.manifest)
				return true
			}
			return false
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.TempState(t)
			f := newFaultRegistry(t, c.fault)
			opts := fast
			if c.opts != nil {
				c.opts(&opts)
			}
			res, err := Pull(context.Background(), mustParse(t, f.addr+"/x"), opts)
			if c.want == "" {
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				if want := f.addr + "/x@" + f.manD.String(); res.Handle != want {
					t.Fatalf("handle %s, want %s", res.Handle, want)
				}
				if !layout.HasBlob(f.layerD, int64(len(f.layer))) {
					t.Fatal("the layer is not in the store, verified")
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("err = %v, want %q", err, c.want)
				}
				if _, serr := os.Stat(layout.BlobPath(f.layerD)); !os.IsNotExist(serr) {
					t.Errorf("the layer is under its name after a failed pull")
				}
				if idx, _ := layout.ReadIndex(); len(idx.Manifests) != 0 {
					t.Errorf("index.json names %d images after a failed pull", len(idx.Manifests))
				}
			}
			checkStore(t, f)
			if c.check != nil {
				c.check(t, f)
			}
		})
	}
}

func TestPickPlatform(t *testing.T) {
	ms := []ocispec.Descriptor{
		{Digest: "sha256:att", Platform: &ocispec.Platform{OS: "unknown", Architecture: "unknown"}},
		{Digest: "sha256:amd", Platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}},
		{Digest: "sha256:arm64", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}},
		{Digest: "sha256:armv7", Platform: &ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}},
	}
	for in, want := range map[string]digest.Digest{
		"linux/x86_64": "sha256:amd", "linux/amd64": "sha256:amd", "linux/aarch64": "sha256:arm64",
		"linux/arm64": "sha256:arm64", "linux/arm64/v8": "sha256:arm64", "linux/armhf": "sha256:armv7",
	} {
		p, err := ParsePlatform(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pickPlatform(ms, p)
		if err != nil || got.Digest != want {
			t.Errorf("%s picked %s (%v), want %s", in, got.Digest, err, want)
		}
	}
	p, _ := ParsePlatform("linux/s390x")
	if _, err := pickPlatform(ms, p); err == nil || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8, linux/arm/v7") {
		t.Errorf("err = %v, want the choices named", err)
	}
}

// TestConcurrentPullsOfOneImage: two pulls of the same image at once both succeed with the
// same handle, and the store holds one verified copy of each blob and one index entry.
func TestConcurrentPullsOfOneImage(t *testing.T) {
	testutil.TempState(t)
	f := newFaultRegistry(t, nil)
	var wg sync.WaitGroup
	handles := make([]string, 2)
	errs := make([]error, 2)
	for i := range handles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := Pull(context.Background(), mustParse(t, f.addr+"/x"), fast)
			errs[i] = err
			if err == nil {
				handles[i] = res.Handle
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("pull %d: %v", i, err)
		}
	}
	if handles[0] != handles[1] {
		t.Fatalf("handles differ: %q", handles)
	}
	if idx, _ := layout.ReadIndex(); len(idx.Manifests) != 1 {
		t.Fatalf("index.json has %d entries, want 1", len(idx.Manifests))
	}
	checkStore(t, f)
}

// TestPullAfterPowerLoss: pull does not fsync blobs, so a power loss can leave a partial
// download, or a blob already under its name, short or zero-filled. The next pull replaces
// such bytes, and pull --missing does not take an image with a short blob for complete.
func TestPullAfterPowerLoss(t *testing.T) {
	zeroed := func(b []byte, from, to int) []byte {
		out := bytes.Clone(b)
		clear(out[from:to])
		return out
	}
	t.Run("a partial download with zeros in it", func(t *testing.T) {
		testutil.TempState(t)
		f := newFaultRegistry(t, nil)
		if err := layout.Init(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(layout.PartialPath(f.layerD), zeroed(f.layer[:100000], 5000, 9000), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Pull(context.Background(), mustParse(t, f.addr+"/x"), fast); err != nil {
			t.Fatalf("pull: %v", err)
		}
		if len(f.layerRanges) != 2 || f.layerRanges[0] != "bytes=100000-" || f.layerRanges[1] != "" {
			t.Errorf("layer requests had Range %q, want one from byte 100000, then one from the start", f.layerRanges)
		}
		checkStore(t, f)
	})
	t.Run("blobs under their names, empty or zero-filled", func(t *testing.T) {
		testutil.TempState(t)
		f := newFaultRegistry(t, nil)
		ref := mustParse(t, f.addr+"/x")
		if _, err := Pull(context.Background(), ref, fast); err != nil {
			t.Fatalf("first pull: %v", err)
		}
		if err := os.WriteFile(layout.BlobPath(f.layerD), nil, 0o644); err != nil { // the rename reached the disk, the data did not
			t.Fatal(err)
		}
		if res, err := Local(ref, ""); err != nil || res != nil {
			t.Fatalf("--missing took the image with an empty layer blob: %+v, %v", res, err)
		}
		if err := os.WriteFile(layout.BlobPath(f.cfgD), make([]byte, len(f.cfg)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(layout.BlobPath(f.manD), make([]byte, len(f.manifest)), 0o644); err != nil {
			t.Fatal(err)
		}
		res, err := Pull(context.Background(), ref, fast)
		if err != nil {
			t.Fatalf("pull after the power loss: %v", err)
		}
		if want := f.addr + "/x@" + f.manD.String(); res.Handle != want {
			t.Fatalf("handle %s, want %s", res.Handle, want)
		}
		for _, d := range []digest.Digest{f.manD, f.cfgD, f.layerD} {
			if !layout.HasBlob(d, -1) {
				t.Errorf("blob %s was not replaced", d)
			}
		}
		checkStore(t, f)
	})
}
