// Package faults kills each stage of `docker run` with SIGKILL at a random moment of its
// run, then re-runs the stage or runs its undo, and checks what the design promises: the
// store stays consistent (nothing half-made under a final name) and nothing is left behind
// (mounts, netns, veths, iptables rules, cgroups, addresses, state dirs, temp files).
//
// The moment is drawn from a range that covers the stage's own run, measured first on an
// undisturbed run. Every draw is logged with the seed; HARDWAY_FAULT_SEED=N replays a run
// and HARDWAY_FAULT_REPS=N changes how many kills each stage gets (default 4).
//
// The whole test binary runs in a throwaway network namespace that plays the host
// (TestMain), with its own registry on that namespace's 127.0.0.1, and each stage gets its
// own HARDWAY_ROOT, HARDWAY_RUN and cgroup parent.
package faults

import (
	"archive/tar"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/network"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.InThrowawayNetns("faults")
	os.Exit(m.Run())
}

// world is what every stage's faults share: the registry, its images and the random source.
type world struct {
	registry string
	busybox  string // REGISTRY/library/busybox:latest
	big      string // an image big enough that pull and unpack take a while
	seed     uint64
	reps     int
}

// TestFaults runs one subtest per stage: go test -run TestFaults/unpack for one.
func TestFaults(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"pull", "unpack", "overlay", "nsrun", "cgset", "netsetup", "shim"} {
		testutil.Bin(t, tool)
	}
	w := &world{reps: 4, seed: uint64(time.Now().UnixNano())}
	if s := os.Getenv("HARDWAY_FAULT_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("HARDWAY_FAULT_SEED=%q: %v", s, err)
		}
		w.seed = n
	}
	if s := os.Getenv("HARDWAY_FAULT_REPS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("HARDWAY_FAULT_REPS=%q: want a count", s)
		}
		w.reps = n
	}
	t.Logf("seed %d (replay: HARDWAY_FAULT_SEED=%d), %d kills per stage", w.seed, w.seed, w.reps)
	w.registry = testutil.StartRegistry(t)
	refs := testutil.SeedImages(t, w.registry)
	w.busybox = w.registry + "/library/busybox:latest"
	if !contains(refs, w.busybox) {
		t.Fatalf("seed-images did not push %s: %v", w.busybox, refs)
	}
	// Many small files in one layer (extraction work) and one big file in another (bytes
	// to download and hash).
	w.big = w.registry + "/faults/big:latest"
	testutil.PushLayers(t, w.big, "", manyFilesTar(t, 1500, 2048), bigFileTar(t, 24<<20))

	for i, st := range []struct {
		name string
		run  func(*testing.T, *world, *mrand.Rand)
	}{
		{"pull", pullFaults},
		{"unpack", unpackFaults},
		{"overlay", overlayFaults},
		{"cgset", cgsetFaults},
		{"netsetup", netsetupFaults},
		{"shim", shimFaults},
		{"nsrun", nsrunFaults},
		{"frontdoors", func(t *testing.T, w *world, _ *mrand.Rand) { frontDoors(t, w) }},
	} {
		t.Run(st.name, func(t *testing.T) {
			// A source per stage, so one stage replays alone with -run TestFaults/NAME.
			st.run(t, w, mrand.New(mrand.NewPCG(w.seed, uint64(i))))
		})
	}
}

// runTag is in every id this run makes: /run/netns is the machine's, shared with any other
// test running at the same time, and only names with it are this run's.
var runTag = testutil.ID("f")[:5]

// fid is a container id of this run: f, the run's tag, kind and random hex.
func fid(kind string) string { return testutil.ID(runTag + kind) }

// private gives a stage its own state root, run dir and cgroup parent.
func private(t *testing.T) {
	t.Helper()
	testutil.TempState(t)
	testutil.CgroupParent(t)
}

// timed runs a tool to the end and returns its stdout and how long it took; it must succeed.
func timed(t *testing.T, tool string, args ...string) (string, time.Duration) {
	t.Helper()
	start := time.Now()
	r := testutil.Run(t, tool, args...)
	d := time.Since(start)
	if r.Code != 0 {
		t.Fatalf("%s %s: exit %d: %s", tool, strings.Join(args, " "), r.Code, r.Stderr)
	}
	return strings.TrimSpace(r.Stdout), d
}

