// Package runtime is nsrun's engine, the hardway counterpart of runc: it starts a bundle's
// process in new namespaces, in the container's cgroup and network namespace, behind a
// pivot_root into the bundle's rootfs, and passes its exit status through.
//
// The parent (Run) validates the bundle and compiles what the container's init does into a
// program of system calls (compile.go, init.go); the init is a clone of nsrun in new
// namespaces that runs that program without a Go runtime of its own (prog.go) and execs
// the container's command, which so becomes PID 1 of the new pid namespace.
package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Options is what nsrun was asked to do.
type Options struct {
	Bundle      string // bundle dir (config.json + rootfs)
	Netns       string // join this netns (a container id or a path) instead of making a new one
	Cgroup      string // put the container in cgroup hardway/ID
	TTY         bool   // give the container a terminal
	Interactive bool   // keep the container's stdin attached
	Userns      bool   // run in a new user namespace with config.json's uid/gid maps
	NoPivot     bool   // MS_MOVE + chroot instead of pivot_root
	// ConsoleSocket: send the terminal's master to this unix socket (runc's --console-socket)
	// instead of relaying it; needs TTY or process.terminal.
	ConsoleSocket string
}

// Fds exec's joiner finds its two sync pipes on (the first ExtraFiles of its re-exec).
const (
	initGoFd  = 3 // the joiner reads: the parent writes one byte once the cgroup is joined
	initErrFd = 4 // the joiner writes: its error text; closed (CLOEXEC) by a successful execve
)

// Run starts the bundle's process and waits for it. It returns nil when the container exits
// 0, a *cli.ExitError with the container's status otherwise, and an ordinary error (nsrun
// exits 1) when the container never started.
func Run(o Options) (err error) {
	pid := 0
	defer func() {
		// Tell a waiting shim how the start went, whatever happened.
		if pid == 0 && err != nil {
			reportSync(map[string]any{"error": errText(err)})
		}
	}()
	spec, bundle, err := LoadBundle(o.Bundle)
	if err != nil {
		return err
	}
	if spec.Process == nil || len(spec.Process.Args) == 0 {
		return cli.Errorf("set process.args in config.json", "bundle %s has no process to run", bundle)
	}
	if err := checkSpec(spec, o.Userns); err != nil {
		return err
	}
	if o.Netns == "" {
		o.Netns = configNetns(spec)
	}
	if hasNamespace(spec, specs.UserNamespace) {
		o.Userns = true
	}
	var maps *idMaps
	if o.Userns {
		if maps, err = userMaps(spec); err != nil {
			return err
		}
	}

	con, err := runConsole(o, spec)
	if err != nil {
		return err
	}
	c, goW, errR, p, err := startInit(o, spec, bundle, con, maps)
	if err != nil {
		con.discard()
		return err
	}
	defer errR.Close()
	if con != nil {
		con.relay()
		defer con.close()
	}

	// The init was born in its cgroup (clone3 CLONE_INTO_CGROUP) or joins it itself.
	join := func(pid int) error {
		if maps != nil {
			return maps.write(pid)
		}
		return nil
	}
	await := func(errR, goW *os.File) error {
		if err := p.awaitChild(errR, goW); err != nil {
			return err
		}
		return notSelf(c.pid)
	}
	return supervise(c, goW, errR, con, join, "let the init go on: it mounts, pivots and execs the container's command", &pid, await)
}

