package runtime

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// execArg is the hidden first argument of the joiner: the copy of nsrun that enters a
// running container's mount namespace and execs the command there.
const execArg = "__nsrun_exec__"

// Fds the joiner finds, after the two sync pipes (initGoFd, initErrFd).
const (
	execMntFd  = 5 // the target's mount namespace
	execSpecFd = 6 // a pipe carrying the process to run, as config.json's process + seccomp
)

// ExecOptions is what `nsrun exec` was asked to do.
type ExecOptions struct {
	ID          string   // a container shim started (containers/ID/state.json)
	Pid         int      // or any process whose namespaces to join
	TTY         bool     // give the command a terminal
	Interactive bool     // keep its stdin attached
	Env         []string // K=V added to (or replacing in) the container's environment
	Cwd         string   // working dir instead of the container's
	Args        []string // the command
	// ConsoleSocket: send the terminal's master there instead of relaying it (needs TTY).
	ConsoleSocket string
}

// namespaces exec joins, in the order it joins them: the ones a thread may switch to alone
// (in the parent, so the joiner is born in them), then the mount namespace (in the joiner).
var threadNamespaces = []struct {
	file string
	flag int
	opt  string
}{
	{"ipc", unix.CLONE_NEWIPC, "--ipc"}, {"uts", unix.CLONE_NEWUTS, "--uts"},
	{"net", unix.CLONE_NEWNET, "--net"}, {"cgroup", unix.CLONE_NEWCGROUP, "--cgroup"},
	{"pid", unix.CLONE_NEWPID, "--pid"},
}

// Exec runs a command inside a running container, as docker exec does: in its namespaces,
// root, cgroup, environment and credentials, under the same seccomp profile. It returns
// like Run: nil, a *cli.ExitError with the command's status, or an error.
func Exec(o ExecOptions) (err error) {
	pid, spec, err := execTarget(o)
	if err != nil {
		return err
	}
	p := spec.Process
	p.Args = o.Args
	p.Terminal = o.TTY
	p.Env = mergeEnv(p.Env, o.Env)
	if o.Cwd != "" {
		p.Cwd = o.Cwd
	}
	if same, _ := sameNamespace(pid, "mnt"); same {
		return cli.Errorf("pass the pid of a container's process", "pid %d shares nsrun's mount namespace: it is not in a container", pid)
	}

	var con *console
	if o.ConsoleSocket != "" && !o.TTY {
		return cli.Errorf("add --tty", "--console-socket needs a terminal")
	}
	if o.TTY {
		if con, err = newConsole(o.ConsoleSocket, p); err != nil {
			return err
		}
	}
	release := make(chan struct{})
	defer close(release)
	cmd, goW, errR, err := startJoiner(pid, spec, o, con, release)
	if err != nil {
		con.discard()
		return err
	}
	defer errR.Close()
	if con != nil {
		con.relay()
		defer con.close()
	}
	join := func(child int) error {
		if cmd.SysProcAttr.UseCgroupFD {
			return nil // born there (clone3 CLONE_INTO_CGROUP)
		}
		return joinCgroupsOf(pid, child)
	}
	started := 0
	return supervise(childOf(cmd.Process), goW, errR, con, join, "let the joiner go on: it enters the mount namespace and execs the command", &started, readFailure)
}

// execTarget finds the process to join and the process description to start from: the
// container's config.json for an id, the target's own /proc entries for a bare pid.
func execTarget(o ExecOptions) (int, *specs.Spec, error) {
	if o.ID != "" {
		c, err := state.ReadContainer(o.ID)
		if err != nil {
			return 0, nil, cli.Errorf("run: shim ps", "no container %s", o.ID)
		}
		if c.Status != state.StatusRunning || c.Pid == 0 || unix.Kill(c.Pid, 0) != nil {
			return 0, nil, cli.Errorf("start it first, or see: shim ps", "container %s is not running", o.ID)
		}
		spec, _, err := LoadBundle(c.Bundle)
		if err != nil {
			return 0, nil, err
		}
		if spec.Process == nil {
			spec.Process = &specs.Process{}
		}
		return c.Pid, spec, nil
	}
	if o.Pid <= 0 {
		return 0, nil, cli.Errorf("nsrun exec ID -- CMD… or nsrun exec --pid PID -- CMD…", "no container id or pid given")
	}
	spec, err := specFromProc(o.Pid)
	return o.Pid, spec, err
}

