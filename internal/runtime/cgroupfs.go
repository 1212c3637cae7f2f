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
	"github.com/hardway/hardway/internal/state"
)

// cgroupView is what the compiler knows of the container's cgroups: the hierarchies, and
// the container's path in each (by sorted controller list, "" for cgroup2).
type cgroupView struct {
	unified bool
	hs      []cgroup.Hierarchy
	own     map[string]string
}

// containerCgroups is the cgroups the init will be in: those of cgroup id where it exists
// (nsrun joins them), nsrun's own elsewhere.
func containerCgroups(id string) (*cgroupView, error) {
	hs, err := cgroup.Hierarchies()
	if err != nil {
		return nil, err
	}
	v := &cgroupView{unified: cgroup.DetectMode() == cgroup.Unified, hs: hs, own: ownCgroups()}
	if id == "" {
		return v, nil
	}
	for _, h := range hs {
		rel := "/" + state.CgroupPath(id)
		if st, err := os.Stat(filepath.Join(h.Mount, rel)); err == nil && st.IsDir() {
			v.own[hierarchyKey(h)] = rel
		}
	}
	return v, nil
}

func hierarchyKey(h cgroup.Hierarchy) string {
	if h.V2 {
		return ""
	}
	ctrls := append([]string(nil), h.Controllers...)
	sort.Strings(ctrls)
	return strings.Join(ctrls, ",")
}

// cgroups gives the container a view of its own cgroups at rel, the way Docker does. On a
// unified (v2) host that is a cgroup2 mount (see cgroup2). On cgroup v1: a tmpfs with, for
// each hierarchy, a read-only bind of the container's cgroup dir, then the tmpfs itself
// made read-only.
func (p *prog) cgroups(rel string, flags uintptr, opts []string, cgroupNS bool, cg *cgroupView) error {
	if cg.unified {
		return p.cgroup2(rel, flags, opts, cgroupNS, cg)
	}
	dest := filepath.Join(p.root, rel)
	p.mountAt(rel, "tmpfs", "tmpfs", flags&^unix.MS_RDONLY, nil, "mode=755", mountCmd("tmpfs", "tmpfs", dest, append(opts, "mode=755")), resolve)
	for _, h := range cg.hs {
		path, ok := cg.own[hierarchyKey(h)]
		if !ok {
			continue
		}
		src := filepath.Join(h.Mount, path)
		dir := filepath.Join(rel, filepath.Base(h.Mount))
		p.failing("mount point %s", dir)
		p.mkdirInRoot(dir, false)
		p.mountAt(dir, src, "", unix.MS_BIND|unix.MS_REC|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, nil, "",
			"mount --bind -o ro "+src+" "+filepath.Join(p.root, dir), resolve)
	}
	if flags&unix.MS_RDONLY != 0 {
		p.failing("open mount point %s", rel)
		p.openInRoot(rel, unix.O_PATH, resolve, p.fdTarget)
		p.failing("remount %s read-only", rel)
		p.sys(unix.SYS_MOUNT, p.empty, p.procFd(p.fdTarget), p.empty, unix.MS_REMOUNT|flags, p.str("mode=755"))
	}
	return nil
}

// cgroup2 mounts the container's own cgroup2 directory at rel (on a unified host, or when
// config.json asks for type cgroup2). In a cgroup namespace (unshared inside the
// container's cgroup) a fresh cgroup2 mount is rooted at that cgroup; without one a fresh
// mount would show the host's whole tree, so, as runc does, bind the container's own
// cgroup dir instead (still of type cgroup2 in mountinfo).
func (p *prog) cgroup2(rel string, flags uintptr, opts []string, cgroupNS bool, cg *cgroupView) error {
	dest := filepath.Join(p.root, rel)
	if cgroupNS {
		p.narrate("mount cgroup2, rooted at the container's cgroup by its cgroup namespace")
		p.mountAt(rel, "cgroup2", "cgroup2", flags, nil, "", mountCmd("cgroup2", "cgroup2", dest, opts), resolve)
		return nil
	}
	path, ok := cg.own[""]
	for _, h := range cg.hs {
		if h.V2 && ok {
			src := filepath.Join(h.Mount, path)
			p.narrate("cgroup2 without a cgroup namespace: bind the container's own cgroup dir, so the host's tree stays hidden")
			bopts := append([]string{"rbind"}, opts...)
			p.mountAt(rel, src, "", flags|unix.MS_BIND|unix.MS_REC, nil, "", mountCmd("", src, dest, bopts), resolve)
			return nil
		}
	}
	return fmt.Errorf("mount cgroup2 on %s: no cgroup2 hierarchy holds this process", rel)
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
