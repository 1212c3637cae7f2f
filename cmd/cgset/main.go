// Command cgset is the cgroup stage of `docker run`: it creates a container's cgroup, sets
// its memory, pids and cpu limits, adds processes to it, shows it and removes it.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/cli"
)

const description = `Create and limit a container's cgroup: the resource stage of 'docker run'.

Reads a container id (argument or one line of stdin). 'create' makes the cgroup
/hardway/ID ($HARDWAY_CGROUP_PARENT moves it) in every cgroup hierarchy of this host
(cgroup v1 or hybrid: one dir per controller; unified v2: one dir, controllers enabled
from the parent), writes the limits given in Docker's forms, and prints the cgroup path on
stdout, as /proc/PID/cgroup names it. nsrun --cgroup ID moves the container into it:

  cgset create web --memory 256m --pids 200 --cpus 1.5    # prints /hardway/web
  shim --id web -- nsrun --cgroup web "$bundle"
  cgset show web                                          # limits, usage, OOM kills
  cgset delete web                                        # kills what is left, removes it

--memory also sets memory+swap to twice the memory, as docker run --memory does.
Creating again with the same values is a no-op; with new values it applies them.`

type limitFlags struct {
	Memory string  `help:"Memory limit, as docker --memory: 256m, 1g, 512k or bytes." placeholder:"SIZE"`
	Pids   int64   `help:"Maximum number of tasks (processes and threads), as docker --pids-limit; -1 is unlimited." placeholder:"N"`
	CPUs   float64 `name:"cpus" help:"CPU limit in cpus, as docker --cpus: 1.5 means 150ms of cpu time per 100ms." placeholder:"N"`
}

func (f limitFlags) limits() (cgroup.Limits, error) {
	var l cgroup.Limits
	if f.Memory != "" {
		m, err := cgroup.ParseSize(f.Memory)
		if err != nil {
			return l, err
		}
		if m < 6<<20 {
			return l, cli.Errorf("the minimum is 6m, as Docker's", "memory limit %s is too small", f.Memory)
		}
		l.Memory = m
	}
	if f.Pids < -1 {
		return l, cli.Errorf("use a positive number, or -1 for unlimited", "invalid --pids %d", f.Pids)
	}
	l.Pids = f.Pids
	if f.CPUs != 0 {
		c, err := cgroup.ParseCPUs(strconv.FormatFloat(f.CPUs, 'f', -1, 64))
		if err != nil {
			return l, err
		}
		l.CPUs = c
	}
	return l, nil
}

type createCmd struct {
	limitFlags
	ID string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *createCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	l, err := c.limits()
	if err != nil {
		return err
	}
	path, err := cgroup.Create(id, l)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type setCmd struct {
	limitFlags
	ID string `arg:"" name:"ID" help:"Container id."`
}

func (c *setCmd) Run() error {
	l, err := c.limits()
	if err != nil {
		return err
	}
	if l.IsZero() {
		return cli.Errorf("give --memory, --pids or --cpus", "nothing to set")
	}
	return cgroup.Set(c.ID, l)
}

type addCmd struct {
	ID  string `arg:"" name:"ID" help:"Container id."`
	Pid int    `arg:"" name:"PID" help:"Process to move into the cgroup."`
}

func (c *addCmd) Run() error { return cgroup.Add(c.ID, c.Pid) }

type deleteCmd struct {
	ID string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *deleteCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	return cgroup.Delete(id)
}

type showCmd struct {
	JSON bool   `name:"json" help:"Print a JSON record instead of text."`
	ID   string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *showCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	in, err := cgroup.Show(id)
	if err != nil {
		return err
	}
	if c.JSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(in)
	}
	return cgroup.WriteInfo(os.Stdout, in)
}

type cgsetCmd struct {
	cli.Globals
	Create createCmd `cmd:"" help:"Create the container's cgroup with limits; prints its path."`
	Set    setCmd    `cmd:"" help:"Change the limits of an existing cgroup."`
	Add    addCmd    `cmd:"" help:"Move a running process into the cgroup."`
	Delete deleteCmd `cmd:"" aliases:"rm" help:"Kill what runs in the cgroup and remove it (gone already is fine)."`
	Show   showCmd   `cmd:"" help:"Show the cgroup's limits, usage, processes and OOM kills."`
}

func main() {
	var cmd cgsetCmd
	cli.Main("cgset", description, &cmd, &cmd.Globals)
}
