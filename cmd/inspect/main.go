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

  PROCESSES   the tree from the shim down, with pids and arguments; [mnt,uts,…] marks
              where namespaces change (as pstree -apS does)
  NAMESPACES  the container's namespace inodes against the host's (pid 1), and which are new
  MOUNTS      /proc/PID/mountinfo grouped: the overlay root (lowerdir, upperdir, workdir),
              virtual filesystems (proc, sysfs, tmpfs, devpts, mqueue, cgroup), bind mounts
              (/etc/hostname, /etc/hosts, /etc/resolv.conf)
  CGROUP      /proc/PID/cgroup, and the limits and usage 'cgset show' reports
  NETWORK     the address 'netsetup add' gave it

  shim --id web -- nsrun --netns web --cgroup web "$bundle"
  inspect web
  inspect --pid $$          # any process works too

Its view is its output (it is the last stage). Compare with: pstree -apS PID, lsns -p PID,
findmnt -N PID.`

type inspectCmd struct {
	cli.Globals
	Pid int    `help:"Inspect this process instead of a container." placeholder:"PID"`
	ID  string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
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
	return inspect.Write(os.Stdout, t)
}

func main() {
	var cmd inspectCmd
	cli.Main("inspect", description, &cmd, &cmd.Globals)
}
