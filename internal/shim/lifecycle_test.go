package shim_test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// bundle makes a busybox bundle running script, with extra applets linked in, as
// containers/ID, and returns the id. shim rm runs at cleanup.
func bundle(t *testing.T, script string, applets ...string) string {
	t.Helper()
	testutil.RequireRoot(t)
	id := testutil.ID("sh")
	b := testutil.BusyboxBundle(t, id)
	testutil.SetArgs(t, b, script)
	for _, a := range applets {
		if err := os.Symlink("busybox", filepath.Join(b, "rootfs", "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(state.ContainersDir(), 0o755)
	if err := os.Symlink(b, state.ContainerDir(id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shim(t, "rm", id) })
	return id
}

// until polls cond every 20ms for at most 10s and fails the test with what if it never holds.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("gave up waiting: %s", what)
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

// gone: the process has exited (a zombie waiting for a slow PID 1 to reap it counts).
func gone(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))[0] == "Z"
}

func TestOOMKilled(t *testing.T) {
	testutil.TempState(t)
	testutil.CgroupParent(t)
	id := bundle(t, "tail /dev/zero", "tail")
	if _, err := cgroup.Create(id, cgroup.Limits{Memory: 16 << 20, MemorySwap: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.Delete(id) })
	if r := shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), "--cgroup", id, state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	if code := wait(t, id); code != 137 {
		t.Errorf("tail /dev/zero under 16M: exit %d, want 137", code)
	}
	if c := readState(t, id); !c.OOMKilled {
		t.Errorf("state.json has no oomKilled after the OOM killer struck: %+v", c)
	}
}

func TestNoOOMOnANormalExit(t *testing.T) {
	testutil.TempState(t)
	testutil.CgroupParent(t)
	id := bundle(t, "exit 0")
	if _, err := cgroup.Create(id, cgroup.Limits{Memory: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cgroup.Delete(id) })
	shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), "--cgroup="+id, state.ContainerDir(id))
	if code := wait(t, id); code != 0 {
		t.Errorf("exit %d", code)
	}
	if c := readState(t, id); c.OOMKilled {
		t.Errorf("oomKilled on a clean exit: %+v", c)
	}
}

// gated returns a runtime command that waits for the file gate before it execs nsrun, so
// a test can act while the supervisor does not know the container's pid yet.
func gated(t *testing.T, gate, id string, pre string) []string {
	return []string{"sh", "-c", pre + "while [ ! -e " + gate + " ]; do sleep 0.02; done; exec \"$@\"", "runtime",
		testutil.Bin(t, "nsrun"), state.ContainerDir(id)}
}

func TestEarlySignalIsDelivered(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "trap 'exit 9' TERM; while true; do sleep 1; done")
	gate := filepath.Join(t.TempDir(), "gate")
	caller := exec.Command(testutil.Bin(t, "shim"), append([]string{"--id", id, "--"}, gated(t, gate, id, "")...)...)
	out := &strings.Builder{}
	caller.Stdout = out
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	defer caller.Process.Kill()
	until(t, "the supervisor's pid file", func() bool { return exists(state.RunDir(id) + "/shim.pid") })
	b, _ := os.ReadFile(state.RunDir(id) + "/shim.pid")
	shimPid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	if c := readState(t, id); c.Pid != 0 {
		t.Fatalf("the container exists already: %+v", c)
	}
	if err := unix.Kill(shimPid, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(gate, nil, 0o644)
	if err := caller.Wait(); err != nil {
		t.Fatalf("shim with an early SIGTERM: %v", err)
	}
	if code := wait(t, id); code != 9 {
		t.Errorf("the SIGTERM that came before the container: exit %d, want 9 (its TERM trap)", code)
	}
}

func TestCallerKilledContainerLives(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "sleep 30")
	gate := filepath.Join(t.TempDir(), "gate")
	caller := exec.Command(testutil.Bin(t, "shim"), append([]string{"--id", id, "--"}, gated(t, gate, id, "")...)...)
	if err := caller.Start(); err != nil {
		t.Fatal(err)
	}
	until(t, "the supervisor's pid file", func() bool { return exists(state.RunDir(id) + "/shim.pid") })
	caller.Process.Signal(unix.SIGKILL)
	caller.Wait()
	os.WriteFile(gate, nil, 0o644)
	until(t, "the container to run", func() bool {
		c, err := state.ReadContainer(id)
		return err == nil && c.Status == state.StatusRunning
	})
	c := readState(t, id)
	if gone(c.Pid) || gone(c.ShimPid) {
		t.Fatalf("after the caller's SIGKILL: container %d or supervisor %d is gone", c.Pid, c.ShimPid)
	}
	if r := shim(t, "kill", id, "KILL"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if code := wait(t, id); code != 137 {
		t.Errorf("exit recorded as %d, want 137", code)
	}
}

