package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/trace"
)

// MaybeInit runs nsrun exec's joiner when this process is one, and never returns then. It
// must be called first thing in main. (The container's init is no process of its own:
// nsrun clones it and it runs a compiled program, see prog.go.)
func MaybeInit() {
	maybeJoiner()
}

// initPlan is what the compiler needs beyond config.json to compile the init.
type initPlan struct {
	bundle   string
	rootfs   string   // absolute, symlinks resolved
	goFd     int      // the go-ahead the child waits for; -1: it waits for none
	joinDirs []string // cgroup dirs the child joins itself, first thing
	aliveFd  int      // without a go-ahead: a pipe whose write end (aliveW) only nsrun keeps
	aliveW   int
	stdin    int  // -1: keep nsrun's; else dup'd onto 0 (/dev/null)
	userns   bool // cloned into a user namespace: become its root first
	denied   bool // and its setgroups is "deny"
	noPivot  bool
	cgroups  *cgroupView
	terminal *initConsole
}

// compileInit compiles what the container's init does, from its clone to the execve of
// the container's process: in order, what runc's init does.
func compileInit(spec *specs.Spec, pl initPlan) (*prog, error) {
	p, err := newProg()
	if err != nil {
		return nil, err
	}
	if err := p.compileInit(spec, pl); err != nil {
		p.release()
		return nil, err
	}
	return p, nil
}

func (p *prog) compileInit(spec *specs.Spec, pl initPlan) error {
	p.root = pl.rootfs
	// The container dies with nsrun: nothing else would ever reap or stop it.
	p.pdeathsig()
	if pl.goFd >= 0 {
		// Until the parent has written the user namespace's maps, or is ready to narrate.
		p.emit(op{kind: kWait, a: [6]uintptr{uintptr(pl.goFd)}})
	} else if pl.aliveFd >= 0 {
		// Killed before the parent-death signal was set, nsrun would leave the container
		// running unsupervised: the pipe's write end, held only by nsrun once the child
		// closed its copy, tells whether it still lives.
		p.sys(unix.SYS_CLOSE, uintptr(pl.aliveW))
		p.failing("check that nsrun still runs")
		p.emit(op{kind: kAlive, a: [6]uintptr{uintptr(pl.aliveFd)}})
	}
	for _, d := range pl.joinDirs {
		// First, so everything from here on counts ("0": the writer itself).
		p.narrate("join the container's cgroup "+d, "echo $$ > "+filepath.Join(d, "cgroup.procs"))
		p.failing("join cgroup %s", d)
		p.writeFile(filepath.Join(d, "cgroup.procs"), "0")
	}
	if pl.userns {
		// Become the namespace's root, or host root (unmapped there) would run as nobody.
		p.failing("become root in the user namespace")
		p.sys(unix.SYS_SETRESGID, 0, 0, 0)
		p.sys(unix.SYS_SETRESUID, 0, 0, 0)
		p.pdeathsig()
		// The uid change made the process undumpable, which gives its /proc/self files to
		// host root, out of its reach (oom_score_adj): an execve would have undone it.
		p.failing("make the init dumpable again")
		p.sys(unix.SYS_PRCTL, unix.PR_SET_DUMPABLE, 1)
	}
	if pl.stdin >= 0 {
		p.failing("open the container's stdin")
		p.sys(unix.SYS_DUP3, uintptr(pl.stdin), 0, 0)
	}
	if hasNamespace(spec, specs.CgroupNamespace) {
		// Only now, inside the container's cgroup, so that cgroup becomes the root it sees.
		p.narrate("make a cgroup namespace rooted at the container's cgroup", "unshare --cgroup")
		p.failing("unshare the cgroup namespace")
		p.sys(unix.SYS_UNSHARE, unix.CLONE_NEWCGROUP)
	}
	p.sys(unix.SYS_UMASK, 0o022)
	p.narrate("make every mount private: nothing below leaks to the host, and pivot_root refuses shared mounts",
		"mount --make-rprivate /")
	p.failing("make / private")
	p.sys(unix.SYS_MOUNT, p.empty, p.str("/"), p.empty, unix.MS_REC|unix.MS_PRIVATE, p.empty)
	p.narrate("bind the rootfs on itself so it is a mount point pivot_root can switch to",
		trace.Cmd("mount", "--rbind", p.root, p.root))
	p.failing("bind %s", p.root)
	p.sys(unix.SYS_MOUNT, p.str(p.root), p.str(p.root), p.empty, unix.MS_BIND|unix.MS_REC, p.empty)
	// Every mount below is looked up from the bound rootfs, never from the host's /.
	p.saveTo(p.sys(unix.SYS_OPENAT, atFdcwd, p.str(p.root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0), sRoot)

	devTmpfs := false
	for _, m := range spec.Mounts {
		if err := p.mount(pl.bundle, m, hasNamespace(spec, specs.CgroupNamespace), pl.cgroups); err != nil {
			return err
		}
		if filepath.Clean(m.Destination) == "/dev" && m.Type == "tmpfs" {
			devTmpfs = true
		}
	}
	if devTmpfs {
		p.dev()
	}
	if spec.Linux != nil {
		p.devices(spec.Linux.Devices)
	}
	if spec.Hostname != "" {
		p.narrate("name the container in its own uts namespace", "hostname "+trace.Quote(spec.Hostname))
		p.failing("sethostname")
		p.sys(unix.SYS_SETHOSTNAME, p.str(spec.Hostname), uintptr(len(spec.Hostname)))
	}
	if spec.Domainname != "" {
		p.narrate("set the NIS domain name in the uts namespace", "domainname "+trace.Quote(spec.Domainname))
		p.failing("setdomainname")
		p.sys(unix.SYS_SETDOMAINNAME, p.str(spec.Domainname), uintptr(len(spec.Domainname)))
	}
	if pl.noPivot {
		if err := p.moveRoot(); err != nil {
			return err
		}
	} else if err := p.pivotRoot(); err != nil {
		return err
	}
	// Now that the container's /dev/pts and /dev/ptmx are in place, and before /dev could be
	// made read-only.
	p.console(pl.terminal, spec.Process.User.UID, true)
	if spec.Linux != nil {
		p.sysctls(spec.Linux.Sysctl)
		for _, path := range spec.Linux.ReadonlyPaths {
			p.readonly(path)
		}
		for _, path := range spec.Linux.MaskedPaths {
			p.mask(path)
		}
	}
	if spec.Root.Readonly {
		p.narrate("make the root read-only", "mount -o remount,bind,ro /")
		p.failing("remount / read-only")
		p.sys(unix.SYS_MOUNT, p.empty, p.str("/"), p.empty, unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, p.empty)
	}
	return p.process(spec, pl.denied)
}

// pdeathsig has the kernel kill the process when nsrun (its parent) dies. A change of the
// effective uid or gid clears it, so each setresuid is followed by it again, as runc does.
func (p *prog) pdeathsig() {
	p.failing("set the parent-death signal")
	p.sys(unix.SYS_PRCTL, unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL))
}

