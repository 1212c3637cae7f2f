package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/testutil"
	"github.com/hardway/hardway/internal/trace"
)

// traceTo collects the narration of the rest of the test in w.
func traceTo(t *testing.T, w io.Writer) {
	trace.SetEnabled(true)
	trace.SetOutput(w)
	t.Cleanup(func() { trace.SetEnabled(false); trace.SetOutput(os.Stderr) })
}

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

func TestCPUWeightConversion(t *testing.T) {
	// runc's linear map: the ends meet, and the defaults land next to each other.
	for shares, weight := range map[uint64]uint64{2: 1, 262144: 10000, 1024: 39} {
		if got := SharesToWeight(shares); got != weight {
			t.Errorf("SharesToWeight(%d) = %d, want %d", shares, got, weight)
		}
	}
	for _, w := range []uint64{1, 100, 10000} {
		if got := SharesToWeight(WeightToShares(w)); got != w {
			t.Errorf("weight %d → shares %d → weight %d", w, WeightToShares(w), got)
		}
	}
}

func TestMoreLimitsInV1Files(t *testing.T) {
	setup(t)
	if DetectMode() == Unified {
		t.Fatal("this test reads cgroup v1 files; TestV2Backend covers a unified host")
	}
	id := testutil.ID("cg")
	rbps, err := ParseDeviceRate("rbps", "/dev/vda:1mb")
	if err != nil {
		// Not every machine has a vda: use its first disk.
		rbps, err = ParseDeviceRate("rbps", firstDisk(t)+":1mb")
		if err != nil {
			t.Fatal(err)
		}
	}
	l := Limits{Memory: 64 << 20, MemorySwap: 96 << 20, CPUWeight: 10000, Cpuset: "0", IOWeight: 200,
		IOMax: []IOLimit{rbps}, Raw: []Setting{{"memory.swappiness", "0"}}}
	if _, err := Create(id, l); err != nil {
		t.Fatal(err)
	}
	dev := fmt.Sprintf("%d:%d 1048576", rbps.Major, rbps.Minor)
	for file, want := range map[string]string{
		"memory/memory.limit_in_bytes":                   "67108864",
		"memory/memory.memsw.limit_in_bytes":             "100663296",
		"memory/memory.swappiness":                       "0",
		"cpu/cpu.shares":                                 "262144",
		"cpuset/cpuset.cpus":                             "0",
		"blkio/blkio.throttle.read_bps_device":           dev,
		"blkio/" + ioWeightFile(t, ctrlDir(id, "blkio")): "200",
	} {
		ctrl, name, _ := strings.Cut(file, "/")
		if got := read(t, filepath.Join(ctrlDir(id, ctrl), name)); got != want {
			t.Errorf("%s = %q, want %q", file, got, want)
		}
	}
	// --memory-swap -1 lifts the memory+swap limit; shares go in as they are.
	if err := Set(id, Limits{MemorySwap: -1, CPUShares: 512}); err != nil {
		t.Fatal(err)
	}
	if in, _ := Show(id); in.MemSwap != -1 || in.MemoryLimit != 64<<20 || in.CPUShares != 512 {
		t.Errorf("after set: memory+swap %d memory %d shares %d", in.MemSwap, in.MemoryLimit, in.CPUShares)
	}
}

func firstDisk(t *testing.T) string {
	ents, _ := os.ReadDir("/sys/block")
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") && !strings.HasPrefix(e.Name(), "zram") {
			return "/dev/" + e.Name()
		}
	}
	t.Fatal("no disk in /sys/block")
	return ""
}

func ioWeightFile(t *testing.T, dir string) string {
	for _, f := range []string{"blkio.bfq.weight", "blkio.weight"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err == nil {
			return f
		}
	}
	t.Fatalf("no blkio weight file in %s", dir)
	return ""
}

func TestLimitErrorsLeaveNothing(t *testing.T) {
	setup(t)
	id := testutil.ID("cg")
	for _, c := range []struct {
		l    Limits
		want string
	}{
		{Limits{Raw: []Setting{{"foo.bar", "1"}}}, `unknown controller "foo"`},
		{Limits{Raw: []Setting{{"memory.nosuch", "1"}}}, "no file memory.nosuch"},
		{Limits{Cpuset: "0-63"}, "not within the cpus"},
		{Limits{Memory: 64 << 20, MemorySwap: 32 << 20}, "below --memory"},
		{Limits{MemorySwap: 32 << 20}, "without --memory"},
		{Limits{CPUShares: 1}, "invalid --cpu-shares"},
	} {
		_, err := Create(id, c.l)
		var he *cli.HintError
		if err == nil || !errors.As(err, &he) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("create with %+v: %v, want a hint error with %q", c.l, err, c.want)
		}
		if dirs, _ := Dirs(id); len(dirs) != 0 {
			t.Fatalf("a failed create left %v", dirs)
		}
	}
	if DetectMode() != Unified {
		if _, err := Create(id, Limits{Raw: []Setting{{"io.max", "x"}}}); err == nil || !strings.Contains(err.Error(), "io controller is not mounted") {
			t.Errorf("io.max on v1: %v", err)
		}
	}
}

