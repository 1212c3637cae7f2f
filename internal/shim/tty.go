package shim

import (
	"os"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// openPty allocates the container's terminal: the shim keeps the master (the container's
// output, and where attach input is typed), the runtime gets the slave as its stdio. This
// is conmon's job with a terminal, done with the host's devpts.
func openPty() (master, slave *os.File, err error) {
	trace.Step("allocate a pseudo-terminal for the container", "open /dev/ptmx; unlockpt; open /dev/pts/N")
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, err
	}
	// TIOCGPTPEER opens the slave through the master, so no /dev/pts path can be raced.
	fd, _, errno := unix.Syscall(unix.SYS_IOCTL, m.Fd(), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		m.Close()
		return nil, nil, errno
	}
	// A size, as docker run -t gives one; programs that lay out output ask for it.
	unix.IoctlSetWinsize(int(m.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: 80})
	return m, os.NewFile(fd, "pty-slave"), nil
}
