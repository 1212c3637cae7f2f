package overlay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// MaxLowers is the kernel's limit on stacked lower dirs (OVL_MAX_STACK in fs/overlayfs).
const MaxLowers = 500

// safeOptions are always passed: index=off as Docker does (an index ties the upper dir to
// these exact lowers), and neither redirects nor metacopy, whose xattrs an untrusted layer
// could forge to show files it should not (overlayfs.rst, "Metadata only copy up").
var safeOptions = [][2]string{{"index", "off"}, {"redirect_dir", "nofollow"}, {"metacopy", "off"}}

// forceLegacy makes mountOverlay use mount(2) even where the new mount API works (tests).
var forceLegacy bool

// noLowerdirPlus remembers, once mount(2) has worked where the new API failed, that this
// kernel lacks lowerdir+, so later mounts in the process go straight to mount(2).
var noLowerdirPlus atomic.Bool

// The fsconfig calls, swapped by tests to play a kernel without lowerdir+ (Linux 6.1).
var (
	fsconfigSetString = unix.FsconfigSetString
	fsconfigCreate    = unix.FsconfigCreate
)

// errNoLowerdirPlus says the kernel lacks the new mount API or its lowerdir+ (Linux < 6.8).
var errNoLowerdirPlus = errors.New("no lowerdir+")

// mountFlags are the overlay's flag options beyond the always-on safeOptions.
type mountFlags struct {
	userXattr bool // read user.overlay.* xattrs instead of trusted.overlay.*
	volatile  bool // never sync the upper dir (syncfs, fsync inside are no-ops)
}

// names lists the flags that are on, as mount(8) spells them.
func (f mountFlags) names() []string {
	var n []string
	if f.userXattr {
		n = append(n, "userxattr")
	}
	if f.volatile {
		n = append(n, "volatile")
	}
	return n
}

// mountOverlay mounts lowers (top first; relative names are relative to the layer store)
// under upper and work on rootfs. The mount is made on a thread of its own whose cwd is the
// layer store, so the short l/<SHORT> names resolve, as Docker does: with the new mount API
// each lower is its own fsconfig call (no page limit, up to the kernel's 500), otherwise one
// mount(2) whose option string must fit in a page.
func mountOverlay(lowers []string, upper, work, rootfs string, flags mountFlags) error {
	if len(lowers) > MaxLowers {
		return cli.Errorf("squash the image into fewer layers",
			"%d lower dirs (the image's layers and the container's init layer): overlayfs stacks at most %d", len(lowers), MaxLowers)
	}
	opts := make([]string, 0, len(safeOptions)+3)
	opts = append(opts, "lowerdir="+strings.Join(lowers, ":"), "upperdir="+upper, "workdir="+work)
	for _, o := range safeOptions {
		opts = append(opts, o[0]+"="+o[1])
	}
	opts = append(opts, flags.names()...)
	data := strings.Join(opts, ",")
	home := state.OverlayDir()
	what := fmt.Sprintf("mount the merged root (%d lower dirs, top first)", len(lowers))
	if len(data) > os.Getpagesize()-1 {
		what += fmt.Sprintf("; the options are %d bytes, more than mount(8) can pass in one page: only the new mount API, layer by layer, takes them", len(data))
	}
	trace.Step(what,
		"cd "+trace.Quote(home)+" && "+trace.Cmd("mount", "-t", "overlay", "overlay", "-o", data, rootfs))
	return onThreadIn(home, func() error {
		why := "forced"
		switch {
		case forceLegacy:
		case noLowerdirPlus.Load():
			why = "this kernel refused lowerdir+ on an earlier mount"
		default:
			err := mountNewAPI(lowers, upper, work, rootfs, flags)
			if !errors.Is(err, errNoLowerdirPlus) {
				return err
			}
			why = err.Error()
		}
		if len(data) > os.Getpagesize()-1 {
			return cli.Errorf("needs Linux ≥ 6.8 (lowerdir+), or an image with fewer layers",
				"the overlay mount options are %d bytes, more than mount(2) takes (one page, %d); the new mount API failed: %s", len(data), os.Getpagesize()-1, why)
		}
		trace.Step("mount(2) with one option string, short l/ names (new mount API not used: " + why + ")")
		if err := unix.Mount("overlay", rootfs, "overlay", 0, data); err != nil {
			return fmt.Errorf("mount -t overlay on %s: %w", rootfs, err)
		}
		if !forceLegacy {
			noLowerdirPlus.Store(true)
		}
		return nil
	})
}