// calibrate times three undisturbed runs (once must leave things as they were) and returns
// the median: the first run of a stage can pay for a one-off (a module load, a cold cache).
func calibrate(t *testing.T, once func() time.Duration) time.Duration {
	t.Helper()
	ds := []time.Duration{once(), once(), once()}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[1]
}

// must runs a tool that must succeed and returns its stdout, trimmed.
func must(t *testing.T, tool string, args ...string) string {
	t.Helper()
	out, _ := timed(t, tool, args...)
	return out
}

// draw picks the moment to kill at: anywhere from the start to a quarter past the end of
// an undisturbed run (so some kills come just too late, as they would in life).
func draw(t *testing.T, rng *mrand.Rand, run time.Duration, rep int) time.Duration {
	t.Helper()
	d := time.Duration(rng.Int64N(int64(run)*5/4 + 1))
	t.Logf("kill %d: SIGKILL after %v (an undisturbed run takes %v)", rep+1, d.Round(time.Microsecond), run.Round(time.Microsecond))
	return d
}

// killAfter starts tool with args, sends it SIGKILL after d and waits for it. It says
// whether the tool had ended on its own before the kill.
func killAfter(t *testing.T, d time.Duration, tool string, args ...string) bool {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, tool), args...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
		t.Logf("  %s ended by itself before the kill", tool)
		return true
	case <-time.After(d):
	}
	cmd.Process.Signal(syscall.SIGKILL)
	<-done
	return false
}

// ---- pull

// pullFaults: a pull killed mid-download leaves no blob under its final name that does not
// hash to it, an index.json that is valid JSON naming only complete images, and a pull
// that re-runs to completion, with no partial download left.
func pullFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	handle := must(t, "pull", w.big)
	run := calibrate(t, func() time.Duration {
		os.RemoveAll(state.OCIDir())
		_, d := timed(t, "pull", w.big)
		return d
	})
	// First the kill's narrowest window, made on purpose so it is not left to chance: every
	// byte of a layer is in its partial file but the pull died before the rename. The re-run
	// must finish it (verify and rename), not ask the registry for bytes past the end.
	t.Run("complete partial", func(t *testing.T) {
		im, err := layout.Resolve(handle)
		if err != nil {
			t.Fatal(err)
		}
		l := im.Manifest.Layers[len(im.Manifest.Layers)-1]
		if err := os.Rename(layout.BlobPath(l.Digest), layout.PartialPath(l.Digest)); err != nil {
			t.Fatal(err)
		}
		r := testutil.Run(t, "pull", w.big)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != handle {
			t.Fatalf("pull with all of layer %s in its partial file: exit %d, stdout %q, stderr %s", l.Digest, r.Code, r.Stdout, r.Stderr)
		}
		if !layout.HasBlob(l.Digest, l.Size) || exists(layout.PartialPath(l.Digest)) {
			t.Errorf("pull with all of layer %s in its partial file did not put it in place", l.Digest)
		}
		checkLayout(t)
	})
	for rep := range w.reps {
		if err := os.RemoveAll(state.OCIDir()); err != nil {
			t.Fatal(err)
		}
		killAfter(t, draw(t, rng, run, rep), "pull", w.big)
		checkLayout(t)
		if got := must(t, "pull", w.big); got != handle {
			t.Fatalf("pull after the kill printed %q, want %q", got, handle)
		}
		checkLayout(t)
		im, err := layout.Resolve(handle)
		if err != nil {
			t.Fatalf("the re-run pull's image does not resolve: %v", err)
		}
		for _, d := range append([]ocispec.Descriptor{im.Manifest.Config}, im.Manifest.Layers...) {
			if !layout.HasBlob(d.Digest, d.Size) {
				t.Errorf("after the re-run pull blob %s is not complete", d.Digest)
			}
		}
		for _, f := range dotFiles(t, filepath.Join(state.OCIDir(), "blobs", "sha256")) {
			if strings.HasPrefix(f, ".partial-") {
				t.Errorf("after the re-run pull a partial download is left: %s", f)
			}
		}
		tempFilesLeft(t, state.OCIDir())
		if t.Failed() {
			return
		}
	}
}

