package layer

import (
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// How chmodAt changes a mode without following a symlink, learnt on first use.
const (
	chmodUntried   int32 = iota
	chmodFchmodat2       // fchmodat2(AT_SYMLINK_NOFOLLOW), Linux ≥ 6.6
	chmodProcFd          // O_PATH|O_NOFOLLOW then chmod /proc/self/fd/N, as glibc does before 6.6
)

var chmodPath atomic.Int32

// chmodAt sets base's mode in dirfd, never following base if it is (or has become) a
// symlink: a symlink's mode means nothing, and following one could chmod a host file.
func chmodAt(dirfd int, base string, mode uint32) error {
	if chmodPath.Load() != chmodProcFd {
		err := unix.Fchmodat(dirfd, base, mode, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil {
			chmodPath.CompareAndSwap(chmodUntried, chmodFchmodat2)
			return nil
		}
		// x/sys says EOPNOTSUPP both when fchmodat2 is missing (it maps ENOSYS) and when
		// base is a symlink; the fallback tells the two apart.
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
			return err
		}
	}
	isLink, err := chmodViaProcFd(dirfd, base, mode)
	if err != nil || isLink {
		return err
	}
	if chmodPath.Load() != chmodProcFd && chmodPath.CompareAndSwap(chmodUntried, chmodProcFd) {
		trace.Step("this kernel has no fchmodat2 (Linux < 6.6): modes are set through an O_PATH fd and /proc/self/fd, as glibc does")
	}
	return nil
}

// chmodViaProcFd opens base with O_PATH|O_NOFOLLOW, so a symlink is opened itself, never
// its target, and chmods what it opened through /proc/self/fd/N unless it is a symlink.
func chmodViaProcFd(dirfd int, base string, mode uint32) (isLink bool, err error) {
	fd, err := unix.Openat(dirfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, fmt.Errorf("open O_PATH: %w", err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return true, nil
	}
	return false, unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}
