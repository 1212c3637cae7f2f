package runtime_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/testutil"
)

// nsrun runs bin/nsrun with args and returns what a user would see.
func nsrun(t *testing.T, args ...string) testutil.Result {
	t.Helper()
	return testutil.Run(t, "nsrun", args...)
}

func bundleRunning(t *testing.T, script string) (string, string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.TempState(t)
	id := testutil.ID("ns")
	b := testutil.BusyboxBundle(t, id)
	testutil.SetArgs(t, b, script)
	return id, b
}

func mountCount(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestEchoHello(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	before := mountCount(t)
	b := testutil.BusyboxBundle(t, testutil.ID("ns"))
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "hello\n" {
		t.Fatalf("nsrun BUNDLE: exit %d, stdout %q, stderr %q; want 0 and hello", r.Code, r.Stdout, r.Stderr)
	}
	if after := mountCount(t); after != before {
		t.Errorf("host mount table changed: %d lines before, %d after", before, after)
	}
}

func TestBundleFromStdin(t *testing.T) {
	_, b := bundleRunning(t, "echo from-stdin")
	cmd := exec.Command(testutil.Bin(t, "nsrun"))
	cmd.Stdin = strings.NewReader(b + "\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "from-stdin\n" {
		t.Fatalf("echo BUNDLE | nsrun: %q, %v", out, err)
	}
}

func TestExitCodes(t *testing.T) {
	for script, want := range map[string]int{"exit 3": 3, "true": 0, "false": 1, "sh -c 'kill -9 $$'; exit $?": 137} {
		_, b := bundleRunning(t, script)
		if r := nsrun(t, b); r.Code != want {
			t.Errorf("container running %q: nsrun exited %d, want %d (stderr %q)", script, r.Code, want, r.Stderr)
		}
	}
}

func TestPid1HostnameProc(t *testing.T) {
	id, b := bundleRunning(t, "echo $$; hostname; ps -o pid,comm | wc -l; cat /etc/hostname; ls /dev")
	r := nsrun(t, b)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) < 5 {
		t.Fatalf("output %q", r.Stdout)
	}
	if lines[0] != "1" {
		t.Errorf("the container's shell has pid %s inside, want 1", lines[0])
	}
	if lines[1] != id {
		t.Errorf("hostname %q, want %q", lines[1], id)
	}
	// Header + sh + ps (+ wc): only the container's own processes are in its /proc.
	if lines[2] != "3" && lines[2] != "4" {
		t.Errorf("ps inside lists %s lines, want only the container's processes", lines[2])
	}
	if lines[3] != id {
		t.Errorf("/etc/hostname %q, want the bundle's file", lines[3])
	}
	devs := strings.Join(lines[4:], " ")
	for _, d := range []string{"null", "zero", "urandom", "tty", "pts", "shm", "ptmx", "fd"} {
		if !strings.Contains(devs, d) {
			t.Errorf("/dev lacks %s: %s", d, devs)
		}
	}
}

func TestMaskedAndReadonly(t *testing.T) {
	_, b := bundleRunning(t, "cat /proc/kcore | wc -c; echo 1 > /proc/sys/kernel/domainname && echo writable; echo x > /sys/x || true")
	r := nsrun(t, b)
	if strings.TrimSpace(strings.Split(r.Stdout, "\n")[0]) != "0" {
		t.Errorf("/proc/kcore is not masked: %q", r.Stdout)
	}
	if strings.Contains(r.Stdout, "writable") {
		t.Errorf("/proc/sys is writable inside")
	}
}

func TestNewNetnsHasOnlyLo(t *testing.T) {
	_, b := bundleRunning(t, "ls /sys/class/net")
	r := nsrun(t, b)
	if r.Code != 0 || strings.Fields(r.Stdout)[0] != "lo" || len(strings.Fields(r.Stdout)) != 1 {
		t.Fatalf("interfaces in a new netns: %q (exit %d, %s), want only lo", r.Stdout, r.Code, r.Stderr)
	}
}

