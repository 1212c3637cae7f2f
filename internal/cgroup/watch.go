package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/trace"
)

// Watch blocks while the container's cgroup lives and calls onOOM with the running count
// each time the kernel's OOM killer kills in it (once at the start if it already has). It returns once the cgroup has held a
// process and is empty again, or is removed; started on an empty cgroup it first waits for
// the first process, so a supervisor can start watching before it starts the container.
//
// The kernel wakes it: on v2 inotify on memory.events and cgroup.events (as runc and
// conmon do), on v1 an eventfd registered for memory.oom_control in cgroup.event_control.
// v1 has no "populated" event, so emptiness is also polled every 100ms.
func Watch(id string, onOOM func(kills uint64)) error {
	if err := mustExist(id); err != nil {
		return err
	}
	var (
		fds      []int
		drain    = map[int]bool{} // eventfds need reading; inotify fds too
		populate func() bool
	)
	defer func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}()
	if _, ok := pick().(v2); ok {
		d := pick().(v2).dir(id)
		in, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return err
		}
		fds = append(fds, in)
		drain[in] = true
		for _, f := range []string{"cgroup.events", "memory.events"} {
			p := filepath.Join(d, f)
			if _, err := os.Stat(p); err != nil {
				continue
			}
			trace.Step("wait for changes of "+f, "inotifywait -m -e modify "+p)
			if _, err := unix.InotifyAddWatch(in, p, unix.IN_MODIFY|unix.IN_DELETE_SELF|unix.IN_IGNORED); err != nil {
				return fmt.Errorf("inotify %s: %w", p, err)
			}
		}
		populate = func() bool {
			v, err := readKey(filepath.Join(d, "cgroup.events"), "populated")
			return err == nil && v == 1
		}
	} else {
		if d := ctrlDir(id, "memory"); d != "" {
			efd, err := v1OOMEventfd(d)
			if err != nil {
				return err
			}
			fds = append(fds, efd)
			drain[efd] = true
		}
		populate = func() bool {
			dirs, _ := Dirs(id)
			return len(procsOf(dirs)) > 0
		}
	}
	gone := func() bool {
		dirs, _ := Dirs(id)
		return len(dirs) == 0
	}
	// Kills from before the watch began are reported at once: a supervisor that starts
	// watching late still learns its container was OOM-killed.
	var last uint64
	seen := false
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	}
	buf := make([]byte, 4096)
	for {
		if n, err := pick().oomKills(id); err == nil && n > last {
			last = n
			onOOM(n)
		}
		if populate() {
			seen = true
		} else if seen || gone() {
			return nil
		}
		if _, err := unix.Poll(pfds, 100); err != nil && !errors.Is(err, unix.EINTR) {
			return err
		}
		for i := range pfds {
			if pfds[i].Revents&unix.POLLIN != 0 && drain[fds[i]] {
				unix.Read(fds[i], buf)
			}
		}
	}
}

// v1OOMEventfd asks the v1 memory controller to signal an eventfd on each OOM in dir:
// "<eventfd> <fd of memory.oom_control>" written to cgroup.event_control.
func v1OOMEventfd(dir string) (int, error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return -1, err
	}
	oc := filepath.Join(dir, "memory.oom_control")
	ofd, err := unix.Open(oc, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(efd)
		return -1, err
	}
	defer unix.Close(ofd) // the kernel keeps its own reference once registered
	ctl := filepath.Join(dir, "cgroup.event_control")
	v := fmt.Sprintf("%d %d", efd, ofd)
	trace.Step("ask for an eventfd notification on each OOM",
		fmt.Sprintf("echo '%s' > %s   # eventfd, fd of %s", v, ctl, oc))
	if err := os.WriteFile(ctl, []byte(v), 0); err != nil {
		unix.Close(efd)
		return -1, fmt.Errorf("register OOM eventfd in %s: %w", ctl, err)
	}
	return efd, nil
}
