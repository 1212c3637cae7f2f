package registry

import (
	"fmt"
	"os"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Local is the image the store already holds under ref's name, for the platform asked for,
// with every blob present: what docker run uses without asking the registry (its default
// pull policy, "missing"). It returns nil when the store has no such image.
func Local(ref reference.Reference, platform string) (*Result, error) {
	want, err := ParsePlatform(platform)
	if err != nil {
		return nil, err
	}
	name := ref.RefName()
	if ref.Digest != "" {
		name = ref.Pinned(ref.Digest)
	}
	im, err := layout.Resolve(name)
	if err != nil {
		return nil, nil // not there, or not a single image (an index's digest): pull it
	}
	got := Platform{im.Config.OS, im.Config.Architecture, im.Config.Variant}.normal()
	if got.OS != want.OS || got.Architecture != want.Architecture || want.Variant != "" && got.Variant != want.Variant {
		trace.Step(fmt.Sprintf("the store's %s is for %s, not %s: ask the registry", name, got, want))
		return nil, nil
	}
	blobs := []Blob{{Kind: "config", Digest: im.Manifest.Config.Digest, Size: im.Manifest.Config.Size}}
	for _, l := range im.Manifest.Layers {
		blobs = append(blobs, Blob{Kind: "layer", Digest: l.Digest, Size: l.Size})
	}
	for _, b := range blobs {
		if fi, err := os.Stat(layout.BlobPath(b.Digest)); err != nil || fi.Size() != b.Size {
			return nil, nil // a blob went missing (umoci gc, a hand): pull completes it
		}
	}
	trace.Step(fmt.Sprintf("%s is in the store (%s names it): no request to the registry, as docker run does by default (--pull missing)",
		name, state.OCIDir()+"/index.json"), trace.Cmd("jq", `.manifests[] | select(.annotations["`+ocispec.AnnotationRefName+`"] == "`+name+`")`, state.OCIDir()+"/index.json"))
	return &Result{
		Handle:    im.Handle(),
		Reference: ref.String(),
		RefName:   ref.RefName(),
		Manifest:  ocispec.Descriptor{MediaType: im.Manifest.MediaType, Digest: im.ManifestDigest},
		Blobs:     blobs,
		Local:     true,
	}, nil
}

// NotLocal is Local's answer for --offline when the store has no such image.
func NotLocal(ref reference.Reference) error {
	return cli.Errorf("run: pull "+ref.String()+" while the registry is reachable",
		"%s is not in the store %s and --offline forbids asking the registry", ref, state.OCIDir())
}
