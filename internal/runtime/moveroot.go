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
func moveRoot(rootfs string) error {
	mounts, err := hostKernelFSMounts(rootfs)
	if err != nil {
		return err
	}
	for _, m := range mounts {
		trace.Step("detach the host's "+m+": the old root stays below the chroot, this must not", trace.Cmd("umount", "-l", m))
		if err := unix.Unmount(m, unix.MNT_DETACH); err != nil {
			// A mount we may not detach (locked in a user namespace) gets an empty cover.
			trace.Step("could not detach "+m+": cover it with an empty read-only tmpfs", trace.Cmd("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", m))
			if err := unix.Mount("tmpfs", m, "tmpfs", unix.MS_RDONLY, "size=0"); err != nil {
				return fmt.Errorf("hide the host's %s: %w", m, err)
			}
		}
	}
	trace.Step("move the rootfs mount over / (pivot_root's older, weaker cousin)",
		"cd "+trace.Quote(rootfs)+" && mount --move . /")
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.Mount(rootfs, "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move %s to /: %w", rootfs, err)
	}
	trace.Step("chroot into it: / now resolves to the rootfs for this process and its children", "chroot .")
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot: %w", err)
	}
	return unix.Chdir("/")
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
