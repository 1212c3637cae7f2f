// Package registry pulls an image from a registry that speaks the OCI distribution API into
// the shared OCI image layout: ping, answer the auth challenge (Bearer token or Basic), fetch
// the manifest (and pick the platform's manifest out of an index), then fetch every blob,
// verifying size and digest as it streams and resuming with Range after a broken
// connection, before recording the image in index.json.
package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/trace"
)

const (
	// MaxManifestBytes caps a manifest or index body, as containerd and skopeo do.
	MaxManifestBytes = 4 << 20
	// maxErrorBytes caps how much of an error body is read.
	maxErrorBytes = 64 << 10
	// maxRedirects bounds a chain of redirects, as Go and ggcr do.
	maxRedirects = 10
	// maxRetryAfter caps how long a Retry-After may make us wait.
	maxRetryAfter = 60 * time.Second

	dialTimeout   = 10 * time.Second
	headerTimeout = 30 * time.Second
)

// Defaults for the Options a test may shorten.
const (
	defaultRetries     = 4
	defaultRetryBase   = 500 * time.Millisecond
	defaultIdleTimeout = 60 * time.Second
)

// client talks to one repository of one registry.
type client struct {
	base string // scheme://host
	host string // host[:port], the only host that gets our credentials
	repo string // library/busybox
	http *http.Client

	retries   int
	retryBase time.Duration
	idle      time.Duration

	auth *authState
}

func newClient(ref reference.Reference, opts Options) *client {
	host := ref.Domain
	if host == reference.DefaultDomain {
		// docker.io is the name; the API lives on registry-1.docker.io.
		host = "registry-1.docker.io"
	}
	scheme := "https"
	if opts.Insecure || isLocal(host) {
		scheme = "http"
	}
	dialer := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	hdrTimeout := headerTimeout
	if opts.IdleTimeout > 0 && opts.IdleTimeout < hdrTimeout {
		hdrTimeout = opts.IdleTimeout
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSHandshakeTimeout:   dialTimeout,
		ResponseHeaderTimeout: hdrTimeout,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       30 * time.Second,
	}
	c := &client{
		base: scheme + "://" + host, host: host, repo: ref.Path,
		retries: opts.Retries, retryBase: opts.RetryBase, idle: opts.IdleTimeout,
	}
	if c.retries == 0 {
		c.retries = defaultRetries
	} else if c.retries < 0 {
		c.retries = 0
	}
	if c.retryBase <= 0 {
		c.retryBase = defaultRetryBase
	}
	if c.idle <= 0 {
		c.idle = defaultIdleTimeout
	}
	c.auth = newAuthState(c, lookupCredentials(opts.DockerConfig, ref.Domain, host))
	c.http = &http.Client{Transport: tr, CheckRedirect: c.checkRedirect}
	return c
}

// redirectError is a redirect we refuse; it is never retried.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// checkRedirect follows blob redirects (to S3 or a CDN, say) a bounded number of times,
// only to http(s), and never takes our credentials to another host.
func (c *client) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return &redirectError{fmt.Sprintf("stopped after %d redirects (a loop?)", maxRedirects)}
	}
	if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
		return &redirectError{fmt.Sprintf("refusing a redirect to %s: only http and https", req.URL.Scheme)}
	}
	if err := c.checkTarget(req.URL); err != nil {
		return err
	}
	note := ""
	if req.URL.Host != c.host {
		req.Header.Del("Authorization")
		note = " (another host: our credentials stay behind)"
	}
	trace.Step("the registry redirects to "+req.URL.Host+note, trace.Cmd("curl", "-sL", req.URL.String()))
	return nil
}

