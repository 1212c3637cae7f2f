package runtime

import (
	"encoding/json"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// decodeSpec decodes config.json into a specs.Spec, leaving out what nsrun never reads:
// linux.resources (cgset applies it) and the other operating systems' sections.
//
// Why not json.Unmarshal into a specs.Spec: the first time encoding/json meets a struct
// type it builds that type's field table and an encoder for every type the struct can
// hold, recursively, even to decode. For specs.Spec that is a hundred-odd types, most of
// them under linux.resources, windows, solaris, vm and zos: about 2 ms of a cold start
// in the VM this was measured in, paid twice per container (nsrun and its init each
// decode the file). The shadow types below hide those fields behind json.RawMessage;
// the ones only checked for presence are decoded when present, so validation sees them as
// before.
func decodeSpec(b []byte) (*specs.Spec, error) {
	var s specJSON
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, err
	}
	spec := s.Spec
	if err := lazy(s.Hooks, &spec.Hooks); err != nil {
		return nil, err
	}
	if p := s.Process; p != nil {
		spec.Process = &p.Process
		if err := lazy(p.Scheduler, &p.Process.Scheduler); err != nil {
			return nil, err
		}
		if err := lazy(p.IOPriority, &p.Process.IOPriority); err != nil {
			return nil, err
		}
		if err := lazy(p.ExecCPUAffinity, &p.Process.ExecCPUAffinity); err != nil {
			return nil, err
		}
	}
	if l := s.Linux; l != nil {
		spec.Linux = &l.Linux
		for _, f := range []struct {
			raw json.RawMessage
			dst any
		}{
			{l.IntelRdt, &l.Linux.IntelRdt}, {l.Personality, &l.Linux.Personality},
			{l.MemoryPolicy, &l.Linux.MemoryPolicy}, {l.NetDevices, &l.Linux.NetDevices},
			{l.TimeOffsets, &l.Linux.TimeOffsets},
		} {
			if err := lazy(f.raw, f.dst); err != nil {
				return nil, err
			}
		}
	}
	return &spec, nil
}

// lazy decodes a field kept raw, when config.json has it.
func lazy(raw json.RawMessage, dst any) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	return json.Unmarshal(raw, dst)
}

// The outer fields hide the embedded ones of the same JSON name (Go's embedding rules,
// which encoding/json follows), so no reflection cache is built for the hidden types.
type specJSON struct {
	specs.Spec
	Process *processJSON    `json:"process,omitempty"`
	Hooks   json.RawMessage `json:"hooks,omitempty"`
	Linux   *linuxJSON      `json:"linux,omitempty"`
	Solaris json.RawMessage `json:"solaris,omitempty"`
	Windows json.RawMessage `json:"windows,omitempty"`
	VM      json.RawMessage `json:"vm,omitempty"`
	ZOS     json.RawMessage `json:"zos,omitempty"`
}

type processJSON struct {
	specs.Process
	Scheduler       json.RawMessage `json:"scheduler,omitempty"`
	IOPriority      json.RawMessage `json:"ioPriority,omitempty"`
	ExecCPUAffinity json.RawMessage `json:"execCPUAffinity,omitempty"`
}

type linuxJSON struct {
	specs.Linux
	Resources    json.RawMessage `json:"resources,omitempty"`
	IntelRdt     json.RawMessage `json:"intelRdt,omitempty"`
	Personality  json.RawMessage `json:"personality,omitempty"`
	MemoryPolicy json.RawMessage `json:"memoryPolicy,omitempty"`
	NetDevices   json.RawMessage `json:"netDevices,omitempty"`
	TimeOffsets  json.RawMessage `json:"timeOffsets,omitempty"`
}
