package shim_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// shim runs bin/shim with args and returns what a user would see.
func shim(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	return testutil.Run(t, "shim", args...)
}

// container makes a busybox bundle running script, linked in as containers/ID so shim finds
// its config.json, and starts it under shim. It returns the id and the container's pid.
func container(t *testing.T, script string) (string, int) {
	t.Helper()
	return testutil.ShimContainer(t, "sh", script)
}

func readState(t *testing.T, id string) *state.Container {
	t.Helper()
	c, err := state.ReadContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// logEntries reads log.json once it has at least n entries (or after a few seconds).
func logEntries(t *testing.T, id string, n int) []map[string]string {
	t.Helper()
	var es []map[string]string
	for i := 0; i < 100; i++ {
		es = nil
		f, err := os.Open(state.LogFile(id))
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e map[string]string
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("log line %q is not JSON: %v", sc.Text(), err)
				}
				es = append(es, e)
			}
			f.Close()
		}
		if len(es) >= n {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	return es
}

func wait(t *testing.T, id string) int {
	t.Helper()
	r := shim(t, "wait", id)
	if r.Code != 0 {
		t.Fatalf("shim wait: exit %d: %s", r.Code, r.Stderr)
	}
	code, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("shim wait printed %q", r.Stdout)
	}
	return code
}

func ppidAndSid(t *testing.T, pid int) (int, int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	ppid, _ := strconv.Atoi(f[1])
	sid, _ := strconv.Atoi(f[3])
	return ppid, sid
}

func TestStartDetachesLogsAndKills(t *testing.T) {
	id, pid := container(t, "trap 'exit 143' TERM; echo out; echo err >&2; printf partial; while true; do sleep 1; done")
	if err := unix.Kill(pid, 0); err != nil {
		t.Fatalf("container pid %d is not alive: %v", pid, err)
	}
	c := readState(t, id)
	if c.Status != state.StatusRunning || c.Pid != pid || c.ShimPid == 0 || c.Started == nil {
		t.Fatalf("state.json: %+v, want running with pid %d", c, pid)
	}
	ppid, sid := ppidAndSid(t, c.ShimPid)
	if ppid == os.Getpid() {
		t.Errorf("the supervisor's parent is the test: it did not detach")
	}
	if mySid, _ := unix.Getsid(0); sid == mySid {
		t.Errorf("the supervisor shares the test's session %d", sid)
	}
	if b, err := os.ReadFile(state.RunDir(id) + "/shim.pid"); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(c.ShimPid) {
		t.Errorf("shim.pid: %q, %v", b, err)
	}
	if r := shim(t, "ps"); !strings.Contains(r.Stdout, id) || !strings.Contains(r.Stdout, "busybox:test") || !strings.Contains(r.Stdout, "Up ") {
		t.Errorf("shim ps:\n%s", r.Stdout)
	}
	// Running again is a no-op that prints the same pid.
	if r := shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); strings.TrimSpace(r.Stdout) != strconv.Itoa(pid) {
		t.Errorf("second shim --id %s printed %q, want %d", id, r.Stdout, pid)
	}

	es := logEntries(t, id, 2)
	got := map[string]string{}
	for _, e := range es {
		got[e["stream"]] += e["log"]
		if _, err := time.Parse(time.RFC3339Nano, e["time"]); err != nil || !strings.HasSuffix(e["time"], "Z") {
			t.Errorf("log time %q is not RFC3339Nano UTC", e["time"])
		}
	}
	if got["stdout"] != "out\n" || got["stderr"] != "err\n" {
		t.Errorf("log.json before exit: %v", es)
	}

	if r := shim(t, "kill", id); r.Code != 0 {
		t.Fatalf("shim kill: %d %s", r.Code, r.Stderr)
	}
	if code := wait(t, id); code != 143 {
		t.Errorf("after shim kill: exit code %d, want 143", code)
	}
	c = readState(t, id)
	if c.Status != state.StatusExited || c.ExitCode == nil || *c.ExitCode != 143 || c.Finished == nil {
		t.Errorf("state.json after kill: %+v", c)
	}
	es = logEntries(t, id, 3)
	if last := es[len(es)-1]; last["log"] != "partial" || last["stream"] != "stdout" {
		t.Errorf("a last line without newline is logged as is: %v", es)
	}
	if r := shim(t, "logs", id); r.Stdout != "out\npartial" || r.Stderr != "err\n" {
		t.Errorf("shim logs: stdout %q stderr %q", r.Stdout, r.Stderr)
	}
	if r := shim(t, "kill", id); r.Code != 0 {
		t.Errorf("shim kill of an exited container: %d %s", r.Code, r.Stderr)
	}
	if r := shim(t, "ps"); !strings.Contains(r.Stdout, "Exited (143)") {
		t.Errorf("shim ps after exit:\n%s", r.Stdout)
	}
}