// checkLayout checks the image store as it is after any kill: every blob under a final
// name hashes to that name, and index.json is valid JSON whose images are complete.
func checkLayout(t *testing.T) {
	t.Helper()
	dir := filepath.Join(state.OCIDir(), "blobs", "sha256")
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		io.Copy(h, f)
		f.Close()
		if got := hex.EncodeToString(h.Sum(nil)); got != e.Name() {
			t.Errorf("blob %s is under its final name but hashes to %s (half written)", e.Name(), got)
		}
	}
	b, err := os.ReadFile(filepath.Join(state.OCIDir(), "index.json"))
	if os.IsNotExist(err) {
		return // killed before the layout was made
	}
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatalf("index.json is not valid JSON after the kill: %v\n%s", err, b)
	}
	for _, m := range idx.Manifests {
		name := m.Annotations[ocispec.AnnotationRefName]
		im, err := layout.Resolve(name)
		if err != nil {
			t.Errorf("index.json names %s but it does not resolve: %v", name, err)
			continue
		}
		for _, d := range append([]ocispec.Descriptor{im.Manifest.Config}, im.Manifest.Layers...) {
			if !layout.HasBlob(d.Digest, d.Size) {
				t.Errorf("index.json names %s but its blob %s is missing", name, d.Digest)
			}
		}
	}
}

// ---- unpack

// unpackFaults: an unpack killed mid-extraction leaves no layer under its final name that
// is not whole, and a re-run completes with every layer the same, file for file, as an
// undisturbed unpack made it (unpack itself verifies each diff_id).
func unpackFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	img := must(t, "pull", w.big)
	run := calibrate(t, func() time.Duration {
		os.RemoveAll(state.OverlayDir())
		_, d := timed(t, "unpack", img)
		return d
	})
	want := layerTrees(t)
	if len(want) != 2 {
		t.Fatalf("unpack of a 2-layer image made %d layers", len(want))
	}
	for rep := range w.reps {
		if err := os.RemoveAll(state.OverlayDir()); err != nil {
			t.Fatal(err)
		}
		killAfter(t, draw(t, rng, run, rep), "unpack", img)
		// Any layer under its final name is complete now already.
		for chain, tree := range layerTrees(t) {
			if want[chain] != tree {
				t.Errorf("after the kill layer %s is under its final name but not whole", chain)
			}
		}
		if got := must(t, "unpack", img); got != img {
			t.Fatalf("unpack after the kill printed %q, want %q", got, img)
		}
		got := layerTrees(t)
		for chain, tree := range want {
			if got[chain] != tree {
				t.Errorf("after the re-run layer %s differs from an undisturbed unpack", chain)
			}
		}
		for _, f := range dotFiles(t, state.OverlayDir()) {
			t.Errorf("after the re-run unpack a temporary dir is left: overlay/%s", f)
		}
		checkShortLinks(t)
		if t.Failed() {
			return
		}
	}
}

// layerTrees fingerprints every layer under its final name: chain id → a digest of its
// diff's paths, modes, owners, link targets and contents (its short name is drawn at
// random per unpack: only its presence counts).
func layerTrees(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	ents, _ := os.ReadDir(state.OverlayDir())
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") || e.Name() == "l" || !e.IsDir() {
			continue
		}
		h := sha256.New()
		dir := filepath.Join(state.OverlayDir(), e.Name())
		if link, _ := os.ReadFile(filepath.Join(dir, "link")); len(link) == 0 {
			fmt.Fprintf(h, "no link file\n")
		}
		err := filepath.WalkDir(filepath.Join(dir, "diff"), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			st := fi.Sys().(*syscall.Stat_t)
			fmt.Fprintf(h, "%s %v %d:%d %d\n", strings.TrimPrefix(p, dir), fi.Mode(), st.Uid, st.Gid, fi.Size())
			switch {
			case fi.Mode()&fs.ModeSymlink != 0:
				target, _ := os.Readlink(p)
				fmt.Fprintf(h, "-> %s\n", target)
			case fi.Mode().IsRegular():
				f, err := os.Open(p)
				if err != nil {
					return err
				}
				io.Copy(h, f)
				f.Close()
			}
			return nil
		})
		if err != nil {
			// A dir under a final name without a readable diff/ is itself a half layer.
			out[e.Name()] = "unreadable: " + err.Error()
			continue
		}
		out[e.Name()] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

