package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// sealedSelf opens the nsrun binary for the init and exec's joiner to run from, in a form
// no process can write to. While they run in the container's namespaces, a process there
// can reach their executable through /proc/PID/exe and, if that is the host's nsrun, write
// to it once they are gone (CVE-2019-5736, see TestCVE20195736).
//
// The cheap way, as runc 1.2 does it: the binary as seen through a read-only overlay
// mount that is never attached anywhere (the new mount API's fsmount), so writing through
// /proc/PID/exe fails with EROFS, and the page cache of the real file is shared. Where
// that cannot be made (no overlayfs, no fsopen, a deleted binary), a sealed memfd copy:
// the 4 MB copy costs a few milliseconds on every start.
func sealedSelf() (*os.File, error) {
	f, err := overlaySelf()
	if err == nil {
		return f, nil
	}
	trace.Step(fmt.Sprintf("no read-only overlay view of nsrun (%v): run the init from a sealed memfd copy", err))
	return memfdSelf()
}

// runFrom makes cmd exec self, passed as its last extra fd. The child resolves the path
// /proc/self/fd/N after Go's fork has moved its fds into place, which can put another
// file on the number self has in this process (in a VM it was exec's mount namespace fd:
// EACCES); the number of its own slot is certain.
func runFrom(cmd *exec.Cmd, self *os.File) {
	cmd.ExtraFiles = append(cmd.ExtraFiles, self)
	cmd.Path = fmt.Sprintf("/proc/self/fd/%d", 2+len(cmd.ExtraFiles))
}

func overlaySelf() (*os.File, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	if strings.HasSuffix(exe, " (deleted)") || strings.ContainsAny(exe, ":,\\") {
		return nil, fmt.Errorf("%s cannot be a lower layer", exe)
	}
	dir, name := filepath.Split(exe)
	// Without an upper layer overlayfs wants two lower ones (and it is then read-only): the
	// second is an empty tmpfs, detached as well, named through this process's fd table.
	empty, err := detachedMount("tmpfs", nil, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(empty)
	mnt, err := detachedMount("overlay", map[string]string{"lowerdir": fmt.Sprintf("%s:/proc/self/fd/%d", filepath.Clean(dir), empty)}, unix.MOUNT_ATTR_RDONLY)
	if err != nil {
		return nil, err
	}
	defer unix.Close(mnt)
	fd, err := unix.Openat(mnt, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s in the overlay: %w", name, err)
	}
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil || st.Flags&unix.ST_RDONLY == 0 {
		unix.Close(fd)
		return nil, errors.New("the overlay is not read-only")
	}
	return os.NewFile(uintptr(fd), "overlay:"+name), nil
}

// detachedMount makes a filesystem with the new mount API and returns its mount fd: a
// mount in no mount table, alive while an fd or a file opened in it is.
func detachedMount(fstype string, opts map[string]string, attrs int) (int, error) {
	fsfd, err := unix.Fsopen(fstype, unix.FSOPEN_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("fsopen %s: %w", fstype, err)
	}
	defer unix.Close(fsfd)
	for k, v := range opts {
		if err := unix.FsconfigSetString(fsfd, k, v); err != nil {
			return -1, fmt.Errorf("fsconfig %s %s: %w", fstype, k, err)
		}
	}
	if err := unix.FsconfigCreate(fsfd); err != nil {
		return -1, fmt.Errorf("create %s: %w", fstype, err)
	}
	mnt, err := unix.Fsmount(fsfd, unix.FSMOUNT_CLOEXEC, attrs|unix.MOUNT_ATTR_NODEV|unix.MOUNT_ATTR_NOSUID)
	if err != nil {
		return -1, fmt.Errorf("fsmount %s: %w", fstype, err)
	}
	return mnt, nil
}

// memfdSelf copies the nsrun binary into a sealed memfd, as runc 1.1 does.
func memfdSelf() (*os.File, error) {
	exe, err := os.Open("/proc/self/exe")
	if err != nil {
		return nil, err
	}
	defer exe.Close()
	fd, err := unix.MemfdCreate("nsrun", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "memfd:nsrun")
	// sendfile copies inside the kernel, in a few calls instead of thousands of reads and
	// writes: this copy is on every container start's path.
	for {
		n, err := unix.Sendfile(fd, int(exe.Fd()), nil, 1<<30)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("copy nsrun into a memfd: %w", err)
		}
		if n == 0 {
			break
		}
	}
	seals := unix.F_SEAL_SEAL | unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_WRITE
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal the nsrun copy: %w", err)
	}
	return f, nil
}
