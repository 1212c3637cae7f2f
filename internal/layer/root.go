package layer

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// root is a directory that every path of a layer is resolved in. Paths are resolved by the
// kernel with openat2(RESOLVE_IN_ROOT): "..", absolute names and symlinks (absolute or
// relative) are all clamped to the root, exactly as they would be inside the container
// after pivot_root. The last component of a name is never followed: it is created, removed
// or changed with the *at syscalls relative to its parent's fd. No string prefix check
// stands between a hostile tar and the host.
type root struct {
	fd          int
	name        string
	opaqueXattr string // the xattr opaque() sets: trusted. or user. form
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &root{fd: fd, name: dir, opaqueXattr: OpaqueXattr}, nil
}

func (r *root) Close() error { return unix.Close(r.fd) }

// clean turns a tar entry name into a path relative to the root ("." for the root itself).
// Cleaning "/"+name folds every ".." into the root, so "../../etc" becomes "etc".
func clean(name string) string {
	p := path.Clean("/" + name)
	if p == "/" {
		return "."
	}
	return p[1:]
}

// openDir opens dir (relative to the root) as an O_PATH fd, resolving it in the root.
func (r *root) openDir(dir string) (int, error) {
	how := &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS,
	}
	for {
		fd, err := unix.Openat2(r.fd, dir, how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat2", Path: dir, Err: err}
		}
		return fd, nil
	}
}

// mkdirAll opens dir, creating each missing component (mode 0755, root-owned, as Docker
// does for parents a tar leaves out). A non-directory in the way is replaced by a directory.
// The longest existing prefix is found by binary search and the rest is created relative to
// its fd, so a path of d components costs O(d log d) lookups, not O(d²): very deep trees
// stay linear in the tar's size.
func (r *root) mkdirAll(dir string) (int, error) {
	if dir == "." {
		return unix.Dup(r.fd)
	}
	fd, err := r.openDir(dir)
	if err == nil {
		return fd, nil
	}
	comps := strings.Split(dir, "/")
	prefix := func(k int) string {
		if k == 0 {
			return "."
		}
		return strings.Join(comps[:k], "/")
	}
	// A prefix that opens as a dir has only dirs above it: lo opens, hi does not.
	lo, hi := 0, len(comps)
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if fd, err := r.openDir(prefix(mid)); err == nil {
			unix.Close(fd)
			lo = mid
		} else {
			hi = mid
		}
	}
	if fd, err = r.openDir(prefix(lo)); err != nil {
		return -1, err
	}
	for i := lo; i < len(comps); i++ {
		nfd, err := mkdirAt(fd, comps[i], prefix(i+1))
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// mkdirAt makes the dir base in pfd (what resolving name in the root found missing) and
// opens it without following anything.
func mkdirAt(pfd int, base, name string) (int, error) {
	if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
		if err != unix.EEXIST {
			return -1, &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
		// Something that is not a directory is in the way. A file is replaced (a later entry
		// wins), but a symlink that leads nowhere in the layer is kept and refused, as
		// Docker's extraction refuses it: silently swapping it for a dir would change the image.
		if st, ok, _ := lstatAt(pfd, base); ok && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, fmt.Errorf("/%s is a symlink that leads to no directory inside the layer", name)
		}
		if err := removeAllAt(pfd, base); err != nil {
			return -1, err
		}
		if err := unix.Mkdirat(pfd, base, 0o755); err != nil {
			return -1, &os.PathError{Op: "mkdir", Path: name, Err: err}
		}
	}
	fd, err := unix.Openat(pfd, base, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: name, Err: err}
	}
	return fd, nil
}

// parent splits name into its parent dir (opened, created if missing) and its last component.
func (r *root) parent(name string) (int, string, error) {
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	fd, err := r.mkdirAll(dir)
	if err != nil {
		return -1, "", err
	}
	return fd, base, nil
}

// removeAllAt removes name in the dir dirfd, recursively, without following symlinks.
func removeAllAt(dirfd int, name string) error {
	err := unix.Unlinkat(dirfd, name, 0)
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR && err != unix.EPERM {
		return &os.PathError{Op: "unlink", Path: name, Err: err}
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: name, Err: err}
	}
	f := os.NewFile(uintptr(fd), name)
	names, err := f.Readdirnames(-1)
	if err != nil {
		f.Close()
		return err
	}
	for _, n := range names {
		if err := removeAllAt(fd, n); err != nil {
			f.Close()
			return err
		}
	}
	f.Close()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "rmdir", Path: name, Err: err}
	}
	return nil
}

// procPath names base inside the dir dirfd through /proc/self/fd, for the few calls that
// have no *at form (lsetxattr). dirfd is already resolved in the root and base is not
// followed by the l* calls, so the path cannot lead outside.
func procPath(dirfd int, base string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + base
}

// lstatAt stats base in dirfd without following it; ok is false when it does not exist.
func lstatAt(dirfd int, base string) (st unix.Stat_t, ok bool, err error) {
	err = unix.Fstatat(dirfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if errors.Is(err, unix.ENOENT) {
		return st, false, nil
	}
	if err != nil {
		return st, false, fmt.Errorf("stat %s: %w", base, err)
	}
	return st, true, nil
}
