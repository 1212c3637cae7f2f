package runtime_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/testutil"
)

// usernsBundle maps container ids 0-65535 to host ids 100000-165535, with a tmpfs on /tmp
// that the container's root owns.
func usernsBundle(t *testing.T, script string) string {
	_, b := bundleRunning(t, script)
	// The mapped root is not the host's root: it must be able to reach the bundle.
	for d := filepath.Dir(b); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// As with dockerd --userns-remap, the rootfs belongs to the mapped root.
	err := filepath.Walk(filepath.Join(b, "rootfs"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 100000, 100000)
	})
	if err != nil {
		t.Fatal(err)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
		s.Mounts = append(s.Mounts, specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}})
	})
	return b
}

func TestUsernsRootIsMapped(t *testing.T) {
	b := usernsBundle(t, "id -u; cat /proc/self/uid_map; echo hi > /tmp/f; echo ready; exec sleep 30")
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, pid := startNsrun(t, w, "--userns", b)
	w.Close()
	out := make([]byte, 0, 256)
	buf := make([]byte, 256)
	for !strings.Contains(string(out), "ready") {
		n, err := r.Read(buf)
		if err != nil {
			t.Fatalf("container output %q: %v", out, err)
		}
		out = append(out, buf[:n]...)
	}
	f := strings.Fields(string(out))
	if len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != "100000" || f[3] != "65536" {
		t.Fatalf("inside: %q, want uid 0 and the map 0 100000 65536", out)
	}
	m, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/uid_map")
	if fm := strings.Fields(string(m)); len(fm) != 3 || fm[1] != "100000" {
		t.Errorf("/proc/%d/uid_map from the host: %q", pid, m)
	}
	var st syscall.Stat_t
	var serr error
	for i := 0; i < 50; i++ {
		if serr = syscall.Stat("/proc/"+strconv.Itoa(pid)+"/root/tmp/f", &st); serr == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if serr != nil || st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("a file the container's root made is owned by %d:%d on the host (%v), want 100000:100000", st.Uid, st.Gid, serr)
	}
}

// A user namespace listed in config.json is the same as --userns; without maps, an error.
func TestUsernsFromConfig(t *testing.T) {
	b := usernsBundle(t, "cat /proc/self/gid_map /proc/self/setgroups")
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	})
	res := nsrun(t, b)
	if f := strings.Fields(res.Stdout); res.Code != 0 || len(f) != 4 || f[1] != "100000" || f[3] != "deny" {
		t.Fatalf("exit %d, stdout %q, stderr %q; want the gid map and setgroups deny", res.Code, res.Stdout, res.Stderr)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Linux.UIDMappings = nil })
	if res := nsrun(t, b); res.Code != 1 || !strings.HasPrefix(res.Stderr, "nsrun: error: a user namespace needs uid and gid maps") {
		t.Errorf("no uid map: exit %d, stderr %q", res.Code, res.Stderr)
	}
}

// nsrun exec into a container with a user namespace of its own joins that namespace
// (before the mount namespace) and runs as the container's root there: uid/gid 0 inside,
// 100000 on the host, the container's capabilities, none of the host's groups.
func TestExecUserns(t *testing.T) {
	b := usernsBundle(t, "exec sleep 60")
	_, pid := startNsrun(t, nil, "--userns", b)
	p := strconv.Itoa(pid)
	r := nsrun(t, "exec", "--pid", p, "--", "sh", "-c",
		"id -u; id -g; readlink /proc/self/ns/user; grep -E '^(CapEff|Groups):' /proc/self/status; touch /tmp/from-exec; hostname")
	userns, _ := os.Readlink("/proc/" + p + "/ns/user")
	status, _ := os.ReadFile("/proc/" + p + "/status")
	capEff := regexp.MustCompile(`CapEff:\s+\S+`).FindString(string(status))
	want := "0\n0\n" + userns + "\nGroups:\n" + capEff + "\n" + testutil.ReadBundleConfig(t, b).Hostname + "\n"
	// An empty Groups line is "Groups:\t" or "Groups:\t " depending on the kernel.
	got := regexp.MustCompile(`(?m)^Groups:\s*$`).ReplaceAllString(r.Stdout, "Groups:")
	if capEff == "" || r.Code != 0 || got != want {
		t.Fatalf("nsrun exec --pid %d: exit %d, stdout %q, stderr %q; want %q", pid, r.Code, r.Stdout, r.Stderr, want)
	}
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/"+p+"/root/tmp/from-exec", &st); err != nil || st.Uid != 100000 || st.Gid != 100000 {
		t.Errorf("a file the exec'd command made is owned by %d:%d on the host (%v), want 100000:100000", st.Uid, st.Gid, err)
	}
}
