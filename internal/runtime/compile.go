package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/trace"
)

// prog is a program (prog.go) being compiled, with what the parent needs to narrate it and
// to explain a failure: the text of each step, by op.
type prog struct {
	m     machine
	steps []step
	cur   int32   // the step the next ops belong to
	empty uintptr // ""

	// Fd numbers reserved for the child (held open on /dev/null until it has run), for what
	// a path must name as /proc/self/fd/N or a message must carry: the mount point being
	// mounted on, the terminal's master and slave.
	fdTarget, fdMaster, fdSlave int
	reserved                    []int
	hold                        []any // what the ops point into: strings, buffers, a message, a filter

	// What an in-process kExec runs (the joiner execs through syscall.Exec).
	execPathList, execArgv, execEnv []string

	tracing bool     // --trace: compile the narration too
	root    string   // the rootfs on the host (run only)
	mounted []string // the container's mount points so far, inside the rootfs
}

// step is the text of one step: narrated with --trace, and named when it fails.
type step struct {
	narr, cmd string                    // the narration and its shell equivalent
	err       string                    // "mount proc on /proc": what failed
	hint      string                    // a cli hint for the failure
	errf      func(syscall.Errno) error // or a failure of its own wording
}

// The slots (prog.go) the compiler uses.
const (
	sRoot   = 0           // the rootfs, once bound on itself
	sTmp    = 1           // a freshly opened fd, before it is moved to its reserved number
	sDir    = 2           // the dir a node is made in
	sFile   = 3           // a file opened to be written or created
	anyErr  = ^uintptr(0) // as okErr or onErr: any errno
	noSlot  = -1
	resolve = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS
)

func newProg() (*prog, error) {
	p := &prog{tracing: trace.Enabled()}
	p.m.ops = make([]op, 0, 512)
	p.empty = p.str("")
	p.steps = []step{{err: "the container's init"}}
	for _, fd := range []*int{&p.fdTarget, &p.fdMaster, &p.fdSlave} {
		n, err := unix.Open(os.DevNull, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			p.release()
			return nil, err
		}
		// High numbers: out of the way of the fds the child moves into 0, 1 and 2.
		hi, err := unix.FcntlInt(uintptr(n), unix.F_DUPFD_CLOEXEC, 64)
		unix.Close(n)
		if err != nil {
			p.release()
			return nil, err
		}
		*fd = hi
		p.reserved = append(p.reserved, hi)
	}
	return p, nil
}

// release closes the reserved fds: once the child runs, it has its own.
func (p *prog) release() {
	if p == nil {
		return
	}
	for _, fd := range p.reserved {
		unix.Close(fd)
	}
	p.reserved = nil
}

