package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/trace"
)

const (
	// maxTokenBytes caps a token response.
	maxTokenBytes = 1 << 20
	// minTokenLife is the lifetime the token spec promises when expires_in is absent or lower.
	minTokenLife = 60 * time.Second
)

// timeNow is the clock tokens expire by; a test moves it.
var timeNow = time.Now

// creds are what ~/.docker/config.json holds for one registry.
type creds struct {
	Username, Password string
	IdentityToken      string // an OAuth2 refresh token (docker login on some registries)
	From               string // the file they came from, for messages
}

// dockerConfigFile is $DOCKER_CONFIG/config.json, else ~/.docker/config.json, as the docker
// CLI looks for it; dir overrides both.
func dockerConfigFile(dir string) string {
	if dir == "" {
		dir = os.Getenv("DOCKER_CONFIG")
	}
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return ""
		}
		dir = filepath.Join(home, ".docker")
	}
	return filepath.Join(dir, "config.json")
}

// lookupCredentials finds the entry for a registry in the docker config's auths. Keys may
// be bare hosts or URLs (https://index.docker.io/v1/ is Docker Hub's).
func lookupCredentials(dir, domain, apiHost string) creds {
	file := dockerConfigFile(dir)
	b, err := os.ReadFile(file)
	if err != nil {
		return creds{}
	}
	var cfg struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		trace.Step(fmt.Sprintf("%s is not valid JSON (%v): no credentials from it", file, err))
		return creds{}
	}
	want := map[string]bool{domain: true, apiHost: true}
	if domain == reference.DefaultDomain {
		want["index.docker.io"] = true
	}
	for key, e := range cfg.Auths {
		k := key
		if i := strings.Index(k, "://"); i >= 0 {
			k = k[i+3:]
		}
		k, _, _ = strings.Cut(k, "/")
		if !want[k] {
			continue
		}
		c := creds{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken, From: file}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				continue
			}
			c.Username, c.Password, _ = strings.Cut(string(raw), ":")
		}
		if c.Username == "" && c.IdentityToken == "" {
			continue
		}
		return c
	}
	return creds{}
}

func (c creds) any() bool { return c.Username != "" || c.IdentityToken != "" }

// authState is how this pull authenticates to its registry: nothing, Basic with the
// configured credentials, or a Bearer token from the realm the registry named. Blobs are
// fetched in parallel, so it is shared under a mutex.
type authState struct {
	c     *client
	creds creds

	mu      sync.Mutex
	scheme  string // "", "basic" or "bearer"
	realm   string
	service string
	scopes  []string
	token   string
	expires time.Time
}

func newAuthState(c *client, cr creds) *authState {
	return &authState{c: c, creds: cr, scopes: []string{"repository:" + c.repo + ":pull"}}
}

// header is the Authorization value for a request to the registry, refreshing an expired
// token first.
func (a *authState) header(ctx context.Context) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.scheme {
	case "basic":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(a.creds.Username+":"+a.creds.Password))
	case "bearer":
		if a.token != "" && timeNow().After(a.expires) {
			trace.Step("the token has expired: ask the realm for a new one")
			if err := a.fetchToken(ctx); err != nil {
				a.token = "" // the request goes without, and its 401 says why
			}
		}
		if a.token != "" {
			return "Bearer " + a.token
		}
	}
	return ""
}

func (a *authState) describe() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch a.scheme {
	case "basic":
		return ", and it accepts our user name and password"
	case "bearer":
		return ", and it accepts our token"
	}
	return ", and it lets anyone in"
}

var challengeParamRE = regexp.MustCompile(`([a-zA-Z_]+)\s*=\s*(?:"([^"]*)"|([^\s,]+))`)

type challenge struct {
	scheme string
	params map[string]string
}

// parseChallenges reads WWW-Authenticate values: `Bearer realm="…",service="…"`, `Basic
// realm="…"`, one per header value.
func parseChallenges(values []string) []challenge {
	var out []challenge
	for _, h := range values {
		scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
		ch := challenge{scheme: strings.ToLower(scheme), params: map[string]string{}}
		for _, m := range challengeParamRE.FindAllStringSubmatch(rest, -1) {
			v := m[2]
			if v == "" {
				v = m[3]
			}
			ch.params[strings.ToLower(m[1])] = v
		}
		out = append(out, ch)
	}
	return out
}

