package cgroup

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/testutil"
)

// TestWatchCLI is what a supervisor does: start `cgset watch ID` before the container, read
// its lines, and take its exit as "the cgroup is empty".
func TestWatchCLI(t *testing.T) {
	setup(t)
	bin := filepath.Join(t.TempDir(), "cgset")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/hardway/hardway/cmd/cgset").CombinedOutput(); err != nil {
		t.Fatalf("build cgset: %v\n%s", err, out)
	}
	id := testutil.ID("oomcli")
	if out, err := exec.Command(bin, "create", id, "--memory", "16m").CombinedOutput(); err != nil {
		t.Fatalf("cgset create: %v: %s", err, out)
	}
	watch := exec.Command(bin, "watch", id)
	stdout, _ := watch.StdoutPipe()
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { watch.Process.Kill(); watch.Wait() })
	lines := make(chan string, 10)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	startIn(t, id, "tail", "/dev/zero")
	var got []string
	timeout := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case l, ok := <-lines:
			if !ok {
				done = true
				break
			}
			got = append(got, l)
		case <-timeout:
			t.Fatalf("cgset watch did not exit after the cgroup emptied; printed %q", got)
		}
	}
	if err := watch.Wait(); err != nil {
		t.Errorf("cgset watch exited with %v", err)
	}
	if len(got) == 0 || !strings.HasPrefix(got[0], "oom "+id+" ") {
		t.Errorf("cgset watch printed %q, want a line 'oom %s N'", got, id)
	}
	if out, err := exec.Command(bin, "delete", id).CombinedOutput(); err != nil {
		t.Fatalf("cgset delete: %v: %s", err, out)
	}
}