// TestCPUQuotaHoldsBusyLoop checks enforcement, not speed: a busy loop held to 0.1 cpu
// (0.2 s of cpu time in 2 s) cannot use more than a generous 0.6 s; unlimited, it would
// use the whole 2 s.
func TestCPUQuotaHoldsBusyLoop(t *testing.T) {
	setup(t)
	id := testutil.ID("cpu")
	if _, err := Create(id, Limits{CPUs: 0.1}); err != nil {
		t.Fatal(err)
	}
	startIn(t, id, "sh", "-c", "while :; do :; done")
	in0, _ := Show(id)
	time.Sleep(2 * time.Second)
	in1, err := Show(id)
	if err != nil {
		t.Fatal(err)
	}
	used := time.Duration(in1.CPUUsage - in0.CPUUsage)
	t.Logf("busy loop under --cpus 0.1: %v of cpu in 2s", used)
	if used <= 0 || used >= 600*time.Millisecond {
		t.Errorf("busy loop under --cpus 0.1 used %v of cpu in 2s, want between 0 and 0.6s", used)
	}
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
}

func TestWatchReportsOOMAndEnds(t *testing.T) {
	setup(t)
	id := testutil.ID("oomw")
	if _, err := Create(id, Limits{Memory: 16 << 20}); err != nil {
		t.Fatal(err)
	}
	kills := make(chan uint64, 10)
	done := make(chan error, 1)
	go func() { done <- Watch(id, func(n uint64) { kills <- n }) }()
	startIn(t, id, "tail", "/dev/zero")
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("watch did not end after the cgroup emptied")
	}
	select {
	case n := <-kills:
		if n < 1 {
			t.Errorf("oom event with count %d", n)
		}
	default:
		t.Error("watch reported no OOM kill")
	}
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
}

// TestV2Backend drives the v2 code against a real cgroup2 tree: the host's own on a unified
// host, else the empty one a hybrid host mounts at /sys/fs/cgroup/unified. There it has no
// controllers, so limits must fail with "not delegated"; mkdir, cgroup.procs, cgroup.events,
// cgroup.kill and rmdir all run for real.
func TestV2Backend(t *testing.T) {
	setup(t)
	root := "/sys/fs/cgroup"
	if DetectMode() != Unified {
		root = "/sys/fs/cgroup/unified"
	}
	t.Setenv("HARDWAY_CGROUP_ROOT", root)
	if DetectMode() != Unified {
		t.Fatalf("%s is not a cgroup2 mount", root)
	}
	rootCtl := read(t, filepath.Join(root, "cgroup.subtree_control"))
	id := testutil.ID("v2")
	p, err := Create(id, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, p)
	if dirs, _ := Dirs(id); len(dirs) != 1 || dirs[0] != dir {
		t.Fatalf("dirs %v, want only %s", dirs, dir)
	}
	has := map[string]bool{}
	for _, c := range strings.Fields(read(t, filepath.Join(dir, "cgroup.controllers"))) {
		has[c] = true
	}
	if !has["memory"] {
		_, err := Create(testutil.ID("v2lim"), Limits{Memory: 64 << 20})
		if err == nil || !strings.Contains(err.Error(), "memory controller is not delegated") {
			t.Errorf("memory limit without the memory controller: %v", err)
		}
	}
	if !has["pids"] {
		if err := Set(id, Limits{Pids: 10}); err == nil || !strings.Contains(err.Error(), "pids controller is not delegated") {
			t.Errorf("pids limit without the pids controller: %v", err)
		}
	}

	done := make(chan error, 1)
	cmd := startIn(t, id, "sleep", "300")
	go func() { done <- Watch(id, func(uint64) {}) }()
	if got := read(t, filepath.Join(dir, "cgroup.procs")); got != strconv.Itoa(cmd.Process.Pid) {
		t.Errorf("cgroup.procs = %q, want %d", got, cmd.Process.Pid)
	}
	if v, _ := readKey(filepath.Join(dir, "cgroup.events"), "populated"); v != 1 {
		t.Error("cgroup.events does not say populated 1")
	}
	if in, err := Show(id); err != nil || len(in.Procs) != 1 {
		t.Errorf("show: %+v, %v", in, err)
	}
	// Delete empties it (cgroup.kill) and removes it; the watcher sees it go.
	var trace strings.Builder
	traceTo(t, &trace)
	if err := Delete(id); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(trace.String(), "echo 1 > "+filepath.Join(dir, "cgroup.kill")) {
		t.Errorf("delete did not use cgroup.kill:\n%s", trace.String())
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not end when the cgroup emptied")
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s left after delete", dir)
	}
	if got := read(t, filepath.Join(root, "cgroup.subtree_control")); got != rootCtl && root != "/sys/fs/cgroup" {
		t.Errorf("root subtree_control changed from %q to %q", rootCtl, got)
	}
}
