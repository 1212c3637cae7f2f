package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/bundle"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Options describe the container to make.
type Options struct {
	ID       string
	Hostname string   // default: the id
	Cmd      []string // replaces the image's Cmd when given
	Tty      bool
	// UserXattr mounts the layers unpack --userxattr made (user.overlay.* xattrs) with the
	// userxattr option, the form an overlay mounted in a user namespace reads.
	UserXattr bool
	// Volatile is for a throwaway container (docker-run --rm): overlayfs' volatile option,
	// so nothing syncs its upper dir, and its bundle files written without fsync. It is
	// not meant to survive a crash of the machine (podman run --rm does the same).
	Volatile bool
	// docker run -e, -w, -u, -v, passed to bundle.Options as they are.
	Env        []string
	WorkingDir string
	User       string
	Volumes    []string
}

// AnnotationUserXattr in config.json records that the bundle's overlay is mounted with
// userxattr over the user.-form layers, so a re-run mounts it the same way.
const AnnotationUserXattr = "org.hardway.overlay.userxattr"

// AnnotationVolatile records that the bundle's overlay is mounted with volatile, so a
// re-run mounts it the same way.
const AnnotationVolatile = "org.hardway.overlay.volatile"

// Create makes the container's bundle: upper/, work/ and init/ (Docker's <id>-init layer)
// dirs, the merged overlay mount on rootfs/, hostname, hosts, resolv.conf and config.json
// (a named image User is looked up in the merged root's /etc/passwd and /etc/group). It returns the bundle dir. On a
// bundle that already exists for the same image it only makes sure rootfs is mounted.
func Create(im *layout.Image, o Options) (string, error) {
	if err := state.ValidID(o.ID); err != nil {
		return "", cli.Hint(err, "")
	}
	dir := state.ContainerDir(o.ID)
	cfgPath := filepath.Join(dir, "config.json")
	// A bundle keeps the xattr form it was made with (its upper dir is in that form) and
	// its volatility, so a re-run mounts it the same way with or without the flags.
	if b, err := os.ReadFile(cfgPath); err == nil {
		var prev specs.Spec
		if json.Unmarshal(b, &prev) == nil {
			o.UserXattr = prev.Annotations[AnnotationUserXattr] == "true"
			o.Volatile = prev.Annotations[AnnotationVolatile] == "true"
		}
	}
	layers, err := LayersFor(im, o.UserXattr)
	if err != nil {
		return "", err
	}
	if len(layers) == 0 {
		return "", fmt.Errorf("image %s has no layers", im.Handle())
	}
	lk, err := lockContainers()
	if err != nil {
		return "", err
	}
	defer lk.Unlock()

	b, err := os.ReadFile(cfgPath)
	switch {
	case err == nil:
		var s specs.Spec
		if err := json.Unmarshal(b, &s); err != nil {
			return "", fmt.Errorf("%s: %w", cfgPath, err)
		}
		if got := s.Annotations[bundle.AnnotationImage]; got != im.Handle() {
			return "", cli.Errorf("run: overlay rm "+o.ID+", or pick another --id",
				"container %s already exists with image %s", o.ID, got)
		}

	case errors.Is(err, fs.ErrNotExist):
		// New (or half made by an interrupted run): build it. config.json comes last and
		// records the image, so a re-run knows the bundle is ours; a failure before it
		// takes everything down again.
		if err := build(im, o, layers, dir); err != nil {
			if rerr := remove(o.ID); rerr != nil {
				return "", fmt.Errorf("%w (and cleaning up: %v)", err, rerr)
			}
			return "", err
		}
		return dir, nil
	default:
		return "", err
	}
	return dir, ensureMounted(layers, dir, o.Volatile)
}

// build makes a new bundle in dir: upper, work, init layer, the mount, the etc files and,
// last, config.json.
func build(im *layout.Image, o Options, layers []Layer, dir string) error {
	if err := os.MkdirAll(state.ContainersDir(), 0o711); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o710); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	for _, d := range []string{"upper", "work", "rootfs", "init"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	}
	if err := writeInitLayer(filepath.Join(dir, "init")); err != nil {
		return err
	}
	// A run killed after a volatile mount, before config.json, left the kernel's marker;
	// nothing of the container has run yet, so a re-run with or without --volatile mounts.
	if err := clearVolatileMarker(filepath.Join(dir, "work")); err != nil {
		return err
	}
	if err := ensureMounted(layers, dir, o.Volatile); err != nil {
		return err
	}
	host := o.Hostname
	if host == "" {
		host = o.ID
	}
	if err := bundle.WriteEtc(dir, host, o.Volatile); err != nil {
		return err
	}
	spec, err := bundle.Spec(dir, im.Config.Config, bundle.Options{
		ID: o.ID, Hostname: host, Image: im.Handle(), Cmd: o.Cmd, Tty: o.Tty,
		Rootfs: filepath.Join(dir, "rootfs"),
		Env:    o.Env, WorkingDir: o.WorkingDir, User: o.User, Volumes: o.Volumes,
	})
	if err != nil {
		return err
	}
	if o.UserXattr {
		spec.Annotations[AnnotationUserXattr] = "true"
	}
	write := fsutil.WriteFileAtomic
	if o.Volatile {
		spec.Annotations[AnnotationVolatile] = "true"
		write = fsutil.WriteFileAtomicNoSync
	}
	sb, err := json.MarshalIndent(spec, "", "  ")
	if err != nil {
		return err
	}
	cfgPath := filepath.Join(dir, "config.json")
	trace.Step("write the OCI runtime spec (process, mounts, namespaces, capabilities)", "cat > "+trace.Quote(cfgPath)+" <<EOF …")
	return write(cfgPath, append(sb, '\n'), 0o644)
}