// specFromProc describes what a process of a container started by anyone runs with: its
// environment, user, capabilities, no_new_privs, and Docker's seccomp profile if it is
// under a filter (a filter cannot be read back, only its presence).
func specFromProc(pid int) (*specs.Spec, error) {
	dir := fmt.Sprintf("/proc/%d", pid)
	env, err := os.ReadFile(dir + "/environ")
	if err != nil {
		return nil, cli.Errorf("check the pid", "no process %d: %v", pid, errors.Unwrap(err))
	}
	st, err := procStatus(dir + "/status")
	if err != nil {
		return nil, err
	}
	p := &specs.Process{Cwd: "/", NoNewPrivileges: st["NoNewPrivs"] == "1"}
	for _, kv := range strings.Split(string(env), "\x00") {
		if kv != "" {
			p.Env = append(p.Env, kv)
		}
	}
	ids := func(k string) uint32 {
		f := strings.Fields(st[k])
		n := uint64(0)
		if len(f) > 0 {
			n, _ = strconv.ParseUint(f[0], 10, 32)
		}
		return uint32(n)
	}
	// /proc shows host ids; in a user namespace of its own the command gets the ones they
	// map to there (a group mapped to nothing there is left out).
	uidIn, gidIn := idMapper(dir+"/uid_map"), idMapper(dir+"/gid_map")
	uid, _ := uidIn(ids("Uid"))
	gid, _ := gidIn(ids("Gid"))
	p.User = specs.User{UID: uid, GID: gid}
	for _, g := range strings.Fields(st["Groups"]) {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			if in, ok := gidIn(uint32(n)); ok {
				p.User.AdditionalGids = append(p.User.AdditionalGids, in)
			}
		}
	}
	mask := func(k string) []string {
		v, _ := strconv.ParseUint(st[k], 16, 64)
		var names []string
		for n, c := range capNames {
			if v&(1<<c) != 0 {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		return names
	}
	p.Capabilities = &specs.LinuxCapabilities{Bounding: mask("CapBnd"), Effective: mask("CapEff"), Permitted: mask("CapPrm"), Inheritable: mask("CapInh")}
	s := &specs.Spec{Process: p, Linux: &specs.Linux{}, Annotations: map[string]string{}}
	if st["Seccomp"] == "2" {
		s.Linux.Seccomp = DockerSeccomp(p.Capabilities.Bounding)
	} else {
		s.Annotations[SeccompAnnotation] = "unconfined"
	}
	return s, nil
}

// idMapper reads a uid_map or gid_map and returns the function from a host id to the id
// inside that namespace (identity in the host's own namespace).
func idMapper(path string) func(uint32) (uint32, bool) {
	b, _ := os.ReadFile(path)
	var m [][3]uint64
	for _, l := range strings.Split(string(b), "\n") {
		var r [3]uint64
		if n, _ := fmt.Sscan(l, &r[0], &r[1], &r[2]); n == 3 {
			m = append(m, r)
		}
	}
	return func(host uint32) (uint32, bool) {
		for _, r := range m {
			if h := uint64(host); h >= r[1] && h < r[1]+r[2] {
				return uint32(r[0] + h - r[1]), true
			}
		}
		return host, len(m) == 0
	}
}

func procStatus(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			m[k] = strings.TrimSpace(v)
		}
	}
	return m, sc.Err()
}

