// Package bundle writes what turns a mounted rootfs into an OCI bundle: config.json (the
// OCI runtime spec, built from the image config the way Docker builds it) and the
// container's own hostname, hosts and resolv.conf, which are bind-mounted over /etc.
package bundle

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/cgroup/cgmode"
	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// Annotations overlay writes into config.json, so later stages (and a re-run) know what the
// bundle was made from.
const (
	AnnotationImage = "hardway.image"
	AnnotationID    = "hardway.id"
)

// DefaultPath is the PATH a container gets when its image sets none (Docker's).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options are the container-specific inputs of the spec.
type Options struct {
	ID       string
	Hostname string   // default: ID
	Image    string   // the image handle, recorded as an annotation
	Cmd      []string // replaces the image's Cmd when given (docker run IMAGE CMD…)
	Tty      bool
	// Rootfs is the mounted merged root, where a named User is looked up ("" : numeric
	// users only).
	Rootfs string
	// docker run -e, -w, -u, -v: they override the image's config.
	Env        []string // K=V, or K alone: K's value in the caller's environment (dropped if unset)
	WorkingDir string   // absolute; default: the image's WorkingDir, else /
	User       string   // uid[:gid] or name[:group] (looked up in Rootfs); default: the image's User
	Volumes    []string // HOST:CTR[:ro|:rw] bind mounts; HOST must exist
}

// DefaultCaps is Docker's default capability set (moby oci/caps/defaults.go).
var DefaultCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

var maskedPaths = []string{
	"/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
	"/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
	"/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap",
}

var readonlyPaths = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}

// cgroupMount is /sys/fs/cgroup as Docker mounts it: cgroup2 on a v2 host; on v1 the runtime
// turns type cgroup into a tmpfs holding the container's own cgroup of each hierarchy.
func cgroupMount(v2 bool) specs.Mount {
	if v2 {
		return specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup2", Source: "cgroup2", Options: []string{"ro", "nosuid", "noexec", "nodev"}}
	}
	return specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}}
}

// Spec builds the runtime spec of a container whose bundle is dir.
func Spec(dir string, img ocispec.ImageConfig, o Options) (*specs.Spec, error) {
	host := o.Hostname
	if host == "" {
		host = o.ID
	}
	args := append([]string{}, img.Entrypoint...)
	if len(o.Cmd) > 0 {
		args = append(args, o.Cmd...)
	} else {
		args = append(args, img.Cmd...)
	}
	if len(args) == 0 {
		return nil, cli.Errorf("give one after --: overlay --id "+o.ID+" IMAGE -- CMD…", "the image has no Entrypoint or Cmd and no command was given")
	}
	binds, err := Binds(o.Volumes)
	if err != nil {
		return nil, err
	}
	if o.WorkingDir != "" && !filepath.IsAbs(o.WorkingDir) {
		return nil, cli.Errorf("give an absolute path, like --workdir /tmp", "working dir %q is not absolute", o.WorkingDir)
	}
	u := img.User
	if o.User != "" {
		u = o.User
	}
	user, home, err := ResolveUser(o.Rootfs, u)
	var he *cli.HintError
	if err != nil && o.User != "" && errors.As(err, &he) {
		// The name came from --user, not the image: point there.
		he.Hint = "give --user as uid[:gid], or a name in the image's /etc/passwd and /etc/group"
	}
	if err != nil {
		return nil, err
	}

	cwd := img.WorkingDir
	if o.WorkingDir != "" {
		cwd = filepath.Clean(o.WorkingDir)
	}
	if cwd == "" {
		cwd = "/"
	}
	caps := append([]string{}, DefaultCaps...)
	v2 := cgmode.Detect() == cgmode.Unified
	s := &specs.Spec{
		Version:  specs.Version,
		Hostname: host,
		Root:     &specs.Root{Path: "rootfs"},
		Process: &specs.Process{
			Terminal: o.Tty,
			User:     user,
			Args:     args,
			Env:      withEnv(env(img.Env, host, home, o.Tty), o.Env),
			Cwd:      cwd,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: caps, Effective: caps, Permitted: caps,
			},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1024, Soft: 1024}},
			NoNewPrivileges: false,
		},
		Mounts: []specs.Mount{
			{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
			{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
			{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
			cgroupMount(v2),
			{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
			{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(dir, "resolv.conf"), Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(dir, "hostname"), Options: []string{"rbind", "rprivate"}},
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(dir, "hosts"), Options: []string{"rbind", "rprivate"}},
		},
		Annotations: map[string]string{AnnotationImage: o.Image, AnnotationID: o.ID},
		Linux: &specs.Linux{
			CgroupsPath: state.CgroupPath(o.ID),
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace}, {Type: specs.IPCNamespace}, {Type: specs.UTSNamespace},
				{Type: specs.MountNamespace}, {Type: specs.NetworkNamespace},
			},
			Resources: &specs.LinuxResources{
				// Docker denies every device, then the runtime allows its defaults.
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
			},
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
		},
	}
	s.Mounts = append(s.Mounts, binds...)
	if v2 {
		// On a cgroup v2 host Docker gives each container its own cgroup namespace, so the
		// cgroup2 mount at /sys/fs/cgroup shows the container's cgroup as the root.
		s.Linux.Namespaces = append(s.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	}
	return s, nil
}

