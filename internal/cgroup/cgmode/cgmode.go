// Package cgmode tells how the host mounts its cgroups (unified v2, hybrid, legacy v1). It
// stands apart from package cgroup so that the bundle writer can ask without pulling in the
// whole cgroup manager.
package cgmode

import (
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Mode is how the host mounts cgroups.
type Mode int

const (
	// Legacy: only v1 hierarchies, one per controller (or group of controllers).
	Legacy Mode = iota
	// Hybrid: v1 hierarchies for the controllers plus an empty cgroup2 at /sys/fs/cgroup/unified.
	Hybrid
	// Unified: one cgroup2 hierarchy at /sys/fs/cgroup holds every controller.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Unified:
		return "unified (cgroup v2)"
	case Hybrid:
		return "hybrid (v1 controllers, empty cgroup2 at /sys/fs/cgroup/unified)"
	}
	return "legacy (cgroup v1)"
}

// Root is where the host mounts its cgroups.
const Root = "/sys/fs/cgroup"

// V2Root is $HARDWAY_CGROUP_ROOT when it names a cgroup2 mount: cgset then uses the v2
// backend there and nowhere else. Tests use it to drive the v2 code on a hybrid host's
// /sys/fs/cgroup/unified; a lab can point it at any cgroup2 mount.
func V2Root() string {
	r := os.Getenv("HARDWAY_CGROUP_ROOT")
	var st unix.Statfs_t
	if r == "" || unix.Statfs(r, &st) != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
		return ""
	}
	return filepath.Clean(r)
}

// Detect looks at the filesystem types under /sys/fs/cgroup, as runc does
// ($HARDWAY_CGROUP_ROOT on a cgroup2 mount counts as unified).
func Detect() Mode {
	if V2Root() != "" {
		return Unified
	}
	var st unix.Statfs_t
	if unix.Statfs(Root, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Unified
	}
	if unix.Statfs(Root+"/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return Hybrid
	}
	return Legacy
}
