package runtime

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/trace"
)

// mountCgroups gives the container a view of its own cgroups at dest, the way Docker does.
// On a unified (v2) host that is a cgroup2 mount (see mountCgroup2). On cgroup v1 (no
// cgroup namespace there): a tmpfs with, for each hierarchy, a read-only bind of the
// container's cgroup dir, then the tmpfs itself made read-only.
func mountCgroups(rootfs, dest string, flags uintptr, opts []string, cgroupNS bool) error {
	if cgroup.DetectMode() == cgroup.Unified {
		return mountCgroup2(rootfs, dest, flags, opts, cgroupNS)
	}
	equivalent := mountCmd("tmpfs", "tmpfs", dest, append(opts, "mode=755"))
	if err := mountAt(rootfs, dest, "tmpfs", "tmpfs", flags&^unix.MS_RDONLY, nil, "mode=755", equivalent); err != nil {
		return err
	}
	hs, err := cgroup.Hierarchies()
	if err != nil {
		return err
	}
	own := ownCgroups()
	for _, h := range hs {
		key := ""
		if !h.V2 {
			ctrls := append([]string(nil), h.Controllers...)
			sort.Strings(ctrls)
			key = strings.Join(ctrls, ",")
		}
		path, ok := own[key]
		if !ok {
			continue
		}
		src := filepath.Join(h.Mount, path)
		dir := filepath.Join(dest, filepath.Base(h.Mount))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		eq := "mount --bind -o ro " + src + " " + dir
		if err := mountAt(rootfs, dir, src, "", unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, nil, "", eq); err != nil {
			return err
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		return unix.Mount("", dest, "", unix.MS_REMOUNT|flags, "mode=755")
	}
	return nil
}

// mountCgroup2 mounts the container's own cgroup2 directory at dest (on a unified host, or
// when config.json asks for type cgroup2). In a cgroup namespace
// (already unshared inside the container's cgroup) a fresh cgroup2 mount is rooted at that
// cgroup; without one a fresh mount would show the host's whole tree, so, as runc does,
// bind the container's own cgroup dir instead (still of type cgroup2 in mountinfo).
func mountCgroup2(rootfs, dest string, flags uintptr, opts []string, cgroupNS bool) error {
	if cgroupNS {
		trace.Step("mount cgroup2, rooted at the container's cgroup by its cgroup namespace")
		return mountAt(rootfs, dest, "cgroup2", "cgroup2", flags, nil, "", mountCmd("cgroup2", "cgroup2", dest, opts))
	}
	hs, err := cgroup.Hierarchies()
	if err != nil {
		return err
	}
	path, ok := ownCgroups()[""]
	for _, h := range hs {
		if h.V2 && ok {
			src := filepath.Join(h.Mount, path)
			trace.Step("cgroup2 without a cgroup namespace: bind the container's own cgroup dir, so the host's tree stays hidden")
			bopts := append([]string{"rbind"}, opts...)
			return mountAt(rootfs, dest, src, "", flags|unix.MS_BIND|unix.MS_REC, nil, "", mountCmd("", src, dest, bopts))
		}
	}
	return fmt.Errorf("mount cgroup2 on %s: no cgroup2 hierarchy holds this process", strings.TrimPrefix(dest, rootfs))
}

// ownCgroups maps each hierarchy (its sorted controller list, "" for cgroup2) to this
// process's cgroup in it, from /proc/self/cgroup.
func ownCgroups() map[string]string {
	m := map[string]string{}
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return m
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		ctrls := strings.Split(parts[1], ",")
		sort.Strings(ctrls)
		m[strings.Join(ctrls, ",")] = parts[2]
	}
	return m
}
