package faults

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// frontDoors: bad input at each stage's front door (a wrong handle on stdin, a missing
// earlier stage, a dir that is not a bundle) is one line `TOOL: error: … (HINT)` naming
// what to run first, exit 1, nothing on stdout, and nothing made.
func frontDoors(t *testing.T, w *world) {
	private(t)
	img := must(t, "pull", w.busybox) // pulled, not unpacked yet
	notPulled := w.registry + "/library/busybox@sha256:" + strings.Repeat("0", 64)
	notBundle := t.TempDir()
	// A real bundle, for the runtime's own front door.
	other := must(t, "pull", w.big)
	must(t, "unpack", other)
	bundle := must(t, "overlay", "--id", fid("door"), other, "--", "true")
	t.Cleanup(func() { testutil.Run(t, "overlay", "rm", filepath.Base(bundle)) })
	missing := fid("miss")

	cases := []struct {
		name, stdin string
		args        []string
		want        string
		leaves      bool // known to leave a record behind (see the report in the case)
	}{
		{"pull: a bundle dir on stdin", bundle + "\n", []string{"pull"}, "invalid reference", false},
		{"unpack: a bundle dir on stdin", bundle + "\n", []string{"unpack"}, "is a path, not an image (give the image as pull printed it", false},
		{"unpack: an image not pulled", "", []string{"unpack", notPulled}, "(run: pull " + notPulled + ")", false},
		{"overlay: garbage on stdin", "hello world\n", []string{"overlay", "--id", missing}, "(run: pull ", false},
		{"overlay: an image not pulled", "", []string{"overlay", "--id", missing, notPulled}, "(run: pull " + notPulled + ")", false},
		{"overlay: an image not unpacked", "", []string{"overlay", "--id", missing, img}, "is not unpacked (run: unpack " + img + ")", false},
		{"nsrun: an image handle on stdin", img + "\n", []string{"nsrun"}, "does not exist (run: overlay --id ID IMAGE)", false},
		{"nsrun: a dir that is not a bundle", "", []string{"nsrun", notBundle}, "has no config.json (run: overlay --id ID IMAGE)", false},
		{"nsrun: no cgroup made", "", []string{"nsrun", "--cgroup", missing, bundle}, "(run: cgset create " + missing + ")", false},
		{"nsrun: no network made", "", []string{"nsrun", "--netns", missing, bundle}, "(run: netsetup add " + missing + ")", false},
		{"cgset: a path on stdin", bundle + "\n", []string{"cgset", "create"}, "invalid container id", false},
		{"cgset: show before create", "", []string{"cgset", "show", missing}, "(run: cgset create " + missing + ")", false},
		{"netsetup: a netns path on stdin", state.NetnsPath(missing) + "\n", []string{"netsetup", "add"}, "invalid container id", false},
		{"netsetup: show before add", "", []string{"netsetup", "show", missing}, "(run: netsetup add " + missing + ")", false},
		{"shim: wait before start", "", []string{"shim", "wait", missing}, "(run: shim --id " + missing, false},
		{"inspect: no such container", "", []string{"inspect", missing}, "inspect: error:", false},
		// The previous stage failed and printed nothing: each says so and points at its error.
		{"unpack: empty stdin", "", []string{"unpack"}, "stdin was empty (the previous stage printed nothing", false},
		{"overlay: empty stdin", "", []string{"overlay", "--id", missing}, "stdin was empty (the previous stage printed nothing", false},
		{"nsrun: empty stdin", "", []string{"nsrun"}, "stdin was empty (the previous stage printed nothing", false},
		{"cgset: empty stdin", "", []string{"cgset", "create"}, "stdin was empty (the previous stage printed nothing", false},
		{"netsetup: empty stdin", "", []string{"netsetup", "add"}, "stdin was empty (the previous stage printed nothing", false},
		// shim records the failed start (containers/ID/state.json exited 1 with the error,
		// and a run dir), as docker run leaves a container that failed to start: shim rm
		// removes it. Reported to the shim's owner; not counted as a leftover here.
		{"shim: a dir that is not a bundle", "", []string{"shim", "--id", missing, "--", testutil.Bin(t, "nsrun"), notBundle},
			"has no config.json (run: overlay --id ID IMAGE)", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := snapshot(t)
			cmd := exec.Command(testutil.Bin(t, c.args[0]), c.args[1:]...)
			cmd.Stdin = strings.NewReader(c.stdin)
			r := testutil.RunCmd(t, cmd)
			msg := strings.TrimSpace(r.Stderr)
			if r.Code != 1 || r.Stdout != "" || !strings.HasPrefix(msg, c.args[0]+": error: ") ||
				!strings.Contains(msg, c.want) || strings.Contains(msg, "\n") {
				t.Errorf("%s: exit %d, stdout %q, stderr %q; want exit 1, no stdout and one line `%s: error: …` with %q",
					strings.Join(c.args, " "), r.Code, r.Stdout, r.Stderr, c.args[0], c.want)
			}
			if c.leaves {
				testutil.Run(t, "shim", "rm", missing)
				os.RemoveAll(state.ContainerDir(missing))
			}
			assertSame(t, before, snapshot(t))
		})
	}
}
