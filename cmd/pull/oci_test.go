package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// TestPullFromSkopeoLayout: skopeo copies an image from the registry into a layout of its
// own; pull oci:DIR:TAG brings that image into our store under localhost/oci/DIR:TAG, with
// the digest skopeo recorded, and every blob verified.
func TestPullFromSkopeoLayout(t *testing.T) {
	addr := testutil.StartRegistry(t)
	testutil.PushLayers(t, addr+"/hardway/two:latest", "",
		testutil.LayerTar(t, "a.txt", []byte("first\n")), testutil.LayerTar(t, "b.txt", []byte("second\n")))
	testutil.TempState(t)
	dir := filepath.Join(t.TempDir(), "Skopeo_Dir")
	if out, err := exec.Command("skopeo", "copy", "--src-tls-verify=false",
		"docker://"+addr+"/hardway/two:latest", "oci:"+dir+":v1").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v: %s", err, out)
	}
	var idx ocispec.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &idx); err != nil || len(idx.Manifests) != 1 {
		t.Fatalf("skopeo's index.json: %v %s", err, b)
	}

	out, errs, code := run(t, "", "--trace", "oci:"+dir+":v1")
	if code != 0 {
		t.Fatalf("pull oci:: exit %d: %s", code, errs)
	}
	want := "localhost/oci/skopeo-dir@" + idx.Manifests[0].Digest.String()
	if strings.TrimSpace(out) != want {
		t.Fatalf("printed %q, want %s", out, want)
	}
	im, err := layout.Resolve("localhost/oci/skopeo-dir:v1")
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifest.Layers) != 2 {
		t.Fatalf("%d layers, want 2", len(im.Manifest.Layers))
	}
	for _, l := range append(im.Manifest.Layers, im.Manifest.Config) {
		if !layout.HasBlob(l.Digest, l.Size) {
			t.Errorf("%s is not in the store, verified", l.Digest)
		}
	}
	if again, _, code := run(t, "", "oci:"+dir+":v1"); code != 0 || again != out {
		t.Fatalf("second import printed %q (exit %d), first %q", again, code, out)
	}

	// A damaged blob in the source layout is refused (in a fresh store), and nothing is
	// recorded.
	cfg := filepath.Join(dir, "blobs", "sha256", im.Manifest.Config.Digest.Encoded())
	os.WriteFile(cfg, []byte(strings.Repeat("x", int(im.Manifest.Config.Size))), 0o644)
	testutil.TempState(t)
	_, errs, code = run(t, "", "oci:"+dir+":v1")
	if code != 1 || !strings.Contains(errs, "hashes to") {
		t.Fatalf("a damaged source: exit %d, %q", code, errs)
	}
	if idx, _ := layout.ReadIndex(); len(idx.Manifests) != 0 {
		t.Errorf("index.json names %d images after a refused import", len(idx.Manifests))
	}

	for _, c := range []struct{ arg, want string }{
		{"oci:" + dir + ":nope", `has no image named "nope" (it has: v1)`},
		{"oci:" + t.TempDir() + ":v1", "is not an OCI image layout"},
	} {
		out, errs, code := run(t, "", c.arg)
		if code != 1 || out != "" || !strings.Contains(errs, c.want) {
			t.Errorf("pull %s: exit %d, stdout %q, stderr %q; want %q", c.arg, code, out, errs, c.want)
		}
	}
}

// TestPullFromCraneLayout: crane (like containerd's export) keeps the registry's Docker
// media types in a layout, and names nothing. pull oci:DIR imports that one image with the
// registry's digest, and names its OCI translation so skopeo reads it from our store.
func TestPullFromCraneLayout(t *testing.T) {
	addr := testutil.StartRegistry(t)
	regDigest := testutil.PushLayers(t, addr+"/hardway/docker:latest", "", testutil.LayerTar(t, "a.txt", []byte("docker\n")))
	crane, err := exec.LookPath("crane")
	if err != nil {
		crane = filepath.Join(testutil.RepoRoot(t), ".tools", "bin", "crane")
	}
	dir := filepath.Join(t.TempDir(), "cr")
	if out, err := exec.Command(crane, "pull", "--insecure", "--format", "oci", addr+"/hardway/docker:latest", dir).CombinedOutput(); err != nil {
		t.Fatalf("crane pull (make tools): %v: %s", err, out)
	}
	testutil.TempState(t)
	out, errs, code := run(t, "", "oci:"+dir)
	if want := "localhost/oci/cr@" + regDigest; code != 0 || strings.TrimSpace(out) != want {
		t.Fatalf("pull oci:%s printed %q (exit %d, %s), want %s", dir, out, code, errs, want)
	}
	e := indexEntry(t, state.OCIDir(), "localhost/oci/cr:latest")
	if e.MediaType != ocispec.MediaTypeImageManifest || e.Annotations[layout.AnnotationConvertedFrom] != regDigest {
		t.Fatalf("the name leads to %+v, want the OCI translation of %s", e, regDigest)
	}
	insp, err := exec.Command("skopeo", "inspect", "oci:"+state.OCIDir()+":localhost/oci/cr:latest").CombinedOutput()
	if err != nil || !strings.Contains(string(insp), `"Digest": "`+e.Digest.String()+`"`) {
		t.Fatalf("skopeo inspect: %v: %s", err, insp)
	}
}
