// Package inspect is the last stage's engine: it shows what the kernel knows about a running
// container, read straight from /proc: the process tree from the shim down with the points
// where namespaces change, the container's namespaces against the host's, its mounts, its
// cgroup and its address.
package inspect

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/network"
	"github.com/hardway/hardway/internal/state"
)

// NSTypes are the namespaces a container can have of its own, in the order lsns lists them.
var NSTypes = []string{"mnt", "uts", "ipc", "pid", "net", "cgroup", "user", "time"}

// Target is what to inspect: the container's pid, the shim above it (0 if none) and its id
// ("" when inspecting a bare pid).
type Target struct {
	ID      string
	Pid     int
	ShimPid int
}

// ByID finds a running container's pids from the state.json shim wrote.
func ByID(id string) (Target, error) {
	hint := "run it with: shim --id " + id + " -- nsrun …"
	if err := state.ValidID(id); err != nil {
		return Target{}, err
	}
	c, err := state.ReadContainer(id)
	if errors.Is(err, os.ErrNotExist) {
		return Target{}, cli.Errorf(hint, "container %s has no state: %s does not exist", id, state.StateFile(id))
	}
	if err != nil {
		return Target{}, err
	}
	if c.Pid <= 0 || !alive(c.Pid) {
		status := c.Status
		if status == "" {
			status = "unknown"
		}
		return Target{}, cli.Errorf(hint, "container %s is not running (status %s)", id, status)
	}
	t := Target{ID: id, Pid: c.Pid}
	if c.ShimPid > 0 && alive(c.ShimPid) {
		t.ShimPid = c.ShimPid
	}
	return t, nil
}

// ByPid inspects any process.
func ByPid(pid int) (Target, error) {
	if pid <= 0 || !alive(pid) {
		return Target{}, cli.Errorf("check it with: ps -p "+strconv.Itoa(pid), "process %d does not exist", pid)
	}
	return Target{Pid: pid}, nil
}

func alive(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	return err == nil && unix.Kill(pid, 0) != unix.ESRCH
}

// Write renders the whole view.
func Write(w io.Writer, t Target) error {
	var b strings.Builder
	title := fmt.Sprintf("pid %d", t.Pid)
	if t.ID != "" {
		title = fmt.Sprintf("container %s (pid %d)", t.ID, t.Pid)
	}
	fmt.Fprintf(&b, "%s\n\n", title)
	writeTree(&b, t)
	writeNamespaces(&b, t.Pid)
	if err := writeMounts(&b, t.Pid); err != nil {
		return err
	}
	writeCgroup(&b, t)
	if t.ID != "" {
		if ip, err := network.ContainerIP(t.ID); err == nil {
			fmt.Fprintf(&b, "\nNETWORK\n  address %s on bridge %s (veth %s <-> eth0), netns %s\n",
				ip, network.Bridge(), network.HostVeth(t.ID), state.NetnsPath(t.ID))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// ---- processes ----

type proc struct {
	pid, ppid int
	args      string
}

func readProc(pid int) (proc, bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	// pid (comm) state ppid …: comm may hold spaces and parentheses, so split at the last ')'.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	j := strings.IndexByte(s, '(')
	if i < 0 || j < 0 {
		return proc{}, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	p := proc{pid: pid, ppid: ppid}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if a := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " "); a != "" {
		if len(a) > 100 {
			a = a[:97] + "..."
		}
		p.args = a
	} else {
		p.args = "[" + s[j+1:i] + "]"
	}
	return p, true
}

func allProcs() map[int]proc {
	ps := map[int]proc{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if p, ok := readProc(pid); ok {
				ps[pid] = p
			}
		}
	}
	return ps
}

// nsOf reads the namespace links of pid ("net:[4026531840]").
func nsOf(pid int) map[string]string {
	m := map[string]string{}
	for _, t := range NSTypes {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, t)); err == nil {
			m[t] = l
		}
	}
	return m
}

// nsChange lists the namespace types in which pid differs from ref, like pstree -S.
func nsChange(pid int, ref map[string]string) []string {
	var out []string
	mine := nsOf(pid)
	for _, t := range NSTypes {
		if mine[t] != "" && ref[t] != "" && mine[t] != ref[t] {
			out = append(out, t)
		}
	}
	return out
}

// nsPid is the pid the process has inside its own pid namespace (NSpid's last field).
func nsPid(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "NSpid:") {
			f := strings.Fields(l)
			if len(f) > 2 {
				return f[len(f)-1]
			}
		}
	}
	return ""
}

func label(p proc) string {
	s := fmt.Sprintf("%s(%d)", p.args, p.pid)
	if n := nsPid(p.pid); n != "" {
		s = fmt.Sprintf("%s(%d, pid %s inside)", p.args, p.pid, n)
	}
	return s
}

