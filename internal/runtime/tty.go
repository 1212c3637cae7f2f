package runtime

import (
	"io"
	"os"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hardway/hardway/internal/trace"
)

// console is the container's terminal: a pty whose slave side becomes the container's
// stdin, stdout, stderr and controlling terminal, while nsrun relays the master side to its
// own stdio. (runc makes the pty inside the container and passes the master back over a
// socket; a pty from the host's devpts is the plain version of the same idea.)
type console struct {
	master, slave *os.File
	restore       *term.State // nsrun's own terminal, put back on exit
	out           chan struct{}
}

func newConsole() (*console, error) {
	trace.Step("allocate a pseudo-terminal for the container", "open /dev/ptmx; unlockpt; open /dev/pts/N")
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, err
	}
	// TIOCGPTPEER opens the slave through the master, so no path lookup can be raced.
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, errno
	}
	c := &console{master: m, slave: os.NewFile(fd, "pty-slave"), out: make(chan struct{})}
	c.resize()
	return c, nil
}

// resize gives the container's terminal the size of nsrun's.
func (c *console) resize() {
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil {
		unix.IoctlSetWinsize(int(c.master.Fd()), unix.TIOCSWINSZ, ws)
	}
}

// relay starts copying nsrun's stdin to the container and its output to nsrun's stdout,
// with nsrun's own terminal (if any) in raw mode so keys reach the container untouched.
func (c *console) relay() {
	c.slave.Close()
	if term.IsTerminal(int(os.Stdin.Fd())) {
		c.restore, _ = term.MakeRaw(int(os.Stdin.Fd()))
	}
	go func() {
		io.Copy(c.master, os.Stdin)
		if c.restore == nil {
			c.master.Write([]byte{4}) // end of input reads as ^D on a terminal
		}
	}()
	go func() {
		io.Copy(os.Stdout, c.master) // ends with EIO once the container's side is all closed
		close(c.out)
	}()
}

// discard closes both ends when the container never started (nil-safe).
func (c *console) discard() {
	if c != nil {
		c.slave.Close()
		c.master.Close()
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
	c.master.Close()
}
