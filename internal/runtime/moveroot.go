package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// moveRoot is the root switch for where pivot_root cannot work (runc --no-pivot): move the
// rootfs mount over / and chroot into it. Unlike pivot_root it leaves the old root mounted
// underneath, reachable to a process that escapes the chroot, so first the host's proc and
// sysfs mounts, the most dangerous things there, are detached or covered.
func (p *prog) moveRoot() error {
	mounts, err := hostKernelFSMounts(p.root)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		p.narrate("detach the host's "+m+": the old root stays below the chroot, this must not", trace.Cmd("umount", "-l", m))
		p.failing("hide the host's %s", m)
		i := p.sys(unix.SYS_UMOUNT2, p.str(m), unix.MNT_DETACH)
		p.onErr(i, anyErr)
		j := p.jump()
		// A mount we may not detach (locked in a user namespace) gets an empty cover.
		p.jumpHere(i)
		p.narrate("could not detach "+m+": cover it with an empty read-only tmpfs", trace.Cmd("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", m))
		p.sys(unix.SYS_MOUNT, p.str("tmpfs"), p.str(m), p.str("tmpfs"), unix.MS_RDONLY, p.str("size=0"))
		p.jumpHere(j)
	}
	p.narrate("move the rootfs mount over / (pivot_root's older, weaker cousin)",
		"cd "+trace.Quote(p.root)+" && mount --move . /")
	p.failing("chdir %s", p.root)
	p.sys(unix.SYS_CHDIR, p.str(p.root))
	p.failing("move %s to /", p.root)
	p.sys(unix.SYS_MOUNT, p.str(p.root), p.str("/"), p.empty, unix.MS_MOVE, p.empty)
	p.narrate("chroot into it: / now resolves to the rootfs for this process and its children", "chroot .")
	p.failing("chroot")
	p.sys(unix.SYS_CHROOT, p.str("."))
	p.sys(unix.SYS_CHDIR, p.str("/"))
	return nil
}

// hostKernelFSMounts lists the proc and sysfs mounts outside rootfs, deepest first.
func hostKernelFSMounts(rootfs string) ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && i > 4 {
				mp := unescapeMount(fields[4])
				inside := mp == rootfs || strings.HasPrefix(mp, rootfs+"/")
				if (fields[i+1] == "proc" || fields[i+1] == "sysfs") && !inside {
					out = append(out, mp)
				}
				break
			}
		}
	}
	// Children before parents: /proc/sys/fs/binfmt_misc before /proc.
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return filepath.Clean(s)
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return filepath.Clean(b.String())
}
