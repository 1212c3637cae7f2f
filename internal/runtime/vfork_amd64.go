package runtime

// canVfork says the init can be cloned sharing nsrun's memory (vfork_amd64.s).
const canVfork = true

// vforkSyscall makes a clone or clone3 system call whose flags hold CLONE_VM|CLONE_VFORK.
//
//go:noescape
func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, err uintptr)
