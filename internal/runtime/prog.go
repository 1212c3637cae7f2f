package runtime

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The container's init as a program of system calls.
//
// A Go program cannot run Go code between fork and exec, so runc re-executes itself as
// `runc init` (and does the namespace work in C before its Go runtime starts), and nsrun
// used to re-execute itself the same way: a second Go runtime start, about 8 ms of every
// container start here. Instead, nsrun now decides everything the init will do before it
// clones it, as a list of system calls with their arguments prepared in memory (the
// compiler, compile.go), and the cloned child only walks that list with raw system calls:
// no allocation, no stack growth, no scheduler, as in Go's own forkAndExecInChild. A
// step that depends on what the child finds (a mount point to create, pivot_root refused,
// a hard limit the host caps) is an op with an errno it accepts or a jump it takes, so the
// decisions stay in the compiler, in ordinary Go, and the child stays a loop.
//
// nsrun exec's joiner runs the same kind of program (the process part: terminal, cwd,
// limits, credentials, seccomp, exec) on its own locked thread, so there is one
// implementation of each step.

type opKind uint8

const (
	kSys       opKind = iota // syscall nr(a0…a5)
	kJump                    // continue at jump
	kNarrate                 // --trace: the parent prints step what, then the child goes on
	kWait                    // read one byte from fd a0: the parent's go-ahead; EOF: exit
	kExec                    // execve each of the a0 paths at p in turn, with argv a1, envp a2
	kCwdCheck                // getcwd must give an absolute path: a cwd outside the root fails
	kFsMagic                 // fstatfs(fd a0).f_type must be a1
	kNoSymlink               // fstatat(AT_FDCWD, a0, AT_SYMLINK_NOFOLLOW) must not be a symlink
	kKeepFlags               // statfs(a0), then mount("", a0, "", a1 | its nosuid, nodev, noexec)
	kRlimit                  // prlimit(a0, *p); on EPERM clamp to the hard limit, warn
	kAlive                   // the pipe a0 must still have a writer (the parent): else exit
)

// op is one step. An argument whose bit is set in slotArgs is the number of a slot, whose
// value (an fd an earlier op saved) is passed instead.
type op struct {
	kind     opKind
	slotArgs uint8
	save     int8 // the slot the result goes to (-1: none); set to -1 when the op fails
	nr       uintptr
	a        [6]uintptr
	okErr    uintptr // an errno that counts as success (EEXIST for a mkdir)
	onErr    uintptr // on this errno, continue at jump
	jump     int32
	what     int32          // the step's text (prog.steps) for its error and narration
	p        unsafe.Pointer // kExec: the first of a0 paths; kRlimit: the unix.Rlimit to set
}

// Events run returns on.
const (
	evFail    = 1 // the op failed with errno val
	evWarn    = 2 // kRlimit clamped the hard limit to val
	evNarrate = 3 // a kNarrate op, while tracing
	evQuit    = 4 // the go-ahead never came: the parent gave up and says why itself
	evExec    = 5 // a kExec op, run in-process (the joiner execs through Go's syscall.Exec)
)

const nSlots = 16

// machine is what the program needs at run time, in memory allocated before the clone.
type machine struct {
	ops       []op
	slots     [nSlots]uintptr
	trace     bool // stop at kNarrate
	inProcess bool // the joiner: return on kExec
	errFd     uintptr
	goFd      uintptr
	rec       [2]uint64 // a report to the parent: kind<<32 | op index, value
	buf       [1]byte
	statfs    unix.Statfs_t
	stat      unix.Stat_t
	rl        unix.Rlimit
	poll      unix.PollFd
	ts        unix.Timespec
	cwd       [4096]byte
}

//go:nosplit
func (m *machine) arg(o *op, i int) uintptr {
	if o.slotArgs&(1<<i) != 0 {
		return m.slots[o.a[i]&(nSlots-1)]
	}
	return o.a[i]
}