// challenge answers a 401: it picks Bearer over Basic, as the docker CLI does, and gets
// the token or arms the credentials. It fails when there is nothing new to try, so a
// request is never retried with the same refused credentials.
func (a *authState) challenge(ctx context.Context, values []string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var bearer, basic *challenge
	for _, ch := range parseChallenges(values) {
		ch := ch
		switch ch.scheme {
		case "bearer":
			bearer = &ch
		case "basic":
			basic = &ch
		}
	}
	switch {
	case bearer != nil:
		realm := bearer.params["realm"]
		if realm == "" {
			return fmt.Errorf("%s: Bearer challenge without a realm: %q", a.c.base, values)
		}
		newScope := true
		if s := bearer.params["scope"]; s != "" {
			for _, have := range a.scopes {
				if have == s {
					newScope = false
				}
			}
			if newScope {
				// New scopes first: some registries look only at the first.
				a.scopes = append([]string{s}, a.scopes...)
			}
		}
		if a.scheme == "bearer" && a.token != "" && !newScope && timeNow().Before(a.expires) {
			return a.denied()
		}
		a.scheme, a.realm, a.service = "bearer", realm, bearer.params["service"]
		trace.Step(fmt.Sprintf("401: the registry wants a Bearer token from %s (service %q, scope %s)",
			realm, a.service, strings.Join(a.scopes, " ")))
		return a.fetchToken(ctx)
	case basic != nil:
		if a.scheme == "basic" {
			return a.denied()
		}
		if !a.creds.any() || a.creds.Username == "" {
			return cli.Errorf(a.loginHint(), "%s wants a user name and password (Basic realm %q) and there are none for it",
				a.c.host, basic.params["realm"])
		}
		a.scheme = "basic"
		trace.Step(fmt.Sprintf("401: the registry wants Basic auth (realm %q): send user %s from %s, base64-encoded, to %s only",
			basic.params["realm"], a.creds.Username, a.creds.From, a.c.host),
			trace.Cmd("curl", "-si", "-u", a.creds.Username+":…", a.c.base+"/v2/"))
		return nil
	}
	return fmt.Errorf("%s: 401 with no challenge pull understands: %q", a.c.base, values)
}

func (a *authState) loginHint() string {
	return fmt.Sprintf(`put credentials for %s in %s: {"auths":{"%s":{"auth":"<base64 of user:password>"}}}`,
		a.c.host, dockerConfigFile(""), a.c.host)
}

// denied is a 401 after we already answered the challenge.
func (a *authState) denied() error {
	if a.creds.any() {
		return cli.Errorf("check the user name and password in "+a.creds.From,
			"%s refused the credentials of %s for %s", a.c.host, a.creds.Username, a.c.repo)
	}
	return cli.Errorf(a.loginHint(), "%s refused anonymous access to %s", a.c.host, a.c.repo)
}

// refused is a 401 that reached the caller: the challenge was answered and refused again.
func (a *authState) refused(resp *http.Response) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.denied()
}

// fetchToken asks the realm for a token on a.scopes: with the identity token as an OAuth2
// refresh token when there is one, else a GET with the user name and password (if any) as
// Basic auth. Called with a.mu held.
func (a *authState) fetchToken(ctx context.Context) error {
	u, err := url.Parse(a.realm)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: bad token realm %q", a.c.base, a.realm)
	}
	if err := a.c.checkTarget(u); err != nil {
		return fmt.Errorf("token realm %s: %w", a.realm, err)
	}
	var req *http.Request
	if a.creds.IdentityToken != "" {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.creds.IdentityToken},
			"client_id": {"hardway"}, "service": {a.service}, "scope": {strings.Join(a.scopes, " ")}}
		trace.Step("ask the realm for a token with the identity token from "+a.creds.From+" (OAuth2 refresh_token grant)",
			trace.Cmd("curl", "-s", "-d", "grant_type=refresh_token&refresh_token=…&service="+a.service+"&scope="+strings.Join(a.scopes, " "), a.realm))
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, a.realm, strings.NewReader(form.Encode()))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		q := u.Query()
		if a.service != "" {
			q.Set("service", a.service)
		}
		q.Del("scope")
		for _, s := range a.scopes {
			q.Add("scope", s)
		}
		u.RawQuery = q.Encode()
		who := "an anonymous"
		if a.creds.Username != "" {
			who = "a " + a.creds.Username + "'s"
		}
		trace.Step("ask the realm for "+who+" pull token",
			trace.Cmd("curl", "-s", u.String())+" | jq -r '.token // .access_token'")
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		if a.creds.Username != "" {
			req.SetBasicAuth(a.creds.Username, a.creds.Password)
		}
	}
	req.Header.Set("User-Agent", "hardway-pull/0")
	resp, err := a.c.http.Do(req)
	if err != nil {
		return a.c.netError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := statusError(resp, "token for "+a.c.repo+" from "+u.Host)
		if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
			return cli.Hint(err, "the image may be private: "+a.loginHint())
		}
		return err
	}
	var tok struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenBytes)).Decode(&tok); err != nil {
		return fmt.Errorf("token for %s: %w", a.c.repo, err)
	}
	a.token = tok.Token
	if a.token == "" {
		a.token = tok.AccessToken
	}
	if a.token == "" {
		return fmt.Errorf("token for %s: the realm answered without a token", a.c.repo)
	}
	life := time.Duration(tok.ExpiresIn) * time.Second
	if life < minTokenLife {
		life = minTokenLife
	}
	// Refresh a little early so a token does not die in flight.
	a.expires = timeNow().Add(life - life/10)
	trace.Step(fmt.Sprintf("got a token valid for %s; every request now carries Authorization: Bearer …", life))
	return nil
}