func TestJoinNetns(t *testing.T) {
	id, b := bundleRunning(t, "ip link")
	netnsDir := filepath.Join(t.TempDir(), "netns")
	t.Setenv("HARDWAY_NETNS_DIR", netnsDir)
	// ip netns pins under /run/netns; make ours there under a test name and link it into
	// the test's netns dir, so nsrun --netns ID finds it.
	name := "hwtest-" + id
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "add", "hwdummy0", "type", "veth", "peer", "name", "hwdummy1").CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	os.MkdirAll(netnsDir, 0o755)
	if err := os.Symlink("/run/netns/"+name, filepath.Join(netnsDir, id)); err != nil {
		t.Fatal(err)
	}
	before := mountCount(t)
	r := nsrun(t, "--netns", id, b)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hwdummy0") {
		t.Fatalf("ip link inside a joined netns: %q (exit %d, %s), want hwdummy0", r.Stdout, r.Code, r.Stderr)
	}
	// By path, too.
	r = nsrun(t, "--netns", "/run/netns/"+name, b)
	if r.Code != 0 || !strings.Contains(r.Stdout, "hwdummy0") {
		t.Fatalf("--netns PATH: %q (exit %d, %s)", r.Stdout, r.Code, r.Stderr)
	}
	if mountCount(t) != before {
		t.Errorf("host mount table changed")
	}
	r = nsrun(t, "--netns", "nosuch"+id, b)
	if r.Code != 1 || !strings.Contains(r.Stderr, "does not exist (run: netsetup add nosuch"+id+")") {
		t.Errorf("missing netns: exit %d, %q", r.Code, r.Stderr)
	}
}

func TestCgroupJoin(t *testing.T) {
	id, b := bundleRunning(t, "cat /proc/self/cgroup")
	parent := "hwtest-" + testutil.ID("p")
	t.Setenv("HARDWAY_CGROUP_PARENT", parent)
	dir := filepath.Join("/sys/fs/cgroup/pids", parent, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.Remove(dir)
		os.Remove(filepath.Dir(dir))
	})
	testutil.SetArgs(t, b, "cat /proc/self/cgroup; cat /sys/fs/cgroup/pids/cgroup.procs; echo 5 > /sys/fs/cgroup/pids/pids.max || echo read-only")
	r := nsrun(t, "--cgroup", id, b)
	want := "pids:/" + parent + "/" + id
	if r.Code != 0 || !strings.Contains(r.Stdout, want) {
		t.Fatalf("/proc/self/cgroup inside: %q (exit %d, %s), want %s", r.Stdout, r.Code, r.Stderr, want)
	}
	// /sys/fs/cgroup/pids inside is the container's own cgroup, read-only.
	if !strings.Contains(r.Stdout, "\n1\n") || !strings.HasSuffix(r.Stdout, "read-only\n") {
		t.Errorf("/sys/fs/cgroup/pids inside: %q", r.Stdout)
	}
	r = nsrun(t, "--cgroup", "nosuch", b)
	if r.Code != 1 || !strings.Contains(r.Stderr, "cgset create nosuch") {
		t.Errorf("missing cgroup: exit %d, %q", r.Code, r.Stderr)
	}
}

func TestMissingBundle(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	r := nsrun(t, dir)
	want := "nsrun: error: bundle " + dir + " has no config.json (run: overlay --id ID IMAGE)\n"
	if r.Code != 1 || r.Stderr != want {
		t.Errorf("empty bundle dir: exit %d, stderr %q; want 1, %q", r.Code, r.Stderr, want)
	}
	r = nsrun(t, filepath.Join(dir, "nope"))
	if r.Code != 1 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "does not exist") {
		t.Errorf("missing bundle: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestInitErrorsReachTheUser(t *testing.T) {
	_, b := bundleRunning(t, "")
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Process.Args = []string{"no-such-command"} })
	before := mountCount(t)
	r := nsrun(t, b)
	if r.Code != 1 || !strings.HasPrefix(r.Stderr, "nsrun: error: exec no-such-command: not found") {
		t.Errorf("unknown command: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if mountCount(t) != before {
		t.Errorf("host mount table changed")
	}
}

func TestSymlinkedProcRefused(t *testing.T) {
	_, b := bundleRunning(t, "true")
	proc := filepath.Join(b, "rootfs", "proc")
	os.Remove(proc)
	if err := os.Symlink("/tmp", proc); err != nil {
		t.Fatal(err)
	}
	r := nsrun(t, b)
	if r.Code != 1 || !strings.Contains(r.Stderr, "ordinary directory") {
		t.Errorf("symlinked /proc: exit %d, stderr %q", r.Code, r.Stderr)
	}
}

