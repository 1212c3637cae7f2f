//go:build !amd64

package runtime

// canVfork: elsewhere the init is cloned as a plain fork (copied memory).
const canVfork = false

func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, err uintptr) {
	panic("vforkSyscall on " + "this architecture")
}
