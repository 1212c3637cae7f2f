// Package shim is the daemonless supervisor stage, the hardway counterpart of
// containerd-shim and conmon: it starts the runtime (nsrun) in a detached process that
// outlives its caller, reports the container's pid, keeps the container's output in a
// json-file log, reaps it, and records its life in containers/ID/state.json.
package shim

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// daemonArg is the hidden first argument of the detached copy of shim.
const daemonArg = "__shim_daemon__"

// callerFd is where the daemon finds the pipe back to its caller.
const callerFd = 3

// syncMsg is what travels on both sync pipes: runtime → daemon and daemon → caller.
type syncMsg struct {
	Pid   int    `json:"pid,omitempty"`
	Error string `json:"error,omitempty"`
}

// PidFile is the running shim's pid file.
func PidFile(id string) string { return filepath.Join(state.RunDir(id), "shim.pid") }

// Options are how the supervisor treats the container's stdio.
type Options struct {
	LogFormat   string // FormatJSON (default) or FormatCRI
	Interactive bool   // give the runtime a stdin pipe that attach clients write to
	TTY         bool   // give the container a terminal via a console socket (attach input too)
}

// Start records the container as created, starts the detached supervisor that runs command
// and returns the container's host pid once the runtime reports it.
func Start(id string, command []string, o Options) (int, error) {
	if err := state.ValidID(id); err != nil {
		return 0, err
	}
	if o.LogFormat == "" {
		o.LogFormat = FormatJSON
	}
	if err := CheckFormat(o.LogFormat); err != nil {
		return 0, err
	}
	if len(command) == 0 {
		return 0, cli.Errorf("e.g. shim --id "+id+" -- nsrun "+state.ContainerDir(id), "no runtime command given")
	}
	// Idempotent: a running container is reported, not started twice.
	if c, err := state.ReadContainer(id); err == nil && c.Status == state.StatusRunning && alive(c.ShimPid) && alive(c.Pid) {
		return c.Pid, nil
	}
	for _, d := range []string{state.RunDir(id), state.ContainerDir(id)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, err
		}
	}
	c := &state.Container{
		ID: id, Status: state.StatusCreated, Bundle: state.ContainerDir(id),
		Image: imageOf(id), Command: command, Created: time.Now().UTC(),
	}
	if err := state.WriteContainer(c); err != nil {
		return 0, err
	}

	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	stdin := "-"
	if o.Interactive {
		stdin = "i"
	}
	if o.TTY {
		stdin = "t"
	}
	// Through the binary's own path, not /proc/self/exe, so ps and pstree name it shim.
	self, err := os.Executable()
	if err != nil {
		self = "/proc/self/exe"
	}
	cmd := exec.Command(self, append([]string{daemonArg, id, o.LogFormat, stdin}, command...)...)
	cmd.Args[0] = "shim"
	cmd.ExtraFiles = []*os.File{w}
	// Own session, stdio on /dev/null: nothing ties the supervisor to the caller's
	// terminal or pipes, so it lives on when the caller exits or is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	trace.Step("start a detached supervisor for "+id+" in its own session", trace.Cmd(append([]string{"setsid", "-f", "shim", "--id", id, "--"}, command...)...))
	if err := cmd.Start(); err != nil {
		w.Close()
		return 0, err
	}
	w.Close()
	cmd.Process.Release()

	var msg syncMsg
	line, err := bufio.NewReader(r).ReadBytes('\n')
	if err != nil && len(line) == 0 {
		return 0, cli.Errorf("see: shim logs "+id, "the supervisor of %s died before the container started", id)
	}
	if err := json.Unmarshal(line, &msg); err != nil {
		return 0, fmt.Errorf("supervisor said %q: %v", line, err)
	}
	if msg.Error != "" {
		return 0, errors.New(msg.Error)
	}
	return msg.Pid, nil
}

// imageOf names the container's image from the bundle's hardway.image annotation.
func imageOf(id string) string {
	b, err := os.ReadFile(filepath.Join(state.ContainerDir(id), "config.json"))
	if err != nil {
		return ""
	}
	var s specs.Spec
	if json.Unmarshal(b, &s) != nil {
		return ""
	}
	return s.Annotations["hardway.image"]
}

// processArgs is the container's command from the bundle, for ps.
func processArgs(id string) []string {
	b, err := os.ReadFile(filepath.Join(state.ContainerDir(id), "config.json"))
	if err != nil {
		return nil
	}
	var s specs.Spec
	if json.Unmarshal(b, &s) != nil || s.Process == nil {
		return nil
	}
	return s.Process.Args
}

// alive reports whether pid runs. A zombie does not: a supervisor that has exited stays one
// until its new parent (PID 1, which in some sandboxes reaps slowly) collects it.
func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && err != unix.EPERM {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// reportTo writes the one message for the caller and closes its pipe.
type reporter struct{ f *os.File }

func (r *reporter) report(m syncMsg) {
	if r.f == nil {
		return
	}
	b, _ := json.Marshal(m)
	r.f.Write(append(b, '\n'))
	r.f.Close()
	r.f = nil
}
