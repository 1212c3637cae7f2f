package runtime

import (
	"fmt"
	"slices"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// SeccompAnnotation set to "unconfined" in config.json runs the container without a seccomp
// filter when linux.seccomp is absent (docker run --security-opt seccomp=unconfined).
const SeccompAnnotation = "hardway.seccomp"

// seccompFor picks the filter for a container: linux.seccomp when config.json has one,
// otherwise Docker's default profile for the container's capabilities, unless annotated
// unconfined. nil means no filter.
func seccompFor(spec *specs.Spec) *specs.LinuxSeccomp {
	if spec.Linux != nil && spec.Linux.Seccomp != nil {
		return spec.Linux.Seccomp
	}
	if spec.Annotations[SeccompAnnotation] == "unconfined" {
		return nil
	}
	var caps []string
	if spec.Process != nil && spec.Process.Capabilities != nil {
		caps = spec.Process.Capabilities.Bounding
	}
	return DockerSeccomp(caps)
}

// SeccompProgram translates a runtime-spec seccomp section into a BPF program for this
// machine's architecture (x86_64), or says which part of it nsrun cannot honour.
//
// Only the x86_64 syscall table is matched. A syscall of another ABI the kernel runs on
// this machine, i386 through int 0x80 (its own numbers: a rule for unshare, 272, says
// nothing about i386's 310), is refused before any rule is looked at: with the profile's
// default action when that denies, and by killing the process when the default allows
// (libseccomp kills the thread for an architecture a filter does not list), so a denylist
// cannot be sidestepped through the other table. x32 syscalls (x86_64's arch, bit 30 set
// in the number) get ENOSYS.
func SeccompProgram(s *specs.LinuxSeccomp) ([]bpf.Instruction, error) {
	p, err := seccompPolicy(s)
	if err != nil {
		return nil, err
	}
	return p.program()
}

// scMaxInsns is BPF_MAXINSNS, the most the kernel loads (sock_fprog's length is 16 bits:
// a longer program must not reach it truncated).
const scMaxInsns = 4096

// scPolicy is a seccomp profile reduced to what its filter checks: the rules in the
// profile's order (the first that matches decides), then the default. seccompPolicy
// arranges them so that first match gives what runc with libseccomp gives.
type scPolicy struct {
	def   uint32  // SECCOMP_RET_* with its errno
	flags uintptr // SECCOMP_FILTER_FLAG_*
	rules []scRule
	// newerThan, when not 0, is the highest syscall number the profile names: a syscall
	// above it is newer than the profile and fails with ENOSYS rather than the default's
	// errno, so libc falls back to an older one (runc's -ENOSYS stub: glibc's fchmodat
	// tries fchmodat2, 452, then emulates, but only on ENOSYS).
	newerThan uint32
}

// scRule matches any of its syscalls when all its conditions hold.
type scRule struct {
	action uint32
	nrs    []uint32
	conds  []specs.LinuxSeccompArg
}

// seccomp_data: the syscall number, the audit arch, then six 64-bit arguments, which an
// x86_64 kernel stores little-endian (low half first).
const (
	scNrOff   = 0
	scArchOff = 4
	scArgOff  = 16
	scX32Bit  = 0x40000000 // __X32_SYSCALL_BIT
	scNrLimit = 512        // above every number in x86_64Syscalls (a test checks)
)

// program assembles the filter: for each rule a compare per syscall, every jump short
// (BPF's conditional jumps reach 255 instructions ahead), so no label resolution is
// needed. A rule with conditions loads the arguments into the accumulator: the syscall
// number is loaded again after it. (go-seccomp-bpf, used before, did not, so after a
// failed condition the later rules compared an argument with their syscall numbers:
// Docker's personality(0xffffffff) was refused.)
func (p *scPolicy) program() ([]bpf.Instruction, error) {
	badArch := p.def
	switch badArch & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE: // a tracer may allow
		badArch = unix.SECCOMP_RET_KILL_PROCESS
	}
	prog := []bpf.Instruction{
		bpf.LoadAbsolute{Off: scArchOff, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.AUDIT_ARCH_X86_64, SkipTrue: 1},
		bpf.RetConstant{Val: badArch},
		bpf.LoadAbsolute{Off: scNrOff, Size: 4},
		bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: scX32Bit, SkipFalse: 1},
		bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
	}
	if p.newerThan > 0 {
		prog = append(prog,
			bpf.JumpIf{Cond: bpf.JumpGreaterThan, Val: p.newerThan, SkipFalse: 1},
			bpf.RetConstant{Val: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)})
	}
	for _, r := range p.rules {
		if len(r.conds) == 0 {
			// Compares that jump to one shared return, in chunks it stays in reach of.
			for nrs := r.nrs; len(nrs) > 0; {
				k := min(len(nrs), 255)
				for i, nr := range nrs[:k] {
					j := bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipTrue: uint8(k - 1 - i)}
					if i == k-1 {
						j.SkipFalse = 1
					}
					prog = append(prog, j)
				}
				prog = append(prog, bpf.RetConstant{Val: r.action})
				nrs = nrs[k:]
			}
			continue
		}
		check := conditions(r.conds, r.action)
		for _, nr := range r.nrs {
			prog = append(prog, bpf.JumpIf{Cond: bpf.JumpEqual, Val: nr, SkipFalse: uint8(len(check))})
			prog = append(prog, check...)
		}
	}
	prog = append(prog, bpf.RetConstant{Val: p.def})
	if len(prog) > scMaxInsns {
		// Each syscall of a rule with conditions costs up to 39 instructions.
		return nil, fmt.Errorf("linux.seccomp: the filter takes %d BPF instructions, the kernel loads at most %d", len(prog), scMaxInsns)
	}
	return prog, nil
}

