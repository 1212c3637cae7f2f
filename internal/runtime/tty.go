package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/pty"
	"github.com/hardway/hardway/internal/trace"
)

// console is the container's terminal as nsrun's parent side sees it. The pty itself is made
// inside the container by the init (or exec's joiner, see console.go), which sends the master
// on a socket: either the --console-socket nsrun connected to (the master then goes to
// whoever listens there, and nsrun relays nothing), or one end of a socket pair whose other
// end nsrun keeps, to relay the master to its own stdio. This is runc's design.
type console struct {
	child   *os.File // the socket the init sends on: one of its extra fds
	own     *os.File // nsrun's end of the pair; nil with --console-socket
	size    unix.Winsize
	mu      sync.Mutex
	master  *os.File
	restore *term.State // nsrun's own terminal, put back on exit
	out     chan struct{}
}

func newConsole(socketPath string, p *specs.Process) (*console, error) {
	c := &console{size: consoleSize(p), out: make(chan struct{})}
	if socketPath != "" {
		f, err := dialConsoleSocket(socketPath)
		if err != nil {
			return nil, err
		}
		c.child = f
		return c, nil
	}
	trace.Step("make a socket pair for the container's init to send the pty master back on", "socketpair(AF_UNIX, SOCK_STREAM)")
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	c.own, c.child = os.NewFile(uintptr(fds[0]), "console"), os.NewFile(uintptr(fds[1]), "console-init")
	return c, nil
}

// dialConsoleSocket connects to a --console-socket. A path longer than sun_path's 108 bytes
// is reached through an O_PATH fd of its directory.
func dialConsoleSocket(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.Errorf("start the receiver first (e.g. runc's recvtty PATH)", "console socket %s does not exist", path)
	}
	if err != nil {
		return nil, err
	}
	if st.Mode().Type() != os.ModeSocket {
		return nil, cli.Errorf("pass the path of a listening unix socket", "console socket %s is not a socket", path)
	}
	trace.Step("connect to the console socket "+path, trace.Cmd("socat", "-", "UNIX-CONNECT:"+path))
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	addr := path
	if len(path) >= 108 {
		dir, err := unix.Open(filepath.Dir(path), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		defer unix.Close(dir)
		addr = fmt.Sprintf("/proc/self/fd/%d/%s", dir, filepath.Base(path))
	}
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: addr}); err != nil {
		unix.Close(fd)
		if err == unix.ECONNREFUSED {
			return nil, cli.Errorf("start the receiver first (e.g. runc's recvtty PATH)", "nothing listens on console socket %s", path)
		}
		return nil, fmt.Errorf("connect to console socket %s: %w", path, err)
	}
	return os.NewFile(uintptr(fd), "console-socket"), nil
}

// attach hands the socket to the child about to be started: an extra fd, and an argument
// that names it and the terminal's size.
func (c *console) attach(cmd *exec.Cmd) {
	cmd.ExtraFiles = append(cmd.ExtraFiles, c.child)
	cmd.Args = append(cmd.Args, fmt.Sprintf("%s%d,%d,%d", consoleArg, 2+len(cmd.ExtraFiles), c.size.Row, c.size.Col))
}

// relay, once the child is started, waits for the master and copies nsrun's stdin to it and
// its output to nsrun's stdout, with nsrun's own terminal (if any) in raw mode so every key,
// ^C included, reaches the container's terminal rather than signalling nsrun. With a
// --console-socket there is nothing to relay.
func (c *console) relay() {
	c.child.Close() // the child has it: once the child is gone, a receive ends
	if c.own == nil {
		close(c.out)
		return
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		c.restore, _ = term.MakeRaw(int(os.Stdin.Fd()))
	}
	go func() {
		defer close(c.out)
		m, err := pty.Recv(c.own)
		c.own.Close()
		if err != nil {
			return // the init failed before it sent one, and says why on the error pipe
		}
		trace.Step("receive the pty master from the container's init (SCM_RIGHTS) and relay it to this terminal")
		c.mu.Lock()
		c.master = m
		c.mu.Unlock()
		go func() {
			io.Copy(m, os.Stdin)
			if c.restore == nil {
				m.Write([]byte{4}) // end of input reads as ^D on a terminal
			}
		}()
		io.Copy(os.Stdout, m) // ends with EIO once the container's side is all closed
	}()
}

// resize gives the container's terminal the size of nsrun's (on SIGWINCH; the kernel then
// signals the container's foreground process group).
func (c *console) resize() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.master == nil {
		return
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(c.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// discard closes the sockets when the child never started (nil-safe).
func (c *console) discard() {
	if c != nil {
		c.child.Close()
		if c.own != nil {
			c.own.Close()
		}
	}
}

// close waits briefly for the last output and gives nsrun's terminal back.
func (c *console) close() {
	select {
	case <-c.out:
	case <-time.After(2 * time.Second):
	}
	if c.restore != nil {
		term.Restore(int(os.Stdin.Fd()), c.restore)
	}
	c.mu.Lock()
	if c.master != nil {
		c.master.Close()
	}
	c.mu.Unlock()
}
