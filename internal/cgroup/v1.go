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

// v1 is the legacy layout: every controller has its own hierarchy, so the container's
// cgroup is one dir per hierarchy and each limit lives in its controller's dir. On a hybrid
// host the empty cgroup2 at /sys/fs/cgroup/unified gets the dir too, so the process's
// `0::` line in /proc/PID/cgroup names it as well.
type v1 struct{}

func (v1) create(id string) error {
	hs, err := Hierarchies()
	if err != nil {
		return err
	}
	if len(hs) == 0 {
		return cli.Errorf("mount them, or boot with cgroups enabled", "no cgroup hierarchy is mounted")
	}
	for _, h := range hs {
		if err := mkdirLevels(h, state.CgroupPath(id)); err != nil {
			return err
		}
	}
	return nil
}

// mkdirLevels creates each level of the container's path in one hierarchy. cpuset refuses
// tasks in a cgroup whose cpus or mems are empty, so each new level copies its parent's.
func mkdirLevels(h Hierarchy, rel string) error {
	cpuset := hasCtrl(h, "cpuset")
	dir := h.Mount
	for _, part := range strings.Split(strings.Trim(rel, "/"), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		if err := mkdir(dir); err != nil {
			return err
		}
		if cpuset {
			for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
				if readString(filepath.Join(dir, f)) == "" {
					if err := write("give the new cpuset its parent's "+f, filepath.Join(dir, f), readString(filepath.Join(parent, f))); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

func hasCtrl(h Hierarchy, ctrl string) bool {
	for _, c := range h.Controllers {
		if c == ctrl {
			return true
		}
	}
	return false
}

// ctrlDir is the container's dir in the hierarchy that carries ctrl ("" if none does).
func ctrlDir(id, ctrl string) string {
	hs, _ := Hierarchies()
	for _, h := range hs {
		if !h.V2 && hasCtrl(h, ctrl) {
			return filepath.Join(h.Mount, state.CgroupPath(id))
		}
	}
	return ""
}

// need is the container's dir in the hierarchy of ctrl, or an error naming what is missing.
func (v1) need(id, ctrl string) (string, error) {
	if d := ctrlDir(id, ctrl); d != "" {
		return d, nil
	}
	var have []string
	hs, _ := Hierarchies()
	for _, h := range hs {
		if !h.V2 {
			have = append(have, h.Controllers...)
		}
	}
	return "", cli.Errorf("this host's cgroup v1 hierarchies have: "+strings.Join(have, ", "),
		"the %s controller is not mounted", ctrl)
}

func (b v1) apply(id string, l Limits) error {
	if l.Memory != 0 {
		if err := b.memory(id, l.Memory, l.swapFor()); err != nil {
			return err
		}
	}
	if l.Pids != 0 {
		d, err := b.need(id, "pids")
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
		d, err := b.need(id, "cpu")
		if err != nil {
			return err
		}
		if l.CPUs != 0 {
			if err := write("set the CFS period (100ms, as Docker)", filepath.Join(d, "cpu.cfs_period_us"), strconv.Itoa(cpuPeriod)); err != nil {
				return err
			}
			q := strconv.FormatInt(cpuQuota(l.CPUs), 10)
			if err := write(fmt.Sprintf("allow %g cpus: %s µs of cpu time per period", l.CPUs, q), filepath.Join(d, "cpu.cfs_quota_us"), q); err != nil {
				return err
			}
		}
		shares, why := l.CPUShares, "set the cpu weight relative to other cgroups (1024 is the default)"
		if l.CPUWeight != 0 {
			shares, why = WeightToShares(l.CPUWeight), fmt.Sprintf("set the cpu weight: v2 weight %d is %d shares on v1", l.CPUWeight, WeightToShares(l.CPUWeight))
		}
		if shares != 0 {
			if err := write(why, filepath.Join(d, "cpu.shares"), strconv.FormatUint(shares, 10)); err != nil {
				return err
			}
		}
	}
	if l.Cpuset != "" {
		d, err := b.need(id, "cpuset")
		if err != nil {
			return err
		}
		if err := write("pin the container to cpus "+l.Cpuset, filepath.Join(d, "cpuset.cpus"), l.Cpuset); err != nil {
			return cpusetErr(l.Cpuset, err)
		}
	}
	if l.IOWeight != 0 || len(l.IOMax) > 0 {
		d, err := b.need(id, "blkio")
		if err != nil {
			return err
		}
		if l.IOWeight != 0 {
			f := ""
			for _, c := range []string{"blkio.bfq.weight", "blkio.weight"} {
				if _, err := os.Stat(filepath.Join(d, c)); err == nil {
					f = c
					break
				}
			}
			if f == "" {
				return cli.Errorf("disk weights need the bfq scheduler: echo bfq > /sys/block/DISK/queue/scheduler",
					"this kernel has no blkio weight file")
			}
			if err := write("set the disk weight relative to other cgroups", filepath.Join(d, f), strconv.FormatUint(l.IOWeight, 10)); err != nil {
				return err
			}
		}
		names := map[string]string{"rbps": "read_bps", "wbps": "write_bps", "riops": "read_iops", "wiops": "write_iops"}
		for _, m := range l.IOMax {
			f := filepath.Join(d, "blkio.throttle."+names[m.Kind]+"_device")
			if err := write(fmt.Sprintf("throttle %s of device %d:%d", m.Kind, m.Major, m.Minor), f, fmt.Sprintf("%d:%d %d", m.Major, m.Minor, m.Value)); err != nil {
				return err
			}
		}
	}
	for _, r := range l.Raw {
		c, err := controllerOf(r.File)
		if err != nil {
			return err
		}
		var dirs []string
		if c == "cgroup" {
			dirs, _ = Dirs(id) // core files live in every hierarchy
		} else {
			d, err := b.need(id, c)
			if err != nil {
				return err
			}
			dirs = []string{d}
		}
		for _, d := range dirs {
			if err := writeRaw(d, r); err != nil {
				return err
			}
		}
	}
	return nil
}

// memory sets memory.limit_in_bytes and, where swap is accounted, memory+swap (twice the
// memory unless --memory-swap says otherwise, as Docker). The kernel wants limit <= memsw
// at every moment, so the order of the two writes depends on the old values.
func (b v1) memory(id string, mem, swap int64) error {
	d, err := b.need(id, "memory")
	if err != nil {
		return err
	}
	limit := filepath.Join(d, "memory.limit_in_bytes")
	memsw := filepath.Join(d, "memory.memsw.limit_in_bytes")
	hasSw := true
	if _, err := os.Stat(memsw); err != nil {
		hasSw = false
	}
	wLimit := func() error {
		err := write("limit memory to "+FormatSize(mem), limit, strconv.FormatInt(mem, 10))
		if errors.Is(err, unix.EBUSY) {
			use := readInt(filepath.Join(d, "memory.usage_in_bytes"))
			return cli.Errorf("stop some of its processes or choose a higher limit",
				"memory limit %s is below what the cgroup already uses (%s)", FormatSize(mem), FormatSize(use))
		}
		return err
	}
	wSw := func() error {
		if swap < 0 {
			return write("no limit on memory+swap (--memory-swap=-1)", memsw, "-1")
		}
		return write("limit memory+swap to "+FormatSize(swap), memsw, strconv.FormatInt(swap, 10))
	}
	if !hasSw {
		return wLimit()
	}
	// Limit first when the new limit fits under the current memsw, else memsw first.
	if sw := readInt(memsw); sw == -1 || mem <= sw {
		if err := wLimit(); err != nil {
			return err
		}
		return wSw()
	}
	if err := wSw(); err != nil {
		return err
	}
	return wLimit()
}

func (v1) info(id string, in *Info) error {
	if d := ctrlDir(id, "memory"); d != "" {
		in.MemoryLimit = readInt(filepath.Join(d, "memory.limit_in_bytes"))
		in.MemSwap = readInt(filepath.Join(d, "memory.memsw.limit_in_bytes"))
		in.MemoryUsage = readInt(filepath.Join(d, "memory.usage_in_bytes"))
	}
	if d := ctrlDir(id, "pids"); d != "" {
		in.PidsLimit = readInt(filepath.Join(d, "pids.max"))
		in.PidsCurrent = readInt(filepath.Join(d, "pids.current"))
	}
	if d := ctrlDir(id, "cpuacct"); d != "" {
		in.CPUUsage = readInt(filepath.Join(d, "cpuacct.usage"))
	}
	if d := ctrlDir(id, "cpuset"); d != "" {
		in.Cpuset = readString(filepath.Join(d, "cpuset.cpus"))
	}
	if d := ctrlDir(id, "cpu"); d != "" {
		in.CPUShares = readInt(filepath.Join(d, "cpu.shares"))
		in.CPUQuota = readInt(filepath.Join(d, "cpu.cfs_quota_us"))
		in.CPUPeriod = readInt(filepath.Join(d, "cpu.cfs_period_us"))
	}
	return nil
}

func (b v1) oomKills(id string) (uint64, error) {
	d, err := b.need(id, "memory")
	if err != nil {
		return 0, err
	}
	return readKey(filepath.Join(d, "memory.oom_control"), "oom_kill")
}
