package shim

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

func read(id string) (*state.Container, error) {
	if err := state.ValidID(id); err != nil {
		return nil, err
	}
	c, err := state.ReadContainer(id)
	if errors.Is(err, os.ErrNotExist) {
		return nil, cli.Errorf("run: shim --id "+id+" -- nsrun BUNDLE", "no container %s", id)
	}
	return c, err
}

// Ps prints a table of every container that has a state.json, like docker ps -a.
func Ps(w io.Writer) error {
	dirs, _ := filepath.Glob(filepath.Join(state.ContainersDir(), "*", "state.json"))
	var cs []*state.Container
	for _, p := range dirs {
		if c, err := state.ReadContainer(filepath.Base(filepath.Dir(p))); err == nil {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Created.After(cs[j].Created) })
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPID")
	now := time.Now()
	for _, c := range cs {
		image := c.Image
		if image == "" {
			image = imageOf(c.ID)
		}
		args := processArgs(c.ID)
		if args == nil {
			args = c.Command
		}
		pid := "-"
		if c.Status == state.StatusRunning && c.Pid > 0 {
			pid = strconv.Itoa(c.Pid)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, orDash(image), quoteCmd(args),
			humanDuration(now.Sub(c.Created))+" ago", statusText(c, now), pid)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func quoteCmd(args []string) string {
	s := strings.Join(args, " ")
	if len(s) > 20 {
		s = s[:19] + "…"
	}
	return `"` + s + `"`
}

func statusText(c *state.Container, now time.Time) string {
	switch c.Status {
	case state.StatusRunning:
		if !alive(c.ShimPid) {
			return "Unknown (supervisor gone)"
		}
		if c.Started != nil {
			return "Up " + humanDuration(now.Sub(*c.Started))
		}
		return "Up"
	case state.StatusExited:
		code := 0
		if c.ExitCode != nil {
			code = *c.ExitCode
		}
		if c.Finished != nil {
			return fmt.Sprintf("Exited (%d) %s ago", code, humanDuration(now.Sub(*c.Finished)))
		}
		return fmt.Sprintf("Exited (%d)", code)
	}
	return "Created"
}

// humanDuration speaks like docker ps: "3 seconds", "About a minute", "2 hours".
func humanDuration(d time.Duration) string {
	s := int(d.Seconds())
	switch {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	case int(d.Minutes()) == 1:
		return "About a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d minutes", int(d.Minutes()))
	case int(d.Round(time.Hour).Hours()) == 1:
		return "About an hour"
	case d < 48*time.Hour:
		return fmt.Sprintf("%d hours", int(d.Round(time.Hour).Hours()))
	}
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}

// ParseSignal reads TERM, SIGTERM or 15.
func ParseSignal(s string) (unix.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil && n > 0 && n < 65 {
		return unix.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	if sig := unix.SignalNum(name); sig != 0 {
		return sig, nil
	}
	return 0, cli.Errorf("use a name like TERM or KILL, or a number", "unknown signal %q", s)
}

// Kill sends sig to the container's process; a container that is not running is a no-op.
func Kill(id string, sig unix.Signal) error {
	c, err := read(id)
	if err != nil {
		return err
	}
	if c.Status != state.StatusRunning || c.Pid <= 0 {
		return nil
	}
	trace.Step(fmt.Sprintf("send %s to the container's PID 1 (host pid %d)", unix.SignalName(sig), c.Pid),
		fmt.Sprintf("kill -%s %d", strings.TrimPrefix(unix.SignalName(sig), "SIG"), c.Pid))
	if err := unix.Kill(c.Pid, sig); err != nil && err != unix.ESRCH {
		return fmt.Errorf("kill %d: %w", c.Pid, err)
	}
	return nil
}

// Wait blocks until the container has exited and returns its exit code.
func Wait(id string) (int, error) {
	for {
		c, err := read(id)
		if err != nil {
			return 0, err
		}
		if c.Status == state.StatusExited {
			if c.ExitCode == nil {
				return 0, fmt.Errorf("container %s exited with no recorded status", id)
			}
			return *c.ExitCode, nil
		}
		// A supervisor that died leaves no one to record the exit.
		if !supervised(c) {
			if c2, err := state.ReadContainer(id); err == nil && c2.Status == state.StatusExited {
				continue // it recorded the exit just before it went
			}
			return 0, cli.Errorf("shim rm "+id, "the supervisor of %s is gone; its exit status is lost", id)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Logs prints the container's log, each line on the stream it was written to. With
// follow it goes on printing what is written until the container has exited.
func Logs(id string, follow bool, stdout, stderr io.Writer) error {
	if _, err := read(id); err != nil {
		return err
	}
	var f *os.File
	var err error
	for _, p := range []string{state.LogFile(id), CRILogFile(id)} {
		if f, err = os.Open(p); err == nil || !errors.Is(err, os.ErrNotExist) {
			break
		}
	}
	if errors.Is(err, os.ErrNotExist) && !follow {
		return nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	defer func() {
		if f != nil {
			f.Close()
		}
	}()
	var pending []byte // a record not yet complete: the shim is still writing it
	for {
		if f != nil {
			b, err := io.ReadAll(f)
			if err != nil {
				return err
			}
			pending = append(pending, b...)
			for {
				i := bytes.IndexByte(pending, '\n')
				if i < 0 {
					break
				}
				if stream, text, ok := parseRecord(pending[:i+1]); ok {
					w := stdout
					if stream == "stderr" {
						w = stderr
					}
					io.WriteString(w, text)
				}
				pending = pending[i+1:]
			}
		}
		if !follow {
			return nil
		}
		// The shim writes the exit after the last output, so once it is recorded one more
		// read reaches the end of the log.
		c, err := read(id)
		if err != nil {
			return err
		}
		if c.Status == state.StatusExited || !supervised(c) {
			follow = false
			if f == nil {
				return nil
			}
			continue
		}
		time.Sleep(100 * time.Millisecond)
		if f == nil {
			f, _ = os.Open(state.LogFile(id))
			if f == nil {
				f, _ = os.Open(CRILogFile(id))
			}
		}
	}
}

// Rm kills a running container, waits for its supervisor to record the exit, and removes
// its state, log and run dir. The bundle stays: overlay rm removes that.
func Rm(id string) error {
	if err := state.ValidID(id); err != nil {
		return err
	}
	c, err := state.ReadContainer(id)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if c != nil && c.Status != state.StatusExited && alive(c.ShimPid) {
		if c.Pid > 0 {
			trace.Step("kill the running container", fmt.Sprintf("kill -KILL %d", c.Pid))
			unix.Kill(c.Pid, unix.SIGKILL)
		} else {
			// Not started yet: its supervisor takes the runtime down with it (pdeathsig).
			unix.Kill(c.ShimPid, unix.SIGKILL)
		}
		deadline := time.Now().Add(10 * time.Second)
		for alive(c.ShimPid) && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if alive(c.ShimPid) {
			return cli.Errorf("try again, or kill -9 "+strconv.Itoa(c.ShimPid), "the supervisor of %s did not finish within 10s", id)
		}
	}
	trace.Step("remove the container's state and log", trace.Cmd("rm", "-rf", state.StateFile(id), state.LogFile(id), CRILogFile(id), state.RunDir(id)))
	for _, p := range []string{state.StateFile(id), state.LogFile(id), CRILogFile(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	if err := os.RemoveAll(state.RunDir(id)); err != nil {
		return err
	}
	// The container dir goes too when shim alone made it (no bundle in it).
	os.Remove(state.ContainerDir(id))
	return nil
}

// supervised reports whether the container's supervisor is alive: the pid in state.json
// once running, the pid file before that.
func supervised(c *state.Container) bool {
	pid := c.ShimPid
	if pid == 0 {
		b, err := os.ReadFile(PidFile(c.ID))
		if err != nil {
			return false
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	return alive(pid)
}
