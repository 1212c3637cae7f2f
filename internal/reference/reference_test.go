package reference

import (
	"strings"
	"testing"
)

const hexA = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

func TestParseNormalises(t *testing.T) {
	cases := []struct {
		in, name, tag, digest, str, refName, object string
	}{
		{in: "busybox", name: "docker.io/library/busybox", tag: "latest", str: "docker.io/library/busybox:latest", refName: "docker.io/library/busybox:latest", object: "latest"},
		{in: "library/busybox:1.36", name: "docker.io/library/busybox", tag: "1.36", str: "docker.io/library/busybox:1.36"},
		{in: "docker.io/busybox", name: "docker.io/library/busybox", tag: "latest"},
		{in: "index.docker.io/library/busybox", name: "docker.io/library/busybox", tag: "latest"},
		{in: "someone/tool:v1_2-3", name: "docker.io/someone/tool", tag: "v1_2-3"},
		{in: "localhost/x", name: "localhost/x", tag: "latest"},
		{in: "localhost:5000/x", name: "localhost:5000/x", tag: "latest"},
		{in: "127.0.0.1:5000/library/busybox:latest", name: "127.0.0.1:5000/library/busybox", tag: "latest", refName: "127.0.0.1:5000/library/busybox:latest"},
		{in: "127.0.0.1:5000/busybox", name: "127.0.0.1:5000/busybox", tag: "latest"}, // library/ only on Docker Hub
		{in: "[::1]:5000/a/b/c", name: "[::1]:5000/a/b/c", tag: "latest"},
		{in: "Example.COM/x", name: "Example.COM/x", tag: "latest"},
		{in: "ghcr.io/a_b/c__d/e--f.g", name: "ghcr.io/a_b/c__d/e--f.g", tag: "latest"},
		{in: "localhost:5000", name: "docker.io/library/localhost", tag: "5000"}, // as Docker reads it
		{in: "busybox@sha256:" + hexA, name: "docker.io/library/busybox", digest: "sha256:" + hexA,
			str: "docker.io/library/busybox@sha256:" + hexA, refName: "docker.io/library/busybox@sha256:" + hexA, object: "sha256:" + hexA},
		{in: "127.0.0.1:5000/x:v1@sha256:" + hexA, name: "127.0.0.1:5000/x", tag: "v1", digest: "sha256:" + hexA,
			str: "127.0.0.1:5000/x:v1@sha256:" + hexA, object: "sha256:" + hexA},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			r, err := Parse(c.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", c.in, err)
			}
			if r.Name() != c.name || r.Tag != c.tag || r.Digest.String() != c.digest {
				t.Fatalf("Parse(%q) = name %q tag %q digest %q, want %q %q %q", c.in, r.Name(), r.Tag, r.Digest, c.name, c.tag, c.digest)
			}
			if c.str != "" && r.String() != c.str {
				t.Errorf("String() = %q, want %q", r.String(), c.str)
			}
			if c.refName != "" && r.RefName() != c.refName {
				t.Errorf("RefName() = %q, want %q", r.RefName(), c.refName)
			}
			if c.object != "" && r.Object() != c.object {
				t.Errorf("Object() = %q, want %q", r.Object(), c.object)
			}
			// Normalising is idempotent: the normalised form parses to itself.
			again, err := Parse(r.String())
			if err != nil || again != r {
				t.Errorf("Parse(String()) = %+v, %v; want %+v", again, err, r)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "empty"},
		{" busybox", "white space"},
		{"Busybox", "must be lowercase"},
		{"library/BusyBox:1", "must be lowercase"},
		{"busybox:", "bad tag"},
		{"busybox:-x", "bad tag"},
		{"busybox:" + strings.Repeat("a", 129), "bad tag"},
		{"busybox:a/b", "bad registry address"},
		{"busybox@sha256:abc", "bad digest"},
		{"busybox@md5:" + hexA, "bad digest"},
		{"a//b", "bad repository name component"},
		{"a/b_", "bad repository name component"},
		{"-a/b", "bad repository name component"},
		{"a/.b", "bad repository name component"},
		{"127.0.0.1:5000/", "no repository name"},
		{":latest", "no repository name"},
		{"exa_mple.com/x", "bad registry address"},
		{"host:port/x", "bad registry address"},
		{"docker.io/" + strings.Repeat("a", 250), "more than 255"},
	}
	for _, c := range cases {
		t.Run(c.in, func(t *testing.T) {
			r, err := Parse(c.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", c.in, r)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse(%q) error %q does not say %q", c.in, err, c.want)
			}
		})
	}
}
