package inspect

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// startNamespaced starts `unshare --pid --fork --mount-proc --uts sleep 60` and returns the
// unshare pid and its child (the sleep, pid 1 of the new pid namespace).
func startNamespaced(t *testing.T) (int, int) {
	t.Helper()
	testutil.RequireRoot(t)
	cmd := exec.Command("unshare", "--pid", "--fork", "--mount-proc", "--uts", "sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	path := fmt.Sprintf("/proc/%d/task/%d/children", cmd.Process.Pid, cmd.Process.Pid)
	for i := 0; i < 200; i++ {
		b, _ := os.ReadFile(path)
		if f := strings.Fields(string(b)); len(f) == 1 {
			child, _ := strconv.Atoi(f[0])
			// Wait until the child has exec'd sleep (before that it is still unshare).
			if c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", child)); strings.TrimSpace(string(c)) == "sleep" {
				return cmd.Process.Pid, child
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("unshare did not start its sleep")
	return 0, 0
}

func TestInspectPid(t *testing.T) {
	_, pid := startNamespaced(t)
	tg, err := ByPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, tg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, typ := range []string{"pid", "uts", "mnt"} {
		if !regexp.MustCompile(`(?m)^  ` + typ + ` .*NEW`).MatchString(out) {
			t.Errorf("namespace %s not marked as new:\n%s", typ, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  net .*shared with the host`).MatchString(out) {
		t.Errorf("net namespace not shown as shared:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("sleep 60(%d, pid 1 inside) [pid]", pid)) {
		t.Errorf("process tree lacks the sleep as pid 1 with a pid namespace change:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^    /proc +proc `).MatchString(out) {
		t.Errorf("mounts lack the new /proc:\n%s", out)
	}
}

func TestInspectContainer(t *testing.T) {
	testutil.TempState(t)
	shim, pid := startNamespaced(t)
	id := testutil.ID("insp")
	if err := os.MkdirAll(state.ContainerDir(id), 0o755); err != nil {
		t.Fatal(err)
	}
	c := &state.Container{ID: id, Status: state.StatusRunning, Pid: pid, ShimPid: shim, Created: time.Now()}
	if err := state.WriteContainer(c); err != nil {
		t.Fatal(err)
	}
	tg, err := ByID(id)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Write(&b, tg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if !strings.Contains(out, "container "+id) || !strings.Contains(out, "<- the container") {
		t.Errorf("view does not name the container:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("(%d) [mnt,uts]", shim)) {
		t.Errorf("the shim-like unshare is not marked with its mnt,uts change:\n%s", out)
	}
}

func TestInspectErrors(t *testing.T) {
	testutil.TempState(t)
	id := testutil.ID("insp")
	if _, err := ByID(id); err == nil || !strings.Contains(err.Error(), "shim --id "+id) {
		t.Errorf("missing state: %v", err)
	}
	dead := exec.Command("true")
	dead.Run()
	os.MkdirAll(state.ContainerDir(id), 0o755)
	state.WriteContainer(&state.Container{ID: id, Status: state.StatusExited, Pid: dead.Process.Pid})
	if _, err := ByID(id); err == nil || !strings.Contains(err.Error(), "not running (status exited)") {
		t.Errorf("exited container: %v", err)
	}
	if _, err := ByPid(dead.Process.Pid); err == nil {
		t.Error("ByPid of a dead process succeeded")
	}
}
