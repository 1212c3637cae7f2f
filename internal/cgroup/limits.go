package cgroup

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
)

// Limits are the resource limits of a container's cgroup, in Docker's units. A zero field
// means "leave as it is".
type Limits struct {
	Memory     int64   // bytes (docker --memory)
	MemorySwap int64   // memory+swap bytes (docker --memory-swap); -1 unlimited; 0: twice Memory
	Pids       int64   // max tasks (docker --pids-limit); -1 means unlimited
	CPUs       float64 // cpus (docker --cpus): quota = CPUs × period
	CPUShares  uint64  // relative weight, v1 units 2…262144 (docker --cpu-shares)
	CPUWeight  uint64  // relative weight, v2 units 1…10000 (cpu.weight)
	Cpuset     string  // cpus the container may run on (docker --cpuset-cpus): 0-1, 0,2
	IOWeight   uint64  // relative disk weight 10…1000 (docker --blkio-weight)
	IOMax      []IOLimit
	Raw        []Setting // any other file, as libcgroup's cgset -r FILE=VALUE
}

// IOLimit is one per-device throttle (docker --device-read-bps and friends).
type IOLimit struct {
	Major, Minor uint32
	Kind         string // rbps, wbps, riops, wiops (the keys of v2's io.max)
	Value        uint64
}

// Setting is one raw cgroup file and the value to write into it.
type Setting struct{ File, Value string }

// IsZero reports whether no limit is asked for.
func (l Limits) IsZero() bool {
	return l.Memory == 0 && l.MemorySwap == 0 && l.Pids == 0 && l.CPUs == 0 && l.CPUShares == 0 &&
		l.CPUWeight == 0 && l.Cpuset == "" && l.IOWeight == 0 && len(l.IOMax) == 0 && len(l.Raw) == 0
}

// Check refuses combinations Docker refuses too.
func (l Limits) Check() error {
	if l.MemorySwap != 0 && l.Memory == 0 {
		return cli.Errorf("give --memory too: memory-swap is memory plus swap", "--memory-swap without --memory")
	}
	if l.MemorySwap > 0 && l.MemorySwap < l.Memory {
		return cli.Errorf("memory-swap counts memory plus swap, so it must be at least --memory",
			"--memory-swap %s is below --memory %s", FormatSize(l.MemorySwap), FormatSize(l.Memory))
	}
	if l.MemorySwap < -1 {
		return cli.Errorf("a size, or -1 for unlimited swap", "invalid --memory-swap")
	}
	if l.CPUShares != 0 && l.CPUWeight != 0 {
		return cli.Errorf("they set the same thing in different units", "give --cpu-shares or --cpu-weight, not both")
	}
	if l.CPUShares != 0 && (l.CPUShares < 2 || l.CPUShares > 262144) {
		return cli.Errorf("between 2 and 262144; 1024 is the default", "invalid --cpu-shares %d", l.CPUShares)
	}
	if l.CPUWeight != 0 && l.CPUWeight > 10000 {
		return cli.Errorf("between 1 and 10000; 100 is the default", "invalid --cpu-weight %d", l.CPUWeight)
	}
	if l.IOWeight != 0 && (l.IOWeight < 10 || l.IOWeight > 1000) {
		return cli.Errorf("between 10 and 1000, as docker --blkio-weight", "invalid --io-weight %d", l.IOWeight)
	}
	if l.Cpuset != "" && strings.Trim(l.Cpuset, "0123456789,-") != "" {
		return cli.Errorf("a list of cpus such as 0-1 or 0,2", "invalid --cpuset %q", l.Cpuset)
	}
	return nil
}

// swapFor is the memory+swap limit to write with memory: twice the memory unless asked
// otherwise (Docker's default), -1 for unlimited.
func (l Limits) swapFor() int64 {
	if l.MemorySwap != 0 {
		return l.MemorySwap
	}
	return 2 * l.Memory
}

// SharesToWeight converts v1 cpu.shares (2…262144) to v2 cpu.weight (1…10000) by the linear
// map runc and crun use, so 1024 shares (the default) lands near the default weight 100.
func SharesToWeight(shares uint64) uint64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

// WeightToShares is the inverse of SharesToWeight.
func WeightToShares(weight uint64) uint64 {
	if weight == 0 {
		return 0
	}
	return 2 + ((weight-1)*262142+9998)/9999 // round up, so converting back gives weight
}

// blkioToIOWeight converts a v1 blkio weight (10…1000) to v2 io.weight (1…10000), as runc.
func blkioToIOWeight(w uint64) uint64 { return 1 + (w-10)*9999/990 }

// cpuPeriod is the CFS period Docker uses for --cpus: 100ms.
const cpuPeriod = 100000

// cpuQuota converts cpus to a CFS quota in µs per cpuPeriod.
func cpuQuota(cpus float64) int64 { return int64(math.Round(cpus * cpuPeriod)) }

