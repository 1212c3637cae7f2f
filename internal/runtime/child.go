package runtime

import (
	"os"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// child is a process nsrun started and supervises: it forwards signals to it and reaps it.
// nsrun waits for its one child itself (no pidfd, no os.Process), and only signals it while
// it is not reaped.
type child struct {
	pid    int
	mu     sync.Mutex
	reaped bool
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
