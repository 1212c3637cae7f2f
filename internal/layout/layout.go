// Package layout reads and writes the OCI image layout under $HARDWAY_ROOT/oci that every
// pulled image shares (oci-layout, index.json, blobs/<alg>/<hex>), and resolves the image
// handle that pull prints (NAME@sha256:…) to its manifest and config.
package layout

import (
	// go-digest hashes through crypto's registry: link sha256 in wherever digests are used.
	_ "crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
)

// Docker's media types, which a layout may hold byte for byte as the registry served them.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerLayerTar     = "application/vnd.docker.image.rootfs.diff.tar"
)

// BlobPath is where a blob lives in the store.
func BlobPath(d digest.Digest) string {
	return filepath.Join(state.OCIDir(), "blobs", d.Algorithm().String(), d.Encoded())
}

// ReadBlob reads a whole (small) blob and checks it against its digest.
func ReadBlob(d digest.Digest) ([]byte, error) {
	b, err := os.ReadFile(BlobPath(d))
	if err != nil {
		return nil, err
	}
	if got := d.Algorithm().FromBytes(b); got != d {
		return nil, fmt.Errorf("blob %s in the store hashes to %s (remove it and pull again)", d, got)
	}
	return b, nil
}

// ReadIndex reads index.json (an empty index when the layout does not exist yet).
func ReadIndex() (*ocispec.Index, error) {
	b, err := os.ReadFile(filepath.Join(state.OCIDir(), "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex}
		idx.SchemaVersion = 2
		return &idx, nil
	}
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%s/index.json: %w", state.OCIDir(), err)
	}
	return &idx, nil
}

// ParseHandle splits NAME@sha256:HEX.
func ParseHandle(h string) (name string, d digest.Digest, err error) {
	i := strings.LastIndex(h, "@")
	if i < 0 {
		return "", "", fmt.Errorf("%q is not pinned by digest", h)
	}
	name, d = h[:i], digest.Digest(h[i+1:])
	if err := d.Validate(); err != nil {
		return "", "", fmt.Errorf("%q: bad digest: %v", h, err)
	}
	return name, d, nil
}

// Image is one image of the store, resolved from its handle.
type Image struct {
	Name           string // repository name, e.g. 127.0.0.1:5000/library/busybox
	ManifestDigest digest.Digest
	Manifest       ocispec.Manifest
	Config         ocispec.Image
}

// Handle is the image's pinned reference, NAME@sha256:….
func (im *Image) Handle() string { return im.Name + "@" + im.ManifestDigest.String() }

// Resolve finds an image in the store by its handle (NAME@sha256:…), or by a reference
// name recorded in index.json (127.0.0.1:5000/library/busybox:latest).
func Resolve(handle string) (*Image, error) {
	name, d, err := ParseHandle(handle)
	if err != nil {
		// Not pinned: look it up by ref name.
		idx, ierr := ReadIndex()
		if ierr != nil {
			return nil, ierr
		}
		for _, m := range idx.Manifests {
			if m.Annotations[ocispec.AnnotationRefName] == handle {
				name, d = strings.TrimSuffix(handle, tagOf(handle)), m.Digest
				// The name leads to the OCI translation of a Docker manifest: the image
				// is the registry's manifest, whose digest pull printed.
				if from := convertedFrom(m); from.Validate() == nil {
					d = from
				}
				break
			}
		}
		if d == "" && (strings.HasPrefix(handle, "/") || strings.HasPrefix(handle, ".")) {
			// A bundle or rootfs path, piped from the wrong stage: pulling it cannot help.
			return nil, cli.Errorf("give the image as pull printed it: NAME@sha256:…", "%q is a path, not an image", handle)
		}
		if d == "" {
			return nil, cli.Errorf("run: pull "+handle, "image %q is not in the store %s", handle, state.OCIDir())
		}
	}
	mb, err := ReadBlob(d)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cli.Errorf("run: pull "+name+"@"+d.String(), "image manifest %s is not in the store %s", d, state.OCIDir())
	}
	if err != nil {
		return nil, err
	}
	im := &Image{Name: name, ManifestDigest: d}
	if err := json.Unmarshal(mb, &im.Manifest); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", d, err)
	}
	switch im.Manifest.MediaType {
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest, "":
	default:
		return nil, fmt.Errorf("manifest %s has media type %s, not an image manifest (pull prints the platform's manifest; pass that)", d, im.Manifest.MediaType)
	}
	if im.Manifest.Config.Digest == "" {
		return nil, fmt.Errorf("manifest %s names no config (is it an index? pass the handle pull printed)", d)
	}
	cb, err := ReadBlob(im.Manifest.Config.Digest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, cli.Errorf("run: pull "+im.Handle(), "image config %s is not in the store", im.Manifest.Config.Digest)
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cb, &im.Config); err != nil {
		return nil, fmt.Errorf("config %s: %w", im.Manifest.Config.Digest, err)
	}
	if len(im.Config.RootFS.DiffIDs) != len(im.Manifest.Layers) {
		return nil, fmt.Errorf("image %s: config lists %d diff_ids for %d layers", im.Handle(), len(im.Config.RootFS.DiffIDs), len(im.Manifest.Layers))
	}
	return im, nil
}

// tagOf returns ":TAG" of a reference, or "" when it has none.
func tagOf(ref string) string {
	slash := strings.LastIndex(ref, "/")
	if i := strings.LastIndex(ref, ":"); i > slash {
		return ref[i:]
	}
	return ""
}

// ChainIDs computes the chain id of each layer from the diff_ids, the name Docker's layerdb
// and our overlay store key layers by: a layer's chain id names it together with all below.
func ChainIDs(diffIDs []digest.Digest) []digest.Digest {
	out := make([]digest.Digest, len(diffIDs))
	for i, d := range diffIDs {
		if i == 0 {
			out[i] = d
			continue
		}
		out[i] = digest.FromString(out[i-1].String() + " " + d.String())
	}
	return out
}