func TestMountDestinationEscape(t *testing.T) {
	_, b := bundleRunning(t, "true")
	if err := os.Symlink("../../../../../../../../tmp", filepath.Join(b, "rootfs", "escape")); err != nil {
		t.Fatal(err)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/escape/x", Type: "tmpfs", Source: "tmpfs"})
	})
	r := nsrun(t, b)
	if r.Code != 1 || !strings.Contains(r.Stderr, "escapes the rootfs") {
		t.Errorf("escaping mount: exit %d, stderr %q", r.Code, r.Stderr)
	}
	if _, err := os.Stat("/tmp/x"); err == nil {
		t.Errorf("/tmp/x was created on the host")
	}
}

// A mount point reached through a symlink into a mount of the container's own (Debian's
// /var/run -> /run with a tmpfs /run): it is made in that mount, as the container sees it.
func TestMountThroughSymlinkIntoMount(t *testing.T) {
	_, b := bundleRunning(t, "cat /var/run/sock.txt; ls /run")
	rootfs := filepath.Join(b, "rootfs")
	if err := os.MkdirAll(filepath.Join(rootfs, "var"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/run", filepath.Join(rootfs, "var", "run")); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "sock.txt")
	if err := os.WriteFile(src, []byte("from-host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Mounts = append(s.Mounts,
			specs.Mount{Destination: "/run", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
			specs.Mount{Destination: "/var/run/sock.txt", Type: "bind", Source: src, Options: []string{"rbind", "ro"}})
	})
	r := nsrun(t, b)
	if r.Code != 0 || r.Stdout != "from-host\nsock.txt\n" {
		t.Errorf("bind through /var/run -> /run (tmpfs): exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "run", "sock.txt")); err == nil {
		t.Errorf("the mount point was made in the image's /run on the host, under the container's tmpfs")
	}
}
func TestSyncPipe(t *testing.T) {
	_, b := bundleRunning(t, "echo $$ > /dev/null")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testutil.Bin(t, "nsrun"), b)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), "HARDWAY_SYNCPIPE=3")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	msg, _ := readAll(r)
	cmd.Wait()
	if !strings.HasPrefix(msg, `{"pid":`) || !strings.HasSuffix(msg, "}\n") {
		t.Errorf("sync pipe said %q, want {\"pid\":N}", msg)
	}
}

func readAll(f *os.File) (string, error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(f)
	return buf.String(), err
}

// startNsrun starts nsrun with a sync pipe and returns it with the container's host pid.
func startNsrun(t *testing.T, stdout io.Writer, args ...string) (*exec.Cmd, int) {
	t.Helper()
	return startNsrunBin(t, testutil.Bin(t, "nsrun"), stdout, args...)
}

// startNsrunBin is startNsrun with the nsrun binary at bin.
func startNsrunBin(t *testing.T, bin string, stdout io.Writer, args ...string) (*exec.Cmd, int) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command(bin, args...)
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = append(os.Environ(), "HARDWAY_SYNCPIPE=3")
	cmd.Stdout = stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	w.Close()
	var msg struct{ Pid int }
	if err := json.NewDecoder(r).Decode(&msg); err != nil || msg.Pid == 0 {
		t.Fatalf("no pid on the sync pipe: %v", err)
	}
	return cmd, msg.Pid
}

func TestKilledContainerExits137(t *testing.T) {
	_, b := bundleRunning(t, "sleep 30")
	cmd, pid := startNsrun(t, nil, b)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 137 {
		t.Errorf("container killed with SIGKILL: nsrun exited %d, want 137", code)
	}
}

