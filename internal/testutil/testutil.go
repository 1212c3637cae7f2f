// Package testutil holds what the integration tests share: a private state root per test,
// unique container ids, and the rule that a kernel test needs root (it fails, never skips,
// so a run without root cannot pass by testing nothing).
package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// RequireRoot fails the test unless it runs as root: these tests drive the kernel for real.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("this test drives the kernel (mounts, namespaces, cgroups) and must run as root: sudo make test")
	}
}

// TempState points HARDWAY_ROOT and HARDWAY_RUN at fresh temporary dirs for this test and
// returns the root. Nothing of a learner's state is touched.
func TempState(t testing.TB) string {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "root")
	run := filepath.Join(base, "run")
	for _, d := range []string{root, run} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("HARDWAY_ROOT", root)
	t.Setenv("HARDWAY_RUN", run)
	return root
}

// ID returns a container id unique to this run, starting with prefix ("t" if empty).
func ID(prefix string) string {
	if prefix == "" {
		prefix = "t"
	}
	b := make([]byte, 4)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// RepoRoot returns the repository's top dir (where go.mod is), for tests that need bin/ or
// scripts/.
func RepoRoot(t testing.TB) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Bin returns the path of a built tool in bin/, failing if `make` has not built it.
func Bin(t testing.TB, tool string) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "bin", tool)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is not built: run make (make test builds it first)", p)
	}
	return p
}