// conditions is the code that returns action when every condition holds and otherwise
// reloads the syscall number and goes on after itself. There are at most 6 conditions, one
// per argument (seccompPolicy splits the others into rules of their own): at most 38
// instructions, so every jump over them is short. Each condition compares a 64-bit
// argument in two 32-bit halves: "ok" goes on to the next condition, "fail" to the end.
func conditions(conds []specs.LinuxSeccompArg, action uint32) []bpf.Instruction {
	var code []bpf.Instruction
	// Jumps to resolve, as index<<1 | 1 for the taken side, 0 for the other.
	var fails, oks []int
	// jmp appends a conditional jump. Each side goes to "next" (falls through), "ok" or
	// "fail".
	jmp := func(cond bpf.JumpTest, val uint32, onTrue, onFalse string) {
		at := len(code)
		code = append(code, bpf.JumpIf{Cond: cond, Val: val})
		for _, side := range []struct {
			to    string
			taken bool
		}{{onTrue, true}, {onFalse, false}} {
			switch side.to {
			case "ok":
				oks = append(oks, at<<1|b2i(side.taken))
			case "fail":
				fails = append(fails, at<<1|b2i(side.taken))
			}
		}
	}
	setSkip := func(ref, target int) {
		at, taken := ref>>1, ref&1 == 1
		j := code[at].(bpf.JumpIf)
		skip := uint8(target - at - 1)
		if taken {
			j.SkipTrue = skip
		} else {
			j.SkipFalse = skip
		}
		code[at] = j
	}
	for _, c := range conds {
		hi, lo := uint32(c.Value>>32), uint32(c.Value)
		ldHi := bpf.LoadAbsolute{Off: scArgOff + 8*uint32(c.Index) + 4, Size: 4}
		ldLo := bpf.LoadAbsolute{Off: scArgOff + 8*uint32(c.Index), Size: 4}
		code = append(code, ldHi)
		switch c.Op {
		case specs.OpEqualTo:
			jmp(bpf.JumpEqual, hi, "next", "fail")
			code = append(code, ldLo)
			jmp(bpf.JumpEqual, lo, "ok", "fail")
		case specs.OpNotEqual:
			jmp(bpf.JumpEqual, hi, "next", "ok")
			code = append(code, ldLo)
			jmp(bpf.JumpEqual, lo, "fail", "ok")
		case specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual:
			// Decided by the high halves unless they are equal, then by the low halves.
			strict, loose := bpf.JumpGreaterThan, map[specs.LinuxSeccompOperator]bpf.JumpTest{
				specs.OpGreaterThan: bpf.JumpGreaterThan, specs.OpGreaterEqual: bpf.JumpGreaterOrEqual,
				specs.OpLessThan: bpf.JumpLessThan, specs.OpLessEqual: bpf.JumpLessOrEqual}[c.Op]
			if c.Op == specs.OpLessThan || c.Op == specs.OpLessEqual {
				strict = bpf.JumpLessThan
			}
			jmp(strict, hi, "ok", "next")
			jmp(bpf.JumpEqual, hi, "next", "fail")
			code = append(code, ldLo)
			jmp(loose, lo, "ok", "fail")
		case specs.OpMaskedEqual: // (arg & value) == valueTwo
			hi2, lo2 := uint32(c.ValueTwo>>32), uint32(c.ValueTwo)
			code = append(code, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: hi})
			jmp(bpf.JumpEqual, hi2, "next", "fail")
			code = append(code, ldLo, bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: lo})
			jmp(bpf.JumpEqual, lo2, "ok", "fail")
		}
		// "ok" is the next condition, which starts here.
		for _, ref := range oks {
			setSkip(ref, len(code))
		}
		oks = oks[:0]
	}
	code = append(code, bpf.RetConstant{Val: action})
	for _, ref := range fails {
		setSkip(ref, len(code))
	}
	return append(code, bpf.LoadAbsolute{Off: scNrOff, Size: 4})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func seccompPolicy(s *specs.LinuxSeccomp) (*scPolicy, error) {
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		return nil, fmt.Errorf("linux.seccomp.listenerPath is not supported")
	}
	var flags uintptr
	for _, f := range s.Flags {
		switch f {
		case specs.LinuxSeccompFlagLog: // log every action but ALLOW (kernel 4.14)
			flags |= unix.SECCOMP_FILTER_FLAG_LOG
		case specs.LinuxSeccompFlagSpecAllow: // no forced Speculative Store Bypass mitigation (4.17)
			flags |= unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW
		case "SECCOMP_FILTER_FLAG_TSYNC":
			// Nothing to do, as in runc: the filter is on the thread that execs, and the
			// other threads end with the execve.
		default:
			return nil, fmt.Errorf("linux.seccomp.flags %s is not supported", f)
		}
	}
	if len(s.Architectures) > 0 {
		ok := false
		for _, a := range s.Architectures {
			ok = ok || a == specs.ArchX86_64
		}
		if !ok {
			return nil, fmt.Errorf("linux.seccomp.architectures %v does not include SCMP_ARCH_X86_64, this machine's", s.Architectures)
		}
	}
	def, err := seccompAction(s.DefaultAction, s.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("linux.seccomp.defaultAction: %w", err)
	}
	p := &scPolicy{def: def, flags: flags}
	// As runc: only when the default denies with another errno; every name counts, whatever
	// its rule's action.
	stub := def != unix.SECCOMP_RET_ERRNO|uint32(unix.ENOSYS)
	switch def & unix.SECCOMP_RET_ACTION_FULL {
	case unix.SECCOMP_RET_ALLOW, unix.SECCOMP_RET_LOG, unix.SECCOMP_RET_TRACE:
		stub = false
	}
	for i, sc := range s.Syscalls {
		act, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
		var twice bool // an argument compared more than once
		var seen [6]bool
		for _, a := range sc.Args {
			if err := seccompCondition(a); err != nil {
				return nil, fmt.Errorf("linux.seccomp.syscalls[%d] %v: %w", i, sc.Names, err)
			}
			twice = twice || seen[a.Index]
			seen[a.Index] = true
		}
		var nrs []uint32
		for _, n := range sc.Names {
			// Names this architecture lacks (chown32, …) are skipped, as libseccomp does.
			if nr, ok := syscallNumber(n); ok && !slices.Contains(nrs, nr) {
				nrs = append(nrs, nr)
				if stub {
					p.newerThan = max(p.newerThan, nr)
				}
			}
		}
		if act == def || len(nrs) == 0 {
			// As runc: a rule that says what the default says is dropped (libseccomp refuses
			// it), so it cannot shadow another rule for the same syscall.
			continue
		}
		if twice {
			// libseccomp compares an argument once per rule; runc then makes one rule of each
			// condition, so they are ORed: [arg0 == 1, arg0 == 2] matches either.
			for _, a := range sc.Args {
				p.rules = append(p.rules, scRule{action: act, nrs: nrs, conds: []specs.LinuxSeccompArg{a}})
			}
			continue
		}
		p.rules = append(p.rules, scRule{action: act, nrs: nrs, conds: sc.Args})
	}
	// libseccomp: a syscall's first unconditional rule decides it, wherever its conditional
	// rules are (a later one is dropped, an earlier one cleared). First match gives the same
	// once those syscalls leave the conditional rules.
	var uncond [scNrLimit]bool
	for _, r := range p.rules {
		if len(r.conds) == 0 {
			for _, nr := range r.nrs {
				uncond[nr] = true
			}
		}
	}
	rules := p.rules[:0]
	for _, r := range p.rules {
		if len(r.conds) > 0 {
			// A copy: the rules split from one entry share their syscall list.
			r.nrs = slices.DeleteFunc(slices.Clone(r.nrs), func(nr uint32) bool { return uncond[nr] })
		}
		if len(r.nrs) > 0 {
			rules = append(rules, r)
		}
	}
	p.rules = rules
	return p, nil
}