// ensureMounted mounts the merged root on dir/rootfs unless it already is: the container's
// init layer over the image's layers (top first), under dir/upper.
func ensureMounted(layers []Layer, dir string, volatile bool) error {
	rootfs := filepath.Join(dir, "rootfs")
	mounted, err := mountinfo.Mounted(rootfs)
	if err != nil {
		return err
	}
	if mounted {
		trace.Stepf("%s is already mounted", rootfs)
		return nil
	}
	initDir := filepath.Join(dir, "init")
	if _, err := os.Stat(initDir); errors.Is(err, fs.ErrNotExist) {
		// A bundle made before the init layer existed: give it one.
		if err := os.Mkdir(initDir, 0o755); err != nil {
			return err
		}
		if err := writeInitLayer(initDir); err != nil {
			return err
		}
	}
	lowers := []string{initDir}
	for i := len(layers) - 1; i >= 0; i-- {
		lowers = append(lowers, "l/"+layers[i].Link)
	}
	work := filepath.Join(dir, "work")
	if volatile {
		// A volatile container accepts that its upper dir may be torn by a crash (it is
		// thrown away), so the kernel's marker goes.
		if err := clearVolatileMarker(work); err != nil {
			return err
		}
	}
	return mountOverlay(lowers, filepath.Join(dir, "upper"), work, rootfs, mountFlags{userXattr: layers[0].UserXattr, volatile: volatile})
}

// clearVolatileMarker removes work/work/incompat/volatile, which a volatile mount leaves
// behind and over which the kernel refuses any later mount ("overlay with incompat feature
// 'volatile' cannot be mounted"), in case the machine crashed and the upper dir is torn.
func clearVolatileMarker(work string) error {
	marker := filepath.Join(work, "work", "incompat", "volatile")
	if _, err := os.Lstat(marker); err != nil {
		return nil
	}
	trace.Step("remove the marker an earlier volatile mount left (the kernel refuses to mount over it)", trace.Cmd("rm", "-rf", marker))
	return os.RemoveAll(marker)
}

// lockContainers serialises making and removing bundles, so two runs for one id never
// mount twice.
func lockContainers() (*fsutil.Lock, error) {
	return fsutil.LockFile(filepath.Join(state.LockDir(), "containers.lock"))
}

// Remove unmounts the container's rootfs and removes its dir. A container already gone is
// not an error.
func Remove(id string) error {
	if err := state.ValidID(id); err != nil {
		return err
	}
	lk, err := lockContainers()
	if err != nil {
		return err
	}
	defer lk.Unlock()
	return remove(id)
}

// remove is Remove under the containers lock.
func remove(id string) error {
	dir := state.ContainerDir(id)
	rootfs := filepath.Join(dir, "rootfs")
	for range 8 { // a rootfs can be mounted more than once (stacked)
		mounted, err := mountinfo.Mounted(rootfs)
		if err != nil {
			return err
		}
		if !mounted {
			break
		}
		trace.Step("unmount the container's root", trace.Cmd("umount", rootfs))
		err = unix.Unmount(rootfs, 0)
		if err == unix.EBUSY {
			trace.Step("rootfs is busy: detach it now, the kernel frees it when the last user goes", trace.Cmd("umount", "-l", rootfs))
			err = unix.Unmount(rootfs, unix.MNT_DETACH)
		}
		if err != nil && err != unix.EINVAL {
			return fmt.Errorf("umount %s: %w", rootfs, err)
		}
	}
	if mounted, err := mountinfo.Mounted(rootfs); err != nil || mounted {
		return fmt.Errorf("%s is still mounted: not removing %s", rootfs, dir)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	trace.Step("remove the container's dir (upper layer, bundle)", trace.Cmd("rm", "-rf", dir))
	return os.RemoveAll(dir)
}
