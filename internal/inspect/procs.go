package inspect

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Process is one line of the tree: the ancestors of the shim (or of the inspected process)
// from PID 1 down, then everything below it.
type Process struct {
	Pid       int      `json:"pid"`
	Ppid      int      `json:"ppid"`
	Depth     int      `json:"depth"`
	Comm      string   `json:"comm"`
	Args      string   `json:"args"`
	PidInside int      `json:"pidInside,omitempty"` // the pid in its own pid namespace, when that is not the host's
	NSChange  []string `json:"nsChange,omitempty"`  // namespaces that differ from the parent's, as pstree -S marks
	Ancestor  bool     `json:"ancestor,omitempty"`  // above the shim: the chain from PID 1
	Container bool     `json:"container,omitempty"` // the container's PID 1
}

type proc struct {
	pid, ppid  int
	comm, args string
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
	p := proc{pid: pid, ppid: ppid, comm: s[j+1 : i]}
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if a := strings.TrimRight(strings.ReplaceAll(string(cmd), "\x00", " "), " "); a != "" {
		p.args = a
	} else {
		p.args = "[" + p.comm + "]" // a kernel thread, as ps shows it
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

// nsPid is the pid the process has inside its own pid namespace (NSpid's last field), 0
// when it lives in the host's.
func nsPid(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "NSpid:") {
			if f := strings.Fields(l); len(f) > 2 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}

// processTree lists the ancestors of the top (the shim, or the process itself) as a chain,
// then the tree below it, marking each process whose namespaces differ from its parent's.
func processTree(t Target) []Process {
	ps := allProcs()
	top := t.Pid
	if t.ShimPid != 0 {
		top = t.ShimPid
	}
	var chain []int
	for p := ps[top].ppid; p > 0; p = ps[p].ppid {
		chain = append([]int{p}, chain...)
		if len(chain) > 64 {
			break
		}
	}
	mk := func(pid, depth int) Process {
		p := ps[pid]
		out := Process{Pid: pid, Ppid: p.ppid, Depth: depth, Comm: p.comm, Args: p.args,
			PidInside: nsPid(pid), Container: pid == t.Pid && t.ShimPid != 0}
		if p.ppid > 0 {
			out.NSChange = nsChange(pid, nsOf(p.ppid))
		}
		return out
	}
	var out []Process
	for i, p := range chain {
		a := mk(p, i)
		a.Ancestor = true
		out = append(out, a)
	}
	kids := map[int][]int{}
	for _, p := range ps {
		kids[p.ppid] = append(kids[p.ppid], p.pid)
	}
	var walk func(pid, depth int)
	walk = func(pid, depth int) {
		out = append(out, mk(pid, depth))
		sort.Ints(kids[pid])
		for _, k := range kids[pid] {
			walk(k, depth+1)
		}
	}
	walk(top, len(chain))
	return out
}

// Namespace is one of the process's namespaces next to the host's.
type Namespace struct {
	Type string `json:"type"`
	Ino  uint64 `json:"ino"`
	Host uint64 `json:"hostIno"`
	New  bool   `json:"new"` // differs from the host's
}

// hostNS is the host's namespaces: pid 1's, or, where a sandbox hides those, inspect's own
// (it runs on the host).
func hostNS() (map[string]string, string) {
	if m := nsOf(1); len(m) > 0 {
		return m, "pid 1"
	}
	return nsOf(os.Getpid()), "this inspect process, as /proc/1/ns is not readable"
}

func namespaces(pid int) ([]Namespace, string) {
	host, who := hostNS()
	mine := nsOf(pid)
	var out []Namespace
	for _, t := range NSTypes {
		if mine[t] == "" {
			continue
		}
		out = append(out, Namespace{Type: t, Ino: inode(mine[t]), Host: inode(host[t]), New: mine[t] != host[t]})
	}
	return out, who
}

// inode is the number in a namespace link, "net:[4026531840]".
func inode(link string) uint64 {
	if i := strings.IndexByte(link, '['); i >= 0 {
		n, _ := strconv.ParseUint(strings.Trim(link[i:], "[]"), 10, 64)
		return n
	}
	return 0
}
