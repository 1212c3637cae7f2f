package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// backend is what differs between cgroup v1 (one dir per hierarchy, a file per limit in each
// controller's own dir) and v2 (one dir, controllers enabled from the parent).
type backend interface {
	create(id string) error
	apply(id string, l Limits) error
	info(id string, in *Info) error
	oomKills(id string) (uint64, error)
}

func pick() backend {
	if r := v2Root(); r != "" {
		return v2{root: r}
	}
	if DetectMode() == Unified {
		return v2{root: cgroupRoot}
	}
	return v1{}
}

// Create makes the container's cgroup in every hierarchy and applies l. Creating it again
// is a no-op, apart from applying any new limits. It returns the cgroup path (/hardway/ID).
func Create(id string, l Limits) (string, error) {
	if err := state.ValidID(id); err != nil {
		return "", err
	}
	if err := l.Check(); err != nil {
		return "", err
	}
	dirs, err := Dirs(id)
	if err != nil {
		return "", err
	}
	b := pick()
	if err := b.create(id); err != nil {
		if len(dirs) == 0 {
			Delete(id) // leave nothing behind a failed first create
		}
		return "", err
	}
	if err := b.apply(id, l); err != nil {
		if len(dirs) == 0 {
			Delete(id)
		}
		return "", err
	}
	return state.CgroupPath(id), nil
}

// Set changes the limits of an existing cgroup.
func Set(id string, l Limits) error {
	if err := mustExist(id); err != nil {
		return err
	}
	if l.MemorySwap != 0 && l.Memory == 0 {
		// As docker update: a new memory+swap applies to the memory limit already there.
		if in, err := Show(id); err == nil && in.MemoryLimit > 0 {
			l.Memory = in.MemoryLimit
		}
	}
	if err := l.Check(); err != nil {
		return err
	}
	return pick().apply(id, l)
}

// Add moves a running process into the container's cgroup.
func Add(id string, pid int) error {
	if err := mustExist(id); err != nil {
		return err
	}
	if pid <= 0 || unix.Kill(pid, 0) == unix.ESRCH {
		return cli.Errorf("check the pid with: ps -p "+strconv.Itoa(pid), "process %d does not exist", pid)
	}
	err := Join(id, pid)
	if errors.Is(err, unix.ESRCH) {
		return cli.Errorf("check the pid with: ps -p "+strconv.Itoa(pid), "process %d exited before it could be added", pid)
	}
	return err
}

func mustExist(id string) error {
	if err := state.ValidID(id); err != nil {
		return err
	}
	dirs, err := Dirs(id)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return cli.Errorf("run: cgset create "+id, "no cgroup %s", state.CgroupPath(id))
	}
	return nil
}

// OOMKills is how many processes the kernel's OOM killer has killed in the container's
// cgroup (memory.oom_control on v1, memory.events on v2), what Docker reports as OOMKilled.
func OOMKills(id string) (uint64, error) {
	if err := mustExist(id); err != nil {
		return 0, err
	}
	return pick().oomKills(id)
}

// Delete kills whatever runs in the container's cgroup and removes its dir from every
// hierarchy. A cgroup that is already gone is not an error.
func Delete(id string) error {
	if err := state.ValidID(id); err != nil {
		return err
	}
	dirs, err := Dirs(id)
	if err != nil {
		return err
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := killAll(dirs); err != nil {
		return err
	}
	for _, d := range dirs {
		if err := removeTree(d); err != nil {
			return err
		}
	}
	return nil
}

// Info is what `cgset show` reports. Limits of -1 mean unlimited.
type Info struct {
	ID          string   `json:"id"`
	Path        string   `json:"path"`
	Mode        string   `json:"mode"`
	Dirs        []string `json:"dirs"`
	MemoryLimit int64    `json:"memoryLimit"`
	MemSwap     int64    `json:"memorySwapLimit"` // memory+swap, as docker --memory-swap
	MemoryUsage int64    `json:"memoryUsage"`
	PidsLimit   int64    `json:"pidsLimit"`
	PidsCurrent int64    `json:"pidsCurrent"`
	CPUQuota    int64    `json:"cpuQuota"` // µs per period, -1 unlimited
	CPUPeriod   int64    `json:"cpuPeriod"`
	CPUShares   int64    `json:"cpuShares,omitempty"` // v1 cpu.shares
	CPUWeight   int64    `json:"cpuWeight,omitempty"` // v2 cpu.weight
	CPUUsage    int64    `json:"cpuUsageNs"`          // cpu time used, ns
	Cpuset      string   `json:"cpuset,omitempty"`
	OOMKills    uint64   `json:"oomKills"`
	Procs       []int    `json:"procs"`
}

// Show reads the cgroup's limits and usage.
func Show(id string) (*Info, error) {
	if err := mustExist(id); err != nil {
		return nil, err
	}
	dirs, _ := Dirs(id)
	mode := DetectMode().String()
	if r := v2Root(); r != "" {
		mode = "cgroup v2 at " + r + " ($HARDWAY_CGROUP_ROOT)"
	}
	in := &Info{ID: id, Path: state.CgroupPath(id), Mode: mode, Dirs: dirs,
		MemoryLimit: -1, MemSwap: -1, PidsLimit: -1, CPUQuota: -1, CPUShares: -1, CPUWeight: -1}
	b := pick()
	if err := b.info(id, in); err != nil {
		return nil, err
	}
	in.OOMKills, _ = b.oomKills(id)
	in.Procs = procsOf(dirs)
	return in, nil
}

// ---- file helpers shared by both backends ----

// write puts one value into a cgroup file, narrated as the echo a learner would type.
func write(why, path, value string) error {
	trace.Step(why, fmt.Sprintf("echo %s > %s", trace.Quote(value), path))
	err := os.WriteFile(path, []byte(value), 0)
	if err != nil {
		return &os.PathError{Op: "write " + value + " to", Path: path, Err: errors.Unwrap(err)}
	}
	return nil
}

// writeRaw writes one file named by the user (cgset -r), refusing a file the kernel does
// not offer rather than creating it.
func writeRaw(dir string, r Setting) error {
	f := filepath.Join(dir, r.File)
	if _, err := os.Stat(f); err != nil {
		return cli.Errorf("list what there is: ls "+dir, "no file %s in %s", r.File, dir)
	}
	err := write("set "+r.File, f, r.Value)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
		return cli.Errorf("see the kernel's cgroup documentation for its format", "the kernel refused %q for %s", r.Value, r.File)
	}
	return err
}

