package cgroup

import "github.com/hardway/hardway/internal/cgroup/cgmode"

// Mode is how the host mounts cgroups (see package cgmode).
type Mode = cgmode.Mode

// The three ways a host mounts cgroups.
const (
	Legacy  = cgmode.Legacy
	Hybrid  = cgmode.Hybrid
	Unified = cgmode.Unified
)

// cgroupRoot is where the host mounts its cgroups.
const cgroupRoot = cgmode.Root

// v2Root is $HARDWAY_CGROUP_ROOT when it names a cgroup2 mount (see cgmode.V2Root).
func v2Root() string { return cgmode.V2Root() }

// DetectMode looks at the filesystem types under /sys/fs/cgroup, as runc does.
func DetectMode() Mode { return cgmode.Detect() }
