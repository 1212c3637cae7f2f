package testutil

import (
	"os/exec"
	"testing"
)

// HostNetns creates a throwaway network namespace that plays the host for a network test:
// bridges, iptables rules and packets stay in it and never reach the machine's network.
// It is removed when the test ends. It returns the namespace's name (as `ip netns` knows it).
func HostNetns(t testing.TB) string {
	t.Helper()
	RequireRoot(t)
	name := ID("hwhost-")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v: %s", name, err, out)
	}
	return name
}

// InNetns returns a command that runs name args… in network namespace ns only (its mount
// namespace stays the host's, so netns files it pins under /run/netns are visible to all).
func InNetns(ns string, name string, args ...string) *exec.Cmd {
	argv := append([]string{"--net=/run/netns/" + ns, "--", name}, args...)
	return exec.Command("nsenter", argv...)
}
