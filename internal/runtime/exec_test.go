package runtime_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// runningContainer starts `sleep` as PID 1 of a container and returns its id, bundle and
// host pid; a marker file in its rootfs tells its files from the host's.
func runningContainer(t *testing.T) (string, string, int) {
	id, b := bundleRunning(t, "echo container-env > /tmp/marker; exec sleep 60")
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Process.Env = append(s.Process.Env, "FROM_CONFIG=yes") })
	_, pid := startNsrun(t, nil, b)
	for i := 0; i < 100; i++ { // the shell writes the marker right after it starts
		if _, err := os.Stat(filepath.Join(b, "rootfs/tmp/marker")); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return id, b, pid
}

func TestExecByPid(t *testing.T) {
	id, _, pid := runningContainer(t)
	r := nsrun(t, "exec", "--pid", strconv.Itoa(pid), "-e", "EXTRA=1", "-w", "/tmp", "--",
		"sh", "-c", "hostname; echo $$; cat /proc/1/cmdline | tr '\\0' ' '; echo; cat marker; pwd; echo $EXTRA$FROM_CONFIG; "+
			"ps -o pid | wc -l; grep -E '^(Seccomp|CapEff):' /proc/self/status; exit 7")
	if r.Code != 7 {
		t.Fatalf("nsrun exec: exit %d, want the command's 7; stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) < 9 {
		t.Fatalf("output %q (stderr %q)", r.Stdout, r.Stderr)
	}
	if lines[0] != id {
		t.Errorf("hostname %q, want the container's %q", lines[0], id)
	}
	if n, err := strconv.Atoi(lines[1]); err != nil || n <= 1 {
		t.Errorf("$$ is %q inside: want a pid of the container's pid namespace other than 1", lines[1])
	}
	if strings.TrimSpace(lines[2]) != "sleep 60" {
		t.Errorf("/proc/1/cmdline is %q, want the container's PID 1 (sleep 60)", lines[2])
	}
	if lines[3] != "container-env" || lines[4] != "/tmp" {
		t.Errorf("cat marker; pwd gave %q, %q: want the container's file and -w /tmp", lines[3], lines[4])
	}
	if lines[5] != "1yes" {
		t.Errorf("env: %q, want -e EXTRA=1 and the container's FROM_CONFIG=yes", lines[5])
	}
	// header, sleep, sh, ps, wc: only the container's processes
	if n, _ := strconv.Atoi(lines[6]); n < 4 || n > 6 {
		t.Errorf("ps inside lists %s lines, want only the container's processes", lines[6])
	}
	if lines[7] != "CapEff:\t00000000a80425fb" || lines[8] != "Seccomp:\t2" {
		t.Errorf("exec'd process: %q %q, want the container's seccomp filter and Docker's 14 caps", lines[7], lines[8])
	}
}

func TestExecByID(t *testing.T) {
	id, b, pid := runningContainer(t)
	recordContainer(t, id, b, pid)
	r := nsrun(t, "exec", id, "--", "sh", "-c", "echo $FROM_CONFIG; cat /tmp/marker; cat /proc/self/cgroup | grep -c hardway || true")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "yes\ncontainer-env\n") {
		t.Fatalf("nsrun exec %s: exit %d, stdout %q, stderr %q", id, r.Code, r.Stdout, r.Stderr)
	}
}

func TestExecErrors(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	for _, args := range [][]string{
		{"exec", "nosuch-" + testutil.ID("x"), "--", "true"},
		{"exec", "--pid", "999999999", "--", "true"},
		{"exec", "--pid", strconv.Itoa(os.Getpid()), "--", "true"},
		{"exec", "--pid", "1"},
	} {
		r := nsrun(t, args...)
		if r.Code == 0 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "nsrun: error: ") {
			t.Errorf("nsrun %v: exit %d, stdout %q, stderr %q; want a one-line error", args, r.Code, r.Stdout, r.Stderr)
		}
	}
}

// exec --tty gives the command a terminal; nothing of nsrun's leaks to it (fds 0-2 only,
// plus the one ls opens to list them).
func TestExecTTYAndFds(t *testing.T) {
	_, _, pid := runningContainer(t)
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "exec", "--tty", "--pid", strconv.Itoa(pid), "--",
		"sh", "-c", "[ -t 0 ] && [ -t 1 ] && echo on-a-tty; read line; echo got=$line; ls /proc/self/fd | wc -l; exit 4")
	cmd.Stdin = strings.NewReader("typed\n")
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "on-a-tty") || !strings.Contains(string(out), "got=typed") || cmd.ProcessState.ExitCode() != 4 {
		t.Fatalf("nsrun exec --tty: exit %d, output %q", cmd.ProcessState.ExitCode(), out)
	}
	if !strings.Contains(string(out), "\n4\r\n") && !strings.Contains(string(out), "\n4\n") {
		t.Errorf("fds in the exec'd process: output %q, want 4 (0, 1, 2 and ls's own)", out)
	}
}

// nsrun exec gives the command config.json's RLIMIT_NOFILE even when nsrun was started
// with a soft limit below its hard one (systemd's 1024:524288): Go's syscall.Exec must not
// put that soft limit back.
func TestExecRlimitNofile(t *testing.T) {
	id, b, pid := runningContainer(t)
	recordContainer(t, id, b, pid)
	var host syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &host); err != nil || host.Max <= 4096 {
		t.Skipf("the host's hard RLIMIT_NOFILE (%d) leaves no room under it", host.Max)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: 4096, Hard: host.Max}}
	})
	cmd := exec.Command("sh", "-c", "ulimit -Sn 1024 && exec \"$0\" exec \"$1\" -- sh -c 'ulimit -Sn; ulimit -Hn'", testutil.Bin(t, "nsrun"), id)
	r := testutil.RunCmd(t, cmd)
	if want := fmt.Sprintf("4096\n%d\n", host.Max); r.Code != 0 || r.Stdout != want {
		t.Errorf("ulimit -n in nsrun exec started at soft 1024: exit %d, stdout %q, want %q (stderr %q)", r.Code, r.Stdout, want, r.Stderr)
	}
}

// recordContainer writes the state.json a shim would have, so exec can find it by id.
func recordContainer(t *testing.T, id, bundle string, pid int) {
	t.Helper()
	c := &state.Container{ID: id, Status: state.StatusRunning, Bundle: bundle, Pid: pid}
	if err := os.MkdirAll(state.ContainerDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := state.WriteContainer(c); err != nil {
		t.Fatal(err)
	}
}