// run executes ops from pc until one raises an event, and returns that op's index, the
// event and its value. A successful kExec does not return.
//
//go:nosplit
//go:norace
func (m *machine) run(pc int) (int, int, uintptr) {
	for pc >= 0 && pc < len(m.ops) {
		o := &m.ops[pc]
		var r1 uintptr
		var errno syscall.Errno
		switch o.kind {
		case kJump:
			pc = int(o.jump)
			continue
		case kNarrate:
			if m.trace {
				return pc, evNarrate, 0
			}
			pc++
			continue
		case kWait:
			var n uintptr
			for {
				n, _, errno = syscall.RawSyscall(syscall.SYS_READ, o.a[0], uintptr(unsafe.Pointer(&m.buf[0])), 1)
				if errno != syscall.EINTR {
					break
				}
			}
			if n != 1 {
				return pc, evQuit, 0
			}
			pc++
			continue
		case kAlive:
			m.poll = unix.PollFd{Fd: int32(o.a[0]), Events: unix.POLLIN}
			_, _, errno = syscall.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&m.poll)), 1, uintptr(unsafe.Pointer(&m.ts)), 0, 0, 0)
			if errno == 0 && m.poll.Revents&unix.POLLHUP != 0 {
				return pc, evQuit, 0
			}
		case kExec:
			if m.inProcess {
				return pc, evExec, 0
			}
			errno = m.exec(o)
			return pc, evFail, uintptr(errno)
		case kCwdCheck:
			_, _, errno = syscall.RawSyscall(syscall.SYS_GETCWD, uintptr(unsafe.Pointer(&m.cwd[0])), uintptr(len(m.cwd)), 0)
			if errno == 0 && m.cwd[0] != '/' {
				errno = syscall.EXDEV // "(unreachable)/…": outside the root
			}
		case kFsMagic:
			_, _, errno = syscall.RawSyscall(syscall.SYS_FSTATFS, m.arg(o, 0), uintptr(unsafe.Pointer(&m.statfs)), 0)
			if errno == 0 && uintptr(m.statfs.Type) != o.a[1] {
				errno = syscall.ENODEV
			}
		case kNoSymlink:
			_, _, errno = syscall.RawSyscall6(unix.SYS_NEWFSTATAT, atFdcwd, o.a[0], uintptr(unsafe.Pointer(&m.stat)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
			if errno == 0 && m.stat.Mode&unix.S_IFMT == unix.S_IFLNK {
				errno = syscall.ELOOP
			}
		case kKeepFlags:
			_, _, errno = syscall.RawSyscall(syscall.SYS_STATFS, o.a[0], uintptr(unsafe.Pointer(&m.statfs)), 0)
			if errno == 0 {
				// ST_NOSUID, ST_NODEV and ST_NOEXEC have MS_*'s values.
				keep := uintptr(m.statfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
				_, _, errno = syscall.RawSyscall6(syscall.SYS_MOUNT, o.a[2], o.a[0], o.a[2], o.a[1]|keep, o.a[2], 0)
			}
		case kRlimit:
			r1, errno = m.rlimit(o)
			if errno == 0 && r1 != 0 {
				return pc, evWarn, uintptr(m.rl.Max)
			}
		default: // kSys
			r1, _, errno = syscall.RawSyscall6(o.nr, m.arg(o, 0), m.arg(o, 1), m.arg(o, 2), m.arg(o, 3), m.arg(o, 4), m.arg(o, 5))
		}
		if errno != 0 && (uintptr(errno) == o.onErr || o.onErr == anyErr) {
			if o.save >= 0 {
				m.slots[o.save&(nSlots-1)] = ^uintptr(0)
			}
			pc = int(o.jump)
			continue
		}
		if errno != 0 && uintptr(errno) != o.okErr && o.okErr != anyErr {
			return pc, evFail, uintptr(errno)
		}
		if o.save >= 0 {
			if errno != 0 {
				r1 = ^uintptr(0)
			}
			m.slots[o.save&(nSlots-1)] = r1
		}
		pc++
	}
	return pc, evFail, uintptr(syscall.EINVAL) // ran off the end: the compiler's bug
}

// exec tries each path of a PATH search in turn, as execvp does: a missing one, or one that
// is no executable, sends it to the next. It returns only when none would run.
//
//go:nosplit
//go:norace
func (m *machine) exec(o *op) syscall.Errno {
	last := syscall.ENOENT
	paths := unsafe.Slice((**byte)(o.p), o.a[0])
	for i := range paths {
		_, _, errno := syscall.RawSyscall(syscall.SYS_EXECVE, uintptr(unsafe.Pointer(paths[i])), o.a[1], o.a[2])
		switch errno {
		case syscall.ENOENT, syscall.ENOTDIR:
		case syscall.EACCES:
			last = errno
		default:
			return errno
		}
	}
	return last
}

// rlimit sets one limit; where raising the hard limit is refused (no CAP_SYS_RESOURCE over
// the host's limit), it runs at the host's ceiling and returns 1 so the parent warns.
//
//go:nosplit
//go:norace
func (m *machine) rlimit(o *op) (uintptr, syscall.Errno) {
	want := (*unix.Rlimit)(o.p)
	m.rl = *want
	_, _, errno := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, o.a[0], uintptr(unsafe.Pointer(&m.rl)), 0, 0, 0)
	if errno != syscall.EPERM {
		return 0, errno
	}
	var cur unix.Rlimit
	if _, _, e := syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, o.a[0], 0, uintptr(unsafe.Pointer(&cur)), 0, 0); e != 0 || m.rl.Max <= cur.Max {
		return 0, errno
	}
	m.rl.Max = cur.Max
	if m.rl.Cur > m.rl.Max {
		m.rl.Cur = m.rl.Max
	}
	_, _, errno = syscall.RawSyscall6(unix.SYS_PRLIMIT64, 0, o.a[0], uintptr(unsafe.Pointer(&m.rl)), 0, 0, 0)
	return 1, errno
}

