package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/bundle"
)

// busyboxApplets are the commands the runtime tests call inside a container.
var busyboxApplets = []string{"sh", "echo", "cat", "hostname", "ls", "sleep", "true", "false",
	"ps", "mount", "id", "kill", "wc", "ip", "env", "pwd", "readlink", "stat", "head", "tr", "printf", "grep", "unshare", "touch", "mkdir", "sysctl", "sed", "chroot", "ln", "rm"}

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
	WriteBundleConfig(t, bundle, busyboxSpec(t, bundle, id))
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

// DockerCaps is Docker's default capability set, as overlay writes it into config.json.
var DockerCaps = bundle.DefaultCaps

// busyboxSpec is the config.json overlay would write for a busybox image: the same code,
// so the runtime tests run what the pipeline runs.
func busyboxSpec(t testing.TB, bundleDir, id string) *specs.Spec {
	t.Helper()
	s, err := bundle.Spec(bundleDir, ocispec.ImageConfig{
		Cmd: []string{"sh", "-c", "echo hello"},
		Env: []string{"PATH=" + bundle.DefaultPath},
	}, bundle.Options{ID: id, Image: "busybox:test"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