// supervise lets a started child (the init, or exec's joiner) go on once join has put it in
// its cgroup, learns from the error pipe whether its execve succeeded, then forwards signals
// to it and returns its exit status as Run does. *started is set once the process runs.
//
// await follows the child until its execve: it returns nil once the child's execve closed
// the error pipe, the child's failure otherwise.
func supervise(c *child, goW, errR *os.File, con *console, join func(pid int) error, step string, started *int,
	await func(errR, goW *os.File) error) error {
	// Forward the signals a user sends nsrun to the container from now on.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(sigs)

	fail := func(e error) error {
		if goW != nil {
			goW.Close()
		}
		c.kill()
		c.wait()
		return e
	}
	if err := join(c.pid); err != nil {
		return fail(err)
	}
	trace.Step(step)
	if goW != nil {
		if _, err := goW.Write([]byte{0}); err != nil {
			return fail(fmt.Errorf("the container's init died before it started: %v", err))
		}
	}
	// The error pipe reaches EOF when the child's execve succeeded (the write end is
	// close-on-exec) and carries the reason when it failed.
	err := await(errR, goW)
	if goW != nil {
		goW.Close()
	}
	if err != nil {
		c.kill() // if it did exec, what it runs must not go on
		c.wait()
		return err
	}
	*started = c.pid
	reportSync(map[string]any{"pid": *started})

	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-sigs:
				if s == unix.SIGWINCH && con != nil {
					con.resize() // the kernel tells the container's foreground group
					continue
				}
				c.signal(s)
			case <-done:
				return
			}
		}
	}()
	ws, werr := c.wait()
	close(done)
	if werr != nil {
		return werr
	}
	if code := ExitCode(ws); code != 0 {
		return &cli.ExitError{Code: code}
	}
	return nil
}

// ExitCode turns a wait status into a shell-style exit code: 128+signal for a signal death.
func ExitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// LoadBundle reads a bundle's config.json and returns it with the bundle's absolute path.
// linux.resources and the other operating systems' sections are left out (decodeSpec).
func LoadBundle(dir string) (*specs.Spec, string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, "", err
	}
	st, err := os.Stat(abs)
	if err != nil || !st.IsDir() {
		return nil, "", cli.Errorf("run: overlay --id ID IMAGE", "bundle %s does not exist", abs)
	}
	b, err := os.ReadFile(filepath.Join(abs, "config.json"))
	if err != nil {
		return nil, "", cli.Errorf("run: overlay --id ID IMAGE", "bundle %s has no config.json", abs)
	}
	spec, err := decodeSpec(b)
	if err != nil {
		return nil, "", fmt.Errorf("bundle %s: config.json: %v", abs, err)
	}
	if spec.Root == nil || spec.Root.Path == "" {
		return nil, "", cli.Errorf("set root.path in config.json", "bundle %s names no rootfs", abs)
	}
	return spec, abs, nil
}