// children lists the processes whose parent is pid, with their state letter.
func children(pid int) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			out[p] = f[0]
		}
	}
	return out
}

func TestOrphansAreReaped(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "sleep 30")
	pidFile := filepath.Join(t.TempDir(), "orphan")
	gate := filepath.Join(t.TempDir(), "gate")
	os.WriteFile(gate, nil, 0o644)
	// The runtime leaves an orphan behind: a subshell starts sleep and exits at once.
	cmd := gated(t, gate, id, "(sleep 30 & echo $! > "+pidFile+"); ")
	if r := shim(t, append([]string{"--id", id, "--"}, cmd...)...); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	orphan, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	shimPid := readState(t, id).ShimPid
	if _, ok := children(shimPid)[orphan]; !ok {
		t.Fatalf("the orphan %d was not reparented to the supervisor %d (children %v)", orphan, shimPid, children(shimPid))
	}
	unix.Kill(orphan, unix.SIGKILL)
	// Not a zombie, gone: the supervisor collected it.
	until(t, fmt.Sprintf("the supervisor to reap its orphan %d", orphan), func() bool { return unix.Kill(orphan, 0) == unix.ESRCH })
	for p, st := range children(shimPid) {
		if st == "Z" {
			t.Errorf("zombie %d left under the supervisor", p)
		}
	}
	if r := shim(t, "kill", id, "KILL"); r.Code != 0 {
		t.Fatal(r.Stderr)
	}
	if code := wait(t, id); code != 137 {
		t.Errorf("exit %d, want 137", code)
	}
}

var criLine = regexp.MustCompile(`^(\S+) (stdout|stderr) ([PF]) (.*)$`)

func TestCRILog(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "echo out; echo err >&2; head -c 20000 /dev/zero | tr '\\0' a; echo; printf partial")
	if r := shim(t, "--id", id, "--log-format", "cri", "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	wait(t, id)
	if exists(state.LogFile(id)) {
		t.Errorf("log.json written with --log-format cri")
	}
	b, err := os.ReadFile(filepath.Join(state.ContainerDir(id), "container.log"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		m := criLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("not a CRI log line: %q", sc.Text())
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Errorf("time %q: %v", m[1], err)
		}
		text := m[4]
		if len(text) > 20 {
			text = fmt.Sprintf("a×%d", len(text))
		}
		got = append(got, m[2]+" "+m[3]+" "+text)
	}
	var stdout []string
	for _, g := range got {
		if strings.HasPrefix(g, "stdout") {
			stdout = append(stdout, g)
		}
	}
	want := []string{"stdout F out", "stdout P a×16384", "stdout F a×3616", "stdout P partial"}
	if strings.Join(stdout, "|") != strings.Join(want, "|") || !strings.Contains(string(b), " stderr F err\n") {
		t.Errorf("CRI records %q, want stdout %q and stderr F err", got, want)
	}
	r := shim(t, "logs", id)
	if r.Stdout != "out\n"+strings.Repeat("a", 20000)+"\npartial" || r.Stderr != "err\n" {
		t.Errorf("shim logs of a CRI log: stdout %d bytes, stderr %q", len(r.Stdout), r.Stderr)
	}
	if r := shim(t, "--id", "x", "--log-format", "syslog", "--", "true"); r.Code == 0 {
		t.Errorf("an unknown log format was accepted")
	}
}

func TestLogsFollow(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "echo one; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo two >&2; printf three; exit 3", "[")
	if r := shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	f := exec.Command(testutil.Bin(t, "shim"), "logs", "-f", id)
	var errb strings.Builder
	f.Stderr = &errb
	out, _ := f.StdoutPipe()
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	defer f.Process.Kill()
	br := bufio.NewReader(out)
	if l, err := br.ReadString('\n'); l != "one\n" {
		t.Fatalf("logs -f: first line %q, %v", l, err)
	}
	// The container is still running: logs -f must still be there, waiting.
	os.WriteFile(filepath.Join(state.ContainerDir(id), "rootfs", "tmp", "go"), nil, 0o644)
	rest, _ := bufio.NewReader(br).ReadString(0)
	if err := f.Wait(); err != nil {
		t.Fatalf("logs -f: %v", err)
	}
	if rest != "three" || errb.String() != "two\n" {
		t.Errorf("logs -f after the first line: stdout %q stderr %q", rest, errb.String())
	}
}

