package shim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/state"
)

// MaybeDaemon runs the detached supervisor when this process is one, and never returns
// then. It must be called first thing in main.
func MaybeDaemon() {
	if len(os.Args) < 6 || os.Args[1] != daemonArg {
		return
	}
	os.Exit(daemon(os.Args[2], Options{LogFormat: os.Args[3], Interactive: os.Args[4] == "i", TTY: os.Args[4] == "t"}, os.Args[5:]))
}

var toolError = regexp.MustCompile(`^[a-z]+: error: `)

func daemon(id string, o Options, command []string) int {
	// The runtime child is killed when the thread that forked it dies: keep that thread.
	goruntime.LockOSThread()
	unix.CloseOnExec(callerFd)
	caller := &reporter{f: os.NewFile(callerFd, "caller")}

	c, err := state.ReadContainer(id)
	if err != nil {
		caller.report(syncMsg{Error: fmt.Sprintf("read state of %s: %v", id, err)})
		return 1
	}
	fail := func(msg string) int {
		now := time.Now().UTC()
		code := 1
		c.Status, c.Error, c.Finished, c.ExitCode = state.StatusExited, msg, &now, &code
		state.WriteContainer(c)
		caller.report(syncMsg{Error: msg})
		return 1
	}

	// Orphaned descendants (the container, once nsrun is gone) are reparented to us.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		return fail("become a subreaper: " + err.Error())
	}
	// Before the child exists, so no SIGCHLD is missed, and before the pid file, so no
	// signal sent to the pid found there is lost.
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)
	if err := os.WriteFile(PidFile(id), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(err.Error())
	}
	defer os.Remove(PidFile(id))

	// The OOM killer's count before the container runs; a higher count after it is gone
	// means the kernel killed in it (Docker's State.OOMKilled).
	cg := cgroupOf(command, id)
	oomBefore, oomErr := cgroup.OOMKills(cg)

	path, err := exec.LookPath(command[0])
	if err != nil {
		return fail(fmt.Sprintf("runtime %s: %v", command[0], err))
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	// The container's stdio: pipes (stdin a pipe that attach clients write to with -i,
	// else /dev/null). With --tty the runtime's own messages still come on the pipes, and
	// the container's terminal comes over the console socket: the shim keeps its master.
	var (
		outR, errR        *os.File // what the shim reads: stdout, stderr
		inW               *os.File // where attach input goes (the master, once it came, with a tty)
		childIn, childOut *os.File
		childErr          *os.File
		sys               = &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL} // the runtime (and with it the container) does not outlive its supervisor
		con               *consoleSocket
		consolec          <-chan *os.File
	)
	if outR, childOut, err = os.Pipe(); err != nil {
		return fail(err.Error())
	}
	if errR, childErr, err = os.Pipe(); err != nil {
		return fail(err.Error())
	}
	if o.Interactive && !o.TTY {
		childIn, inW, err = os.Pipe()
	} else {
		childIn, err = os.Open(os.DevNull)
	}
	if err != nil {
		return fail(err.Error())
	}
	if o.TTY {
		if con, err = listenConsole(id); err != nil {
			return fail("console socket: " + err.Error())
		}
		defer con.close()
		consolec = con.got
		command = withConsoleSocket(command, con.arg)
	}
	// A runc-style runtime reports no pid on the sync pipe: it writes a pid file, and with
	// run -d exits once the container runs, which is then reparented to us (conmon's way).
	pidFile := ""
	if runcLike(command) {
		pidFile = filepath.Join(state.RunDir(id), "runtime.pid")
		os.Remove(pidFile)
		command = withRunFlags(command, "--pid-file", pidFile)
	}
	log, err := openLog(id, o.LogFormat)
	if err != nil {
		return fail(err.Error())
	}
	defer log.Close()
	att, err := listenAttach(id, inW, o.TTY)
	if err != nil {
		return fail("attach socket: " + err.Error())
	}
	proc, err := os.StartProcess(path, command, &os.ProcAttr{
		Env:   append(runtimeEnv(), fmt.Sprintf("HARDWAY_SYNCPIPE=%d", 3)),
		Files: []*os.File{childIn, childOut, childErr, syncW},
		Sys:   sys,
	})
	// Only the child keeps these: the pipes then end when it and the container are gone.
	childIn.Close()
	childOut.Close()
	childErr.Close()
	syncW.Close()
	if err != nil {
		att.close()
		return fail(fmt.Sprintf("start %s: %v", path, err))
	}

	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); pump(outR, "stdout", streamStdout, log, att) }()
	go func() { defer copiers.Done(); pump(errR, "stderr", streamStderr, log, att) }()
	// The terminal: its master reads EIO once the container and everything it started are
	// gone. A terminal has one output, logged as stdout as Docker logs a tty container's.
	takeConsole := func(m *os.File) {
		consolec = nil
		if m == nil {
			return
		}
		att.setStdin(m)
		copiers.Add(1)
		go func() { defer copiers.Done(); pump(m, "stdout", streamStdout, log, att) }()
	}

	syncc := make(chan syncMsg, 1)
	go func() {
		var m syncMsg
		if line, _ := bufio.NewReader(syncR).ReadBytes('\n'); len(line) > 0 {
			if json.Unmarshal(line, &m) != nil {
				m.Error = "runtime said " + strings.TrimSpace(string(line))
			}
		}
		syncR.Close()
		syncc <- m
	}()

	var (
		started, runtimeDone bool
		detached             int                         // the container's pid once a detaching runtime is gone
		reaped               = map[int]unix.WaitStatus{} // what exited before the pid file was read
		startErr             string
		status               unix.WaitStatus
		early                []os.Signal // arrived before the container's pid was known
	)
	start := func(pid int) {
		now := time.Now().UTC()
		c.Status, c.Pid, c.ShimPid, c.Started = state.StatusRunning, pid, os.Getpid(), &now
		state.WriteContainer(c)
		started = true
		caller.report(syncMsg{Pid: pid})
		if len(early) > 0 {
			go deliverEarly(pid, early)
		}
		early = nil
	}
	for {
		if runtimeDone && syncc == nil && !started && detached == 0 && pidFile != "" && status.Exited() && status.ExitStatus() == 0 {
			// The runtime detached: its pid file names the container, now our child.
			b, _ := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if pid <= 0 {
				break
			}
			if consolec != nil {
				select {
				case m := <-consolec:
					takeConsole(m)
				case <-time.After(5 * time.Second):
				}
			}
			start(pid)
			detached = pid
			if ws, ok := reaped[pid]; ok {
				status, detached = ws, 0
			}
			continue
		}
		if runtimeDone && syncc == nil && detached == 0 {
			break
		}
		select {
		case m := <-consolec:
			takeConsole(m)
		case m := <-syncc:
			syncc = nil
			if m.Pid > 0 && consolec != nil {
				// The init sent the terminal before it exec'd, the runtime reported the pid
				// after: it is there to take, so the caller can attach and type at once.
				select {
				case mf := <-consolec:
					takeConsole(mf)
				case <-time.After(5 * time.Second):
				}
			}
			switch {
			case m.Pid > 0:
				start(m.Pid)
			case m.Error != "":
				startErr = m.Error
			}
		case s := <-sigc:
			if s != unix.SIGCHLD {
				if !started {
					early = append(early, s) // delivered once the container exists
					continue
				}
				if detached > 0 {
					unix.Kill(detached, s.(unix.Signal))
				} else {
					proc.Signal(s) // nsrun passes it on to the container
				}
				continue
			}
			// Reap everything: the runtime, and whatever was reparented to us.
			for {
				var ws unix.WaitStatus
				pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
				if err == unix.EINTR {
					continue
				}
				if pid <= 0 || err != nil {
					break
				}
				switch pid {
				case proc.Pid:
					runtimeDone, status = true, ws
				case detached:
					status, detached = ws, 0
				default:
					if pidFile != "" && !started {
						reaped[pid] = ws
					}
				}
			}
		}
	}

	// Everything the container wrote reaches the log before its exit is recorded.
	drained := make(chan struct{})
	go func() { copiers.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(5 * time.Second):
	}
	att.close()
	code := status.ExitStatus()
	if status.Signaled() {
		code = 128 + int(status.Signal())
	}
	if !started {
		if startErr == "" {
			startErr = log.lastStderr()
		}
		if startErr == "" {
			startErr = fmt.Sprintf("%s exited with status %d before the container started", command[0], code)
		}
		return fail(toolError.ReplaceAllString(startErr, ""))
	}
	if oomErr == nil {
		if after, err := cgroup.OOMKills(cg); err == nil && after > oomBefore {
			c.OOMKilled = true
		}
	}
	now := time.Now().UTC()
	c.Status, c.ExitCode, c.Finished = state.StatusExited, &code, &now
	state.WriteContainer(c)
	return 0
}

