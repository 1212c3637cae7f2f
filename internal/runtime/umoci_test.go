package runtime_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/testutil"
)

// TestUmociBundle: nsrun runs a bundle umoci made, with umoci's defaults. The image is
// the seeded busybox, copied by skopeo from the test registry into an OCI layout; umoci
// unpacks it into a bundle whose config.json is umoci's own (terminal true, ambient
// capabilities, a cgroup mount, a devices rule in linux.resources, its own annotations,
// umoci.json and an mtree manifest beside it).
func TestUmociBundle(t *testing.T) {
	testutil.RequireRoot(t)
	for _, tool := range []string{"umoci", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this interop test (apt-get install %s)", tool, tool)
		}
	}
	addr := testutil.StartRegistry(t)
	testutil.SeedImages(t, addr)
	testutil.TempState(t)
	// skopeo stores the registry's image in a layout with an OCI manifest: umoci takes no
	// Docker media types, which the project's own store keeps as the registry sent them.
	layout := filepath.Join(t.TempDir(), "layout")
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false",
		"docker://"+addr+"/library/busybox:latest", "oci:"+layout+":busybox").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
	bundle := filepath.Join(t.TempDir(), "umoci-bundle")
	if out, err := exec.Command("umoci", "unpack", "--image", layout+":busybox", bundle).CombinedOutput(); err != nil {
		t.Fatalf("umoci unpack: %v: %s", err, out)
	}
	spec := testutil.ReadBundleConfig(t, bundle)
	if spec.Process == nil || !spec.Process.Terminal || spec.Hostname != "umoci-default" {
		t.Fatalf("not umoci's default config.json: %+v", spec.Process)
	}
	testutil.EditBundle(t, bundle, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "echo $$ $(hostname); id -u; grep -E '^(CapAmb|NoNewPrivs):' /proc/self/status"}
	})
	r := testutil.Run(t, "nsrun", bundle)
	// PID 1, umoci's hostname, root, and umoci's ambient set (AUDIT_WRITE, KILL,
	// NET_BIND_SERVICE: bits 29, 5, 10) with no_new_privs.
	want := "1 umoci-default\n0\nCapAmb:\t0000000020000420\nNoNewPrivs:\t1\n"
	if r.Code != 0 || r.Stdout != want {
		t.Fatalf("nsrun on umoci's bundle: exit %d, stdout %q, stderr %q; want %q", r.Code, r.Stdout, r.Stderr, want)
	}
}
