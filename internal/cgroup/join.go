// Package cgroup is cgset's engine: it finds the host's cgroup hierarchies (unified v2,
// hybrid, legacy v1) and creates, limits, joins and removes a container's cgroup in them.
package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Hierarchy is one mounted cgroup hierarchy.
type Hierarchy struct {
	Mount       string   // where it is mounted, e.g. /sys/fs/cgroup/memory
	V2          bool     // cgroup2
	Controllers []string // v1: the controllers bound to it (memory, cpu, name=systemd, …)
}

// Hierarchies reads /proc/self/mountinfo for the cgroup mounts; with $HARDWAY_CGROUP_ROOT
// on a cgroup2 mount, that mount is the only one.
func Hierarchies() ([]Hierarchy, error) {
	if r := v2Root(); r != "" {
		return []Hierarchy{{Mount: r, V2: true}}, nil
	}
	ms, err := mountinfo.Read(0)
	if err != nil {
		return nil, err
	}
	var hs []Hierarchy
	seen := map[string]bool{}
	for _, m := range ms {
		if m.Root != "/" || seen[m.Point] {
			continue // a bind of a sub-cgroup (inside a container) is not a hierarchy root
		}
		switch m.FSType {
		case "cgroup2":
			seen[m.Point] = true
			hs = append(hs, Hierarchy{Mount: m.Point, V2: true})
		case "cgroup":
			var ctrls []string
			for _, o := range strings.Split(m.SuperOptions, ",") {
				switch o {
				case "rw", "ro", "relatime", "noexec", "nosuid", "nodev", "clone_children", "noprefix", "xattr":
					continue
				}
				if strings.HasPrefix(o, "release_agent=") {
					continue
				}
				ctrls = append(ctrls, o)
			}
			seen[m.Point] = true
			hs = append(hs, Hierarchy{Mount: m.Point, Controllers: ctrls})
		}
	}
	return hs, nil
}

// Dirs returns the container's cgroup dir in every hierarchy where it exists.
func Dirs(id string) ([]string, error) {
	hs, err := Hierarchies()
	if err != nil {
		return nil, err
	}
	var dirs []string
	for _, h := range hs {
		d := filepath.Join(h.Mount, state.CgroupPath(id))
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// JoinDirs is Dirs, and an error naming what to run when the cgroup exists nowhere.
func JoinDirs(id string) ([]string, error) {
	dirs, err := Dirs(id)
	if err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, cli.Errorf("run: cgset create "+id, "cgroup %s does not exist", state.CgroupPath(id))
	}
	return dirs, nil
}

// Join moves pid into the container's cgroup in every hierarchy that has it.
func Join(id string, pid int) error {
	dirs, err := JoinDirs(id)
	if err != nil {
		return err
	}
	for _, d := range dirs {
		p := filepath.Join(d, "cgroup.procs")
		trace.Step(fmt.Sprintf("move pid %d into %s", pid, d), fmt.Sprintf("echo %d > %s", pid, p))
		if err := os.WriteFile(p, []byte(strconv.Itoa(pid)), 0); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return cli.Errorf("run: cgset create "+id, "cgroup %s vanished", d)
			}
			return fmt.Errorf("add pid %d to %s: %w", pid, p, err)
		}
	}
	return nil
}
