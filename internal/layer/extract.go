// Package layer extracts one image layer (a tar stream) into an empty directory in the form
// overlayfs reads: whiteouts become 0/0 character devices, opaque markers become the
// trusted.overlay.opaque xattr (user.overlay.opaque for a userxattr mount). Every path is resolved inside the directory by the kernel
// (openat2 RESOLVE_IN_ROOT), so a hostile tar cannot write outside it.
package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

const (
	whiteoutPrefix = ".wh."
	opaqueMarker   = ".wh..wh..opq"
	// OpaqueXattr marks a directory whose lower contents overlayfs hides.
	OpaqueXattr = "trusted.overlay.opaque"
	// UserOpaqueXattr is the same mark for overlay mounts with the userxattr option, the
	// form a user namespace without CAP_SYS_ADMIN in the init namespace can write and read
	// (overlayfs.rst "User xattr", kernel >= 5.11).
	UserOpaqueXattr = "user.overlay.opaque"
)

// Options tune Apply and ExtractBlob.
type Options struct {
	// Budget caps what may be written (nil: DefaultMaxSize).
	Budget *Budget
	// UserXattr writes opaque dirs as user.overlay.opaque instead of trusted.overlay.opaque.
	// Whiteouts stay 0/0 character devices in both forms: overlayfs reads them either way,
	// and since Linux 5.8 creating one needs no CAP_MKNOD.
	UserXattr bool
	// Progress, when set, is handed every compressed byte ExtractBlob reads (a progress bar).
	Progress io.Writer
}

// Stats counts what Apply did, for the caller's summary.
type Stats struct {
	Entries   int
	Whiteouts int
	Opaques   int
}

type dirTime struct {
	name  string
	mtime time.Time
}

// Apply extracts the tar stream r into dir, which should be empty, charging every entry to
// budget (nil: DefaultMaxSize). It stops at the tar's end-of-archive marker; the caller
// drains what follows (it is part of the hashed stream). On error dir holds a partial
// tree: the caller extracts into a temporary dir and throws it away.
func Apply(dir string, r io.Reader, budget *Budget) (Stats, error) {
	return ApplyWith(dir, r, Options{Budget: budget})
}

// ApplyWith is Apply with options: the budget and the xattr form of opaque dirs.
func ApplyWith(dir string, r io.Reader, o Options) (Stats, error) {
	budget := o.Budget
	if budget == nil {
		budget = NewBudget(DefaultMaxSize)
	}
	var st Stats
	rt, err := openRoot(dir)
	if err != nil {
		return st, err
	}
	defer rt.Close()
	rt.opaqueXattr = OpaqueXattr
	if o.UserXattr {
		rt.opaqueXattr = UserOpaqueXattr
	}
	var dirs []dirTime
	// Whiteouts inside a dir this same layer makes opaque are dropped: the opaque dir already
	// hides everything below it, and in a dir no lower layer shares overlayfs may list a
	// whiteout as the 0/0 device it is (umoci's rule, tar_extract.go).
	opaques := map[string]bool{}
	var whiteouts []string
	underOpaque := func(name string) bool {
		for d := path.Dir(name); ; d = path.Dir(d) {
			if opaques[d] {
				return true
			}
			if d == "." {
				return false
			}
		}
	}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, fmt.Errorf("read tar: %w", err)
		}
		st.Entries++
		// The declared size is charged before a byte is written; for a sparse file it is
		// the logical size, holes included, because holes are written out as zeros.
		if err := budget.charge(hdr.Name, hdr.Size); err != nil {
			return st, err
		}
		name := clean(hdr.Name)
		if len(name) >= unix.PathMax {
			// Nothing in the container could open it; refusing it also bounds the work.
			return st, fmt.Errorf("%.64s…: name of %d bytes: %w", name, len(name), unix.ENAMETOOLONG)
		}
		base := path.Base(name)
		switch {
		case base == opaqueMarker:
			dir := path.Dir(name)
			if err := rt.opaque(dir); err != nil {
				return st, err
			}
			opaques[dir] = true
			st.Opaques++
			kept := whiteouts[:0]
			for _, w := range whiteouts {
				if underOpaque(w) {
					if err := rt.dropWhiteout(w); err != nil {
						return st, err
					}
					continue
				}
				kept = append(kept, w)
			}
			whiteouts = kept
			continue
		case strings.HasPrefix(base, whiteoutPrefix):
			target := path.Join(path.Dir(name), strings.TrimPrefix(base, whiteoutPrefix))
			if underOpaque(target) {
				if err := checkWhiteoutName(hdr.Name, base); err != nil {
					return st, err
				}
				trace.Stepf("whiteout /%s skipped: its dir is opaque in this layer", target)
				continue
			}
			if err := rt.whiteout(name, hdr); err != nil {
				return st, err
			}
			whiteouts = append(whiteouts, target)
			st.Whiteouts++
			continue
		}
		if err := rt.entry(name, hdr, tr); err != nil {
			return st, fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, dirTime{name, hdr.ModTime})
		}
	}
	// Directory mtimes last: creating entries inside a directory changes its mtime.
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := rt.chtimes(dirs[i].name, dirs[i].mtime); err != nil {
			return st, err
		}
	}
	return st, nil
}