// pivotRoot makes the rootfs the root and detaches the old one, so no host path stays
// reachable; where pivot_root is refused with EINVAL (the root is the initramfs, which can
// never be unmounted), it falls back to moveRoot.
func (p *prog) pivotRoot() error {
	p.narrate("switch the root to the rootfs; the old root is stacked on top of it",
		"cd "+trace.Quote(p.root)+" && pivot_root . .")
	p.failing("chdir %s", p.root)
	p.sys(unix.SYS_CHDIR, p.str(p.root))
	p.failing("pivot_root %s", p.root)
	dot := p.str(".")
	i := p.sys(unix.SYS_PIVOT_ROOT, dot, dot)
	p.onErr(i, uintptr(unix.EINVAL))
	p.narrate("detach the old root: the host's mounts are out of the container's reach", "umount -l .")
	// Unmount events must not travel back to the host's mounts.
	p.failing("make the old root a slave")
	p.sys(unix.SYS_MOUNT, p.empty, dot, p.empty, unix.MS_SLAVE|unix.MS_REC, p.empty)
	p.failing("unmount the old root")
	p.sys(unix.SYS_UMOUNT2, dot, unix.MNT_DETACH)
	p.sys(unix.SYS_CHDIR, p.str("/"))
	j := p.jump()
	p.jumpHere(i)
	p.narrate("pivot_root refused with EINVAL (the root is the initramfs?): fall back to MS_MOVE + chroot")
	if err := p.moveRoot(); err != nil {
		return err
	}
	p.jumpHere(j)
	return nil
}

