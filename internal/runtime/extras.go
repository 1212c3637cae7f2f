package runtime

import (
	"fmt"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// devices makes the extra device nodes of linux.devices (docker run --device) in the
// container's /dev, before pivot_root; a node that cannot be made is an error.
func (p *prog) devices(devs []specs.LinuxDevice) {
	for _, d := range devs {
		rel := filepath.Clean("/" + d.Path)
		mode := uint32(0o666)
		if d.FileMode != nil {
			mode = uint32(d.FileMode.Perm())
		}
		kind := map[string]uint32{"c": unix.S_IFCHR, "u": unix.S_IFCHR, "b": unix.S_IFBLK, "p": unix.S_IFIFO}[d.Type]
		p.narrate("create the device "+d.Path+" that config.json asks for",
			fmt.Sprintf("mknod -m %o %s %s %d %d", mode, filepath.Join(p.root, rel), d.Type, d.Major, d.Minor))
		p.failing("create the dirs of device %s", d.Path)
		p.mkdirInRoot(filepath.Dir(rel), false)
		p.openInRoot(filepath.Dir(rel), unix.O_PATH|unix.O_DIRECTORY, resolve, p.fdTarget)
		name := p.str(filepath.Base(rel))
		p.failing("cannot create device %s (%s %d:%d)", d.Path, d.Type, d.Major, d.Minor)
		p.sys(unix.SYS_MKNODAT, uintptr(p.fdTarget), name, uintptr(kind|mode), uintptr(unix.Mkdev(uint32(d.Major), uint32(d.Minor))))
		p.failing("chmod device %s", d.Path)
		p.sys(unix.SYS_FCHMODAT, uintptr(p.fdTarget), name, uintptr(mode), 0) // the umask trimmed it
		uid, gid := ^uint32(0), ^uint32(0)
		if d.UID != nil {
			uid = *d.UID
		}
		if d.GID != nil {
			gid = *d.GID
		}
		p.failing("chown device %s", d.Path)
		p.sys(unix.SYS_FCHOWNAT, uintptr(p.fdTarget), name, uintptr(uid), uintptr(gid), unix.AT_SYMLINK_NOFOLLOW)
	}
}

// sysctls writes linux.sysctl through the container's own /proc/sys, after pivot_root and
// before /proc/sys is made read-only: checkSpec let through only the namespaced ones, so
// they change the container's namespaces, never the host.
func (p *prog) sysctls(sysctl map[string]string) {
	keys := make([]string, 0, len(sysctl))
	for k := range sysctl {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		p.narrate("set the namespaced sysctl "+k, trace.Cmd("sysctl", "-w", k+"="+sysctl[k]))
		p.failing("sysctl %s=%s", k, sysctl[k])
		p.writeFile("/proc/sys/"+strings.ReplaceAll(k, ".", "/"), sysctl[k])
	}
}

// oomScoreAdj applies process.oomScoreAdj; lowering it below the parent's needs
// CAP_SYS_RESOURCE, which is an error rather than a silent no-op.
func (p *prog) oomScoreAdj(adj *int) {
	if adj == nil {
		return
	}
	p.narrate("set the OOM killer's score adjustment", fmt.Sprintf("echo %d > /proc/self/oom_score_adj", *adj))
	p.failing("oom_score_adj %d", *adj)
	p.writeFile("/proc/self/oom_score_adj", strconv.Itoa(*adj))
}
