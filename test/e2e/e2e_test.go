// Package e2e runs the whole `docker run` flow the way a learner does, with the built
// binaries and scripts, against a real docker-registry, and checks what a learner would
// check. The whole test process runs inside a throwaway network namespace that plays the
// host (TestMain re-executes it under `unshare --net`): the registry listens on that
// namespace's 127.0.0.1, and the bridge, veths, iptables rules and packets never reach the
// machine's own network.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.InThrowawayNetns("e2e")
	os.Exit(withRegistry(m))
}

// registry is the address of this namespace's own registry, seeded once for all tests.
const registry = "127.0.0.1:5000"

// withRegistry starts a real docker-registry on this namespace's 127.0.0.1 with its storage
// in a temporary dir (not any learner's), seeds it, runs the tests and stops it.
func withRegistry(m *testing.M) int {
	dir, err := os.MkdirTemp("", "hardway-e2e-registry-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	top := repoRoot()
	vars := append(os.Environ(),
		"PATH="+filepath.Join(top, "bin")+":"+filepath.Join(top, ".tools", "bin")+":"+os.Getenv("PATH"),
		"HARDWAY_REGISTRY="+registry,
		"HARDWAY_ROOT="+filepath.Join(dir, "root"),
		"HARDWAY_RUN="+filepath.Join(dir, "run"),
	)
	script := func(name string, args ...string) (string, error) {
		c := exec.Command(filepath.Join(top, "scripts", name), args...)
		c.Env = vars
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return "", fmt.Errorf("scripts/%s %s: %v\n%s", name, strings.Join(args, " "), err, errb.String())
		}
		return out.String(), nil
	}
	if _, err := script("registry", "start"); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer script("registry", "stop")
	refs, err := script("seed-images")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	if !strings.Contains(refs, registry+"/library/busybox:latest") {
		fmt.Fprintf(os.Stderr, "e2e: seed-images did not push library/busybox:latest; it printed:\n%s", refs)
		return 1
	}
	return m.Run()
}

func repoRoot() string {
	wd, _ := os.Getwd()
	return filepath.Clean(filepath.Join(wd, "..", ".."))
}

// env is one private world for a test: state root, run dir and cgroup parent.
type env struct {
	t        *testing.T
	top      string
	registry string
	vars     []string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.TempState(t)
	testutil.CgroupParent(t)
	top := testutil.RepoRoot(t)
	for _, tool := range []string{"pull", "unpack", "overlay", "nsrun", "cgset", "netsetup", "shim", "inspect"} {
		testutil.Bin(t, tool)
	}
	e := &env{t: t, top: top, registry: registry}
	e.vars = append(os.Environ(),
		"PATH="+filepath.Join(top, "bin")+":"+filepath.Join(top, ".tools", "bin")+":"+os.Getenv("PATH"),
		"HARDWAY_REGISTRY="+e.registry,
	)
	return e
}

func (e *env) cmd(name string, args ...string) *exec.Cmd {
	if strings.HasPrefix(name, "scripts/") {
		name = filepath.Join(e.top, name)
	} else if !strings.Contains(name, "/") {
		if p := filepath.Join(e.top, "bin", name); fileExists(p) {
			name = p
		}
	}
	c := exec.Command(name, args...)
	c.Env = e.vars
	return c
}

