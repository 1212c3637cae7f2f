// Package labs runs the workshop the way CI does: every labs/NN-name/run.sh --yes, in
// order, each followed by its check.sh, then asserts that after labs/10-cleanup the machine
// holds nothing of ours: no mount, netns, veth, iptables rule, cgroup or process.
//
// The whole test runs inside a throwaway network namespace that plays the host (TestMain
// re-executes it under `unshare --net`), with a private HARDWAY_ROOT, HARDWAY_RUN and
// cgroup parent; lab 00 starts the registry on that namespace's own 127.0.0.1:5000.
// The labs are found by their dirs, so a lab that lands is run without touching this file.
package labs

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/testutil"
)

func TestMain(m *testing.M) {
	testutil.InThrowawayNetns("labs")
	os.Exit(m.Run())
}

// world is the test's private machine state: where the labs keep theirs.
type world struct {
	top, root, run, parent string
	env                    []string
	said                   strings.Builder // everything the labs printed
}

func newWorld(t *testing.T) *world {
	t.Helper()
	testutil.RequireRoot(t)
	w := &world{top: testutil.RepoRoot(t)}
	w.root = testutil.TempState(t)
	w.run = os.Getenv("HARDWAY_RUN")
	w.parent = testutil.CgroupParent(t)
	for _, tool := range []string{"pull", "unpack", "overlay", "nsrun", "cgset", "netsetup", "shim", "inspect"} {
		testutil.Bin(t, tool)
	}
	w.env = append(os.Environ(),
		"PATH="+filepath.Join(w.top, "bin")+":"+filepath.Join(w.top, ".tools", "bin")+":"+os.Getenv("PATH"),
		"HARDWAY_REGISTRY=127.0.0.1:5000",
		"NO_COLOR=1",
	)
	return w
}

// sh runs a lab script with no terminal (as CI does) and returns its output and error.
func (w *world) sh(script string, args ...string) (string, error) {
	c := exec.Command(script, args...)
	c.Env = w.env
	c.Dir = w.top
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	w.said.WriteString(out.String())
	return out.String(), err
}

// labDirs are the labs in order: every labs/NN-name/ with a run.sh.
func labDirs(t *testing.T, top string) []string {
	m, err := filepath.Glob(filepath.Join(top, "labs", "[0-9][0-9]-*", "run.sh"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no labs found under %s/labs (%v)", top, err)
	}
	// HARDWAY_LABS=00,09,10 runs only those (to work on one lab); CI runs them all.
	only := map[string]bool{}
	for _, n := range strings.Split(os.Getenv("HARDWAY_LABS"), ",") {
		if n = strings.TrimSpace(n); n != "" {
			only[n] = true
		}
	}
	var dirs []string
	for _, p := range m {
		if n := filepath.Base(filepath.Dir(p)); len(only) == 0 || only[n[:2]] {
			dirs = append(dirs, filepath.Dir(p))
		}
	}
	sort.Strings(dirs)
	return dirs
}

// TestWorkshop runs every lab, then the cleanup lab, and checks the machine is as before.
func TestWorkshop(t *testing.T) {
	w := newWorld(t)
	netnsBefore, mountsBefore := netnsNames(), mountPoints()
	dirs := labDirs(t, w.top)
	if n := filepath.Base(dirs[0]); !strings.HasPrefix(n, "00-") {
		t.Fatalf("the first lab is %s, want 00-setup (it starts the registry the others pull from)", n)
	}
	cleanup := ""
	if n := filepath.Base(dirs[len(dirs)-1]); strings.HasPrefix(n, "10-") {
		cleanup, dirs = dirs[len(dirs)-1], dirs[:len(dirs)-1]
	} else {
		t.Fatalf("the last lab is %s, want 10-cleanup", n)
	}
	// Whatever happens, leave nothing: the cleanup lab, then the registry and containers
	// by the tools themselves.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		w.sh(filepath.Join(cleanup, "run.sh"), "--yes")
		ents, _ := os.ReadDir(filepath.Join(w.root, "containers"))
		for _, e := range ents {
			w.sh(filepath.Join(w.top, "scripts", "docker-rm"), e.Name())
		}
		w.sh(filepath.Join(w.top, "scripts", "registry"), "stop")
	})

	passed := map[string]bool{}
	for _, dir := range dirs {
		name := filepath.Base(dir)
		var ok bool
		t.Run(name, func(t *testing.T) { ok = runLab(t, w, dir) })
		passed[name] = ok
		if !ok {
			break // the next labs build on this one; go straight to the cleanup
		}
	}

	// labs/run lists each lab that ran with its status.
	list, err := w.sh(filepath.Join(w.top, "labs", "run"))
	if err != nil {
		t.Errorf("labs/run: %v\n%s", err, list)
	}
	for name, ok := range passed {
		want := "failed"
		if ok {
			want = "done"
		}
		if !hasRow(list, name, want) {
			t.Errorf("labs/run does not list %s as %s:\n%s", name, want, list)
		}
	}

	if passed[filepath.Base(dirs[0])] {
		// The registry lab 00 started is up until the cleanup lab: the docker family uses it.
		t.Run("docker-family", func(t *testing.T) { dockerFamily(t, w) })
	}
	if passed[filepath.Base(dirs[0])] {
		// Before the cleanup the machine is not clean: the cleanup check must say so and
		// name the registry it finds still running.
		out, err := w.sh(filepath.Join(cleanup, "check.sh"))
		if err == nil || !strings.Contains(out, "FAIL no process of ours") || !strings.Contains(out, "serve "+filepath.Join(w.root, "registry", "config.yml")) {
			t.Errorf("10-cleanup/check.sh with the registry running: %v, want a failed process check naming the registry:\n%s", err, out)
		}
	}
	t.Run(filepath.Base(cleanup), func(t *testing.T) { runLab(t, w, cleanup) })
	w.assertNothingLeft(t, netnsBefore, mountsBefore)
}

