package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Media types pull accepts, in the order it asks for them.
var acceptTypes = []string{
	layout.MediaTypeDockerManifest,
	layout.MediaTypeDockerManifestList,
	ocispec.MediaTypeImageManifest,
	ocispec.MediaTypeImageIndex,
}

// maxIndexDepth bounds how deep indexes inside indexes are followed.
const maxIndexDepth = 4

// Docker's schema1 manifests, which pull refuses.
const (
	mediaTypeSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	mediaTypeSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
)

// Options tune a pull.
type Options struct {
	// Platform is os/arch[/variant] to pick out of an index; empty means this host's.
	Platform string
	// Insecure speaks plain HTTP to any registry, not only to the loopback.
	Insecure bool
	// Progress, when set (a terminal), gets a bar per blob, redrawn in place.
	Progress io.Writer
	// DockerConfig is the directory of config.json with credentials; empty means
	// $DOCKER_CONFIG, else ~/.docker.
	DockerConfig string

	// Retries is how many times a failed request or a broken download is tried again
	// (0: the default, 4; negative: never). RetryBase is the first backoff wait, doubled
	// each time (default 500ms). IdleTimeout ends a transfer that sends nothing for that
	// long (default 60s). Tests shorten them.
	Retries     int
	RetryBase   time.Duration
	IdleTimeout time.Duration
}

// Blob is one blob of the pulled image and what pull did with it.
type Blob struct {
	Kind    string        `json:"kind"` // config or layer
	Digest  digest.Digest `json:"digest"`
	Size    int64         `json:"size"`
	Fetched bool          `json:"fetched"` // false: it was already in the store
}

// Result is what a pull produced.
type Result struct {
	Handle    string              `json:"handle"`    // NAME@sha256:… of the image manifest
	Reference string              `json:"reference"` // the normalised reference pulled
	RefName   string              `json:"refName"`   // the index.json ref name
	Manifest  ocispec.Descriptor  `json:"manifest"`
	Index     *ocispec.Descriptor `json:"index,omitempty"` // the index it was picked from
	// OCI is what RefName names in index.json when the manifest has Docker media types:
	// its OCI translation, for OCI-only readers (skopeo 1.9, umoci).
	OCI   *ocispec.Descriptor `json:"oci,omitempty"`
	Blobs []Blob              `json:"blobs"`
	// Local says the store already held the image and the registry was not asked
	// (--missing, --offline).
	Local bool `json:"local,omitempty"`
}

// Pull fetches ref into the store and returns the pinned handle of its image manifest.
func Pull(ctx context.Context, ref reference.Reference, opts Options) (*Result, error) {
	want, err := ParsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	if err := layout.Init(); err != nil {
		return nil, fmt.Errorf("init the image store %s: %w", state.OCIDir(), err)
	}
	c := newClient(ref, opts)
	if err := c.ping(ctx); err != nil {
		return nil, err
	}

	body, mt, d, err := c.manifest(ctx, ref.Object(), "")
	if err != nil {
		return nil, err
	}
	if ref.Digest != "" && d != ref.Digest {
		return nil, fmt.Errorf("manifest of %s hashes to %s, not the digest asked for", ref, d)
	}
	res := &Result{Reference: ref.String(), RefName: ref.RefName()}
	desc := ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body))}

	var plat *ocispec.Platform
	for depth := 0; isIndex(mt); depth++ {
		if depth == maxIndexDepth {
			return nil, fmt.Errorf("%s: indexes nested more than %d deep; refusing", ref, maxIndexDepth)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w", d, err)
		}
		pick, err := pickPlatform(idx.Manifests, want)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ref, err)
		}
		var choices []string
		for _, m := range idx.Manifests {
			if m.Platform != nil {
				choices = append(choices, Platform{m.Platform.OS, m.Platform.Architecture, m.Platform.Variant}.String())
			} else if isIndex(m.MediaType) {
				choices = append(choices, "an index")
			}
		}
		trace.Step(fmt.Sprintf("%s is an index of %d manifests (%s): pick %s → %s, and keep the index too", short(d), len(idx.Manifests), strings.Join(choices, ", "), want, short(pick.Digest)),
			trace.Cmd("jq", ".manifests[] | select(.platform.os==\""+want.OS+"\" and .platform.architecture==\""+want.Architecture+"\")"))
		if _, err := layout.PutBlob(body); err != nil {
			return nil, fmt.Errorf("store index %s: %w", d, err)
		}
		if res.Index == nil {
			indexDesc := desc
			res.Index = &indexDesc
		}
		body, mt, d, err = c.manifest(ctx, pick.Digest.String(), pick.MediaType)
		if err != nil {
			return nil, err
		}
		if d != pick.Digest || int64(len(body)) != pick.Size {
			return nil, fmt.Errorf("manifest %s from the index came back as %d bytes hashing to %s", pick.Digest, len(body), d)
		}
		if pick.Platform != nil {
			p := *pick.Platform
			plat = &p
		}
		desc = ocispec.Descriptor{MediaType: mt, Digest: d, Size: int64(len(body)), Platform: plat}
	}

	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	if m.Config.Digest == "" {
		return nil, fmt.Errorf("manifest %s names no config", d)
	}
	blobs := []Blob{{Kind: "config", Digest: m.Config.Digest, Size: m.Config.Size}}
	for _, l := range m.Layers {
		blobs = append(blobs, Blob{Kind: "layer", Digest: l.Digest, Size: l.Size})
	}
	if err := c.fetchBlobs(ctx, blobs, newProgress(opts.Progress)); err != nil {
		return nil, err
	}
	// The manifest goes in only after its blobs, and the tag after the manifest, so a name
	// in index.json always leads to a complete image.
	if _, err := layout.PutBlob(body); err != nil {
		return nil, fmt.Errorf("store manifest %s: %w", d, err)
	}
	if err := record(res, desc, ref.RefName()); err != nil {
		return nil, err
	}
	res.Handle = ref.Pinned(d)
	res.Manifest = desc
	res.Blobs = blobs
	return res, nil
}

