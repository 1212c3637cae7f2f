package runtime

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"unsafe"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

var capNames = map[string]uintptr{
	"CAP_CHOWN": unix.CAP_CHOWN, "CAP_DAC_OVERRIDE": unix.CAP_DAC_OVERRIDE,
	"CAP_DAC_READ_SEARCH": unix.CAP_DAC_READ_SEARCH, "CAP_FOWNER": unix.CAP_FOWNER,
	"CAP_FSETID": unix.CAP_FSETID, "CAP_KILL": unix.CAP_KILL, "CAP_SETGID": unix.CAP_SETGID,
	"CAP_SETUID": unix.CAP_SETUID, "CAP_SETPCAP": unix.CAP_SETPCAP,
	"CAP_LINUX_IMMUTABLE": unix.CAP_LINUX_IMMUTABLE, "CAP_NET_BIND_SERVICE": unix.CAP_NET_BIND_SERVICE,
	"CAP_NET_BROADCAST": unix.CAP_NET_BROADCAST, "CAP_NET_ADMIN": unix.CAP_NET_ADMIN,
	"CAP_NET_RAW": unix.CAP_NET_RAW, "CAP_IPC_LOCK": unix.CAP_IPC_LOCK, "CAP_IPC_OWNER": unix.CAP_IPC_OWNER,
	"CAP_SYS_MODULE": unix.CAP_SYS_MODULE, "CAP_SYS_RAWIO": unix.CAP_SYS_RAWIO,
	"CAP_SYS_CHROOT": unix.CAP_SYS_CHROOT, "CAP_SYS_PTRACE": unix.CAP_SYS_PTRACE,
	"CAP_SYS_PACCT": unix.CAP_SYS_PACCT, "CAP_SYS_ADMIN": unix.CAP_SYS_ADMIN,
	"CAP_SYS_BOOT": unix.CAP_SYS_BOOT, "CAP_SYS_NICE": unix.CAP_SYS_NICE,
	"CAP_SYS_RESOURCE": unix.CAP_SYS_RESOURCE, "CAP_SYS_TIME": unix.CAP_SYS_TIME,
	"CAP_SYS_TTY_CONFIG": unix.CAP_SYS_TTY_CONFIG, "CAP_MKNOD": unix.CAP_MKNOD,
	"CAP_LEASE": unix.CAP_LEASE, "CAP_AUDIT_WRITE": unix.CAP_AUDIT_WRITE,
	"CAP_AUDIT_CONTROL": unix.CAP_AUDIT_CONTROL, "CAP_SETFCAP": unix.CAP_SETFCAP,
	"CAP_MAC_OVERRIDE": unix.CAP_MAC_OVERRIDE, "CAP_MAC_ADMIN": unix.CAP_MAC_ADMIN,
	"CAP_SYSLOG": unix.CAP_SYSLOG, "CAP_WAKE_ALARM": unix.CAP_WAKE_ALARM,
	"CAP_BLOCK_SUSPEND": unix.CAP_BLOCK_SUSPEND, "CAP_AUDIT_READ": unix.CAP_AUDIT_READ,
	"CAP_PERFMON": unix.CAP_PERFMON, "CAP_BPF": unix.CAP_BPF,
	"CAP_CHECKPOINT_RESTORE": unix.CAP_CHECKPOINT_RESTORE,
}

// capSet is a capability set as the kernel takes it: 64 bits in two 32-bit words.
type capSet uint64

func parseCaps(names []string) (capSet, error) {
	var s capSet
	for _, n := range names {
		c, ok := capNames[strings.ToUpper(n)]
		if !ok {
			return 0, fmt.Errorf("unknown capability %q in config.json", n)
		}
		s |= 1 << c
	}
	return s, nil
}

func lastCap() uintptr {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return uintptr(n)
		}
	}
	return unix.CAP_LAST_CAP
}

