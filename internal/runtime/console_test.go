package runtime_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/testutil"
)

// applets links more busybox applets into a test bundle's rootfs.
func applets(t *testing.T, b string, names ...string) {
	t.Helper()
	for _, a := range names {
		if err := os.Symlink("busybox", filepath.Join(b, "rootfs", "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
}

// screen collects what a terminal master shows.
type screen struct {
	mu  sync.Mutex
	buf bytes.Buffer
	eof chan struct{}
}

func watch(m *os.File) *screen {
	s := &screen{eof: make(chan struct{})}
	go func() {
		defer close(s.eof)
		b := make([]byte, 4096)
		for {
			n, err := m.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			s.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return s
}

func (s *screen) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

// waitFor polls (for at most 10s) until the screen shows want.
func (s *screen) waitFor(t *testing.T, want string) {
	t.Helper()
	for i := 0; i < 500; i++ {
		if strings.Contains(s.String(), want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("the terminal never showed %q; it shows %q", want, s.String())
}

// On a terminal of the test's own (30×100, nsrun's controlling terminal as in a login
// session), nsrun --tty gives the container a terminal of its own devpts: tty names
// /dev/pts/0, fd 0 points there, /dev/console is that terminal, the size is the user's, and
// ^C typed goes to the container's foreground process (the sleep dies, the shell's trap
// runs) rather than signalling nsrun, which exits with the container's code; a new size of
// the user's terminal reaches the container's.
func TestTTYInsideContainer(t *testing.T) {
	_, b := bundleRunning(t, "tty; ls -l /proc/self/fd/0; stty size; stat -c 'console %t:%T' /dev/console; stat -c 'pts0 %t:%T' /dev/pts/0; "+
		"trap 'echo trapped' INT; echo ready; sleep 1000; echo sleep=$?; "+
		"for i in $(seq 100); do [ \"$(stty size)\" = '40 120' ] && break; sleep 0.1; done; echo size $(stty size); exit 5")
	applets(t, b, "tty", "stty", "seq")
	m, s := testutil.Pty(t, 30, 100)
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "--tty", b)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = s, s, s
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	s.Close()
	scr := watch(m)
	scr.waitFor(t, "ready")
	// ^C only once the sleep runs: one typed between the echo and the fork would leave it
	// running after the trap.
	sh := waitChild(t, cmd.Process.Pid, "sh")
	waitChild(t, sh, "sleep")
	// The user's terminal changes size: the kernel signals nsrun (SIGWINCH), which passes
	// the size on to the container's terminal.
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: 120})
	m.Write([]byte{3})
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(30 * time.Second):
		// ^C went to nsrun, which passes a signal to PID 1 only: the sleep never ends.
		cmd.Process.Kill()
		<-exited
		t.Fatalf("nsrun did not exit: ^C did not interrupt the container's foreground sleep; the terminal shows %q", scr.String())
	}
	<-scr.eof
	out := scr.String()
	for _, want := range []string{"/dev/pts/0\r\n", "/proc/self/fd/0 -> /dev/pts/0\r\n", "30 100\r\n", "trapped\r\n", "sleep=130\r\n", "size 40 120\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the container's terminal shows %q; want %q in it", out, want)
		}
	}
	if strings.Contains(out, "not a tty") {
		t.Errorf("tty inside: not a tty (%q)", out)
	}
	var console, pts0 string
	for _, l := range strings.Split(out, "\r\n") {
		if v, ok := strings.CutPrefix(l, "console "); ok {
			console = v
		}
		if v, ok := strings.CutPrefix(l, "pts0 "); ok {
			pts0 = v
		}
	}
	if console == "" || console != pts0 {
		t.Errorf("/dev/console is device %q, /dev/pts/0 %q: want the same terminal", console, pts0)
	}
	if code := cmd.ProcessState.ExitCode(); code != 5 {
		t.Errorf("nsrun exited %d (%v); want the container's 5 (^C must not reach nsrun)", code, cmd.ProcessState)
	}
}

// recvTerminal is a console-socket receiver as one would write for runc (recvtty): accept
// one connection, receive one fd with SCM_RIGHTS, return it with the name sent along.
func recvTerminal(t *testing.T, ln *net.UnixListener) (*os.File, string) {
	t.Helper()
	ln.SetDeadline(time.Now().Add(20 * time.Second))
	conn, err := ln.AcceptUnix()
	if err != nil {
		t.Errorf("accept on the console socket: %v", err)
		return nil, ""
	}
	defer conn.Close()
	name, oob := make([]byte, 4096), make([]byte, unix.CmsgSpace(4))
	n, oobn, _, _, err := conn.ReadMsgUnix(name, oob)
	if err != nil {
		t.Errorf("recvmsg: %v", err)
		return nil, ""
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil || len(msgs) != 1 {
		t.Errorf("control messages %v: %v", msgs, err)
		return nil, ""
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		t.Errorf("SCM_RIGHTS %v: %v", fds, err)
		return nil, ""
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), string(name[:n])
}

// nsrun --console-socket sends the container's terminal to a receiver written for runc's
// protocol and relays nothing itself; process.terminal in config.json asks for the terminal,
// process.consoleSize sets its size, and it belongs to the process's user.
func TestConsoleSocket(t *testing.T) {
	_, b := bundleRunning(t, "tty; stty size; stat -c 'owner %u' $(tty); echo out; echo err >&2; read line; echo got=$line; exit 3")
	applets(t, b, "tty", "stty")
	testutil.EditBundle(t, b, func(s *specs.Spec) {
		s.Process.Terminal = true
		s.Process.ConsoleSize = &specs.Box{Height: 33, Width: 111}
		s.Process.User.UID = 1000 // the terminal is handed to it
	})
	// A path longer than sun_path's 108 bytes: the receiver binds it through its directory's
	// fd, nsrun must reach it the same way.
	dir := filepath.Join(t.TempDir(), strings.Repeat("c", 60), strings.Repeat("s", 60))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "console.sock")
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: fmt.Sprintf("/proc/self/fd/%d/console.sock", d.Fd()), Net: "unix"})
	d.Close()
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	defer ln.Close()
	got := make(chan *os.File, 1)
	go func() {
		m, name := recvTerminal(t, ln)
		if m != nil && name != "/dev/ptmx" {
			t.Errorf("the terminal came named %q; runc names it /dev/ptmx", name)
		}
		got <- m
	}()
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "--console-socket", sock, b)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	m := <-got
	if m == nil {
		t.FailNow()
	}
	defer m.Close()
	scr := watch(m)
	scr.waitFor(t, "err")
	m.Write([]byte("typed\n"))
	cmd.Wait()
	<-scr.eof
	out := scr.String()
	for _, want := range []string{"/dev/pts/0\r\n", "33 111\r\n", "owner 1000\r\n", "out\r\nerr\r\n", "got=typed\r\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("the received terminal shows %q; want %q in it", out, want)
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 3 || stdout.Len() != 0 || stderr.Len() != 0 {
		t.Errorf("nsrun --console-socket: exit %d, stdout %q, stderr %q; want 3 and nothing relayed", code, stdout.String(), stderr.String())
	}
}

