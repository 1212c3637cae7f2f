package runtime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// decodeSpec decodes config.json into a specs.Spec, leaving out what nsrun never reads:
// linux.resources (cgset applies it) and the other operating systems' sections.
//
// Why not json.Unmarshal into a specs.Spec: the first time encoding/json meets a struct
// type it builds that type's field table and an encoder for every type the struct can
// hold, recursively, even to decode, and runs its reflection-driven decoder: about 2 ms
// of a cold start in the VM this was measured in, paid twice per container (nsrun and
// its init each decode the file). Decoding into generic values (numbers kept as text)
// and copying them into the spec by hand takes 0.3 ms. The fields only checked for
// presence (hooks, process.scheduler/ioPriority/execCPUAffinity, linux.intelRdt,
// personality, memoryPolicy, netDevices, timeOffsets) go through json.Unmarshal when
// present. Keys match as encoding/json matches them (exact, else case-insensitively),
// and what it refuses is refused: TestDecodeSpecMatchesUnmarshal compares the two.
func decodeSpec(b []byte) (*specs.Spec, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if rest := bytes.TrimSpace(b[dec.InputOffset():]); len(rest) > 0 {
		return nil, fmt.Errorf("invalid character %q after the top-level value", rest[0])
	}
	d := &specDecoder{}
	s := d.spec(v)
	if d.err != nil {
		return nil, d.err
	}
	return s, nil
}

// specDecoder copies generic JSON values into spec types, keeping the first error.
type specDecoder struct{ err error }

func (d *specDecoder) spec(v any) *specs.Spec {
	o := d.object(v, "config.json")
	s := &specs.Spec{}
	if o == nil {
		return s
	}
	s.Version = d.str(field(o, "ociVersion"), "ociVersion")
	if p := d.object(field(o, "process"), "process"); p != nil {
		s.Process = d.process(p)
	}
	if r := d.object(field(o, "root"), "root"); r != nil {
		s.Root = &specs.Root{Path: d.str(field(r, "path"), "root.path"), Readonly: d.boolean(field(r, "readonly"), "root.readonly")}
	}
	s.Hostname = d.str(field(o, "hostname"), "hostname")
	s.Domainname = d.str(field(o, "domainname"), "domainname")
	if ms := d.array(field(o, "mounts"), "mounts"); ms != nil {
		s.Mounts = make([]specs.Mount, len(ms))
		for i, m := range ms {
			s.Mounts[i] = d.mount(m, "mounts["+strconv.Itoa(i)+"]")
		}
	}
	d.lazy(field(o, "hooks"), "hooks", &s.Hooks)
	s.Annotations = d.strMap(field(o, "annotations"), "annotations")
	if l := d.object(field(o, "linux"), "linux"); l != nil {
		s.Linux = d.linux(l)
	}
	return s
}

