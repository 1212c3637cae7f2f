package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
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

// mount mounts one config.json entry inside the rootfs. cgroupNS says the container has
// its own cgroup namespace; cg is what its cgroups are (cgroupfs.go).
func (p *prog) mount(bundle string, m specs.Mount, cgroupNS bool, cg *cgroupView) error {
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
	res := uint64(resolve)
	if m.Type == "proc" || m.Type == "sysfs" {
		// A symlinked /proc or /sys would let the image point the mount anywhere
		// (CVE-2019-19921); the child's lookup refuses any symlink on the way as well.
		if st, err := os.Lstat(filepath.Join(p.root, m.Destination)); err == nil && !st.IsDir() {
			return fmt.Errorf("%s must be mounted on an ordinary directory, and %s is not one", m.Type, m.Destination)
		}
		res |= unix.RESOLVE_NO_SYMLINKS
	}
	isFile := false
	if bind {
		st, err := os.Stat(src)
		if err != nil {
			return fmt.Errorf("bind mount source %s: %w", src, errors.Unwrap(err))
		}
		isFile = !st.IsDir()
	}
	rel := filepath.Clean("/" + m.Destination)
	under := p.underMount(rel)
	if !under {
		dest, err := securePath(p.root, m.Destination)
		if err != nil {
			return err
		}
		rel = "/" + strings.TrimPrefix(strings.TrimPrefix(dest, p.root), "/")
		// A symlink may lead below such a mount too (/var/run -> /run, a tmpfs).
		if under = p.underMount(rel); !under {
			if err := makeMountpoint(dest, isFile); err != nil {
				return fmt.Errorf("mount point %s: %w", m.Destination, err)
			}
		}
	}
	if under {
		// Below a mount of the container's own (its /dev tmpfs): only the child sees it.
		p.failing("mount point %s", m.Destination)
		p.mkdirInRoot(rel, isFile)
	}
	p.mounted = append(p.mounted, rel)
	switch typ {
	case "cgroup":
		return p.cgroups(rel, flags, m.Options, cgroupNS, cg)
	case "cgroup2":
		// Asked for by name: still only the container's own cgroup, never the host's tree.
		return p.cgroup2(rel, flags, m.Options, cgroupNS, cg)
	}
	i := p.mountAt(rel, src, typ, flags, prop, data, mountCmd(typ, src, filepath.Join(p.root, rel), m.Options), res)
	if typ == "sysfs" {
		// In a user namespace sysfs can be mounted only with a network namespace of that
		// user namespace; with a joined one, bind the host's /sys read-only, as runc does.
		p.onErr(i, uintptr(unix.EPERM))
		j := p.jump()
		p.jumpHere(i)
		p.narrate("sysfs needs a network namespace of our user namespace: bind the host's /sys instead")
		p.mountAt(rel, "/sys", "", unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, nil, "",
			mountCmd("bind", "/sys", filepath.Join(p.root, rel), []string{"rbind", "ro"}), res)
		p.jumpHere(j)
	}
	return nil
}

// underMount says rel lies on or below a mount the container already has.
func (p *prog) underMount(rel string) bool {
	for _, m := range p.mounted {
		if rel == m || m == "/" || strings.HasPrefix(rel, m+"/") {
			return true
		}
	}
	return false
}

