package registry

import (
	"context"
	"encoding/base64"
	"fmt"
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
	"github.com/hardway/hardway/internal/testutil"
)

// writeDockerConfig writes a DOCKER_CONFIG dir whose config.json holds auths (raw JSON).
func writeDockerConfig(t *testing.T, auths string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"auths":`+auths+`}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestPullBasicAuth pulls from the real registry with htpasswd auth on: without
// credentials and with a wrong password it fails saying so; with the credentials from a
// docker config.json (either form docker writes) it pulls the image crane sees.
func TestPullBasicAuth(t *testing.T) {
	addr, dockerConfig := testutil.StartAuthRegistry(t, "alice", "s3cret")
	testutil.PushLayers(t, addr+"/hardway/private:latest", dockerConfig, testutil.LayerTar(t, "secret.txt", []byte("only for alice\n")))
	testutil.TempState(t)
	ref := mustParse(t, addr+"/hardway/private:latest")

	_, err := Pull(context.Background(), ref, Options{DockerConfig: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "wants a user name and password") {
		t.Fatalf("pull without credentials: err = %v", err)
	}
	wrong := writeDockerConfig(t, `{"`+addr+`":{"username":"alice","password":"nope"}}`)
	_, err = Pull(context.Background(), ref, Options{DockerConfig: wrong})
	if err == nil || !strings.Contains(err.Error(), "refused the credentials of alice") {
		t.Fatalf("pull with a wrong password: err = %v", err)
	}
	if idx, _ := layout.ReadIndex(); len(idx.Manifests) != 0 {
		t.Fatalf("index.json names %d images after refused pulls", len(idx.Manifests))
	}

	t.Setenv("DOCKER_CONFIG", dockerConfig) // crane, the oracle, reads it too
	want := addr + "/hardway/private@" + testutil.CraneDigest(t, ref.String(), "")
	res, err := Pull(context.Background(), ref, Options{})
	if err != nil {
		t.Fatalf("pull with $DOCKER_CONFIG credentials: %v", err)
	}
	if res.Handle != want {
		t.Fatalf("handle %s, crane says %s", res.Handle, want)
	}

	// username and password fields, under a URL key, as older docker logins wrote them.
	plain := writeDockerConfig(t, `{"http://`+addr+`/v2/":{"username":"alice","password":"s3cret"}}`)
	testutil.TempState(t)
	if _, err = Pull(context.Background(), mustParse(t, addr+"/hardway/private"), Options{DockerConfig: plain}); err != nil {
		t.Fatalf("pull with username/password fields: %v", err)
	}
}

func TestLookupCredentials(t *testing.T) {
	auth := base64.StdEncoding.EncodeToString([]byte("bob:pa:ss"))
	dir := writeDockerConfig(t, `{
		"https://index.docker.io/v1/": {"auth": "`+auth+`"},
		"ghcr.io": {"identitytoken": "refresh-me", "username": "<token>"},
		"other.example": {"auth": "not base64!"}
	}`)
	if c := lookupCredentials(dir, "docker.io", "registry-1.docker.io"); c.Username != "bob" || c.Password != "pa:ss" {
		t.Errorf("docker.io: %+v, want bob / pa:ss from Docker Hub's v1 key", c)
	}
	if c := lookupCredentials(dir, "ghcr.io", "ghcr.io"); c.IdentityToken != "refresh-me" {
		t.Errorf("ghcr.io: %+v, want the identity token", c)
	}
	if c := lookupCredentials(dir, "other.example", "other.example"); c.any() {
		t.Errorf("a broken auth field gave %+v", c)
	}
	if c := lookupCredentials(dir, "quay.io", "quay.io"); c.any() {
		t.Errorf("quay.io has no entry but got %+v", c)
	}
}

// tokenRegistry is a registry behind a token server, both httptest servers: the token
// server wants alice's Basic credentials (or her identity token, posted) and grants the
// scopes asked for; the registry wants a token holding repository:x:pull, and for blobs
// also repository:base:pull (as when a blob was mounted from another repository), which it
// names in a second challenge.
type tokenRegistry struct {
	addr     string
	mu       sync.Mutex
	tokenReq []*http.Request
	cfg, m   []byte
}

func newTokenRegistry(t *testing.T, field string) *tokenRegistry {
	tr := &tokenRegistry{}
	tr.cfg = []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	d := digest.FromBytes(tr.cfg)
	tr.m = manifestFor(t, tr.cfg, d)
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		tr.mu.Lock()
		tr.tokenReq = append(tr.tokenReq, r)
		tr.mu.Unlock()
		u, p, _ := r.BasicAuth()
		ok := (u == "alice" && p == "s3cret") || (r.Method == http.MethodPost && r.PostForm.Get("refresh_token") == "idtok")
		if !ok || r.Form.Get("service") != "test" {
			http.Error(w, `{"errors":[{"code":"DENIED","message":"who are you"}]}`, http.StatusUnauthorized)
			return
		}
		scopes := strings.Join(r.Form["scope"], " ")
		w.Write([]byte(`{"` + field + `":"tok ` + scopes + `","expires_in":300}`))
	}))
	t.Cleanup(auth.Close)
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		need := []string{"repository:x:pull"}
		scope := "repository:x:pull"
		if strings.Contains(r.URL.Path, "/blobs/") {
			need = append(need, "repository:base:pull")
			scope = "repository:base:pull"
		}
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer tok ")
		for _, s := range need {
			if !strings.Contains(" "+tok+" ", " "+s+" ") {
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+auth.URL+`/token",service="test",scope="`+scope+`"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(tr.m)
		case r.URL.Path == "/v2/x/blobs/"+d.String():
			w.Write(tr.cfg)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(reg.Close)
	tr.addr = strings.TrimPrefix(reg.URL, "http://")
	return tr
}

// TestPullBearerFlow: the token comes as token or access_token; Basic credentials go to
// the realm; a later 401 naming a new scope gets a fresh token with both scopes, the new
// one first; an identity token is used as an OAuth2 refresh token.
func TestPullBearerFlow(t *testing.T) {
	for _, field := range []string{"token", "access_token"} {
		t.Run(field, func(t *testing.T) {
			testutil.TempState(t)
			tr := newTokenRegistry(t, field)
			cfg := writeDockerConfig(t, `{"`+tr.addr+`":{"auth":"`+base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))+`"}}`)
			res, err := Pull(context.Background(), mustParse(t, tr.addr+"/x"), Options{DockerConfig: cfg})
			if err != nil {
				t.Fatal(err)
			}
			if want := tr.addr + "/x@" + digest.FromBytes(tr.m).String(); res.Handle != want {
				t.Fatalf("handle %s, want %s", res.Handle, want)
			}
			if len(tr.tokenReq) != 2 {
				t.Fatalf("%d token requests, want 2 (one at the ping, one for the blob's new scope)", len(tr.tokenReq))
			}
			if got := tr.tokenReq[1].Form["scope"]; len(got) != 2 || got[0] != "repository:base:pull" || got[1] != "repository:x:pull" {
				t.Errorf("second token request scopes %q, want the new one first", got)
			}
		})
	}
	t.Run("anonymous is refused", func(t *testing.T) {
		testutil.TempState(t)
		tr := newTokenRegistry(t, "token")
		_, err := Pull(context.Background(), mustParse(t, tr.addr+"/x"), Options{DockerConfig: t.TempDir()})
		if err == nil || !strings.Contains(err.Error(), "who are you") || !strings.Contains(err.Error(), "config.json") {
			t.Fatalf("err = %v, want the realm's refusal and where credentials go", err)
		}
	})
	t.Run("identity token", func(t *testing.T) {
		testutil.TempState(t)
		tr := newTokenRegistry(t, "access_token")
		cfg := writeDockerConfig(t, `{"`+tr.addr+`":{"identitytoken":"idtok"}}`)
		if _, err := Pull(context.Background(), mustParse(t, tr.addr+"/x"), Options{DockerConfig: cfg}); err != nil {
			t.Fatal(err)
		}
		if tr.tokenReq[0].Method != http.MethodPost || tr.tokenReq[0].PostForm.Get("grant_type") != "refresh_token" {
			t.Errorf("token request %s %v, want a refresh_token POST", tr.tokenReq[0].Method, tr.tokenReq[0].PostForm)
		}
	})
}

// TestCredentialsStayWithTheRegistry: the registry redirects its blobs to another host;
// the blob is fetched there, and neither the Basic credentials nor anything else in
// Authorization goes along.
func TestCredentialsStayWithTheRegistry(t *testing.T) {
	testutil.TempState(t)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	d := digest.FromBytes(cfg)
	m := manifestFor(t, cfg, d)
	var leaked []string
	var mu sync.Mutex
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a := r.Header.Get("Authorization"); a != "" {
			mu.Lock()
			leaked = append(leaked, a)
			mu.Unlock()
		}
		w.Write(cfg)
	}))
	t.Cleanup(storage.Close)
	reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "alice" || p != "s3cret" {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(m)
		default:
			http.Redirect(w, r, storage.URL+"/bucket/"+d.Encoded(), http.StatusTemporaryRedirect)
		}
	}))
	t.Cleanup(reg.Close)
	addr := strings.TrimPrefix(reg.URL, "http://")
	dc := writeDockerConfig(t, `{"`+addr+`":{"username":"alice","password":"s3cret"}}`)
	if _, err := Pull(context.Background(), mustParse(t, addr+"/x"), Options{DockerConfig: dc}); err != nil {
		t.Fatal(err)
	}
	if !layout.HasBlob(d, int64(len(cfg))) {
		t.Fatal("the redirected blob is not in the store")
	}
	if len(leaked) != 0 {
		t.Fatalf("the storage host got Authorization %q", leaked)
	}
}

// TestPullRefreshesAnExpiredToken: a token that has outlived expires_in is replaced before
// the next request, not sent to be refused.
func TestPullRefreshesAnExpiredToken(t *testing.T) {
	testutil.TempState(t)
	cfg := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	d := digest.FromBytes(cfg)
	m := manifestFor(t, cfg, d)
	var (
		mu     sync.Mutex
		skew   time.Duration
		issued int
	)
	timeNow = func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(skew) }
	t.Cleanup(func() { timeNow = time.Now })
	var realm string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/token" {
			issued++
			fmt.Fprintf(w, `{"token":"t%d","expires_in":120}`, issued)
			return
		}
		if r.Header.Get("Authorization") != fmt.Sprintf("Bearer t%d", issued) || issued == 0 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm+`",service="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch {
		case r.URL.Path == "/v2/":
		case strings.HasPrefix(r.URL.Path, "/v2/x/manifests/"):
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Write(m)
			skew = 10 * time.Minute // the token dies before the blob is asked for
		case r.URL.Path == "/v2/x/blobs/"+d.String():
			w.Write(cfg)
		}
	}))
	t.Cleanup(srv.Close)
	realm = srv.URL + "/token"
	addr := strings.TrimPrefix(srv.URL, "http://")
	if _, err := Pull(context.Background(), mustParse(t, addr+"/x"), Options{DockerConfig: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	if issued != 2 {
		t.Fatalf("%d tokens issued, want 2 (the first expired)", issued)
	}
}

// TestRealmOnALinkLocalAddressIsRefused: a challenge naming the metadata address as its
// realm is refused before any request goes there.
func TestRealmOnALinkLocalAddressIsRefused(t *testing.T) {
	testutil.TempState(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://169.254.169.254/token",service="x"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	_, err := Pull(context.Background(), mustParse(t, strings.TrimPrefix(srv.URL, "http://")+"/x"), Options{DockerConfig: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("err = %v, want the realm refused", err)
	}
}
