package runtime

import (
	"testing"

	"golang.org/x/sys/unix"
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
