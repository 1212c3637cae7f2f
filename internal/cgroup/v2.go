package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
)

// v2 is the unified layout: one dir holds every limit, and a controller only works in a
// cgroup whose parent lists it in cgroup.subtree_control. The kernel's "no internal
// processes" rule means the parent (hardway/) must hold no processes of its own.
type v2 struct{ root string }

func (c v2) dir(id string) string { return filepath.Join(c.root, state.CgroupPath(id)) }

// wanted are the controllers a container's limits use; only these are handed down, so
// creating a cgroup changes no more of the host's tree than it needs.
var wanted = []string{"cpu", "cpuset", "io", "memory", "pids"}

func (c v2) create(id string) error {
	dir := c.root
	for _, part := range strings.Split(strings.Trim(state.CgroupPath(id), "/"), "/") {
		if err := enableControllers(dir); err != nil {
			return err
		}
		dir = filepath.Join(dir, part)
		if err := mkdir(dir); err != nil {
			return err
		}
	}
	return nil
}

// enableControllers hands the wanted controllers dir has to its children. It tries them
// all at once, then one by one so that one the kernel refuses does not block the others.
func enableControllers(dir string) error {
	have := map[string]bool{}
	for _, c := range strings.Fields(readString(filepath.Join(dir, "cgroup.controllers"))) {
		have[c] = true
	}
	on := map[string]bool{}
	for _, c := range strings.Fields(readString(filepath.Join(dir, "cgroup.subtree_control"))) {
		on[c] = true
	}
	var want []string
	for _, c := range wanted {
		if have[c] && !on[c] {
			want = append(want, "+"+c)
		}
	}
	if len(want) == 0 {
		return nil
	}
	f := filepath.Join(dir, "cgroup.subtree_control")
	err := write("let the children of "+dir+" use its controllers", f, strings.Join(want, " "))
	if err == nil {
		return nil
	}
	if errors.Is(err, unix.EBUSY) {
		return cli.Errorf("move the processes out of "+dir+" (cgroup v2 allows processes only in leaves)",
			"cannot enable controllers in %s: it holds processes", dir)
	}
	for _, w := range want {
		write("enable "+w[1:]+" alone", f, w) // a controller the kernel refuses is left off
	}
	return nil
}

// need checks that ctrl is delegated to the container's cgroup (listed in its
// cgroup.controllers, which is its parent's cgroup.subtree_control) and returns the dir.
func (c v2) need(id, ctrl string) (string, error) {
	d := c.dir(id)
	for _, have := range strings.Fields(readString(filepath.Join(d, "cgroup.controllers"))) {
		if have == ctrl {
			return d, nil
		}
	}
	parent := filepath.Dir(d)
	for _, have := range strings.Fields(readString(filepath.Join(parent, "cgroup.controllers"))) {
		if have == ctrl {
			return "", cli.Errorf("enable it: echo +"+ctrl+" > "+filepath.Join(parent, "cgroup.subtree_control"),
				"the %s controller is not delegated to %s", ctrl, d)
		}
	}
	hint := "the cgroup2 tree at " + c.root + " does not offer it"
	if c.root != cgroupRoot {
		hint += " (on a hybrid host the controllers are bound to the v1 hierarchies)"
	}
	return "", cli.Errorf(hint, "the %s controller is not delegated to %s", ctrl, d)
}

