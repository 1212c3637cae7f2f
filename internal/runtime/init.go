package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/trace"
)

// initArg is the hidden first argument that turns the nsrun binary into the container's
// init. Go cannot run code between fork and exec, so the in-namespace work happens in a
// fresh copy of the binary, as runc does with `runc init`.
const initArg = "__nsrun_init__"

// noPivotArg after the bundle asks the init for moveRoot instead of pivotRoot.
const noPivotArg = "--no-pivot"

// MaybeInit runs the container's init when this process is one, and never returns then. It
// must be called first thing in main.
func MaybeInit() {
	maybeJoiner()
	if len(os.Args) < 3 || os.Args[1] != initArg {
		return
	}
	// Capabilities and credentials are per thread: set them on the thread that execs.
	goruntime.LockOSThread()
	trace.Setup("nsrun", false) // HARDWAY_TRACE, inherited from the parent, decides
	unix.CloseOnExec(initErrFd)
	errW := os.NewFile(initErrFd, "init-error")
	noPivot := len(os.Args) > 3 && os.Args[3] == noPivotArg
	initTerm = consoleFromArgs(os.Args[3:])
	err := initContainer(os.Args[2], noPivot)
	// initContainer returns only when it failed; the parent prints the text.
	errW.Write([]byte(errText(err)))
	os.Exit(1)
}

func initContainer(bundle string, noPivot bool) error {
	if trace.Enabled() {
		// Before the parent's go-ahead: where the init runs from its start (v2: born in
		// its cgroup, or still in nsrun's until the parent joins it).
		if b, err := os.ReadFile("/proc/self/cgroup"); err == nil {
			trace.Step("the init starts in cgroup " + strings.Join(strings.Fields(string(b)), " "))
		}
	}
	// Wait until the parent has put us in the cgroup, so everything from here on counts.
	goR := os.NewFile(initGoFd, "init-go")
	b := make([]byte, 1)
	if n, _ := goR.Read(b); n != 1 {
		os.Exit(1) // the parent gave up and said so itself
	}
	goR.Close()

	unix.Umask(0o022)
	spec, bundle, err := LoadBundle(bundle)
	if err != nil {
		return err
	}
	cgroupNS := hasNamespace(spec, specs.CgroupNamespace)
	if cgroupNS {
		// Only now, inside the container's cgroup, so that cgroup becomes the root it sees.
		trace.Step("make a cgroup namespace rooted at the container's cgroup", "unshare --cgroup")
		if err := unix.Unshare(unix.CLONE_NEWCGROUP); err != nil {
			return fmt.Errorf("unshare the cgroup namespace: %w", err)
		}
	}
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return cli.Errorf("run: overlay --id ID IMAGE", "rootfs %s does not exist", rootfs)
	}
	if rootfs, err = filepath.EvalSymlinks(rootfs); err != nil {
		return err
	}

	if err := ownMountNamespace(); err != nil {
		return err
	}
	trace.Step("make every mount private: nothing below leaks to the host, and pivot_root refuses shared mounts",
		"mount --make-rprivate /")
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make / private: %w", err)
	}
	trace.Step("bind the rootfs on itself so it is a mount point pivot_root can switch to",
		trace.Cmd("mount", "--rbind", rootfs, rootfs))
	if err := unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", rootfs, err)
	}

	devTmpfs := false
	for _, m := range spec.Mounts {
		if err := mountOne(rootfs, bundle, m, cgroupNS); err != nil {
			return err
		}
		if filepath.Clean(m.Destination) == "/dev" && m.Type == "tmpfs" {
			devTmpfs = true
		}
	}
	if devTmpfs {
		if err := setupDev(rootfs); err != nil {
			return err
		}
	}
	if spec.Linux != nil {
		if err := createDevices(rootfs, spec.Linux.Devices); err != nil {
			return err
		}
	}
	if spec.Hostname != "" {
		trace.Step("name the container in its own uts namespace", "hostname "+trace.Quote(spec.Hostname))
		if err := unix.Sethostname([]byte(spec.Hostname)); err != nil {
			return fmt.Errorf("sethostname: %w", err)
		}
	}
	if spec.Domainname != "" {
		trace.Step("set the NIS domain name in the uts namespace", "domainname "+trace.Quote(spec.Domainname))
		if err := unix.Setdomainname([]byte(spec.Domainname)); err != nil {
			return fmt.Errorf("setdomainname: %w", err)
		}
	}
	if noPivot {
		err = moveRoot(rootfs)
	} else if err = pivotRoot(rootfs); errors.Is(err, unix.EINVAL) {
		// pivot_root cannot take the root away from the initramfs (the rootfs filesystem,
		// which can never be unmounted): that is where the old way still has to be used.
		trace.Step("pivot_root refused with EINVAL (the root is the initramfs?): fall back to MS_MOVE + chroot")
		err = moveRoot(rootfs)
	}
	if err != nil {
		return err
	}
	// Now that the container's /dev/pts and /dev/ptmx are in place, and before /dev could be
	// made read-only.
	if err := initTerm.setup(spec.Process.User.UID, true); err != nil {
		return err
	}
	if spec.Linux != nil {
		if err := applySysctls(spec.Linux.Sysctl); err != nil {
			return err
		}
		for _, p := range spec.Linux.ReadonlyPaths {
			if err := readonlyPath(p); err != nil {
				return err
			}
		}
		for _, p := range spec.Linux.MaskedPaths {
			if err := maskPath(p); err != nil {
				return err
			}
		}
	}
	if spec.Root.Readonly {
		trace.Step("make the root read-only", "mount -o remount,bind,ro /")
		if err := unix.Mount("", "/", "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("remount / read-only: %w", err)
		}
	}
	return execProcess(spec)
}

