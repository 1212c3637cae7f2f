package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/pty"
	"github.com/hardway/hardway/internal/trace"
)

// consoleArg, after the init's or joiner's other arguments, asks it to make the container's
// terminal: --console=FD,ROWS,COLS, FD the socket to send the master on.
const consoleArg = "--console="

// initConsole is what the init or the joiner was asked for (nil: no terminal).
type initConsole struct {
	sock *os.File
	size unix.Winsize
}

// consoleFromArgs finds consoleArg among the hidden arguments.
func consoleFromArgs(args []string) *initConsole {
	for _, a := range args {
		v, ok := strings.CutPrefix(a, consoleArg)
		if !ok {
			continue
		}
		f := strings.Split(v, ",")
		if len(f) != 3 {
			return nil
		}
		fd, _ := strconv.Atoi(f[0])
		rows, _ := strconv.Atoi(f[1])
		cols, _ := strconv.Atoi(f[2])
		unix.CloseOnExec(fd)
		return &initConsole{sock: os.NewFile(uintptr(fd), "console-socket"), size: unix.Winsize{Row: uint16(rows), Col: uint16(cols)}}
	}
	return nil
}

// setup makes the container's terminal, as runc's init does once the container's /dev is
// in place: a pty from the container's own devpts (so /dev/pts/N exists inside and `tty`
// names it), its master sent out over the socket, its slave the controlling terminal of a
// new session and stdin, stdout and stderr, and (for the init, not for exec) bound onto
// /dev/console. uid owns the slave, so a non-root process can still set its modes.
// Nil-safe: without a console it does nothing.
func (c *initConsole) setup(uid uint32, console bool) error {
	if c == nil {
		return nil
	}
	defer c.sock.Close()
	trace.Step("open /dev/ptmx inside the container: a pty of the container's own devpts instance",
		"exec 3<>/dev/ptmx   # then unlockpt, and the slave through TIOCGPTPEER")
	master, slave, err := pty.Open("/dev/ptmx")
	if err != nil {
		return fmt.Errorf("allocate the container's terminal: %w", err)
	}
	defer master.Close()
	defer slave.Close()
	if err := checkPtmx(master); err != nil {
		return err
	}
	unix.IoctlSetWinsize(int(master.Fd()), unix.TIOCSWINSZ, &c.size)
	if console {
		if err := mountConsole(slave); err != nil {
			return err
		}
	}
	trace.Step("send the pty master over the console socket (SCM_RIGHTS)", "sendmsg(fd, \"/dev/ptmx\", SCM_RIGHTS [master])")
	if err := pty.Send(c.sock, master); err != nil {
		return fmt.Errorf("send the terminal over the console socket: %w", err)
	}
	if trace.Enabled() {
		// The narration stays on nsrun's stderr, out of the container's terminal.
		if fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3); err == nil {
			trace.SetOutput(os.NewFile(uintptr(fd), "trace"))
		}
	}
	trace.Step("make "+slave.Name()+" the controlling terminal of a new session, and stdin, stdout, stderr",
		"setsid; ioctl(TIOCSCTTY); exec 0<>"+slave.Name()+" 1>&0 2>&0")
	if _, err := unix.Setsid(); err != nil {
		return fmt.Errorf("setsid: %w", err)
	}
	if err := unix.IoctlSetInt(int(slave.Fd()), unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make %s the controlling terminal: %w", slave.Name(), err)
	}
	if uid != 0 {
		if err := unix.Fchown(int(slave.Fd()), int(uid), -1); err != nil {
			return fmt.Errorf("chown %s to %d: %w", slave.Name(), uid, err)
		}
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(int(slave.Fd()), fd, 0); err != nil {
			return fmt.Errorf("dup the terminal onto fd %d: %w", fd, err)
		}
	}
	return nil
}

// checkPtmx refuses a /dev/ptmx that is not a devpts multiplexer (runc checks the same):
// a rootfs could point it anywhere.
func checkPtmx(m *os.File) error {
	var fs unix.Statfs_t
	if err := unix.Fstatfs(int(m.Fd()), &fs); err != nil {
		return err
	}
	if fs.Type != unix.DEVPTS_SUPER_MAGIC {
		return fmt.Errorf("/dev/ptmx in the container is not on a devpts mount (mount devpts on /dev/pts with newinstance,ptmxmode=0666 and link /dev/ptmx to pts/ptmx)")
	}
	return nil
}

// mountConsole binds the terminal onto /dev/console, as runc does, so what writes to the
// console (an init system, a kernel-style logger) writes to the container's terminal.
func mountConsole(slave *os.File) error {
	trace.Step("bind the terminal onto /dev/console", trace.Cmd("mount", "--bind", slave.Name(), "/dev/console"))
	// Never open an existing node: in an image it could be the host's console device.
	if st, err := os.Lstat("/dev/console"); err != nil {
		f, err := os.OpenFile("/dev/console", os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o666)
		if err != nil {
			return fmt.Errorf("create /dev/console: %w", err)
		}
		f.Close()
	} else if st.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("/dev/console in the container is a symlink: refusing to bind the terminal through it")
	}
	src := "/proc/self/fd/" + strconv.Itoa(int(slave.Fd()))
	if err := unix.Mount(src, "/dev/console", "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind the terminal onto /dev/console: %w", err)
	}
	return nil
}

// consoleSize is the size the container's terminal starts with: process.consoleSize, else
// that of nsrun's own terminal, else 80×24 (what the shim always had).
func consoleSize(p *specs.Process) unix.Winsize {
	if p != nil && p.ConsoleSize != nil && p.ConsoleSize.Height > 0 && p.ConsoleSize.Width > 0 {
		return unix.Winsize{Row: uint16(p.ConsoleSize.Height), Col: uint16(p.ConsoleSize.Width)}
	}
	if ws, err := unix.IoctlGetWinsize(int(os.Stdin.Fd()), unix.TIOCGWINSZ); err == nil && ws.Row > 0 && ws.Col > 0 {
		return *ws
	}
	return unix.Winsize{Row: 24, Col: 80}
}

// initTerm is the terminal the init or joiner was asked to make (nil: none).
var initTerm *initConsole

// runConsole checks what nsrun run was asked for and prepares the terminal (nil: none).
func runConsole(o Options, spec *specs.Spec) (*console, error) {
	if o.ConsoleSocket == "" {
		if !o.TTY {
			return nil, nil
		}
		return newConsole("", spec.Process)
	}
	if !o.TTY && !spec.Process.Terminal {
		return nil, cli.Errorf("pass --tty, or set process.terminal in config.json", "--console-socket needs a terminal, and config.json's process.terminal is false")
	}
	return newConsole(o.ConsoleSocket, spec.Process)
}