// runLab runs a lab's run.sh --yes, which must echo its commands, then its check.sh, and
// says whether both passed.
func runLab(t *testing.T, w *world, dir string) bool {
	out, err := w.sh(filepath.Join(dir, "run.sh"), "--yes")
	if err != nil {
		t.Errorf("%s/run.sh --yes: %v\n%s", filepath.Base(dir), err, out)
		return false
	}
	if !strings.Contains(out, "\n$ ") && !strings.HasPrefix(out, "$ ") {
		t.Errorf("%s/run.sh does not echo its commands (no line starting with \"$ \"):\n%s", filepath.Base(dir), out)
	}
	check, err := w.sh(filepath.Join(dir, "check.sh"))
	if err != nil {
		t.Errorf("%s/check.sh after run.sh: %v\n%s\nrun.sh said:\n%s", filepath.Base(dir), err, check, out)
		return false
	}
	for _, f := range []string{"README.md", "reset.sh"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("%s has no %s", filepath.Base(dir), f)
		}
	}
	return true
}

func hasRow(list, name, status string) bool {
	for _, l := range strings.Split(list, "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 && f[0] == name && strings.HasPrefix(strings.Join(f[1:], " "), status) {
			return true
		}
	}
	return false
}

// assertNothingLeft checks the machine as a learner would after the cleanup lab: mounts,
// network namespaces, links, iptables, cgroups, processes, addresses, container dirs.
func (w *world) assertNothingLeft(t *testing.T, netnsBefore, mountsBefore map[string]bool) {
	t.Helper()
	// Processes take a moment to be reaped after their cgroup is killed.
	var procs []string
	for i := 0; i < 50; i++ {
		if procs = w.ourProcesses(); len(procs) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range procs {
		t.Errorf("a process of ours is left: %s", p)
	}
	// Mounts under our state dirs, and new ones a lab made in a scratch dir of its own
	// (named after hardway or the lab).
	for m := range mountPoints() {
		ours := strings.HasPrefix(m, w.root+"/") || strings.HasPrefix(m, w.run+"/")
		scratch := !mountsBefore[m] && (strings.Contains(m, "hardway") || strings.Contains(m, "/lab"))
		if ours || scratch {
			t.Errorf("a mount is left: %s", m)
		}
	}
	// /run/netns is the machine's: a new name there is ours when a lab printed it.
	said := w.said.String()
	for ns := range netnsNames() {
		if !netnsBefore[ns] && regexp.MustCompile(`\b`+regexp.QuoteMeta(ns)+`\b`).MatchString(said) {
			t.Errorf("a network namespace is left: /run/netns/%s", ns)
		}
	}
	links, _ := exec.Command("ip", "-o", "link", "show").Output()
	for _, l := range strings.Split(string(links), "\n") {
		if strings.Contains(l, ": hardway0:") || strings.Contains(l, "master hardway0 ") {
			t.Errorf("a link is left: %s", l)
		}
	}
	// This network namespace started empty: every rule in it came from the labs.
	rules, err := exec.Command("iptables-save").Output()
	if err != nil {
		t.Errorf("iptables-save: %v", err)
	}
	for _, l := range strings.Split(string(rules), "\n") {
		if strings.Contains(strings.ToLower(l), "hardway") && !strings.HasPrefix(l, "#") {
			t.Errorf("an iptables rule is left: %s", l)
		}
	}
	cgs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", w.parent))
	if d := filepath.Join("/sys/fs/cgroup", w.parent); fileExists(d) {
		cgs = append(cgs, d)
	}
	for _, d := range cgs {
		t.Errorf("a cgroup is left: %s", d)
	}
	if ents, _ := os.ReadDir(filepath.Join(w.run, "ipam")); len(ents) > 0 {
		for _, e := range ents {
			if e.Name() != "lock" && !strings.HasPrefix(e.Name(), ".") {
				t.Errorf("an address is still allocated: %s", e.Name())
			}
		}
	}
	// A lab's own files live in $HARDWAY_RUN/scratch/LAB (lab_scratch); its reset removes them.
	if ents, _ := os.ReadDir(filepath.Join(w.run, "scratch")); len(ents) > 0 {
		for _, e := range ents {
			t.Errorf("a lab's scratch dir is left: %s", filepath.Join(w.run, "scratch", e.Name()))
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(w.root, "containers")); len(ents) > 0 {
		for _, e := range ents {
			t.Errorf("a container dir is left: %s", e.Name())
		}
	}
}

// ourProcesses lists the processes the labs left: any whose environment names our
// HARDWAY_ROOT or cgroup parent (our tools, shims, registries, anything a lab started),
// that serves our registry, or that sits in our cgroups.
func (w *world) ourProcesses() []string {
	var out []string
	self := os.Getpid()
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self || pid == os.Getppid() {
			continue
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(cmdline) == 0 {
			continue
		}
		args := strings.ReplaceAll(strings.TrimRight(string(cmdline), "\x00"), "\x00", " ")
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		switch {
		case hasEnv(env, "HARDWAY_ROOT="+w.root), hasEnv(env, "HARDWAY_CGROUP_PARENT="+w.parent):
			// Started by a lab (everything it starts inherits the test's private
			// cgroup parent, even where a lab moves HARDWAY_ROOT for a scratch registry).
		case strings.Contains(args, filepath.Join(w.root, "registry", "config.yml")):
		case strings.Contains(string(cg), ":/"+w.parent+"/") || strings.Contains(string(cg), ":/"+w.parent+"\n"):
		default:
			continue
		}
		out = append(out, fmt.Sprintf("pid %d: %s", pid, args))
	}
	return out
}

// mountPoints are the mount points of this mount namespace (the host's: unshare --net
// keeps it), from /proc/self/mountinfo.
func mountPoints() map[string]bool {
	m := map[string]bool{}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, l := range strings.Split(string(mi), "\n") {
		if f := strings.Fields(l); len(f) > 4 {
			m[f[4]] = true
		}
	}
	return m
}

// hasEnv: does a /proc/PID/environ hold the entry kv?
func hasEnv(environ []byte, kv string) bool {
	return bytes.HasPrefix(environ, []byte(kv+"\x00")) || bytes.Contains(environ, []byte("\x00"+kv+"\x00"))
}

func netnsNames() map[string]bool {
	m := map[string]bool{}
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		m[e.Name()] = true
	}
	return m
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// script runs scripts/NAME and returns stdout, stderr and the exit code.
func (w *world) script(t *testing.T, name string, args ...string) (string, string, int) {
	t.Helper()
	c := exec.Command(filepath.Join(w.top, "scripts", name), args...)
	c.Env = w.env
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	w.said.WriteString(strings.Join(args, " ") + "\n" + out.String() + errb.String())
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("scripts/%s: %v", name, err)
	}
	return out.String(), errb.String(), code
}

// dockerFamily: the docker-* wrappers do what their Docker namesakes do, and a docker flag
// no stage takes yet is refused in one line with nothing created.
func dockerFamily(t *testing.T, w *world) {
	img := "127.0.0.1:5000/library/busybox:latest"
	id := testutil.ID("fam")
	t.Cleanup(func() { w.script(t, "docker-rm", id) })

	// Foreground: -h, --cpus, --platform reach their stages.
	out, errOut, code := w.script(t, "docker-run", "--rm", "--name", id, "-h", "famhost", "--cpus", "0.5",
		"--platform", "linux/amd64", img, "sh", "-c",
		"hostname; cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max")
	if code != 0 || out != "famhost\n50000\n" {
		t.Errorf("docker-run -h famhost --cpus 0.5: exit %d, stdout %q (want \"famhost\\n50000\\n\"), stderr:\n%s", code, out, errOut)
	}
	if fileExists(filepath.Join(w.root, "containers", id)) {
		t.Errorf("docker-run --rm left containers/%s", id)
	}

	// -e, -w, -u, -v reach overlay: the process sees the variable, the dir, the ids and the
	// host dir, read-only with :ro.
	host := t.TempDir()
	if err := os.Chmod(host, 0o777); err != nil { // only :ro may stop uid 1000 writing
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "f"), []byte("from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := testutil.ID("opt")
	t.Cleanup(func() { w.script(t, "docker-rm", opt) })
	out, errOut, code = w.script(t, "docker-run", "--rm", "--name", opt, "-e", "A=1", "-w", "/tmp", "-u", "1000:1000",
		"-v", host+":/data:ro", img, "sh", "-c",
		`echo "A=$A"; pwd; id -u; id -g; cat /data/f; if echo x >/data/w; then echo wrote; else echo refused; fi`)
	if want := "A=1\n/tmp\n1000\n1000\nfrom the host\nrefused\n"; code != 0 || out != want {
		t.Errorf("docker-run -e A=1 -w /tmp -u 1000:1000 -v %s:/data:ro: exit %d, stdout %q, want %q; stderr:\n%s", host, code, out, want, errOut)
	}
	if !strings.Contains(errOut, "Read-only file system") {
		t.Errorf("writing to the :ro volume: stderr %q, want it to say Read-only file system", errOut)
	}
	if fileExists(filepath.Join(host, "w")) {
		t.Errorf("the container wrote %s/w through a :ro volume", host)
	}
	if fileExists(filepath.Join(w.root, "containers", opt)) {
		t.Errorf("docker-run --rm left containers/%s", opt)
	}

	// A volume whose host dir is missing: one line, exit 2, nothing made.
	bad := testutil.ID("bad")
	t.Cleanup(func() { w.script(t, "docker-rm", bad) })
	_, errOut, code = w.script(t, "docker-run", "--name", bad, "-v", host+"/missing:/data", img, "true")
	if code == 0 || !strings.Contains(errOut, "does not exist") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Errorf("docker-run -v MISSING:/data: exit %d, stderr %q; want a failure and one line saying the host path does not exist", code, errOut)
	}
	if fileExists(filepath.Join(w.root, "containers", bad)) {
		t.Errorf("a refused docker-run -v left containers/%s", bad)
	}

	// Detached: ps, logs, stop, ps -a, exec.
	out, errOut, code = w.script(t, "docker-run", "-d", "--name", id, img, "sh", "-c", "echo started; exec sleep 600")
	if code != 0 || strings.TrimSpace(out) != id {
		t.Fatalf("docker-run -d: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if out, _, _ := w.script(t, "docker-ps", "-q"); !strings.Contains(out, id) {
		t.Errorf("docker-ps -q does not list the running %s:\n%s", id, out)
	}
	var logs string
	for i := 0; i < 50 && logs != "started\n"; i++ {
		logs, _, _ = w.script(t, "docker-logs", id)
		time.Sleep(100 * time.Millisecond)
	}
	if logs != "started\n" {
		t.Errorf("docker-logs %s = %q, want \"started\\n\"", id, logs)
	}
	execOut, execErr, code := w.script(t, "docker-exec", id, "cat", "/etc/hostname")
	if h, _ := exec.Command(filepath.Join(w.top, "bin", "nsrun"), "exec", "--help").CombinedOutput(); strings.HasPrefix(string(h), "Usage: nsrun exec") {
		if code != 0 || strings.TrimSpace(execOut) != id {
			t.Errorf("docker-exec %s cat /etc/hostname: exit %d, stdout %q, stderr %q", id, code, execOut, execErr)
		}
	} else if code != 2 || !strings.Contains(execErr, "nsrun has no exec command yet") {
		t.Errorf("docker-exec without nsrun exec: exit %d, stderr %q; want exit 2 saying nsrun has no exec", code, execErr)
	}
	out, errOut, code = w.script(t, "docker-stop", "-t", "1", id)
	if code != 0 || strings.TrimSpace(out) != id {
		t.Errorf("docker-stop -t 1: exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	if out, _, _ := w.script(t, "docker-ps", "-q"); strings.Contains(out, id) {
		t.Errorf("docker-ps still lists the stopped %s:\n%s", id, out)
	}
	if out, _, _ := w.script(t, "docker-ps", "-a"); !hasRow(out, id, "") || !strings.Contains(out, "Exited (137)") {
		t.Errorf("docker-ps -a does not show %s as Exited (137) (sleep ignores TERM as PID 1, so KILL):\n%s", id, out)
	}
	if _, errOut, code := w.script(t, "docker-rm", id); code != 0 {
		t.Errorf("docker-rm %s: exit %d: %s", id, code, errOut)
	}
}