// checkTarget refuses a redirect or a token realm that points at an address a registry
// has no business sending us to (ggcr's guard against server-side request forgery): a
// link-local or unspecified IP literal (cloud metadata lives at 169.254.169.254) always, and
// a loopback or private one unless the registry itself is on such an address.
func (c *client) checkTarget(u *url.URL) error {
	ip := net.ParseIP(u.Hostname())
	if ip == nil {
		return nil
	}
	if ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() || ip.IsUnspecified() {
		return &redirectError{fmt.Sprintf("refusing to be sent to the link-local or unspecified address %s", u.Host)}
	}
	if ip.IsLoopback() || ip.IsPrivate() {
		reg := net.ParseIP(strings.Trim(hostOnly(c.host), "[]"))
		if !isLocal(c.host) && (reg == nil || !(reg.IsLoopback() || reg.IsPrivate())) {
			return &redirectError{fmt.Sprintf("refusing to be sent from %s to the private address %s", c.host, u.Host)}
		}
	}
	return nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// isLocal reports whether host (with an optional port) is the loopback, which is spoken to
// over plain HTTP as Docker and containerd do for localhost registries.
func isLocal(host string) bool {
	h := host
	if sh, _, err := net.SplitHostPort(host); err == nil {
		h = sh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// do sends one request to the registry and returns the first answer worth acting on. It
// answers auth challenges (once per request), and retries connection errors and the
// statuses a busy or flaky registry sends (408, 429, 5xx) with exponential backoff,
// honouring Retry-After. The returned body ends the request when idle for the idle
// timeout; the caller closes it.
func (c *client) do(ctx context.Context, method, rawurl string, hdr http.Header) (*http.Response, error) {
	reauthed := false
	for attempt := 0; ; attempt++ {
		resp, err := c.once(ctx, method, rawurl, hdr)
		var wait time.Duration
		switch {
		case err != nil:
			if !retryable(err) || attempt >= c.retries || ctx.Err() != nil {
				return nil, c.netError(err)
			}
			trace.Step(fmt.Sprintf("%s %s failed (%v): try again", method, path(rawurl), err))
		case resp.StatusCode == http.StatusUnauthorized && !reauthed:
			reauthed = true
			ch := resp.Header.Values("WWW-Authenticate")
			drain(resp)
			if err := c.auth.challenge(ctx, ch); err != nil {
				return nil, err
			}
			attempt-- // an answered challenge is not a failure
			continue
		case retryStatus(resp.StatusCode) && attempt < c.retries:
			wait = retryAfter(resp.Header.Get("Retry-After"))
			trace.Step(fmt.Sprintf("%s %s answered %s: try again", method, path(rawurl), resp.Status))
			drain(resp)
		default:
			return resp, nil
		}
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// once sends a single request, with credentials only when it goes to the registry itself.
func (c *client) once(ctx context.Context, method, rawurl string, hdr http.Header) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, method, rawurl, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("User-Agent", "hardway-pull/0")
	if req.URL.Host == c.host {
		if a := c.auth.header(ctx); a != "" {
			req.Header.Set("Authorization", a)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		cancel()
		return nil, err
	}
	resp.Body = newIdleBody(resp.Body, cancel, c.idle)
	return resp, nil
}

// backoff is base·2^attempt with a little jitter, so parallel downloads do not retry in step.
func (c *client) backoff(attempt int) time.Duration {
	d := c.retryBase << attempt
	return d + time.Duration(time.Now().UnixNano()%int64(d/10+1))
}

func retryStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests ||
		code == http.StatusInternalServerError || code == http.StatusBadGateway ||
		code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

// retryAfter reads Retry-After (seconds or an HTTP date); 0 means none.
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	var d time.Duration
	if s, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && s >= 0 {
		d = time.Duration(s) * time.Second
	} else if t, err := http.ParseTime(h); err == nil {
		d = time.Until(t)
	}
	if d > maxRetryAfter {
		d = maxRetryAfter
	}
	if d <= 0 {
		d = time.Millisecond // "now": still not the exponential wait
	}
	return d
}

// retryable tells a broken connection or a timeout (worth another try) from a refusal, a
// bad address, a TLS failure or a redirect we refused (not worth one).
func retryable(err error) bool {
	var re *redirectError
	if errors.As(err, &re) || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	var ne net.Error
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, errIdle) || (errors.As(err, &ne) && ne.Timeout())
}

func drain(resp *http.Response) {
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
	resp.Body.Close()
}

func path(rawurl string) string {
	if u, err := url.Parse(rawurl); err == nil {
		return u.Path
	}
	return rawurl
}

func (c *client) netError(err error) error {
	var re *redirectError
	if errors.As(err, &re) {
		return fmt.Errorf("%s: %s", c.base, re.msg)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	hint := "is the registry running? scripts/registry start"
	if strings.HasPrefix(c.base, "https") {
		hint = "check the address; a registry without TLS needs --insecure"
	}
	return cli.Errorf(hint, "cannot reach %s: %v", c.base, err)
}

// ping checks that the registry speaks the v2 API, answering its auth challenge if it has
// one, so that the first manifest request already carries the right credentials.
func (c *client) ping(ctx context.Context) error {
	url := c.base + "/v2/"
	trace.Step("ping the registry: does it speak the distribution API (/v2/), and does it want credentials?",
		trace.Cmd("curl", "-si", url))
	resp, err := c.do(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		trace.Step("200 OK: a v2 registry" + c.auth.describe())
		return nil
	case http.StatusUnauthorized:
		return c.auth.refused(resp)
	default:
		return fmt.Errorf("%s: GET /v2/ answered %s, not a distribution API registry", c.base, resp.Status)
	}
}

// statusError turns a non-200 answer into an error, with the registry's own message.
func statusError(resp *http.Response, what string) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body struct {
		Errors []struct{ Code, Message string }
	}
	msg := resp.Status
	if json.Unmarshal(b, &body) == nil && len(body.Errors) > 0 {
		var parts []string
		for _, e := range body.Errors {
			parts = append(parts, strings.TrimSpace(e.Code+": "+e.Message))
		}
		msg += ": " + strings.Join(parts, "; ")
	}
	return fmt.Errorf("%s: %s", what, msg)
}

// contentType is the media type of a response without its parameters.
func contentType(resp *http.Response) string {
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// errIdle is a transfer that stalled longer than the idle timeout.
var errIdle = errors.New("no data from the registry within the read timeout")

// idleBody cancels its request when no byte has arrived for the idle timeout, and releases
// the request's context when closed.
type idleBody struct {
	rc      io.ReadCloser
	cancel  context.CancelFunc
	timeout time.Duration
	timer   *time.Timer
	mu      sync.Mutex
	idle    bool
}

func newIdleBody(rc io.ReadCloser, cancel context.CancelFunc, timeout time.Duration) *idleBody {
	b := &idleBody{rc: rc, cancel: cancel, timeout: timeout}
	b.timer = time.AfterFunc(timeout, func() {
		b.mu.Lock()
		b.idle = true
		b.mu.Unlock()
		cancel()
	})
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF {
		b.mu.Lock()
		idle := b.idle
		b.mu.Unlock()
		if idle {
			err = fmt.Errorf("%w (%s)", errIdle, b.timeout)
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel()
	return err
}
