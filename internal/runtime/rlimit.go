package runtime

import (
	"fmt"
	"strconv"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// rlimits applies process.rlimits; they run while the init still may raise hard limits.
// Where the host refuses to raise a hard limit (root without CAP_SYS_RESOURCE), the
// child runs at the host's ceiling and the parent says so (kRlimit), rather than failing.
func (p *prog) rlimits(rls []specs.POSIXRlimit) error {
	for _, rl := range rls {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q in config.json", rl.Type)
		}
		soft, hard := rl.Soft, rl.Hard
		if soft > hard {
			return fmt.Errorf("config.json: %s soft limit %d is above its hard limit %d", rl.Type, soft, hard)
		}
		p.narrate("limit "+rl.Type, fmt.Sprintf("prlimit --pid $$ --%s=%d:%d", rlimitFlag(rl.Type), soft, hard))
		p.failing("setrlimit %s", rl.Type)
		p.emit(op{kind: kRlimit, a: [6]uintptr{uintptr(res)}, p: unsafe.Pointer(&unix.Rlimit{Cur: soft, Max: hard})})
	}
	return nil
}

// rlimitName is the config.json name of a resource.
func rlimitName(res int) string {
	for k, v := range rlimitNames {
		if v == res {
			return k
		}
	}
	return strconv.Itoa(res)
}

// rlimitFlag names the prlimit(1) option for a limit.
func rlimitFlag(t string) string {
	switch t {
	case "RLIMIT_NOFILE":
		return "nofile"
	case "RLIMIT_NPROC":
		return "nproc"
	case "RLIMIT_CORE":
		return "core"
	case "RLIMIT_STACK":
		return "stack"
	}
	return t
}