// credentials applies process.user, process.capabilities and noNewPrivileges, in the
// order runc uses: drop the bounding set while we still may, switch user keeping the
// permitted set, then set the sets the process execs with. denied says the user
// namespace's setgroups is "deny".
func (p *prog) credentials(proc *specs.Process, denied bool) error {
	last := lastCap() // read once: it is a /proc file
	var caps *specs.LinuxCapabilities = proc.Capabilities
	var bounding, effective, permitted, inheritable, ambient capSet
	if caps != nil {
		var err error
		for _, x := range []struct {
			dst   *capSet
			names []string
		}{{&bounding, caps.Bounding}, {&effective, caps.Effective}, {&permitted, caps.Permitted},
			{&inheritable, caps.Inheritable}, {&ambient, caps.Ambient}} {
			if *x.dst, err = parseCaps(x.names); err != nil {
				return err
			}
		}
		p.narrate(fmt.Sprintf("keep %d capabilities in the bounding set, drop the rest", len(caps.Bounding)),
			"capsh --drop=… (prctl PR_CAPBSET_DROP for each capability not listed)")
		for c := uintptr(0); c <= last; c++ {
			if bounding&(1<<c) == 0 {
				p.failing("drop capability %d from the bounding set", c)
				p.sys(unix.SYS_PRCTL, unix.PR_CAPBSET_DROP, c)
			}
		}
	}

	u := proc.User
	if caps != nil && u.UID != 0 {
		// Keep the permitted set across setuid; capset below re-raises the effective set.
		p.failing("keep capabilities across setuid")
		p.sys(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, 1)
	}
	if u.UID != 0 || u.GID != 0 || len(u.AdditionalGids) > 0 {
		p.narrate(fmt.Sprintf("become uid %d gid %d", u.UID, u.GID), fmt.Sprintf("setpriv --reuid=%d --regid=%d --init-groups", u.UID, u.GID))
	}
	// In a user namespace whose setgroups is "deny", dropping groups is impossible and moot:
	// the kernel ignores supplementary groups there that no gid_map line maps.
	if len(u.AdditionalGids) > 0 || !denied {
		p.failing("setgroups")
		if len(u.AdditionalGids) == 0 {
			p.sys(unix.SYS_SETGROUPS, 0, 0)
		} else {
			gids := unsafe.Slice((*byte)(unsafe.Pointer(&append([]uint32(nil), u.AdditionalGids...)[0])), 4*len(u.AdditionalGids))
			p.sys(unix.SYS_SETGROUPS, uintptr(len(u.AdditionalGids)), p.ptr(gids))
		}
	}
	// On this thread only: it is the thread that execs (for the joiner, the others end
	// with the execve).
	p.failing("setgid %d", u.GID)
	p.sys(unix.SYS_SETRESGID, uintptr(u.GID), uintptr(u.GID), uintptr(u.GID))
	p.failing("setuid %d", u.UID)
	p.sys(unix.SYS_SETRESUID, uintptr(u.UID), uintptr(u.UID), uintptr(u.UID))
	p.pdeathsig()

	if caps != nil {
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		data := [2]unix.CapUserData{
			{Effective: uint32(effective), Permitted: uint32(permitted), Inheritable: uint32(inheritable)},
			{Effective: uint32(effective >> 32), Permitted: uint32(permitted >> 32), Inheritable: uint32(inheritable >> 32)},
		}
		hb := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&hdr)), unsafe.Sizeof(hdr))...)
		db := append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(&data)), unsafe.Sizeof(data))...)
		p.failing("capset")
		p.sys(unix.SYS_CAPSET, p.ptr(hb), p.ptr(db))
		p.failing("clear ambient capabilities")
		p.sys(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
		// The kernel raises an ambient capability only if it is permitted and inheritable;
		// like runc, skip the others rather than fail.
		ambient &= permitted & inheritable
		for c := uintptr(0); c <= last; c++ {
			if ambient&(1<<c) != 0 {
				p.failing("raise ambient capability %d", c)
				p.sys(unix.SYS_PRCTL, unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_RAISE, c, 0, 0)
			}
		}
	}
	if proc.NoNewPrivileges {
		p.narrate("forbid gaining privileges through setuid binaries", "setpriv --no-new-privs")
		p.failing("no_new_privs")
		p.sys(unix.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	return nil
}

// setgroupsDenied says this process's user namespace denies setgroups.
func setgroupsDenied() bool {
	b, err := os.ReadFile("/proc/self/setgroups")
	return err == nil && strings.TrimSpace(string(b)) == "deny"
}
