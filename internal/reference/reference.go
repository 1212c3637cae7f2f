// Package reference parses image references the way Docker writes them (busybox,
// library/busybox:1.36, 127.0.0.1:5000/x@sha256:…) and normalises them as Docker does:
// docker.io is the default registry, library/ is added only on Docker Hub, latest is the
// default tag.
package reference

import (
	"fmt"
	"strings"

	digest "github.com/opencontainers/go-digest"
)

const (
	// DefaultDomain is the registry a reference without a domain names.
	DefaultDomain = "docker.io"
	// DefaultTag is the tag a reference without tag or digest names.
	DefaultTag = "latest"
	// maxNameLen is the distribution spec's limit on domain/path.
	maxNameLen = 255
)

// The grammar of Docker's reference package, matched by hand: the three regexps it takes
// cost pull about 3 ms to compile at every start (a third of its no-op `--missing` run).
//
//	component  [a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*
//	domain     host(?::[0-9]+)?, host = label(?:\.label)* | \[[a-fA-F0-9:]+\],
//	           label = [a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?
//	tag        [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}

func isLowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }
func isAlnum(c byte) bool      { return isLowerAlnum(c) || c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool      { return c >= '0' && c <= '9' }
func isHex(c byte) bool        { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// validComponent: runs of lowercase alphanumerics, joined by '.', '_', "__" or dashes.
func validComponent(s string) bool {
	for i := 0; ; {
		j := i
		for j < len(s) && isLowerAlnum(s[j]) {
			j++
		}
		if j == i {
			return false // empty, or a separator at the start, end or twice
		}
		if j == len(s) {
			return true
		}
		switch k := j; {
		case s[k] == '.':
			i = k + 1
		case s[k] == '_':
			if i = k + 1; i < len(s) && s[i] == '_' {
				i++
			}
		case s[k] == '-':
			for i = k; i < len(s) && s[i] == '-'; i++ {
			}
		default:
			return false
		}
	}
}

// validDomain: a host name or IPv4 address, or an IPv6 literal in brackets, with an
// optional port.
func validDomain(s string) bool {
	host := s
	if i := strings.LastIndexByte(s, ':'); i >= 0 && !strings.HasSuffix(s, "]") {
		host = s[:i]
		port := s[i+1:]
		if port == "" {
			return false
		}
		for j := 0; j < len(port); j++ {
			if !isDigit(port[j]) {
				return false
			}
		}
	}
	if strings.HasPrefix(host, "[") {
		in, ok := strings.CutSuffix(host[1:], "]")
		if !ok || in == "" {
			return false
		}
		for j := 0; j < len(in); j++ {
			if !isHex(in[j]) && in[j] != ':' {
				return false
			}
		}
		return true
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || !isAlnum(label[0]) || !isAlnum(label[len(label)-1]) {
			return false
		}
		for j := 0; j < len(label); j++ {
			if !isAlnum(label[j]) && label[j] != '-' {
				return false
			}
		}
	}
	return true
}

// validTag: up to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-'.
func validTag(s string) bool {
	if s == "" || len(s) > 128 || s[0] == '.' || s[0] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAlnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-' {
			return false
		}
	}
	return true
}

// Reference is a parsed, normalised image reference.
type Reference struct {
	Domain string        // docker.io, 127.0.0.1:5000, [::1]:5000
	Path   string        // library/busybox
	Tag    string        // latest (empty when pinned by digest only)
	Digest digest.Digest // empty unless pinned
}

// Name is the repository without tag or digest: 127.0.0.1:5000/library/busybox.
func (r Reference) Name() string { return r.Domain + "/" + r.Path }

// String is the full normalised reference: NAME[:TAG][@DIGEST].
func (r Reference) String() string {
	s := r.Name()
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest.String()
	}
	return s
}

// Object is what the registry's manifests endpoint is asked for: the digest when pinned
// (a digest wins over a tag, as in Docker), else the tag.
func (r Reference) Object() string {
	if r.Digest != "" {
		return r.Digest.String()
	}
	return r.Tag
}

// RefName is the name recorded in the layout's index.json
// (org.opencontainers.image.ref.name): NAME:TAG, or NAME@DIGEST when pulled by digest.
func (r Reference) RefName() string {
	if r.Digest != "" {
		return r.Name() + "@" + r.Digest.String()
	}
	return r.Name() + ":" + r.Tag
}

// Pinned is the handle of the image with manifest digest d: NAME@sha256:….
func (r Reference) Pinned(d digest.Digest) string { return r.Name() + "@" + d.String() }

// Parse parses and normalises a reference.
func Parse(s string) (Reference, error) {
	var r Reference
	orig := s
	if s == "" {
		return r, fmt.Errorf("empty image reference")
	}
	if strings.TrimSpace(s) != s || strings.ContainsAny(s, " \t\n") {
		return r, fmt.Errorf("invalid reference %q: it contains white space", orig)
	}
	if i := strings.Index(s, "@"); i >= 0 {
		d := digest.Digest(s[i+1:])
		if err := d.Validate(); err != nil {
			return r, fmt.Errorf("invalid reference %q: bad digest %q: %v", orig, s[i+1:], err)
		}
		r.Digest = d
		s = s[:i]
	}
	// A tag is after the last ':' that follows the last '/', so a port is not a tag.
	if i := strings.LastIndex(s, ":"); i > strings.LastIndex(s, "/") {
		tag := s[i+1:]
		if !validTag(tag) {
			return r, fmt.Errorf("invalid reference %q: bad tag %q (use up to 128 of letters, digits, '_', '.', '-', not starting with '.' or '-')", orig, tag)
		}
		r.Tag = tag
		s = s[:i]
	}
	if s == "" {
		return r, fmt.Errorf("invalid reference %q: no repository name", orig)
	}
	// The first component is a registry only if it looks like one: it has a '.' or a ':',
	// is localhost, or has upper case (which a path never has).
	domain, path := DefaultDomain, s
	if i := strings.Index(s, "/"); i >= 0 {
		first := s[:i]
		if strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first {
			domain, path = first, s[i+1:]
		}
	}
	if !validDomain(domain) {
		return r, fmt.Errorf("invalid reference %q: bad registry address %q", orig, domain)
	}
	if domain == "index.docker.io" {
		domain = DefaultDomain
	}
	if path == "" {
		return r, fmt.Errorf("invalid reference %q: no repository name after the registry", orig)
	}
	for _, c := range strings.Split(path, "/") {
		if !validComponent(c) {
			if strings.ToLower(c) == c || !validComponent(strings.ToLower(c)) {
				return r, fmt.Errorf("invalid reference %q: bad repository name component %q (lowercase letters, digits and separators . _ __ -)", orig, c)
			}
			return r, fmt.Errorf("invalid reference %q: repository name must be lowercase", orig)
		}
	}
	if domain == DefaultDomain && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if n := len(domain) + 1 + len(path); n > maxNameLen {
		return r, fmt.Errorf("invalid reference %q: repository name is %d characters, more than %d", orig, n, maxNameLen)
	}
	r.Domain, r.Path = domain, path
	if r.Tag == "" && r.Digest == "" {
		r.Tag = DefaultTag
	}
	return r, nil
}
