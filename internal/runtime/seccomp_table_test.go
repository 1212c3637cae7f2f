package runtime

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/bundle"
)

// The table is searched by halves: out of order, a name would not be found and its rule
// would be dropped without a word.
func TestSeccompSyscallTable(t *testing.T) {
	seen := map[uint16]string{}
	for i, e := range x86_64Syscalls {
		if i > 0 && x86_64Syscalls[i-1].name >= e.name {
			t.Errorf("%q comes after %q: the table must be sorted by name", e.name, x86_64Syscalls[i-1].name)
		}
		if other, ok := seen[e.nr]; ok {
			t.Errorf("%s and %s are both %d", other, e.name, e.nr)
		}
		seen[e.nr] = e.name
		if e.nr >= scNrLimit {
			t.Errorf("%s is %d: raise scNrLimit above it", e.name, e.nr)
		}
	}
	for name, want := range map[string]int{
		"_sysctl": unix.SYS__SYSCTL, "socket": unix.SYS_SOCKET, "execve": unix.SYS_EXECVE,
		"personality": unix.SYS_PERSONALITY, "unshare": unix.SYS_UNSHARE, "uprobe": unix.SYS_UPROBE,
		"clone3": unix.SYS_CLONE3, "close_range": unix.SYS_CLOSE_RANGE, "file_setattr": unix.SYS_FILE_SETATTR,
		"listns": unix.SYS_LISTNS, "rseq_slice_yield": unix.SYS_RSEQ_SLICE_YIELD, "write": unix.SYS_WRITE,
	} {
		if nr, ok := syscallNumber(name); !ok || nr != uint32(want) {
			t.Errorf("syscallNumber(%q) = %d, %v; want %d", name, nr, ok, want)
		}
	}
	if _, ok := syscallNumber("chown32"); ok {
		t.Error("chown32 (i386 only) is in the x86_64 table")
	}
}

// Every syscall of the table through Docker's profile (x86_64, default capabilities): the
// allowlist, over 255 syscalls, takes two chunks of short jumps; each allowed one must come
// out ALLOW and every other one EPERM (clone3, and those newer than the profile, ENOSYS).
func TestSeccompDockerEverySyscall(t *testing.T) {
	prog, err := SeccompProgram(DockerSeccomp(bundle.DefaultCaps))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := bpf.Assemble(prog)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := bpf.Disassemble(raw) // what the kernel gets, read back
	vm, err := bpf.NewVM(back)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{}
	for _, n := range dockerAllowed {
		allowed[n] = true
	}
	for _, c := range bundle.DefaultCaps {
		for _, n := range dockerByCap[c] {
			allowed[n] = true // chroot: CAP_SYS_CHROOT is one of Docker's
		}
	}
	// What runc gives a syscall newer than the profile: ENOSYS, so libc falls back.
	newest := uint16(0)
	for _, e := range x86_64Syscalls {
		if allowed[e.name] || e.name == "clone3" {
			newest = max(newest, e.nr)
		}
	}
	if newest != 449 {
		t.Errorf("the newest syscall Docker's profile names is %d, want futex_waitv's 449", newest)
	}
	n := 0
	for _, e := range x86_64Syscalls {
		data := make([]byte, 64) // seccomp_data, in the VM's byte order; every argument 0
		binary.BigEndian.PutUint32(data[0:], uint32(e.nr))
		binary.BigEndian.PutUint32(data[4:], unix.AUDIT_ARCH_X86_64)
		got, err := vm.Run(data)
		if err != nil {
			t.Fatal(err)
		}
		want := unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
		switch {
		case allowed[e.name], e.name == "socket", e.name == "personality", e.name == "clone":
			want, n = unix.SECCOMP_RET_ALLOW, n+1 // with 0 as argument: AF_UNSPEC, PER_LINUX, no flags
		case e.name == "clone3", e.nr > newest:
			want = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
		}
		if uint32(got) != want {
			t.Errorf("%s (%d): filter returns %#x, want %#x", e.name, e.nr, got, want)
		}
	}
	if n < 256 {
		t.Errorf("only %d syscalls allowed: the allowlist no longer spans two chunks", n)
	}
}