// checkShortLinks: every l/<SHORT> points at a layer's diff that is there.
func checkShortLinks(t *testing.T) {
	t.Helper()
	ls, _ := filepath.Glob(filepath.Join(state.OverlayDir(), "l", "*"))
	for _, l := range ls {
		if _, err := os.Stat(l); err != nil {
			t.Errorf("short link %s is dangling: %v", l, err)
		}
	}
}

// ---- overlay

// overlayFaults: an overlay killed while it makes a bundle is either re-run (it gives the
// bundle, rootfs mounted) or removed with overlay rm; either way overlay rm leaves no mount
// and no dir.
func overlayFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	img := must(t, "unpack", must(t, "pull", w.busybox))
	run := calibrate(t, func() time.Duration {
		id := fid("ov")
		_, d := timed(t, "overlay", "--id", id, img)
		must(t, "overlay", "rm", id)
		return d
	})
	for rep := range w.reps {
		id := fid("ov")
		t.Cleanup(func() { testutil.Run(t, "overlay", "rm", id) })
		before := snapshot(t)
		// Every other pair of kills hits an overlay --volatile (docker-run --rm's), re-run
		// without the flag: the kernel's volatile marker must not stop that mount.
		args := []string{"--id", id, img}
		if rep%4 >= 2 {
			args = append(args, "--volatile")
		}
		killAfter(t, draw(t, rng, run, rep), "overlay", args...)
		if rep%2 == 0 {
			bundle := must(t, "overlay", "--id", id, img)
			if bundle != state.ContainerDir(id) {
				t.Fatalf("overlay after the kill printed %q, want %s", bundle, state.ContainerDir(id))
			}
			if m, _ := mountinfo.Mounted(filepath.Join(bundle, "rootfs")); !m {
				t.Errorf("overlay after the kill: %s/rootfs is not mounted", bundle)
			}
			if _, err := os.Stat(filepath.Join(bundle, "rootfs", "bin", "busybox")); err != nil {
				t.Errorf("overlay after the kill: the image is not in the rootfs: %v", err)
			}
			if s := testutil.ReadBundleConfig(t, bundle); s.Root == nil || s.Process == nil {
				t.Errorf("overlay after the kill: config.json has no root or process")
			}
		}
		must(t, "overlay", "rm", id)
		assertSame(t, before, snapshot(t))
		if t.Failed() {
			return
		}
	}
}

// ---- cgset

// cgsetFaults: a cgset create killed midway is re-run (the limits hold) or deleted; cgset
// delete leaves no cgroup dir in any hierarchy.
func cgsetFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	limits := []string{"--memory", "64m", "--pids", "50", "--cpus", "0.5"}
	run := calibrate(t, func() time.Duration {
		id := fid("cg")
		_, d := timed(t, "cgset", append([]string{"create", id}, limits...)...)
		must(t, "cgset", "delete", id)
		return d
	})
	for rep := range w.reps {
		id := fid("cg")
		t.Cleanup(func() { testutil.Run(t, "cgset", "delete", id) })
		before := snapshot(t)
		killAfter(t, draw(t, rng, run, rep), "cgset", append([]string{"create", id}, limits...)...)
		if rep%2 == 0 {
			if got := must(t, "cgset", append([]string{"create", id}, limits...)...); got != state.CgroupPath(id) {
				t.Fatalf("cgset create after the kill printed %q, want %s", got, state.CgroupPath(id))
			}
			var info cgroup.Info
			if err := json.Unmarshal([]byte(must(t, "cgset", "show", "--json", id)), &info); err != nil {
				t.Fatal(err)
			}
			if info.MemoryLimit != 64<<20 || info.PidsLimit != 50 || info.CPUQuota*2 != info.CPUPeriod {
				t.Errorf("cgset create after the kill: memory %d, pids %d, cpu %d/%d; want 64m, 50, 0.5",
					info.MemoryLimit, info.PidsLimit, info.CPUQuota, info.CPUPeriod)
			}
		}
		must(t, "cgset", "delete", id)
		if dirs, _ := cgroup.Dirs(id); len(dirs) > 0 {
			t.Errorf("cgset delete after the kill left %v", dirs)
		}
		assertSame(t, before, snapshot(t))
		if t.Failed() {
			return
		}
	}
}

