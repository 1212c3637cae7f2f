package runtime

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
)

// mountCgroups gives the container a view of its own cgroups at dest, the way Docker does
// on cgroup v1 (no cgroup namespace there): a tmpfs with, for each hierarchy, a read-only
// bind of the container's cgroup dir, then the tmpfs itself made read-only.
func mountCgroups(rootfs, dest string, flags uintptr, equivalent string) error {
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
