package shim

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/pty"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// consoleSocket is where the runtime sends the container's terminal with --tty: a listening
// AF_UNIX SOCK_STREAM socket in the run dir, spoken to as runc's --console-socket is (one
// message, the master's fd in SCM_RIGHTS). The pty is made inside the container, from its own
// devpts, so the shim only ever holds the master: what conmon does with a terminal.
type consoleSocket struct {
	ln   *net.UnixListener
	path string // in the run dir
	arg  string // what the runtime is told: path, or a /proc/PID/fd form when path is too long
	dir  int    // the O_PATH fd of the run dir that arg goes through (-1: none)
	got  chan *os.File
	once sync.Once
}

// ConsoleSocket is the console socket in the container's run dir.
func ConsoleSocket(id string) string { return filepath.Join(state.RunDir(id), "console.sock") }

func listenConsole(id string) (*consoleSocket, error) {
	c := &consoleSocket{path: ConsoleSocket(id), arg: ConsoleSocket(id), dir: -1, got: make(chan *os.File, 1)}
	os.Remove(c.path)
	trace.Step("listen on a console socket for the terminal the container's init will send", trace.Cmd("socat", "UNIX-LISTEN:"+c.path, "-"))
	err := viaDirFd(state.RunDir(id), "console.sock", func(short string) error {
		ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: short, Net: "unix"})
		if err != nil {
			return err
		}
		ln.SetUnlinkOnClose(false)
		c.ln = ln
		return os.Chmod(c.path, 0o700)
	})
	if err != nil {
		return nil, err
	}
	if len(c.arg) >= 108 {
		// A runtime that cannot dodge sun_path's limit itself (runc) reaches it through a
		// directory fd the shim holds open.
		if c.dir, err = unix.Open(state.RunDir(id), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
			c.close()
			return nil, err
		}
		c.arg = fmt.Sprintf("/proc/%d/fd/%d/console.sock", os.Getpid(), c.dir)
	}
	go c.accept()
	return c, nil
}

// accept takes one terminal, then stops listening.
func (c *consoleSocket) accept() {
	defer close(c.got)
	conn, err := c.ln.AcceptUnix()
	if err != nil {
		return
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		return
	}
	defer f.Close()
	m, err := pty.Recv(f)
	if err != nil {
		return
	}
	trace.Step("receive the pty master over the console socket (SCM_RIGHTS)")
	c.got <- m
	c.close()
}

// close stops listening and removes the socket.
func (c *consoleSocket) close() {
	c.once.Do(func() {
		c.ln.Close()
		os.Remove(c.path)
		if c.dir >= 0 {
			unix.Close(c.dir)
		}
	})
}

// withConsoleSocket tells the runtime's command line where to send the terminal; nsrun
// also gets --tty (runc reads process.terminal from config.json instead).
func withConsoleSocket(command []string, path string) []string {
	if filepath.Base(command[0]) == "nsrun" {
		return withRunFlags(command, "--tty", "--console-socket", path)
	}
	return withRunFlags(command, "--console-socket", path)
}

// runcLike: the runtime is runc or crun, which report the container's pid in a pid file.
func runcLike(command []string) bool {
	b := filepath.Base(command[0])
	return b == "runc" || b == "crun"
}

// withRunFlags adds flags to the runtime's run command: after `run` or `create` (runc run
// -d --console-socket …, nsrun run …), else right after the program.
func withRunFlags(command []string, add ...string) []string {
	at := 1
	for i, a := range command[1:] {
		if a == "--" {
			break
		}
		if a == "run" || a == "create" {
			at = i + 2
			break
		}
	}
	out := append([]string{}, command[:at]...)
	out = append(out, add...)
	return append(out, command[at:]...)
}