// ---- netsetup

// netsetupFaults: a netsetup add killed midway is re-run (the container gets its address
// and veth) or deleted; netsetup del leaves no netns, veth, address or iptables rule, also
// when it is re-run after a kill.
func netsetupFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	run := calibrate(t, func() time.Duration {
		id := fid("net")
		_, d := timed(t, "netsetup", "add", id, "-p", "18080:80")
		must(t, "netsetup", "del", id)
		return d
	})
	for rep := range w.reps {
		id := fid("net")
		t.Cleanup(func() { testutil.Run(t, "netsetup", "del", id) })
		before := snapshot(t)
		killAfter(t, draw(t, rng, run, rep), "netsetup", "add", id, "-p", "18080:80")
		if rep%2 == 0 {
			if got := must(t, "netsetup", "add", id, "-p", "18080:80"); got != state.NetnsPath(id) {
				t.Fatalf("netsetup add after the kill printed %q, want %s", got, state.NetnsPath(id))
			}
			ip, err := network.ContainerIP(id)
			if err != nil {
				t.Fatalf("netsetup add after the kill: %v", err)
			}
			out, err := testutil.InNetns(id, "ip", "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
			if err != nil || !strings.Contains(string(out), ip.String()+"/") {
				t.Errorf("netsetup add after the kill: eth0 in %s does not hold %s: %v %s", id, ip, err, out)
			}
			if out, err := exec.Command("ip", "-o", "link", "show", network.HostVeth(id)).CombinedOutput(); err != nil || !strings.Contains(string(out), "master "+network.Bridge()) {
				t.Errorf("netsetup add after the kill: %s is not on the bridge: %v %s", network.HostVeth(id), err, out)
			}
			if rules := iptablesSave(t); !strings.Contains(rules, "hardway:"+id) {
				t.Errorf("netsetup add after the kill: no rule for %s:\n%s", id, rules)
			}
		}
		must(t, "netsetup", "del", id)
		assertSame(t, before, snapshot(t))
		if t.Failed() {
			return
		}
	}
	// A del killed midway is completed by the next del, also when another container's add
	// came in between: that add finds or completes the shared rules, doubling none.
	runDel := calibrate(t, func() time.Duration {
		id := fid("net")
		must(t, "netsetup", "add", id, "-p", "18080:80")
		_, d := timed(t, "netsetup", "del", id)
		return d
	})
	for rep := range w.reps {
		id, other := fid("net"), fid("net")
		t.Cleanup(func() { testutil.Run(t, "netsetup", "del", other); testutil.Run(t, "netsetup", "del", id) })
		before := snapshot(t)
		must(t, "netsetup", "add", id, "-p", "18080:80")
		killAfter(t, draw(t, rng, runDel, rep), "netsetup", "del", id)
		if rep%2 == 0 {
			must(t, "netsetup", "add", other, "-p", "18081:80")
			seen := map[string]bool{}
			for _, l := range strings.Split(iptablesSave(t), "\n") {
				if strings.HasPrefix(l, "-A ") && seen[l] {
					t.Errorf("after a del killed midway and another add, a rule is there twice: %s", l)
				}
				seen[l] = true
			}
			must(t, "netsetup", "del", other)
		}
		must(t, "netsetup", "del", id)
		assertSame(t, before, snapshot(t))
		if t.Failed() {
			return
		}
	}
}

// ---- shim

