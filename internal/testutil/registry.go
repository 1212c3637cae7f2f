package testutil

import (
	"archive/tar"
	"bytes"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// StartRegistry runs a real registry (scripts/registry) for this test on a free loopback
// port, with its config, storage, pid file and log under the test's temporary dir, never
// under the caller's HARDWAY_ROOT. It is stopped when the test ends. It returns the
// address, e.g. 127.0.0.1:40123.
func StartRegistry(t testing.TB) string {
	t.Helper()
	return startRegistry(t, t.TempDir(), nil)
}

// StartAuthRegistry is StartRegistry with htpasswd Basic auth on: only user with password
// gets in. It returns the address and a DOCKER_CONFIG directory whose config.json holds
// those credentials for it (as docker login would write them). It needs htpasswd
// (apt-get install apache2-utils), for the bcrypt entry the registry insists on.
func StartAuthRegistry(t testing.TB, user, password string) (addr, dockerConfig string) {
	t.Helper()
	base := t.TempDir()
	out, err := exec.Command("htpasswd", "-Bbn", user, password).Output()
	if err != nil {
		t.Fatalf("htpasswd -Bbn (apt-get install apache2-utils): %v", err)
	}
	htpasswd := filepath.Join(base, "htpasswd")
	if err := os.WriteFile(htpasswd, out, 0o600); err != nil {
		t.Fatal(err)
	}
	addr = startRegistry(t, base, map[string]string{"HARDWAY_REGISTRY_HTPASSWD": htpasswd})
	dockerConfig = filepath.Join(base, "docker")
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	cfg := `{"auths":{"` + addr + `":{"auth":"` + auth + `"}}}`
	if err := os.MkdirAll(dockerConfig, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dockerConfig, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return addr, dockerConfig
}

func startRegistry(t testing.TB, base string, extra map[string]string) string {
	t.Helper()
	env := map[string]string{
		"HARDWAY_ROOT": filepath.Join(base, "root"),
		"HARDWAY_RUN":  filepath.Join(base, "run"),
	}
	for k, v := range extra {
		env[k] = v
	}
	var lastErr string
	// A port found free can be taken before the registry binds it: try a few.
	for try := 0; try < 3; try++ {
		env["HARDWAY_REGISTRY"] = freePort(t)
		out, err := runScript(t, "registry", env, "start")
		if err == nil {
			addr := env["HARDWAY_REGISTRY"]
			t.Cleanup(func() {
				if out, err := runScript(t, "registry", env, "stop"); err != nil {
					t.Errorf("scripts/registry stop: %v\n%s", err, out)
				}
			})
			return addr
		}
		lastErr = err.Error() + "\n" + out
	}
	t.Fatalf("scripts/registry start: %s", lastErr)
	return ""
}

// SeedImages pushes the seed images (scripts/seed-images) to the registry at addr and
// returns the references pushed, one per image. It needs crane: make tools.
func SeedImages(t testing.TB, addr string) []string {
	t.Helper()
	return seedImages(t, addr, nil)
}

// ReseedImages is SeedImages with every image built and pushed again, even when its tag is
// there already (HARDWAY_SEED_FORCE=1): for checking that seeding is reproducible.
func ReseedImages(t testing.TB, addr string) []string {
	t.Helper()
	return seedImages(t, addr, map[string]string{"HARDWAY_SEED_FORCE": "1"})
}

func seedImages(t testing.TB, addr string, extra map[string]string) []string {
	t.Helper()
	cranePath(t)
	env := map[string]string{"HARDWAY_REGISTRY": addr, "TMPDIR": t.TempDir()}
	for k, v := range extra {
		env[k] = v
	}
	stdout, stderr, err := runScriptSplit(t, "seed-images", env)
	if err != nil {
		t.Fatalf("scripts/seed-images: %v\n%s", err, stderr)
	}
	return strings.Fields(stdout)
}

// CraneDigest asks the registry, through crane, for the manifest digest of ref: the oracle
// that pull's printed digest is checked against.
func CraneDigest(t testing.TB, ref string, platform string) string {
	t.Helper()
	args := []string{"--insecure", "digest", ref}
	if platform != "" {
		args = append(args, "--platform", platform)
	}
	cmd := exec.Command(cranePath(t), args...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crane digest %s: %v: %s", ref, err, errb.String())
	}
	return strings.TrimSpace(string(out))
}

func cranePath(t testing.TB) string {
	if p, err := exec.LookPath("crane"); err == nil {
		return p
	}
	p := filepath.Join(RepoRoot(t), ".tools", "bin", "crane")
	if _, err := os.Stat(p); err != nil {
		t.Fatal("crane is not installed, and the test registry is seeded and checked with it: run make tools")
	}
	return p
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func runScript(t testing.TB, name string, env map[string]string, args ...string) (string, error) {
	stdout, stderr, err := runScriptSplit(t, name, env, args...)
	return stdout + stderr, err
}

func runScriptSplit(t testing.TB, name string, env map[string]string, args ...string) (string, string, error) {
	t.Helper()
	repo := RepoRoot(t)
	cmd := exec.Command(filepath.Join(repo, "scripts", name), args...)
	cmd.Env = os.Environ()
	// The scripts find crane on PATH, as the Makefile arranges.
	cmd.Env = append(cmd.Env, "PATH="+filepath.Join(repo, ".tools", "bin")+":"+os.Getenv("PATH"))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// PushLayers pushes an image made of the given layer tarballs (files) to ref with crane
// (an empty base, so Docker schema2 media types) and returns its manifest digest.
// dockerConfig, when not empty, is the DOCKER_CONFIG crane reads credentials from.
func PushLayers(t testing.TB, ref, dockerConfig string, layers ...string) string {
	t.Helper()
	args := []string{"--insecure", "append", "-t", ref}
	for _, l := range layers {
		args = append(args, "-f", l)
	}
	cmd := exec.Command(cranePath(t), args...)
	cmd.Env = os.Environ()
	if dockerConfig != "" {
		cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+dockerConfig)
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("crane append %s: %v: %s", ref, err, errb.String())
	}
	// crane prints the pushed reference, pinned: REF@sha256:…
	s := strings.TrimSpace(string(out))
	if i := strings.LastIndex(s, "@"); i >= 0 {
		return s[i+1:]
	}
	t.Fatalf("crane append printed %q, not a pinned reference", s)
	return ""
}

// LayerTar writes an uncompressed layer tarball holding name with content data (mode
// 0644, owner 0:0) into the test's temporary dir and returns its path.
func LayerTar(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}
