package runtime_test

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"

	"github.com/hardway/hardway/internal/runtime"
	"github.com/hardway/hardway/internal/testutil"
)

// A user namespace needs no capability, so only seccomp can stop `unshare -U`: Docker's
// profile allows unshare only with CAP_SYS_ADMIN.
const userns = "grep -E '^Seccomp(_filters)?:' /proc/self/status; unshare -U true && echo unshare-ok || echo unshare-blocked; echo still-works"

func TestSeccompDockerDefault(t *testing.T) {
	_, b := bundleRunning(t, userns)
	r := nsrun(t, b)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	for _, want := range []string{"Seccomp:\t2", "Seccomp_filters:\t1", "unshare-blocked", "still-works"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("with Docker's default profile the container prints %q, want %q in it", r.Stdout, want)
		}
	}
	if !strings.Contains(r.Stderr, "Operation not permitted") {
		t.Errorf("unshare -U should fail with EPERM, stderr %q", r.Stderr)
	}
}

func TestSeccompUnconfined(t *testing.T) {
	_, b := bundleRunning(t, userns)
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Annotations[runtime.SeccompAnnotation] = "unconfined" })
	r := nsrun(t, b)
	if r.Code != 0 || !strings.Contains(r.Stdout, "Seccomp:\t0") || !strings.Contains(r.Stdout, "unshare-ok") {
		t.Fatalf("unconfined container: exit %d, stdout %q, stderr %q; want no filter and unshare allowed", r.Code, r.Stdout, r.Stderr)
	}
}

// A profile from config.json wins over the default, with its own errno; and with
// noNewPrivileges the filter is loaded after the capabilities are dropped.
func TestSeccompFromConfig(t *testing.T) {
	_, b := bundleRunning(t, "grep NoNewPrivs /proc/self/status; mkdir /tmp/d && echo mkdir-ok || echo mkdir-blocked; echo still-works")
	enoent := uint(2)
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
		s.Linux.Seccomp = &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &enoent}},
		}
	})
	r := nsrun(t, b)
	if r.Code != 0 || !strings.Contains(r.Stdout, "NoNewPrivs:\t1") || !strings.Contains(r.Stdout, "mkdir-blocked") ||
		!strings.Contains(r.Stdout, "still-works") || !strings.Contains(r.Stderr, "No such file or directory") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want no_new_privs set and mkdir failing with ENOENT", r.Code, r.Stdout, r.Stderr)
	}
}

// Argument conditions on the kernel: the mode argument of chmod (arg1) and fchmodat (arg2),
// 64-bit values compared in the halves the kernel lays out; two conditions on one argument
// either match; a leading rule that only restates the default allows nothing more.
func TestSeccompArgumentsOnTheKernel(t *testing.T) {
	_, b := bundleRunning(t, "touch /tmp/f; for m in 755 777 700 644; do chmod $m /tmp/f && echo $m-ok || echo $m-blocked; done")
	eperm := uint(1)
	modes := func(i uint) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: i, Value: 0o777, Op: specs.OpEqualTo}, {Index: i, Value: 0o700, Op: specs.OpEqualTo}}
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"chmod", "fchmodat", "fchmodat2"}, Action: specs.ActAllow},
			{Names: []string{"chmod"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: modes(1)},
			{Names: []string{"fchmodat", "fchmodat2"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: modes(2)},
		}}
	})
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "755-ok\n777-blocked\n700-blocked\n644-ok\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want chmod 777 and 700 refused, 755 and 644 allowed", r.Code, r.Stdout, r.Stderr)
	}
}

// Between the filter and the execve nsrun makes only the syscalls runc makes there, so a
// profile written for runc that leaves out close_range (an allowlist recorded from the
// application, or Docker's before it listed close_range) still starts the container.
func TestSeccompProfileWithoutCloseRange(t *testing.T) {
	_, b := bundleRunning(t, "echo started")
	eperm := uint(1)
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.NoNewPrivileges = true
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"close_range"}, Action: specs.ActErrno, ErrnoRet: &eperm}}}
	})
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "started\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the container started", r.Code, r.Stdout, r.Stderr)
	}
}