func (d *specDecoder) process(o map[string]any) *specs.Process {
	p := &specs.Process{
		Terminal:        d.boolean(field(o, "terminal"), "process.terminal"),
		Args:            d.strs(field(o, "args"), "process.args"),
		CommandLine:     d.str(field(o, "commandLine"), "process.commandLine"),
		Env:             d.strs(field(o, "env"), "process.env"),
		Cwd:             d.str(field(o, "cwd"), "process.cwd"),
		NoNewPrivileges: d.boolean(field(o, "noNewPrivileges"), "process.noNewPrivileges"),
		ApparmorProfile: d.str(field(o, "apparmorProfile"), "process.apparmorProfile"),
		SelinuxLabel:    d.str(field(o, "selinuxLabel"), "process.selinuxLabel"),
	}
	if b := d.object(field(o, "consoleSize"), "process.consoleSize"); b != nil {
		p.ConsoleSize = &specs.Box{Height: uint(d.uint(field(b, "height"), "process.consoleSize.height", 64)),
			Width: uint(d.uint(field(b, "width"), "process.consoleSize.width", 64))}
	}
	if u := d.object(field(o, "user"), "process.user"); u != nil {
		p.User.UID = uint32(d.uint(field(u, "uid"), "process.user.uid", 32))
		p.User.GID = uint32(d.uint(field(u, "gid"), "process.user.gid", 32))
		if v := field(u, "umask"); v != nil {
			m := uint32(d.uint(v, "process.user.umask", 32))
			p.User.Umask = &m
		}
		if gs := d.array(field(u, "additionalGids"), "process.user.additionalGids"); gs != nil {
			p.User.AdditionalGids = make([]uint32, len(gs))
			for i, g := range gs {
				p.User.AdditionalGids[i] = uint32(d.uint(g, "process.user.additionalGids", 32))
			}
		}
		p.User.Username = d.str(field(u, "username"), "process.user.username")
	}
	if c := d.object(field(o, "capabilities"), "process.capabilities"); c != nil {
		p.Capabilities = &specs.LinuxCapabilities{
			Bounding:    d.strs(field(c, "bounding"), "process.capabilities.bounding"),
			Effective:   d.strs(field(c, "effective"), "process.capabilities.effective"),
			Inheritable: d.strs(field(c, "inheritable"), "process.capabilities.inheritable"),
			Permitted:   d.strs(field(c, "permitted"), "process.capabilities.permitted"),
			Ambient:     d.strs(field(c, "ambient"), "process.capabilities.ambient"),
		}
	}
	if rs := d.array(field(o, "rlimits"), "process.rlimits"); rs != nil {
		p.Rlimits = make([]specs.POSIXRlimit, len(rs))
		for i, r := range rs {
			path := "process.rlimits[" + strconv.Itoa(i) + "]"
			if ro := d.object(r, path); ro != nil {
				p.Rlimits[i] = specs.POSIXRlimit{Type: d.str(field(ro, "type"), path+".type"),
					Hard: d.uint(field(ro, "hard"), path+".hard", 64), Soft: d.uint(field(ro, "soft"), path+".soft", 64)}
			}
		}
	}
	if v := field(o, "oomScoreAdj"); v != nil {
		adj := int(d.int(v, "process.oomScoreAdj", 64))
		p.OOMScoreAdj = &adj
	}
	d.lazy(field(o, "scheduler"), "process.scheduler", &p.Scheduler)
	d.lazy(field(o, "ioPriority"), "process.ioPriority", &p.IOPriority)
	d.lazy(field(o, "execCPUAffinity"), "process.execCPUAffinity", &p.ExecCPUAffinity)
	return p
}

func (d *specDecoder) mount(v any, path string) specs.Mount {
	o := d.object(v, path)
	if o == nil {
		return specs.Mount{}
	}
	return specs.Mount{
		Destination: d.str(field(o, "destination"), path+".destination"),
		Type:        d.str(field(o, "type"), path+".type"),
		Source:      d.str(field(o, "source"), path+".source"),
		Options:     d.strs(field(o, "options"), path+".options"),
		UIDMappings: d.idMaps(field(o, "uidMappings"), path+".uidMappings"),
		GIDMappings: d.idMaps(field(o, "gidMappings"), path+".gidMappings"),
	}
}

