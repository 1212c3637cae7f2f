// Package mountinfo reads /proc/PID/mountinfo, the kernel's own list of a mount namespace's
// mounts, for the stages that need to know what is mounted (overlay, cgroup discovery,
// inspect). One parser, so the octal escapes and optional fields are handled once.
package mountinfo

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is one line of mountinfo.
type Mount struct {
	ID, Parent   int
	Root         string // the dir of the filesystem that is mounted (a bind shows its source dir)
	Point        string // where it is mounted
	Options      string // per-mount options (rw, nosuid, …)
	Optional     string // propagation fields: shared:N, master:N, … (space-separated)
	FSType       string
	Source       string
	SuperOptions string // per-superblock options (lowerdir=…, mode=…)
}

// Read returns the mounts of pid's mount namespace as pid sees them (pid 0: this process).
func Read(pid int) ([]Mount, error) {
	p := "/proc/self/mountinfo"
	if pid > 0 {
		p = fmt.Sprintf("/proc/%d/mountinfo", pid)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var ms []Mount
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if m, ok := Parse(sc.Text()); ok {
			ms = append(ms, m)
		}
	}
	return ms, sc.Err()
}

// Parse reads one mountinfo line:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func Parse(line string) (Mount, bool) {
	f := strings.Fields(line)
	sep := -1
	for i := 6; i < len(f); i++ {
		if f[i] == "-" {
			sep = i
			break
		}
	}
	if sep < 0 || len(f) < sep+3 {
		return Mount{}, false
	}
	m := Mount{
		Root: Unescape(f[3]), Point: Unescape(f[4]), Options: f[5],
		Optional: strings.Join(f[6:sep], " "),
		FSType:   f[sep+1], Source: Unescape(f[sep+2]),
	}
	if len(f) > sep+3 {
		m.SuperOptions = f[sep+3]
	}
	m.ID, _ = strconv.Atoi(f[0])
	m.Parent, _ = strconv.Atoi(f[1])
	return m, true
}

// Mounted reports whether something is mounted on dir in this process's namespace.
func Mounted(dir string) (bool, error) {
	dir = filepath.Clean(dir)
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	ms, err := Read(0)
	if err != nil {
		return false, err
	}
	for _, m := range ms {
		if m.Point == dir {
			return true, nil
		}
	}
	return false, nil
}

// Unescape undoes the kernel's octal escapes in mountinfo (\040 for a space, \072 for ':').
func Unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
