package registry

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/testutil"
)

// TestRegistryScript checks scripts/registry as the labs use it: status says stopped (exit
// 3), start is idempotent and leaves a registry answering on the loopback, stop stops it and
// succeeds again when nothing runs.
func TestRegistryScript(t *testing.T) {
	base := t.TempDir()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	script := filepath.Join(testutil.RepoRoot(t), "scripts", "registry")
	env := append(os.Environ(), "HARDWAY_ROOT="+base+"/root", "HARDWAY_RUN="+base+"/run", "HARDWAY_REGISTRY="+addr)
	sh := func(verb string) (string, int) {
		cmd := exec.Command(script, verb)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	t.Cleanup(func() { sh("stop") })

	if out, code := sh("status"); code != 3 || !strings.Contains(out, "stopped") {
		t.Fatalf("status before start: exit %d, %q", code, out)
	}
	for i := 0; i < 2; i++ {
		if out, code := sh("start"); code != 0 {
			t.Fatalf("start #%d: exit %d: %s", i+1, code, out)
		}
	}
	if out, code := sh("status"); code != 0 || !strings.Contains(out, "running") {
		t.Fatalf("status after start: exit %d, %q", code, out)
	}
	resp, err := http.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %s", resp.Status)
	}
	if _, err := os.Stat(filepath.Join(base, "root", "registry", "config.yml")); err != nil {
		t.Errorf("config not under HARDWAY_ROOT/registry: %v", err)
	}
	for i := 0; i < 2; i++ {
		if out, code := sh("stop"); code != 0 {
			t.Fatalf("stop #%d: exit %d: %s", i+1, code, out)
		}
	}
	if _, code := sh("status"); code != 3 {
		t.Fatalf("status after stop: exit %d", code)
	}
	if _, err := http.Get("http://" + addr + "/v2/"); err == nil {
		t.Fatal("the registry still answers after stop")
	}
}