// env is the image's environment with PATH guaranteed, HOSTNAME and HOME set and TERM for a tty.
func env(img []string, host, home string, tty bool) []string {
	out := []string{"HOSTNAME=" + host}
	hasPath, hasHome := false, false
	for _, e := range img {
		k, _, _ := strings.Cut(e, "=")
		switch k {
		case "PATH":
			hasPath = true
		case "HOSTNAME":
			continue
		case "HOME":
			hasHome = true
		}
		out = append(out, e)
	}
	if !hasPath {
		out = append(out, "PATH="+DefaultPath)
	}
	// HOME from the user's passwd entry, as runc and Docker set it.
	if !hasHome && home != "" {
		out = append(out, "HOME="+home)
	}
	if tty {
		out = append(out, "TERM=xterm")
	}
	return out
}

// withEnv adds docker run -e entries to env, replacing a variable of the same name. K alone
// takes K's value from the caller's environment and is dropped when the caller has none, as
// docker run -e K does.
func withEnv(env, extra []string) []string {
	for _, e := range extra {
		k, _, hasValue := strings.Cut(e, "=")
		if !hasValue {
			v, ok := os.LookupEnv(k)
			if !ok {
				continue
			}
			e = k + "=" + v
		}
		out := env[:0:0]
		for _, old := range env {
			if ok, _, _ := strings.Cut(old, "="); ok != k {
				out = append(out, old)
			}
		}
		env = append(out, e)
	}
	return env
}

// Binds turns docker run -v HOST:CTR[:ro|:rw] into bind mounts for config.json. HOST must be
// an existing absolute path (docker would create a missing one; a typo should not make a
// dir on the host). CTR is absolute and not /. The runtime makes the mount point inside the
// rootfs without following the image's symlinks out of it.
func Binds(vols []string) ([]specs.Mount, error) {
	var out []specs.Mount
	for _, v := range vols {
		hint := "use HOST:CTR[:ro] with absolute paths, like --volume /srv/data:/data:ro"
		f := strings.Split(v, ":")
		if len(f) < 2 || len(f) > 3 || f[0] == "" || f[1] == "" {
			return nil, cli.Errorf(hint, "volume %q is not HOST:CTR[:ro]", v)
		}
		host, ctr := f[0], f[1]
		opts := []string{"rbind", "rprivate"}
		if len(f) == 3 {
			switch f[2] {
			case "ro":
				opts = append(opts, "ro")
			case "rw":
			default:
				return nil, cli.Errorf(hint, "volume %q: mode %q is not ro or rw", v, f[2])
			}
		}
		if !filepath.IsAbs(host) || !filepath.IsAbs(ctr) {
			return nil, cli.Errorf(hint, "volume %q: both paths must be absolute", v)
		}
		if filepath.Clean(ctr) == "/" {
			return nil, cli.Errorf(hint, "volume %q: cannot mount over the container's /", v)
		}
		if _, err := os.Stat(host); err != nil {
			return nil, cli.Errorf("create it first, or fix the path", "volume %q: host path %s does not exist", v, host)
		}
		trace.Stepf("bind-mount host %s on the container's %s%s", host, ctr, map[bool]string{true: " read-only"}[len(opts) == 3])
		out = append(out, specs.Mount{Destination: filepath.Clean(ctr), Type: "bind", Source: filepath.Clean(host), Options: opts})
	}
	return out, nil
}

// HostResolvConf is the host file resolv.conf is made from (a variable so tests can point
// it elsewhere).
var HostResolvConf = "/etc/resolv.conf"

// WriteEtc writes the container's hostname, hosts and resolv.conf into dir; volatile skips
// the fsyncs (a container that is not meant to outlive a crash).
func WriteEtc(dir, hostname string, volatile bool) error {
	write := fsutil.WriteFileAtomic
	if volatile {
		write = fsutil.WriteFileAtomicNoSync
	}
	hosts := "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n" +
		"127.0.1.1\t" + hostname + "\n"
	host, _ := os.ReadFile(HostResolvConf)
	files := []struct{ name, body string }{
		{"hostname", hostname + "\n"},
		{"hosts", hosts},
		{"resolv.conf", ResolvConf(host)},
	}
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		trace.Step("write the container's /etc/"+f.name, "cat > "+trace.Quote(p)+" <<EOF …")
		if err := write(p, []byte(f.body), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// ResolvConf derives the container's resolv.conf from the host's: nameservers on
// 127.0.0.0/8 (a local stub resolver) mean nothing inside the container's own network
// namespace, so they are dropped, as Docker does.
func ResolvConf(host []byte) string {
	var b bytes.Buffer
	ns := 0
	sc := bufio.NewScanner(bytes.NewReader(host))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "nameserver" {
			if strings.HasPrefix(f[1], "127.") || f[1] == "::1" {
				continue
			}
			ns++
		}
		b.WriteString(line + "\n")
	}
	if ns == 0 {
		b.WriteString("# no usable nameserver on the host (only local ones, which the container cannot reach)\n")
	}
	return b.String()
}