// shimFaults: a supervisor killed with SIGKILL takes its container down with it (or the
// container is recorded as exited), and shim rm cleans up; a container killed with SIGKILL
// is recorded with exit code 137.
func shimFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	img := must(t, "unpack", must(t, "pull", w.busybox))
	start := func(id string) {
		t.Helper()
		t.Cleanup(func() { removeContainer(t, id) })
		must(t, "overlay", "--id", id, img, "--", "sh", "-c", "echo started; exec sleep 60")
		must(t, "cgset", "create", id)
	}
	shimArgs := func(id string) []string {
		return []string{"--id", id, "--", testutil.Bin(t, "nsrun"), "--cgroup", id, state.ContainerDir(id)}
	}
	run := calibrate(t, func() time.Duration {
		id := fid("sh")
		start(id)
		_, d := timed(t, "shim", shimArgs(id)...)
		removeContainer(t, id)
		return d
	})

	for rep := range w.reps {
		// The supervisor, at a random moment of the container's start (or soon after).
		id := fid("sh")
		before := snapshot(t)
		start(id)
		cmd := exec.Command(testutil.Bin(t, "shim"), shimArgs(id)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(draw(t, rng, run, rep))
		shimPid := waitPidFile(t, filepath.Join(state.RunDir(id), "shim.pid"))
		syscall.Kill(shimPid, syscall.SIGKILL)
		cmd.Wait()
		c, _ := state.ReadContainer(id)
		if c != nil && c.Pid > 0 {
			if !waitGone(c.Pid) {
				st, _ := state.ReadContainer(id)
				t.Errorf("supervisor %d killed: its container %d still runs (state %+v)", shimPid, c.Pid, st)
			}
		}
		if procs := cgroupProcs(t, id); len(procs) > 0 {
			t.Errorf("supervisor %d killed: processes %v are left in the container's cgroup", shimPid, procs)
		}
		if r := testutil.Run(t, "shim", "rm", id); r.Code != 0 {
			t.Errorf("shim rm after the supervisor's kill: exit %d: %s", r.Code, r.Stderr)
		}
		for _, p := range []string{state.StateFile(id), state.LogFile(id), state.RunDir(id)} {
			if exists(p) {
				t.Errorf("shim rm after the supervisor's kill left %s", p)
			}
		}
		removeContainer(t, id)
		assertSame(t, before, snapshot(t))

		// The container itself, at a random moment of its life under a live supervisor.
		id = fid("sh")
		start(id)
		pid, err := strconv.Atoi(must(t, "shim", shimArgs(id)...))
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(draw(t, rng, run, rep))
		syscall.Kill(pid, syscall.SIGKILL)
		if code := must(t, "shim", "wait", id); code != "137" {
			t.Errorf("container killed with SIGKILL: shim wait printed %q, want 137", code)
		}
		if st, err := state.ReadContainer(id); err != nil || st.Status != state.StatusExited || st.ExitCode == nil || *st.ExitCode != 137 {
			t.Errorf("container killed with SIGKILL: state.json %+v (%v), want exited 137", st, err)
		}
		removeContainer(t, id)
		assertSame(t, before, snapshot(t))
		if t.Failed() {
			return
		}
	}
}

// waitPidFile reads a pid file as soon as it is there.
func waitPidFile(t *testing.T, p string) int {
	t.Helper()
	for range 500 {
		if b, err := os.ReadFile(p); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
				return pid
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", p)
	return 0
}

// ---- nsrun

// nsrunFaults: an nsrun killed while it starts a container leaves no process in another
// mount namespace holding the rootfs, and the bundle runs again.
func nsrunFaults(t *testing.T, w *world, rng *mrand.Rand) {
	private(t)
	img := must(t, "unpack", must(t, "pull", w.busybox))
	id := fid("ns")
	t.Cleanup(func() { removeContainer(t, id) })
	// The process lives on after its start, so a container that outlived nsrun would show.
	bundle := must(t, "overlay", "--id", id, img, "--", "sh", "-c", "echo ran; sleep 0.2")
	must(t, "cgset", "create", id)
	run := calibrate(t, func() time.Duration {
		out, d := timed(t, "nsrun", "--cgroup", id, bundle)
		if out != "ran" {
			t.Fatalf("nsrun printed %q, want ran", out)
		}
		return d
	})
	// Draw from nsrun's start, not the container's sleep.
	run -= 200 * time.Millisecond
	{
		for rep := range w.reps {
			killAfter(t, draw(t, rng, max(run, time.Millisecond), rep), "nsrun", "--cgroup", id, bundle)
			if holders := waitNoHolders(bundle); len(holders) > 0 {
				t.Errorf("nsrun killed: processes %v still hold %s in their own mount namespace", holders, bundle)
			}
			if procs := cgroupProcs(t, id); len(procs) > 0 {
				t.Errorf("nsrun killed: processes %v are left in the container's cgroup", procs)
			}
			if out := must(t, "nsrun", "--cgroup", id, bundle); out != "ran" {
				t.Errorf("nsrun after the kill printed %q, want ran", out)
			}
			if t.Failed() {
				return
			}
		}
	}
	before := snapshotExcept(t, id)
	removeContainer(t, id)
	assertSame(t, before, snapshot(t))
}

// waitNoHolders waits a moment for the processes (other than in this mount namespace)
// whose mounts name the bundle dir, and returns those still there.
func waitNoHolders(bundle string) []int {
	var h []int
	for range 100 {
		if h = holders(bundle); len(h) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return h
}

func holders(bundle string) []int {
	self, _ := os.Readlink("/proc/self/ns/mnt")
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); err != nil || ns == self {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid)); err == nil && strings.Contains(string(b), bundle+"/") {
			out = append(out, pid)
		}
	}
	return out
}

