package inspect

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// startNamespaced starts `unshare --pid --fork --mount-proc --uts sleep 60` and returns the
// unshare pid and its child (the sleep, pid 1 of the new pid namespace), which dies with it
// (--kill-child).
func startNamespaced(t *testing.T) (int, int) {
	t.Helper()
	testutil.RequireRoot(t)
	cmd := exec.Command("unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts", "sleep", "60")
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

func render(t *testing.T, tg Target, s Sections) (*View, string) {
	t.Helper()
	v, err := Collect(tg, s)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := Render(&b, v, false); err != nil {
		t.Fatal(err)
	}
	return v, b.String()
}

func TestInspectPid(t *testing.T) {
	_, pid := startNamespaced(t)
	tg, err := ByPid(pid)
	if err != nil {
		t.Fatal(err)
	}
	_, out := render(t, tg, Sections{})
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
	if strings.Contains(out, "\x1b[") {
		t.Errorf("plain output holds escape sequences")
	}
	agree(t, pid, pid)
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
	_, out := render(t, tg, Sections{})
	if !strings.Contains(out, "container "+id) || !strings.Contains(out, "<- the container") {
		t.Errorf("view does not name the container:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("(%d) [mnt,uts]", shim)) {
		t.Errorf("the shim-like unshare is not marked with its mnt,uts change:\n%s", out)
	}
	if !strings.Contains(out, "IMAGE AND STATE\n  status:    running\n") {
		t.Errorf("no state section:\n%s", out)
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

// ---- agreement with util-linux and psmisc ----

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// agree checks inspect's view of pid, with top the root of its tree, field by field against
// lsns -J -p, findmnt -J -N and pstree -apS on the same pid.
func agree(t *testing.T, pid, top int) {
	t.Helper()
	v, err := Collect(Target{Pid: pid, ShimPid: top}, Sections{})
	if err != nil {
		t.Fatal(err)
	}
	if top == pid {
		v.ShimPid = 0
	}

	// lsns: one row per namespace of the process, with its inode.
	var ls struct {
		Namespaces []struct {
			NS   uint64 `json:"ns"`
			Type string `json:"type"`
		} `json:"namespaces"`
	}
	// --list: rows, not the tree lsns draws by default (a pid namespace under its parent's).
	if err := json.Unmarshal(run(t, "lsns", "-J", "--list", "-p", strconv.Itoa(pid)), &ls); err != nil {
		t.Fatal(err)
	}
	want := map[string]uint64{}
	for _, n := range ls.Namespaces {
		want[n.Type] = n.NS
	}
	got := map[string]uint64{}
	for _, n := range v.Namespaces {
		got[n.Type] = n.Ino
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("namespaces: inspect %v, lsns -J -p %d %v", got, pid, want)
	}

	// findmnt: the mount tree of the process; flattened, the same targets, types, sources
	// and options.
	type fm struct {
		Target, Source, Fstype, Options string
		Children                        []fm
	}
	var tree struct{ Filesystems []fm }
	if err := json.Unmarshal(run(t, "findmnt", "-J", "-N", strconv.Itoa(pid)), &tree); err != nil {
		t.Fatal(err)
	}
	var fms []string
	var flat func([]fm)
	flat = func(l []fm) {
		for _, f := range l {
			fms = append(fms, f.Target+" "+f.Fstype+" "+f.Source)
			flat(f.Children)
		}
	}
	flat(tree.Filesystems)
	var ours []string
	for _, m := range v.Mounts {
		src := m.Source
		if m.Root != "/" {
			src += "[" + m.Root + "]"
		}
		ours = append(ours, m.Point+" "+m.FSType+" "+src)
	}
	// findmnt shows only the visible mounts of an overmounted stack once each; compare sets.
	sort.Strings(fms)
	sort.Strings(ours)
	fms, ours = slices.Compact(fms), slices.Compact(ours)
	if strings.Join(fms, "\n") != strings.Join(ours, "\n") {
		t.Errorf("mounts differ from findmnt -J -N %d:\ninspect:\n%s\nfindmnt:\n%s", pid, strings.Join(ours, "\n"), strings.Join(fms, "\n"))
	}

	// pstree: the tree below top, with each process's namespace changes and arguments.
	line := regexp.MustCompile(`^[\s|` + "`" + `-]*([^,{\s|` + "`" + `-][^,]*),(\d+)((?:,[a-z]+)*)(?: (.*))?$`)
	pst := map[int]string{}
	for _, l := range strings.Split(strings.TrimSpace(string(run(t, "pstree", "-apSl", strconv.Itoa(top)))), "\n") {
		m := line.FindStringSubmatch(l)
		if m == nil {
			continue // threads ({name}) and anything pstree cannot name
		}
		p, _ := strconv.Atoi(m[2])
		pst[p] = strings.TrimPrefix(m[3], ",") + "|" + m[4]
	}
	ourTree := map[int]string{}
	below := false
	for _, p := range v.Processes {
		if p.Pid == top {
			below = true
		}
		if !below || p.Ancestor {
			continue
		}
		var ch []string
		for _, n := range p.NSChange {
			if n != "time" { // pstree does not know the time namespace
				ch = append(ch, n)
			}
		}
		sort.Strings(ch)
		_, args, _ := strings.Cut(p.Args, " ")
		ourTree[p.Pid] = strings.Join(ch, ",") + "|" + args
	}
	for p, s := range pst {
		f := strings.Split(strings.SplitN(s, "|", 2)[0], ",")
		sort.Strings(f)
		pst[p] = strings.Join(f, ",") + "|" + strings.SplitN(s, "|", 2)[1]
	}
	if fmt.Sprint(pst) != fmt.Sprint(ourTree) {
		t.Errorf("process tree differs from pstree -apS %d:\ninspect %v\npstree  %v", top, ourTree, pst)
	}
}

// shimContainer starts a busybox container with nsrun under shim and returns its id.
func shimContainer(t *testing.T, script string) (string, int, int) {
	t.Helper()
	id, pid := testutil.ShimContainer(t, "insp", script)
	c, err := state.ReadContainer(id)
	if err != nil {
		t.Fatal(err)
	}
	return id, pid, c.ShimPid
}

func TestOurContainerAgreesWithUtilLinux(t *testing.T) {
	id, pid, shim := shimContainer(t, "sleep 60 & sleep 60")
	// Compare a settled tree: sh has started its background sleep and exec'd the other.
	settled := func() bool {
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if string(cmd) != "sleep\x0060\x00" || len(strings.Fields(string(kids))) != 1 {
			return false
		}
		kc, _ := os.ReadFile("/proc/" + strings.Fields(string(kids))[0] + "/cmdline")
		return string(kc) == "sleep\x0060\x00"
	}
	for i := 0; i < 500 && !settled(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !settled() {
		t.Fatal("the container's two sleeps did not start")
	}
	tg, err := ByID(id)
	if err != nil {
		t.Fatal(err)
	}
	if tg.ShimPid != shim || tg.Pid != pid {
		t.Fatalf("target %+v, want pid %d under shim %d", tg, pid, shim)
	}
	agree(t, pid, shim)

	v, out := render(t, tg, Sections{})
	group := map[string]string{}
	for _, m := range v.Mounts {
		group[m.Point] = m.Group
	}
	for p, g := range map[string]string{"/proc/keys": GroupMasked, "/proc/acpi": GroupMasked,
		"/proc/sys": GroupReadonly, "/proc/bus": GroupReadonly, "/etc/hostname": GroupBind,
		"/proc": GroupVirtual, "/dev/shm": GroupVirtual, "/": GroupRoot} {
		if group[p] != g {
			t.Errorf("mount %s in group %q, want %q", p, group[p], g)
		}
	}
	if !strings.Contains(out, "  masked paths:\n") || !regexp.MustCompile(`(?m)^    /proc/keys .*masked: /dev/null bound over it`).MatchString(out) {
		t.Errorf("masked paths not annotated:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^    /proc/sys .*read-only`).MatchString(out) {
		t.Errorf("read-only paths not annotated:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^  status: +running\n  created: .*\n  started: `).MatchString(out) ||
		!strings.Contains(out, "  image:     busybox:test\n") {
		t.Errorf("image and state section:\n%s", out)
	}
	if !strings.Contains(out, fmt.Sprintf("(%d, pid 1 inside) [mnt,uts,ipc,pid,net]   <- the container", pid)) {
		t.Errorf("the container is not marked in the tree:\n%s", out)
	}

	// The CLI: --json is the same content as one document; flags select sections.
	inspect := testutil.Bin(t, "inspect")
	var jv View
	if err := json.Unmarshal(run(t, inspect, id, "--json"), &jv); err != nil {
		t.Fatal(err)
	}
	if jv.Container != id || jv.Pid != pid || jv.ShimPid != shim || len(jv.Mounts) != len(v.Mounts) ||
		len(jv.Namespaces) != len(v.Namespaces) || jv.State == nil || jv.State.Status != "running" ||
		jv.Image == nil || jv.Image.Reference != "busybox:test" || jv.Cgroup == nil || len(jv.Processes) == 0 {
		t.Errorf("inspect --json: %+v", jv)
	}
	only := string(run(t, inspect, id, "--mounts", "--namespaces"))
	if !strings.Contains(only, "MOUNTS") || !strings.Contains(only, "NAMESPACES") || strings.Contains(only, "PROCESSES") || strings.Contains(only, "CGROUP") {
		t.Errorf("inspect --mounts --namespaces:\n%s", only)
	}
	var jm View
	json.Unmarshal(run(t, inspect, id, "--json", "--cgroup"), &jm)
	if jm.Cgroup == nil || jm.Mounts != nil || jm.Processes != nil {
		t.Errorf("inspect --json --cgroup has other sections: %+v", jm)
	}

	// On a terminal (script gives it one) the view is styled, unless NO_COLOR is set.
	tty := func(env string) string {
		cmd := exec.Command("script", "-qec", inspect+" --namespaces "+id, "/dev/null")
		cmd.Env = append(os.Environ(), env)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("script: %v", err)
		}
		return string(out)
	}
	if s := tty("TERM=xterm"); !strings.Contains(s, "\x1b[") {
		t.Errorf("no styling on a terminal: %q", s)
	}
	if s := tty("NO_COLOR=1"); strings.Contains(s, "\x1b[") || !strings.Contains(s, "NAMESPACES") {
		t.Errorf("NO_COLOR on a terminal is still styled: %q", s)
	}
	if s := run(t, inspect, id, "--namespaces"); bytes.Contains(s, []byte("\x1b[")) {
		t.Errorf("styled output into a pipe")
	}
}

func TestOverlayRootAnnotated(t *testing.T) {
	for _, opts := range []string{
		"rw,lowerdir=/l/a:/l/b,upperdir=/u,workdir=/w",                    // the classic option
		"rw,lowerdir+=/l/a,lowerdir+=/l/b,upperdir=/u,workdir=/w,uuid=on", // the fsconfig API's
	} {
		ms := []Mount{{Point: "/", Root: "/", FSType: "overlay", Source: "overlay", SuperOptions: opts}}
		annotate(ms, nil)
		if m := ms[0]; m.Group != GroupRoot || strings.Join(m.Lower, " ") != "/l/a /l/b" || m.Upper != "/u" || m.Work != "/w" {
			t.Errorf("%s: %+v", opts, m)
		}
	}
}

func TestImageAndState(t *testing.T) {
	testutil.TempState(t)
	if err := layout.Init(); err != nil {
		t.Fatal(err)
	}
	layer, _ := layout.PutBlob([]byte("a layer's bytes"))
	diffID := digest.FromString("the layer uncompressed")
	cfg := ocispec.Image{RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}}}
	cb, _ := json.Marshal(cfg)
	cd, _ := layout.PutBlob(cb)
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: cd, Size: int64(len(cb))},
		Layers: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: layer, Size: 15}}}
	m.SchemaVersion = 2
	mb, _ := json.Marshal(m)
	md, err := layout.PutBlob(mb)
	if err != nil {
		t.Fatal(err)
	}
	handle := "127.0.0.1:5000/library/busybox@" + md.String()

	id := testutil.ID("insp")
	b := testutil.BusyboxBundle(t, id)
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Annotations["hardway.image"] = handle })
	os.MkdirAll(state.ContainersDir(), 0o755)
	if err := os.Symlink(b, state.ContainerDir(id)); err != nil {
		t.Fatal(err)
	}
	started, finished, code := time.Now().UTC(), time.Now().UTC().Add(time.Second), 137
	state.WriteContainer(&state.Container{ID: id, Status: state.StatusExited, Created: started, Started: &started,
		Finished: &finished, ExitCode: &code, OOMKilled: true})

	v, err := Collect(Target{ID: id, Pid: os.Getpid()}, Sections{Image: true})
	if err != nil {
		t.Fatal(err)
	}
	im := v.Image
	if im == nil || im.Resolved != handle || im.Digest != md.String() || im.Config != cd.String() ||
		len(im.Layers) != 1 || im.Layers[0].Digest != layer.String() || im.Layers[0].DiffID != diffID.String() || im.Layers[0].Size != 15 {
		t.Fatalf("image: %+v", im)
	}
	if v.Processes != nil || v.Mounts != nil || v.Namespaces != nil {
		t.Errorf("--image collected other sections")
	}
	var sb strings.Builder
	Render(&sb, v, false)
	for _, want := range []string{"resolved:  " + handle, "config:    " + cd.String(),
		"    1. " + layer.String() + "  15 bytes  (diff_id " + diffID.String() + ")",
		"status:    exited (exit code 137), killed by the OOM killer", "finished:  " + finished.Format(time.RFC3339Nano)} {
		if !strings.Contains(sb.String(), want) {
			t.Errorf("view lacks %q:\n%s", want, sb.String())
		}
	}
}