func TestKillSIGKILL(t *testing.T) {
	id, _ := container(t, "sleep 30")
	if r := shim(t, "kill", id, "KILL"); r.Code != 0 {
		t.Fatalf("shim kill KILL: %d %s", r.Code, r.Stderr)
	}
	if code := wait(t, id); code != 137 {
		t.Errorf("exit code %d, want 137", code)
	}
}

func TestExitCode(t *testing.T) {
	id, _ := container(t, "exit 7")
	if code := wait(t, id); code != 7 {
		t.Errorf("shim wait: %d, want 7", code)
	}
	if c := readState(t, id); c.ExitCode == nil || *c.ExitCode != 7 {
		t.Errorf("state.json: %+v", c)
	}
}

func TestLongLinesSplit(t *testing.T) {
	id, _ := container(t, "head -c 40000 /dev/zero | tr '\\0' a; echo")
	wait(t, id)
	es := logEntries(t, id, 3)
	if len(es) != 3 || len(es[0]["log"]) != 16384 || len(es[1]["log"]) != 16384 || es[2]["log"] != strings.Repeat("a", 40000-2*16384)+"\n" {
		lens := []int{}
		for _, e := range es {
			lens = append(lens, len(e["log"]))
		}
		t.Errorf("a 40000-byte line logged as pieces of %v, want 16384, 16384, 7233", lens)
	}
}

func TestRuntimeFailure(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	id := testutil.ID("sh")
	t.Cleanup(func() { shim(t, "rm", id) })
	missing := state.ContainerDir(id) + "-nope"
	r := shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), missing)
	want := "shim: error: bundle " + missing + " does not exist (run: overlay --id ID IMAGE)\n"
	if r.Code != 1 || r.Stderr != want || r.Stdout != "" {
		t.Errorf("runtime failure: exit %d, stdout %q, stderr %q; want 1 and %q", r.Code, r.Stdout, r.Stderr, want)
	}
	c := readState(t, id)
	if c.Status != state.StatusExited || !strings.Contains(c.Error, "does not exist") {
		t.Errorf("state.json: %+v", c)
	}
	// A runtime that dies without a word: its stderr is the error.
	r = shim(t, "--id", id, "--", "sh", "-c", "echo 'bad things' >&2; exit 2")
	if r.Code != 1 || r.Stderr != "shim: error: bad things\n" {
		t.Errorf("silent runtime: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestRmLeavesNothing(t *testing.T) {
	id, pid := container(t, "sleep 30")
	c := readState(t, id)
	if r := shim(t, "rm", id); r.Code != 0 {
		t.Fatalf("shim rm: %d %s", r.Code, r.Stderr)
	}
	if !gone(pid) {
		t.Errorf("container pid %d still alive after rm", pid)
	}
	if !gone(c.ShimPid) {
		t.Errorf("supervisor %d still alive after rm", c.ShimPid)
	}
	for _, p := range []string{state.StateFile(id), state.LogFile(id), state.RunDir(id)} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left after shim rm", p)
		}
	}
	if r := shim(t, "rm", id); r.Code != 0 {
		t.Errorf("shim rm of a removed container: %d %s", r.Code, r.Stderr)
	}
	if r := shim(t, "ps"); strings.Contains(r.Stdout, id) {
		t.Errorf("ps still lists %s", id)
	}
}

func TestSignalsToTheSupervisorReachTheContainer(t *testing.T) {
	id, _ := container(t, "trap 'exit 9' TERM; echo ready; while true; do sleep 1; done")
	if es := logEntries(t, id, 1); len(es) == 0 || es[0]["log"] != "ready\n" {
		t.Fatalf("container did not get ready: %v", es)
	}
	if err := unix.Kill(readState(t, id).ShimPid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := wait(t, id); code != 9 {
		t.Errorf("SIGTERM to the supervisor: container exited %d, want 9 (its TERM trap)", code)
	}
}
