package runtime

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hardway/hardway/internal/cli"
)

// checkSpec refuses, before anything starts, the parts of config.json nsrun does not
// implement: silently ignoring them would run a container with less isolation or a
// different environment than its config asks for. linux.resources is not among them:
// cgset applies it to the cgroup nsrun joins.
func checkSpec(spec *specs.Spec, userns bool) error {
	bad := func(field, why string) error {
		return cli.Errorf("remove it from config.json", "config.json: %s is not supported%s", field, why)
	}
	if h := spec.Hooks; h != nil && len(h.Prestart)+len(h.CreateRuntime)+len(h.CreateContainer)+len(h.StartContainer)+len(h.Poststart)+len(h.Poststop) > 0 {
		return bad("hooks", " (nsrun has no create/start lifecycle to run them in)")
	}
	p := spec.Process
	if p.ApparmorProfile != "" {
		return bad("process.apparmorProfile", " (no AppArmor on this host)")
	}
	if p.SelinuxLabel != "" {
		return bad("process.selinuxLabel", " (no SELinux on this host)")
	}
	if p.Scheduler != nil || p.IOPriority != nil || p.ExecCPUAffinity != nil {
		return bad("process.scheduler/ioPriority/execCPUAffinity", "")
	}
	l := spec.Linux
	if l == nil {
		return nil
	}
	if l.IntelRdt != nil {
		return bad("linux.intelRdt", " (no resctrl here)")
	}
	if l.MountLabel != "" {
		return bad("linux.mountLabel", " (no SELinux on this host)")
	}
	if l.Personality != nil || len(l.TimeOffsets) > 0 || l.MemoryPolicy != nil || len(l.NetDevices) > 0 {
		return bad("linux.personality/timeOffsets/memoryPolicy/netDevices", "")
	}
	switch l.RootfsPropagation {
	case "", "private", "rprivate":
	default:
		return bad("linux.rootfsPropagation "+l.RootfsPropagation, " (nsrun makes the root rprivate)")
	}
	user := false
	for _, ns := range l.Namespaces {
		switch ns.Type {
		case specs.MountNamespace, specs.UTSNamespace, specs.IPCNamespace, specs.PIDNamespace, specs.CgroupNamespace:
			if ns.Path != "" {
				return bad("joining the "+string(ns.Type)+" namespace "+ns.Path, " (only the network namespace can be joined, with --netns)")
			}
		case specs.NetworkNamespace:
			// A path is honoured like --netns.
		case specs.UserNamespace:
			if ns.Path != "" {
				return bad("joining the user namespace "+ns.Path, "")
			}
			user = true
		default:
			return bad("the "+string(ns.Type)+" namespace", "")
		}
	}
	if !user && !userns && (len(l.UIDMappings) > 0 || len(l.GIDMappings) > 0) {
		return cli.Errorf("add {\"type\": \"user\"} to linux.namespaces, or pass --userns", "config.json: linux.uidMappings need a user namespace")
	}
	for _, d := range l.Devices {
		if d.Type != "c" && d.Type != "b" && d.Type != "p" && d.Type != "u" {
			return cli.Errorf("use c, b, u or p", "config.json: linux.devices %s has type %q", d.Path, d.Type)
		}
		if !strings.HasPrefix(d.Path, "/dev/") {
			return cli.Errorf("put it under /dev", "config.json: linux.devices %s is outside /dev", d.Path)
		}
	}
	for k := range l.Sysctl {
		if !namespacedSysctl(k) {
			return cli.Errorf("set it on the host instead", "config.json: sysctl %s is not namespaced: it would change the host", k)
		}
	}
	if l.Seccomp != nil {
		if _, err := seccompPolicy(l.Seccomp); err != nil {
			return fmt.Errorf("config.json: %w", err)
		}
	}
	return nil
}

// namespacedSysctl says whether a sysctl belongs to a namespace the container owns (the
// list Docker and runc accept): the ipc namespace's kernel.{msg,sem,shm}*, fs.mqueue.*, the
// uts names and the network namespace's net.*.
func namespacedSysctl(k string) bool {
	switch k {
	case "kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
		"kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced", "kernel.hostname", "kernel.domainname":
		return true
	}
	return strings.HasPrefix(k, "fs.mqueue.") || strings.HasPrefix(k, "net.")
}