func (d *specDecoder) linux(o map[string]any) *specs.Linux {
	l := &specs.Linux{
		UIDMappings:       d.idMaps(field(o, "uidMappings"), "linux.uidMappings"),
		GIDMappings:       d.idMaps(field(o, "gidMappings"), "linux.gidMappings"),
		Sysctl:            d.strMap(field(o, "sysctl"), "linux.sysctl"),
		CgroupsPath:       d.str(field(o, "cgroupsPath"), "linux.cgroupsPath"),
		RootfsPropagation: d.str(field(o, "rootfsPropagation"), "linux.rootfsPropagation"),
		MaskedPaths:       d.strs(field(o, "maskedPaths"), "linux.maskedPaths"),
		ReadonlyPaths:     d.strs(field(o, "readonlyPaths"), "linux.readonlyPaths"),
		MountLabel:        d.str(field(o, "mountLabel"), "linux.mountLabel"),
	}
	if ns := d.array(field(o, "namespaces"), "linux.namespaces"); ns != nil {
		l.Namespaces = make([]specs.LinuxNamespace, len(ns))
		for i, n := range ns {
			path := "linux.namespaces[" + strconv.Itoa(i) + "]"
			if no := d.object(n, path); no != nil {
				l.Namespaces[i] = specs.LinuxNamespace{Type: specs.LinuxNamespaceType(d.str(field(no, "type"), path+".type")),
					Path: d.str(field(no, "path"), path+".path")}
			}
		}
	}
	if ds := d.array(field(o, "devices"), "linux.devices"); ds != nil {
		l.Devices = make([]specs.LinuxDevice, len(ds))
		for i, dv := range ds {
			path := "linux.devices[" + strconv.Itoa(i) + "]"
			do := d.object(dv, path)
			if do == nil {
				continue
			}
			dev := &l.Devices[i]
			dev.Path = d.str(field(do, "path"), path+".path")
			dev.Type = d.str(field(do, "type"), path+".type")
			dev.Major = d.int(field(do, "major"), path+".major", 64)
			dev.Minor = d.int(field(do, "minor"), path+".minor", 64)
			if v := field(do, "fileMode"); v != nil {
				m := os.FileMode(d.uint(v, path+".fileMode", 32))
				dev.FileMode = &m
			}
			if v := field(do, "uid"); v != nil {
				id := uint32(d.uint(v, path+".uid", 32))
				dev.UID = &id
			}
			if v := field(do, "gid"); v != nil {
				id := uint32(d.uint(v, path+".gid", 32))
				dev.GID = &id
			}
		}
	}
	if so := d.object(field(o, "seccomp"), "linux.seccomp"); so != nil {
		l.Seccomp = d.seccomp(so)
	}
	d.lazy(field(o, "netDevices"), "linux.netDevices", &l.NetDevices)
	d.lazy(field(o, "intelRdt"), "linux.intelRdt", &l.IntelRdt)
	d.lazy(field(o, "memoryPolicy"), "linux.memoryPolicy", &l.MemoryPolicy)
	d.lazy(field(o, "personality"), "linux.personality", &l.Personality)
	d.lazy(field(o, "timeOffsets"), "linux.timeOffsets", &l.TimeOffsets)
	return l
}

func (d *specDecoder) seccomp(o map[string]any) *specs.LinuxSeccomp {
	s := &specs.LinuxSeccomp{
		DefaultAction:    specs.LinuxSeccompAction(d.str(field(o, "defaultAction"), "linux.seccomp.defaultAction")),
		DefaultErrnoRet:  d.uintPtr(field(o, "defaultErrnoRet"), "linux.seccomp.defaultErrnoRet"),
		ListenerPath:     d.str(field(o, "listenerPath"), "linux.seccomp.listenerPath"),
		ListenerMetadata: d.str(field(o, "listenerMetadata"), "linux.seccomp.listenerMetadata"),
	}
	if as := d.strs(field(o, "architectures"), "linux.seccomp.architectures"); as != nil {
		s.Architectures = make([]specs.Arch, len(as))
		for i, a := range as {
			s.Architectures[i] = specs.Arch(a)
		}
	}
	if fs := d.strs(field(o, "flags"), "linux.seccomp.flags"); fs != nil {
		s.Flags = make([]specs.LinuxSeccompFlag, len(fs))
		for i, f := range fs {
			s.Flags[i] = specs.LinuxSeccompFlag(f)
		}
	}
	if scs := d.array(field(o, "syscalls"), "linux.seccomp.syscalls"); scs != nil {
		s.Syscalls = make([]specs.LinuxSyscall, len(scs))
		for i, sc := range scs {
			path := "linux.seccomp.syscalls[" + strconv.Itoa(i) + "]"
			so := d.object(sc, path)
			if so == nil {
				continue
			}
			r := &s.Syscalls[i]
			r.Names = d.strs(field(so, "names"), path+".names")
			r.Action = specs.LinuxSeccompAction(d.str(field(so, "action"), path+".action"))
			r.ErrnoRet = d.uintPtr(field(so, "errnoRet"), path+".errnoRet")
			if as := d.array(field(so, "args"), path+".args"); as != nil {
				r.Args = make([]specs.LinuxSeccompArg, len(as))
				for j, a := range as {
					apath := path + ".args[" + strconv.Itoa(j) + "]"
					if ao := d.object(a, apath); ao != nil {
						r.Args[j] = specs.LinuxSeccompArg{
							Index:    uint(d.uint(field(ao, "index"), apath+".index", 64)),
							Value:    d.uint(field(ao, "value"), apath+".value", 64),
							ValueTwo: d.uint(field(ao, "valueTwo"), apath+".valueTwo", 64),
							Op:       specs.LinuxSeccompOperator(d.str(field(ao, "op"), apath+".op")),
						}
					}
				}
			}
		}
	}
	return s
}