// syscallNumber looks a syscall name up in the x86_64 table.
func syscallNumber(name string) (uint32, bool) {
	i, ok := slices.BinarySearchFunc(x86_64Syscalls[:], name, func(e struct {
		name string
		nr   uint16
	}, n string) int {
		return strings.Compare(e.name, n)
	})
	if !ok {
		return 0, false
	}
	return uint32(x86_64Syscalls[i].nr), true
}

// seccompAction is the SECCOMP_RET_* value of an action, with its errno.
func seccompAction(a specs.LinuxSeccompAction, errno *uint) (uint32, error) {
	switch a {
	case specs.ActAllow:
		return unix.SECCOMP_RET_ALLOW, nil
	case specs.ActErrno, specs.ActTrace:
		// TRACE hands the syscall to a ptrace tracer with errnoRet as its data; without a
		// tracer it fails with ENOSYS.
		e := uint(unix.EPERM) // as runc when errnoRet is absent
		if errno != nil {
			e = *errno
		}
		if e > 0xffff {
			return 0, fmt.Errorf("errnoRet %d is out of range", e)
		}
		if a == specs.ActTrace {
			return unix.SECCOMP_RET_TRACE | uint32(e), nil
		}
		return unix.SECCOMP_RET_ERRNO | uint32(e), nil
	case specs.ActKill, specs.ActKillThread:
		return unix.SECCOMP_RET_KILL_THREAD, nil
	case specs.ActKillProcess:
		return unix.SECCOMP_RET_KILL_PROCESS, nil
	case specs.ActTrap:
		return unix.SECCOMP_RET_TRAP, nil
	case specs.ActLog:
		return unix.SECCOMP_RET_LOG, nil
	}
	return 0, fmt.Errorf("action %q is not supported (SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_THREAD, _KILL_PROCESS, _TRAP, _TRACE, _LOG are)", a)
}