// mergeEnv overrides base with extra (K=V, or K alone to take nsrun's own value).
func mergeEnv(base, extra []string) []string {
	out := append([]string{}, base...)
	for _, kv := range extra {
		k, _, ok := strings.Cut(kv, "=")
		if !ok {
			kv = k + "=" + os.Getenv(k)
		}
		replaced := false
		for i, e := range out {
			if strings.HasPrefix(e, k+"=") {
				out[i], replaced = kv, true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return out
}

func sameNamespace(pid int, ns string) (bool, error) {
	a, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		return false, err
	}
	b, err := os.Readlink("/proc/self/ns/" + ns)
	return a == b, err
}

// startJoiner starts the sealed nsrun copy that becomes the command. Go runs on many
// threads, and a thread that shares its filesystem attributes with others may not switch
// mount namespace (setns gives EINVAL), so the work splits in two: here, on one locked
// thread, nsrun switches the ipc, uts, net, cgroup and pid namespaces (per-thread, for the
// pid namespace: for the children) and forks the joiner from that thread, so it is born in
// them; the joiner unshares its filesystem attributes on its own thread and switches to the
// mount namespace, which also puts it in the container's root.
func startJoiner(pid int, spec *specs.Spec, o ExecOptions, con *console, release <-chan struct{}) (cmd *exec.Cmd, goW, errR *os.File, err error) {
	mnt, err := os.OpenFile(fmt.Sprintf("/proc/%d/ns/mnt", pid), os.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("open the mount namespace of %d: %w", pid, err)
	}
	defer mnt.Close()
	specR, specW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer specR.Close()
	b, _ := json.Marshal(spec)
	if len(b) > 60000 { // what a pipe holds without a reader
		specW.Close()
		return nil, nil, nil, fmt.Errorf("the process description is too large (%d bytes)", len(b))
	}
	_, err = specW.Write(b)
	specW.Close()
	if err != nil {
		return nil, nil, nil, err
	}
	goR, goW, err := os.Pipe()
	if err != nil {
		return nil, nil, nil, err
	}
	defer goR.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		goW.Close()
		return nil, nil, nil, err
	}
	defer errW.Close()
	self, err := sealedSelf()
	if err != nil {
		goW.Close()
		errR.Close()
		return nil, nil, nil, err
	}
	defer self.Close()
	var userns *os.File // the target's, when it is not ours
	if same, _ := sameNamespace(pid, "user"); !same {
		if userns, err = os.Open(fmt.Sprintf("/proc/%d/ns/user", pid)); err != nil {
			goW.Close()
			errR.Close()
			return nil, nil, nil, fmt.Errorf("open the user namespace of %d: %w", pid, err)
		}
		defer userns.Close()
	}

	cmd = exec.Command("/proc/self/exe", execArg) // the path is set by runFrom
	cmd.Args[0] = "nsrun-exec"
	cmd.Env = os.Environ()
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if o.Interactive {
		cmd.Stdin = os.Stdin
	}
	cmd.ExtraFiles = []*os.File{goR, errW, mnt, specR}
	// No Pdeathsig here: Go's fork checks getppid() against the parent's pid, which a child
	// born in another pid namespace sees as 0, and kills itself. The joiner sets it.
	cmd.SysProcAttr = &syscall.SysProcAttr{}
	if con != nil {
		con.attach(cmd) // the joiner makes the terminal from the container's devpts
	}

	runFrom(cmd, self)

	// The switched thread is never given back to the Go scheduler: the goroutine ends
	// locked, and the runtime then retires the thread with its namespaces. It must outlive
	// the joiner, whose parent-death signal fires when the thread that forked it exits.
	done := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		var err error
		cmd, err = forkInNamespaces(pid, cmd, self, userns)
		done <- err
		<-release
	}()
	if err = <-done; err != nil {
		goW.Close()
		errR.Close()
		return nil, nil, nil, err
	}
	return cmd, goW, errR, nil
}

func forkInNamespaces(pid int, cmd *exec.Cmd, self, userns *os.File) (*exec.Cmd, error) {
	// Clone the joiner straight into the target's cgroup where one cgroup2 dir is all of it,
	// unless the target has a cgroup namespace of its own: the kernel checks the move
	// against the forking thread's cgroup namespace, which then hides nsrun's own cgroup.
	into := ""
	if same, _ := sameNamespace(pid, "cgroup"); same {
		into = v2CgroupOf(pid)
	}
	var opts []string
	for _, ns := range threadNamespaces {
		if same, err := sameNamespace(pid, ns.file); err != nil {
			return cmd, fmt.Errorf("read the %s namespace of %d: %w", ns.file, pid, err)
		} else if same {
			continue
		}
		f, err := os.OpenFile(fmt.Sprintf("/proc/%d/ns/%s", pid, ns.file), os.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return cmd, fmt.Errorf("open the %s namespace of %d: %w", ns.file, pid, err)
		}
		err = unix.Setns(int(f.Fd()), ns.flag)
		f.Close()
		if err != nil {
			return cmd, fmt.Errorf("setns into the %s namespace of %d: %w", ns.file, pid, err)
		}
		opts = append(opts, ns.opt)
	}
	trace.Step("join the container's namespaces on one thread and start the joiner from it (the pid namespace applies to children)",
		trace.Cmd(append(append([]string{"nsenter", "--target", strconv.Itoa(pid)}, opts...), "--mount", "--root", "--wd")...))
	if userns != nil {
		// The forked child joins the user namespace before the mount namespace (which the
		// joiner then enters as the namespace's root) but after the thread namespaces above:
		// once in the container's user namespace, host root's privileges over a host-owned
		// one (a --netns netns) would be gone. runc 1.2 also joins what it can first.
		return cmd, forkJoinerInUserns(cmd, self, userns)
	}
	if into != "" {
		return startIntoCgroup(cmd, into, (*exec.Cmd).Start)
	}
	return cmd, cmd.Start()
}

