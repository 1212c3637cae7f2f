package runtime

import (
	"fmt"
	"os"
	"os/exec"
	goruntime "runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// Joining a user namespace needs a caller that is a single thread and shares its
// filesystem attributes with no one (setns gives EINVAL otherwise); a Go program never is
// one, and Go's fork has no setns step. But the child of a plain fork(2) is: it holds only
// the thread that forked. So for a container in a user namespace of its own, nsrun forks
// the joiner itself, from the thread that already joined the container's other thread
// namespaces, and the child, before it execs the sealed nsrun copy, does what runc's
// nsexec does in C: drop the host's supplementary groups, setns into the user namespace,
// become the namespace's root (so the execve keeps its capabilities there), put its fds in
// place and exec. It is a compiled program (prog.go), as the container's init is.

// forkJoinerInUserns starts cmd (the joiner: its Path is /proc/self/fd/N of the sealed
// copy) in the user namespace userns, from the calling thread, which must be locked.
func forkJoinerInUserns(cmd *exec.Cmd, self, userns *os.File) error {
	var keep []int // the parent's copies, closed once the child has them
	defer func() {
		for _, fd := range keep {
			unix.Close(fd)
		}
	}()
	high := func(fd int) (uintptr, error) {
		// Above every target fd: the child's dup3s cannot overwrite a source.
		n, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 10)
		if err != nil {
			return 0, err
		}
		keep = append(keep, n)
		return uintptr(n), nil
	}
	stdin, ok := cmd.Stdin.(*os.File)
	if !ok {
		null, err := os.Open(os.DevNull)
		if err != nil {
			return err
		}
		defer null.Close()
		stdin = null
	}
	out, ok1 := cmd.Stdout.(*os.File)
	errf, ok2 := cmd.Stderr.(*os.File)
	if !ok1 || !ok2 {
		return fmt.Errorf("the joiner's stdout and stderr must be files")
	}
	all := append([]*os.File{stdin, out, errf}, cmd.ExtraFiles...)
	if len(all) > 10 {
		return fmt.Errorf("too many fds for the joiner: %d", len(all))
	}
	fds := make([]uintptr, len(all))
	for i, f := range all {
		var err error
		if fds[i], err = high(int(f.Fd())); err != nil {
			return err
		}
	}
	ns, err := high(int(userns.Fd()))
	if err != nil {
		return err
	}
	exe, err := high(int(self.Fd()))
	if err != nil {
		return err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return err
	}
	defer errR.Close()
	defer errW.Close()
	argv, err := syscall.SlicePtrFromStrings(cmd.Args)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(cmd.Env)
	if err != nil {
		return err
	}

	p, err := newProg()
	if err != nil {
		return err
	}
	defer p.release()
	p.hold = append(p.hold, argv, envp)
	// The host's groups would follow the process into the namespace, unmapped, where a
	// setgroups "deny" could no longer drop them.
	p.failing("start the joiner: setgroups")
	p.sys(unix.SYS_SETGROUPS, 0, 0)
	p.failing("start the joiner: setns into the user namespace")
	p.sys(unix.SYS_SETNS, ns, unix.CLONE_NEWUSER)
	p.failing("start the joiner: setresgid 0")
	p.sys(unix.SYS_SETRESGID, 0, 0, 0)
	p.failing("start the joiner: setresuid 0")
	p.sys(unix.SYS_SETRESUID, 0, 0, 0)
	sp := cmd.SysProcAttr
	if sp != nil && sp.Setsid {
		p.failing("start the joiner: setsid")
		p.sys(unix.SYS_SETSID)
	}
	p.failing("start the joiner: dup3")
	for i, fd := range fds {
		p.sys(unix.SYS_DUP3, fd, uintptr(i), 0)
	}
	if sp != nil && sp.Setctty {
		p.failing("start the joiner: TIOCSCTTY")
		p.sys(unix.SYS_IOCTL, 0, unix.TIOCSCTTY, 0)
	}
	p.failing("start the joiner: execveat")
	p.sys(unix.SYS_EXECVEAT, exe, p.empty, uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0])), unix.AT_EMPTY_PATH)
	p.m.errFd, p.m.trace = errW.Fd(), false

	trace.Step("the container has a user namespace of its own: fork a single-threaded child that joins it first, becomes its root and execs the joiner",
		"nsenter --user --setuid 0 --setgid 0 …")
	pid, err := forkMachine(&p.m, 0, -1, false)
	goruntime.KeepAlive(p)
	if err != nil {
		return fmt.Errorf("fork the joiner: %w", err)
	}
	for _, fd := range keep {
		unix.Close(fd)
	}
	keep = nil
	errW.Close()
	proc, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	// EOF once its execve closed the pipe; a report when it failed.
	if err := p.awaitChild(errR, nil); err != nil {
		proc.Wait()
		return err
	}
	cmd.Process = proc
	return nil
}
