package overlay

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/bundle"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/layout"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Options describe the container to make.
type Options struct {
	ID       string
	Hostname string   // default: the id
	Cmd      []string // replaces the image's Cmd when given
	Tty      bool
}

// Create makes the container's bundle: upper/ and work/ dirs, the merged overlay mount on
// rootfs/, hostname, hosts, resolv.conf and config.json. It returns the bundle dir. On a
// bundle that already exists for the same image it only makes sure rootfs is mounted.
func Create(im *layout.Image, o Options) (string, error) {
	if err := state.ValidID(o.ID); err != nil {
		return "", cli.Hint(err, "")
	}
	layers, err := Layers(im)
	if err != nil {
		return "", err
	}
	if len(layers) == 0 {
		return "", fmt.Errorf("image %s has no layers", im.Handle())
	}
	dir := state.ContainerDir(o.ID)
	cfgPath := filepath.Join(dir, "config.json")
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
		// New (or half made by an interrupted run): build it; config.json comes last among
		// the files and records the image, so a re-run knows the bundle is ours.
		if err := os.MkdirAll(state.ContainersDir(), 0o711); err != nil {
			return "", err
		}
		if err := os.Mkdir(dir, 0o710); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", err
		}
		for _, d := range []string{"upper", "work", "rootfs"} {
			if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return "", err
			}
		}
		host := o.Hostname
		if host == "" {
			host = o.ID
		}
		if err := bundle.WriteEtc(dir, host); err != nil {
			return "", err
		}
		spec, err := bundle.Spec(dir, im.Config.Config, bundle.Options{
			ID: o.ID, Hostname: host, Image: im.Handle(), Cmd: o.Cmd, Tty: o.Tty,
		})
		if err != nil {
			return "", err
		}
		sb, err := json.MarshalIndent(spec, "", "  ")
		if err != nil {
			return "", err
		}
		trace.Step("write the OCI runtime spec (process, mounts, namespaces, capabilities)", "cat > "+trace.Quote(cfgPath)+" <<EOF …")
		if err := fsutil.WriteFileAtomic(cfgPath, append(sb, '\n'), 0o644); err != nil {
			return "", err
		}
	default:
		return "", err
	}

	rootfs := filepath.Join(dir, "rootfs")
	mounted, err := IsMounted(rootfs)
	if err != nil {
		return "", err
	}
	if mounted {
		trace.Stepf("%s is already mounted", rootfs)
		return dir, nil
	}
	if err := mountOverlay(layers, dir, rootfs); err != nil {
		return "", err
	}
	return dir, nil
}

// mountOverlay mounts the layers (top first as lowerdir) under dir's upper and work on
// rootfs. The lowerdirs are the relative l/<SHORT> links, resolved from the overlay store's
// dir: that is why the mount happens with that dir as cwd, on a thread of its own.
func mountOverlay(layers []Layer, dir, rootfs string) error {
	lowers := make([]string, len(layers))
	for i, l := range layers {
		lowers[len(layers)-1-i] = "l/" + l.Link
	}
	data := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s,index=off",
		strings.Join(lowers, ":"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	home := state.OverlayDir()
	trace.Step(fmt.Sprintf("mount the merged root (%d layer(s), top first)", len(layers)),
		"cd "+trace.Quote(home)+" && "+trace.Cmd("mount", "-t", "overlay", "overlay", "-o", data, rootfs))
	errc := make(chan error, 1)
	go func() {
		// The thread's cwd is changed only after unshare(CLONE_FS) detaches it from the rest
		// of the process; the thread is never unlocked, so Go discards it afterwards.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("unshare(CLONE_FS): %w", err)
			return
		}
		if err := unix.Chdir(home); err != nil {
			errc <- err
			return
		}
		errc <- unix.Mount("overlay", rootfs, "overlay", 0, data)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("mount -t overlay on %s: %w", rootfs, err)
	}
	return nil
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
	dir := state.ContainerDir(id)
	rootfs := filepath.Join(dir, "rootfs")
	lk, err := lockContainers()
	if err != nil {
		return err
	}
	defer lk.Unlock()
	for range 8 { // a rootfs can be mounted more than once (stacked)
		mounted, err := IsMounted(rootfs)
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
	if mounted, err := IsMounted(rootfs); err != nil || mounted {
		return fmt.Errorf("%s is still mounted: not removing %s", rootfs, dir)
	}
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	trace.Step("remove the container's dir (upper layer, bundle)", trace.Cmd("rm", "-rf", dir))
	return os.RemoveAll(dir)
}