// pivotRoot makes rootfs the root and detaches the old one, so no host path stays reachable.
func pivotRoot(rootfs string) error {
	trace.Step("switch the root to the rootfs; the old root is stacked on top of it",
		"cd "+trace.Quote(rootfs)+" && pivot_root . .")
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root %s: %w", rootfs, err)
	}
	trace.Step("detach the old root: the host's mounts are out of the container's reach", "umount -l .")
	// Unmount events must not travel back to the host's mounts.
	if err := unix.Mount("", ".", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("make the old root a slave: %w", err)
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount the old root: %w", err)
	}
	return unix.Chdir("/")
}

// execProcess becomes the container's process: cwd, environment, credentials, then execve.
func execProcess(spec *specs.Spec) error {
	p := spec.Process
	os.Clearenv()
	for _, kv := range p.Env {
		if k, v, ok := strings.Cut(kv, "="); ok {
			os.Setenv(k, v)
		}
	}
	cwd := p.Cwd
	if cwd == "" {
		cwd = "/"
	}
	if err := unix.Chdir(cwd); err != nil {
		return cli.Errorf("check process.cwd in config.json", "chdir %s: %v", cwd, err)
	}
	// A cwd outside the root (CVE-2024-21626) shows as an error or a relative path here.
	if wd, err := os.Getwd(); err != nil || !filepath.IsAbs(wd) {
		return fmt.Errorf("cwd %s is outside the container's root", cwd)
	}
	path, err := lookPath(p.Args[0])
	if err != nil {
		return err
	}
	if err := setRlimits(p.Rlimits); err != nil {
		return err
	}
	if err := setOOMScoreAdj(p.OOMScoreAdj); err != nil {
		return err
	}
	if p.User.Umask != nil {
		unix.Umask(int(*p.User.Umask))
	}
	// Nothing of nsrun's may reach the container (CVE-2024-21626): every fd past stdio
	// closes on exec, including the error pipe, whose closing tells the parent we made it.
	// Before the seccomp filter, as runc: a profile need not allow close_range.
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err != nil {
		return fmt.Errorf("close_range: %w", err)
	}
	// Installing a filter needs CAP_SYS_ADMIN or no_new_privs. Without no_new_privs, load it
	// while the init still has every capability; with it, as late as possible, so the
	// filter sees only the final execve (runc's order).
	filter := seccompFor(spec)
	docker := spec.Linux == nil || spec.Linux.Seccomp == nil
	if filter != nil && !p.NoNewPrivileges {
		if err := loadSeccomp(filter, docker); err != nil {
			return err
		}
	}
	if err := setCredentials(p); err != nil {
		return err
	}
	if filter != nil && p.NoNewPrivileges {
		if err := loadSeccomp(filter, docker); err != nil {
			return err
		}
	}
	trace.Step("exec the container's command: it replaces this process (for nsrun run, the init: PID 1)", trace.Cmd(append([]string{"exec"}, p.Args...)...))
	err = unix.Exec(path, p.Args, os.Environ())
	return fmt.Errorf("exec %s: %w", path, err)
}

// lookPath resolves the command on the container's PATH, inside the new root.
func lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", cli.Errorf("check process.args in config.json", "exec %s: %v", name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", cli.Errorf("check process.args in config.json", "exec %s: not found in the container's PATH %s", name, os.Getenv("PATH"))
}

func executable(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return errors.Unwrap(err)
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

func hasNamespace(spec *specs.Spec, t specs.LinuxNamespaceType) bool {
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == t {
				return true
			}
		}
	}
	return false
}

// ownMountNamespace refuses to go on in the parent's mount namespace: every step below
// (rprivate, the mounts, the root switch, --no-pivot's detaching of /proc and /sys) would
// then change the host's own mounts. nsrun always clones with CLONE_NEWNS; this guards that.
func ownMountNamespace() error {
	self, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return nil // no /proc to ask: the rprivate below is harmless without a host to leak to
	}
	parent, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err == nil && parent == self {
		return errors.New("the container's init is in nsrun's own mount namespace (" + self + "): refusing to change the host's mounts")
	}
	return nil
}