// startInit compiles the container's init and clones it into new namespaces, from the
// thread in the container's network namespace when it joins one. It returns the child with
// the pipe ends the parent keeps; bornInCgroup says it was cloned into its cgroup.
func startInit(o Options, spec *specs.Spec, bundle string, con *console, maps *idMaps) (c *child, goW, errR *os.File, p *prog, err error) {
	rootfs, err := rootfsOf(spec, bundle)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cg, err := containerCgroups(o.Cgroup)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	goR, goW, err := os.Pipe() // os.Pipe makes both ends CLOEXEC
	if err != nil {
		return nil, nil, nil, nil, err
	}
	defer goR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		goW.Close()
		return nil, nil, nil, nil, err
	}
	defer errW.Close()
	failed := func(e error) (*child, *os.File, *os.File, *prog, error) {
		goW.Close()
		errR.Close()
		return nil, nil, nil, nil, e
	}
	// The child needs the parent midway only to have its user namespace's maps written
	// and to narrate in step (--trace): otherwise it is cloned with vfork (prog.go) and
	// joins its cgroup itself.
	handshake := maps != nil || trace.Enabled()
	vfork := canVfork && !handshake
	pl := initPlan{bundle: bundle, rootfs: rootfs, goFd: -1, aliveFd: int(goR.Fd()), aliveW: int(goW.Fd()), stdin: -1, noPivot: o.NoPivot, cgroups: cg}
	if handshake {
		pl.goFd = int(goR.Fd())
	}
	if !o.Interactive {
		// The container's stdin is /dev/null, as with docker run without -i.
		null, err := os.Open(os.DevNull)
		if err != nil {
			return failed(err)
		}
		defer null.Close()
		pl.stdin = int(null.Fd())
	}
	if maps != nil {
		pl.userns, pl.denied = true, !maps.setgroups
	}
	if con != nil {
		pl.terminal = &initConsole{sock: con.child, size: con.size} // the init makes the terminal inside (console.go)
	}
	compile := func(join bool) error {
		if p != nil {
			p.release()
		}
		pl.joinDirs = nil
		if join && o.Cgroup != "" {
			if pl.joinDirs, err = cgroup.JoinDirs(o.Cgroup); err != nil {
				return err
			}
		}
		if p, err = compileInit(spec, pl); err != nil {
			return err
		}
		p.m.errFd, p.m.goFd, p.m.trace = errW.Fd(), goR.Fd(), trace.Enabled()
		return nil
	}
	into := intoCgroupDir(o.Cgroup)
	if err := compile(into == ""); err != nil {
		return failed(err)
	}
	defer func() { p.release() }()

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID)
	unshare := []string{"unshare", "--mount", "--uts", "--ipc", "--pid"}
	if o.Netns == "" {
		flags |= unix.CLONE_NEWNET
		unshare = append(unshare, "--net")
	}
	if maps != nil {
		flags |= unix.CLONE_NEWUSER
		unshare = append(unshare[:1], append([]string{"--user", "--map-users=" + maps.uidText, "--map-groups=" + maps.gidText}, unshare[1:]...)...)
	}
	unshare = append(unshare, "--fork", "nsrun-init", bundle)
	start := func() error {
		trace.Step(fmt.Sprintf("start the container's init in new namespaces: a clone of nsrun that runs %d prepared system calls, then execs", len(p.m.ops)),
			trace.Cmd(unshare...))
		fd := -1
		if into != "" {
			if fd, err = unix.Open(into, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
				trace.Step(fmt.Sprintf("cannot open %s (%v): the init joins the cgroup itself", into, err))
				if err := compile(true); err != nil {
					return err
				}
				fd = -1
			} else {
				defer unix.Close(fd)
				trace.Step("born in the cgroup: clone3 with CLONE_INTO_CGROUP "+into, "(no shell equivalent: the child never runs outside it)")
			}
		}
		pid, err := forkMachine(&p.m, flags, fd, vfork)
		if fd >= 0 && (errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.E2BIG)) {
			trace.Step(fmt.Sprintf("clone3 CLONE_INTO_CGROUP failed (%v: kernel older than 5.7): the init joins the cgroup itself", err))
			if err := compile(true); err != nil {
				return err
			}
			fd = -1
			pid, err = forkMachine(&p.m, flags, -1, vfork)
		}
		if err != nil {
			return fmt.Errorf("clone the container's init: %w", err)
		}
		c = &child{pid: pid}
		if trace.Enabled() {
			// It waits for the go-ahead: where it runs from its start (v2: born in its
			// cgroup; elsewhere still in nsrun's until its first steps join it).
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
				trace.Step("the init starts in cgroup " + strings.Join(strings.Fields(string(b)), " "))
			}
		}
		return nil
	}
	if o.Netns != "" {
		err = startInNetns(o.Netns, start)
	} else {
		err = start()
	}
	goruntime.KeepAlive(p)
	if err != nil {
		return failed(err)
	}
	if !handshake {
		goW.Close() // the child waits for no go-ahead
		goW = nil
	}
	return c, goW, errR, p, nil
}

// startInNetns runs start on a thread switched into the network namespace, so the child it
// forks is born there, and switches the thread back afterwards.
func startInNetns(netns string, start func() error) error {
	path := netns
	if !strings.Contains(netns, "/") {
		path = state.NetnsPath(netns)
	}
	target, err := os.OpenFile(path, os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			hint := "run: netsetup add " + netns
			if strings.Contains(netns, "/") {
				hint = "run: netsetup add ID"
			}
			return cli.Errorf(hint, "netns %s does not exist", path)
		}
		return fmt.Errorf("open netns %s: %w", path, err)
	}
	defer target.Close()

	// Namespaces belong to threads: pin this goroutine to its thread while it is switched.
	goruntime.LockOSThread()
	orig, err := os.OpenFile(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		goruntime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	trace.Step("join the network namespace "+path, "nsenter --net="+path)
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		goruntime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", path, err)
	}
	startErr := start()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays in the wrong netns: keep it locked so the runtime retires it
		// instead of reusing it for other goroutines.
		return errors.Join(startErr, fmt.Errorf("return to the host netns: %w", err))
	}
	goruntime.UnlockOSThread()
	return startErr
}