func (d *specDecoder) idMaps(v any, path string) []specs.LinuxIDMapping {
	ms := d.array(v, path)
	if ms == nil {
		return nil
	}
	out := make([]specs.LinuxIDMapping, len(ms))
	for i, m := range ms {
		if o := d.object(m, path); o != nil {
			out[i] = specs.LinuxIDMapping{
				ContainerID: uint32(d.uint(field(o, "containerID"), path+".containerID", 32)),
				HostID:      uint32(d.uint(field(o, "hostID"), path+".hostID", 32)),
				Size:        uint32(d.uint(field(o, "size"), path+".size", 32)),
			}
		}
	}
	return out
}

// field is key's value in o: the exact key, else one equal under case folding, as
// encoding/json matches struct fields. nil when absent (or null).
func field(o map[string]any, key string) any {
	if v, ok := o[key]; ok {
		return v
	}
	for k, v := range o {
		if strings.EqualFold(k, key) {
			return v
		}
	}
	return nil
}

func (d *specDecoder) fail(path, want string, v any) {
	if d.err != nil {
		return
	}
	got := "null"
	switch v.(type) {
	case bool:
		got = "boolean"
	case json.Number:
		got = "number " + v.(json.Number).String()
	case string:
		got = "string"
	case []any:
		got = "array"
	case map[string]any:
		got = "object"
	}
	d.err = fmt.Errorf("%s: cannot unmarshal %s into %s", path, got, want)
}

// The converters below give the zero value for null or an absent key, as encoding/json
// leaves a field alone then.

func (d *specDecoder) object(v any, path string) map[string]any {
	o, ok := v.(map[string]any)
	if !ok && v != nil {
		d.fail(path, "an object", v)
	}
	return o
}

func (d *specDecoder) array(v any, path string) []any {
	a, ok := v.([]any)
	if !ok && v != nil {
		d.fail(path, "an array", v)
	}
	return a
}

func (d *specDecoder) str(v any, path string) string {
	s, ok := v.(string)
	if !ok && v != nil {
		d.fail(path, "a string", v)
	}
	return s
}

func (d *specDecoder) boolean(v any, path string) bool {
	b, ok := v.(bool)
	if !ok && v != nil {
		d.fail(path, "a boolean", v)
	}
	return b
}

func (d *specDecoder) uint(v any, path string, bits int) uint64 {
	if v == nil {
		return 0
	}
	n, ok := v.(json.Number)
	u, err := strconv.ParseUint(string(n), 10, bits)
	if !ok || err != nil {
		d.fail(path, "uint"+strconv.Itoa(bits), v)
	}
	return u
}

func (d *specDecoder) uintPtr(v any, path string) *uint {
	if v == nil {
		return nil
	}
	u := uint(d.uint(v, path, 64))
	return &u
}

func (d *specDecoder) int(v any, path string, bits int) int64 {
	if v == nil {
		return 0
	}
	n, ok := v.(json.Number)
	i, err := strconv.ParseInt(string(n), 10, bits)
	if !ok || err != nil {
		d.fail(path, "int"+strconv.Itoa(bits), v)
	}
	return i
}

func (d *specDecoder) strs(v any, path string) []string {
	a := d.array(v, path)
	if a == nil {
		return nil
	}
	out := make([]string, len(a))
	for i, e := range a {
		out[i] = d.str(e, path)
	}
	return out
}

func (d *specDecoder) strMap(v any, path string) map[string]string {
	o := d.object(v, path)
	if o == nil {
		return nil
	}
	out := make(map[string]string, len(o))
	for k, e := range o {
		out[k] = d.str(e, path+"."+k)
	}
	return out
}

// lazy decodes a rarely present field with encoding/json.
func (d *specDecoder) lazy(v any, path string, dst any) {
	if v == nil || d.err != nil {
		return
	}
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, dst)
	}
	if err != nil {
		d.err = fmt.Errorf("%s: %v", path, err)
	}
}