// The flags runc passes on: LOG and SPEC_ALLOW to seccomp(2), TSYNC moot (the filter is on
// the thread that execs).
func TestSeccompFlags(t *testing.T) {
	_, b := bundleRunning(t, "grep -E '^Seccomp:' /proc/self/status; mkdir /tmp/d && echo mkdir-ok || echo mkdir-blocked")
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, "SECCOMP_FILTER_FLAG_TSYNC"},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno}}}
	})
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "Seccomp:\t2\nmkdir-blocked\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the filter loaded and mkdir refused", r.Code, r.Stdout, r.Stderr)
	}
}

// SCMP_ACT_TRACE with no tracer attached: the kernel fails the syscall with ENOSYS.
func TestSeccompTraceWithoutTracer(t *testing.T) {
	_, b := bundleRunning(t, "mkdir /tmp/d && echo mkdir-ok || echo mkdir-blocked")
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
			Syscalls: []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActTrace}}}
	})
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "mkdir-blocked\n" || !strings.Contains(r.Stderr, "Function not implemented") {
		t.Fatalf("exit %d, stdout %q, stderr %q; want mkdir failing with ENOSYS", r.Code, r.Stdout, r.Stderr)
	}
}

func TestSeccompUnsupportedIsAnError(t *testing.T) {
	// Docker's allowlist, each syscall with a condition on every argument: over 4096
	// instructions, more than the kernel loads.
	var six []specs.LinuxSeccompArg
	for i := range 6 {
		six = append(six, specs.LinuxSeccompArg{Index: uint(i), Value: 1, Op: specs.OpEqualTo})
	}
	huge := []specs.LinuxSyscall{{Names: runtime.DockerSeccomp(nil).Syscalls[0].Names, Action: specs.ActErrno, Args: six}}
	if _, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: huge}); err == nil || !strings.Contains(err.Error(), "at most 4096") {
		t.Errorf("a filter over 4096 instructions: %v, want an error that says so", err)
	}
	for name, sc := range map[string]*specs.LinuxSeccomp{
		"too long": {DefaultAction: specs.ActAllow, Syscalls: huge},
		"action":   {DefaultAction: "SCMP_ACT_NOTIFY"},
		"listener": {DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"},
		"flag":     {DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
		"arch":     {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchAARCH64}},
		"operator": {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"clone"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_FOO"}}}}},
	} {
		_, b := bundleRunning(t, "echo should-not-run")
		testutil.EditBundle(t, b, func(s *specs.Spec) { s.Linux.Seccomp = sc })
		r := nsrun(t, b)
		if r.Code != 1 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "nsrun: error: ") || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want a one-line error and nothing run", name, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// The default profile compiles to a program the kernel accepts (at most 4096 instructions).
func TestDockerSeccompCompiles(t *testing.T) {
	prog, err := runtime.SeccompProgram(runtime.DockerSeccomp(testutil.DockerCaps))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bpf.Assemble(prog); err != nil || len(prog) > 4096 {
		t.Fatalf("%d instructions, %v", len(prog), err)
	}
}

// What the filter returns for a syscall of each ABI, run in x/net/bpf's VM on the
// seccomp_data the kernel would pass: this host cannot run i386 code (no IA32 emulation),
// so the i386 case is checked on the program itself. A denylist (default ALLOW, unshare
// refused) must not be sidestepped through i386's own number for unshare (310), nor
// Docker's allowlist widened to the i386 table.
func TestSeccompOtherArchitectures(t *testing.T) {
	const (
		archX86_64 = 0xc000003e // AUDIT_ARCH_X86_64
		archI386   = 0x40000003 // AUDIT_ARCH_I386
		x32Bit     = 0x40000000
		retAllow   = 0x7fff0000
		retKill    = 0x80000000 // SECCOMP_RET_KILL_PROCESS
		retErrno   = 0x00050000
		retTrace   = 0x7ff00000
	)
	run := seccompRun(t)
	eperm := uint(1)
	deny, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"unshare"}, Action: specs.ActErrno, ErrnoRet: &eperm}}})
	if err != nil {
		t.Fatal(err)
	}
	docker, err := runtime.SeccompProgram(runtime.DockerSeccomp(testutil.DockerCaps))
	if err != nil {
		t.Fatal(err)
	}
	// Default TRACE: a tracer may let a syscall through, so another arch is killed.
	traced, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActTrace,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActAllow}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		prog     []bpf.Instruction
		arch, nr uint32
		want     uint32
	}{
		{"denylist: x86_64 unshare", deny, archX86_64, 272, retErrno | 1},
		{"denylist: x86_64 getpid", deny, archX86_64, 39, retAllow},
		{"denylist: i386 unshare", deny, archI386, 310, retKill},
		{"denylist: i386 getpid", deny, archI386, 20, retKill},
		{"denylist: x32 unshare", deny, archX86_64, x32Bit | 272, retErrno | 38},
		{"docker: x86_64 getpid", docker, archX86_64, 39, retAllow},
		{"docker: i386 getpid", docker, archI386, 20, retErrno | 1},
		{"docker: x32 getpid", docker, archX86_64, x32Bit | 39, retErrno | 38},
		{"trace: x86_64 getpid", traced, archX86_64, 39, retAllow},
		{"trace: x86_64 gettid", traced, archX86_64, 186, retTrace | 1},
		{"trace: i386 getpid", traced, archI386, 20, retKill},
	} {
		if got := run(c.prog, c.arch, c.nr, 0); got != c.want {
			t.Errorf("%s: filter returns %#x, want %#x", c.name, got, c.want)
		}
	}
}

