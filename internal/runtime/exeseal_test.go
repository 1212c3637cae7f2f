package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/testutil"
)

// Both forms of the sealed nsrun hold this binary, byte for byte, and refuse a write
// through /proc/self/fd/N, as an attacker holding /proc/PID/exe would try it.
func TestSealedSelfForms(t *testing.T) {
	testutil.RequireRoot(t) // fsmount
	want, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]struct {
		open  func() (*os.File, error)
		errno error
	}{"overlay": {overlaySelf, unix.EROFS}, "memfd": {memfdSelf, unix.EPERM}} {
		f, err := c.open()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<40)) // the memfd offset is at its end
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want the %d of /proc/self/exe", name, len(got), err, len(want))
		}
		path := fmt.Sprintf("/proc/self/fd/%d", f.Fd())
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.Write([]byte("pwned"))
			w.Close()
		}
		if !errors.Is(err, c.errno) {
			t.Errorf("%s: writing through %s: %v, want %v", name, path, err, c.errno)
		}
		f.Close()
	}
}
