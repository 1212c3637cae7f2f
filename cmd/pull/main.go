// Command pull is the first stage of `docker run`: it fetches an image from a registry into
// the local OCI image layout and prints the image's pinned handle.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/reference"
	"github.com/hardway/hardway/internal/registry"
	"github.com/hardway/hardway/internal/trace"
)

const description = `Pull an image: the first stage of 'docker run'.

Reads an image reference as Docker writes it (busybox, library/busybox:1.36,
127.0.0.1:5000/library/busybox:latest, NAME@sha256:…) from the argument or one line of stdin,
normalises it (docker.io, library/, :latest), answers the registry's auth challenge (a Bearer
token from its realm, or Basic auth, with credentials from $DOCKER_CONFIG/config.json or
~/.docker/config.json), asks for the manifest (picking this host's platform out of an index),
downloads the config and every layer into $HARDWAY_ROOT/oci/blobs (each verified by size and
sha256 before it is renamed into place; broken downloads are retried and resumed with Range,
also after pull was killed), and records the image in $HARDWAY_ROOT/oci/index.json under its
full reference. That name leads to an OCI manifest, so skopeo and umoci read every image:
a manifest with Docker media types is kept byte for byte (its digest is the handle) beside
its OCI translation (same config and layers), which the name leads to.

Prints the image's pinned handle on stdout, NAME@sha256:<manifest digest>, for the next stage:

  pull 127.0.0.1:5000/library/busybox | unpack | overlay --id demo | nsrun --tty

oci:DIR[:TAG] imports an image from an OCI image layout instead (as skopeo copy … oci:DIR:TAG
writes one); it is named localhost/oci/<DIR's name>:TAG in the store, or TAG itself when TAG
is a full reference.

Registries on the loopback (localhost, 127.0.0.1, ::1) are spoken to over plain HTTP, others
over TLS unless --insecure. Start a local registry with scripts/registry start and fill it
with scripts/seed-images. Pulling again is a no-op that prints the same handle; it still asks
the registry what the tag names now, unless --missing (use the store's image when it has
one, as docker run does) or --offline (never ask).`

type pullCmd struct {
	cli.Globals
	Platform string `help:"Platform to pick when the reference names an index: os/arch[/variant] (default: this host's)." placeholder:"OS/ARCH"`
	Insecure bool   `help:"Speak plain HTTP to the registry even when it is not on the loopback."`
	JSON     bool   `name:"json" help:"Print a JSON record of the pull (handle, manifest, blobs) instead of the handle."`
	Missing  bool   `help:"Use the image the store already holds under this name (and platform) without asking the registry; pull only when it is missing (docker run's default, --pull missing)."`
	Offline  bool   `help:"Never ask the registry: print the store's image under this name, or fail (docker run --pull never)."`
	Ref      string `arg:"" optional:"" name:"REF" help:"Image reference, or oci:DIR[:TAG] (default: one line of stdin)."`
}

func (c *pullCmd) Run() error {
	in, err := cli.Input(c.Ref, "image reference")
	if err != nil {
		return err
	}
	opts := registry.Options{Platform: c.Platform, Insecure: c.Insecure}
	var res *registry.Result
	if dir, tag, ok := registry.ParseOCIRef(in); ok {
		res, err = registry.ImportLayout(dir, tag, opts)
	} else {
		ref, perr := reference.Parse(in)
		if perr != nil {
			return cli.Hint(perr, "write it as Docker does, e.g. 127.0.0.1:5000/library/busybox:latest, or oci:DIR:TAG")
		}
		if c.Missing || c.Offline {
			if res, err = registry.Local(ref, c.Platform); err != nil {
				return err
			}
			if res == nil && c.Offline {
				return registry.NotLocal(ref)
			}
		}
		if res == nil {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cli.IsTerminal(os.Stderr) && !trace.Enabled() {
				opts.Progress = os.Stderr
			}
			res, err = registry.Pull(ctx, ref, opts)
		}
	}
	if err != nil {
		return err
	}
	if c.JSON {
		b, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		fmt.Println(string(b))
		return nil
	}
	fmt.Println(res.Handle)
	return nil
}

func main() {
	var cmd pullCmd
	cli.Main("pull", description, &cmd, &cmd.Globals)
}
