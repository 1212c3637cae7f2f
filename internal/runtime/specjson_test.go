package runtime

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// decodeSpec gives what json.Unmarshal gives, short of the sections it leaves out, also
// for the fields it decodes only when present, and refuses what json.Unmarshal refuses.
func TestDecodeSpecMatchesUnmarshal(t *testing.T) {
	prio, adj, mode := 3, 100, os.FileMode(0o600)
	full := specs.Spec{
		Version:  specs.Version,
		Hostname: "h",
		Process: &specs.Process{
			Args: []string{"/bin/true"}, Env: []string{"A=1"}, Cwd: "/",
			User:            specs.User{UID: 1, GID: 2, AdditionalGids: []uint32{3}},
			Capabilities:    &specs.LinuxCapabilities{Bounding: []string{"CAP_CHOWN"}},
			Rlimits:         []specs.POSIXRlimit{{Type: "RLIMIT_NOFILE", Hard: 1, Soft: 1}},
			Scheduler:       &specs.Scheduler{Policy: specs.SchedOther, Priority: 1},
			IOPriority:      &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: prio},
			ExecCPUAffinity: &specs.CPUAffinity{Initial: "0"},
			OOMScoreAdj:     &adj,
			ConsoleSize:     &specs.Box{Height: 1, Width: 2},
		},
		Root:        &specs.Root{Path: "rootfs", Readonly: true},
		Mounts:      []specs.Mount{{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid"}}},
		Hooks:       &specs.Hooks{Prestart: []specs.Hook{{Path: "/bin/true"}}},
		Annotations: map[string]string{"a": "b"},
		Linux: &specs.Linux{
			UIDMappings:  []specs.LinuxIDMapping{{HostID: 1, Size: 1}},
			Sysctl:       map[string]string{"net.ipv4.ip_forward": "1"},
			Namespaces:   []specs.LinuxNamespace{{Type: specs.PIDNamespace}},
			Devices:      []specs.LinuxDevice{{Path: "/dev/x", Type: "c", Major: 1, Minor: 3, FileMode: &mode}},
			Seccomp:      &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 1, Value: 2, Op: specs.OpEqualTo}}}}},
			IntelRdt:     &specs.LinuxIntelRdt{ClosID: "x"},
			Personality:  &specs.LinuxPersonality{Domain: specs.PerLinux},
			MemoryPolicy: &specs.LinuxMemoryPolicy{Mode: "MPOL_BIND", Nodes: "0"},
			NetDevices:   map[string]specs.LinuxNetDevice{"eth1": {Name: "eth9"}},
			TimeOffsets:  map[string]specs.LinuxTimeOffset{"monotonic": {Secs: 1}},
			MaskedPaths:  []string{"/proc/kcore"},
			Resources:    &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Access: "rwm"}}},
		},
		Windows: &specs.Windows{LayerFolders: []string{"C:\\"}},
	}
	var filled specs.Spec
	n := 0
	fill(reflect.ValueOf(&filled).Elem(), &n)
	minimal := specs.Spec{Root: &specs.Root{Path: "rootfs"}, Process: &specs.Process{Args: []string{"sh"}}, Linux: &specs.Linux{}}
	for name, s := range map[string]specs.Spec{"full": full, "filled": filled, "minimal": minimal, "empty": {}} {
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		var want specs.Spec
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatal(err)
		}
		if want.Linux != nil {
			want.Linux.Resources = nil
		}
		want.Windows, want.Solaris, want.VM, want.ZOS, want.FreeBSD = nil, nil, nil, nil, nil
		got, err := decodeSpec(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(*got, want) {
			gj, _ := json.Marshal(got)
			wj, _ := json.Marshal(want)
			t.Errorf("%s: decodeSpec gives\n%s\nwant\n%s", name, gj, wj)
		}
	}
	// Keys match case-insensitively, null is no value, empty arrays and objects stay empty.
	for _, doc := range []string{
		`{"Process": {"ARGS": ["x"], "user": {"UID": 7}}, "root": null, "mounts": [], "annotations": {}}`,
		`{"linux": {"sysctl": null, "maskedPaths": [], "seccomp": {"syscalls": [{"names": [], "args": null}]}}}`,
		`null`, ` {} `,
	} {
		var want specs.Spec
		if err := json.Unmarshal([]byte(doc), &want); err != nil {
			t.Fatal(err)
		}
		got, err := decodeSpec([]byte(doc))
		if err != nil || !reflect.DeepEqual(*got, want) {
			t.Errorf("decodeSpec(%s) = %+v, %v; want %+v", doc, got, err, want)
		}
	}
	for _, bad := range []string{
		`{"process": {"scheduler": 1}}`, `{"linux": {"intelRdt": "x"}}`, `{"hooks": []}`, `{"process": {"args": "x"}}`, `{`,
		`{"process": {"user": {"uid": -1}}}`, `{"process": {"user": {"uid": 1.5}}}`, `{"process": {"user": {"uid": 4294967296}}}`,
		`{"process": {"args": [1]}}`, `{"linux": {"sysctl": {"a": 1}}}`, `{"process": {"terminal": "yes"}}`,
		`{"linux": {"devices": [{"major": "1"}]}}`, `{} x`, `[]`, `{"mounts": {}}`,
	} {
		var s specs.Spec
		if json.Unmarshal([]byte(bad), &s) == nil {
			t.Fatalf("json.Unmarshal(%s) gives no error either", bad)
		}
		if _, err := decodeSpec([]byte(bad)); err == nil {
			t.Errorf("decodeSpec(%s) gave no error", bad)
		}
	}
}

// fill sets every field reachable from v to a distinct non-zero value: 64-bit numbers
// beyond float64's precision, negative signed ones.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			fill(v.Field(i), n)
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		fill(v.Index(0), n)
		fill(v.Index(1), n)
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		for range 2 {
			k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
			fill(k, n)
			fill(e, n)
			v.SetMapIndex(k, e)
		}
	case reflect.String:
		v.SetString("s" + strconv.Itoa(*n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x := -int64(*n)
		if v.Type().Bits() == 64 {
			x -= 1 << 60
		}
		v.SetInt(x)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		x := uint64(*n)
		if v.Type().Bits() == 64 {
			x += 1<<63 + 1<<55
		}
		v.SetUint(x)
	}
}
