package runtime_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/testutil"
)

// On a unified (cgroup v2) host the container's /sys/fs/cgroup is a read-only cgroup2
// mount of its own cgroup. HARDWAY_CGROUP_ROOT makes this hybrid host's empty cgroup2
// hierarchy (/sys/fs/cgroup/unified) the only one, as on a v2 host, so this drives that
// path here; the container's cgroup holds a marker dir the test makes from the host.
func TestCgroupV2(t *testing.T) {
	for name, cgroupNS := range map[string]bool{"bind": false, "cgroupns": true} {
		t.Run(name, func(t *testing.T) {
			id, b := bundleRunning(t, "")
			t.Setenv("HARDWAY_CGROUP_ROOT", "/sys/fs/cgroup/unified")
			parent := testutil.CgroupParent(t)
			dir := filepath.Join("/sys/fs/cgroup/unified", parent, id)
			if err := os.MkdirAll(filepath.Join(dir, "marker"), 0o755); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				os.Remove(filepath.Join(dir, "marker"))
				os.Remove(dir)
			})
			testutil.EditBundle(t, b, func(s *specs.Spec) {
				s.Process.Args = []string{"sh", "-c", `
awk '$5 == "/sys/fs/cgroup" { print "mount", $4, $(NF-2) }' /proc/self/mountinfo
test -d /sys/fs/cgroup/marker && echo marker
mkdir /sys/fs/cgroup/x 2>/dev/null || echo read-only
grep '^0::' /proc/self/cgroup`}
				if cgroupNS {
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
				}
			})
			r := nsrun(t, "--cgroup", id, b)
			path := "/" + parent + "/" + id
			want := "mount " + path + " cgroup2\nmarker\nread-only\n0::" + path + "\n"
			if cgroupNS {
				// The container's cgroup is the root of its namespace.
				want = "mount / cgroup2\nmarker\nread-only\n0::/\n"
			}
			if r.Code != 0 || r.Stdout != want {
				t.Errorf("inside: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
			}
		})
	}
}

// On a cgroup v2 host the init is cloned straight into the container's cgroup
// (clone3 CLONE_INTO_CGROUP): it never runs outside it, and nsrun writes no cgroup.procs.
// The same holds for nsrun exec's joiner. HARDWAY_CGROUP_ROOT makes this hybrid host's
// cgroup2 hierarchy the only one, as in TestCgroupV2; test/vm checks it on a real v2 host.
func TestBornInCgroup(t *testing.T) {
	id, b := bundleRunning(t, "grep '^0::' /proc/self/cgroup")
	t.Setenv("HARDWAY_CGROUP_ROOT", "/sys/fs/cgroup/unified")
	t.Setenv("HARDWAY_TRACE", "1")
	parent := testutil.CgroupParent(t)
	dir := filepath.Join("/sys/fs/cgroup/unified", parent, id)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The killed nsrun's container dies right after it (parent-death signal).
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	})
	want := "0::/" + parent + "/" + id + "\n"
	born := "CLONE_INTO_CGROUP " + dir
	r := nsrun(t, "--cgroup", id, b)
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("inside: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
	}
	if !strings.Contains(r.Stderr, born) || strings.Contains(r.Stderr, "cgroup.procs") ||
		!regexp.MustCompile(`the init starts in cgroup .*`+regexp.QuoteMeta(strings.TrimSpace(want))+`( |\n)`).MatchString(r.Stderr) {
		t.Errorf("trace does not show the init cloned into %s without a cgroup.procs write:\n%s", dir, r.Stderr)
	}

	testutil.SetArgs(t, b, "exec sleep 60")
	_, pid := startNsrun(t, nil, "--cgroup", id, b)
	r = nsrun(t, "exec", "--pid", strconv.Itoa(pid), "--", "grep", "^0::", "/proc/self/cgroup")
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exec: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
	}
	if !strings.Contains(r.Stderr, born) || strings.Contains(r.Stderr, "cgroup.procs") {
		t.Errorf("trace does not show the joiner cloned into %s without a cgroup.procs write:\n%s", dir, r.Stderr)
	}
}
