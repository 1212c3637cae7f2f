package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// mountFlags are the mount(8) options that are flags rather than filesystem data. A true
// clear means the option removes the flag (rw, suid, …).
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"ro": {false, unix.MS_RDONLY}, "rw": {true, unix.MS_RDONLY},
	"nosuid": {false, unix.MS_NOSUID}, "suid": {true, unix.MS_NOSUID},
	"nodev": {false, unix.MS_NODEV}, "dev": {true, unix.MS_NODEV},
	"noexec": {false, unix.MS_NOEXEC}, "exec": {true, unix.MS_NOEXEC},
	"sync": {false, unix.MS_SYNCHRONOUS}, "async": {true, unix.MS_SYNCHRONOUS},
	"noatime": {false, unix.MS_NOATIME}, "atime": {true, unix.MS_NOATIME},
	"nodiratime": {false, unix.MS_NODIRATIME}, "diratime": {true, unix.MS_NODIRATIME},
	"relatime": {false, unix.MS_RELATIME}, "norelatime": {true, unix.MS_RELATIME},
	"strictatime": {false, unix.MS_STRICTATIME}, "nostrictatime": {true, unix.MS_STRICTATIME},
	"mand": {false, unix.MS_MANDLOCK}, "nomand": {true, unix.MS_MANDLOCK},
	"bind": {false, unix.MS_BIND}, "rbind": {false, unix.MS_BIND | unix.MS_REC},
}

var propagationFlags = map[string]uintptr{
	"private": unix.MS_PRIVATE, "rprivate": unix.MS_PRIVATE | unix.MS_REC,
	"slave": unix.MS_SLAVE, "rslave": unix.MS_SLAVE | unix.MS_REC,
	"shared": unix.MS_SHARED, "rshared": unix.MS_SHARED | unix.MS_REC,
	"unbindable": unix.MS_UNBINDABLE, "runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

// parseOptions splits config.json mount options into flags, propagation changes and the
// data string handed to the filesystem.
func parseOptions(opts []string) (flags uintptr, prop []uintptr, data string) {
	var rest []string
	for _, o := range opts {
		if f, ok := mountFlags[o]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
		} else if p, ok := propagationFlags[o]; ok {
			prop = append(prop, p)
		} else {
			rest = append(rest, o)
		}
	}
	return flags, prop, strings.Join(rest, ",")
}

// mountOne mounts one config.json entry inside rootfs.
// cgroupNS says the container has its own cgroup namespace (a cgroup mount then shows
// only the container's cgroup).
func mountOne(rootfs, bundle string, m specs.Mount, cgroupNS bool) error {
	flags, prop, data := parseOptions(m.Options)
	typ, src := m.Type, m.Source
	bind := typ == "bind" || flags&unix.MS_BIND != 0
	if bind {
		flags |= unix.MS_BIND
		typ = ""
		if !filepath.IsAbs(src) {
			src = filepath.Join(bundle, src)
		}
	}
	if m.Type == "proc" || m.Type == "sysfs" {
		// A symlinked /proc or /sys would let the image point the mount anywhere
		// (CVE-2019-19921).
		if st, err := os.Lstat(filepath.Join(rootfs, m.Destination)); err == nil && !st.IsDir() {
			return fmt.Errorf("%s must be mounted on an ordinary directory, and %s is not one", m.Type, m.Destination)
		}
	}
	dest, err := securePath(rootfs, m.Destination)
	if err != nil {
		return err
	}
	isFile := false
	if bind {
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("bind mount source %s: %w", src, errors.Unwrap(err))
		}
		isFile = !st.IsDir()
	}
	if err := makeMountpoint(dest, isFile); err != nil {
		return fmt.Errorf("mount point %s: %w", m.Destination, err)
	}
	switch typ {
	case "cgroup":
		return mountCgroups(rootfs, dest, flags, m.Options, cgroupNS)
	case "cgroup2":
		// Asked for by name: still only the container's own cgroup, never the host's tree.
		return mountCgroup2(rootfs, dest, flags, m.Options, cgroupNS)
	}
	err = mountAt(rootfs, dest, src, typ, flags, prop, data, mountCmd(typ, src, dest, m.Options))
	if typ == "sysfs" && errors.Is(err, unix.EPERM) {
		// In a user namespace sysfs can be mounted only with a network namespace of that
		// user namespace; with a joined one, bind the host's /sys read-only, as runc does.
		trace.Step("sysfs needs a network namespace of our user namespace: bind the host's /sys instead")
		err = mountAt(rootfs, dest, "/sys", "", unix.MS_BIND|unix.MS_REC, nil, "", mountCmd("bind", "/sys", dest, []string{"rbind"}))
		if err == nil {
			err = unix.Mount("", dest, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}
	}
	return err
}

