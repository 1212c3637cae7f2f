package testutil

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/state"
)

// ShimContainer starts a busybox container running `sh -c script` with nsrun under shim,
// the way docker-run -d does, in the test's own state root (it calls TempState). The bundle
// is linked in as containers/ID so shim finds its config.json; shim rm runs at cleanup.
// It returns the container's id and its host pid.
func ShimContainer(t testing.TB, prefix, script string) (string, int) {
	t.Helper()
	RequireRoot(t)
	TempState(t)
	id := ID(prefix)
	b := BusyboxBundle(t, id)
	SetArgs(t, b, script)
	if err := os.MkdirAll(state.ContainersDir(), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(b, state.ContainerDir(id)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Run(t, "shim", "rm", id) })
	r := Run(t, "shim", "--id", id, "--", Bin(t, "nsrun"), state.ContainerDir(id))
	if r.Code != 0 {
		t.Fatalf("shim --id %s: exit %d: %s", id, r.Code, r.Stderr)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(r.Stdout))
	if err != nil {
		t.Fatalf("shim printed %q, want a pid", r.Stdout)
	}
	return id, pid
}