// mountNewAPI mounts with fsopen, one fsconfig per option (lowerdir+ once per layer),
// fsmount and move_mount. It returns an error wrapping errNoLowerdirPlus when the kernel
// lacks them: fsopen fails with ENOSYS/EPERM, or an fsconfig call or FSCONFIG_CMD_CREATE
// fails with EINVAL. Before 6.8 (and on 6.1, where overlayfs has no fs_context of its own
// and the kernel's legacy adapter takes any key) lowerdir+ may be accepted by fsconfig and
// refused only at create ("unrecognized mount option"), or the adapter's one-page buffer
// overflows ("Cumulative options too large"). A genuine EINVAL fails mount(2) too.
func mountNewAPI(lowers []string, upper, work, rootfs string, flags mountFlags) error {
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err == unix.ENOSYS || err == unix.EPERM {
		return fmt.Errorf("%w: fsopen(overlay): %v", errNoLowerdirPlus, err)
	}
	if err != nil {
		return fmt.Errorf("fsopen(overlay): %w", err)
	}
	defer unix.Close(fd)
	set := func(k, v string) error {
		if err := fsconfigSetString(fd, k, v); err != nil {
			if err == unix.EINVAL {
				return fmt.Errorf("%w: fsconfig %s=%s: %v%s", errNoLowerdirPlus, k, v, err, kernelLog(fd))
			}
			return fmt.Errorf("fsconfig %s=%s: %w%s", k, v, err, kernelLog(fd))
		}
		return nil
	}
	for _, l := range lowers {
		if err := set("lowerdir+", l); err != nil {
			return err
		}
	}
	if err := set("upperdir", upper); err != nil {
		return err
	}
	if err := set("workdir", work); err != nil {
		return err
	}
	for _, o := range safeOptions {
		if err := set(o[0], o[1]); err != nil {
			return err
		}
	}
	opts := optString()
	for _, f := range flags.names() {
		// Flags, not key=value pairs.
		if err := unix.FsconfigSetFlag(fd, f); err != nil {
			if err == unix.EINVAL {
				return fmt.Errorf("%w: fsconfig %s: %v%s", errNoLowerdirPlus, f, err, kernelLog(fd))
			}
			return fmt.Errorf("fsconfig %s: %w%s", f, err, kernelLog(fd))
		}
		opts += "," + f
	}
	trace.Step(fmt.Sprintf("new mount API: fsopen(\"overlay\"), fsconfig lowerdir+ ×%d, upperdir, workdir, %s, FSCONFIG_CMD_CREATE, fsmount, move_mount", len(lowers), opts))
	if err := fsconfigCreate(fd); err != nil {
		if err == unix.EINVAL {
			return fmt.Errorf("%w: fsconfig FSCONFIG_CMD_CREATE (overlay): %v%s", errNoLowerdirPlus, err, kernelLog(fd))
		}
		return fmt.Errorf("fsconfig FSCONFIG_CMD_CREATE (overlay): %w%s", err, kernelLog(fd))
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, rootfs, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", rootfs, err)
	}
	return nil
}

func optString() string {
	var s []string
	for _, o := range safeOptions {
		s = append(s, o[0]+"="+o[1])
	}
	return strings.Join(s, ",")
}

// kernelLog reads the messages the kernel left on an fs context fd ("e overlay: …").
func kernelLog(fd int) string {
	var msgs []string
	buf := make([]byte, 1024)
	for range 8 {
		n, err := unix.Read(fd, buf)
		if err != nil || n <= 0 {
			break
		}
		msgs = append(msgs, strings.TrimSpace(string(buf[:n])))
	}
	if len(msgs) == 0 {
		return ""
	}
	return " (kernel: " + strings.Join(msgs, "; ") + ")"
}

// onThreadIn runs f on a locked OS thread whose cwd is dir. The cwd is changed only after
// unshare(CLONE_FS) detaches the thread from the rest of the process; the thread is never
// unlocked, so Go discards it afterwards.
func onThreadIn(dir string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(dir); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// initLayer is what Docker's <id>-init layer holds: the mount points the runtime mounts on
// and the files it bind-mounts over, so they exist whatever the image has, and /etc/mtab.
var initLayer = struct{ dirs, files []string }{
	dirs:  []string{"dev", "dev/pts", "dev/shm", "dev/mqueue", "proc", "sys", "etc"},
	files: []string{"dev/console", "etc/hosts", "etc/hostname", "etc/resolv.conf"},
}

// writeInitLayer fills dir (the container's init/ dir, a lower between the image and the
// upper dir) with the init layer.
func writeInitLayer(dir string) error {
	trace.Step("init layer: mount points and placeholder files between the image and the container's upper dir",
		"mkdir -p "+trace.Quote(dir)+"/{dev/pts,dev/shm,dev/mqueue,proc,sys,etc} && touch "+trace.Quote(dir)+"/{dev/console,etc/hosts,etc/hostname,etc/resolv.conf} && ln -s /proc/mounts "+trace.Quote(dir)+"/etc/mtab")
	for _, d := range initLayer.dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for _, f := range initLayer.files {
		fh, err := os.OpenFile(filepath.Join(dir, f), os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		fh.Close()
	}
	mtab := filepath.Join(dir, "etc", "mtab")
	os.Remove(mtab)
	return os.Symlink("/proc/mounts", mtab)
}