// record names image manifest desc refName in index.json (layout.TagImage: a Docker
// manifest gets an OCI translation under the name) and notes the translation in res.
func record(res *Result, desc ocispec.Descriptor, refName string) error {
	idxPath := filepath.Join(state.OCIDir(), "index.json")
	lock := filepath.Join(state.LockDir(), "oci.lock")
	entry := func(d ocispec.Descriptor) string {
		s := fmt.Sprintf("{mediaType: %q, digest: %q, size: %d", d.MediaType, d.Digest, d.Size)
		var kv []string
		for _, k := range slices.Sorted(maps.Keys(d.Annotations)) {
			kv = append(kv, fmt.Sprintf("%q: %q", k, d.Annotations[k]))
		}
		if len(kv) > 0 {
			s += ", annotations: {" + strings.Join(kv, ", ") + "}"
		}
		return s + "}"
	}
	if desc.MediaType == layout.MediaTypeDockerManifest {
		trace.Step("the manifest has Docker media types, which OCI-only readers (skopeo 1.9, umoci) do not look up by name: "+
			"store its OCI translation (the same bytes with the media types renamed: same config, same layers) and name that "+refName+
			"; keep the registry's manifest as an entry of no name (under flock "+lock+")",
			"sed -e 's|"+layout.MediaTypeDockerManifest+"|"+ocispec.MediaTypeImageManifest+"|' -e 's|"+layout.MediaTypeDockerConfig+"|"+ocispec.MediaTypeImageConfig+
				"|' -e 's|"+layout.MediaTypeDockerLayerGzip+"|"+ocispec.MediaTypeImageLayerGzip+"|g' "+layout.BlobPath(desc.Digest)+" | sha256sum")
	} else {
		trace.Step("record the manifest in the layout's index.json under the name "+refName+" (under flock "+lock+")",
			"jq '.manifests += ["+entry(ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size,
				Annotations: map[string]string{ocispec.AnnotationRefName: refName}})+"]' "+idxPath+" > index.json.tmp && mv index.json.tmp "+idxPath)
	}
	named, err := layout.TagImage(desc, refName)
	if err != nil {
		return fmt.Errorf("record %s in index.json: %w", refName, err)
	}
	if named.Digest != desc.Digest {
		trace.Step(fmt.Sprintf("%s names the OCI translation %s (annotated %s: %s)", refName, short(named.Digest), layout.AnnotationConvertedFrom, short(desc.Digest)),
			"jq '.manifests += ["+entry(ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size})+", "+entry(named)+"]' "+idxPath+" > index.json.tmp && mv index.json.tmp "+idxPath)
		named.Annotations = nil
		res.OCI = &named
	}
	return nil
}