// Report kinds on the error pipe (rec[0]'s high half).
const (
	recFail    = 1
	recWarn    = 2
	recNarrate = 3
)

// report writes one 16-byte record to the parent. A pipe write this small is atomic.
//
//go:nosplit
//go:norace
func (m *machine) report(kind, pc int, val uintptr) {
	m.rec[0] = uint64(kind)<<32 | uint64(uint32(pc))
	m.rec[1] = uint64(val)
	syscall.RawSyscall(syscall.SYS_WRITE, m.errFd, uintptr(unsafe.Pointer(&m.rec[0])), 16)
}

// childMain is the cloned child: it runs the program, reporting to the parent, and either
// execs the container's process or exits.
//
//go:nosplit
//go:norace
func (m *machine) childMain() {
	pc := 0
	for {
		at, ev, val := m.run(pc)
		switch ev {
		case evNarrate:
			m.report(recNarrate, at, 0)
			// Wait for the parent to print it: the narration stays in order with the
			// container's own output.
			for {
				n, _, errno := syscall.RawSyscall(syscall.SYS_READ, m.goFd, uintptr(unsafe.Pointer(&m.buf[0])), 1)
				if errno == syscall.EINTR {
					continue
				}
				if n != 1 {
					syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
				}
				break
			}
		case evWarn:
			m.report(recWarn, at, uintptr(m.rl.Max))
		case evQuit:
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		default:
			m.report(recFail, at, val)
			syscall.RawSyscall(syscall.SYS_EXIT_GROUP, 1, 0, 0)
		}
		pc = at + 1
	}
}

//go:linkname runtime_BeforeFork syscall.runtime_BeforeFork
func runtime_BeforeFork()

//go:linkname runtime_AfterFork syscall.runtime_AfterFork
func runtime_AfterFork()

//go:linkname runtime_AfterForkInChild syscall.runtime_AfterForkInChild
func runtime_AfterForkInChild()

// cloneArgs is the kernel's struct clone_args (clone3), up to cgroup (Linux 5.7).
type cloneArgs struct {
	flags, pidfd, childTID, parentTID, exitSignal, stack, stackSize, tls, setTID, setTIDSize, cgroup uint64
}

// forkMachine clones the calling thread into a child that runs m, with the namespaces of
// flags and, when cgroupFD is not -1, born in that cgroup (clone3 CLONE_INTO_CGROUP). It
// returns the child's pid. The sequence is Go's own forkAndExecInChild's: signals blocked
// and the stack guarded across the clone, the child's signal handlers reset before it
// runs anything, and nothing in the child that allocates or grows the stack.
//
// With vfork the child shares nsrun's memory and this thread sleeps until the child has
// exec'd or failed, as Go's own fork does: no page tables to copy and no copy-on-write
// faults on either side (a plain fork of nsrun takes 1 to 3 ms in this VM). The child
// must then need nothing from the parent before its execve.
//
//go:norace
func forkMachine(m *machine, flags uintptr, cgroupFD int, vfork bool) (int, error) {
	syscall.ForkLock.Lock()
	defer syscall.ForkLock.Unlock()
	args := cloneArgs{flags: uint64(flags), exitSignal: uint64(syscall.SIGCHLD)}
	if cgroupFD >= 0 {
		args.flags |= unix.CLONE_INTO_CGROUP
		args.cgroup = uint64(cgroupFD)
	}
	if vfork {
		args.flags |= unix.CLONE_VM | unix.CLONE_VFORK
	}
	pid, errno := rawClone(m, &args, cgroupFD >= 0, vfork)
	if errno != 0 {
		return 0, errno
	}
	return int(pid), nil
}

//go:nosplit
//go:norace
func rawClone(m *machine, args *cloneArgs, clone3, vfork bool) (uintptr, syscall.Errno) {
	runtime_BeforeFork()
	var pid, e uintptr
	var errno syscall.Errno
	switch {
	case vfork && clone3:
		pid, e = vforkSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
		errno = syscall.Errno(e)
	case vfork:
		pid, e = vforkSyscall(syscall.SYS_CLONE, uintptr(args.flags)|uintptr(syscall.SIGCHLD), 0, 0)
		errno = syscall.Errno(e)
	case clone3:
		pid, _, errno = syscall.RawSyscall(unix.SYS_CLONE3, uintptr(unsafe.Pointer(args)), unsafe.Sizeof(*args), 0)
	default:
		pid, _, errno = syscall.RawSyscall6(syscall.SYS_CLONE, uintptr(args.flags)|uintptr(syscall.SIGCHLD), 0, 0, 0, 0, 0)
	}
	if errno != 0 || pid != 0 {
		runtime_AfterFork()
		return pid, errno
	}
	runtime_AfterForkInChild()
	m.childMain()
	return 0, 0 // not reached
}

// atFdcwd is AT_FDCWD as a system call argument.
var atFdcwd = ^uintptr(99) // -100