// mountAt mounts onto dest through an O_PATH fd checked to lie inside rootfs, so a symlink
// swapped in since securePath looked cannot redirect the mount (the approach runc takes).
func mountAt(rootfs, dest, src, typ string, flags uintptr, prop []uintptr, data, equivalent string) error {
	fd, err := unix.Open(dest, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open mount point %s: %w", dest, err)
	}
	defer unix.Close(fd)
	target := "/proc/self/fd/" + strconv.Itoa(fd)
	real, err := os.Readlink(target)
	if err != nil {
		return err
	}
	if real != rootfs && !strings.HasPrefix(real, rootfs+"/") {
		return fmt.Errorf("mount point %s resolves to %s, outside the rootfs", dest, real)
	}
	trace.Step("mount "+strings.TrimPrefix(dest, rootfs), equivalent)
	first := flags
	if flags&unix.MS_BIND != 0 {
		first = flags & (unix.MS_BIND | unix.MS_REC) // a bind ignores the other flags
	}
	if err := unix.Mount(src, target, typ, first, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", src, dest, err)
	}
	if flags&unix.MS_BIND != 0 && flags&^(unix.MS_BIND|unix.MS_REC) != 0 {
		rflags := unix.MS_BIND | unix.MS_REMOUNT | flags&^(unix.MS_BIND|unix.MS_REC)
		// The fd still names the covered dir: address the new mount by its path.
		if err := unix.Mount("", dest, "", rflags, ""); err != nil {
			return fmt.Errorf("remount %s: %w", dest, err)
		}
	}
	for _, p := range prop {
		if err := unix.Mount("", dest, "", p, ""); err != nil {
			return fmt.Errorf("set propagation of %s: %w", dest, err)
		}
	}
	return nil
}

func mountCmd(typ, src, dest string, opts []string) string {
	args := []string{"mount"}
	if typ == "" {
		args = append(args, "--bind")
	} else {
		args = append(args, "-t", typ)
	}
	if len(opts) > 0 {
		args = append(args, "-o", strings.Join(opts, ","))
	}
	return trace.Cmd(append(args, src, dest)...)
}

// securePath resolves dest inside rootfs the way the container will see it: symlinks are
// followed with absolute targets taken from rootfs, and a path that climbs out of rootfs
// through ".." is refused. Components that do not exist yet are kept as they are.
func securePath(rootfs, dest string) (string, error) {
	rest := strings.Split(filepath.Clean("/"+dest), "/")
	cur := "" // resolved so far, relative to rootfs
	for links := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return "", fmt.Errorf("mount destination %s escapes the rootfs through a symlink", dest)
			}
			cur = filepath.Dir(cur)
			if cur == "." {
				cur = ""
			}
			continue
		}
		next := filepath.Join(cur, c)
		st, err := os.Lstat(filepath.Join(rootfs, next))
		if err != nil || st.Mode()&os.ModeSymlink == 0 {
			cur = next
			continue
		}
		if links++; links > 40 {
			return "", fmt.Errorf("mount destination %s: too many symlinks", dest)
		}
		target, err := os.Readlink(filepath.Join(rootfs, next))
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(target) {
			cur = ""
		}
		rest = append(strings.Split(target, "/"), rest...)
	}
	return filepath.Join(rootfs, cur), nil
}

// makeMountpoint creates a missing mount point: a dir, or an empty file for a file bind.
func makeMountpoint(dest string, isFile bool) error {
	if _, err := os.Lstat(dest); err == nil {
		return nil
	}
	if !isFile {
		return os.MkdirAll(dest, 0o755)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	return f.Close()
}

// The device nodes every container gets (the OCI runtime spec's default devices).
var defaultDevices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// setupDev fills the container's fresh /dev tmpfs with the default nodes and links.
func setupDev(rootfs string) error {
	dev := filepath.Join(rootfs, "dev")
	for _, d := range defaultDevices {
		p := filepath.Join(dev, d.name)
		trace.Step("create /dev/"+d.name, fmt.Sprintf("mknod -m 666 %s c %d %d", p, d.major, d.minor))
		err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(d.major, d.minor)))
		if err == nil {
			err = unix.Chmod(p, 0o666) // umask trimmed the mode
		}
		if err != nil {
			// Where mknod is not allowed, bind the host's node instead.
			if err := makeMountpoint(p, true); err != nil {
				return err
			}
			if err := mountAt(rootfs, p, "/dev/"+d.name, "", unix.MS_BIND, nil, "", "mount --bind /dev/"+d.name+" "+p); err != nil {
				return err
			}
		}
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	for _, l := range links {
		p := filepath.Join(dev, l[1])
		trace.Step("link /dev/"+l[1], trace.Cmd("ln", "-s", l[0], p))
		if err := os.Symlink(l[0], p); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	return nil
}

// readonlyPath makes p (a path inside the container, after pivot_root) read-only.
func readonlyPath(p string) error {
	if _, err := os.Lstat(p); err != nil {
		return nil // nothing to protect
	}
	trace.Step("make "+p+" read-only", trace.Cmd("mount", "--bind", "-o", "ro", p, p))
	if err := unix.Mount(p, p, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", p, err)
	}
	var st unix.Statfs_t
	keep := uintptr(0)
	if unix.Statfs(p, &st) == nil {
		keep = uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	}
	if err := unix.Mount("", p, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC|keep, ""); err != nil {
		return fmt.Errorf("remount %s read-only: %w", p, err)
	}
	return nil
}

// maskPath hides p: /dev/null over a file, an empty read-only tmpfs over a dir.
func maskPath(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return nil
	}
	if st.IsDir() {
		trace.Step("mask "+p, trace.Cmd("mount", "-t", "tmpfs", "-o", "ro", "tmpfs", p))
		if err := unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("mask %s: %w", p, err)
		}
		return nil
	}
	trace.Step("mask "+p, trace.Cmd("mount", "--bind", "/dev/null", p))
	if err := unix.Mount("/dev/null", p, "", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("mask %s: %w", p, err)
	}
	return nil
}
