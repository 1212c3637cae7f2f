package cgroup

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/testutil"
)

// setup gives the test its own cgroup parent, removed (with anything left in it) at the end.
func setup(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.TempState(t)
	parent := testutil.ID("hardway-test-")
	t.Setenv("HARDWAY_CGROUP_PARENT", parent)
	t.Cleanup(func() {
		hs, _ := Hierarchies()
		for _, h := range hs {
			d := filepath.Join(h.Mount, parent)
			killAll([]string{d})
			removeTree(d)
		}
	})
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startIn starts argv held at a barrier, moves it into the cgroup, then lets it run, so
// everything it does happens inside the cgroup.
func startIn(t *testing.T, id string, argv ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `read go; exec "$@"`, "sh"}, argv...)...)
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	if err := Add(id, cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("go\n"))
	w.Close()
	return cmd
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"256m": 256 << 20, "1g": 1 << 30, "512k": 512 << 10,
		"1.5g": 3 << 29, "268435456": 268435456, "64MB": 64 << 20, "2G": 2 << 30, "100b": 100} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "abc", "-1m", "12x"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

func TestCreateWritesLimitsAndIsIdempotent(t *testing.T) {
	setup(t)
	id := testutil.ID("cg")
	l := Limits{Memory: 256 << 20, Pids: 100, CPUs: 1.5}
	for i := 0; i < 2; i++ {
		p, err := Create(id, l)
		if err != nil {
			t.Fatal(err)
		}
		if want := "/" + os.Getenv("HARDWAY_CGROUP_PARENT") + "/" + id; p != want {
			t.Fatalf("path %q, want %q", p, want)
		}
	}
	if DetectMode() != Unified {
		mem := ctrlDir(id, "memory")
		if got := read(t, filepath.Join(mem, "memory.limit_in_bytes")); got != "268435456" {
			t.Errorf("memory.limit_in_bytes = %s", got)
		}
		if got := read(t, filepath.Join(ctrlDir(id, "pids"), "pids.max")); got != "100" {
			t.Errorf("pids.max = %s", got)
		}
		if got := read(t, filepath.Join(ctrlDir(id, "cpu"), "cpu.cfs_quota_us")); got != "150000" {
			t.Errorf("cpu.cfs_quota_us = %s", got)
		}
	}
	// New values on a second create are applied.
	if _, err := Create(id, Limits{Memory: 128 << 20}); err != nil {
		t.Fatal(err)
	}
	in, err := Show(id)
	if err != nil {
		t.Fatal(err)
	}
	if in.MemoryLimit != 128<<20 || in.PidsLimit != 100 {
		t.Errorf("after re-create: memory %d pids %d", in.MemoryLimit, in.PidsLimit)
	}
	hs, _ := Hierarchies()
	if dirs, _ := Dirs(id); len(dirs) != len(hs) {
		t.Errorf("cgroup in %d of %d hierarchies: %v", len(dirs), len(hs), dirs)
	}
}

func TestAddDeleteAndErrors(t *testing.T) {
	setup(t)
	id := testutil.ID("cg")
	if err := Add(id, os.Getpid()); err == nil || !strings.Contains(err.Error(), "cgset create") {
		t.Fatalf("add to unknown cgroup: %v", err)
	}
	if _, err := Create(id, Limits{}); err != nil {
		t.Fatal(err)
	}
	sleep := exec.Command("sleep", "300")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleep.Process.Kill(); sleep.Wait() })
	if err := Add(id, sleep.Process.Pid); err != nil {
		t.Fatal(err)
	}
	dirs, _ := Dirs(id)
	for _, d := range dirs {
		if got := read(t, filepath.Join(d, "cgroup.procs")); got != strconv.Itoa(sleep.Process.Pid) {
			t.Errorf("%s/cgroup.procs = %q", d, got)
		}
	}
	// A dead pid is a clear error.
	dead := exec.Command("true")
	dead.Run()
	err := Add(id, dead.Process.Pid)
	var he *cli.HintError
	if err == nil || !errors.As(err, &he) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("add dead pid: %v", err)
	}
	// Delete kills the sleep and removes every dir; twice is fine.
	for i := 0; i < 2; i++ {
		if err := Delete(id); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan error)
	go func() { done <- sleep.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the sleep in the cgroup was not killed")
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after delete", d)
		}
	}
	if _, err := Show(id); err == nil {
		t.Error("show of a deleted cgroup succeeded")
	}
}

func TestOOMKill(t *testing.T) {
	setup(t)
	id := testutil.ID("oom")
	if _, err := Create(id, Limits{Memory: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	cmd := startIn(t, id, "tail", "/dev/zero")
	err := cmd.Wait()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("tail /dev/zero under 16m ended with %v, want killed", err)
	}
	n, err := OOMKills(id)
	if err != nil || n < 1 {
		t.Fatalf("OOMKills = %d, %v; want >= 1", n, err)
	}
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
}

func TestLimitBelowUsage(t *testing.T) {
	setup(t)
	id := testutil.ID("cg")
	if _, err := Create(id, Limits{Memory: 64 << 20}); err != nil {
		t.Fatal(err)
	}
	// Hold ~20 MiB of anonymous memory (no swap to push it to), then ask for 4 MiB.
	startIn(t, id, "sh", "-c", `x=$(head -c 20000000 /dev/zero | tr '\0' a); echo ready; sleep 300`)
	var use int64
	for i := 0; i < 200; i++ {
		in, _ := Show(id)
		if use = in.MemoryUsage; use > 20<<20 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	err := Set(id, Limits{Memory: 4 << 20})
	if err == nil || !strings.Contains(err.Error(), "below what the cgroup already uses") {
		t.Fatalf("set 4m under usage %d: %v", use, err)
	}
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
}

func TestPidsLimitStopsForkBomb(t *testing.T) {
	setup(t)
	id := testutil.ID("pids")
	if _, err := Create(id, Limits{Pids: 10}); err != nil {
		t.Fatal(err)
	}
	// 40 background sleeps: forks past the 10th fail. Bounded, so it ends either way.
	cmd := startIn(t, id, "sh", "-c", `for i in $(seq 40); do sleep 300 & done 2>/dev/null; wait`)
	var in *Info
	for i := 0; i < 200; i++ {
		in, _ = Show(id)
		if in.PidsCurrent >= 10 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	in, _ = Show(id)
	if in.PidsCurrent != 10 || len(in.Procs) > 10 {
		t.Errorf("pids.current = %d, procs %d; want exactly the limit 10", in.PidsCurrent, len(in.Procs))
	}
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if dirs, _ := Dirs(id); len(dirs) != 0 {
		t.Errorf("dirs left: %v", dirs)
	}
}