// run runs a command that must succeed and returns its stdout.
func (e *env) run(name string, args ...string) string {
	e.t.Helper()
	out, errOut, code := e.try(name, args...)
	if code != 0 {
		e.t.Fatalf("%s %s: exit %d\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// try runs a command and returns its stdout, stderr and exit code.
func (e *env) try(name string, args ...string) (string, string, int) {
	e.t.Helper()
	c := e.cmd(name, args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			e.t.Fatalf("%s: %v", name, err)
		}
		code = ee.ExitCode()
	}
	return stdout.String(), stderr.String(), code
}

func fileExists(p string) bool { _, err := os.Lstat(p); return err == nil }

func (e *env) image() string { return e.registry + "/library/busybox:latest" }

// TestForeground: docker-run in the foreground gives the command's output on stdout and
// its exit code, the command is PID 1 with the container id as hostname, --rm makes its
// root a volatile overlay (as podman run --rm does) and leaves nothing behind.
func TestForeground(t *testing.T) {
	e := newEnv(t)
	id := testutil.ID("fg")
	t.Cleanup(func() { e.cmd("scripts/docker-rm", id).Run() })

	out := e.run("scripts/docker-run", "--rm", "--name", id, e.image(),
		"sh", "-c", `echo hello from busybox; echo "pid=$$"; echo "host=$(hostname)"; `+
			`grep -q ' / / .* overlay .*volatile' /proc/self/mountinfo && echo "root=volatile"`)
	want := fmt.Sprintf("hello from busybox\npid=1\nhost=%s\nroot=volatile\n", id)
	if out != want {
		t.Fatalf("docker-run stdout:\n%q\nwant:\n%q", out, want)
	}
	assertGone(t, id)

	id2 := testutil.ID("fg")
	t.Cleanup(func() { e.cmd("scripts/docker-rm", id2).Run() })
	_, stderr, code := e.try("scripts/docker-run", "--rm", "--name", id2, e.image(), "sh", "-c", "exit 7")
	if code != 7 {
		t.Fatalf("docker-run of `exit 7` exited %d, want 7; stderr:\n%s", code, stderr)
	}
	assertGone(t, id2)
}

// TestPipeline runs each stage by hand, as the README's pipeline does, with a detached
// container serving HTTP on a published port, and checks it from the host's side.
func TestPipeline(t *testing.T) {
	e := newEnv(t)
	id := testutil.ID("web")
	t.Cleanup(func() { e.cmd("scripts/docker-rm", id).Run() })

	img := strings.TrimSpace(e.run("pull", e.image()))
	if !strings.HasPrefix(img, e.registry+"/library/busybox@sha256:") {
		t.Fatalf("pull printed %q, want %s/library/busybox@sha256:…", img, e.registry)
	}
	if got := strings.TrimSpace(e.run("unpack", img)); got != img {
		t.Fatalf("unpack printed %q, want the image handle %q", got, img)
	}
	bundle := strings.TrimSpace(e.run("overlay", "--id", id, img, "--",
		"sh", "-c", "mkdir -p /www && echo served-by-$(hostname) > /www/index.html && exec httpd -f -p 80 -h /www"))
	if bundle != state.ContainerDir(id) {
		t.Fatalf("overlay printed %q, want %q", bundle, state.ContainerDir(id))
	}
	netns := strings.TrimSpace(e.run("netsetup", "add", id, "--publish", "8080:80"))
	if netns != state.NetnsPath(id) {
		t.Fatalf("netsetup printed %q, want %q", netns, state.NetnsPath(id))
	}
	cg := strings.TrimSpace(e.run("cgset", "create", id, "--memory", "64m", "--pids", "50"))
	if cg != state.CgroupPath(id) {
		t.Fatalf("cgset printed %q, want %q", cg, state.CgroupPath(id))
	}
	pidOut := strings.TrimSpace(e.run("shim", "--id", id, "--", "nsrun", "--netns", id, "--cgroup", id, bundle))
	pid, err := strconv.Atoi(pidOut)
	if err != nil {
		t.Fatalf("shim printed %q, want the container's pid", pidOut)
	}

	// The container's command is PID 1 of its own pid namespace.
	if ns := nspid(t, pid); ns != "1" {
		t.Fatalf("container pid %d is pid %q inside, want 1", pid, ns)
	}
	// It runs in new mnt, uts, ipc, pid and net namespaces.
	for _, ns := range []string{"mnt", "uts", "ipc", "pid", "net"} {
		mine, _ := os.Readlink("/proc/self/ns/" + ns)
		its, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		if err != nil || mine == its {
			t.Errorf("container is not in its own %s namespace (%s vs %s, %v)", ns, its, mine, err)
		}
	}
	// Its hostname is its id.
	if h := strings.TrimSpace(e.run("nsenter", "-t", strconv.Itoa(pid), "-u", "hostname")); h != id {
		t.Errorf("hostname inside is %q, want %q", h, id)
	}
	// Its memory limit is in the cgroup's file, and it is in that cgroup.
	assertMemoryLimit(t, id, 64<<20)
	if cgs, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); !strings.Contains(string(cgs), state.CgroupPath(id)) {
		t.Errorf("/proc/%d/cgroup does not name %s:\n%s", pid, state.CgroupPath(id), cgs)
	}

	// Reachable from the host: the container's own IP on port 80, and the published port
	// on the host's bridge address.
	ip := containerIP(t, id)
	want := "served-by-" + id
	if body := httpGet(t, net.JoinHostPort(ip, "80")); strings.TrimSpace(body) != want {
		t.Errorf("GET http://%s:80/ = %q, want %q", ip, body, want)
	}
	if body := httpGet(t, "10.29.0.1:8080"); strings.TrimSpace(body) != want {
		t.Errorf("GET the published port 10.29.0.1:8080 = %q, want %q", body, want)
	}

	// inspect shows the process tree and the overlay root.
	view := e.run("inspect", id)
	for _, s := range []string{strconv.Itoa(pid), "httpd", "overlay"} {
		if !strings.Contains(view, s) {
			t.Errorf("inspect %s does not show %q:\n%s", id, s, view)
		}
	}

	// docker-rm stops it and removes every trace.
	e.run("scripts/docker-rm", id)
	if err := waitGone(pid); err != nil {
		t.Errorf("container pid %d still alive after docker-rm", pid)
	}
	assertGone(t, id)
	// A second docker-rm is a no-op that succeeds.
	e.run("scripts/docker-rm", id)
}

// TestDetachedLogsAndExit: a detached container's output lands in its json-file log and its
// exit code in state.json.
func TestDetachedLogsAndExit(t *testing.T) {
	e := newEnv(t)
	id := testutil.ID("bg")
	t.Cleanup(func() { e.cmd("scripts/docker-rm", id).Run() })
	out := strings.TrimSpace(e.run("scripts/docker-run", "-d", "--name", id, e.image(), "sh", "-c", "echo out-line; echo err-line >&2; exit 3"))
	if out != id {
		t.Fatalf("docker-run -d printed %q, want the id %q", out, id)
	}
	code := strings.TrimSpace(e.run("shim", "wait", id))
	if code != "3" {
		t.Fatalf("shim wait printed %q, want 3", code)
	}
	st, err := state.ReadContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != state.StatusExited || st.ExitCode == nil || *st.ExitCode != 3 {
		t.Fatalf("state.json = %+v, want exited with code 3", st)
	}
	streams := map[string]string{}
	f, err := os.Open(state.LogFile(id))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct{ Log, Stream, Time string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log.json line %q: %v", sc.Text(), err)
		}
		if _, err := time.Parse(time.RFC3339Nano, rec.Time); err != nil {
			t.Errorf("log.json time %q: %v", rec.Time, err)
		}
		streams[rec.Stream] += rec.Log
	}
	if streams["stdout"] != "out-line\n" || streams["stderr"] != "err-line\n" {
		t.Fatalf("log.json holds stdout %q and stderr %q, want \"out-line\\n\" and \"err-line\\n\"", streams["stdout"], streams["stderr"])
	}
	e.run("scripts/docker-rm", id)
	assertGone(t, id)
}

