#include "textflag.h"

// func vforkSyscall(trap, a1, a2, a3 uintptr) (r1, err uintptr)
//
// A clone with CLONE_VM|CLONE_VFORK: the child runs on this very stack until it execs,
// and the parent resumes only then. The return address is held in a register across the
// system call, because the child's later calls overwrite the stack slot it was in before
// the parent gets to return through it.
TEXT ·vforkSyscall(SB),NOSPLIT|NOFRAME,$0-48
	MOVQ	trap+0(FP), AX
	MOVQ	a1+8(FP), DI
	MOVQ	a2+16(FP), SI
	MOVQ	a3+24(FP), DX
	XORQ	R10, R10
	XORQ	R8, R8
	XORQ	R9, R9
	POPQ	R12
	SYSCALL
	PUSHQ	R12
	CMPQ	AX, $0xfffffffffffff001
	JCC	failed
	MOVQ	AX, r1+32(FP)
	MOVQ	$0, err+40(FP)
	RET
failed:
	NEGQ	AX
	MOVQ	$-1, r1+32(FP)
	MOVQ	AX, err+40(FP)
	RET
