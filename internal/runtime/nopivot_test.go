package runtime_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/testutil"
)

// --no-pivot switches the root with MS_MOVE + chroot, and first detaches the host's proc and
// sysfs mounts that would stay reachable below the chroot.
func TestNoPivot(t *testing.T) {
	_, b := bundleRunning(t, "echo $$; ls /; cat /etc/hostname")
	before := mountCount(t)
	cmd := exec.Command(testutil.Bin(t, "nsrun"), "--trace", "--no-pivot", b)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("nsrun --no-pivot: %v, stderr %s", err, errb.String())
	}
	lines := strings.Fields(out.String())
	if len(lines) < 3 || lines[0] != "1" || !strings.Contains(out.String(), "bin\ndev\netc\n") {
		t.Errorf("container output %q: want PID 1 and the rootfs as /", out.String())
	}
	tr := errb.String()
	for _, want := range []string{"umount -l /proc", "mount --move . /", "chroot ."} {
		if !strings.Contains(tr, want) {
			t.Errorf("--trace does not narrate %q:\n%s", want, tr)
		}
	}
	if strings.Contains(tr, "pivot_root . .") {
		t.Errorf("--no-pivot still used pivot_root")
	}
	if after := mountCount(t); after != before {
		t.Errorf("host mount table changed: %d lines before, %d after", before, after)
	}
	if _, err := os.Stat("/proc/self"); err != nil {
		t.Errorf("the host's /proc is gone: %v", err)
	}
}
