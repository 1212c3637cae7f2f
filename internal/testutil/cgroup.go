package testutil

import (
	"os"
	"path/filepath"
	"testing"
)

// CgroupParent gives the test its own cgroup parent (HARDWAY_CGROUP_PARENT), so neither
// the test nor a runtime it drives (runc makes the cgroupsPath of the bundle) touches a
// learner's hardway/ cgroups, and removes that parent from every hierarchy afterwards.
func CgroupParent(t testing.TB) string {
	t.Helper()
	parent := ID("hardway-test-")
	t.Setenv("HARDWAY_CGROUP_PARENT", parent)
	t.Cleanup(func() {
		// The hierarchies are /sys/fs/cgroup itself (v2) or its subdirs (v1, hybrid).
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", parent))
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", parent))
		for _, d := range dirs {
			if _, err := os.Stat(d); err == nil {
				if err := os.Remove(d); err != nil {
					t.Errorf("cgroup parent %s is left: %v", d, err)
				}
			}
		}
	})
	return parent
}
