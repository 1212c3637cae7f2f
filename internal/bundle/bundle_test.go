package bundle

import (
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestResolvConf(t *testing.T) {
	got := ResolvConf([]byte("search example.com\nnameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\n"))
	if strings.Contains(got, "127.0.0.53") || !strings.Contains(got, "nameserver 10.0.0.2") || !strings.Contains(got, "search example.com") {
		t.Errorf("got:\n%s", got)
	}
	got = ResolvConf([]byte("nameserver 127.0.0.53\nnameserver ::1\n"))
	for _, l := range strings.Split(got, "\n") {
		if strings.HasPrefix(l, "nameserver") {
			t.Errorf("local-only host kept %q", l)
		}
	}
	if !strings.HasPrefix(got, "#") {
		t.Errorf("no comment saying why there is no nameserver:\n%s", got)
	}
}

func TestSpecFromImage(t *testing.T) {
	img := ocispec.ImageConfig{Entrypoint: []string{"/e"}, Cmd: []string{"c"}, User: "1000:50", Env: []string{"PATH=/x", "HOSTNAME=img"}}
	s, err := Spec("/b", img, Options{ID: "c1", Image: "i@sha256:x"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Process.Args, []string{"/e", "c"}) || s.Process.Cwd != "/" {
		t.Errorf("args %q cwd %q", s.Process.Args, s.Process.Cwd)
	}
	if s.Process.User.UID != 1000 || s.Process.User.GID != 50 {
		t.Errorf("user %+v", s.Process.User)
	}
	if !slices.Equal(s.Process.Env, []string{"HOSTNAME=c1", "PATH=/x"}) {
		t.Errorf("env %q", s.Process.Env)
	}
	if len(s.Process.Capabilities.Bounding) != 14 {
		t.Errorf("%d capabilities, want Docker's 14", len(s.Process.Capabilities.Bounding))
	}
	if s.Mounts[len(s.Mounts)-1].Source != "/b/hosts" {
		t.Errorf("hosts bind source %q", s.Mounts[len(s.Mounts)-1].Source)
	}
	if _, err := Spec("/b", ocispec.ImageConfig{}, Options{ID: "c1"}); err == nil {
		t.Error("no command at all accepted")
	}
	if _, err := Spec("/b", ocispec.ImageConfig{Cmd: []string{"x"}, User: "nginx"}, Options{ID: "c1"}); err == nil {
		t.Error("a user name was accepted without a passwd lookup")
	}
	s, _ = Spec("/b", ocispec.ImageConfig{Cmd: []string{"x"}}, Options{ID: "c1"})
	if !slices.Contains(s.Process.Env, "PATH="+DefaultPath) {
		t.Errorf("no default PATH: %q", s.Process.Env)
	}
}
