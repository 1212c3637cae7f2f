package runtime

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cgroup"
	"github.com/hardway/hardway/internal/trace"
)

// intoCgroupDir is the cgroup2 dir a child can be cloned straight into (CLONE_INTO_CGROUP,
// Linux 5.7): only on a unified host, where that one dir is the whole membership. On v1 and
// hybrid hosts the v1 hierarchies need a join anyway, so the child joins them all before
// it execs, as before. "" when there is no such dir (the join then reports why).
func intoCgroupDir(id string) string {
	if id == "" || cgroup.DetectMode() != cgroup.Unified {
		return ""
	}
	dirs, err := cgroup.Dirs(id)
	if err != nil || len(dirs) != 1 {
		return ""
	}
	return dirs[0]
}

// v2CgroupOf is the cgroup2 dir pid is in on a unified host, "" elsewhere.
func v2CgroupOf(pid int) string {
	if cgroup.DetectMode() != cgroup.Unified {
		return ""
	}
	hs, err := cgroup.Hierarchies()
	if err != nil || len(hs) != 1 || !hs[0].V2 {
		return ""
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	for _, l := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(l, "0::"); ok && p != "/" {
			return filepath.Join(hs[0].Mount, p)
		}
	}
	return ""
}

// startIntoCgroup starts cmd (with start: cmd.Start) with clone3(CLONE_INTO_CGROUP) so the child exists in dir from
// its first instruction: nothing it does, not even the Go runtime's start, is accounted
// to nsrun's cgroup, and no window exists in which it runs outside its limits. Where the
// kernel lacks clone3 or the flag (ENOSYS, E2BIG: older than 5.7), it starts cmd's twin
// without it; the returned command's SysProcAttr.UseCgroupFD says which way it went, and
// when false the caller joins the cgroup before letting the child go on.
func startIntoCgroup(cmd *exec.Cmd, dir string, start func(*exec.Cmd) error) (*exec.Cmd, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		trace.Step(fmt.Sprintf("cannot open %s (%v): start, then join the cgroup", dir, err))
		return cmd, start(cmd)
	}
	defer unix.Close(fd)
	twin := *cmd.SysProcAttr
	cmd.SysProcAttr.UseCgroupFD, cmd.SysProcAttr.CgroupFD = true, fd
	trace.Step("born in the cgroup: clone3 with CLONE_INTO_CGROUP "+dir, "(no shell equivalent: the child never runs outside it)")
	err = start(cmd)
	if err == nil || !(errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.E2BIG)) {
		return cmd, err
	}
	trace.Step(fmt.Sprintf("clone3 CLONE_INTO_CGROUP failed (%v: kernel older than 5.7): start as before and join the cgroup before the child goes on", errors.Unwrap(err)))
	// A Cmd starts once, even after a failed Start: run its twin.
	again := &exec.Cmd{Path: cmd.Path, Args: cmd.Args, Env: cmd.Env, Dir: cmd.Dir,
		Stdin: cmd.Stdin, Stdout: cmd.Stdout, Stderr: cmd.Stderr, ExtraFiles: cmd.ExtraFiles, SysProcAttr: &twin}
	return again, start(again)
}
