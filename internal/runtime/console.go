package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
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

// console makes the container's terminal, as runc's init does once the container's /dev
// is in place: a pty from the container's own devpts (so /dev/pts/N exists inside and
// `tty` names it), its master sent out over the socket, its slave the controlling terminal
// of a new session and stdin, stdout and stderr, and (for the init, not for exec) bound
// onto /dev/console. uid owns the slave, so a non-root process can still set its modes.
// Nil-safe: without a console it compiles nothing.
func (p *prog) console(c *initConsole, uid uint32, console bool) {
	if c == nil {
		return
	}
	p.narrate("open /dev/ptmx inside the container: a pty of the container's own devpts instance",
		"exec 3<>/dev/ptmx   # then unlockpt, and the slave through TIOCGPTPEER")
	p.failing("allocate the container's terminal: open /dev/ptmx")
	p.saveTo(p.sys(unix.SYS_OPENAT, atFdcwd, p.str("/dev/ptmx"), unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0), sTmp)
	p.fromSlot(p.sys(unix.SYS_DUP3, sTmp, uintptr(p.fdMaster), unix.O_CLOEXEC), 0)
	p.fromSlot(p.sys(unix.SYS_CLOSE, sTmp), 0)
	master := uintptr(p.fdMaster)
	p.failingWith(func(syscall.Errno) error {
		return fmt.Errorf("/dev/ptmx in the container is not on a devpts mount (mount devpts on /dev/pts with newinstance,ptmxmode=0666 and link /dev/ptmx to pts/ptmx)")
	})
	// runc checks the same: a rootfs could point /dev/ptmx anywhere.
	p.emit(op{kind: kFsMagic, a: [6]uintptr{master, unix.DEVPTS_SUPER_MAGIC}})
	p.failing("allocate the container's terminal: unlockpt")
	p.sys(unix.SYS_IOCTL, master, unix.TIOCSPTLCK, p.ptr(make([]byte, 4)))
	p.failing("allocate the container's terminal: open the slave (TIOCGPTPEER)")
	p.saveTo(p.sys(unix.SYS_IOCTL, master, unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC), sTmp)
	p.fromSlot(p.sys(unix.SYS_DUP3, sTmp, uintptr(p.fdSlave), unix.O_CLOEXEC), 0)
	p.fromSlot(p.sys(unix.SYS_CLOSE, sTmp), 0)
	slave := uintptr(p.fdSlave)
	size := c.size
	p.okOn(p.sys(unix.SYS_IOCTL, master, unix.TIOCSWINSZ, p.ptr(append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&size)), unsafe.Sizeof(size))...))), anyErr)
	if console {
		// Bind the terminal onto /dev/console, as runc does, so what writes to the console
		// (an init system, a kernel-style logger) writes to the container's terminal. Never
		// open an existing node: in an image it could be the host's console device.
		p.narrate("bind the terminal onto /dev/console", "mount --bind /dev/pts/N /dev/console")
		p.failing("create /dev/console")
		i := p.saveTo(p.sys(unix.SYS_OPENAT, atFdcwd, p.str("/dev/console"), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o666), sFile)
		p.onErr(i, uintptr(unix.EEXIST))
		p.fromSlot(p.sys(unix.SYS_CLOSE, sFile), 0)
		j := p.jump()
		p.jumpHere(i)
		p.failingWith(func(syscall.Errno) error {
			return fmt.Errorf("/dev/console in the container is a symlink: refusing to bind the terminal through it")
		})
		p.emit(op{kind: kNoSymlink, a: [6]uintptr{p.str("/dev/console")}})
		p.jumpHere(j)
		p.failing("bind the terminal onto /dev/console")
		p.sys(unix.SYS_MOUNT, p.procFd(p.fdSlave), p.str("/dev/console"), p.empty, unix.MS_BIND, p.empty)
	}
	p.narrate("send the pty master over the console socket (SCM_RIGHTS)", "sendmsg(fd, \"/dev/ptmx\", SCM_RIGHTS [master])")
	name := []byte("/dev/ptmx")
	oob := unix.UnixRights(p.fdMaster)
	iov := &unix.Iovec{Base: &name[0], Len: uint64(len(name))}
	msg := &unix.Msghdr{Iov: iov, Iovlen: 1, Control: &oob[0], Controllen: uint64(len(oob))}
	p.hold = append(p.hold, name, oob, iov, msg)
	p.failing("send the terminal over the console socket")
	p.sys(unix.SYS_SENDMSG, c.sock.Fd(), uintptr(unsafe.Pointer(msg)), 0)
	p.sys(unix.SYS_CLOSE, master)
	p.narrate("make the terminal the controlling terminal of a new session, and stdin, stdout, stderr",
		"setsid; ioctl(TIOCSCTTY); exec 0<>/dev/pts/N 1>&0 2>&0")
	p.failing("setsid")
	p.sys(unix.SYS_SETSID)
	p.failing("make the terminal the controlling terminal")
	p.sys(unix.SYS_IOCTL, slave, unix.TIOCSCTTY, 0)
	if uid != 0 {
		p.failing("chown the terminal to %d", uid)
		p.sys(unix.SYS_FCHOWN, slave, uintptr(uid), uintptr(^uint32(0)))
	}
	for fd := uintptr(0); fd <= 2; fd++ {
		p.failing("dup the terminal onto fd %d", fd)
		p.sys(unix.SYS_DUP3, slave, fd, 0)
	}
	p.sys(unix.SYS_CLOSE, slave)
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