// manifest fetches a manifest or index by tag or digest and returns its exact bytes, its
// media type and the digest of the bytes (never the registry's Docker-Content-Digest).
func (c *client) manifest(ctx context.Context, object, expectType string) ([]byte, string, digest.Digest, error) {
	url := c.base + "/v2/" + c.repo + "/manifests/" + object
	accept := acceptTypes
	trace.Step("fetch the manifest "+c.repo+":"+object+", accepting Docker schema2 and OCI manifests and indexes",
		trace.Cmd("curl", "-s", "-H", "Accept: "+strings.Join(accept, ", "), url))
	var (
		resp *http.Response
		body []byte
	)
	// A connection that breaks while the body arrives is retried like one that breaks
	// before the answer (do retries those).
	for attempt := 0; ; attempt++ {
		var err error
		resp, err = c.do(ctx, http.MethodGet, url, http.Header{"Accept": {strings.Join(accept, ", ")}})
		if err != nil {
			return nil, "", "", err
		}
		if resp.StatusCode != http.StatusOK {
			defer resp.Body.Close()
			err := statusError(resp, "manifest "+c.repo+":"+object)
			switch resp.StatusCode {
			case http.StatusNotFound:
				return nil, "", "", cli.Hint(err, "check the name and tag: curl "+c.base+"/v2/"+c.repo+"/tags/list")
			case http.StatusUnauthorized:
				return nil, "", "", c.auth.refused(resp)
			}
			return nil, "", "", err
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, MaxManifestBytes+1))
		resp.Body.Close()
		if err == nil {
			break
		}
		if !retryable(err) || attempt >= c.retries || ctx.Err() != nil {
			return nil, "", "", fmt.Errorf("manifest %s: %w", object, err)
		}
		trace.Step(fmt.Sprintf("the manifest broke off (%v): ask again", err))
		select {
		case <-ctx.Done():
			return nil, "", "", ctx.Err()
		case <-timeAfter(c.backoff(attempt)):
		}
	}
	if len(body) > MaxManifestBytes {
		return nil, "", "", fmt.Errorf("manifest %s is larger than %d bytes; refusing it", object, MaxManifestBytes)
	}
	d := digest.FromBytes(body)
	mt, err := manifestType(body, contentType(resp))
	if err != nil {
		return nil, "", "", fmt.Errorf("manifest %s: %w", object, err)
	}
	if expectType != "" && expectType != mt {
		return nil, "", "", fmt.Errorf("manifest %s is a %s, the index said %s", object, mt, expectType)
	}
	note := ""
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" && !strings.HasPrefix(object, "sha256:") {
		note = " (its Docker-Content-Digest header is not trusted on a tag pull)"
	}
	trace.Step(fmt.Sprintf("%s: %d bytes of %s; the digest is the sha256 of exactly those bytes: %s%s", resp.Status, len(body), mt, short(d), note),
		trace.Cmd("curl", "-s", "-H", "Accept: "+mt, url)+" | sha256sum")
	return body, mt, d, nil
}

// manifestType decides what a manifest is from its body and Content-Type, refusing
// schema1, unknown types, and a body whose mediaType contradicts the header.
func manifestType(body []byte, ct string) (string, error) {
	var head struct {
		SchemaVersion int             `json:"schemaVersion"`
		MediaType     string          `json:"mediaType"`
		Manifests     json.RawMessage `json:"manifests"`
		Config        json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(body, &head); err != nil {
		return "", fmt.Errorf("not JSON: %w", err)
	}
	if head.SchemaVersion == 1 || ct == mediaTypeSchema1 || ct == mediaTypeSchema1Signed {
		return "", cli.Errorf("push the image again with a current client (docker, crane, skopeo)",
			"it is a Docker schema1 manifest, which Docker itself no longer pulls")
	}
	if ct == "application/json" || ct == "text/plain" || ct == "application/octet-stream" {
		ct = "" // a generic type says nothing
	}
	mt := head.MediaType
	switch {
	case mt != "" && ct != "" && mt != ct:
		return "", fmt.Errorf("Content-Type %s does not match its mediaType %s", ct, mt)
	case mt == "":
		mt = ct
	}
	if mt == "" { // OCI lets mediaType out; tell by the shape
		switch {
		case head.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case head.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		}
	}
	for _, a := range acceptTypes {
		if mt == a {
			return mt, nil
		}
	}
	return "", fmt.Errorf("unsupported media type %q (want one of %s)", mt, strings.Join(acceptTypes, ", "))
}

func isIndex(mt string) bool {
	return mt == ocispec.MediaTypeImageIndex || mt == layout.MediaTypeDockerManifestList
}

// Platform is what an index is searched for.
type Platform struct{ OS, Architecture, Variant string }

func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// ParsePlatform reads os/arch[/variant]; empty means this host's.
func ParsePlatform(s string) (Platform, error) {
	if s == "" {
		return Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, cli.Errorf("e.g. linux/amd64 or linux/arm64/v8", "bad platform %q", s)
	}
	p := Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p.normal(), nil
}

// normal spells a platform the way indexes do, as containerd's platform database does:
// uname's x86_64 and aarch64, Debian's armhf, and arm64's default variant v8.
func (p Platform) normal() Platform {
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "i386", "i686":
		p.Architecture = "386"
	}
	if p.Architecture == "arm64" && p.Variant == "v8" {
		p.Variant = ""
	}
	return p
}

func pickPlatform(ms []ocispec.Descriptor, want Platform) (ocispec.Descriptor, error) {
	var have []string
	for _, m := range ms {
		if m.Platform == nil {
			continue
		}
		raw := Platform{m.Platform.OS, m.Platform.Architecture, m.Platform.Variant}
		if raw.OS == "unknown" {
			continue // buildx attestations, not images
		}
		p := raw.normal()
		if p.OS == want.OS && p.Architecture == want.Architecture && (want.Variant == "" || p.Variant == want.Variant) {
			return m, nil
		}
		have = append(have, raw.String())
	}
	// An index inside the index (no platform of its own) may hold the platform: look in it.
	for _, m := range ms {
		if m.Platform == nil && isIndex(m.MediaType) {
			return m, nil
		}
	}
	return ocispec.Descriptor{}, cli.Errorf("pick one with --platform", "no manifest for %s in the index (it has: %s)", want, strings.Join(have, ", "))
}

// short is a digest cut for people: sha256:0123456789ab.
func short(d digest.Digest) string {
	s := d.String()
	if i := strings.Index(s, ":"); i >= 0 && len(s) > i+13 {
		return s[:i+13]
	}
	return s
}
