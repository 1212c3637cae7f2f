package shim

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/state"
)

// MaybeDaemon runs the detached supervisor when this process is one, and never returns
// then. It must be called first thing in main.
func MaybeDaemon() {
	if len(os.Args) < 3 || os.Args[1] != daemonArg {
		return
	}
	os.Exit(daemon(os.Args[2], os.Args[3:]))
}

var toolError = regexp.MustCompile(`^[a-z]+: error: `)

func daemon(id string, command []string) int {
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
	if err := os.WriteFile(PidFile(id), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return fail(err.Error())
	}
	defer os.Remove(PidFile(id))

	// Before the child exists, so no SIGCHLD is missed.
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, unix.SIGCHLD, unix.SIGTERM, unix.SIGINT, unix.SIGHUP, unix.SIGQUIT)

	path, err := exec.LookPath(command[0])
	if err != nil {
		return fail(fmt.Sprintf("runtime %s: %v", command[0], err))
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	syncR, syncW, err := os.Pipe()
	if err != nil {
		return fail(err.Error())
	}
	devnull, err := os.Open(os.DevNull)
	if err != nil {
		return fail(err.Error())
	}
	proc, err := os.StartProcess(path, command, &os.ProcAttr{
		Env:   append(os.Environ(), fmt.Sprintf("HARDWAY_SYNCPIPE=%d", 3)),
		Files: []*os.File{devnull, outW, errW, syncW},
		// The runtime (and with it the container) does not outlive its supervisor.
		Sys: &syscall.SysProcAttr{Pdeathsig: unix.SIGKILL},
	})
	devnull.Close()
	outW.Close()
	errW.Close()
	syncW.Close()
	if err != nil {
		return fail(fmt.Sprintf("start %s: %v", path, err))
	}

	log, err := openLog(state.LogFile(id))
	if err != nil {
		proc.Kill()
		return fail(err.Error())
	}
	defer log.Close()
	var copiers sync.WaitGroup
	copiers.Add(2)
	go func() { defer copiers.Done(); log.copy(outR, "stdout") }()
	go func() { defer copiers.Done(); log.copy(errR, "stderr") }()

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
		startErr             string
		status               unix.WaitStatus
	)
	for !runtimeDone || syncc != nil {
		select {
		case m := <-syncc:
			syncc = nil
			switch {
			case m.Pid > 0:
				now := time.Now().UTC()
				c.Status, c.Pid, c.ShimPid, c.Started = state.StatusRunning, m.Pid, os.Getpid(), &now
				state.WriteContainer(c)
				started = true
				caller.report(m)
			case m.Error != "":
				startErr = m.Error
			}
		case s := <-sigc:
			if s != unix.SIGCHLD {
				proc.Signal(s) // nsrun passes it on to the container
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
				if pid == proc.Pid {
					runtimeDone, status = true, ws
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
	now := time.Now().UTC()
	c.Status, c.ExitCode, c.Finished = state.StatusExited, &code, &now
	state.WriteContainer(c)
	return 0
}