// asKernelSeesIt assembles the program into the sock_filter array the compiled seccomp op passes and
// reads it back, so a VM run checks the encoding too (a "less than" is a JGE with its
// targets swapped), not only the instructions as built.
func asKernelSeesIt(t *testing.T, prog []bpf.Instruction) []bpf.Instruction {
	t.Helper()
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatal(err)
	}
	back, ok := bpf.Disassemble(raw)
	if !ok {
		t.Fatal("the assembled filter does not disassemble")
	}
	return back
}

// seccompRun runs a filter in x/net/bpf's VM on the seccomp_data the kernel would pass for
// a syscall with arg0 as its first argument, and returns the filter's verdict.
func seccompRun(t *testing.T) func(prog []bpf.Instruction, arch, nr uint32, arg0 uint64) uint32 {
	return func(prog []bpf.Instruction, arch, nr uint32, arg0 uint64) uint32 {
		vm, err := bpf.NewVM(asKernelSeesIt(t, prog))
		if err != nil {
			t.Fatal(err)
		}
		// struct seccomp_data in the VM's (network) byte order; an x86_64 kernel stores a
		// 64-bit argument low half first.
		data := make([]byte, 64)
		binary.BigEndian.PutUint32(data[0:], nr)
		binary.BigEndian.PutUint32(data[4:], arch)
		binary.BigEndian.PutUint32(data[16:], uint32(arg0))
		binary.BigEndian.PutUint32(data[20:], uint32(arg0>>32))
		ret, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(ret)
	}
}