// notSelf refuses a container whose process turned out to be nsrun's own file. The init is a
// clone of nsrun until its execve, so an entrypoint that runs /proc/self/exe (a
// "#!/proc/self/exe" script, CVE-2019-5736) makes the kernel execute the host's nsrun binary
// as the container's PID 1, where another process of the container could take hold of it.
// Checked the moment the execve is done; the kill takes the whole pid namespace with it.
func notSelf(pid int) error {
	var self, ctr unix.Stat_t
	if unix.Stat("/proc/self/exe", &self) != nil || unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &ctr) != nil {
		return nil // gone already: nothing of it is left to hold
	}
	if self.Dev == ctr.Dev && self.Ino == ctr.Ino {
		return cli.Errorf("the image's entrypoint must not run /proc/self/exe",
			"the container's process is nsrun's own binary (an entrypoint that executes /proc/self/exe, CVE-2019-5736): refused, and killed")
	}
	return nil
}

// errText renders an error as the text after "nsrun: error: ".
func errText(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}

// configNetns is the network namespace path config.json asks to join, if any.
func configNetns(spec *specs.Spec) string {
	if spec.Linux != nil {
		for _, ns := range spec.Linux.Namespaces {
			if ns.Type == specs.NetworkNamespace {
				return ns.Path
			}
		}
	}
	return ""
}

// idMaps are the user namespace's maps as Go's fork writes them.
type idMaps struct {
	uid, gid         []syscall.SysProcIDMap
	uidText, gidText string // as unshare(1) takes them
	setgroups        bool
}

// write gives the child pid its user namespace's maps, as Go's fork does: "deny" to
// setgroups first (an unprivileged process could otherwise drop groups that deny it
// access), unless the process asks for supplementary groups, then gid_map, uid_map.
func (m *idMaps) write(pid int) error {
	dir := fmt.Sprintf("/proc/%d/", pid)
	line := func(ms []syscall.SysProcIDMap) string {
		var b strings.Builder
		for _, x := range ms {
			fmt.Fprintf(&b, "%d %d %d\n", x.ContainerID, x.HostID, x.Size)
		}
		return b.String()
	}
	if !m.setgroups {
		if err := os.WriteFile(dir+"setgroups", []byte("deny"), 0); err != nil {
			return fmt.Errorf("write the user namespace's setgroups: %w", err)
		}
	}
	if err := os.WriteFile(dir+"gid_map", []byte(line(m.gid)), 0); err != nil {
		return fmt.Errorf("write the user namespace's gid_map: %w", err)
	}
	if err := os.WriteFile(dir+"uid_map", []byte(line(m.uid)), 0); err != nil {
		return fmt.Errorf("write the user namespace's uid_map: %w", err)
	}
	return nil
}

func userMaps(spec *specs.Spec) (*idMaps, error) {
	if spec.Linux == nil || len(spec.Linux.UIDMappings) == 0 || len(spec.Linux.GIDMappings) == 0 {
		return nil, cli.Errorf("add linux.uidMappings and linux.gidMappings to config.json, e.g. {\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}",
			"a user namespace needs uid and gid maps")
	}
	conv := func(ms []specs.LinuxIDMapping) ([]syscall.SysProcIDMap, string) {
		var out []syscall.SysProcIDMap
		var txt []string
		for _, m := range ms {
			out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
			txt = append(txt, fmt.Sprintf("%d:%d:%d", m.HostID, m.ContainerID, m.Size))
		}
		return out, strings.Join(txt, ",")
	}
	m := &idMaps{}
	m.uid, m.uidText = conv(spec.Linux.UIDMappings)
	m.gid, m.gidText = conv(spec.Linux.GIDMappings)
	m.setgroups = spec.Process != nil && len(spec.Process.User.AdditionalGids) > 0
	return m, nil
}
