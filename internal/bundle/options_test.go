package bundle

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

var optImg = ocispec.ImageConfig{Cmd: []string{"sh"}, User: "5", WorkingDir: "/srv", Env: []string{"PATH=/x", "A=img", "B=img"}}

func TestEnvOption(t *testing.T) {
	t.Setenv("FROM_CALLER", "v c")
	os.Unsetenv("NOT_SET_ANYWHERE")
	s, err := Spec("/b", optImg, Options{ID: "c1", Env: []string{"A=1", "C=x=y", "FROM_CALLER", "NOT_SET_ANYWHERE", "E="}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"HOSTNAME=c1", "PATH=/x", "B=img", "A=1", "C=x=y", "FROM_CALLER=v c", "E="}
	if !slices.Equal(s.Process.Env, want) {
		t.Errorf("env %q, want %q", s.Process.Env, want)
	}
}

func TestWorkingDirOption(t *testing.T) {
	s, err := Spec("/b", optImg, Options{ID: "c1", WorkingDir: "/tmp/"})
	if err != nil || s.Process.Cwd != "/tmp" {
		t.Errorf("--workdir /tmp/: cwd %q, err %v", s.Process.Cwd, err)
	}
	if s, _ := Spec("/b", optImg, Options{ID: "c1"}); s.Process.Cwd != "/srv" {
		t.Errorf("no --workdir: cwd %q, want the image's /srv", s.Process.Cwd)
	}
	if _, err := Spec("/b", optImg, Options{ID: "c1", WorkingDir: "tmp"}); err == nil || !strings.Contains(err.Error(), "not absolute") {
		t.Errorf("relative --workdir: err %v", err)
	}
}

func TestUserOption(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\napp:x:1000:1001:app:/home/app:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\napp:x:1001:\nstaff:x:50:app\n"), 0o644)
	for _, c := range []struct {
		user     string
		uid, gid uint32
		home     string
	}{
		{"1000:1000", 1000, 1000, "HOME=/home/app"},
		{"app", 1000, 1001, "HOME=/home/app"},
		{"app:staff", 1000, 50, "HOME=/home/app"},
		{"4242", 4242, 0, ""},
	} {
		s, err := Spec("/b", optImg, Options{ID: "c1", User: c.user, Rootfs: root})
		if err != nil {
			t.Errorf("--user %s: %v", c.user, err)
			continue
		}
		if u := s.Process.User; u.UID != c.uid || u.GID != c.gid {
			t.Errorf("--user %s: %+v, want uid %d gid %d", c.user, u, c.uid, c.gid)
		}
		if c.home != "" && !slices.Contains(s.Process.Env, c.home) {
			t.Errorf("--user %s: env %q lacks %s", c.user, s.Process.Env, c.home)
		}
	}
	if _, err := Spec("/b", optImg, Options{ID: "c1", User: "nobody", Rootfs: root}); err == nil || !strings.Contains(err.Error(), "no such user") || !strings.Contains(err.Error(), "--user") {
		t.Errorf("--user nobody (absent from passwd): err %v", err)
	}
}

func TestVolumeOption(t *testing.T) {
	host := t.TempDir()
	s, err := Spec("/b", optImg, Options{ID: "c1", Volumes: []string{host + ":/data:ro", host + "/:/rw/", host + ":/w:rw"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []specs.Mount{
		{Destination: "/data", Type: "bind", Source: host, Options: []string{"rbind", "rprivate", "ro"}},
		{Destination: "/rw", Type: "bind", Source: host, Options: []string{"rbind", "rprivate"}},
		{Destination: "/w", Type: "bind", Source: host, Options: []string{"rbind", "rprivate"}},
	}
	got := s.Mounts[len(s.Mounts)-3:]
	for i := range want {
		if got[i].Destination != want[i].Destination || got[i].Source != want[i].Source || got[i].Type != "bind" || !slices.Equal(got[i].Options, want[i].Options) {
			t.Errorf("mount %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	for _, bad := range []struct{ vol, says string }{
		{"data:/data", "absolute"},
		{host + ":data", "absolute"},
		{host, "not HOST:CTR"},
		{host + ":/d:rx", "not ro or rw"},
		{host + ":/", "container's /"},
		{host + "/missing:/d", "does not exist"},
		{host + ":/a:ro:x", "not HOST:CTR"},
	} {
		if _, err := Spec("/b", optImg, Options{ID: "c1", Volumes: []string{bad.vol}}); err == nil || !strings.Contains(err.Error(), bad.says) {
			t.Errorf("--volume %s: err %v, want one saying %q", bad.vol, err, bad.says)
		}
	}
}