// Argument conditions: every persona Docker's profile allows gets through, whichever rule
// lists it, and nothing else does; a 64-bit value is compared whole.
func TestSeccompArgumentConditions(t *testing.T) {
	const (
		archX86_64  = 0xc000003e
		personality = 135
		retAllow    = 0x7fff0000
		retEPERM    = 0x00050001
	)
	run := seccompRun(t)
	docker, err := runtime.SeccompProgram(runtime.DockerSeccomp(testutil.DockerCaps))
	if err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[uint64]uint32{
		0: retAllow, 8: retAllow, 0x20000: retAllow, 0x20008: retAllow, 0xffffffff: retAllow,
		5: retEPERM, 39: retEPERM, 0x100000000: retEPERM, 0x1_0000_0008: retEPERM,
	} {
		if got := run(docker, archX86_64, personality, arg); got != want {
			t.Errorf("docker: personality(%#x): filter returns %#x, want %#x", arg, got, want)
		}
	}
	// Each comparison, on a value with both halves set.
	const v = 0x1_0000_0005
	for _, c := range []struct {
		op   specs.LinuxSeccompOperator
		args map[uint64]bool // the argument, whether the rule matches
		two  uint64          // valueTwo
	}{
		{specs.OpEqualTo, map[uint64]bool{v: true, 5: false, 0x1_0000_0000: false}, 0},
		{specs.OpNotEqual, map[uint64]bool{v: false, 5: true, 0x2_0000_0005: true}, 0},
		{specs.OpGreaterThan, map[uint64]bool{v: false, v + 1: true, 0x2_0000_0000: true, 0xffffffff: false}, 0},
		{specs.OpGreaterEqual, map[uint64]bool{v: true, v - 1: false, 0x2_0000_0000: true, 6: false}, 0},
		{specs.OpLessThan, map[uint64]bool{v: false, v - 1: true, 0xffffffff: true, 0x2_0000_0000: false}, 0},
		{specs.OpLessEqual, map[uint64]bool{v: true, v + 1: false, 6: true, 0x2_0000_0000: false}, 0},
		{specs.OpMaskedEqual, map[uint64]bool{0: true, 2: true, 1: false, 0x1_0000_0000: false, 0x2_0000_0002: true}, 0},
		// (arg & value) == valueTwo: bits 0 and 32 set, the rest of value's bits clear.
		{specs.OpMaskedEqual, map[uint64]bool{v: false, 0x1_0000_0001: true, 0x3_0000_0003: true, 0x1_0000_0000: false, 1: false}, 0x1_0000_0001},
	} {
		eperm := uint(1)
		prog, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: &eperm, Args: []specs.LinuxSeccompArg{{Index: 0, Value: v, ValueTwo: c.two, Op: c.op}}},
			{Names: []string{"gettid"}, Action: specs.ActErrno, ErrnoRet: &eperm},
		}})
		if err != nil {
			t.Fatal(err)
		}
		for arg, match := range c.args {
			want := uint32(retAllow)
			if match {
				want = retEPERM
			}
			if got := run(prog, archX86_64, 39, arg); got != want {
				t.Errorf("getpid with %s %#x (valueTwo %#x), arg %#x: filter returns %#x, want %#x", c.op, uint64(v), c.two, arg, got, want)
			}
			// A rule after one whose conditions failed still sees the syscall number.
			if got := run(prog, archX86_64, 186, arg); got != retEPERM {
				t.Errorf("gettid after a %s rule, arg %#x: filter returns %#x, want EPERM", c.op, arg, got)
			}
		}
	}
}

