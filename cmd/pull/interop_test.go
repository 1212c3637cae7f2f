package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// TestOtherToolsReadEveryImage: every seeded image shape, once pulled, is read from our
// layout by the name pull recorded, by Debian's skopeo (inspect, copy) and umoci (unpack),
// as the learner does in lab 01. Images the registry serves with Docker media types are
// read through their OCI translation; the handle pull prints stays the registry's digest.
func TestOtherToolsReadEveryImage(t *testing.T) {
	for _, tool := range []string{"skopeo", "umoci"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("needs %s (apt-get install skopeo umoci)", tool)
		}
	}
	addr := testutil.StartRegistry(t)
	refs := testutil.SeedImages(t, addr)
	testutil.TempState(t)
	oci := state.OCIDir()

	// What a learner looks for in the unpacked root: busybox, plus each image's own files.
	files := map[string][]string{
		"hardway/layered": {"hello.txt", "!etc/motd"},
		"hardway/zero":    {"hello.txt", "!etc/motd"},
		"hardway/zstd":    {"zstd.txt", "etc/motd"},
	}
	dockerTyped := 0
	for _, ref := range refs {
		repo := strings.TrimSuffix(strings.TrimPrefix(ref, addr+"/"), ":latest")
		t.Run(repo, func(t *testing.T) {
			out, errs, code := run(t, "", "--json", ref)
			if code != 0 {
				t.Fatalf("pull %s: exit %d: %s", ref, code, errs)
			}
			var rec struct {
				Handle, RefName string
				OCI             *ocispec.Descriptor
			}
			if err := json.Unmarshal([]byte(out), &rec); err != nil {
				t.Fatalf("--json %q: %v", out, err)
			}
			if want := addr + "/" + repo + "@" + testutil.CraneDigest(t, ref, "linux/amd64"); rec.Handle != want {
				t.Fatalf("handle %s, the registry's is %s", rec.Handle, want)
			}
			_, regDigest, _ := layout.ParseHandle(rec.Handle)
			im, err := layout.Resolve(rec.Handle)
			if err != nil {
				t.Fatal(err)
			}

			entry := indexEntry(t, oci, rec.RefName)
			if im.Manifest.MediaType == layout.MediaTypeDockerManifest {
				dockerTyped++
			}

			// skopeo inspect: the manifest the name leads to, and the registry's layers.
			insp, err := exec.Command("skopeo", "inspect", "oci:"+oci+":"+rec.RefName).CombinedOutput()
			if err != nil {
				t.Fatalf("skopeo inspect: %v: %s", err, insp)
			}
			var si struct {
				Digest digest.Digest
				Layers []digest.Digest
			}
			if err := json.Unmarshal(insp, &si); err != nil {
				t.Fatalf("skopeo inspect: %v: %s", err, insp)
			}
			var layers []digest.Digest
			for _, l := range im.Manifest.Layers {
				layers = append(layers, l.Digest)
			}
			if si.Digest != entry.Digest || strings.Join(digestStrings(si.Layers), " ") != strings.Join(digestStrings(layers), " ") {
				t.Fatalf("skopeo inspect: digest %s, layers %v; want %s, %v", si.Digest, si.Layers, entry.Digest, layers)
			}

			// The name leads to an OCI manifest: the registry's own, or its translation.
			if entry.MediaType != ocispec.MediaTypeImageManifest {
				t.Fatalf("%s names a %s", rec.RefName, entry.MediaType)
			}
			if im.Manifest.MediaType == layout.MediaTypeDockerManifest {
				if entry.Annotations[layout.AnnotationConvertedFrom] != regDigest.String() || rec.OCI == nil || rec.OCI.Digest != entry.Digest {
					t.Fatalf("%s names %+v; want the translation of %s (--json says %+v)", rec.RefName, entry, regDigest, rec.OCI)
				}
			} else if entry.Digest != regDigest || rec.OCI != nil {
				t.Fatalf("%s names %s, want the registry's manifest %s", rec.RefName, entry.Digest, regDigest)
			}
			// unpack and overlay, given the name, find the image pull printed.
			if byName, err := layout.Resolve(rec.RefName); err != nil || byName.Handle() != rec.Handle {
				t.Fatalf("Resolve(%s) = %v, %v; want %s", rec.RefName, byName, err, rec.Handle)
			}

			// skopeo copy to a layout of its own, digests kept.
			dst := filepath.Join(t.TempDir(), "copy")
			if out, err := exec.Command("skopeo", "copy", "--preserve-digests", "--dest-oci-accept-uncompressed-layers",
				"oci:"+oci+":"+rec.RefName, "oci:"+dst+":x").CombinedOutput(); err != nil {
				t.Fatalf("skopeo copy: %v: %s", err, out)
			}
			if e := indexEntry(t, dst, "x"); e.Digest != entry.Digest {
				t.Fatalf("skopeo copy wrote %s, want %s", e.Digest, entry.Digest)
			}

			// umoci unpack: a root filesystem with busybox and the image's own files.
			bundle := filepath.Join(t.TempDir(), "bundle")
			out2, err := exec.Command("umoci", "unpack", "--image", oci+":"+rec.RefName, bundle).CombinedOutput()
			if err != nil {
				// umoci 0.4.7 (Debian 12) reads gzip and plain layers only.
				if repo == "hardway/zstd" && strings.Contains(string(out2), "blob is not correct mediatype: "+ocispec.MediaTypeImageLayerZstd) {
					t.Logf("umoci cannot unpack zstd layers: %s", strings.TrimSpace(string(out2)))
					return
				}
				t.Fatalf("umoci unpack: %v: %s", err, out2)
			}
			for _, f := range append([]string{"bin/busybox"}, files[repo]...) {
				p, absent := strings.CutPrefix(f, "!")
				_, err := os.Lstat(filepath.Join(bundle, "rootfs", p))
				if absent != (err != nil) {
					t.Errorf("umoci's rootfs: %s: %v (want it %s)", p, err, map[bool]string{true: "absent", false: "present"}[absent])
				}
			}
		})
	}
	if dockerTyped == 0 {
		t.Fatal("no seeded image came with Docker media types")
	}

	// umoci gc keeps what the names lead to: every image still resolves, with its blobs.
	if out, err := exec.Command("umoci", "gc", "--layout", oci).CombinedOutput(); err != nil {
		t.Fatalf("umoci gc: %v: %s", err, out)
	}
	for _, ref := range refs {
		im, err := layout.Resolve(ref)
		if err != nil {
			t.Errorf("after umoci gc: %v", err)
			continue
		}
		for _, l := range append(im.Manifest.Layers, im.Manifest.Config) {
			if !layout.HasBlob(l.Digest, l.Size) {
				t.Errorf("after umoci gc: %s lost blob %s", ref, l.Digest)
			}
		}
	}

	// Another store imports the image by the same name, and gets the registry's manifest
	// back, not the translation.
	busybox := addr + "/library/busybox:latest"
	want, err := layout.Resolve(busybox)
	if err != nil {
		t.Fatal(err)
	}
	testutil.TempState(t)
	out, errs, code := run(t, "", "oci:"+oci+":"+busybox)
	if code != 0 || strings.TrimSpace(out) != want.Handle() {
		t.Fatalf("pull oci:…:%s printed %q (exit %d, %s), want %s", busybox, out, code, errs, want.Handle())
	}
	if e := indexEntry(t, state.OCIDir(), busybox); e.Annotations[layout.AnnotationConvertedFrom] != want.ManifestDigest.String() {
		t.Fatalf("the import names %+v", e)
	}
}

// indexEntry is the entry of the layout at dir named name.
func indexEntry(t *testing.T, dir, name string) ocispec.Descriptor {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for _, m := range idx.Manifests {
		if m.Annotations[ocispec.AnnotationRefName] == name {
			return m
		}
	}
	t.Fatalf("%s/index.json names no %s:\n%s", dir, name, b)
	return ocispec.Descriptor{}
}

func digestStrings(ds []digest.Digest) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.String()
	}
	return out
}