// mountAt mounts onto rel through an fd the child opens inside the rootfs, symlinks
// resolved as the container sees them and never outside it, so a symlink swapped in
// since the compiler looked cannot redirect the mount (runc's approach). It returns the
// index of the mount op, for a caller that handles its failure.
func (p *prog) mountAt(rel, src, typ string, flags uintptr, prop []uintptr, data, equivalent string, res uint64) int {
	p.narrate("mount "+rel, equivalent)
	p.failing("open mount point %s", rel)
	p.openInRoot(rel, unix.O_PATH, res, p.fdTarget)
	target := p.procFd(p.fdTarget)
	first := flags
	if flags&unix.MS_BIND != 0 {
		first = flags & (unix.MS_BIND | unix.MS_REC) // a bind ignores the other flags
	}
	p.failing("mount %s on %s", src, rel)
	i := p.sys(unix.SYS_MOUNT, p.str(src), target, p.str(typ), first, p.str(data))
	extra := flags&unix.MS_BIND != 0 && flags&^(unix.MS_BIND|unix.MS_REC) != 0
	if extra || len(prop) > 0 {
		// The fd still names the covered dir: open the new mount's root.
		p.failing("open mount point %s", rel)
		p.openInRoot(rel, unix.O_PATH, res, p.fdTarget)
	}
	if extra {
		p.failing("remount %s", rel)
		p.sys(unix.SYS_MOUNT, p.empty, target, p.empty, unix.MS_BIND|unix.MS_REMOUNT|flags&^(unix.MS_BIND|unix.MS_REC), p.empty)
	}
	for _, pr := range prop {
		p.failing("set propagation of %s", rel)
		p.sys(unix.SYS_MOUNT, p.empty, target, p.empty, pr, p.empty)
	}
	return i
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

// dev fills the container's fresh /dev tmpfs with the default nodes and links.
func (p *prog) dev() {
	for _, d := range defaultDevices {
		p.narrate("create /dev/"+d.name, fmt.Sprintf("mknod -m 666 %s c %d %d", filepath.Join(p.root, "dev", d.name), d.major, d.minor))
		p.failing("open the container's /dev")
		p.openInRoot("dev", unix.O_PATH|unix.O_DIRECTORY, resolve, p.fdTarget)
		name := p.str(d.name)
		p.failing("create /dev/%s", d.name)
		i := p.sys(unix.SYS_MKNODAT, uintptr(p.fdTarget), name, unix.S_IFCHR|0o666, uintptr(unix.Mkdev(d.major, d.minor)))
		p.onErr(i, anyErr)
		p.sys(unix.SYS_FCHMODAT, uintptr(p.fdTarget), name, 0o666, 0) // umask trimmed the mode
		j := p.jump()
		// Where mknod is not allowed (a user namespace), bind the host's node instead.
		p.jumpHere(i)
		p.mkdirInRoot("dev/"+d.name, true)
		p.mountAt("/dev/"+d.name, "/dev/"+d.name, "", unix.MS_BIND, nil, "", "mount --bind /dev/"+d.name+" "+filepath.Join(p.root, "dev", d.name), resolve)
		p.jumpHere(j)
	}
	links := [][2]string{
		{"/proc/self/fd", "fd"}, {"/proc/self/fd/0", "stdin"}, {"/proc/self/fd/1", "stdout"},
		{"/proc/self/fd/2", "stderr"}, {"pts/ptmx", "ptmx"},
	}
	p.failing("open the container's /dev")
	p.openInRoot("dev", unix.O_PATH|unix.O_DIRECTORY, resolve, p.fdTarget)
	for _, l := range links {
		p.narrate("link /dev/"+l[1], trace.Cmd("ln", "-s", l[0], filepath.Join(p.root, "dev", l[1])))
		p.failing("link /dev/%s", l[1])
		p.okOn(p.sys(unix.SYS_SYMLINKAT, p.str(l[0]), uintptr(p.fdTarget), p.str(l[1])), uintptr(unix.EEXIST))
	}
}

// readonly makes path (inside the container, after pivot_root) read-only, keeping its
// nosuid, nodev and noexec; a path that does not exist has nothing to protect.
func (p *prog) readonly(path string) {
	p.narrate("make "+path+" read-only", trace.Cmd("mount", "--bind", "-o", "ro", path, path))
	p.failing("bind %s", path)
	s := p.str(path)
	i := p.sys(unix.SYS_MOUNT, s, s, p.empty, unix.MS_BIND|unix.MS_REC, p.empty)
	p.onErr(i, uintptr(unix.ENOENT))
	p.failing("remount %s read-only", path)
	p.emit(op{kind: kKeepFlags, a: [6]uintptr{s, unix.MS_BIND | unix.MS_REMOUNT | unix.MS_RDONLY | unix.MS_REC, p.empty}})
	p.jumpHere(i)
}

// mask hides path: /dev/null over a file, an empty read-only tmpfs over a dir (the bind
// of a file onto a dir fails with ENOTDIR); a path that does not exist stays so.
func (p *prog) mask(path string) {
	p.narrate("mask "+path, trace.Cmd("mount", "--bind", "/dev/null", path), " # a dir: mount -t tmpfs -o ro tmpfs "+trace.Quote(path))
	p.failing("mask %s", path)
	s := p.str(path)
	i := p.okOn(p.sys(unix.SYS_MOUNT, p.str("/dev/null"), s, p.empty, unix.MS_BIND, p.empty), uintptr(unix.ENOENT))
	p.onErr(i, uintptr(unix.ENOTDIR))
	j := p.jump()
	p.jumpHere(i)
	p.sys(unix.SYS_MOUNT, p.str("tmpfs"), s, p.str("tmpfs"), unix.MS_RDONLY, p.empty)
	p.jumpHere(j)
}