// joinCgroupsOf puts child in the cgroups pid is in, in every hierarchy.
func joinCgroupsOf(pid, child int) error {
	hs, err := cgroup.Hierarchies()
	if err != nil {
		return err
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return err
	}
	paths := map[string]string{} // sorted controllers ("" for cgroup2) -> path
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, ":", 3)
		if len(f) == 3 {
			c := strings.Split(f[1], ",")
			sort.Strings(c)
			paths[strings.Join(c, ",")] = f[2]
		}
	}
	var dirs []string
	for _, h := range hs {
		key := ""
		if !h.V2 {
			c := append([]string{}, h.Controllers...)
			sort.Strings(c)
			key = strings.Join(c, ",")
		}
		if p, ok := paths[key]; ok && p != "/" {
			dirs = append(dirs, filepath.Join(h.Mount, p))
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	trace.Step(fmt.Sprintf("put the joiner in the container's cgroups (%d hierarchies)", len(dirs)),
		fmt.Sprintf("echo %d > %s/cgroup.procs …", child, dirs[0]))
	for _, d := range dirs {
		if err := os.WriteFile(filepath.Join(d, "cgroup.procs"), []byte(strconv.Itoa(child)), 0); err != nil {
			return fmt.Errorf("join cgroup %s: %w", d, err)
		}
	}
	return nil
}

// maybeJoiner is the joiner's side (see startJoiner); it never returns when this process is
// one.
func maybeJoiner() {
	if len(os.Args) < 2 || os.Args[1] != execArg {
		return
	}
	goruntime.LockOSThread()
	trace.Setup("nsrun", false)
	unix.CloseOnExec(initErrFd)
	errW := os.NewFile(initErrFd, "exec-error")
	initTerm = consoleFromArgs(os.Args[2:])
	err := joinAndExec()
	errW.Write([]byte(errText(err)))
	os.Exit(1)
}

func joinAndExec() error {
	// Die with nsrun exec, as the container's init dies with nsrun.
	if err := unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0); err != nil {
		return err
	}
	goR := os.NewFile(initGoFd, "exec-go")
	b := make([]byte, 1)
	if n, _ := goR.Read(b); n != 1 {
		os.Exit(1)
	}
	goR.Close()
	specR := os.NewFile(execSpecFd, "exec-spec")
	var spec specs.Spec
	err := json.NewDecoder(specR).Decode(&spec)
	specR.Close()
	if err != nil {
		return fmt.Errorf("read the process description: %w", err)
	}
	// This thread stops sharing root and cwd with the runtime's other threads, which is
	// what setns into a mount namespace requires; it then lands at the container's root.
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	trace.Step("join the container's mount namespace: root and cwd become the container's", "nsenter --mount --root --wd")
	if err := unix.Setns(execMntFd, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("setns into the container's mount namespace: %w", err)
	}
	unix.Close(execMntFd)
	for _, rl := range spec.Process.Rlimits {
		if rl.Type == "RLIMIT_NOFILE" {
			// The program sets it behind Go's back, and syscall.Exec would then put back
			// the soft limit this process started with over it: a Setrlimit (here of the
			// current value) tells Go to leave it alone.
			var cur syscall.Rlimit
			if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &cur) == nil {
				syscall.Setrlimit(syscall.RLIMIT_NOFILE, &cur)
			}
		}
	}
	p, err := newProg()
	if err != nil {
		return err
	}
	p.console(initTerm, spec.Process.User.UID, false)
	if err := p.process(&spec, setgroupsDenied()); err != nil {
		p.release()
		return err
	}
	if trace.Enabled() && initTerm != nil {
		// The narration stays on nsrun's stderr, out of the command's terminal.
		if fd, err := unix.FcntlInt(2, unix.F_DUPFD_CLOEXEC, 3); err == nil {
			trace.SetOutput(os.NewFile(uintptr(fd), "trace"))
		}
	}
	return p.runHere()
}

// readFailure reads the joiner's failure, as text; EOF with none: its execve succeeded.
func readFailure(errR, _ *os.File) error {
	msg, _ := io.ReadAll(errR)
	if len(msg) > 0 {
		return errors.New(strings.TrimSpace(string(msg)))
	}
	return nil
}