// cpusetErr explains the kernel's EINVAL for cpus the parent does not have.
func cpusetErr(cpus string, err error) error {
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ERANGE) {
		return cli.Errorf("this machine has cpus "+readString("/sys/devices/system/cpu/online"),
			"cpuset %s is not within the cpus the parent cgroup allows", cpus)
	}
	return err
}

func mkdir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	trace.Step("create cgroup "+dir, "mkdir "+dir)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return nil
}

func readString(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// readInt reads a number file; "max" and v1's huge "unlimited" values read as -1.
func readInt(path string) int64 {
	s := readString(path)
	if s == "" || s == "max" {
		return -1
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return -1
	}
	if n >= 1<<62 {
		return -1
	}
	return n
}

// readKey reads "key value" lines (memory.events, memory.oom_control).
func readKey(path, key string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == key {
			return strconv.ParseUint(f[1], 10, 64)
		}
	}
	return 0, nil
}

// procs lists the pids in dir and every cgroup below it.
func procs(dir string) []int {
	var out []int
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		for _, f := range strings.Fields(readString(filepath.Join(p, "cgroup.procs"))) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
		return nil
	})
	return out
}

// killAll empties the cgroup: cgroup.kill where the kernel has it (v2), else freeze the
// cgroup so nothing forks behind our back, SIGKILL each pid, and thaw so the kills land.
func killAll(dirs []string) error {
	for i := 0; ; i++ {
		pids := procsOf(dirs)
		if len(pids) == 0 {
			return nil
		}
		if i >= 500 {
			return fmt.Errorf("processes %v are still in the cgroup after SIGKILL", pids)
		}
		if i%50 == 0 {
			killOnce(dirs, pids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func killOnce(dirs []string, pids []int) {
	killed := false
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.kill")); err == nil && len(procs(d)) > 0 {
			if write("kill every process in "+d, filepath.Join(d, "cgroup.kill"), "1") == nil {
				killed = true
			}
		}
	}
	// cgroup.kill is asynchronous: give it a moment before falling back to kill(2).
	for i := 0; killed && i < 50; i++ {
		if len(procsOf(dirs)) == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	var freezer string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "freezer.state")); err == nil {
			freezer = filepath.Join(d, "freezer.state")
		}
	}
	if freezer != "" {
		write("freeze the cgroup so nothing forks while it is emptied", freezer, "FROZEN")
		for i := 0; i < 100 && readString(freezer) == "FREEZING"; i++ {
			time.Sleep(time.Millisecond)
		}
	}
	for _, p := range pids {
		trace.Step(fmt.Sprintf("kill pid %d", p), fmt.Sprintf("kill -9 %d", p))
		syscall.Kill(p, syscall.SIGKILL)
	}
	if freezer != "" {
		write("thaw it so the SIGKILLs are delivered", freezer, "THAWED")
	}
}

// procsOf lists each pid found in any of dirs once.
func procsOf(dirs []string) []int {
	var pids []int
	seen := map[int]bool{}
	for _, d := range dirs {
		for _, p := range procs(d) {
			if !seen[p] {
				seen[p] = true
				pids = append(pids, p)
			}
		}
	}
	return pids
}

// removeTree removes a cgroup dir depth-first. rmdir can fail with EBUSY for a moment after
// the last process died, so it retries with a growing pause. Gone already is success.
func removeTree(dir string) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	for _, e := range ents {
		if e.IsDir() {
			if err := removeTree(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	trace.Step("remove cgroup "+dir, "rmdir "+dir)
	delay := time.Millisecond
	for i := 0; ; i++ {
		err := unix.Rmdir(dir)
		if err == nil || err == unix.ENOENT {
			return nil
		}
		if err != unix.EBUSY || i >= 12 {
			return fmt.Errorf("rmdir %s: %w", dir, err)
		}
		time.Sleep(delay)
		delay *= 2
	}
}
