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
// place and exec. Between fork and exec it makes raw system calls only, on preallocated
// data: no allocation, no stack growth, nothing of the Go scheduler, as in Go's own
// forkAndExecInChild.

// rawJoiner is everything the child needs, prepared before the fork.
type rawJoiner struct {
	userns  uintptr
	fds     [10]uintptr // high, close-on-exec copies of what becomes fds 0, 1, 2, …
	nfds    uintptr
	errFd   uintptr // close-on-exec: carries the failed step and errno, EOF on execve
	exe     uintptr // the sealed memfd, run with execveat(AT_EMPTY_PATH)
	empty   *byte
	argv    **byte
	envp    **byte
	setsid  bool
	setctty bool
}

// The steps the child reports a failure of.
var rawSteps = []string{"setgroups", "setns into the user namespace", "setresgid 0", "setresuid 0", "setsid", "dup3", "TIOCSCTTY", "execveat"}

// forkJoinerInUserns starts cmd (the joiner: its Path is /proc/self/fd/N of the sealed
// copy) in the user namespace userns, from the calling thread, which must be locked.
func forkJoinerInUserns(cmd *exec.Cmd, self, userns *os.File) error {
	var j rawJoiner
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
	if len(all) > len(j.fds) {
		return fmt.Errorf("too many fds for the joiner: %d", len(all))
	}
	for i, f := range all {
		fd, err := high(int(f.Fd()))
		if err != nil {
			return err
		}
		j.fds[i] = fd
		j.nfds++
	}
	var err error
	if j.userns, err = high(int(userns.Fd())); err != nil {
		return err
	}
	if j.exe, err = high(int(self.Fd())); err != nil {
		return err
	}
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	errR := os.NewFile(uintptr(p[0]), "joiner-fork")
	defer errR.Close()
	if j.errFd, err = high(p[1]); err != nil {
		unix.Close(p[1])
		return err
	}
	unix.Close(p[1])
	argv, err := syscall.SlicePtrFromStrings(cmd.Args)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(cmd.Env)
	if err != nil {
		return err
	}
	j.argv, j.envp = &argv[0], &envp[0] // NUL-terminated arrays, alive until the fork is done
	j.empty = &[]byte{0}[0]
	if sp := cmd.SysProcAttr; sp != nil {
		j.setsid, j.setctty = sp.Setsid, sp.Setctty
	}

	trace.Step("the container has a user namespace of its own: fork a single-threaded child that joins it first, becomes its root and execs the joiner",
		"nsenter --user --setuid 0 --setgid 0 …")
	pid, errno := rawForkJoiner(&j)
	goruntime.KeepAlive(argv)
	goruntime.KeepAlive(envp)
	if errno != 0 {
		return fmt.Errorf("fork the joiner: %w", errno)
	}
	for _, fd := range keep {
		unix.Close(fd)
	}
	keep = nil
	proc, err := os.FindProcess(int(pid))
	if err != nil {
		return err
	}
	// Two bytes (step, errno) when the child failed; EOF once its execve closed the pipe.
	var rep [2]byte
	if n, _ := errR.Read(rep[:]); n == 2 {
		proc.Wait()
		step := "?"
		if int(rep[0]) < len(rawSteps) {
			step = rawSteps[rep[0]]
		}
		return fmt.Errorf("start the joiner: %s: %w", step, syscall.Errno(rep[1]))
	}
	cmd.Process = proc
	return nil
}

// rawForkJoiner forks; the child runs the steps of rawJoiner and never returns. Only raw
// system calls between the fork and the execve (see Go's forkAndExecInChild1).
//
//go:norace
//go:nosplit
func rawForkJoiner(j *rawJoiner) (uintptr, syscall.Errno) {
	pid, _, errno := syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	if errno != 0 || pid != 0 {
		return pid, errno
	}
	var step uintptr
	// The host's groups would follow the process into the namespace, unmapped, where a
	// setgroups "deny" could no longer drop them.
	if _, _, errno = syscall.RawSyscall(syscall.SYS_SETGROUPS, 0, 0, 0); errno != 0 {
		goto fail
	}
	step = 1
	if _, _, errno = syscall.RawSyscall(unix.SYS_SETNS, j.userns, unix.CLONE_NEWUSER, 0); errno != 0 {
		goto fail
	}
	step = 2
	if _, _, errno = syscall.RawSyscall(syscall.SYS_SETRESGID, 0, 0, 0); errno != 0 {
		goto fail
	}
	step = 3
	if _, _, errno = syscall.RawSyscall(syscall.SYS_SETRESUID, 0, 0, 0); errno != 0 {
		goto fail
	}
	step = 4
	if j.setsid {
		if _, _, errno = syscall.RawSyscall(syscall.SYS_SETSID, 0, 0, 0); errno != 0 {
			goto fail
		}
	}
	step = 5
	for i := uintptr(0); i < j.nfds; i++ {
		if _, _, errno = syscall.RawSyscall(syscall.SYS_DUP3, j.fds[i], i, 0); errno != 0 {
			goto fail
		}
	}
	step = 6
	if j.setctty {
		if _, _, errno = syscall.RawSyscall(syscall.SYS_IOCTL, 0, syscall.TIOCSCTTY, 0); errno != 0 {
			goto fail
		}
	}
	step = 7
	_, _, errno = syscall.RawSyscall6(unix.SYS_EXECVEAT, j.exe, uintptr(unsafe.Pointer(j.empty)),
		uintptr(unsafe.Pointer(j.argv)), uintptr(unsafe.Pointer(j.envp)), unix.AT_EMPTY_PATH, 0)
fail:
	rep := [2]byte{byte(step), byte(errno)}
	syscall.RawSyscall(syscall.SYS_WRITE, j.errFd, uintptr(unsafe.Pointer(&rep[0])), 2)
	for {
		syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 127, 0, 0)
	}
}
