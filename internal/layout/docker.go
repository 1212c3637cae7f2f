package layout

import (
	"bytes"
	"encoding/json"
	"fmt"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// AnnotationConvertedFrom marks an index.json entry that is the OCI translation of a Docker
// schema2 manifest: its value is the digest of the registry's own manifest, the one pull
// printed and unpack and overlay read.
const AnnotationConvertedFrom = "hardway.converted-from"

// Docker media types that only appear in a few producers' manifests.
const (
	mediaTypeDockerLayerForeignGzip = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
	mediaTypeDockerLayerForeign     = "application/vnd.docker.image.rootfs.foreign.diff.tar"
	mediaTypeDockerLayerZstd        = "application/vnd.docker.image.rootfs.diff.tar.zstd"
)

// ociType is the OCI media type of the same content, as containerd's converter and skopeo
// map them: the bytes are the same, only the name differs.
func ociType(mt string) string {
	switch mt {
	case MediaTypeDockerManifest:
		return ocispec.MediaTypeImageManifest
	case MediaTypeDockerManifestList:
		return ocispec.MediaTypeImageIndex
	case MediaTypeDockerConfig:
		return ocispec.MediaTypeImageConfig
	case MediaTypeDockerLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case MediaTypeDockerLayerTar:
		return ocispec.MediaTypeImageLayer
	case mediaTypeDockerLayerZstd:
		return ocispec.MediaTypeImageLayerZstd
	case mediaTypeDockerLayerForeignGzip:
		return ocispec.MediaTypeImageLayerNonDistributableGzip //nolint:staticcheck // what a foreign layer is in OCI terms
	case mediaTypeDockerLayerForeign:
		return ocispec.MediaTypeImageLayerNonDistributable //nolint:staticcheck
	}
	return mt
}

// ToOCI translates a Docker schema2 image manifest into an OCI image manifest of the same
// config and layer blobs: only the media types change, as containerd's converter does
// (skopeo also rewrites the config). A Docker config is an OCI config with a few more fields,
// which OCI readers ignore, and a Docker gzip layer is an OCI tar+gzip layer byte for byte,
// so no blob is rewritten and the image ID (the config digest) stays.
//
// The bytes are the registry's with each media type string replaced in place (the same
// key order and spacing), so `sed` reproduces the translation and its digest; and the same
// input always gives the same bytes, so concurrent and repeated pulls agree on it.
func ToOCI(docker []byte) ([]byte, error) {
	var m ocispec.Manifest
	if err := json.Unmarshal(docker, &m); err != nil {
		return nil, err
	}
	if m.MediaType != MediaTypeDockerManifest {
		return nil, fmt.Errorf("media type %q is not a Docker schema2 manifest", m.MediaType)
	}
	out := docker
	seen := map[string]bool{}
	for _, mt := range append([]string{m.MediaType, m.Config.MediaType}, layerTypes(m)...) {
		if to := ociType(mt); to != mt && !seen[mt] {
			seen[mt] = true
			out = bytes.ReplaceAll(out, []byte(`"`+mt+`"`), []byte(`"`+to+`"`))
		}
	}
	want := m
	want.MediaType = ocispec.MediaTypeImageManifest
	want.Config.MediaType = ociType(m.Config.MediaType)
	want.Layers = make([]ocispec.Descriptor, len(m.Layers))
	for i, l := range m.Layers {
		l.MediaType = ociType(l.MediaType)
		want.Layers[i] = l
	}
	wantJSON, err := json.Marshal(want)
	if err != nil {
		return nil, err
	}
	// A producer that escapes the strings differently, or repeats a type elsewhere, is
	// not edited in place: re-encode it instead.
	var got ocispec.Manifest
	if json.Unmarshal(out, &got) != nil {
		return wantJSON, nil
	}
	if gotJSON, err := json.Marshal(got); err != nil || !bytes.Equal(gotJSON, wantJSON) {
		return wantJSON, nil
	}
	return out, nil
}

func layerTypes(m ocispec.Manifest) []string {
	out := make([]string, len(m.Layers))
	for i, l := range m.Layers {
		out[i] = l.MediaType
	}
	return out
}

// ociView is what refName is to name for an image manifest desc: desc itself when it is
// OCI, else the OCI translation of the Docker manifest (stored here), annotated with the
// Docker manifest's digest. keep is the Docker manifest's own entry, or nil.
func ociView(desc ocispec.Descriptor) (named ocispec.Descriptor, keep *ocispec.Descriptor, err error) {
	if desc.MediaType != MediaTypeDockerManifest {
		return desc, nil, nil
	}
	b, err := ReadBlob(desc.Digest)
	if err != nil {
		return desc, nil, fmt.Errorf("read manifest %s to translate it: %w", desc.Digest, err)
	}
	ob, err := ToOCI(b)
	if err != nil {
		return desc, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	d, err := PutBlob(ob)
	if err != nil {
		return desc, nil, err
	}
	named = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d, Size: int64(len(ob)),
		Platform: desc.Platform, Annotations: copyAnnotations(desc.Annotations)}
	named.Annotations[AnnotationConvertedFrom] = desc.Digest.String()
	orig := ocispec.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size, Platform: desc.Platform}
	return named, &orig, nil
}

// convertedFrom is the Docker manifest an entry translates, or "".
func convertedFrom(m ocispec.Descriptor) digest.Digest {
	return digest.Digest(m.Annotations[AnnotationConvertedFrom])
}

// isKept reports whether m is the unnamed entry of Docker manifest d.
func isKept(m ocispec.Descriptor, d digest.Digest) bool {
	return m.Digest == d && m.MediaType == MediaTypeDockerManifest && m.Annotations[ocispec.AnnotationRefName] == ""
}
