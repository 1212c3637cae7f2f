package pty_test

import (
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/pty"
	"github.com/hardway/hardway/internal/testutil"
)

// Recv takes the terminal runc sends to a --console-socket: the shim's receiving side
// speaks runc's protocol (nsrun's sending side is checked against a runc-style receiver in
// the runtime tests).
func TestRecvFromRunc(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.TempState(t)
	testutil.CgroupParent(t)
	if _, err := exec.LookPath("runc"); err != nil {
		t.Fatal("needs runc (apt-get install runc): ", err)
	}
	id := testutil.ID("pty")
	b := testutil.BusyboxBundle(t, id)
	if err := os.Symlink("busybox", filepath.Join(b, "rootfs", "bin", "tty")); err != nil {
		t.Fatal(err)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.Args = []string{"sh", "-c", "tty; echo from-runc"}
		s.Process.Terminal = true
	})
	sock := filepath.Join(t.TempDir(), "console.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	root := t.TempDir()
	t.Cleanup(func() { exec.Command("runc", "--root", root, "delete", "-f", id).Run() })
	run := exec.Command("runc", "--root", root, "run", "-d", "--console-socket", sock, "-b", b, id)
	if out, err := run.CombinedOutput(); err != nil {
		t.Fatalf("runc run -d --console-socket: %v\n%s", err, out)
	}
	ln.SetDeadline(time.Now().Add(10 * time.Second))
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f, err := conn.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := pty.Recv(f)
	if err != nil {
		t.Fatalf("receive runc's terminal: %v", err)
	}
	defer m.Close()
	out, _ := io.ReadAll(m) // EIO once the container is gone
	if !strings.Contains(string(out), "/dev/pts/0\r\nfrom-runc\r\n") || m.Name() != "/dev/ptmx" {
		t.Errorf("runc's terminal %q shows %q; want /dev/pts/0 and from-runc", m.Name(), out)
	}
}
