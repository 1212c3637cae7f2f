package inspect

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/mountinfo"
	"github.com/hardway/hardway/internal/state"
)

// Mount groups, in the order a person reads a container's mounts.
const (
	GroupRoot     = "root filesystem"
	GroupVirtual  = "virtual filesystems"
	GroupCgroup   = "cgroup mounts"
	GroupMasked   = "masked paths"
	GroupReadonly = "read-only paths"
	GroupBind     = "bind mounts (files and dirs from the host)"
	GroupOther    = "other"
)

// Groups is the reading order of the mount groups.
var Groups = []string{GroupRoot, GroupVirtual, GroupCgroup, GroupMasked, GroupReadonly, GroupBind, GroupOther}

// Mount is one line of /proc/PID/mountinfo, with the group it belongs to and a note on it.
type Mount struct {
	ID           int      `json:"id"`
	Parent       int      `json:"parent"`
	Point        string   `json:"target"`
	Root         string   `json:"root"`
	FSType       string   `json:"fstype"`
	Source       string   `json:"source"`
	Options      string   `json:"options"`
	SuperOptions string   `json:"superOptions"`
	Group        string   `json:"group,omitempty"`
	Note         string   `json:"note,omitempty"`
	Lower        []string `json:"lowerdir,omitempty"`
	Upper        string   `json:"upperdir,omitempty"`
	Work         string   `json:"workdir,omitempty"`
}

// Mounts reads /proc/PID/mountinfo.
func Mounts(pid int) ([]Mount, error) {
	raw, err := mountinfo.Read(pid)
	if err != nil {
		return nil, err
	}
	ms := make([]Mount, 0, len(raw))
	for _, m := range raw {
		ms = append(ms, Mount{ID: m.ID, Parent: m.Parent, Point: m.Point, Root: m.Root,
			Options: m.Options, FSType: m.FSType, Source: m.Source, SuperOptions: m.SuperOptions})
	}
	return ms, nil
}

var virtualFS = map[string]bool{"proc": true, "sysfs": true, "tmpfs": true, "devpts": true,
	"mqueue": true, "devtmpfs": true, "securityfs": true,
	"debugfs": true, "tracefs": true, "pstore": true, "bpf": true, "hugetlbfs": true,
	"configfs": true, "fusectl": true, "binfmt_misc": true, "autofs": true, "nsfs": true}

func hasOpt(opts, o string) bool { return slices.Contains(strings.Split(opts, ","), o) }

// bundleSpec is the container's config.json, which names its masked and read-only paths.
func bundleSpec(id string) *specs.Spec {
	if id == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(state.ContainerDir(id), "config.json"))
	if err != nil {
		return nil
	}
	var s specs.Spec
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	return &s
}

// annotate puts each mount in its group. The masked and read-only paths are those the
// bundle names; for a bare process they are recognised by how runtimes make them: /dev/null
// bound over a file or an empty read-only tmpfs over a dir (masked), a read-only bind of a
// piece of /proc or /sys onto itself (read-only).
func annotate(ms []Mount, spec *specs.Spec) {
	var masked, readonly []string
	if spec != nil && spec.Linux != nil {
		masked, readonly = spec.Linux.MaskedPaths, spec.Linux.ReadonlyPaths
	}
	for i := range ms {
		m := &ms[i]
		ro := hasOpt(m.Options, "ro")
		pseudo := strings.HasPrefix(m.Point, "/proc/") || strings.HasPrefix(m.Point, "/sys/")
		nullBind := strings.HasSuffix(m.Root, "/null") && (m.FSType == "tmpfs" || m.FSType == "devtmpfs") && m.Point != "/dev/null"
		switch {
		case m.Point == "/":
			m.Group = GroupRoot
			if m.FSType == "overlay" {
				m.Note = "the image's layers (lowerdir, top first) under the container's own upperdir"
				for _, o := range strings.Split(m.SuperOptions, ",") {
					k, v, _ := strings.Cut(o, "=")
					switch k {
					case "lowerdir":
						m.Lower = append(m.Lower, strings.Split(v, ":")...)
					case "lowerdir+": // one layer per option, as the kernel's fsconfig API shows them
						m.Lower = append(m.Lower, v)
					case "upperdir":
						m.Upper = v
					case "workdir":
						m.Work = v
					}
				}
			}
		case slices.Contains(masked, m.Point) || (spec == nil && pseudo && (nullBind || (m.FSType == "tmpfs" && ro && m.Root == "/"))):
			m.Group = GroupMasked
			if nullBind {
				m.Note = "masked: /dev/null bound over it, reads are empty"
			} else {
				m.Note = "masked: an empty read-only tmpfs over it"
			}
		case slices.Contains(readonly, m.Point) || (spec == nil && pseudo && ro && m.Root != "/" && (m.FSType == "proc" || m.FSType == "sysfs")):
			m.Group = GroupReadonly
			m.Note = "read-only: bound onto itself and remounted ro"
		case m.FSType == "cgroup" || m.FSType == "cgroup2" || (m.Point == "/sys/fs/cgroup" && m.FSType == "tmpfs"):
			m.Group = GroupCgroup
		case m.Root != "/":
			m.Group = GroupBind
			if strings.HasPrefix(m.Point, "/etc/") {
				m.Note = "a config file the runtime writes on the host and binds in"
			}
		case virtualFS[m.FSType]:
			m.Group = GroupVirtual
		default:
			m.Group = GroupOther
		}
	}
}