func TestSignalsAreForwarded(t *testing.T) {
	_, b := bundleRunning(t, "trap 'echo got-term; exit 5' TERM; echo ready; while true; do sleep 1; done")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	cmd, _ := startNsrun(t, pw, b)
	pw.Close()
	// A PID 1 ignores signals it has no handler for: wait until the trap is set.
	rd := bufio.NewReader(pr)
	if line, _ := rd.ReadString('\n'); line != "ready\n" {
		t.Fatalf("container said %q", line)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	rest, _ := io.ReadAll(rd)
	cmd.Wait()
	if code := cmd.ProcessState.ExitCode(); code != 5 || !strings.Contains(string(rest), "got-term") {
		t.Errorf("SIGTERM to nsrun: exit %d, stdout %q; want the container's trap to run and exit 5", code, rest)
	}
}

func TestCapabilitiesAndFds(t *testing.T) {
	_, b := bundleRunning(t, "grep -E 'CapBnd|CapEff' /proc/self/status; ls /proc/self/fd")
	r := nsrun(t, b)
	// Docker's 14 capabilities, as /proc shows them in a docker run container.
	for _, want := range []string{"CapBnd:\t00000000a80425fb", "CapEff:\t00000000a80425fb"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("want %q inside, got %q (%s)", want, r.Stdout, r.Stderr)
		}
	}
	// 0, 1, 2 and the fd ls opened to list them: nothing of nsrun's leaks in.
	if fds := strings.Fields(r.Stdout)[4:]; strings.Join(fds, " ") != "0 1 2 3" {
		t.Errorf("open fds inside: %v, want 0 1 2 (and ls's own 3)", fds)
	}
}

func TestRlimit(t *testing.T) {
	_, b := bundleRunning(t, "grep 'open files' /proc/self/limits")
	if r := nsrun(t, b); len(strings.Fields(r.Stdout)) < 5 || strings.Fields(r.Stdout)[3] != "1024" || strings.Fields(r.Stdout)[4] != "1024" {
		t.Errorf("RLIMIT_NOFILE inside: %q (%s)", r.Stdout, r.Stderr)
	}
}

func TestUser(t *testing.T) {
	_, b := bundleRunning(t, "id -u; id -g; grep CapEff /proc/self/status")
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Process.User = specs.User{UID: 1000, GID: 1000} })
	// A non-root process loses its effective capabilities at execve, as under docker --user.
	r := nsrun(t, b)
	if f := strings.Fields(r.Stdout); len(f) < 4 || f[0] != "1000" || f[1] != "1000" || f[3] != "0000000000000000" {
		t.Errorf("user 1000 inside: %q (%s)", r.Stdout, r.Stderr)
	}
}

func TestInteractiveStdin(t *testing.T) {
	_, b := bundleRunning(t, "cat")
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "-i", b)
	cmd.Stdin = strings.NewReader("typed in\n")
	out, err := cmd.Output()
	if err != nil || string(out) != "typed in\n" {
		t.Errorf("nsrun -i with cat: %q, %v", out, err)
	}
	// Without -i the container's stdin is /dev/null, as with docker run.
	cmd = exec.Command(testutil.Bin(t, "nsrun"), b)
	cmd.Stdin = strings.NewReader("not for you\n")
	if out, _ := cmd.Output(); string(out) != "" {
		t.Errorf("nsrun without -i passed stdin on: %q", out)
	}
}

func TestTTY(t *testing.T) {
	_, b := bundleRunning(t, "")
	testutil.SetArgs(t, b, "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; read line; echo got=$line; exit 4")
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "--tty", b)
	cmd.Stdin = strings.NewReader("typed\n")
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "on-a-tty") || !strings.Contains(string(out), "got=typed") || cmd.ProcessState.ExitCode() != 4 {
		t.Errorf("nsrun --tty: exit %d, output %q", cmd.ProcessState.ExitCode(), out)
	}
}

// The container dies with nsrun even when its process changed uid (the kernel clears the
// parent-death signal on a change of effective uid): a kill -9 of nsrun leaves no
// container running without its supervisor.
func TestContainerDiesWithNsrun(t *testing.T) {
	for _, name := range []string{"uid 1000", "userns"} {
		t.Run(name, func(t *testing.T) {
			var b string
			var args []string
			if name == "userns" {
				b, args = usernsBundle(t, "exec sleep 60"), []string{"--userns"}
			} else {
				_, b = bundleRunning(t, "exec sleep 60")
				testutil.EditBundle(t, b, func(s *specs.Spec) { s.Process.User = specs.User{UID: 1000, GID: 1000} })
			}
			cmd, pid := startNsrun(t, nil, append(args, b)...)
			cmd.Process.Kill()
			cmd.Wait()
			for i := 0; i < 200; i++ { // SIGKILL, then the host's init reaps it
				if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err != nil || strings.Contains(string(st), ") Z ") {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("the container's process %d outlived nsrun's kill -9", pid)
		})
	}
}
