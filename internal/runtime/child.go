package runtime

import (
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// child is a process nsrun started and supervises: it forwards signals to it and reaps it.
//
// The container's init is started with syscall.StartProcess rather than exec.Cmd.Start:
// os.StartProcess first probes, once per process, whether pidfds work (pidfd_open,
// waitid, pidfd_send_signal and a throwaway vfork'd child), 0.6 ms here unloaded and up
// to 2 ms under load, on the path of every container start, for a pidfd nsrun does not
// need: it waits for its one child itself, and only signals it while it is not reaped.
type child struct {
	pid    int
	mu     sync.Mutex
	reaped bool
}

// startChild starts cmd as cmd.Start would, without os/exec. cmd's stdio must be files
// or nil (/dev/null), as nsrun's always are.
func startChild(cmd *exec.Cmd) (*child, error) {
	var stdio [3]*os.File
	for i, s := range []any{cmd.Stdin, cmd.Stdout, cmd.Stderr} {
		if s == nil {
			null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, err
			}
			defer null.Close()
			stdio[i] = null
			continue
		}
		f, ok := s.(*os.File)
		if !ok {
			return nil, errors.New("startChild: stdio must be files")
		}
		stdio[i] = f
	}
	files := make([]uintptr, 0, 3+len(cmd.ExtraFiles))
	for _, f := range append(stdio[:], cmd.ExtraFiles...) {
		files = append(files, f.Fd())
	}
	env := cmd.Env
	if env == nil {
		env = os.Environ()
	}
	pid, _, err := syscall.StartProcess(cmd.Path, cmd.Args, &syscall.ProcAttr{Dir: cmd.Dir, Env: env, Files: files, Sys: cmd.SysProcAttr})
	if err != nil {
		return nil, &os.PathError{Op: "fork/exec", Path: cmd.Path, Err: err}
	}
	return &child{pid: pid}, nil
}

// childOf supervises a process started with os/exec (nsrun exec's joiner).
func childOf(p *os.Process) *child { return &child{pid: p.Pid} }

// signal sends s unless the child is reaped (its pid could be another process's by then).
func (c *child) signal(s os.Signal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if sig, ok := s.(syscall.Signal); ok && !c.reaped {
		unix.Kill(c.pid, sig)
	}
}

func (c *child) kill() { c.signal(unix.SIGKILL) }

// wait waits for the child to exit and reaps it. It waits without reaping first, so that
// a signal sent meanwhile still reaches the child, or a zombie, never a stranger.
func (c *child) wait() (syscall.WaitStatus, error) {
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, c.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var ws syscall.WaitStatus
	for {
		_, err := syscall.Wait4(c.pid, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		c.reaped = true
		return ws, err
	}
}