// str keeps s, NUL-terminated, for an op to point to.
func (p *prog) str(s string) uintptr {
	b := append([]byte(s), 0)
	p.hold = append(p.hold, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

// ptr keeps b for an op to point to.
func (p *prog) ptr(b []byte) uintptr {
	p.hold = append(p.hold, b)
	return uintptr(unsafe.Pointer(&b[0]))
}

func (p *prog) procFd(fd int) uintptr { return p.str(fmt.Sprintf("/proc/self/fd/%d", fd)) }

// failing starts a step whose ops, when they fail, fail with "TEXT: errno".
func (p *prog) failing(format string, a ...any) {
	p.steps = append(p.steps, step{err: fmt.Sprintf(format, a...)})
	p.cur = int32(len(p.steps) - 1)
}

// failingWith starts a step whose failure reads as f says.
func (p *prog) failingWith(f func(syscall.Errno) error) {
	p.steps = append(p.steps, step{errf: f})
	p.cur = int32(len(p.steps) - 1)
}

// narrate adds a --trace line, told in order with the child's work.
func (p *prog) narrate(text string, cmd ...string) {
	if !p.tracing {
		return
	}
	p.steps = append(p.steps, step{narr: text, cmd: strings.Join(cmd, " ")})
	p.emit(op{kind: kNarrate, what: int32(len(p.steps) - 1)})
}

func (p *prog) emit(o op) int {
	if o.what == 0 {
		o.what = p.cur
	}
	o.save = noSlot // a result is saved only where saveTo says so
	p.m.ops = append(p.m.ops, o)
	return len(p.m.ops) - 1
}

// sys emits a system call; the result is saved nowhere.
func (p *prog) sys(nr uintptr, a ...uintptr) int {
	o := op{kind: kSys, nr: nr}
	copy(o.a[:], a)
	return p.emit(o)
}

func (p *prog) op(i int) *op { return &p.m.ops[i] }

// okOn makes errno a success for op i.
func (p *prog) okOn(i int, errno uintptr) int { p.op(i).okErr = errno; return i }

// saveTo saves op i's result in slot s.
func (p *prog) saveTo(i int, s int8) int { p.op(i).save = s; return i }

// fromSlot makes op i's argument n the value of the slot it names.
func (p *prog) fromSlot(i, n int) int { p.op(i).slotArgs |= 1 << n; return i }

// onErr sends op i, on errno (anyErr: any), to where a later jumpHere(i) points it.
func (p *prog) onErr(i int, errno uintptr) { p.op(i).onErr = errno }

// jumpHere points op i's jump at the next op to be emitted.
func (p *prog) jumpHere(i int) { p.op(i).jump = int32(len(p.m.ops)) }

func (p *prog) jump() int { return p.emit(op{kind: kJump}) }

// openInRoot opens rel inside the rootfs (symlinks resolved as the container will see
// them, never outside it) and moves the fd to the reserved number fd.
func (p *prog) openInRoot(rel string, flags uint64, res uint64, fd int) {
	how := unix.OpenHow{Flags: flags | unix.O_CLOEXEC, Resolve: res}
	hb := unsafe.Slice((*byte)(unsafe.Pointer(&how)), unsafe.Sizeof(how))
	path := strings.TrimPrefix(filepath.Clean("/"+rel), "/")
	if path == "" {
		path = "."
	}
	i := p.saveTo(p.sys(unix.SYS_OPENAT2, sRoot, p.str(path), p.ptr(append([]byte(nil), hb...)), unsafe.Sizeof(how)), sTmp)
	p.fromSlot(i, 0)
	p.fromSlot(p.sys(unix.SYS_DUP3, sTmp, uintptr(fd), unix.O_CLOEXEC), 0)
	p.fromSlot(p.sys(unix.SYS_CLOSE, sTmp), 0)
}

// mkdirInRoot makes the missing dirs of rel inside the rootfs, as the container sees it at
// this point (below a mount the container already has, such as its /dev), and, for a
// file bind mount, an empty file as the last one.
func (p *prog) mkdirInRoot(rel string, isFile bool) {
	parts := strings.Split(strings.Trim(filepath.Clean("/"+rel), "/"), "/")
	from := 0 // a mount point of the container's own exists: start below the deepest one
	for i := range parts {
		if slices.Contains(p.mounted, "/"+strings.Join(parts[:i+1], "/")) {
			from = i + 1
		}
	}
	for i, name := range parts {
		if name == "" || i < from {
			continue
		}
		parent := strings.Join(parts[:i], "/")
		p.openInRoot(parent, unix.O_PATH|unix.O_DIRECTORY, resolve, p.fdTarget)
		if isFile && i == len(parts)-1 {
			c := p.saveTo(p.sys(unix.SYS_OPENAT, uintptr(p.fdTarget), p.str(name), unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_RDONLY, 0o644), sFile)
			p.okOn(c, uintptr(unix.EEXIST))
			p.okOn(p.fromSlot(p.sys(unix.SYS_CLOSE, sFile), 0), uintptr(unix.EBADF))
			continue
		}
		p.okOn(p.sys(unix.SYS_MKDIRAT, uintptr(p.fdTarget), p.str(name), 0o755), uintptr(unix.EEXIST))
	}
}

// writeFile writes data to an existing file (a sysctl, oom_score_adj).
func (p *prog) writeFile(path, data string) {
	p.saveTo(p.sys(unix.SYS_OPENAT, atFdcwd, p.str(path), unix.O_WRONLY|unix.O_CLOEXEC, 0), sFile)
	p.fromSlot(p.sys(unix.SYS_WRITE, sFile, p.str(data), uintptr(len(data))), 0)
	p.fromSlot(p.sys(unix.SYS_CLOSE, sFile), 0)
}

// fail turns the child's report of a failed op into the error it stands for.
func (p *prog) fail(pc int, errno syscall.Errno) error {
	s := p.steps[0]
	if pc >= 0 && pc < len(p.m.ops) {
		s = p.steps[p.m.ops[pc].what]
	}
	if s.errf != nil {
		return s.errf(errno)
	}
	if s.hint != "" {
		return cli.Errorf(s.hint, "%s: %v", s.err, errno)
	}
	return fmt.Errorf("%s: %w", s.err, errno)
}

// tell prints the narration of op pc.
func (p *prog) tell(pc int) {
	if pc >= 0 && pc < len(p.m.ops) {
		s := p.steps[p.m.ops[pc].what]
		trace.Step(s.narr, s.cmd)
	}
}

// warn prints what a clamped rlimit (op pc) runs with: its soft limit min'd to hard.
func (p *prog) warn(pc int, hard uint64) {
	if pc < 0 || pc >= len(p.m.ops) {
		return
	}
	o := &p.m.ops[pc]
	rl := (*unix.Rlimit)(o.p)
	name := rlimitName(int(o.a[0]))
	fmt.Fprintf(os.Stderr, "nsrun: warning: %s %d:%d clamped to %d:%d (raising the host's hard limit needs CAP_SYS_RESOURCE)\n",
		name, rl.Cur, rl.Max, min(rl.Cur, hard), hard)
}

// runHere runs the program on the calling (locked) thread, for nsrun exec's joiner: it
// narrates, warns and fails in this process and ends in an execve of the process.
func (p *prog) runHere() error {
	p.m.inProcess, p.m.trace = true, trace.Enabled()
	defer p.release()
	pc := 0
	for {
		at, ev, val := p.m.run(pc)
		switch ev {
		case evNarrate:
			p.tell(at)
		case evWarn:
			p.warn(at, uint64(val))
		case evExec:
			// Through Go's syscall.Exec, not the child's raw loop (machine.exec): this process
			// has other threads, and the runtime must not start one during the execve.
			errno := syscall.ENOENT
			for _, path := range p.execPathList {
				var e syscall.Errno
				errors.As(syscall.Exec(path, p.execArgv, p.execEnv), &e)
				if e == syscall.ENOENT || e == syscall.ENOTDIR {
					continue
				}
				if errno = e; e != syscall.EACCES {
					break
				}
			}
			return p.fail(at, errno)
		default:
			return p.fail(at, syscall.Errno(val))
		}
		pc = at + 1
	}
}

// awaitChild follows the cloned child through its reports on errR until its execve closes
// the pipe: narration (answered on goW, so it stays in order), warnings, or the failure.
func (p *prog) awaitChild(errR, goW *os.File) error {
	var rec [16]byte
	for {
		if _, err := io.ReadFull(errR, rec[:]); err == io.EOF {
			return nil // the execve happened (or the child died: its status tells)
		} else if err != nil {
			return errors.New("the container's init sent a short report")
		}
		word := *(*uint64)(unsafe.Pointer(&rec[0]))
		val := *(*uint64)(unsafe.Pointer(&rec[8]))
		kind, pc := int(word>>32), int(uint32(word))
		switch kind {
		case recNarrate:
			p.tell(pc)
			goW.Write([]byte{0})
		case recWarn:
			p.warn(pc, val)
		default:
			return p.fail(pc, syscall.Errno(val))
		}
	}
}