// ParseSize reads a size as Docker's --memory does: a number with an optional binary unit
// b, k, m, g, t (or kb, mb, …), case-insensitive: 256m, 1g, 1.5g, 512k, 268435456.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(t, "ib")
	if len(t) > 1 && strings.HasSuffix(t, "b") && strings.ContainsAny(t[len(t)-2:len(t)-1], "kmgtp") {
		t = t[:len(t)-1]
	}
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'b':
			t = t[:n-1]
		case 'k':
			mult, t = 1<<10, t[:n-1]
		case 'm':
			mult, t = 1<<20, t[:n-1]
		case 'g':
			mult, t = 1<<30, t[:n-1]
		case 't':
			mult, t = 1<<40, t[:n-1]
		case 'p':
			mult, t = 1<<50, t[:n-1]
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, fmt.Errorf("invalid size %q (write it as Docker does: 256m, 1g, 512k or bytes)", s)
	}
	return int64(f * float64(mult)), nil
}

// FormatSize renders bytes in the largest binary unit that divides it, for people.
func FormatSize(b int64) string {
	units := []struct {
		s string
		n int64
	}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}}
	for _, u := range units {
		if b >= u.n && b%u.n == 0 {
			return fmt.Sprintf("%d%s", b/u.n, u.s)
		}
	}
	return strconv.FormatInt(b, 10)
}

// ParseCPUs reads docker --cpus: a positive decimal number of cpus (1.5).
func ParseCPUs(s string) (float64, error) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || cpuQuota(f) < 1000 {
		return 0, fmt.Errorf("invalid cpus %q (a positive number such as 0.5 or 1.5; at least 0.01)", s)
	}
	return f, nil
}

// ParseDeviceRate reads docker's --device-read-bps form DEVICE:RATE, where DEVICE is a
// block device path (/dev/vda) or MAJOR:MINOR and RATE a size (1mb) or, for iops, a count.
func ParseDeviceRate(kind, s string) (IOLimit, error) {
	bad := func(why string) (IOLimit, error) {
		return IOLimit{}, cli.Errorf("write it as /dev/DISK:RATE, e.g. /dev/vda:1mb or 254:0:100", "invalid --io-%s %q: %s", kindFlag(kind), s, why)
	}
	i := strings.LastIndex(s, ":")
	if i <= 0 {
		return bad("no rate")
	}
	dev, rate := s[:i], s[i+1:]
	l := IOLimit{Kind: kind}
	if strings.HasSuffix(kind, "bps") {
		n, err := ParseSize(rate)
		if err != nil || n <= 0 {
			return bad("the rate is not a size")
		}
		l.Value = uint64(n)
	} else {
		n, err := strconv.ParseUint(rate, 10, 64)
		if err != nil || n == 0 {
			return bad("the rate is not a positive count")
		}
		l.Value = n
	}
	if strings.HasPrefix(dev, "/") {
		var st unix.Stat_t
		if err := unix.Stat(dev, &st); err != nil {
			return bad(err.Error())
		}
		if st.Mode&unix.S_IFMT != unix.S_IFBLK {
			return bad(dev + " is not a block device")
		}
		l.Major, l.Minor = unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev))
		return l, nil
	}
	var maj, min uint32
	if _, err := fmt.Sscanf(dev, "%d:%d", &maj, &min); err != nil {
		return bad("the device is neither a path nor MAJOR:MINOR")
	}
	if _, err := os.Stat(fmt.Sprintf("/sys/dev/block/%d:%d", maj, min)); err != nil {
		return bad(fmt.Sprintf("no block device %d:%d", maj, min))
	}
	l.Major, l.Minor = maj, min
	return l, nil
}

func kindFlag(kind string) string {
	return map[string]string{"rbps": "read-bps", "wbps": "write-bps", "riops": "read-iops", "wiops": "write-iops"}[kind]
}

// ParseSetting reads FILE=VALUE (libcgroup's cgset -r form).
func ParseSetting(s string) (Setting, error) {
	i := strings.Index(s, "=")
	if i <= 0 || strings.ContainsAny(s[:i], "/ ") || !strings.Contains(s[:i], ".") {
		return Setting{}, cli.Errorf("write it as CONTROLLER.FILE=VALUE, e.g. memory.high=200m", "invalid --raw %q", s)
	}
	return Setting{File: s[:i], Value: s[i+1:]}, nil
}

// knownControllers are every controller name the kernel has had, v1 and v2, so a typo
// reads as "unknown controller" and a real name as "not available here".
var knownControllers = map[string]bool{"cpu": true, "cpuacct": true, "cpuset": true, "memory": true,
	"pids": true, "io": true, "blkio": true, "hugetlb": true, "rdma": true, "misc": true,
	"devices": true, "freezer": true, "net_cls": true, "net_prio": true, "perf_event": true, "cgroup": true}

// controllerOf is the controller a file belongs to ("memory" for memory.high).
func controllerOf(file string) (string, error) {
	c := file[:strings.Index(file, ".")]
	if !knownControllers[c] {
		return "", cli.Errorf("controllers are cpu, cpuset, memory, pids, io (v2), blkio, cpuacct, … (cat /proc/cgroups)",
			"unknown controller %q in %s", c, file)
	}
	return c, nil
}