// process compiles becoming the container's process: cwd, limits, credentials, seccomp,
// then the execve. The init and nsrun exec's joiner both end with it. denied says the
// user namespace's setgroups is "deny".
func (p *prog) process(spec *specs.Spec, denied bool) error {
	proc := spec.Process
	env := processEnv(proc.Env)
	cwd := proc.Cwd
	if cwd == "" {
		cwd = "/"
	}
	p.failingWith(func(e syscall.Errno) error {
		return cli.Errorf("check process.cwd in config.json", "chdir %s: %v", cwd, e)
	})
	p.sys(unix.SYS_CHDIR, p.str(cwd))
	// A cwd outside the root (CVE-2024-21626) shows as "(unreachable)/…" here.
	p.failingWith(func(syscall.Errno) error { return fmt.Errorf("cwd %s is outside the container's root", cwd) })
	p.emit(op{kind: kCwdCheck})
	if err := p.rlimits(proc.Rlimits); err != nil {
		return err
	}
	p.oomScoreAdj(proc.OOMScoreAdj)
	if proc.User.Umask != nil {
		p.sys(unix.SYS_UMASK, uintptr(*proc.User.Umask))
	}
	// Nothing of nsrun's may reach the container (CVE-2024-21626): every fd past stdio
	// closes on exec, including the error pipe, whose closing tells the parent we made it.
	// Before the seccomp filter, as runc: a profile need not allow close_range.
	p.failing("close_range")
	p.sys(unix.SYS_CLOSE_RANGE, 3, uintptr(^uint32(0)), unix.CLOSE_RANGE_CLOEXEC)
	// Installing a filter needs CAP_SYS_ADMIN or no_new_privs. Without no_new_privs, load it
	// while the process still has every capability; with it, as late as possible, so the
	// filter sees only the final execve (runc's order).
	filter := seccompFor(spec)
	docker := spec.Linux == nil || spec.Linux.Seccomp == nil
	if filter != nil && !proc.NoNewPrivileges {
		if err := p.seccomp(filter, docker); err != nil {
			return err
		}
	}
	if err := p.credentials(proc, denied); err != nil {
		return err
	}
	if filter != nil && proc.NoNewPrivileges {
		if err := p.seccomp(filter, docker); err != nil {
			return err
		}
	}
	p.narrate("exec the container's command: it replaces this process (for nsrun run, the init: PID 1)", trace.Cmd(append([]string{"exec"}, proc.Args...)...))
	name := proc.Args[0]
	pathVar := envValue(env, "PATH")
	p.execPathList = lookPaths(name, pathVar)
	p.execArgv, p.execEnv = proc.Args, env
	p.failingWith(func(e syscall.Errno) error {
		if e == unix.ENOENT && !strings.Contains(name, "/") {
			return cli.Errorf("check process.args in config.json", "exec %s: not found in the container's PATH %s", name, pathVar)
		}
		return cli.Errorf("check process.args in config.json", "exec %s: %v", name, e)
	})
	paths := make([]*byte, len(p.execPathList))
	for i, s := range p.execPathList {
		b := append([]byte(s), 0)
		p.hold = append(p.hold, b)
		paths[i] = &b[0]
	}
	argv, err := syscall.SlicePtrFromStrings(proc.Args)
	if err != nil {
		return err
	}
	envp, err := syscall.SlicePtrFromStrings(env)
	if err != nil {
		return err
	}
	p.hold = append(p.hold, paths, argv, envp)
	var first unsafe.Pointer
	if len(paths) > 0 {
		first = unsafe.Pointer(&paths[0])
	}
	p.emit(op{kind: kExec, a: [6]uintptr{uintptr(len(paths)), uintptr(unsafe.Pointer(&argv[0])), uintptr(unsafe.Pointer(&envp[0]))}, p: first})
	goruntime.KeepAlive(paths)
	return nil
}

// processEnv is process.env as the process gets it: one entry per name, the last value
// winning, in the order the names first appear; entries without "=" are dropped.
func processEnv(env []string) []string {
	var out []string
	at := map[string]int{}
	for _, kv := range env {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if i, seen := at[k]; seen {
			out[i] = kv
			continue
		}
		at[k] = len(out)
		out = append(out, kv)
	}
	return out
}

func envValue(env []string, key string) string {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, key+"="); ok {
			return v
		}
	}
	return ""
}

// lookPaths is where the command may be, in order: itself when it names a path, else
// each dir of the container's PATH (the child execs them in turn, as execvp does).
func lookPaths(name, pathVar string) []string {
	if strings.Contains(name, "/") {
		return []string{name}
	}
	var out []string
	for _, dir := range filepath.SplitList(pathVar) {
		if dir == "" {
			dir = "."
		}
		out = append(out, filepath.Join(dir, name))
	}
	return out
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

// rootfsOf is the bundle's rootfs, absolute and with symlinks resolved.
func rootfsOf(spec *specs.Spec, bundle string) (string, error) {
	rootfs := spec.Root.Path
	if !filepath.IsAbs(rootfs) {
		rootfs = filepath.Join(bundle, rootfs)
	}
	if st, err := os.Stat(rootfs); err != nil || !st.IsDir() {
		return "", cli.Errorf("run: overlay --id ID IMAGE", "rootfs %s does not exist", rootfs)
	}
	return filepath.EvalSymlinks(rootfs)
}
