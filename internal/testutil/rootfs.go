package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// busyboxApplets are the commands the runtime tests call inside a container.
var busyboxApplets = []string{"sh", "echo", "cat", "hostname", "ls", "sleep", "true", "false",
	"ps", "mount", "id", "kill", "wc", "ip", "env", "pwd", "readlink", "stat", "head", "tr", "printf", "grep"}

// BusyboxBundle builds a minimal OCI bundle under t.TempDir(): a rootfs holding Debian's
// static /bin/busybox and links for a few applets, and a config.json shaped like the one
// Docker generates (namespaces, default mounts, masked and read-only paths). The process is
// `sh -c 'echo hello'` and the hostname is id; tests edit the config with EditBundle.
func BusyboxBundle(t testing.TB, id string) string {
	t.Helper()
	bundle := filepath.Join(t.TempDir(), id)
	rootfs := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp", "root"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed for the runtime tests (apt-get install busybox-static): %v", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	for name, content := range map[string]string{
		"hostname":    id + "\n",
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost\n",
		"resolv.conf": "nameserver 127.0.0.1\n",
	} {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	WriteBundleConfig(t, bundle, busyboxSpec(id))
	return bundle
}

// ReadBundleConfig loads a bundle's config.json.
func ReadBundleConfig(t testing.TB, bundle string) *specs.Spec {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// WriteBundleConfig replaces a bundle's config.json.
func WriteBundleConfig(t testing.TB, bundle string, s *specs.Spec) {
	t.Helper()
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// EditBundle changes a bundle's config.json in place.
func EditBundle(t testing.TB, bundle string, edit func(*specs.Spec)) {
	t.Helper()
	s := ReadBundleConfig(t, bundle)
	edit(s)
	WriteBundleConfig(t, bundle, s)
}

// SetArgs makes the bundle's process run `sh -c script`.
func SetArgs(t testing.TB, bundle, script string) {
	t.Helper()
	EditBundle(t, bundle, func(s *specs.Spec) { s.Process.Args = []string{"sh", "-c", script} })
}

// DockerCaps are the 14 capabilities Docker leaves a container by default.
var DockerCaps = []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
	"CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE"}

func busyboxSpec(id string) *specs.Spec {
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			Args: []string{"sh", "-c", "echo hello"},
			Env:  []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + id},
			Cwd:  "/",
			Capabilities: &specs.LinuxCapabilities{
				Bounding: DockerCaps, Effective: DockerCaps, Permitted: DockerCaps,
			},
			Rlimits: []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
		},
		Root:     &specs.Root{Path: "rootfs"},
		Hostname: id,
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=67108864"}},
			{Destination: "/etc/hostname", Type: "bind", Source: "hostname", Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/hosts", Type: "bind", Source: "hosts", Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: "resolv.conf", Options: []string{"rbind", "rprivate"}},
		},
		Linux: &specs.Linux{
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.IPCNamespace}, {Type: specs.PIDNamespace},
			},
			MaskedPaths: []string{"/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys",
				"/proc/latency_stats", "/proc/sched_debug", "/proc/scsi", "/proc/timer_list", "/proc/timer_stats",
				"/sys/devices/virtual/powercap", "/sys/firmware"},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
		Annotations: map[string]string{"hardway.image": "busybox:test"},
	}
}
