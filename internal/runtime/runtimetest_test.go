package runtime_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/runtime"
	"github.com/hardway/hardway/internal/testutil"
)

// runtimetestCannot lists the runtimetest checks that cannot pass here, and why.
var runtimetestCannot = map[string]string{
	// On cgroup v1 Docker and runc give the container a tmpfs holding read-only binds of
	// its own cgroups, as nsrun does; runtimetest v0.9.0 wants a mount of the config's type
	// (cgroup). On v2 the mount is cgroup2: it passes when the config says so (cgroupv2 case).
	"mounts[4] (/sys/fs/cgroup) found": "cgroup v1 layout",
}

// buildRuntimetest builds runtime-tools' runtimetest from the tools module, which pins its
// dependencies away from the main module.
func buildRuntimetest(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "runtimetest")
	cmd := exec.Command("go", "build", "-o", out, "github.com/opencontainers/runtime-tools/cmd/runtimetest")
	cmd.Dir = filepath.Join(testutil.RepoRoot(t), "tools")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build runtimetest in tools/: %v\n%s", err, b)
	}
	return out
}

// runtime-tools' runtimetest runs as the container's process and checks, from inside, the
// container nsrun made against the config.json it was given.
func TestRuntimetest(t *testing.T) {
	rt := buildRuntimetest(t)
	for _, name := range []string{"plain", "userns", "cgroupv2"} {
		t.Run(name, func(t *testing.T) {
			userns, v2 := name == "userns", name == "cgroupv2"
			id, b := bundleRunning(t, "true")
			rootfs := filepath.Join(b, "rootfs")
			bin, err := os.ReadFile(rt)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "runtimetest"), bin, 0o755); err != nil {
				t.Fatal(err)
			}
			adj := 100
			mode := os.FileMode(0o620)
			zero := uint32(0)
			testutil.EditBundle(t, b, func(s *specs.Spec) {
				s.Process.Args = []string{"/runtimetest", "--path=/"}
				// One run with a writable root, one with a read-only one. (runtimetest's
				// rootfsPropagation check mounts inside, which needs CAP_SYS_ADMIN and a
				// seccomp profile allowing mount: not under Docker's defaults.)
				s.Root.Readonly = userns
				s.Process.OOMScoreAdj = &adj
				s.Linux.Sysctl = map[string]string{"kernel.shmmni": "2048", "net.ipv4.ip_forward": "1"}
				s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/extra-null", Type: "c", Major: 1, Minor: 3, FileMode: &mode, UID: &zero, GID: &zero}}
				s.Linux.Seccomp = runtime.DockerSeccomp(testutil.DockerCaps)
				// This kernel has no magic SysRq, and runtimetest stops at a missing path.
				var ro []string
				for _, p := range s.Linux.ReadonlyPaths {
					if _, err := os.Stat(p); err == nil {
						ro = append(ro, p)
					}
				}
				s.Linux.ReadonlyPaths = ro
				if v2 {
					// As on a unified host (see TestCgroupV2), with the config naming the
					// cgroup2 type and a cgroup namespace, as runtimetest wants on v2.
					s.Mounts[4].Type, s.Mounts[4].Source = "cgroup2", "cgroup2"
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
				}
				if userns {
					s.Linux.Devices = nil // mknod is not allowed in a user namespace
					s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
					s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
					s.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 200000, Size: 65536}}
				}
			})
			if userns {
				chownTree(t, b, 200000)
			}
			cfg, err := os.ReadFile(filepath.Join(b, "config.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(rootfs, "config.json"), cfg, 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{b}
			if v2 {
				t.Setenv("HARDWAY_CGROUP_ROOT", "/sys/fs/cgroup/unified")
				dir := filepath.Join("/sys/fs/cgroup/unified", testutil.CgroupParent(t), id)
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { os.Remove(dir) })
				args = []string{"--cgroup", id, b}
			}
			r := nsrun(t, args...)
			checkTAP(t, r)
			if v2 && !mounts4OK.MatchString(r.Stdout) {
				t.Errorf("runtimetest: /sys/fs/cgroup is not the cgroup2 mount the config asks for")
			}
		})
	}
}

var mounts4OK = regexp.MustCompile(`(?m)^ok \d+ - mounts\[4\] \(/sys/fs/cgroup\) found in order\s*$`)

var tapLine = regexp.MustCompile(`^(not ok|ok) (\d+)(?: - ([^#]*))?\s*(?:# (TODO|SKIP)(.*))?$`)

func checkTAP(t *testing.T, r testutil.Result) {
	t.Helper()
	var passed, skipped, plan int
	skips := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(r.Stdout))
	for sc.Scan() {
		l := sc.Text()
		if strings.HasPrefix(l, "1..") {
			plan++
			continue
		}
		m := tapLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		desc := strings.TrimSpace(m[3])
		switch {
		case m[4] == "SKIP":
			skipped++
			if !strings.Contains(m[5], "default device") && !skips[m[5]] {
				skips[m[5]] = true
				t.Logf("skipped by runtimetest:%s", m[5])
			}
		case m[4] == "TODO":
			// runtimetest's own unfinished checks (bind mounts): not a verdict.
		case m[1] == "ok":
			passed++

		case runtimetestCannot[desc] != "":
			t.Logf("cannot pass here (%s): %s", runtimetestCannot[desc], desc)
		default:
			t.Errorf("runtimetest: not ok %s - %s", m[2], desc)
		}
	}
	if plan != 1 || passed < 250 {
		t.Fatalf("runtimetest did not finish: exit %d, %d passed, stderr %q", r.Code, passed, r.Stderr)
	}
	t.Logf("runtimetest: %d passed, %d skipped", passed, skipped)
}

func chownTree(t *testing.T, b string, id int) {
	t.Helper()
	for d := filepath.Dir(b); d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(filepath.Join(b, "rootfs"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}
