// Command inspect is the last stage: it shows what the kernel knows about a running
// container (process tree, namespaces, mounts, cgroup, address), read from /proc.
package main

import (
	"os"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/inspect"
)

const description = `Show a running container as the kernel sees it: the last stage of 'docker run'.

Reads a container id (argument or one line of stdin), finds its pids in the state.json
that shim wrote ($HARDWAY_ROOT/containers/ID/state.json), and prints, from /proc:

  PROCESSES   the tree from PID 1 down to the shim and below, with pids and arguments;
              [mnt,uts,…] marks where namespaces change (as pstree -apS does)
  NAMESPACES  the process's namespace inodes against the host's (pid 1), and which are new
  MOUNTS      /proc/PID/mountinfo grouped: the overlay root (lowerdir, upperdir, workdir),
              virtual filesystems, cgroup mounts, masked paths (/dev/null or an empty ro
              tmpfs over them), read-only paths, bind mounts (/etc/hostname, hosts, resolv.conf)
  CGROUP      /proc/PID/cgroup, and the limits, usage and OOM kills 'cgset show' reports
  NETWORK     what 'netsetup show' reports: address, veth pair, bridge, routes, NAT rules
  IMAGE AND STATE  the image (the bundle's hardway.image annotation resolved in the store:
              digest, config, layers) and state.json (status, exit code, OOM, times)

Flags like --mounts select sections (the default is all); --json prints the same as one
JSON document. Colour on a terminal only; NO_COLOR turns it off.

  shim --id web -- nsrun --netns web --cgroup web "$bundle"
  inspect web
  inspect web --mounts --json
  inspect --pid $$$$        # any process works too

Its view is its output (it is the last stage). Compare with: pstree -apS PID, lsns -p PID,
findmnt -N PID.`

type inspectCmd struct {
	cli.Globals
	Pid        int    `help:"Inspect this process instead of a container." placeholder:"PID"`
	JSON       bool   `name:"json" help:"Print the view as one JSON document."`
	Processes  bool   `help:"Show the process tree."`
	Namespaces bool   `help:"Show the namespaces."`
	Mounts     bool   `help:"Show the mounts."`
	Cgroup     bool   `help:"Show the cgroup."`
	Network    bool   `help:"Show the network (containers only)."`
	Image      bool   `help:"Show the image and state (containers only)."`
	ID         string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *inspectCmd) Run() error {
	var t inspect.Target
	var err error
	if c.Pid != 0 {
		t, err = inspect.ByPid(c.Pid)
	} else {
		var id string
		if id, err = cli.Input(c.ID, "container id"); err != nil {
			return err
		}
		t, err = inspect.ByID(id)
	}
	if err != nil {
		return err
	}
	v, err := inspect.Collect(t, inspect.Sections{Processes: c.Processes, Namespaces: c.Namespaces,
		Mounts: c.Mounts, Cgroup: c.Cgroup, Network: c.Network, Image: c.Image})
	if err != nil {
		return err
	}
	if c.JSON {
		return inspect.WriteJSON(os.Stdout, v)
	}
	return inspect.Render(os.Stdout, v, inspect.UseColor(os.Stdout))
}

func main() {
	var cmd inspectCmd
	cli.Main("inspect", description, &cmd, &cmd.Globals)
}
