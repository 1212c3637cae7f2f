package runtime

import (
	"errors"
	"fmt"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

var rlimitNames = map[string]int{
	"RLIMIT_AS": unix.RLIMIT_AS, "RLIMIT_CORE": unix.RLIMIT_CORE, "RLIMIT_CPU": unix.RLIMIT_CPU,
	"RLIMIT_DATA": unix.RLIMIT_DATA, "RLIMIT_FSIZE": unix.RLIMIT_FSIZE, "RLIMIT_LOCKS": unix.RLIMIT_LOCKS,
	"RLIMIT_MEMLOCK": unix.RLIMIT_MEMLOCK, "RLIMIT_MSGQUEUE": unix.RLIMIT_MSGQUEUE,
	"RLIMIT_NICE": unix.RLIMIT_NICE, "RLIMIT_NOFILE": unix.RLIMIT_NOFILE, "RLIMIT_NPROC": unix.RLIMIT_NPROC,
	"RLIMIT_RSS": unix.RLIMIT_RSS, "RLIMIT_RTPRIO": unix.RLIMIT_RTPRIO, "RLIMIT_RTTIME": unix.RLIMIT_RTTIME,
	"RLIMIT_SIGPENDING": unix.RLIMIT_SIGPENDING, "RLIMIT_STACK": unix.RLIMIT_STACK,
}

// setRlimits applies process.rlimits; it runs while the init still may raise hard limits.
func setRlimits(rls []specs.POSIXRlimit) error {
	for _, rl := range rls {
		res, ok := rlimitNames[rl.Type]
		if !ok {
			return fmt.Errorf("unknown rlimit %q in config.json", rl.Type)
		}
		soft, hard := rl.Soft, rl.Hard
		if soft > hard {
			return fmt.Errorf("config.json: %s soft limit %d is above its hard limit %d", rl.Type, soft, hard)
		}
		trace.Step("limit "+rl.Type, fmt.Sprintf("prlimit --pid $$ --%s=%d:%d", rlimitFlag(rl.Type), soft, hard))
		err := unix.Setrlimit(res, &unix.Rlimit{Cur: soft, Max: hard})
		if errors.Is(err, unix.EPERM) {
			// Raising a hard limit needs CAP_SYS_RESOURCE, which this host's root may lack:
			// run the container at the host's ceiling and say so, rather than not at all.
			var cur unix.Rlimit
			if unix.Getrlimit(res, &cur) == nil && hard > cur.Max {
				hard = cur.Max
				soft = min(soft, hard)
				fmt.Fprintf(os.Stderr, "nsrun: warning: %s %d:%d clamped to %d:%d (raising the host's hard limit needs CAP_SYS_RESOURCE)\n",
					rl.Type, rl.Soft, rl.Hard, soft, hard)
				err = unix.Setrlimit(res, &unix.Rlimit{Cur: soft, Max: hard})
			}
		}
		if err != nil {
			return fmt.Errorf("setrlimit %s: %w", rl.Type, err)
		}
	}
	return nil
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
