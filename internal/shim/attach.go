package shim

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// The attach socket is AF_UNIX SOCK_SEQPACKET, as conmon's: every packet from the shim is
// one stream byte and the bytes the container wrote; every packet from a client is
// stdinData and bytes for the container's stdin, or stdinClose once the client's stdin ended.
// With a terminal the shim first sends ttyHello alone, and a client on a terminal answers
// with resize and the rows and columns (big-endian uint16 each) whenever its size changes.
const (
	streamStdout byte = 1
	streamStderr byte = 2
	ttyHello     byte = 3
	stdinData    byte = 0
	stdinClose   byte = 1
	resize       byte = 2
	packetMax         = 32 << 10
)

// AttachSocket is the attach socket in the container's run dir.
func AttachSocket(id string) string { return filepath.Join(state.RunDir(id), "attach") }

// viaDirFd opens dir and calls f with a short name of dir/name that goes through
// /proc/self/fd, so the socket path never meets sun_path's 108-byte limit.
func viaDirFd(dir, name string, f func(short string) error) error {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	return f(fmt.Sprintf("/proc/self/fd/%d/%s", fd, name))
}

// attachServer fans the container's output out to attached clients and passes what they
// send to the container's stdin (when it has one).
type attachServer struct {
	ln      *net.UnixListener
	path    string
	mu      sync.Mutex
	clients map[*client]bool
	inMu    sync.Mutex // a stdin write may block; output must not wait for it
	stdin   *os.File   // nil unless the container was started with -i or --tty
	tty     bool       // stdin is a pty master: its end is typed as ^D, never a close
	writers sync.WaitGroup
}

type client struct {
	conn *net.UnixConn
	out  chan []byte
}

func listenAttach(id string, stdin *os.File, tty bool) (*attachServer, error) {
	s := &attachServer{path: AttachSocket(id), clients: map[*client]bool{}, stdin: stdin, tty: tty}
	os.Remove(s.path)
	err := viaDirFd(state.RunDir(id), "attach", func(short string) error {
		ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: short, Net: "unixpacket"})
		if err != nil {
			return err
		}
		ln.SetUnlinkOnClose(false) // the short name is gone by then; close removes s.path
		s.ln = ln
		return os.Chmod(s.path, 0o700)
	})
	if err != nil {
		return nil, err
	}
	go s.accept()
	return s, nil
}

// setStdin makes f (the terminal's master, once the runtime sent it) where input goes.
func (s *attachServer) setStdin(f *os.File) {
	s.inMu.Lock()
	s.stdin = f
	s.inMu.Unlock()
}

func (s *attachServer) accept() {
	for {
		conn, err := s.ln.AcceptUnix()
		if err != nil {
			return
		}
		c := &client{conn: conn, out: make(chan []byte, 256)}
		if s.tty {
			c.out <- []byte{ttyHello}
		}
		s.mu.Lock()
		s.clients[c] = true
		s.mu.Unlock()
		s.writers.Add(1)
		go func() {
			defer s.writers.Done()
			defer conn.Close()
			for p := range c.out {
				if _, err := conn.Write(p); err != nil {
					s.drop(c)
					for range c.out {
					}
					return
				}
			}
		}()
		go s.readStdin(c)
	}
}

// readStdin copies a client's packets to the container's stdin. The end of the client's
// stdin closes the container's, so `echo x | shim attach` ends a container that reads to
// the end; a client that merely goes away leaves it open for the next one. A terminal is
// never closed (that would hang it up): its end of input is ^D, as typed.
func (s *attachServer) readStdin(c *client) {
	buf := make([]byte, packetMax)
	for {
		n, err := c.conn.Read(buf)
		if err != nil || n == 0 {
			return
		}
		s.inMu.Lock()
		switch {
		case s.stdin == nil:
		case buf[0] == stdinData:
			s.stdin.Write(buf[1:n])
		case buf[0] == resize && s.tty && n == 5:
			ws := &unix.Winsize{Row: uint16(buf[1])<<8 | uint16(buf[2]), Col: uint16(buf[3])<<8 | uint16(buf[4])}
			unix.IoctlSetWinsize(int(s.stdin.Fd()), unix.TIOCSWINSZ, ws) // the kernel sends SIGWINCH
		case buf[0] == stdinClose && s.tty:
			s.stdin.Write([]byte{4})
		case buf[0] == stdinClose:
			s.stdin.Close()
			s.stdin = nil
		}
		s.inMu.Unlock()
	}
}

