package inspect

import (
	"fmt"
	"os"
	"strings"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
)

// Cgroup is /proc/PID/cgroup and, for a container, what cgset show reports of its cgroup.
type Cgroup struct {
	Membership []string     `json:"membership"` // the lines of /proc/PID/cgroup
	Info       *cgroup.Info `json:"limits,omitempty"`
}

func readCgroup(t Target) *Cgroup {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", t.Pid))
	if err != nil {
		return nil
	}
	c := &Cgroup{Membership: strings.Split(strings.TrimSpace(string(data)), "\n")}
	if t.ID != "" {
		if in, err := cgroup.Show(t.ID); err == nil {
			c.Info = in
		}
	}
	return c
}

// Image is the image a container was made from, as the store holds it.
type Image struct {
	Reference string  `json:"reference"`          // as the bundle's hardway.image annotation names it
	Resolved  string  `json:"resolved,omitempty"` // NAME@sha256:… in the store
	Digest    string  `json:"digest,omitempty"`   // the manifest's
	Config    string  `json:"config,omitempty"`   // the config blob's digest (Docker's image id)
	Layers    []Layer `json:"layers,omitempty"`
	Error     string  `json:"error,omitempty"` // why it could not be resolved
}

// Layer is one layer of the manifest, bottom first.
type Layer struct {
	Digest    string `json:"digest"`
	DiffID    string `json:"diffID"`
	Size      int64  `json:"size"`
	MediaType string `json:"mediaType"`
}

func readImage(id string) (*Image, *state.Container) {
	c, _ := state.ReadContainer(id)
	spec := bundleSpec(id)
	if spec == nil || spec.Annotations["hardway.image"] == "" {
		return nil, c
	}
	im := &Image{Reference: spec.Annotations["hardway.image"]}
	r, err := layout.Resolve(im.Reference)
	if err != nil {
		im.Error = err.Error()
		return im, c
	}
	im.Resolved, im.Digest, im.Config = r.Handle(), r.ManifestDigest.String(), r.Manifest.Config.Digest.String()
	for i, l := range r.Manifest.Layers {
		im.Layers = append(im.Layers, Layer{Digest: l.Digest.String(), DiffID: r.Config.RootFS.DiffIDs[i].String(),
			Size: l.Size, MediaType: l.MediaType})
	}
	return im, c
}
