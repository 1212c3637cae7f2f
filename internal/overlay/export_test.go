package overlay

import (
	"testing"

	"golang.org/x/sys/unix"
)

// ForceLegacyMount makes mounts use mount(2) with one option string, as on kernels
// without lowerdir+, so both paths are tested here.
func ForceLegacyMount(on bool) { forceLegacy = on }

// FailNewMountAPI makes the n-th fsconfig call setting key ("create": FSCONFIG_CMD_CREATE)
// fail with errno, as Debian 12's Linux 6.1 fails lowerdir+, and forgets what the process
// learnt about lowerdir+ before and after the test. The count is how often it fired.
func FailNewMountAPI(t testing.TB, key string, n int, errno error) *int {
	fired, seen := new(int), 0
	noLowerdirPlus.Store(false)
	fsconfigSetString = func(fd int, k, v string) error {
		if k == key {
			if seen++; seen == n {
				*fired++
				return errno
			}
		}
		return unix.FsconfigSetString(fd, k, v)
	}
	fsconfigCreate = func(fd int) error {
		if key == "create" {
			if seen++; seen == n {
				*fired++
				return errno
			}
		}
		return unix.FsconfigCreate(fd)
	}
	t.Cleanup(func() {
		fsconfigSetString, fsconfigCreate = unix.FsconfigSetString, unix.FsconfigCreate
		noLowerdirPlus.Store(false)
	})
	return fired
}