// TestBadInput: a wrong handle at a stage's front door is a one-line error naming what to
// run first, and a failed docker-run leaves nothing behind.
func TestBadInput(t *testing.T) {
	e := newEnv(t)
	_, stderr, code := e.try("unpack", e.registry+"/library/busybox@sha256:"+strings.Repeat("0", 64))
	if code != 1 || !strings.Contains(stderr, "unpack: error:") || !strings.Contains(stderr, "pull") {
		t.Errorf("unpack of an unknown image: exit %d, stderr %q; want exit 1 and a hint to pull", code, stderr)
	}
	_, stderr, code = e.try("nsrun", filepath.Join(state.Root(), "containers", "nope"))
	if code != 1 || !strings.Contains(stderr, "nsrun: error:") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Errorf("nsrun of a missing bundle: exit %d, stderr %q; want exit 1 and one line", code, stderr)
	}
	id := testutil.ID("bad")
	_, _, code = e.try("scripts/docker-run", "--name", id, e.registry+"/library/no-such-image:latest", "true")
	if code == 0 {
		t.Errorf("docker-run of a missing image succeeded")
	}
	assertGone(t, id)
	// --pull never with an image the store lacks: pull's one line, and nothing made.
	_, stderr, code = e.try("scripts/docker-run", "--pull", "never", "--name", id, e.registry+"/hardway/layered:latest", "true")
	if code == 0 || !strings.Contains(stderr, "pull: error:") || !strings.Contains(stderr, "--offline") {
		t.Errorf("docker-run --pull never of an image not in the store: exit %d, stderr %q", code, stderr)
	}
	assertGone(t, id)
	if _, stderr, code = e.try("scripts/docker-run", "--pull", "sometimes", e.image(), "true"); code != 2 || !strings.Contains(stderr, "always, missing or never") {
		t.Errorf("docker-run --pull sometimes: exit %d, stderr %q; want a usage error", code, stderr)
	}
}

func nspid(t *testing.T, pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("container pid %d: %v", pid, err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "NSpid:") {
			f := strings.Fields(l)
			return f[len(f)-1]
		}
	}
	return ""
}

func containerIP(t *testing.T, id string) string {
	out, err := exec.Command("ip", "-n", id, "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		t.Fatalf("ip -n %s addr: %v: %s", id, err, out)
	}
	f := strings.Fields(string(out))
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			return strings.Split(f[i+1], "/")[0]
		}
	}
	t.Fatalf("no IPv4 address on eth0 in netns %s: %s", id, out)
	return ""
}

