// Command unpack extracts an image's layers into the overlay layer store.
package main

import (
	"fmt"
	"os"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/layer"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/overlay"
	"github.com/hardway/hardway/internal/ui"
)

const description = `Extract the layers of a pulled image into the layer store, one dir per layer, the way
Docker's overlay2 driver keeps them.

Reads IMAGE (NAME@sha256:… as pull prints it, or a reference name in the OCI index) from the
argument or one line of stdin. Each layer is extracted into $HARDWAY_ROOT/overlay/<chain-id>/diff
(whiteouts become 0/0 character devices, opaque dirs get trusted.overlay.opaque=y), verified
(blob digest and size, diff_id) and only then renamed into place, with its short link
overlay/l/<SHORT>. Layers already there are reused; missing ones are extracted several at a
time, with a progress bar per layer when stderr is a terminal (not with --trace; NO_COLOR
turns its colours off). Prints the same IMAGE handle on stdout.

--userxattr writes opaque dirs as user.overlay.opaque=y instead, the form an overlay mounted
with the userxattr option reads (rootless, in a user namespace, Linux >= 5.11); whiteouts
stay 0/0 character devices. Those layers live apart, in overlay/<chain-id>-userxattr with a
userxattr marker file beside diff/, so the two forms never mix.

Layers are untrusted: every path is resolved inside the layer dir by the kernel, and all the
layers of the image together may extract at most --max-size bytes (each entry also counts
512 bytes, its tar header); a decompression bomb or a huge sparse file stops there with an
error and leaves nothing behind. Corrupt gzip, bad tar checksums and truncated streams fail
the same way.

Example:
  pull 127.0.0.1:5000/library/busybox:latest | unpack | overlay --id box`

type unpackCmd struct {
	cli.Globals
	Image   string `arg:"" optional:"" help:"Image handle NAME@sha256:… (default: one line of stdin)."`
	MaxSize string `name:"max-size" placeholder:"SIZE" help:"Cap on the bytes the image may extract, e.g. 512M, 64G (default: $$HARDWAY_UNPACK_MAX_SIZE, else 64G)."`
	Jobs    int    `help:"Layers extracted at once (default: the number of CPUs, at least 2)."`
	// The env var lets scripts switch a whole run to the user. form without new flags.
	UserXattr bool `name:"userxattr" env:"HARDWAY_UNPACK_USERXATTR" help:"Write opaque dirs as user.overlay.opaque, for overlays mounted with userxattr in a user namespace."`
}

func (c *unpackCmd) Run(g *cli.Globals) error {
	h, err := cli.Input(c.Image, "IMAGE")
	if err != nil {
		return err
	}
	im, err := layout.Resolve(h)
	if err != nil {
		return err
	}
	o := overlay.UnpackOptions{Jobs: c.Jobs, UserXattr: c.UserXattr, Progress: ui.Output(os.Stderr)}
	if c.MaxSize != "" {
		if o.MaxSize, err = layer.ParseSize(c.MaxSize); err != nil {
			return cli.Hint(err, "")
		}
	}
	if _, err := overlay.UnpackWith(im, o); err != nil {
		return err
	}
	fmt.Println(im.Handle())
	return nil
}

func main() {
	var c unpackCmd
	cli.Main("unpack", description, &c, &c.Globals)
}
