// Command cgset is the cgroup stage of `docker run`: it creates a container's cgroup, sets
// its memory, pids and cpu limits, adds processes to it, shows it and removes it.
package main

import (
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
  cgset watch web                                         # "oom web 1" on an OOM kill
  cgset delete web                                        # kills what is left, removes it

--memory also sets memory+swap to twice the memory, as docker run --memory does, unless
--memory-swap says otherwise. --cpu-shares and --cpu-weight are one setting in v1 and v2
units; each is converted for the other version as runc does. Creating again with the
same values is a no-op; with new values it applies them. A failed first create leaves
nothing behind. --trace shows each file written, as the echo you could type instead.

'watch' blocks until the cgroup has held a process and is empty again (started on an
empty cgroup it waits for the first one), printing 'oom ID COUNT' per OOM kill (kills
from before it started are reported at once): what a supervisor records as OOMKilled. On v1 the kernel signals an eventfd registered in
cgroup.event_control; on v2 inotify watches memory.events and cgroup.events.

HARDWAY_CGROUP_ROOT=/path/of/a/cgroup2/mount makes cgset use the v2 backend there only
(on a hybrid host: /sys/fs/cgroup/unified, which has no controllers to limit with).`

type limitFlags struct {
	Memory      string   `help:"Memory limit, as docker --memory: 256m, 1g, 512k or bytes." placeholder:"SIZE"`
	MemorySwap  string   `name:"memory-swap" help:"Memory plus swap, as docker --memory-swap; --memory-swap=-1 is unlimited swap (default: twice --memory)." placeholder:"SIZE"`
	Pids        int64    `help:"Maximum number of tasks (processes and threads), as docker --pids-limit; -1 is unlimited." placeholder:"N"`
	CPUs        float64  `name:"cpus" help:"CPU limit in cpus, as docker --cpus: 1.5 means 150ms of cpu time per 100ms." placeholder:"N"`
	CPUShares   uint64   `name:"cpu-shares" help:"Relative cpu weight in v1 shares (2-262144, default 1024), as docker --cpu-shares; converted to cpu.weight on v2." placeholder:"N"`
	CPUWeight   uint64   `name:"cpu-weight" help:"Relative cpu weight in v2 units (1-10000, default 100); converted to cpu.shares on v1." placeholder:"N"`
	Cpuset      string   `name:"cpuset" help:"CPUs the container may use, as docker --cpuset-cpus: 0-1 or 0,2." placeholder:"CPUS"`
	IOWeight    uint64   `name:"io-weight" help:"Relative disk weight (10-1000), as docker --blkio-weight (blkio.bfq.weight on v1, io.bfq.weight or io.weight on v2)." placeholder:"N"`
	IOReadBps   []string `name:"io-read-bps" sep:"none" help:"Read rate limit of a disk, as docker --device-read-bps: /dev/vda:1mb (repeatable)." placeholder:"DEV:RATE"`
	IOWriteBps  []string `name:"io-write-bps" sep:"none" help:"Write rate limit of a disk, as docker --device-write-bps (repeatable)." placeholder:"DEV:RATE"`
	IOReadIOPS  []string `name:"io-read-iops" sep:"none" help:"Read operations per second of a disk, as docker --device-read-iops (repeatable)." placeholder:"DEV:N"`
	IOWriteIOPS []string `name:"io-write-iops" sep:"none" help:"Write operations per second of a disk, as docker --device-write-iops (repeatable)." placeholder:"DEV:N"`
	Raw         []string `short:"r" name:"raw" sep:"none" help:"Write any cgroup file, as libcgroup's cgset -r: memory.high=200m (repeatable; the controller must be there)." placeholder:"FILE=VALUE"`
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
	if f.MemorySwap == "-1" {
		l.MemorySwap = -1
	} else if f.MemorySwap != "" {
		m, err := cgroup.ParseSize(f.MemorySwap)
		if err != nil {
			return l, err
		}
		l.MemorySwap = m
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
	l.CPUShares, l.CPUWeight, l.Cpuset, l.IOWeight = f.CPUShares, f.CPUWeight, f.Cpuset, f.IOWeight
	for kind, specs := range map[string][]string{"rbps": f.IOReadBps, "wbps": f.IOWriteBps, "riops": f.IOReadIOPS, "wiops": f.IOWriteIOPS} {
		for _, s := range specs {
			d, err := cgroup.ParseDeviceRate(kind, s)
			if err != nil {
				return l, err
			}
			l.IOMax = append(l.IOMax, d)
		}
	}
	for _, s := range f.Raw {
		r, err := cgroup.ParseSetting(s)
		if err != nil {
			return l, err
		}
		l.Raw = append(l.Raw, r)
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
		return cli.Errorf("give a limit such as --memory, --pids or --cpus (see cgset set --help)", "nothing to set")
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
		return cli.PrintJSON(in)
	}
	return cgroup.WriteInfo(os.Stdout, in)
}

type watchCmd struct {
	JSON bool   `name:"json" help:"Print each event as a JSON object."`
	ID   string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *watchCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	return cgroup.Watch(id, func(n uint64) {
		if c.JSON {
			fmt.Printf("{\"event\":\"oom\",\"id\":%q,\"oomKills\":%d}\n", id, n)
		} else {
			fmt.Printf("oom %s %d\n", id, n)
		}
	})
}

type cgsetCmd struct {
	cli.Globals
	Create createCmd `cmd:"" help:"Create the container's cgroup with limits; prints its path."`
	Set    setCmd    `cmd:"" help:"Change the limits of an existing cgroup."`
	Add    addCmd    `cmd:"" help:"Move a running process into the cgroup."`
	Delete deleteCmd `cmd:"" aliases:"rm" help:"Kill what runs in the cgroup and remove it (gone already is fine)."`
	Show   showCmd   `cmd:"" help:"Show the cgroup's limits, usage, processes and OOM kills."`
	Watch  watchCmd  `cmd:"" help:"Print a line 'oom ID COUNT' on each OOM kill; exit once the cgroup has run and is empty."`
}

func main() {
	var cmd cgsetCmd
	cli.Main("cgset", description, &cmd, &cmd.Globals)
}