// runtimeEnv is the supervisor's environment without HARDWAY_TRACE: shim --trace narrates
// the shim, and the runtime's narration would land in the container's log (ask the
// runtime for it with its own --trace).
func runtimeEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "HARDWAY_TRACE=") {
			env = append(env, e)
		}
	}
	return env
}

// pump copies one of the container's streams to the log and to attached clients.
func pump(r *os.File, stream string, tag byte, log *ctrLog, att *attachServer) {
	defer r.Close()
	buf := make([]byte, packetMax)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			log.feed(stream, buf[:n])
			att.broadcast(tag, buf[:n])
		}
		if err != nil {
			log.flush(stream)
			return
		}
	}
}

// deliverEarly sends the signals that came before the container existed. The container's
// process is PID 1 of its pid namespace, and the kernel drops a signal sent to such an
// init from outside unless it has a handler for it: so each waits (a moment, bounded)
// until the init has installed its handler (SigCgt in /proc/PID/status) or ignores it.
func deliverEarly(pid int, sigs []os.Signal) {
	for _, s := range sigs {
		sig := s.(unix.Signal)
		for i := 0; i < 200 && !handles(pid, sig); i++ {
			time.Sleep(10 * time.Millisecond)
		}
		unix.Kill(pid, sig)
	}
}

// handles reports whether pid catches or ignores sig.
func handles(pid int, sig unix.Signal) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true // gone: nothing to wait for
	}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, _ := strings.Cut(l, ":")
		if k != "SigCgt" && k != "SigIgn" {
			continue
		}
		if mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil && mask&(1<<(uint(sig)-1)) != 0 {
			return true
		}
	}
	return false
}

// cgroupOf is the cgroup id the runtime is told to use (--cgroup ID), else the container id.
func cgroupOf(command []string, id string) string {
	for i, a := range command {
		if a == "--" {
			break
		}
		if a == "--cgroup" && i+1 < len(command) {
			return command[i+1]
		}
		if v, ok := strings.CutPrefix(a, "--cgroup="); ok {
			return v
		}
	}
	return id
}
