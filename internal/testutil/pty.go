package testutil

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/pty"
)

// Pty makes a terminal for a test to drive a tool from, as a user's terminal would: rows ×
// cols, the slave to give the tool as stdio, the master to type into and read from. Both
// are closed at the end of the test.
func Pty(t testing.TB, rows, cols uint16) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open("/dev/ptmx")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	if err := unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
	return m, s
}
