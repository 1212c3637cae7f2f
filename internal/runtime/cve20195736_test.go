package runtime_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/testutil"
)

// attacker is CVE-2019-5736 as it was used against runc, in busybox sh. It replaces a
// binary of the container with "#!/proc/self/exe", so that a later `exec` of it by the
// runtime makes the kernel run, as the script's interpreter, whatever the runtime's
// process was running from at that moment: the runtime itself, now as a process of the
// container. The attacker catches that process, opens its /proc/PID/exe (read-only: the
// file is busy while it runs), waits until it has exited and then writes through that fd,
// which on an unprotected runtime overwrites the host's runtime binary.
const attacker = `printf '#!/proc/self/exe\n' > /bin/pwn; chmod 755 /bin/pwn; echo ready
while :; do
	for p in /proc/[0-9]*; do
		case "$(readlink $p/exe 2>/dev/null)" in *nsrun*) exec 3<$p/exe && break 2;; esac
	done
done
echo "caught $(readlink /proc/self/fd/3)"; touch /caught
while [ ! -e /go ]; do sleep 0.05; done
if printf '#!/bin/sh\necho pwned\n' 2>/err >/proc/self/fd/3; then echo wrote; else echo "refused: $(cat /err)"; fi
exec sleep 60`

// TestCVE20195736 replays that attack against nsrun exec: the joiner execs /bin/pwn, the
// kernel runs nsrun again inside the container, and the attacker writes to it once it is
// gone. nsrun runs its in-container side from a read-only overlay view of its binary (or
// a sealed memfd copy), so what the attacker holds cannot be written: the write is refused
// (EROFS, or EPERM for the memfd) and the host's bin/nsrun is unchanged.
//
// To hold the re-run nsrun still while the attacker finds it (it only prints an error and
// exits), its stderr is a pipe the test has filled: its write blocks until the test drains
// the pipe.
func TestCVE20195736(t *testing.T) {
	_, b := bundleRunning(t, attacker)
	bin := testutil.Bin(t, "nsrun")
	before := sha(t, bin)

	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()
	// The container's supervisor runs from a copy: while a process runs bin/nsrun, a write
	// to it fails with ETXTBSY anyway, which would hide what the attack can do.
	runner := filepath.Join(t.TempDir(), "nsrun-run")
	if err := os.WriteFile(runner, mustRead(t, bin), 0o755); err != nil {
		t.Fatal(err)
	}
	_, pid := startNsrunBin(t, runner, outW, b)
	outW.Close()
	lines := bufio.NewScanner(outR)
	next := func() string {
		if !lines.Scan() {
			t.Fatalf("the attacker's output ended: %v", lines.Err())
		}
		return lines.Text()
	}
	if l := next(); l != "ready" {
		t.Fatalf("attacker: %q, want ready", l)
	}

	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		t.Fatal(err)
	}
	errR, errW := os.NewFile(uintptr(p[0]), "stderr-r"), os.NewFile(uintptr(p[1]), "stderr-w")
	defer errR.Close()
	fill := bytes.Repeat([]byte{'.'}, 4096)
	for {
		if _, err := unix.Write(p[1], fill); err != nil {
			break // EAGAIN: the pipe is full
		}
	}
	if err := unix.SetNonblock(p[1], false); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "exec", "--pid", strconv.Itoa(pid), "--", "/bin/pwn")
	cmd.Stderr = errW
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	errW.Close()
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	caught := next()
	if !strings.HasPrefix(caught, "caught ") {
		t.Fatalf("attacker: %q, want caught …", caught)
	}
	if strings.Contains(caught, bin) {
		t.Errorf("the nsrun the container caught runs from the host's binary: %q", caught)
	}
	// Let it go: drain its stderr; then the attacker writes to what it holds.
	drained := make(chan []byte)
	go func() {
		var all bytes.Buffer
		all.ReadFrom(errR)
		drained <- all.Bytes()
	}()
	werr := cmd.Wait()
	stderr := <-drained
	if werr == nil || !bytes.Contains(stderr, []byte("nsrun: error:")) {
		t.Errorf("nsrun ran as /bin/pwn's interpreter should fail; exec: %v, stderr ends %q", werr, tail(stderr))
	}
	if err := os.WriteFile(filepath.Join(b, "rootfs/go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	verdict := next()
	t.Log("attacker: " + caught + "; " + verdict)
	if !strings.HasPrefix(verdict, "refused: ") {
		t.Errorf("the attacker's write through /proc/PID/exe: %q, want it refused", verdict)
	}
	if after := sha(t, bin); after != before {
		t.Fatalf("%s changed: sha256 %x before, %x after", bin, before, after)
	}
}

func sha(t *testing.T, path string) [32]byte {
	return sha256.Sum256(mustRead(t, path))
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tail(b []byte) []byte {
	if len(b) > 200 {
		return b[len(b)-200:]
	}
	return b
}

// The same attack on nsrun run: the image's entrypoint is a "#!/proc/self/exe" script. The
// init is a clone of nsrun until its execve, so the kernel runs nsrun's own file as the
// container's PID 1; nsrun sees it the moment the execve is done, kills the container and
// says why, and the host's binary is unchanged.
func TestCVE20195736Run(t *testing.T) {
	_, b := bundleRunning(t, "true")
	if err := os.WriteFile(filepath.Join(b, "rootfs/bin/pwn"), []byte("#!/proc/self/exe\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	testutil.EditBundle(t, b, func(s *specs.Spec) { s.Process.Args = []string{"/bin/pwn"} })
	bin := testutil.Bin(t, "nsrun")
	before := sha(t, bin)
	r := nsrun(t, b)
	if r.Code == 0 || !strings.Contains(r.Stderr, "CVE-2019-5736") {
		t.Errorf("an entrypoint running /proc/self/exe: exit %d, stderr %q; want it refused", r.Code, r.Stderr)
	}
	if after := sha(t, bin); after != before {
		t.Fatalf("%s changed", bin)
	}
}
