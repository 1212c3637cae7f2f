package shim_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	shimpkg "github.com/hardway/hardway/internal/shim"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// A container started with --tty has a terminal of its own devpts as stdin and stdout (tty
// names /dev/pts/0 inside), its output is logged as stdout (\r\n, as a terminal writes it),
// its exit is recorded, and rm leaves nothing.
func TestTTY(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; tty; ls -l /proc/self/fd/0; echo err >&2; exit 3", "tty")
	if r := shim(t, "--tty", "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim --tty: %d %s", r.Code, r.Stderr)
	}
	if code := wait(t, id); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
	es := logEntries(t, id, 3)
	var all strings.Builder
	for _, e := range es {
		if e["stream"] != "stdout" {
			t.Errorf("log entry %v: a terminal's output is stdout", e)
		}
		all.WriteString(e["log"])
	}
	if !strings.HasPrefix(all.String(), "tty\r\n/dev/pts/0\r\n") || !strings.Contains(all.String(), "/proc/self/fd/0 -> /dev/pts/0\r\n") || !strings.HasSuffix(all.String(), "err\r\n") {
		t.Errorf("log %q: want tty, /dev/pts/0 twice (tty, the fd), err, with a terminal's \\r\\n", all.String())
	}
	if r := shim(t, "logs", id); r.Code != 0 || r.Stdout != all.String() || r.Stderr != "" {
		t.Errorf("shim logs: %d stdout %q stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if r := shim(t, "rm", id); r.Code != 0 {
		t.Fatalf("shim rm: %d %s", r.Code, r.Stderr)
	}
	for _, p := range []string{state.RunDir(id), state.LogFile(id), state.ContainerDir(id) + "/state.json"} {
		if exists(p) {
			t.Errorf("%s is left after rm", p)
		}
	}
}

// The pty is the container's controlling terminal, and attach types into it: the line
// discipline echoes the input and turns ^C into SIGINT for the foreground process group.
// The runtime is not on that terminal, so nothing typed there can signal it.
func TestTTYAttach(t *testing.T) {
	testutil.TempState(t)
	// A run dir so deep that the console socket's path is longer than sun_path's 108 bytes.
	t.Setenv("HARDWAY_RUN", filepath.Join(t.TempDir(), strings.Repeat("r", 60), strings.Repeat("u", 60)))
	id := bundle(t, "trap 'echo interrupted; exit 7' INT; echo ready; read line; echo got=$line; while true; do sleep 1; done")
	r := shim(t, "--tty", "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id))
	if r.Code != 0 {
		t.Fatalf("shim --tty: %d %s", r.Code, r.Stderr)
	}
	if es := logEntries(t, id, 1); len(es) == 0 || es[0]["log"] != "ready\r\n" {
		t.Fatalf("not ready: %v", es)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(r.Stdout))
	nsrun, _ := ppidAndSid(t, pid)
	if ctty(t, pid) == 0 || ctty(t, nsrun) != 0 {
		t.Errorf("controlling terminals: the container's %#x, nsrun's (pid %d) %#x; want the container's only", ctty(t, pid), nsrun, ctty(t, nsrun))
	}
	a := exec.Command(testutil.Bin(t, "shim"), "attach", id)
	in, err := a.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out, errb strings.Builder
	a.Stdout, a.Stderr = &out, &errb
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	// ^C only once the line is read: the line discipline flushes unread input on an interrupt.
	in.Write([]byte("typed\n"))
	until(t, "the container reads the typed line", func() bool {
		b, _ := os.ReadFile(state.LogFile(id))
		return strings.Contains(string(b), "got=typed")
	})
	in.Write([]byte{3})
	in.Close()
	err = a.Wait()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if !strings.Contains(out.String(), "got=typed\r\n") || !strings.Contains(out.String(), "interrupted") || errb.String() != "" || code != 7 {
		t.Errorf("attach: stdout %q stderr %q exit %d; want got=typed, interrupted, exit 7", out.String(), errb.String(), code)
	}
	for _, p := range []string{state.RunDir(id) + "/attach", shimpkg.ConsoleSocket(id)} {
		if exists(p) {
			t.Errorf("%s is left after the exit", p)
		}
	}
}

// attach from a terminal: the container's terminal takes the size of attach's.
func TestTTYAttachResize(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "echo ready; for i in $(seq 100); do [ \"$(stty size)\" = '40 120' ] && break; sleep 0.1; done; stty size", "stty", "seq")
	if r := shim(t, "--tty", "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim --tty: %d %s", r.Code, r.Stderr)
	}
	if es := logEntries(t, id, 1); len(es) == 0 || es[0]["log"] != "ready\r\n" {
		t.Fatalf("not ready: %v", es)
	}
	// The terminal attach runs on: a pty of the test's own, 40 rows by 120 columns.
	_, slave := testutil.Pty(t, 40, 120)
	a := exec.Command(testutil.Bin(t, "shim"), "attach", id)
	var out strings.Builder
	a.Stdin, a.Stdout = slave, &out
	if err := a.Run(); err != nil {
		t.Fatalf("attach: %v", err)
	}
	if !strings.Contains(out.String(), "40 120\r\n") {
		t.Errorf("attach output %q: the container's terminal did not take attach's size 40 120", out.String())
	}
}

// ctty is a process's controlling terminal as a device number (0: none).
func ctty(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	n, _ := strconv.Atoi(f[4])
	return n
}

// runc under the shim: the shim adds --console-socket and --pid-file to `runc run -d`, takes
// the terminal runc sends, learns the pid from the pid file once runc has detached, and
// supervises the container it inherits (a subreaper's orphan) to its exit code.
func TestTTYRunc(t *testing.T) {
	testutil.TempState(t)
	testutil.CgroupParent(t)
	id := bundle(t, "tty; echo ready; read line; echo got=$line; exit 6", "tty")
	testutil.EditBundle(t, state.ContainerDir(id), func(s *specs.Spec) { s.Process.Terminal = true })
	root := t.TempDir()
	t.Cleanup(func() { exec.Command("runc", "--root", root, "delete", "-f", id).Run() })
	r := shim(t, "--tty", "--id", id, "--", "runc", "--root", root, "run", "-d", "-b", state.ContainerDir(id), id)
	if r.Code != 0 {
		t.Fatalf("shim --tty -- runc run -d: %d %s", r.Code, r.Stderr)
	}
	if c := readState(t, id); strings.TrimSpace(r.Stdout) != strconv.Itoa(c.Pid) || c.Status != state.StatusRunning {
		t.Fatalf("shim printed %q; state.json %+v", r.Stdout, c)
	}
	a := exec.Command(testutil.Bin(t, "shim"), "attach", id)
	a.Stdin = strings.NewReader("typed\n")
	out, _ := a.Output()
	if code := wait(t, id); code != 6 {
		t.Errorf("exit code %d, want 6", code)
	}
	if !strings.Contains(string(out), "got=typed\r\n") {
		t.Errorf("attach to runc's container: %q; want got=typed", out)
	}
	var all strings.Builder
	for _, e := range logEntries(t, id, 3) {
		all.WriteString(e["log"])
	}
	if !strings.HasPrefix(all.String(), "/dev/pts/0\r\nready\r\n") {
		t.Errorf("log %q: want tty to name /dev/pts/0 inside runc's container", all.String())
	}
}
