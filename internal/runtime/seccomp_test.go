package runtime_test

import (
	"encoding/binary"
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

func TestSeccompUnsupportedIsAnError(t *testing.T) {
	for name, sc := range map[string]*specs.LinuxSeccomp{
		"action":   {DefaultAction: "SCMP_ACT_NOTIFY"},
		"listener": {DefaultAction: specs.ActAllow, ListenerPath: "/run/x.sock"},
		"masked":   {DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"clone"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 3, ValueTwo: 1, Op: specs.OpMaskedEqual}}}}},
		"arch":     {DefaultAction: specs.ActAllow, Architectures: []specs.Arch{specs.ArchAARCH64}},
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
	)
	run := func(prog []bpf.Instruction, arch, nr uint32) uint32 {
		vm, err := bpf.NewVM(prog)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, 64) // struct seccomp_data, in the VM's (network) byte order
		binary.BigEndian.PutUint32(data[0:], nr)
		binary.BigEndian.PutUint32(data[4:], arch)
		ret, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(ret)
	}
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
	} {
		if got := run(c.prog, c.arch, c.nr); got != c.want {
			t.Errorf("%s: filter returns %#x, want %#x", c.name, got, c.want)
		}
	}
}