func (c v2) apply(id string, l Limits) error {
	if l.Memory != 0 {
		d, err := c.need(id, "memory")
		if err != nil {
			return err
		}
		err = write("limit memory to "+FormatSize(l.Memory), filepath.Join(d, "memory.max"), strconv.FormatInt(l.Memory, 10))
		if errors.Is(err, unix.EBUSY) {
			return cli.Errorf("stop some of its processes or choose a higher limit",
				"memory limit %s is below what the cgroup already uses (%s)", FormatSize(l.Memory), FormatSize(readInt(filepath.Join(d, "memory.current"))))
		}
		if err != nil {
			return err
		}
		// v2 limits swap alone: memory.swap.max = (memory+swap) - memory.
		if _, err := os.Stat(filepath.Join(d, "memory.swap.max")); err == nil {
			v, why := "max", "no limit on swap (--memory-swap=-1)"
			if sw := l.swapFor(); sw >= 0 {
				v, why = strconv.FormatInt(sw-l.Memory, 10), "allow "+FormatSize(sw-l.Memory)+" of swap (memory+swap minus memory)"
			}
			if err := write(why, filepath.Join(d, "memory.swap.max"), v); err != nil {
				return err
			}
		}
	}
	if l.Pids != 0 {
		d, err := c.need(id, "pids")
		if err != nil {
			return err
		}
		v := "max"
		if l.Pids > 0 {
			v = strconv.FormatInt(l.Pids, 10)
		}
		if err := write("limit the number of tasks", filepath.Join(d, "pids.max"), v); err != nil {
			return err
		}
	}
	if l.CPUs != 0 || l.CPUShares != 0 || l.CPUWeight != 0 {
		d, err := c.need(id, "cpu")
		if err != nil {
			return err
		}
		if l.CPUs != 0 {
			v := fmt.Sprintf("%d %d", cpuQuota(l.CPUs), cpuPeriod)
			if err := write(fmt.Sprintf("allow %g cpus: quota and period in µs", l.CPUs), filepath.Join(d, "cpu.max"), v); err != nil {
				return err
			}
		}
		w, why := l.CPUWeight, "set the cpu weight relative to other cgroups (100 is the default)"
		if l.CPUShares != 0 {
			w, why = SharesToWeight(l.CPUShares), fmt.Sprintf("set the cpu weight: %d v1 shares are weight %d on v2", l.CPUShares, SharesToWeight(l.CPUShares))
		}
		if w != 0 {
			if err := write(why, filepath.Join(d, "cpu.weight"), strconv.FormatUint(w, 10)); err != nil {
				return err
			}
		}
	}
	if l.Cpuset != "" {
		d, err := c.need(id, "cpuset")
		if err != nil {
			return err
		}
		if err := write("pin the container to cpus "+l.Cpuset, filepath.Join(d, "cpuset.cpus"), l.Cpuset); err != nil {
			return cpusetErr(l.Cpuset, err)
		}
	}
	if l.IOWeight != 0 || len(l.IOMax) > 0 {
		d, err := c.need(id, "io")
		if err != nil {
			return err
		}
		if l.IOWeight != 0 {
			// bfq takes the blkio range as is; io.weight wants it on its 1…10000 scale.
			f, v := filepath.Join(d, "io.bfq.weight"), l.IOWeight
			if _, err := os.Stat(f); err != nil {
				f, v = filepath.Join(d, "io.weight"), blkioToIOWeight(l.IOWeight)
			}
			if err := write("set the disk weight relative to other cgroups", f, strconv.FormatUint(v, 10)); err != nil {
				return err
			}
		}
		for _, m := range l.IOMax {
			v := fmt.Sprintf("%d:%d %s=%d", m.Major, m.Minor, m.Kind, m.Value)
			if err := write(fmt.Sprintf("throttle %s of device %d:%d", m.Kind, m.Major, m.Minor), filepath.Join(d, "io.max"), v); err != nil {
				return err
			}
		}
	}
	for _, r := range l.Raw {
		ctrl, err := controllerOf(r.File)
		if err != nil {
			return err
		}
		d := c.dir(id)
		if ctrl != "cgroup" {
			if d, err = c.need(id, ctrl); err != nil {
				return err
			}
		}
		if err := writeRaw(d, r); err != nil {
			return err
		}
	}
	return nil
}

func (c v2) info(id string, in *Info) error {
	d := c.dir(id)
	in.MemoryLimit = readInt(filepath.Join(d, "memory.max"))
	if sw := readInt(filepath.Join(d, "memory.swap.max")); sw >= 0 && in.MemoryLimit >= 0 {
		in.MemSwap = in.MemoryLimit + sw
	}
	in.MemoryUsage = readInt(filepath.Join(d, "memory.current"))
	in.PidsLimit = readInt(filepath.Join(d, "pids.max"))
	in.PidsCurrent = readInt(filepath.Join(d, "pids.current"))
	if f := strings.Fields(readString(filepath.Join(d, "cpu.max"))); len(f) == 2 {
		if f[0] != "max" {
			in.CPUQuota, _ = strconv.ParseInt(f[0], 10, 64)
		}
		in.CPUPeriod, _ = strconv.ParseInt(f[1], 10, 64)
	}
	in.CPUWeight = readInt(filepath.Join(d, "cpu.weight"))
	in.Cpuset = readString(filepath.Join(d, "cpuset.cpus"))
	// cpu.stat is a core file: usage is counted even without the cpu controller.
	if us, err := readKey(filepath.Join(d, "cpu.stat"), "usage_usec"); err == nil {
		in.CPUUsage = int64(us) * 1000
	}
	return nil
}

func (c v2) oomKills(id string) (uint64, error) {
	f := filepath.Join(c.dir(id), "memory.events")
	if _, err := os.Stat(f); err != nil {
		if _, err := c.need(id, "memory"); err != nil {
			return 0, err
		}
	}
	return readKey(f, "oom_kill")
}
