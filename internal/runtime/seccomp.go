package runtime

import (
	"fmt"
	"unsafe"

	seccomp "github.com/elastic/go-seccomp-bpf"
	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
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
// (what libseccomp does for an architecture a filter does not list), so a denylist cannot
// be sidestepped through the other table. x32 syscalls (x86_64's arch, bit 30 set in the
// number) get ENOSYS from the library's own check.
func SeccompProgram(s *specs.LinuxSeccomp) ([]bpf.Instruction, error) {
	p, err := seccompPolicy(s)
	if err != nil {
		return nil, err
	}
	return program(p)
}

// program assembles a policy behind the architecture guard (see SeccompProgram).
func program(p *seccomp.Policy) ([]bpf.Instruction, error) {
	prog, err := p.Assemble()
	if err != nil {
		return nil, err
	}
	badArch := p.DefaultAction
	switch badArch {
	case seccomp.ActionAllow, seccomp.ActionLog:
		badArch = seccomp.ActionKillProcess
	case seccomp.ActionErrno:
		badArch |= seccomp.Action(unix.EPERM) // bare, the library's default means EPERM
	}
	guard := []bpf.Instruction{
		bpf.LoadAbsolute{Off: 4, Size: 4}, // seccomp_data.arch
		bpf.JumpIf{Cond: bpf.JumpEqual, Val: uint32(arch.X86_64.ID), SkipTrue: 1},
		bpf.RetConstant{Val: uint32(badArch)},
	}
	return append(guard, prog...), nil
}

func seccompPolicy(s *specs.LinuxSeccomp) (*seccomp.Policy, error) {
	if s.ListenerPath != "" || s.ListenerMetadata != "" {
		return nil, fmt.Errorf("linux.seccomp.listenerPath is not supported")
	}
	for _, f := range s.Flags {
		// SPEC_ALLOW (no speculative-store-bypass mitigation) is the only one we could honour
		// but would silently drop: refuse them all.
		return nil, fmt.Errorf("linux.seccomp.flags %s is not supported", f)
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
	switch def {
	case seccomp.ActionErrno | 1:
		def = seccomp.ActionErrno // the library's default action takes no errno: it means EPERM
	case seccomp.ActionAllow, seccomp.ActionKillThread, seccomp.ActionKillProcess, seccomp.ActionTrap, seccomp.ActionLog:
	default:
		return nil, fmt.Errorf("linux.seccomp.defaultAction %s with errno %d is not supported (only EPERM)", s.DefaultAction, def&0xffff)
	}
	p := &seccomp.Policy{DefaultAction: def}
	table := arch.X86_64.SyscallNames
	for i, sc := range s.Syscalls {
		act, err := seccompAction(sc.Action, sc.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("linux.seccomp.syscalls[%d]: %w", i, err)
		}
		conds := make(seccomp.ArgumentConditions, 0, len(sc.Args))
		for _, a := range sc.Args {
			c, err := seccompCondition(a)
			if err != nil {
				return nil, fmt.Errorf("linux.seccomp.syscalls[%d] %v: %w", i, sc.Names, err)
			}
			conds = append(conds, c)
		}
		g := seccomp.SyscallGroup{Action: act}
		seen := map[string]bool{}
		for _, n := range sc.Names {
			// Names this architecture lacks (chown32, …) are skipped, as libseccomp does.
			if _, ok := table[n]; !ok || seen[n] {
				continue
			}
			seen[n] = true
			if len(conds) == 0 {
				g.Names = append(g.Names, n)
			} else {
				g.NamesWithCondtions = append(g.NamesWithCondtions, seccomp.NameWithConditions{Name: n, Conditions: conds})
			}
		}
		if len(g.Names)+len(g.NamesWithCondtions) > 0 {
			p.Syscalls = append(p.Syscalls, g)
		}
	}
	if len(p.Syscalls) == 0 {
		// The library wants one group; a rule that never matches keeps the default for all.
		p.Syscalls = []seccomp.SyscallGroup{{Action: def, Names: []string{"getpid"}}}
	}
	return p, nil
}

func seccompAction(a specs.LinuxSeccompAction, errno *uint) (seccomp.Action, error) {
	switch a {
	case specs.ActAllow:
		return seccomp.ActionAllow, nil
	case specs.ActErrno:
		e := uint(1) // EPERM, as runc when errnoRet is absent
		if errno != nil {
			e = *errno
		}
		if e > 0xffff {
			return 0, fmt.Errorf("errnoRet %d is out of range", e)
		}
		return seccomp.ActionErrno | seccomp.Action(e), nil
	case specs.ActKill, specs.ActKillThread:
		return seccomp.ActionKillThread, nil
	case specs.ActKillProcess:
		return seccomp.ActionKillProcess, nil
	case specs.ActTrap:
		return seccomp.ActionTrap, nil
	case specs.ActLog:
		return seccomp.ActionLog, nil
	}
	return 0, fmt.Errorf("action %q is not supported (SCMP_ACT_ALLOW, _ERRNO, _KILL, _KILL_THREAD, _KILL_PROCESS, _TRAP, _LOG are)", a)
}

func seccompCondition(a specs.LinuxSeccompArg) (seccomp.Condition, error) {
	if a.Index > 5 {
		return seccomp.Condition{}, fmt.Errorf("argument index %d: a syscall has 6", a.Index)
	}
	c := seccomp.Condition{Argument: uint32(a.Index), Value: a.Value}
	switch a.Op {
	case specs.OpEqualTo:
		c.Operation = seccomp.Equal
	case specs.OpNotEqual:
		c.Operation = seccomp.NotEqual
	case specs.OpGreaterThan:
		c.Operation = seccomp.GreaterThan
	case specs.OpGreaterEqual:
		c.Operation = seccomp.GreaterOrEqual
	case specs.OpLessThan:
		c.Operation = seccomp.LessThan
	case specs.OpLessEqual:
		c.Operation = seccomp.LessOrEqual
	case specs.OpMaskedEqual:
		// (arg & value) == valueTwo; only the "none of these bits" form has a BPF builder.
		if a.ValueTwo != 0 {
			return c, fmt.Errorf("SCMP_CMP_MASKED_EQ with valueTwo %d is not supported (only 0)", a.ValueTwo)
		}
		c.Operation = seccomp.BitsNotSet
	default:
		return c, fmt.Errorf("comparison %q is not supported", a.Op)
	}
	return c, nil
}

// loadSeccomp installs the filter on the calling thread, the one that will execve the
// container's process; the filter survives the execve and binds every later thread.
func loadSeccomp(s *specs.LinuxSeccomp, docker bool) error {
	p, err := seccompPolicy(s)
	if err != nil {
		return err
	}
	what := "the seccomp profile from config.json"
	if docker {
		what = "Docker's default seccomp profile"
	}
	n := 0
	for _, g := range p.Syscalls {
		n += len(g.Names) + len(g.NamesWithCondtions)
	}
	trace.Step(fmt.Sprintf("load %s: %d syscall rules, every other syscall gets %s (and every syscall of another architecture is refused)", what, n, s.DefaultAction),
		"seccomp(SECCOMP_SET_MODE_FILTER, 0, BPF program)")
	prog, err := program(p)
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
	fprog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if _, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&fprog))); errno != 0 {
		return fmt.Errorf("seccomp: load the filter: %w", errno)
	}
	return nil
}