// The longest conditions (a MASKED_EQ with valueTwo on every argument) on a rule of many
// syscalls, so the jumps over them are as long as they get; a rule after it; and a default
// errno other than EPERM (Podman's profile refuses with ENOSYS).
func TestSeccompLongRules(t *testing.T) {
	const (
		archX86_64 = 0xc000003e
		getpid     = 39
		gettid     = 186
		retAllow   = 0x7fff0000
		retEPERM   = 0x00050001
		retENOSYS  = 0x00050026
	)
	var six []specs.LinuxSeccompArg
	for i := range 6 {
		six = append(six, specs.LinuxSeccompArg{Index: uint(i), Value: 0xff, ValueTwo: 0, Op: specs.OpMaskedEqual})
	}
	six[0].ValueTwo = 0x10
	names := append(slices.Clone(runtime.DockerSeccomp(nil).Syscalls[0].Names[:80]), "getpid")
	enosys, eperm := uint(38), uint(1)
	prog, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &enosys, Syscalls: []specs.LinuxSyscall{
		{Names: names, Action: specs.ActAllow, Args: six},
		{Names: []string{"gettid"}, Action: specs.ActErrno, ErrnoRet: &eperm},
	}})
	if err != nil {
		t.Fatal(err)
	}
	run := seccompRun(t)
	for _, c := range []struct {
		nr   uint32
		arg0 uint64
		want uint32
	}{{getpid, 0x10, retAllow}, {getpid, 0x110, retAllow}, {getpid, 0x11, retENOSYS}, {getpid, 0, retENOSYS}, {gettid, 0x10, retEPERM}, {1000, 0, retENOSYS}} {
		if got := run(prog, archX86_64, c.nr, c.arg0); got != c.want {
			t.Errorf("syscall %d, arg0 %#x: filter returns %#x, want %#x", c.nr, c.arg0, got, c.want)
		}
	}
}

// runc's -ENOSYS stub: a syscall newer than every one the profile names fails with ENOSYS
// rather than the default's errno (libc then falls back, as glibc's fchmodat does from
// fchmodat2), unless the default lets syscalls through or is ENOSYS already.
func TestSeccompNewerSyscalls(t *testing.T) {
	const (
		archX86_64 = 0xc000003e
		cachestat  = 451
		fchmodat2  = 452
		mseal      = 462
		retAllow   = 0x7fff0000
		retKill    = 0x80000000
		retEPERM   = 0x00050001
		retENOSYS  = 0x00050026
	)
	eperm, enosys := uint(1), uint(38)
	rules := []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActAllow},
		// Dropped (the default's action), but its name still counts, as in runc.
		{Names: []string{"fchmodat2"}, Action: specs.ActErrno, ErrnoRet: &eperm},
	}
	run := seccompRun(t)
	for _, c := range []struct {
		name  string
		def   specs.LinuxSeccompAction
		errno *uint
		nr    uint32
		want  uint32
	}{
		{"errno: older", specs.ActErrno, &eperm, cachestat, retEPERM},
		{"errno: named", specs.ActErrno, &eperm, fchmodat2, retEPERM},
		{"errno: newer", specs.ActErrno, &eperm, mseal, retENOSYS},
		{"kill: newer", specs.ActKillProcess, nil, mseal, retENOSYS},
		{"kill: older", specs.ActKillProcess, nil, cachestat, retKill},
		{"allow: newer", specs.ActAllow, nil, mseal, retAllow},
		{"enosys: older", specs.ActErrno, &enosys, cachestat, retENOSYS},
	} {
		prog, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: c.def, DefaultErrnoRet: c.errno, Syscalls: rules})
		if err != nil {
			t.Fatal(err)
		}
		if got := run(prog, archX86_64, c.nr, 0); got != c.want {
			t.Errorf("default %s: syscall %d: filter returns %#x, want %#x", c.name, c.nr, got, c.want)
		}
	}
}