func (s *attachServer) drop(c *client) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[c] {
		delete(s.clients, c)
		close(c.out)
	}
}

// broadcast hands a chunk of output to every client; one that cannot keep up is dropped
// rather than stall the container.
func (s *attachServer) broadcast(stream byte, b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(b) > 0 {
		n := min(len(b), packetMax-1)
		p := append([]byte{stream}, b[:n]...)
		for c := range s.clients {
			select {
			case c.out <- p:
			default:
				delete(s.clients, c)
				close(c.out)
			}
		}
		b = b[n:]
	}
}

// close stops accepting, lets every client receive what is queued, and removes the socket.
func (s *attachServer) close() {
	s.ln.Close()
	os.Remove(s.path)
	s.mu.Lock()
	for c := range s.clients {
		delete(s.clients, c)
		close(c.out)
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.writers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
}

// Attach connects to a running container: its output goes to stdout and stderr as it is
// written, and stdin (if not nil) to the container's stdin when it was started with -i or --tty.
// It returns once the container has exited, with its exit code.
func Attach(id string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	c, err := read(id)
	if err != nil {
		return 0, err
	}
	if c.Status != state.StatusRunning || !alive(c.ShimPid) {
		return 0, cli.Errorf("see its output with: shim logs "+id, "cannot attach to %s: it is not running", id)
	}
	var conn *net.UnixConn
	trace.Step("connect to the supervisor's attach socket", trace.Cmd("socat", "-", "UNIX-CONNECT:"+AttachSocket(id)+",type=5"))
	err = viaDirFd(state.RunDir(id), "attach", func(short string) error {
		conn, err = net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: short, Net: "unixpacket"})
		return err
	})
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ECONNREFUSED) {
		return 0, cli.Errorf("see its output with: shim logs "+id, "cannot attach to %s: it is not running", id)
	}
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if stdin != nil {
		go func() {
			buf := make([]byte, packetMax)
			for {
				n, err := stdin.Read(buf[1:])
				if n > 0 {
					buf[0] = stdinData
					if _, werr := conn.Write(buf[:n+1]); werr != nil {
						return
					}
				}
				if err != nil {
					conn.Write([]byte{stdinClose})
					return
				}
			}
		}()
	}
	buf := make([]byte, packetMax)
	for {
		n, err := conn.Read(buf)
		if n == 1 && buf[0] == ttyHello && stdin != nil {
			if restore := onTerminal(stdin, conn); restore != nil {
				defer restore()
			}
		}
		if n > 1 {
			w := stdout
			if buf[0] == streamStderr {
				w = stderr
			}
			w.Write(buf[1:n])
		}
		if err != nil || n == 0 {
			break
		}
	}
	return Wait(id)
}

// onTerminal, when attach's stdin is a terminal and the container has one: puts ours in raw
// mode so every key (^C included) reaches the container's terminal, and keeps the
// container's size equal to ours. It returns what puts our terminal back.
func onTerminal(stdin io.Reader, conn *net.UnixConn) func() {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	old, err := term.MakeRaw(int(f.Fd()))
	if err != nil {
		return nil
	}
	winch := make(chan os.Signal, 1)
	signal.Notify(winch, unix.SIGWINCH)
	sendSize := func() {
		if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
			conn.Write([]byte{resize, byte(ws.Row >> 8), byte(ws.Row), byte(ws.Col >> 8), byte(ws.Col)})
		}
	}
	sendSize()
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-winch:
				sendSize()
			case <-done:
				return
			}
		}
	}()
	return func() {
		signal.Stop(winch)
		close(done)
		term.Restore(int(f.Fd()), old)
	}
}