func TestAttach(t *testing.T) {
	testutil.TempState(t)
	// A run dir so deep that its attach socket's path is longer than sun_path's 108 bytes.
	t.Setenv("HARDWAY_RUN", filepath.Join(t.TempDir(), strings.Repeat("r", 60), strings.Repeat("u", 60)))
	id := bundle(t, "echo ready; read line; echo got $line; echo bye >&2; exit 5")
	if len(state.RunDir(id)+"/attach") <= 108 {
		t.Fatalf("run dir is too short to test the long path")
	}
	if r := shim(t, "-i", "--id", id, "--", testutil.Bin(t, "nsrun"), "-i", state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	if es := logEntries(t, id, 1); len(es) == 0 || es[0]["log"] != "ready\n" {
		t.Fatalf("not ready: %v", es)
	}
	if fi, err := os.Stat(state.RunDir(id) + "/attach"); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no attach socket: %v", err)
	}
	a := exec.Command(testutil.Bin(t, "shim"), "attach", id)
	a.Stdin = strings.NewReader("hello\n")
	var out, errb strings.Builder
	a.Stdout, a.Stderr = &out, &errb
	err := a.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if out.String() != "got hello\n" || errb.String() != "bye\n" || code != 5 {
		t.Errorf("attach: stdout %q stderr %q exit %d; want got hello, bye, 5", out.String(), errb.String(), code)
	}
	if exists(state.RunDir(id) + "/attach") {
		t.Errorf("the attach socket is left after the exit")
	}
	r := shim(t, "attach", id)
	if r.Code != 1 || !strings.Contains(r.Stderr, "not running (see its output with: shim logs "+id+")") {
		t.Errorf("attach after exit: %d %q", r.Code, r.Stderr)
	}
}

func TestTwentyAtOnce(t *testing.T) {
	testutil.TempState(t)
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = bundle(t, "sleep 60")
	}
	shimBin, nsrun := testutil.Bin(t, "shim"), testutil.Bin(t, "nsrun")
	errs := make([]string, n)
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command(shimBin, "--id", id, "--", nsrun, state.ContainerDir(id)).CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("%s: %v %s", id, err, out)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	ps := shim(t, "ps").Stdout
	var pids []int
	for _, id := range ids {
		c := readState(t, id)
		if c.Status != state.StatusRunning || gone(c.Pid) || gone(c.ShimPid) {
			t.Errorf("%s is not supervised: %+v", id, c)
		}
		pids = append(pids, c.Pid, c.ShimPid)
		if !regexp.MustCompile(`(?m)^` + id + ` .* Up .* ` + strconv.Itoa(c.Pid) + `$`).MatchString(ps) {
			t.Errorf("shim ps does not list %s as up with pid %d", id, c.Pid)
		}
	}
	errs = make([]string, n)
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := exec.Command(shimBin, "rm", id).CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("rm %s: %v %s", id, err, out)
			}
		}()
	}
	wg.Wait()
	for _, e := range errs {
		if e != "" {
			t.Error(e)
		}
	}
	for _, p := range pids {
		if !gone(p) {
			t.Errorf("process %d is left after shim rm", p)
		}
	}
	if ps := shim(t, "ps").Stdout; strings.Count(ps, "\n") != 1 {
		t.Errorf("shim ps after rm of all:\n%s", ps)
	}
}

func TestSupervisorKilledTakesItsRuntimeAlong(t *testing.T) {
	testutil.TempState(t)
	id := bundle(t, "sleep 60")
	if r := shim(t, "--id", id, "--", testutil.Bin(t, "nsrun"), state.ContainerDir(id)); r.Code != 0 {
		t.Fatalf("shim: %d %s", r.Code, r.Stderr)
	}
	c := readState(t, id)
	runtimes := children(c.ShimPid)
	if len(runtimes) != 1 {
		t.Fatalf("the supervisor's children: %v, want the runtime alone", runtimes)
	}
	unix.Kill(c.ShimPid, unix.SIGKILL)
	for rt := range runtimes {
		until(t, "the runtime to die with its supervisor", func() bool { return gone(rt) })
	}
	until(t, "the container to die with its runtime", func() bool { return gone(c.Pid) })
	if r := shim(t, "ps"); !strings.Contains(r.Stdout, "Unknown (supervisor gone)") {
		t.Errorf("shim ps after the supervisor was killed:\n%s", r.Stdout)
	}
}
