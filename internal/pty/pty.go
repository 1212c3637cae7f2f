// Package pty allocates pseudo-terminals and passes a master over a unix socket the way
// runc's --console-socket does: one message on a connected SOCK_STREAM socket, its data the
// terminal's name, its SCM_RIGHTS control message the master's fd. A receiver written for
// runc (recvtty, conmon, containerd-shim) takes what nsrun sends, and the shim takes what
// runc sends.
package pty

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens the multiplexer at ptmx (/dev/ptmx, or /dev/pts/ptmx of a devpts instance),
// unlocks the new pair and opens its slave through the master (TIOCGPTPEER: no /dev/pts
// path to look up, so none to race). Both ends are close-on-exec and not a controlling
// terminal of this process; the slave is named /dev/pts/N as the pair's devpts numbers it.
func Open(ptmx string) (master, slave *os.File, err error) {
	fd, err := unix.Open(ptmx, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, &os.PathError{Op: "open", Path: ptmx, Err: err}
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	sfd, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
	if errno != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("open the slave (TIOCGPTPEER): %w", errno)
	}
	return master, os.NewFile(sfd, fmt.Sprintf("/dev/pts/%d", n)), nil
}

// Send passes master over the connected unix socket sock, named as runc names it.
func Send(sock *os.File, master *os.File) error {
	conn, err := sock.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = conn.Write(func(fd uintptr) bool {
		serr = unix.Sendmsg(int(fd), []byte(master.Name()), unix.UnixRights(int(master.Fd())), nil, 0)
		return serr != unix.EAGAIN
	})
	if err == nil {
		err = serr
	}
	return err
}

// maxName bounds the name that comes with the fd (runc's receivers read up to 4096 bytes).
const maxName = 4096

// Recv reads one terminal from sock: the fd (close-on-exec) named as the sender named it.
// It returns io.EOF when the sender went away without sending one.
func Recv(sock *os.File) (*os.File, error) {
	conn, err := sock.SyscallConn()
	if err != nil {
		return nil, err
	}
	name := make([]byte, maxName)
	oob := make([]byte, unix.CmsgSpace(4*4)) // room for a few fds: extra ones are closed
	var n, oobn int
	var rerr error
	err = conn.Read(func(fd uintptr) bool {
		n, oobn, _, _, rerr = unix.Recvmsg(int(fd), name, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	})
	if err == nil {
		err = rerr
	}
	if err != nil {
		return nil, err
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if f, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, f...)
		}
	}
	if len(fds) == 0 {
		if n == 0 {
			return nil, io.EOF
		}
		return nil, errors.New("the message on the console socket carried no fd")
	}
	for _, fd := range fds[1:] {
		unix.Close(fd)
	}
	return os.NewFile(uintptr(fds[0]), string(name[:n])), nil
}
