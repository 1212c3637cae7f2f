package cgroup

import (
	"fmt"
	"io"
	"strings"
)

// WriteInfo renders Info as the plain text `cgset show` prints.
func WriteInfo(w io.Writer, in *Info) error {
	lim := func(n int64, size bool) string {
		switch {
		case n < 0:
			return "unlimited"
		case size:
			return fmt.Sprintf("%d (%s)", n, FormatSize(n))
		}
		return fmt.Sprint(n)
	}
	cpu := "unlimited"
	if in.CPUQuota >= 0 && in.CPUPeriod > 0 {
		cpu = fmt.Sprintf("%g cpus (%d µs per %d µs)", float64(in.CPUQuota)/float64(in.CPUPeriod), in.CPUQuota, in.CPUPeriod)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "cgroup:       %s\n", in.Path)
	fmt.Fprintf(&b, "mode:         %s\n", in.Mode)
	for i, d := range in.Dirs {
		label := "dirs:"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(&b, "%-13s %s\n", label, d)
	}
	fmt.Fprintf(&b, "memory limit: %s\n", lim(in.MemoryLimit, true))
	fmt.Fprintf(&b, "memory+swap:  %s\n", lim(in.MemSwap, true))
	fmt.Fprintf(&b, "memory used:  %s\n", lim(in.MemoryUsage, true))
	fmt.Fprintf(&b, "pids limit:   %s\n", lim(in.PidsLimit, false))
	fmt.Fprintf(&b, "pids current: %s\n", lim(in.PidsCurrent, false))
	fmt.Fprintf(&b, "cpu:          %s\n", cpu)
	switch {
	case in.CPUShares >= 0:
		fmt.Fprintf(&b, "cpu shares:   %d\n", in.CPUShares)
	case in.CPUWeight >= 0:
		fmt.Fprintf(&b, "cpu weight:   %d\n", in.CPUWeight)
	}
	fmt.Fprintf(&b, "cpu used:     %.3fs\n", float64(in.CPUUsage)/1e9)
	if in.Cpuset != "" {
		fmt.Fprintf(&b, "cpuset:       %s\n", in.Cpuset)
	}
	fmt.Fprintf(&b, "oom kills:    %d\n", in.OOMKills)
	fmt.Fprintf(&b, "processes:    %s\n", strings.Trim(fmt.Sprint(in.Procs), "[]"))
	_, err := io.WriteString(w, b.String())
	return err
}
