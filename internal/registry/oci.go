package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// ParseOCIRef splits oci:DIR[:TAG], the way skopeo names an image in a layout. ok is false
// when s does not start with oci:.
func ParseOCIRef(s string) (dir, tag string, ok bool) {
	rest, ok := strings.CutPrefix(s, "oci:")
	if !ok {
		return "", "", false
	}
	dir, tag, _ = strings.Cut(rest, ":")
	return dir, tag, true
}

var nameJunkRE = regexp.MustCompile(`[^a-z0-9]+`)

// importName is the name an imported image gets in the store: its tag when that is a full
// reference (as our own layout writes them), else localhost/oci/<dir's name>:<tag>, the
// localhost/ that Podman gives images that come from no registry.
func importName(dir, tag string) (reference.Reference, error) {
	if strings.Contains(tag, "/") {
		if r, err := reference.Parse(tag); err == nil {
			return r, nil
		}
	}
	base := strings.Trim(nameJunkRE.ReplaceAllString(strings.ToLower(filepath.Base(filepath.Clean(dir))), "-"), "-")
	if base == "" {
		base = "image"
	}
	if tag == "" {
		tag = reference.DefaultTag
	}
	r, err := reference.Parse("localhost/oci/" + base + ":" + tag)
	if err != nil {
		return r, cli.Hint(err, "name the image in the layout with a plain tag: skopeo copy … oci:DIR:TAG")
	}
	return r, nil
}

// ImportLayout copies an image out of the OCI image layout at dir (written by skopeo copy
// … oci:DIR:TAG, umoci, crane, or another hardway store) into ours, verifying every blob
// as a registry pull does, and records it under importName.
func ImportLayout(dir, tag string, opts Options) (*Result, error) {
	want, err := ParsePlatform(opts.Platform)
	if err != nil {
		return nil, err
	}
	src := layoutDir(dir)
	b, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile))
	if err != nil {
		return nil, cli.Errorf("write one with: skopeo copy docker://… oci:"+dir+":TAG", "%s is not an OCI image layout: %v", dir, err)
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(b, &lay); err != nil || lay.Version == "" {
		return nil, fmt.Errorf("%s/%s: not an image layout marker", dir, ocispec.ImageLayoutFile)
	}
	ib, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(ib, &idx); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	trace.Step(fmt.Sprintf("read %s/index.json: %d entries; look for the one named %q", dir, len(idx.Manifests), tag),
		trace.Cmd("jq", ".manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"]==\""+tag+"\")", filepath.Join(dir, "index.json")))
	desc, err := pickByName(idx.Manifests, tag, dir)
	if err != nil {
		return nil, err
	}
	name, err := importName(dir, tag)
	if err != nil {
		return nil, err
	}
	if err := layout.Init(); err != nil {
		return nil, fmt.Errorf("init the image store %s: %w", state.OCIDir(), err)
	}
	res := &Result{Reference: "oci:" + dir + ":" + tag, RefName: name.RefName()}

	body, mt, err := src.manifest(desc)
	if err != nil {
		return nil, err
	}
	// Another hardway store names the OCI translation of a Docker manifest: take the
	// registry's manifest it came from, when it is there and translates to exactly this.
	if from := digest.Digest(desc.Annotations[layout.AnnotationConvertedFrom]); from != "" && mt == ocispec.MediaTypeImageManifest {
		if ob, omt, err := src.manifest(ocispec.Descriptor{Digest: from, Size: src.size(from)}); err == nil && omt == layout.MediaTypeDockerManifest {
			if tb, err := layout.ToOCI(ob); err == nil && digest.FromBytes(tb) == desc.Digest {
				trace.Step(fmt.Sprintf("%s is the OCI translation of the Docker manifest %s (%s): import that one", short(desc.Digest), short(from), layout.AnnotationConvertedFrom))
				body, mt = ob, omt
				desc = ocispec.Descriptor{MediaType: omt, Digest: from, Size: int64(len(ob)), Platform: desc.Platform}
			}
		}
	}
	if isIndex(mt) {
		var sub ocispec.Index
		if err := json.Unmarshal(body, &sub); err != nil {
			return nil, fmt.Errorf("index %s: %w", desc.Digest, err)
		}
		pick, err := pickPlatform(sub.Manifests, want)
		if err != nil {
			return nil, fmt.Errorf("oci:%s:%s: %w", dir, tag, err)
		}
		trace.Step(fmt.Sprintf("it is an index of %d manifests: pick %s → %s", len(sub.Manifests), want, short(pick.Digest)))
		if _, err := layout.PutBlob(body); err != nil {
			return nil, err
		}
		d := desc
		d.Annotations = nil
		res.Index = &d
		if body, mt, err = src.manifest(pick); err != nil {
			return nil, err
		}
		if isIndex(mt) {
			return nil, fmt.Errorf("index %s points at another index; nested indexes are not supported", pick.Digest)
		}
		desc = pick
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	blobs := []Blob{{Kind: "config", Digest: m.Config.Digest, Size: m.Config.Size}}
	for _, l := range m.Layers {
		blobs = append(blobs, Blob{Kind: "layer", Digest: l.Digest, Size: l.Size})
	}
	for i := range blobs {
		if err := src.copyBlob(&blobs[i]); err != nil {
			return nil, err
		}
	}
	if _, err := layout.PutBlob(body); err != nil {
		return nil, err
	}
	final := ocispec.Descriptor{MediaType: mt, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}
	if err := record(res, final, name.RefName()); err != nil {
		return nil, err
	}
	res.Handle = name.Pinned(desc.Digest)
	res.Manifest = final
	res.Blobs = blobs
	return res, nil
}