// httpGet fetches / from addr, retrying briefly while the server starts.
func httpGet(t *testing.T, addr string) string {
	var last error
	for i := 0; i < 50; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.SetDeadline(time.Now().Add(3 * time.Second))
			fmt.Fprintf(c, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
			b, err := io.ReadAll(c)
			c.Close()
			if err == nil {
				if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
					return string(b[i+4:])
				}
			}
			last = err
		} else {
			last = err
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Errorf("GET http://%s/: %v", addr, last)
	return ""
}

func assertMemoryLimit(t *testing.T, id string, want int64) {
	dirs, err := cgroup.Dirs(id)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		for _, f := range []string{"memory.limit_in_bytes", "memory.max"} {
			if b, err := os.ReadFile(filepath.Join(d, f)); err == nil {
				if got := strings.TrimSpace(string(b)); got != strconv.FormatInt(want, 10) {
					t.Errorf("%s/%s = %s, want %d", d, f, got, want)
				}
				return
			}
		}
	}
	t.Errorf("no memory limit file for %s in %v", id, dirs)
}

func waitGone(pid int) error {
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("pid %d alive", pid)
}

// assertGone checks that nothing of container id is left: no mount, netns, veth, cgroup,
// address, container dir or run dir.
func assertGone(t *testing.T, id string) {
	t.Helper()
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), state.ContainerDir(id)) {
		t.Errorf("a mount of %s is left:\n%s", state.ContainerDir(id), grepLines(string(mi), state.ContainerDir(id)))
	}
	if strings.Contains(string(mi), state.NetnsPath(id)) || fileExists(state.NetnsPath(id)) {
		t.Errorf("netns %s is left", state.NetnsPath(id))
	}
	for _, p := range []string{state.ContainerDir(id), state.RunDir(id)} {
		if fileExists(p) {
			t.Errorf("%s is left", p)
		}
	}
	if dirs, _ := cgroup.Dirs(id); len(dirs) > 0 {
		t.Errorf("cgroup dirs left: %v", dirs)
	}
	if ents, _ := os.ReadDir(state.IPAMDir()); len(ents) > 0 {
		for _, en := range ents {
			if b, _ := os.ReadFile(filepath.Join(state.IPAMDir(), en.Name())); strings.TrimSpace(string(b)) == id {
				t.Errorf("address %s is still allocated to %s", en.Name(), id)
			}
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(links), "\n") {
		if strings.Contains(l, "veth") && strings.Contains(l, "master hardway0") {
			t.Errorf("a veth is still on the bridge: %s", l)
		}
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestDetachedTTY: docker-run -dit gives the detached container a terminal of its own
// devpts (tty names /dev/pts/0 inside), docker-exec -t gets the next one, and shim attach
// types into the container's shell.
func TestDetachedTTY(t *testing.T) {
	e := newEnv(t)
	id := testutil.ID("tty")
	t.Cleanup(func() { e.cmd("scripts/docker-rm", id).Run() })
	out := strings.TrimSpace(e.run("scripts/docker-run", "-dit", "--name", id, e.image(), "sh"))
	if out != id {
		t.Fatalf("docker-run -dit printed %q, want the id %q", out, id)
	}
	if got := e.run("scripts/docker-exec", id, "sh", "-c", "ls -l /proc/1/fd/0; tty; true"); !strings.Contains(got, "/proc/1/fd/0 -> /dev/pts/0\n") || !strings.Contains(got, "not a tty") {
		t.Errorf("docker-exec without -t: %q; want the container's stdin on /dev/pts/0 and exec's own not a tty", got)
	}
	if got := e.run("scripts/docker-exec", "-t", id, "tty"); got != "/dev/pts/1\r\n" {
		t.Errorf("docker-exec -t ID tty: %q; want the container's next terminal, /dev/pts/1", got)
	}
	a := e.cmd("shim", "attach", id)
	a.Stdin = strings.NewReader("echo typed-$((6*7)); tty\nexit 9\n")
	var stdout, stderr bytes.Buffer
	a.Stdout, a.Stderr = &stdout, &stderr
	err := a.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	}
	if !strings.Contains(stdout.String(), "typed-42\r\n/dev/pts/0\r\n") || code != 9 || stderr.Len() != 0 {
		t.Errorf("shim attach: stdout %q, stderr %q, exit %d; want typed-42 and /dev/pts/0 from the shell, exit 9", stdout.String(), stderr.String(), code)
	}
	b, err := os.ReadFile(state.LogFile(id))
	if err != nil || !strings.Contains(string(b), `"log":"typed-42\r\n"`) {
		t.Errorf("log.json does not hold the shell's output typed-42: %v\n%s", err, b)
	}
	e.run("scripts/docker-rm", id)
	assertGone(t, id)
}
