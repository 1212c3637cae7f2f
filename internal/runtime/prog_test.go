package runtime

import (
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The loop's control flow, on harmless system calls in this process: an accepted errno goes
// on, onErr jumps (anyErr: for any errno), a failure stops at its op with its errno, and a
// saved result reaches a later op's argument.
func TestMachineControlFlow(t *testing.T) {
	bad := ^uintptr(0) // fd -1: close fails with EBADF
	m := &machine{ops: []op{
		{kind: kSys, nr: unix.SYS_CLOSE, a: [6]uintptr{bad}, okErr: uintptr(unix.EBADF), save: -1},           // 0: accepted
		{kind: kSys, nr: unix.SYS_CLOSE, a: [6]uintptr{bad}, onErr: anyErr, jump: 3, save: -1},               // 1: jumps
		{kind: kSys, nr: unix.SYS_CLOSE, a: [6]uintptr{bad}, save: -1},                                       // 2: skipped
		{kind: kSys, nr: unix.SYS_GETPID, save: 2},                                                           // 3: pid into slot 2
		{kind: kSys, nr: unix.SYS_KILL, a: [6]uintptr{2, 0}, slotArgs: 1, save: -1},                          // 4: kill(pid, 0)
		{kind: kSys, nr: unix.SYS_CLOSE, a: [6]uintptr{bad}, onErr: uintptr(unix.ENOENT), jump: 0, save: -1}, // 5: fails
	}}
	at, ev, val := m.run(0)
	if at != 5 || ev != evFail || syscall.Errno(val) != unix.EBADF {
		t.Fatalf("run = op %d, event %d, errno %v; want op 5 failing with EBADF", at, ev, syscall.Errno(val))
	}
	if m.slots[2] != uintptr(os.Getpid()) {
		t.Errorf("slot 2 = %d, want the pid %d", m.slots[2], os.Getpid())
	}
}

// kAlive stops the child quietly once nobody holds the pipe's write end (nsrun died).
func TestMachineAlive(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	m := &machine{ops: []op{{kind: kAlive, a: [6]uintptr{r.Fd()}, save: -1}}}
	if at, ev, _ := m.run(0); at != 1 || ev != evFail {
		t.Fatalf("with a writer: stopped at op %d, event %d; want to run past the op", at, ev)
	}
	w.Close()
	if at, ev, _ := m.run(0); at != 0 || ev != evQuit {
		t.Fatalf("without a writer: op %d, event %d; want to quit at op 0", at, ev)
	}
}