func pickByName(ms []ocispec.Descriptor, tag, dir string) (ocispec.Descriptor, error) {
	var names []string
	for _, m := range ms {
		n := m.Annotations[ocispec.AnnotationRefName]
		if n == tag || (tag == "" && len(ms) == 1) {
			return m, nil
		}
		if n != "" {
			names = append(names, n)
		}
	}
	if tag == "" {
		return ocispec.Descriptor{}, cli.Errorf("name one: pull oci:"+dir+":TAG", "%s holds %d images (%s)", dir, len(ms), strings.Join(names, ", "))
	}
	return ocispec.Descriptor{}, cli.Errorf("it has: "+strings.Join(names, ", "), "%s has no image named %q", dir, tag)
}

// layoutDir is a source layout whose blobs are checked as they are read.
type layoutDir string

func (l layoutDir) path(d digest.Digest) string {
	return filepath.Join(string(l), "blobs", d.Algorithm().String(), d.Encoded())
}

// size is the size of blob d in the layout, or -1.
func (l layoutDir) size(d digest.Digest) int64 {
	if d.Validate() != nil {
		return -1
	}
	fi, err := os.Stat(l.path(d))
	if err != nil || !fi.Mode().IsRegular() {
		return -1
	}
	return fi.Size()
}

// manifest reads a manifest or index named by desc, checking its size and digest.
func (l layoutDir) manifest(desc ocispec.Descriptor) ([]byte, string, error) {
	if err := desc.Digest.Validate(); err != nil {
		return nil, "", err
	}
	if desc.Size > MaxManifestBytes {
		return nil, "", fmt.Errorf("manifest %s is larger than %d bytes; refusing it", desc.Digest, MaxManifestBytes)
	}
	b, err := os.ReadFile(l.path(desc.Digest))
	if err != nil {
		return nil, "", err
	}
	if int64(len(b)) != desc.Size || digest.FromBytes(b) != desc.Digest {
		return nil, "", fmt.Errorf("manifest %s in %s does not verify (%d bytes hashing to %s)", desc.Digest, l, len(b), digest.FromBytes(b))
	}
	mt, err := manifestType(b, desc.MediaType)
	if err != nil {
		return nil, "", fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	trace.Step(fmt.Sprintf("manifest %s: %d bytes of %s, verified", short(desc.Digest), len(b), mt),
		trace.Cmd("sha256sum", l.path(desc.Digest)))
	return b, mt, nil
}

// copyBlob copies one blob into the store, verified as it streams.
func (l layoutDir) copyBlob(b *Blob) error {
	if err := b.Digest.Validate(); err != nil {
		return fmt.Errorf("%s %q: %w", b.Kind, b.Digest, err)
	}
	if layout.HasBlob(b.Digest, b.Size) {
		trace.Step(fmt.Sprintf("%s %s is already in the store and verifies: skip it", b.Kind, short(b.Digest)))
		return nil
	}
	f, err := os.Open(l.path(b.Digest))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s %s is missing from %s", b.Kind, b.Digest, l)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	trace.Step(fmt.Sprintf("copy %s %s (%d bytes), hashing as it streams", b.Kind, short(b.Digest), b.Size),
		trace.Cmd("cp", l.path(b.Digest), layout.BlobPath(b.Digest)))
	if _, err := layout.WriteBlob(b.Digest, b.Size, io.Reader(f)); err != nil {
		return fmt.Errorf("%s %s from %s: %w", b.Kind, short(b.Digest), l, err)
	}
	b.Fetched = true
	return nil
}
