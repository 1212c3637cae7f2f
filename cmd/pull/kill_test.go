package main

import (
	"crypto/rand"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// stallAfter is how much of the big layer the proxy lets through before it stalls.
const stallAfter = 2 << 20

// stallProxy stands between pull and the real registry, recording each request, and while
// stall is on, lets only the first stallAfter bytes of any large blob through and then
// holds the connection open, as a pull looks the moment it is killed.
type stallProxy struct {
	addr  string
	mu    sync.Mutex
	stall bool
	log   []string // "PATH RANGE"
}

func newStallProxy(t *testing.T, upstream string) *stallProxy {
	p := &stallProxy{stall: true}
	u, _ := url.Parse("http://" + upstream)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = log.New(io.Discard, "", 0) // the stalled copies end in errors by design
	rp.ModifyResponse = func(resp *http.Response) error {
		p.mu.Lock()
		stall := p.stall
		p.mu.Unlock()
		if stall && resp.ContentLength > 2*stallAfter {
			resp.Body = &stallBody{r: io.LimitReader(resp.Body, stallAfter), rc: resp.Body, done: resp.Request.Context().Done()}
		}
		return nil
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.log = append(p.log, r.URL.Path+" "+r.Header.Get("Range"))
		p.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	p.addr = strings.TrimPrefix(srv.URL, "http://")
	return p
}

type stallBody struct {
	r    io.Reader
	rc   io.ReadCloser
	done <-chan struct{}
}

func (s *stallBody) Read(b []byte) (int, error) {
	n, err := s.r.Read(b)
	if err == io.EOF {
		<-s.done // stall until the client goes away
		return 0, io.ErrUnexpectedEOF
	}
	return n, err
}

func (s *stallBody) Close() error { return s.rc.Close() }

// TestPullKilledMidwayResumes kills pull with SIGKILL while the big layer is halfway in,
// then pulls again: the second pull completes, fetches neither the config nor the small
// layer again, and asks for the big layer only from where the first one stopped.
func TestPullKilledMidwayResumes(t *testing.T) {
	addr := testutil.StartRegistry(t)
	big := make([]byte, 8<<20)
	rand.Read(big)
	small := testutil.LayerTar(t, "small.txt", []byte("a small layer\n"))
	digest := testutil.PushLayers(t, addr+"/hardway/big:latest", "", small, testutil.LayerTar(t, "big.bin", big))
	proxy := newStallProxy(t, addr)
	testutil.TempState(t)
	ref := proxy.addr + "/hardway/big:latest"

	cmd := exec.Command(testutil.Bin(t, "pull"), ref)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	dir := filepath.Join(state.OCIDir(), "blobs", "sha256")
	// Wait until the config and the small layer are in place and the big layer's partial
	// file holds all the proxy let through.
	deadline := time.Now().Add(30 * time.Second)
	var partial string
	for {
		done, part := 0, ""
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".partial-") {
				if fi, err := e.Info(); err == nil && fi.Size() == stallAfter {
					part = filepath.Join(dir, e.Name())
				}
			} else if !strings.HasPrefix(e.Name(), ".") {
				done++
			}
		}
		if done == 2 && part != "" {
			partial = part
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the first pull never reached the stalled layer (blobs: %v); stderr: %s", ents, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	bigDigest := "sha256:" + strings.TrimPrefix(filepath.Base(partial), ".partial-")
	if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(bigDigest, "sha256:"))); !os.IsNotExist(err) {
		t.Fatal("the unfinished layer is under its final name after kill -9")
	}
	if idx, _ := layout.ReadIndex(); len(idx.Manifests) != 0 {
		t.Fatal("index.json names the image after kill -9")
	}

	proxy.mu.Lock()
	proxy.stall = false
	firstRun := len(proxy.log)
	proxy.mu.Unlock()
	out, errs, code := run(t, "", ref)
	if code != 0 {
		t.Fatalf("second pull: exit %d: %s", code, errs)
	}
	if want := proxy.addr + "/hardway/big@" + digest; strings.TrimSpace(out) != want {
		t.Fatalf("second pull printed %q, want %s", out, want)
	}
	im, err := layout.Resolve(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range append(im.Manifest.Layers, im.Manifest.Config) {
		if !layout.HasBlob(l.Digest, l.Size) {
			t.Errorf("blob %s is not in the store, verified", l.Digest)
		}
	}
	proxy.mu.Lock()
	second := proxy.log[firstRun:]
	proxy.mu.Unlock()
	var blobReqs []string
	for _, l := range second {
		if strings.Contains(l, "/blobs/") {
			blobReqs = append(blobReqs, l)
		}
	}
	want := "/v2/hardway/big/blobs/" + bigDigest + " bytes=2097152-"
	if len(blobReqs) != 1 || blobReqs[0] != want {
		t.Fatalf("second pull asked for blobs %q, want only %q", blobReqs, want)
	}
}
