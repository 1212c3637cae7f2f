package runtime_test

import (
	"os"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/testutil"
)

// Fields nsrun does not implement stop it with one line, before anything runs.
func TestUnsupportedFieldsAreErrors(t *testing.T) {
	for name, edit := range map[string]func(*specs.Spec){
		"hooks":    func(s *specs.Spec) { s.Hooks = &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true"}}} },
		"apparmor": func(s *specs.Spec) { s.Process.ApparmorProfile = "docker-default" },
		"intelRdt": func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "x"} },
		"sysctl":   func(s *specs.Spec) { s.Linux.Sysctl = map[string]string{"kernel.pid_max": "4096"} },
		"joinpid": func(s *specs.Spec) {
			s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.TimeNamespace})
		},
		"device": func(s *specs.Spec) {
			s.Linux.Devices = []specs.LinuxDevice{{Path: "/etc/evil", Type: "c", Major: 1, Minor: 3}}
		},
		"uidmap": func(s *specs.Spec) {
			s.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 1}}
		},
	} {
		_, b := bundleRunning(t, "echo should-not-run")
		testutil.EditBundle(t, b, edit)
		r := nsrun(t, b)
		if r.Code != 1 || r.Stdout != "" || !strings.HasPrefix(r.Stderr, "nsrun: error: config.json: ") || strings.Count(r.Stderr, "\n") != 1 {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want a one-line config.json error", name, r.Code, r.Stdout, r.Stderr)
		}
	}
}

func TestSysctlDevicesOOM(t *testing.T) {
	host, err := os.ReadFile("/proc/sys/kernel/shmmni")
	if err != nil {
		t.Fatal(err)
	}
	_, b := bundleRunning(t, "cat /proc/sys/kernel/shmmni /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; "+
		"echo x > /dev/mynull && stat -c '%F %t:%T %a' /dev/mynull")
	adj := 500
	mode := os.FileMode(0o600)
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Linux.Sysctl = map[string]string{"kernel.shmmni": "1234", "net.ipv4.ip_forward": "1"}
		s.Linux.Devices = []specs.LinuxDevice{{Path: "/dev/mynull", Type: "c", Major: 1, Minor: 3, FileMode: &mode}}
		s.Process.OOMScoreAdj = &adj
	})
	r := nsrun(t, b)
	want := "1234\n1\n500\ncharacter special file 1:3 600\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("exit %d, stdout %q (want %q), stderr %q", r.Code, r.Stdout, want, r.Stderr)
	}
	if after, _ := os.ReadFile("/proc/sys/kernel/shmmni"); string(after) != string(host) {
		t.Errorf("the host's kernel.shmmni changed from %q to %q", host, after)
	}
}

// A hard limit above the host's is clamped with one warning line instead of failing.
func TestRlimitClampedToHost(t *testing.T) {
	var host struct{ cur, max uint64 }
	b0, _ := os.ReadFile("/proc/self/limits")
	for _, l := range strings.Split(string(b0), "\n") {
		if strings.HasPrefix(l, "Max open files") {
			f := strings.Fields(l)
			if len(f) >= 5 {
				host.max, _ = strconv.ParseUint(f[4], 10, 64)
			}
		}
	}
	_, b := bundleRunning(t, "ulimit -Hn; ulimit -Sn")
	big := host.max + 1000
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.Rlimits = []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Soft: big, Hard: big}}
	})
	r := nsrun(t, b)
	if r.Code != 0 {
		t.Fatalf("exit %d: %s", r.Code, r.Stderr)
	}
	hard := strings.Fields(r.Stdout)
	raised := len(hard) == 2 && hard[0] == strconv.FormatUint(big, 10)
	clamped := len(hard) == 2 && hard[0] == strconv.FormatUint(host.max, 10) && hard[1] == strconv.FormatUint(host.max, 10) &&
		strings.Count(r.Stderr, "\n") == 1 && strings.Contains(r.Stderr, "nsrun: warning: RLIMIT_NOFILE")
	// Root with CAP_SYS_RESOURCE may raise it; without, it must be clamped and said.
	if !raised && !clamped {
		t.Fatalf("nofile %d:%d on a host capped at %d: container sees %q, stderr %q", big, big, host.max, r.Stdout, r.Stderr)
	}
}
