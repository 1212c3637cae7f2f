// Command nsrun is the container runtime stage of `docker run`, the hardway counterpart of
// runc: it runs an OCI bundle's process in new namespaces behind a pivot_root.
package main

import (
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/runtime"
)

const description = `Run a bundle: the runtime stage of 'docker run' (what runc does).

Reads a bundle dir (config.json + rootfs, as overlay prints it) from the argument or one line
of stdin, and starts the bundle's process as PID 1 of new mount, uts, ipc and pid namespaces
(and a new, empty network namespace unless --netns names one to join). Before the process
starts it is put in the container's cgroup (--cgroup), the root is made private, the mounts in
config.json are made inside the rootfs, /dev is filled, the hostname set, the root switched
with pivot_root, masked and read-only paths applied and the capabilities dropped.

Prints nothing of its own: the container's stdout and stderr are nsrun's. Its stdin is
/dev/null unless -i. nsrun forwards the signals it gets to the container and exits with the
container's exit code (128+signal when it was killed); 1 with an error when it could not
start it.

  netsetup add web; cgset create web
  overlay --id web IMAGE | nsrun --netns web --cgroup web
  shim --id web -- nsrun --netns web --cgroup web $HARDWAY_ROOT/containers/web`

type nsrunCmd struct {
	cli.Globals
	Netns       string `help:"Join this network namespace instead of making an empty one: a container id (/run/netns/ID, see netsetup) or a path." placeholder:"ID|PATH"`
	Cgroup      string `help:"Put the container in cgroup hardway/ID before it starts (see cgset)." placeholder:"ID"`
	TTY         bool   `name:"tty" short:"t" help:"Give the container a terminal (a pty relayed to nsrun's stdio; nsrun's own terminal goes raw)."`
	Interactive bool   `short:"i" help:"Keep the container's stdin attached to nsrun's (the bundle is then never read from stdin)."`
	Bundle      string `arg:"" optional:"" name:"BUNDLE" help:"Bundle dir (default: one line of stdin)."`
}

func (c *nsrunCmd) Run(g *cli.Globals) error {
	bundle := c.Bundle
	if bundle == "" && (c.TTY || c.Interactive) {
		err := cli.Errorf("pass the bundle as an argument", "no BUNDLE given: with -i or --tty stdin belongs to the container")
		runtime.ReportStartError(err)
		return err
	}
	bundle, err := cli.Input(bundle, "BUNDLE")
	if err != nil {
		runtime.ReportStartError(err)
		return err
	}
	return runtime.Run(runtime.Options{Bundle: bundle, Netns: c.Netns, Cgroup: c.Cgroup, TTY: c.TTY, Interactive: c.Interactive})
}

func main() {
	runtime.TakeSyncPipe()
	runtime.MaybeInit()
	var cmd nsrunCmd
	cli.Main("nsrun", description, &cmd, &cmd.Globals)
}