// ---- cleanup helpers and the leftover check

// removeContainer is docker-rm by hand: each undo verb, each fine with what is gone.
func removeContainer(t *testing.T, id string) {
	t.Helper()
	for _, args := range [][]string{{"shim", "rm", id}, {"netsetup", "del", id}, {"cgset", "delete", id}, {"overlay", "rm", id}} {
		if r := testutil.Run(t, args[0], args[1:]...); r.Code != 0 {
			t.Errorf("%s: exit %d: %s", strings.Join(args, " "), r.Code, r.Stderr)
		}
	}
}

func cgroupProcs(t *testing.T, id string) []int {
	dirs, _ := cgroup.Dirs(id)
	var out []int
	for range 100 { // a killed process takes a moment to leave
		out = out[:0]
		for _, d := range dirs {
			b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
			for _, f := range strings.Fields(string(b)) {
				n, _ := strconv.Atoi(f)
				out = append(out, n)
			}
		}
		if len(out) == 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

func waitGone(pid int) bool {
	for range 100 {
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// snapshot is what a learner would look at to see what a stage left: mounts under the
// state dirs, pinned netns files, links, iptables rules, cgroup dirs, addresses, container
// and run dirs, and temporary files in the stores.
func snapshot(t *testing.T) map[string][]string {
	t.Helper()
	return snapshotExcept(t, "")
}

// snapshotExcept is snapshot without what belongs to container keep (made on purpose).
func snapshotExcept(t *testing.T, keep string) map[string][]string {
	t.Helper()
	s := map[string][]string{}
	ms, err := mountinfo.Read(0)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if strings.HasPrefix(m.Point, state.Root()+"/") || strings.HasPrefix(m.Point, state.RunRoot()+"/") ||
			strings.HasPrefix(m.Point, filepath.Join(state.NetnsDir(), runTag)) {
			s["mount"] = append(s["mount"], m.Point)
		}
	}
	netns, _ := os.ReadDir(state.NetnsDir())
	for _, e := range netns {
		if strings.HasPrefix(e.Name(), runTag) {
			s["netns"] = append(s["netns"], e.Name())
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(links), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] != "lo:" {
			s["link"] = append(s["link"], strings.TrimSuffix(strings.Split(f[1], "@")[0], ":"))
		}
	}
	for _, l := range strings.Split(iptablesSave(t), "\n") {
		s["iptables"] = append(s["iptables"], l)
	}
	for _, h := range cgroupHierarchies() {
		ds, _ := filepath.Glob(filepath.Join(h, state.CgroupParent(), "*"))
		for _, d := range ds {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				s["cgroup"] = append(s["cgroup"], d)
			}
		}
	}
	ipam, _ := os.ReadDir(state.IPAMDir())
	for _, e := range ipam {
		if e.Name() != "lock" {
			s["ipam"] = append(s["ipam"], e.Name())
		}
	}
	for _, dir := range []string{state.ContainersDir(), state.RunRoot()} {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if e.Name() != "ipam" {
				s["dir"] = append(s["dir"], filepath.Join(dir, e.Name()))
			}
		}
	}
	for _, dir := range []string{state.OCIDir(), filepath.Join(state.OCIDir(), "blobs", "sha256"), state.OverlayDir()} {
		for _, f := range dotFiles(t, dir) {
			s["temp"] = append(s["temp"], filepath.Join(dir, f))
		}
	}
	if keep != "" {
		for k, v := range s {
			var kept []string
			for _, x := range v {
				if !strings.Contains(x, keep) && !(k == "link" && x == network.HostVeth(keep)) {
					kept = append(kept, x)
				}
			}
			s[k] = kept
		}
	}
	for k := range s {
		sort.Strings(s[k])
	}
	return s
}

// assertSame reports every kind of thing that differs between two snapshots.
func assertSame(t *testing.T, before, after map[string][]string) {
	t.Helper()
	for _, k := range []string{"mount", "netns", "link", "iptables", "cgroup", "ipam", "dir", "temp"} {
		b, a := set(before[k]), set(after[k])
		for x := range a {
			if !b[x] {
				t.Errorf("left behind (%s): %s", k, x)
			}
		}
	}
}

func set(xs []string) map[string]bool {
	m := map[string]bool{}
	for _, x := range xs {
		m[x] = true
	}
	return m
}

var builtinChain = regexp.MustCompile(`^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) `)

// iptablesSave is this namespace's rules and own chains: a table's header and built-in
// chains appear once it is first used, which is no leftover.
func iptablesSave(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Fatalf("iptables-save: %v", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "-") || strings.HasPrefix(l, ":") && !builtinChain.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func cgroupHierarchies() []string {
	hs, _ := filepath.Glob("/sys/fs/cgroup/*")
	return append(hs, "/sys/fs/cgroup")
}

// dotFiles lists a dir's hidden entries: the temporary names every store writes under.
func dotFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".") {
			out = append(out, e.Name())
		}
	}
	return out
}