// Bad console sockets are one-line errors, and nothing starts.
func TestConsoleSocketErrors(t *testing.T) {
	_, b := bundleRunning(t, "echo started")
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	sock := filepath.Join(dir, "sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--console-socket", sock, b}, "needs a terminal"},
		{[]string{"--tty", "--console-socket", file, b}, "is not a socket"},
		{[]string{"--tty", "--console-socket", filepath.Join(dir, "none"), b}, "does not exist"},
	} {
		r := nsrun(t, c.args...)
		if r.Code == 0 || r.Stdout != "" || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, c.want) {
			t.Errorf("nsrun %v: exit %d, stdout %q, stderr %q; want a one-line error saying %q", c.args, r.Code, r.Stdout, r.Stderr, c.want)
		}
	}
}

// nsrun exec --tty makes the command's terminal in the container's devpts too: the
// container has none of its own, so it is /dev/pts/0 there; --console-socket without --tty
// is refused.
func TestExecTTYInsideContainer(t *testing.T) {
	_, b, pid := runningContainer(t)
	applets(t, b, "tty")
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "exec", "--tty", "--pid", strconv.Itoa(pid), "--", "sh", "-c", "tty; ls -l /proc/self/fd/1")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "/dev/pts/0\r\n") || !strings.Contains(string(out), "/proc/self/fd/1 -> /dev/pts/0\r\n") {
		t.Errorf("nsrun exec --tty: %v, output %q; want tty to name /dev/pts/0", err, out)
	}
	r := nsrun(t, "exec", "--console-socket", "/nonexistent", "--pid", strconv.Itoa(pid), "--", "tty")
	if r.Code == 0 || strings.Count(r.Stderr, "\n") != 1 || !strings.Contains(r.Stderr, "needs a terminal") {
		t.Errorf("nsrun exec --console-socket without --tty: exit %d, stderr %q; want a one-line error", r.Code, r.Stderr)
	}
}

// waitChild polls (for at most 10s) for a child of ppid named comm and returns its pid.
func waitChild(t *testing.T, ppid int, comm string) int {
	t.Helper()
	for i := 0; i < 500; i++ {
		ds, _ := os.ReadDir("/proc")
		for _, d := range ds {
			pid, err := strconv.Atoi(d.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + d.Name() + "/stat")
			if err != nil {
				continue
			}
			i := bytes.LastIndexByte(b, ')')
			f := strings.Fields(string(b[i+1:]))
			if len(f) > 1 && f[1] == strconv.Itoa(ppid) && string(b[bytes.IndexByte(b, '(')+1:i]) == comm {
				return pid
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %s under pid %d", comm, ppid)
	return 0
}