// opaque marks dir as opaque: overlayfs then shows none of the lower layers' entries in it.
func (r *root) opaque(dir string) error {
	fd, err := r.mkdirAll(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	trace.Step("opaque directory /"+dir+" (hide what lower layers have in it)",
		trace.Cmd("setfattr", "-n", r.opaqueXattr, "-v", "y", "diff/"+dir))
	if err := unix.Lsetxattr(procPath(fd, "."), r.opaqueXattr, []byte("y"), 0); err != nil {
		return fmt.Errorf("set %s on /%s: %w", r.opaqueXattr, dir, err)
	}
	return nil
}

// whiteout turns DIR/.wh.NAME into a 0/0 character device DIR/NAME, overlayfs's mark that
// NAME of a lower layer is deleted.
func (r *root) whiteout(name string, hdr *tar.Header) error {
	if err := checkWhiteoutName(hdr.Name, path.Base(name)); err != nil {
		return err
	}
	base := strings.TrimPrefix(path.Base(name), whiteoutPrefix)
	target := path.Join(path.Dir(name), base)
	pfd, _, err := r.parent(target)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	trace.Step("whiteout /"+target+" (deleted from the layers below)",
		trace.Cmd("mknod", "diff/"+target, "c", "0", "0"))
	if err := removeAllAt(pfd, base); err != nil {
		return err
	}
	if err := unix.Mknodat(pfd, base, unix.S_IFCHR, 0); err != nil {
		return fmt.Errorf("mknod whiteout /%s: %w", target, err)
	}
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown whiteout /%s: %w", target, err)
	}
	return nil
}

// checkWhiteoutName refuses .wh. (no name), .wh.. and .wh... (the dir itself, its parent).
func checkWhiteoutName(entry, base string) error {
	switch strings.TrimPrefix(base, whiteoutPrefix) {
	case "", ".", "..":
		return fmt.Errorf("%s: invalid whiteout name", entry)
	}
	return nil
}

// dropWhiteout removes a whiteout this layer wrote, once an opaque marker makes it moot.
func (r *root) dropWhiteout(name string) error {
	pfd, err := r.openDir(path.Dir(name))
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	st, ok, err := lstatAt(pfd, path.Base(name))
	if err != nil || !ok || st.Mode&unix.S_IFMT != unix.S_IFCHR || st.Rdev != 0 {
		return err
	}
	trace.Stepf("whiteout /%s dropped: its dir is now opaque", name)
	if err := unix.Unlinkat(pfd, path.Base(name), 0); err != nil {
		return fmt.Errorf("remove whiteout /%s: %w", name, err)
	}
	return nil
}

// entry creates one non-whiteout entry. A later entry replaces an earlier one of the same
// name unless both are directories (then only the metadata changes).
func (r *root) entry(name string, hdr *tar.Header, data io.Reader) error {
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("an entry may not replace the layer's root directory")
		}
		fd, err := unix.Dup(r.fd)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return setMeta(fd, ".", hdr, true)
	}
	pfd, base, err := r.parent(name)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)

	old, exists, err := lstatAt(pfd, base)
	if err != nil {
		return err
	}
	isDir := hdr.Typeflag == tar.TypeDir
	if exists && !(isDir && old.Mode&unix.S_IFMT == unix.S_IFDIR) {
		if err := removeAllAt(pfd, base); err != nil {
			return err
		}
		exists = false
	}
	mode := uint32(hdr.Mode) & 0o7777

	switch hdr.Typeflag {
	case tar.TypeDir:
		if !exists {
			if err := unix.Mkdirat(pfd, base, 0o700); err != nil {
				return err
			}
		}
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		fd, err := unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err != nil {
			return err
		}
		err = copyToFd(fd, data)
		if cerr := unix.Close(fd); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		// The link text is stored as is, even absolute or full of "..": it only ever means
		// something inside the container, and nothing here is written through it.
		if err := unix.Symlinkat(hdr.Linkname, pfd, base); err != nil {
			return err
		}
	case tar.TypeLink:
		target := clean(hdr.Linkname)
		if target == "." {
			return fmt.Errorf("hardlink to the layer's root")
		}
		tfd, tbase, err := r.parent(target)
		if err != nil {
			return err
		}
		// Without AT_SYMLINK_FOLLOW linkat links a symlink itself, never its target.
		err = unix.Linkat(tfd, tbase, pfd, base, 0)
		unix.Close(tfd)
		if err != nil {
			return fmt.Errorf("hardlink to %s: %w", hdr.Linkname, err)
		}
		// A hardlink shares its target's inode: the header's owner and mode do not apply.
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		typ := map[byte]uint32{tar.TypeChar: unix.S_IFCHR, tar.TypeBlock: unix.S_IFBLK, tar.TypeFifo: unix.S_IFIFO}[hdr.Typeflag]
		// mknod(2) takes a 32-bit dev_t: 12 bits of major, 20 of minor. Anything larger
		// would be silently truncated into some other device.
		if hdr.Typeflag != tar.TypeFifo && (hdr.Devmajor < 0 || hdr.Devmajor >= 1<<12 || hdr.Devminor < 0 || hdr.Devminor >= 1<<20) {
			return fmt.Errorf("device number %d:%d out of range (major < 4096, minor < 1048576)", hdr.Devmajor, hdr.Devminor)
		}
		dev := int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))
		if err := unix.Mknodat(pfd, base, typ|mode, dev); err != nil {
			return err
		}
	case tar.TypeXGlobalHeader:
		return nil
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return setMeta(pfd, base, hdr, isDir)
}

