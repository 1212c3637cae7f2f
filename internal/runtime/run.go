// Package runtime is nsrun's engine, the hardway counterpart of runc: it starts a bundle's
// process in new namespaces, in the container's cgroup and network namespace, behind a
// pivot_root into the bundle's rootfs, and passes its exit status through.
//
// It runs in two processes. The parent (Run) validates the bundle, re-executes the nsrun
// binary into new namespaces, puts that child in the cgroup and then lets it go on. The
// child (the init, see init.go) sets up the mounts and execs the container's command, which
// so becomes PID 1 of the new pid namespace.
package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
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

// Fds the init finds its two sync pipes on (the first ExtraFiles of the re-exec).
const (
	initGoFd  = 3 // init reads: the parent writes one byte once the cgroup is joined
	initErrFd = 4 // init writes: its error text; closed (CLOEXEC) by a successful execve
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
	c, bornInCgroup, goW, errR, err := startInit(o, bundle, con, maps)
	if err != nil {
		con.discard()
		return err
	}
	defer errR.Close()
	if con != nil {
		con.relay()
		defer con.close()
	}

	join := func(pid int) error {
		if o.Cgroup == "" || bornInCgroup {
			return nil // born there (clone3 CLONE_INTO_CGROUP)
		}
		return cgroup.Join(o.Cgroup, pid)
	}
	return supervise(c, goW, errR, con, join, "let the init go on: it mounts, pivots and execs the container's command", &pid)
}

// supervise lets a started child (the init, or exec's joiner) go on once join has put it in
// its cgroup, learns from the error pipe whether its execve succeeded, then forwards signals
// to it and returns its exit status as Run does. *started is set once the process runs.
func supervise(c *child, goW, errR *os.File, con *console, join func(pid int) error, step string, started *int) error {
	// Forward the signals a user sends nsrun to the container from now on.
	sigs := make(chan os.Signal, 16)
	signal.Notify(sigs, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH)
	defer signal.Stop(sigs)

	fail := func(e error) error {
		goW.Close()
		c.kill()
		c.wait()
		return e
	}
	if err := join(c.pid); err != nil {
		return fail(err)
	}
	trace.Step(step)
	if _, err := goW.Write([]byte{0}); err != nil {
		return fail(fmt.Errorf("the container's init died before it started: %v", err))
	}
	goW.Close()

	// The error pipe reaches EOF with no text when the child's execve succeeded (the write
	// end is close-on-exec) and carries the reason when it failed.
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		c.wait()
		return errors.New(strings.TrimSpace(string(msg)))
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

// startInit re-executes this binary as the container's init in new namespaces and returns
// it with the pipe ends the parent keeps; bornInCgroup says it was cloned into its cgroup.
func startInit(o Options, bundle string, con *console, maps *idMaps) (c *child, bornInCgroup bool, goW, errR *os.File, err error) {
	goR, goW, err := os.Pipe() // os.Pipe makes both ends CLOEXEC
	if err != nil {
		return nil, false, nil, nil, err
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		goR.Close()
		goW.Close()
		return nil, false, nil, nil, err
	}
	defer goR.Close()
	defer errW.Close()

	flags := uintptr(unix.CLONE_NEWNS | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC | unix.CLONE_NEWPID)
	unshare := []string{"unshare", "--mount", "--uts", "--ipc", "--pid"}
	if o.Netns == "" {
		flags |= unix.CLONE_NEWNET
		unshare = append(unshare, "--net")
	}
	unshare = append(unshare, "--fork", "nsrun-init", bundle)

	self, err := sealedSelf()
	if err != nil {
		goW.Close()
		errR.Close()
		return nil, false, nil, nil, err
	}
	defer self.Close()
	cmd := exec.Command("/proc/self/exe", initArg, bundle) // the path is set by runFrom
	if o.NoPivot {
		cmd.Args = append(cmd.Args, noPivotArg)
	}
	cmd.Args[0] = "nsrun-init"
	// The init works on one locked thread and execs in milliseconds: with one P its Go
	// runtime starts no spinning threads to look for other work, and the execve has
	// fewer threads to tear down (about 3 ms less from start to exit: an instrumented build,
	// medians of 60 interleaved runs). First in the list, it wins over a GOMAXPROCS of
	// the caller's; the init replaces its whole environment with process.env at exec.
	cmd.Env = append([]string{"GOMAXPROCS=1"}, os.Environ()...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if o.Interactive {
		cmd.Stdin = os.Stdin
	} // else nil: the container's stdin is /dev/null, as with docker run without -i
	cmd.ExtraFiles = []*os.File{goR, errW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: flags,
		// The container dies with nsrun: nothing else would ever reap or stop it.
		Pdeathsig: unix.SIGKILL,
	}
	if maps != nil {
		// Go's fork writes the maps from this side before the child goes on: "deny" to
		// setgroups first (an unprivileged process could otherwise drop groups that deny it
		// access), unless the process asks for supplementary groups, then gid_map, uid_map.
		cmd.SysProcAttr.Cloneflags |= unix.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings, cmd.SysProcAttr.GidMappings = maps.uid, maps.gid
		cmd.SysProcAttr.GidMappingsEnableSetgroups = maps.setgroups
		// Become the namespace's root before the execve, or host root (unmapped there) would
		// exec as nobody and lose every capability in the new namespaces.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		unshare = append(unshare[:1], append([]string{"--user", "--map-users=" + maps.uidText, "--map-groups=" + maps.gidText}, unshare[1:]...)...)
	}
	if con != nil {
		con.attach(cmd) // the init makes the terminal inside (console.go)
	}

	runFrom(cmd, self)
	into := intoCgroupDir(o.Cgroup)
	startOne := func(cmd *exec.Cmd) (err error) {
		c, err = startChild(cmd)
		return err
	}
	start := func() error {
		trace.Step("start the container's init in new namespaces", trace.Cmd(unshare...))
		if into != "" {
			cmd, err = startIntoCgroup(cmd, into, startOne)
			return err
		}
		return startOne(cmd)
	}
	if o.Netns != "" {
		err = startInNetns(o.Netns, start)
	} else {
		err = start()
	}
	if err != nil {
		goW.Close()
		errR.Close()
		return nil, false, nil, nil, err
	}
	return c, cmd.SysProcAttr.UseCgroupFD, goW, errR, nil
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
