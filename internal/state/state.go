// Package state knows where everything lives: the state root laid out like Docker's
// /var/lib/docker, the run dir, and the names a learner meets in the kernel. Every tool
// asks here instead of building paths itself, so HARDWAY_ROOT and HARDWAY_RUN move all of
// it at once (the tests give each run its own).
package state

import (
	"fmt"
	"os"
	"path/filepath"
)

// Root is the persistent state root ($HARDWAY_ROOT, default /var/lib/hardway).
func Root() string { return envOr("HARDWAY_ROOT", "/var/lib/hardway") }

// RunRoot is the volatile run dir ($HARDWAY_RUN, default /run/hardway).
func RunRoot() string { return envOr("HARDWAY_RUN", "/run/hardway") }

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		if abs, err := filepath.Abs(v); err == nil {
			return abs
		}
		return v
	}
	return def
}

// OCIDir is the OCI image layout shared by all pulled images.
func OCIDir() string { return filepath.Join(Root(), "oci") }

// OverlayDir holds one dir per extracted layer, keyed by chain id, and the l/ short links.
func OverlayDir() string { return filepath.Join(Root(), "overlay") }

// ContainersDir holds one dir per container.
func ContainersDir() string { return filepath.Join(Root(), "containers") }

// ContainerDir is the container's bundle dir (config.json, rootfs, upper, work, …).
func ContainerDir(id string) string { return filepath.Join(ContainersDir(), id) }

// StateFile is the container's state record, written by shim.
func StateFile(id string) string { return filepath.Join(ContainerDir(id), "state.json") }

// LogFile is the container's json-file log, written by shim.
func LogFile(id string) string { return filepath.Join(ContainerDir(id), "log.json") }

// RunDir holds the container's sockets and pid files.
func RunDir(id string) string { return filepath.Join(RunRoot(), id) }

// NetnsDir is where named network namespaces are pinned, the same place `ip netns` uses.
func NetnsDir() string { return envOr("HARDWAY_NETNS_DIR", "/run/netns") }

// NetnsPath is the pinned network namespace of a container.
func NetnsPath(id string) string { return filepath.Join(NetnsDir(), id) }

// CgroupParent is the cgroup under which every container's cgroup is made, in each
// hierarchy ($HARDWAY_CGROUP_PARENT, default "hardway").
func CgroupParent() string {
	if v := os.Getenv("HARDWAY_CGROUP_PARENT"); v != "" {
		return v
	}
	return "hardway"
}

// CgroupPath is the container's cgroup path as the kernel names it in /proc/PID/cgroup and
// as config.json's linux.cgroupsPath holds it: /hardway/ID.
func CgroupPath(id string) string { return "/" + filepath.Join(CgroupParent(), id) }

// ValidID checks a container id: it becomes a directory, a netns name, a cgroup and part of
// an interface name, so it is kept to a safe alphabet: ^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$.
// Checked by hand: that regexp, compiled at package init, cost every hardway process
// (twice per nsrun start) 1.5 ms and 850 allocations.
func ValidID(id string) error {
	ok := len(id) >= 1 && len(id) <= 63
	for i := 0; ok && i < len(id); i++ {
		c := id[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		ok = alnum || i > 0 && (c == '_' || c == '.' || c == '-')
	}
	if !ok {
		return fmt.Errorf("invalid container id %q (use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit)", id)
	}
	return nil
}

// LockDir holds the lock files that serialise writers of shared state (the OCI index, the
// layer store). They live outside oci/ so the layout stays exactly what skopeo writes.
func LockDir() string { return filepath.Join(Root(), "locks") }

// IPAMDir holds one file per allocated container address. It lives in the run dir because
// the addresses die with the network namespaces at reboot.
func IPAMDir() string { return filepath.Join(RunRoot(), "ipam") }
