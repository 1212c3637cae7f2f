package main

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// run runs the built pull binary with stdin and returns stdout, stderr and the exit code.
func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testutil.Bin(t, "pull"), args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestPullCLI drives the binary as a learner would, against a real registry.
func TestPullCLI(t *testing.T) {
	addr := testutil.StartRegistry(t)
	testutil.SeedImages(t, addr)
	root := testutil.TempState(t)

	ref := addr + "/library/busybox:latest"
	out, errs, code := run(t, "", "--trace", ref)
	if code != 0 {
		t.Fatalf("pull %s: exit %d: %s", ref, code, errs)
	}
	handleRE := regexp.MustCompile(`^` + regexp.QuoteMeta(addr) + `/library/busybox@sha256:[0-9a-f]{64}\n$`)
	if !handleRE.MatchString(out) {
		t.Fatalf("stdout %q is not one NAME@sha256:… line", out)
	}
	handle := strings.TrimSpace(out)
	if want := addr + "/library/busybox@" + testutil.CraneDigest(t, ref, ""); handle != want {
		t.Fatalf("handle %s, crane says %s", handle, want)
	}
	for _, s := range []string{"/v2/", "Accept: application/vnd.docker.distribution.manifest.v2+json", "verified", "mv ", "index.json"} {
		if !strings.Contains(errs, s) {
			t.Errorf("--trace does not mention %q:\n%s", s, errs)
		}
	}

	// The same image, named on stdin and in Docker's short form of the same repository,
	// prints the same handle.
	out2, errs, code := run(t, addr+"/library/busybox\n")
	if code != 0 || strings.TrimSpace(out2) != handle {
		t.Fatalf("pull from stdin: exit %d, stdout %q, stderr %s", code, out2, errs)
	}

	// --json is a record carrying the same handle.
	out3, errs, code := run(t, "", "--json", addr+"/hardway/layered")
	if code != 0 {
		t.Fatalf("pull --json: exit %d: %s", code, errs)
	}
	var rec struct {
		Handle, RefName string
		Blobs           []struct{ Kind string }
	}
	if err := json.Unmarshal([]byte(out3), &rec); err != nil {
		t.Fatalf("--json output %q: %v", out3, err)
	}
	if !strings.HasPrefix(rec.Handle, addr+"/hardway/layered@sha256:") || rec.RefName != addr+"/hardway/layered:latest" || len(rec.Blobs) != 3 {
		t.Fatalf("--json record %+v", rec)
	}

	if _, _, code := run(t, "", addr+"/library/busybox-oci"); code != 0 {
		t.Fatal("pull busybox-oci failed")
	}

	// Other tools read our layout: umoci lists the names, skopeo reads an image by its name
	// (every shape, and unpacking with umoci, is in TestOtherToolsReadEveryImage).
	oci := state.OCIDir()
	if filepath.Dir(oci) != root {
		t.Fatalf("layout %s is not under the test's root %s", oci, root)
	}
	ls, err := exec.Command("umoci", "ls", "--layout", oci).CombinedOutput()
	if err != nil {
		t.Fatalf("umoci ls: %v: %s", err, ls)
	}
	for _, n := range []string{ref, addr + "/hardway/layered:latest", addr + "/library/busybox-oci:latest"} {
		if !strings.Contains(string(ls), n+"\n") {
			t.Errorf("umoci ls does not list %s:\n%s", n, ls)
		}
	}
	insp, err := exec.Command("skopeo", "inspect", "oci:"+oci+":"+ref).CombinedOutput()
	if err != nil {
		t.Fatalf("skopeo inspect: %v: %s", err, insp)
	}
	if !strings.Contains(string(insp), `"Architecture": "amd64"`) {
		t.Errorf("skopeo inspect:\n%s", insp)
	}
}

func TestPullCLIErrors(t *testing.T) {
	testutil.TempState(t)
	cases := []struct {
		name, stdin string
		args        []string
		want        string
		code        int
	}{
		{"bad reference", "", []string{"Busybox"}, "pull: error: invalid reference \"Busybox\": repository name must be lowercase (write it as Docker does", 1},
		{"empty stdin", "", nil, "pull: error: no image reference given: stdin was empty", 1},
		{"bad platform", "", []string{"--platform", "amd64", "127.0.0.1:1/x"}, "pull: error: bad platform \"amd64\" (e.g. linux/amd64", 1},
		{"no registry", "", []string{"127.0.0.1:1/x"}, "(is the registry running? scripts/registry start)", 1},
		{"unknown flag", "", []string{"--nope"}, "pull: error:", 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs, code := run(t, c.stdin, c.args...)
			if out != "" {
				t.Errorf("stdout %q, want nothing", out)
			}
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, c.code, c.want)
			}
			if c.code == 1 && strings.Count(strings.TrimSpace(errs), "\n") != 0 {
				t.Errorf("error is not one line: %q", errs)
			}
		})
	}
}

// --missing uses the store's image without a word to the registry (docker run's default),
// unless the platform asked for is another; --offline never asks and fails clearly.
func TestPullMissingAndOffline(t *testing.T) {
	addr := testutil.StartRegistry(t)
	testutil.SeedImages(t, addr)
	testutil.TempState(t)
	ref := addr + "/hardway/multi:latest"

	if _, errs, code := run(t, "", "--offline", ref); code != 1 || strings.Count(strings.TrimSpace(errs), "\n") != 0 ||
		!strings.Contains(errs, "is not in the store") || !strings.Contains(errs, "--offline") {
		t.Fatalf("--offline before any pull: exit %d, stderr %q; want one line naming the missing image", code, errs)
	}
	out, errs, code := run(t, "", "--missing", "--trace", ref)
	if code != 0 || !strings.Contains(errs, "/v2/") {
		t.Fatalf("--missing with an empty store: exit %d, want a real pull:\n%s", code, errs)
	}
	handle := strings.TrimSpace(out)
	for _, flag := range []string{"--missing", "--offline"} {
		out, errs, code := run(t, "", flag, "--trace", ref)
		if code != 0 || strings.TrimSpace(out) != handle {
			t.Fatalf("%s after the pull: exit %d, stdout %q, want %s; stderr %s", flag, code, out, handle, errs)
		}
		if strings.Contains(errs, "/v2/") || !strings.Contains(errs, "no request to the registry") {
			t.Errorf("%s asked the registry, or did not say it did not:\n%s", flag, errs)
		}
	}
	// Another platform of the same name is not what the store holds: ask for it.
	out, errs, code = run(t, "", "--missing", "--trace", "--platform", "linux/arm64", ref)
	if code != 0 || strings.TrimSpace(out) == handle || !strings.Contains(errs, "/v2/") {
		t.Fatalf("--missing --platform linux/arm64: exit %d, stdout %q (amd64's is %s); want the arm64 image from the registry:\n%s", code, out, handle, errs)
	}
}