// copyBufs are the copy buffers of the extractions running at once.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyToFd writes r to the plain fd: no os.File, whose setup (fcntl, poller registration)
// costs more than the write of a small file.
func copyToFd(fd int, r io.Reader) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := r.Read(buf)
		for b := buf[:n]; len(b) > 0; {
			w, err := unix.Write(fd, b)
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				return err
			}
			b = b[w:]
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// setMeta applies owner, mode, xattrs and (for non-directories) mtime to base in pfd.
// chown comes before chmod because chown clears the setuid and setgid bits.
func setMeta(pfd int, base string, hdr *tar.Header, isDir bool) error {
	if err := unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	isLink := hdr.Typeflag == tar.TypeSymlink
	if !isLink {
		// Never follows a symlink that might have replaced the entry (chmod.go).
		if err := chmodAt(pfd, base, tarMode(hdr)); err != nil {
			return fmt.Errorf("chmod: %w", err)
		}
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if esc, ok := escapeOverlayXattr(attr); ok {
			// overlayfs would obey these (redirects, metacopy, opaque): only our own
			// whiteout translation may set them. The image's are stored escaped, the way
			// overlayfs nests (Linux ≥ 6.7 shows trusted.overlay.overlay.X as
			// trusted.overlay.X in the merged root and obeys neither), as umoci does.
			trace.Stepf("image xattr %s on /%s stored escaped as %s (never obeyed by overlayfs)", attr, clean(hdr.Name), esc)
			attr = esc
		}
		if err := unix.Lsetxattr(procPath(pfd, base), attr, []byte(v), 0); err != nil {
			if strings.HasPrefix(attr, "user.") && (err == unix.EPERM || err == unix.ENOTSUP) {
				fmt.Fprintf(os.Stderr, "warning: %s: xattr %s not applied: %v\n", hdr.Name, attr, err)
				continue
			}
			return fmt.Errorf("xattr %s: %w", attr, err)
		}
	}
	if !isDir {
		ts := []unix.Timespec{unix.NsecToTimespec(hdr.AccessTime.UnixNano()), unix.NsecToTimespec(hdr.ModTime.UnixNano())}
		if hdr.AccessTime.IsZero() {
			ts[0] = ts[1]
		}
		if err := unix.UtimesNanoAt(pfd, base, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("chtimes: %w", err)
		}
	}
	return nil
}

// escapeOverlayXattr maps trusted.overlay.X to trusted.overlay.overlay.X (user. likewise).
func escapeOverlayXattr(attr string) (string, bool) {
	for _, p := range []string{"trusted.overlay.", "user.overlay."} {
		if rest, ok := strings.CutPrefix(attr, p); ok {
			return p + "overlay." + rest, true
		}
	}
	return attr, false
}

// tarMode maps the tar header's permission bits (incl. setuid, setgid, sticky) to chmod's.
func tarMode(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o777
	if hdr.Mode&0o4000 != 0 {
		m |= unix.S_ISUID
	}
	if hdr.Mode&0o2000 != 0 {
		m |= unix.S_ISGID
	}
	if hdr.Mode&0o1000 != 0 {
		m |= unix.S_ISVTX
	}
	return m
}

func (r *root) chtimes(name string, mtime time.Time) error {
	fd, err := r.openDir(path.Dir(name))
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ts := unix.NsecToTimespec(mtime.UnixNano())
	base := path.Base(name)
	if name == "." {
		base = "."
	}
	if err := unix.UtimesNanoAt(fd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chtimes /%s: %w", name, err)
	}
	return nil
}
