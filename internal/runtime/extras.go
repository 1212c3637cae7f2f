package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// createDevices makes the extra device nodes of linux.devices (docker run --device) in the
// container's /dev, before pivot_root; a node that cannot be made is an error.
func createDevices(rootfs string, devs []specs.LinuxDevice) error {
	for _, d := range devs {
		p, err := securePath(rootfs, d.Path)
		if err != nil {
			return err
		}
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(d.FileMode.Perm())
		}
		kind := map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO}[d.Type]
		trace.Step("create the device "+d.Path+" that config.json asks for",
			fmt.Sprintf("mknod -m %o %s %s %d %d", mode, p, d.Type, d.Major, d.Minor))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := unix.Mknod(p, kind|mode, int(unix.Mkdev(uint32(d.Major), uint32(d.Minor)))); err != nil {
			return fmt.Errorf("cannot create device %s (%s %d:%d): %w", d.Path, d.Type, d.Major, d.Minor, err)
		}
		if err := unix.Chmod(p, mode); err != nil { // the umask trimmed it
			return err
		}
		uid, gid := -1, -1
		if d.UID != nil {
			uid = int(*d.UID)
		}
		if d.GID != nil {
			gid = int(*d.GID)
		}
		if err := unix.Lchown(p, uid, gid); err != nil {
			return fmt.Errorf("chown device %s: %w", d.Path, err)
		}
	}
	return nil
}

// applySysctls writes linux.sysctl through the container's own /proc/sys, after pivot_root
// and before /proc/sys is made read-only: checkSpec let through only the namespaced ones, so
// they change the container's namespaces, never the host.
func applySysctls(sysctl map[string]string) error {
	keys := make([]string, 0, len(sysctl))
	for k := range sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p := "/proc/sys/" + strings.ReplaceAll(k, ".", "/")
		trace.Step("set the namespaced sysctl "+k, trace.Cmd("sysctl", "-w", k+"="+sysctl[k]))
		if err := os.WriteFile(p, []byte(sysctl[k]), 0); err != nil {
			return fmt.Errorf("sysctl %s=%s: %w", k, sysctl[k], err)
		}
	}
	return nil
}

// setOOMScoreAdj applies process.oomScoreAdj; lowering it below the parent's needs
// CAP_SYS_RESOURCE, which is an error rather than a silent no-op.
func setOOMScoreAdj(adj *int) error {
	if adj == nil {
		return nil
	}
	trace.Step("set the OOM killer's score adjustment", fmt.Sprintf("echo %d > /proc/self/oom_score_adj", *adj))
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(*adj)), 0); err != nil {
		return fmt.Errorf("oom_score_adj %d: %w", *adj, err)
	}
	return nil
}