// tempFilesLeft reports temporary files a completed re-run left in the image store.
//
// Tolerated (logged, not failed): a pull killed inside layout.WriteBlob (a manifest or
// config, between its CreateTemp and its rename) leaves blobs/sha256/.tmp-<hex12>-N, which
// a later pull removes once it is an hour old: a younger one may be a concurrent pull's.
// A killed write of oci-layout or index.json (oci/.oci-layout.tmp-N, oci/.index.json.tmp-N)
// must be gone: those are written only under the store's lock, which the re-run's Init
// takes before clearing them. A .partial- download must be resumed and gone.
func tempFilesLeft(t *testing.T, oci string) {
	t.Helper()
	for _, dir := range []string{oci, filepath.Join(oci, "blobs", "sha256")} {
		for _, f := range dotFiles(t, dir) {
			if dir != oci && strings.HasPrefix(f, ".tmp-") {
				t.Logf("known: the killed pull's temporary file %s is left behind", filepath.Join(dir, f))
				continue
			}
			t.Errorf("after the re-run pull a temporary file is left: %s", filepath.Join(dir, f))
		}
	}
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// ---- test images

// manyFilesTar is a layer of n files of size random bytes each, in a few dirs.
func manyFilesTar(t *testing.T, n, size int) string {
	t.Helper()
	return writeTar(t, func(tw *tar.Writer) {
		buf := make([]byte, size)
		for i := range n {
			rand.Read(buf)
			name := fmt.Sprintf("many/d%02d/f%04d", i%30, i)
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
				t.Fatal(err)
			}
			tw.Write(buf)
		}
	})
}

// bigFileTar is a layer of one file of size random bytes (it does not compress).
func bigFileTar(t *testing.T, size int) string {
	t.Helper()
	return writeTar(t, func(tw *tar.Writer) {
		if err := tw.WriteHeader(&tar.Header{Name: "big.bin", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		io.CopyN(tw, rand.Reader, int64(size))
	})
}

func writeTar(t *testing.T, fill func(*tar.Writer)) string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "layer-*.tar")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	fill(tw)
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Name()
}