// Which rule decides when several name one syscall: what runc gets from libseccomp, not
// simply the first rule that matches. runc drops a rule whose action is the default's;
// libseccomp lets a syscall's unconditional rule override its conditional ones wherever
// they stand; runc makes conditions on one argument separate rules, so they are ORed.
func TestSeccompRulePrecedence(t *testing.T) {
	const (
		archX86_64 = 0xc000003e
		getpid     = 39
		getppid    = 110
		gettid     = 186
		socket     = 41
		retAllow   = 0x7fff0000
		retKill    = 0x80000000
		retEPERM   = 0x00050001
		retErrno0  = 0x00050000
	)
	eperm := uint(1)
	eq := func(v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: 0, Value: v, Op: specs.OpEqualTo}
	}
	run := seccompRun(t)
	for _, c := range []struct {
		name    string
		profile specs.LinuxSeccomp
		nr      uint32
		arg0    uint64
		want    uint32
	}{
		{"a later unconditional kill overrides a conditional allow",
			specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(1)}},
				{Names: []string{"getpid"}, Action: specs.ActKillProcess},
			}}, getpid, 1, retKill},
		{"an earlier unconditional errno stays over a later conditional allow",
			specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getppid", "gettid"}, Action: specs.ActErrno, ErrnoRet: &eperm},
				{Names: []string{"getppid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(1)}},
			}}, getppid, 1, retEPERM},
		{"a rule restating the default does not shadow a later one",
			specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"gettid"}, Action: specs.ActAllow},
				{Names: []string{"gettid"}, Action: specs.ActErrno, ErrnoRet: &eperm},
			}}, gettid, 0, retEPERM},
		{"errnoRet 0: the syscall returns 0 without running",
			specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: new(uint)},
			}}, getpid, 0, retErrno0},
		{"conditional rules of other syscalls still apply",
			specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: &eperm, Syscalls: []specs.LinuxSyscall{
				{Names: []string{"getpid", "gettid"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{eq(1)}},
				{Names: []string{"getpid"}, Action: specs.ActKillProcess},
			}}, gettid, 1, retAllow},
	} {
		prog, err := runtime.SeccompProgram(&c.profile)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if got := run(prog, archX86_64, c.nr, c.arg0); got != c.want {
			t.Errorf("%s: filter returns %#x, want %#x", c.name, got, c.want)
		}
	}

	// One argument compared twice: either condition matches. Seven of them are fine.
	deny, err := runtime.SeccompProgram(&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{eq(16), eq(17), eq(40), eq(41), eq(42), eq(43), eq(44)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for arg, want := range map[uint64]uint32{16: retEPERM, 17: retEPERM, 44: retEPERM, 2: retAllow, 10: retAllow} {
		if got := run(deny, archX86_64, socket, arg); got != want {
			t.Errorf("socket(%d) with a rule on arg0 == 16, 17, 40…44: filter returns %#x, want %#x", arg, got, want)
		}
	}
}

// Docker's profile for a container with and without CAP_SYS_ADMIN: the clone and clone3
// rules that depend on it, as dockerd and runc apply them.
func TestSeccompDockerCapabilities(t *testing.T) {
	const (
		archX86_64   = 0xc000003e
		clone        = 56
		clone3       = 435
		unshare      = 272
		cloneNewUser = 0x10000000
		sigchld      = 17
		retAllow     = 0x7fff0000
		retEPERM     = 0x00050001
		retENOSYS    = 0x00050026
	)
	run := seccompRun(t)
	admin := append([]string{"CAP_SYS_ADMIN"}, testutil.DockerCaps...)
	for _, c := range []struct {
		caps     []string
		nr       uint32
		arg0     uint64
		want     uint32
		scenario string
	}{
		{testutil.DockerCaps, clone, sigchld, retAllow, "fork"},
		{testutil.DockerCaps, clone, cloneNewUser | sigchld, retEPERM, "clone(CLONE_NEWUSER)"},
		{testutil.DockerCaps, clone3, 0, retENOSYS, "clone3"},
		{testutil.DockerCaps, unshare, cloneNewUser, retEPERM, "unshare"},
		{admin, clone, cloneNewUser | sigchld, retAllow, "clone(CLONE_NEWUSER) with CAP_SYS_ADMIN"},
		{admin, clone3, 0, retAllow, "clone3 with CAP_SYS_ADMIN"},
		{admin, unshare, cloneNewUser, retAllow, "unshare with CAP_SYS_ADMIN"},
	} {
		prog, err := runtime.SeccompProgram(runtime.DockerSeccomp(c.caps))
		if err != nil {
			t.Fatal(err)
		}
		if got := run(prog, archX86_64, c.nr, c.arg0); got != c.want {
			t.Errorf("docker: %s: filter returns %#x, want %#x", c.scenario, got, c.want)
		}
	}
}