// writeTree prints the ancestors of the top (shim, or the process) as a chain, then the
// tree below it, marking each process whose namespaces differ from its parent's.
func writeTree(b *strings.Builder, t Target) {
	ps := allProcs()
	top := t.Pid
	if t.ShimPid != 0 {
		top = t.ShimPid
	}
	fmt.Fprintf(b, "PROCESSES (from the shim down; [..] marks namespaces that differ from the parent's)\n")
	var chain []int
	for p := ps[top].ppid; p > 0; p = ps[p].ppid {
		chain = append([]int{p}, chain...)
		if len(chain) > 64 {
			break
		}
	}
	mark := func(pid int) string {
		if ppid := ps[pid].ppid; ppid > 0 {
			if ch := nsChange(pid, nsOf(ppid)); len(ch) > 0 {
				return " [" + strings.Join(ch, ",") + "]"
			}
		}
		return ""
	}
	for i, p := range chain {
		fmt.Fprintf(b, "  %s%s%s\n", strings.Repeat("  ", i), label(ps[p]), mark(p))
	}
	kids := map[int][]int{}
	for _, p := range ps {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var walk func(pid, depth int)
	walk = func(pid, depth int) {
		arrow := ""
		if pid == t.Pid && t.ShimPid != 0 {
			arrow = "   <- the container"
		}
		fmt.Fprintf(b, "  %s%s%s%s\n", strings.Repeat("  ", depth), label(ps[pid]), mark(pid), arrow)
		sort.Ints(kids[pid])
		for _, k := range kids[pid] {
			walk(k, depth+1)
		}
	}
	walk(top, len(chain))
	b.WriteString("\n")
}

// ---- namespaces ----

// hostNS is the host's namespaces: pid 1's, or, where a sandbox hides those, inspect's own
// (it runs on the host).
func hostNS() (map[string]string, string) {
	if m := nsOf(1); len(m) > 0 {
		return m, "pid 1"
	}
	return nsOf(os.Getpid()), "this inspect process, as /proc/1/ns is not readable"
}

func writeNamespaces(b *strings.Builder, pid int) {
	host, who := hostNS()
	mine := nsOf(pid)
	fmt.Fprintf(b, "NAMESPACES (pid %d against the host's: %s)\n", pid, who)
	fmt.Fprintf(b, "  %-7s %-22s %-22s %s\n", "TYPE", "PROCESS", "HOST", "")
	for _, t := range NSTypes {
		if mine[t] == "" {
			continue
		}
		state := "shared with the host"
		if mine[t] != host[t] {
			state = "NEW (own namespace)"
		}
		fmt.Fprintf(b, "  %-7s %-22s %-22s %s\n", t, inode(mine[t]), inode(host[t]), state)
	}
	b.WriteString("\n")
}

func inode(link string) string {
	if i := strings.IndexByte(link, '['); i >= 0 {
		return strings.Trim(link[i:], "[]")
	}
	return link
}

// ---- mounts ----

// Mount is one line of /proc/PID/mountinfo.
type Mount struct {
	Point, Root, FSType, Source, Options, SuperOptions string
}

// Mounts parses /proc/PID/mountinfo.
func Mounts(pid int) ([]Mount, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		return nil, err
	}
	var ms []Mount
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 6 || len(f) < sep+4 {
			continue
		}
		ms = append(ms, Mount{Point: unescape(f[4]), Root: unescape(f[3]), Options: f[5],
			FSType: f[sep+1], Source: f[sep+2], SuperOptions: f[sep+3]})
	}
	return ms, nil
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

var virtualFS = map[string]bool{"proc": true, "sysfs": true, "tmpfs": true, "devpts": true,
	"mqueue": true, "cgroup": true, "cgroup2": true, "devtmpfs": true, "securityfs": true,
	"debugfs": true, "tracefs": true, "pstore": true, "bpf": true, "hugetlbfs": true,
	"configfs": true, "fusectl": true, "binfmt_misc": true, "autofs": true, "nsfs": true}

func writeMounts(b *strings.Builder, pid int) error {
	ms, err := Mounts(pid)
	if err != nil {
		return fmt.Errorf("read the mounts of pid %d: %w", pid, err)
	}
	fmt.Fprintf(b, "MOUNTS (/proc/%d/mountinfo, %d entries)\n", pid, len(ms))
	var root, virt, binds, other []Mount
	for _, m := range ms {
		switch {
		case m.Point == "/":
			root = append(root, m)
		case virtualFS[m.FSType] && m.Root == "/":
			virt = append(virt, m)
		case m.Root != "/":
			binds = append(binds, m)
		default:
			other = append(other, m)
		}
	}
	line := func(m Mount) string {
		s := fmt.Sprintf("    %-24s %-9s %s", m.Point, m.FSType, m.Source)
		if m.Root != "/" {
			s += "  from " + m.Root
		}
		return s + "  (" + m.Options + ")\n"
	}
	fmt.Fprintf(b, "  root filesystem:\n")
	for _, m := range root {
		b.WriteString(line(m))
		if m.FSType == "overlay" {
			for _, o := range strings.Split(m.SuperOptions, ",") {
				k, v, _ := strings.Cut(o, "=")
				switch k {
				case "lowerdir":
					for i, l := range strings.Split(v, ":") {
						fmt.Fprintf(b, "      lowerdir %d: %s\n", i+1, l)
					}
				case "upperdir", "workdir":
					fmt.Fprintf(b, "      %-10s %s\n", k+":", v)
				}
			}
		}
	}
	for _, g := range []struct {
		name string
		ms   []Mount
	}{{"virtual filesystems", virt}, {"bind mounts (files and dirs from the host)", binds}, {"other", other}} {
		if len(g.ms) == 0 {
			continue
		}
		fmt.Fprintf(b, "  %s:\n", g.name)
		for _, m := range g.ms {
			b.WriteString(line(m))
		}
	}
	b.WriteString("\n")
	return nil
}

// ---- cgroup ----

func writeCgroup(b *strings.Builder, t Target) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", t.Pid))
	if err != nil {
		return
	}
	fmt.Fprintf(b, "CGROUP (/proc/%d/cgroup)\n", t.Pid)
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		fmt.Fprintf(b, "  %s\n", l)
	}
	if t.ID != "" {
		if in, err := cgroup.Show(t.ID); err == nil {
			var sb strings.Builder
			cgroup.WriteInfo(&sb, in)
			for _, l := range strings.Split(strings.TrimSpace(sb.String()), "\n") {
				if !strings.HasPrefix(l, "dirs:") && !strings.HasPrefix(l, " ") {
					fmt.Fprintf(b, "  %s\n", l)
				}
			}
		}
	}
}