// seccompCondition refuses an argument condition the filter cannot check.
func seccompCondition(a specs.LinuxSeccompArg) error {
	if a.Index > 5 {
		return fmt.Errorf("argument index %d: a syscall has 6", a.Index)
	}
	switch a.Op {
	case specs.OpEqualTo, specs.OpNotEqual, specs.OpGreaterThan, specs.OpGreaterEqual, specs.OpLessThan, specs.OpLessEqual,
		specs.OpMaskedEqual:
	default:
		return fmt.Errorf("comparison %q is not supported", a.Op)
	}
	return nil
}

// seccomp compiles the loading of the filter onto the thread that will execve the
// container's process; the filter survives the execve and binds every later thread.
func (p *prog) seccomp(s *specs.LinuxSeccomp, docker bool) error {
	pol, err := seccompPolicy(s)
	if err != nil {
		return err
	}
	what := "the seccomp profile from config.json"
	if docker {
		what = "Docker's default seccomp profile"
	}
	n := 0
	for _, r := range pol.rules {
		n += len(r.nrs)
	}
	p.narrate(fmt.Sprintf("load %s: %d syscall rules, every other syscall gets %s (and every syscall of another architecture is refused)", what, n, s.DefaultAction),
		fmt.Sprintf("seccomp(SECCOMP_SET_MODE_FILTER, %#x, BPF program)", pol.flags))
	prog, err := pol.program()
	if err != nil {
		return err
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return fmt.Errorf("seccomp: %w", err)
	}
	filter := make([]unix.SockFilter, len(raw))
	for i, r := range raw {
		filter[i] = unix.SockFilter{Code: r.Op, Jt: r.Jt, Jf: r.Jf, K: r.K}
	}
	fprog := &unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	p.hold = append(p.hold, filter, fprog)
	p.failing("seccomp: load the filter")
	p.sys(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, pol.flags, uintptr(unsafe.Pointer(fprog)))
	return nil
}
