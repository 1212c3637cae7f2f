package network

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway/hardway/internal/testutil"
)

// cniDir is where Debian's containernetworking-plugins puts the reference plugins.
const cniDir = "/usr/lib/cni"

// cni runs one CNI plugin by the CNI protocol (the command and container in the
// environment, the network config on stdin, the result on stdout) inside the host-playing
// netns, and returns its result.
func cni(t *testing.T, host, command, plugin, containerID, netnsPath string, conf map[string]any) map[string]any {
	t.Helper()
	in, _ := json.Marshal(conf)
	cmd := testutil.InNetns(host, filepath.Join(cniDir, plugin))
	cmd.Env = append(os.Environ(), "CNI_COMMAND="+command, "CNI_CONTAINERID="+containerID,
		"CNI_NETNS="+netnsPath, "CNI_IFNAME=eth0", "CNI_PATH="+cniDir)
	cmd.Stdin = bytes.NewReader(in)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("CNI %s %s: %v: %s%s", command, plugin, err, out, stderr.String())
	}
	res := map[string]any{}
	if len(bytes.TrimSpace(out)) > 0 {
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("CNI %s %s result: %v: %s", command, plugin, err, out)
		}
	}
	return res
}

// TestSameReachabilityAsCNIPlugins sets up a twin container with the CNI reference plugins
// (bridge + host-local + portmap, on their own bridge and subnet) next to one of ours in the
// same host-playing netns, and checks the same paths reach both: host → container address,
// host → published port via the host's own address and via 127.0.0.1. CNI DEL cleans up its
// container's address, rules and veth.
func TestSameReachabilityAsCNIPlugins(t *testing.T) {
	host := setup(t)
	for _, p := range []string{"bridge", "host-local", "portmap"} {
		if _, err := os.Stat(filepath.Join(cniDir, p)); err != nil {
			t.Fatalf("the CNI reference plugins are missing: apt-get install containernetworking-plugins (%v)", err)
		}
	}
	run(t, host, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")

	// Ours.
	ours := testutil.ID("ours")
	t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", ours).Run() })
	netsetup(t, host, "add", ours, "-p", "8080:80")
	ourIP, err := ContainerIP(ours)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, ours, "80", "hello-ours")

	// The twin, by the CNI plugins: its netns pinned by ip netns, as a runtime would.
	twin := testutil.ID("cni")
	if out, err := exec.Command("ip", "netns", "add", twin).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", twin, err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", twin).Run() })
	nsPath := "/run/netns/" + twin
	ipamDir := t.TempDir()
	bridgeConf := map[string]any{"cniVersion": "1.0.0", "name": "hwcni", "type": "bridge",
		"bridge": "hwcni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
		"ipam": map[string]any{"type": "host-local", "subnet": "10.30.0.0/24", "dataDir": ipamDir,
			"routes": []any{map[string]any{"dst": "0.0.0.0/0"}}}}
	portmapConf := func(prev map[string]any) map[string]any {
		return map[string]any{"cniVersion": "1.0.0", "name": "hwcni", "type": "portmap", "snat": true,
			"capabilities": map[string]any{"portMappings": true},
			"runtimeConfig": map[string]any{"portMappings": []any{
				map[string]any{"hostPort": 9090, "containerPort": 80, "protocol": "tcp"}}},
			"prevResult": prev}
	}
	res := cni(t, host, "ADD", "bridge", twin, nsPath, bridgeConf)
	cleaned := false
	t.Cleanup(func() {
		if !cleaned {
			cni(t, host, "DEL", "portmap", twin, nsPath, portmapConf(res))
			cni(t, host, "DEL", "bridge", twin, nsPath, bridgeConf)
		}
	})
	cni(t, host, "ADD", "portmap", twin, nsPath, portmapConf(res))
	ips, _ := res["ips"].([]any)
	if len(ips) == 0 {
		t.Fatalf("bridge plugin gave no address: %v", res)
	}
	twinIP := strings.Split(ips[0].(map[string]any)["address"].(string), "/")[0]
	srv := exec.Command("nsenter", "--net="+nsPath, "--", "busybox", "nc", "-ll", "-p", "80", "-e", "echo", "hello-cni")
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	for _, c := range []struct{ what, addr, port, want string }{
		{"host → our container", ourIP.String(), "80", "hello-ours"},
		{"host → CNI container", twinIP, "80", "hello-cni"},
		{"host address → our published port", "198.51.100.1", "8080", "hello-ours"},
		{"host address → CNI published port", "198.51.100.1", "9090", "hello-cni"},
		{"127.0.0.1 → our published port", "127.0.0.1", "8080", "hello-ours"},
		{"127.0.0.1 → CNI published port", "127.0.0.1", "9090", "hello-cni"},
	} {
		if got := dial(t, host, c.addr, c.port); got != c.want {
			t.Errorf("%s (%s:%s): got %q, want %q", c.what, c.addr, c.port, got, c.want)
		}
	}
	// Hairpin: each container reaches its own published port through the host's address.
	if got := dialFrom(t, ours, "198.51.100.1", "8080"); got != "hello-ours" {
		t.Errorf("hairpin, ours: got %q", got)
	}
	if got := dialFrom(t, twin, "198.51.100.1", "9090"); got != "hello-cni" {
		t.Errorf("hairpin, CNI: got %q", got)
	}
	t.Logf("iptables -t nat -S with both:\n%s", run(t, host, "iptables", "-t", "nat", "-S"))

	cni(t, host, "DEL", "portmap", twin, nsPath, portmapConf(res))
	cni(t, host, "DEL", "bridge", twin, nsPath, bridgeConf)
	cleaned = true
	if nat := run(t, host, "iptables-save"); strings.Contains(nat, twinIP) || strings.Contains(nat, twin) {
		t.Errorf("rules of the CNI container left after DEL:\n%s", nat)
	}
	if left, _ := filepath.Glob(filepath.Join(ipamDir, "hwcni", "10.30.*")); len(left) != 0 {
		t.Errorf("host-local left %v", left)
	}
	if out := run(t, host, "ip", "-n", twin, "-o", "link"); strings.Contains(out, "eth0") {
		t.Errorf("eth0 left in the CNI container's netns:\n%s", out)
	}
}
