// Package inspect is the last stage's engine: it shows what the kernel knows about a running
// container, read straight from /proc: the process tree from the shim down with the points
// where namespaces change, the container's namespaces against the host's, its mounts, its
// cgroup, its address, and the image and state it was started from. Collect gathers it
// into a View; Render prints that as text (styled on a terminal) and JSON as one document.
package inspect

import (
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

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

// Sections selects what to show; the zero value means everything.
type Sections struct {
	Processes, Namespaces, Mounts, Cgroup, Network, Image bool
}

func (s Sections) all() bool { return s == Sections{} }

// View is everything inspect shows, as --json prints it.
type View struct {
	Container  string           `json:"container,omitempty"`
	Pid        int              `json:"pid"`
	ShimPid    int              `json:"shimPid,omitempty"`
	Processes  []Process        `json:"processes,omitempty"`
	HostNSFrom string           `json:"hostNamespacesFrom,omitempty"`
	Namespaces []Namespace      `json:"namespaces,omitempty"`
	Mounts     []Mount          `json:"mounts,omitempty"`
	Cgroup     *Cgroup          `json:"cgroup,omitempty"`
	Network    *network.Info    `json:"network,omitempty"`
	Image      *Image           `json:"image,omitempty"`
	State      *state.Container `json:"state,omitempty"`
}

// Collect reads the selected sections of t from the kernel and the state dirs.
func Collect(t Target, s Sections) (*View, error) {
	v := &View{Container: t.ID, Pid: t.Pid, ShimPid: t.ShimPid}
	all := s.all()
	if all || s.Processes {
		v.Processes = processTree(t)
	}
	if all || s.Namespaces {
		v.Namespaces, v.HostNSFrom = namespaces(t.Pid)
	}
	if all || s.Mounts {
		ms, err := Mounts(t.Pid)
		if err != nil {
			return nil, fmt.Errorf("read the mounts of pid %d: %w", t.Pid, err)
		}
		annotate(ms, bundleSpec(t.ID))
		v.Mounts = ms
	}
	if all || s.Cgroup {
		v.Cgroup = readCgroup(t)
	}
	if t.ID != "" && (all || s.Network) {
		if in, err := network.Show(t.ID); err == nil {
			v.Network = in
		}
	}
	if t.ID != "" && (all || s.Image) {
		v.Image, v.State = readImage(t.ID)
	}
	return v, nil
}
