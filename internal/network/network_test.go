package network

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/testutil"
)

// netsetupBin is the tool built once for the tests: network tests run it inside a
// namespace that plays the host, which a goroutine of the test binary cannot do safely.
var netsetupBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netsetup-test-")
	if err != nil {
		panic(err)
	}
	netsetupBin = filepath.Join(dir, "netsetup")
	out, err := exec.Command("go", "build", "-o", netsetupBin, "github.com/hardway/hardway/cmd/netsetup").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build netsetup: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run runs a command in the host-playing netns and returns its stdout; it fails the test on error.
func run(t *testing.T, host string, name string, args ...string) string {
	t.Helper()
	cmd := testutil.InNetns(host, name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v: %s", name, args, err, stderr.String())
	}
	return string(out)
}

func netsetup(t *testing.T, host string, args ...string) string {
	t.Helper()
	return strings.TrimSpace(run(t, host, netsetupBin, args...))
}

// iptablesState is the rules and user chains of iptables-save (an empty table and one
// never touched dump differently under nf_tables, so table headers are left out).
func iptablesState(t *testing.T, host string) string {
	t.Helper()
	builtin := regexp.MustCompile(`^:(PREROUTING|INPUT|FORWARD|OUTPUT|POSTROUTING) `)
	var keep []string
	for _, l := range strings.Split(run(t, host, "iptables-save"), "\n") {
		if strings.HasPrefix(l, "-") || strings.HasPrefix(l, ":") && !builtin.MatchString(l) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

// dial connects to addr:port from the host-playing netns and returns what the server said,
// retrying while the listener starts.
func dial(t *testing.T, host, addr, port string) string {
	t.Helper()
	var out []byte
	for i := 0; i < 50; i++ {
		out, _ = testutil.InNetns(host, "busybox", "nc", "-w", "2", addr, port).Output()
		if len(out) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.TrimSpace(string(out))
}

// serve starts a persistent TCP server on port inside the container's netns that greets
// each connection with msg.
func serve(t *testing.T, id, port, msg string) {
	t.Helper()
	cmd := exec.Command("nsenter", "--net="+state.NetnsPath(id), "--", "busybox", "nc", "-ll", "-p", port, "-e", "echo", msg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

func setup(t *testing.T) string {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.TempState(t)
	host := testutil.HostNetns(t)
	// Something of the host's own, which del must leave alone.
	run(t, host, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "192.0.2.0/24", "-j", "MASQUERADE")
	return host
}

func TestAddPublishDel(t *testing.T) {
	host := setup(t)
	before := iptablesState(t, host)
	id := testutil.ID("net")
	t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", id).Run() })

	// The first container's add: the chain, the shared rules and its own in one
	// iptables-restore (the trace shows each as the iptables command it stands for).
	add := testutil.InNetns(host, netsetupBin, "--trace", "add", id, "-p", "8080:80")
	var addErr strings.Builder
	add.Stderr = &addErr
	out, err := add.Output()
	if err != nil {
		t.Fatalf("add: %v: %s", err, addErr.String())
	}
	if got := strings.TrimSpace(string(out)); got != state.NetnsPath(id) {
		t.Fatalf("add printed %q, want %q", got, state.NetnsPath(id))
	}
	for _, want := range []string{"iptables -t nat -N HARDWAY", "-A HARDWAY -p tcp --dport 8080", "-A FORWARD -i hardway0", "iptables-restore -w --noflush"} {
		if !strings.Contains(addErr.String(), want) {
			t.Errorf("add --trace lacks %q:\n%s", want, addErr.String())
		}
	}
	if !strings.Contains(run(t, host, "ip", "netns", "list"), id) {
		t.Errorf("ip netns list does not show %s", id)
	}
	addr := run(t, host, "ip", "-n", id, "-4", "addr", "show", "eth0")
	m := regexp.MustCompile(`inet (10\.29\.\d+\.\d+)/16`).FindStringSubmatch(addr)
	if m == nil {
		t.Fatalf("eth0 in %s has no 10.29.x.y/16 address:\n%s", id, addr)
	}
	ip := m[1]
	if got, err := ContainerIP(id); err != nil || got.String() != ip {
		t.Errorf("ContainerIP = %v, %v; want %s", got, err, ip)
	}
	if r := run(t, host, "ip", "-n", id, "route"); !strings.Contains(r, "default via 10.29.0.1 dev eth0") {
		t.Errorf("no default route in %s:\n%s", id, r)
	}

	serve(t, id, "80", "hello")
	if got := dial(t, host, ip, "80"); got != "hello" {
		t.Errorf("direct to %s:80: got %q", ip, got)
	}
	if got := dial(t, host, "10.29.0.1", "8080"); got != "hello" {
		t.Errorf("published port via the bridge address 10.29.0.1:8080: got %q", got)
	}
	if got := dial(t, host, "127.0.0.1", "8080"); got != "hello" {
		t.Errorf("published port via 127.0.0.1:8080: got %q", got)
	}

	// Adding again is a no-op: same handle, same address, no duplicate rule.
	netsetup(t, host, "add", id, "-p", "8080:80")
	if got, _ := ContainerIP(id); got.String() != ip {
		t.Errorf("second add changed the address to %v", got)
	}
	// One port: its DNAT and its hairpin MASQUERADE.
	if n := strings.Count(run(t, host, "iptables", "-t", "nat", "-S"), "hardway:"+id); n != 2 {
		t.Errorf("%d rules tagged hardway:%s after two adds, want 2", n, id)
	}
	show := netsetup(t, host, "show", id)
	for _, want := range []string{ip, HostVeth(id), "default via 10.29.0.1", "--dport 8080"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}

	// The last container's del: its rules, the shared ones and the chain go in one
	// iptables-restore (the trace still shows each as the iptables command it stands for).
	out, err = testutil.InNetns(host, netsetupBin, "--trace", "del", id).CombinedOutput()
	if err != nil {
		t.Fatalf("del: %v: %s", err, out)
	}
	// The veth and the bridge go in one request, as an interface group.
	for _, want := range []string{"iptables-restore -w --noflush", "-D HARDWAY -p tcp", "-D FORWARD -i hardway0", "-X HARDWAY", "ip link set hardway0 group", "ip link del group"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("del --trace lacks %q:\n%s", want, out)
		}
	}
	netsetup(t, host, "del", id)
	if _, err := os.Stat(state.NetnsPath(id)); !os.IsNotExist(err) {
		t.Errorf("%s still there after del", state.NetnsPath(id))
	}
	if links := run(t, host, "ip", "-o", "link"); strings.Contains(links, HostVeth(id)) || strings.Contains(links, "hardway0") {
		t.Errorf("links left after del:\n%s", links)
	}
	if _, err := ContainerIP(id); err == nil {
		t.Error("address still allocated after del")
	}
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables differ after del:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestDelAfterAddKilledBeforeChain: an add killed after it made the bridge and reserved
// the address but before it made the HARDWAY chain (test/faults found it) leaves a bridge
// whose shared rules were never added; del must still take the bridge down, not fail on
// iptables -C of a jump to the missing chain (which would block every later del).
func TestDelAfterAddKilledBeforeChain(t *testing.T) {
	host := setup(t)
	before := iptablesState(t, host)
	id := testutil.ID("net")
	t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", id).Run() })
	netsetup(t, host, "add", id)
	// What the kill leaves: the chain and the shared rules are not there yet.
	for _, r := range sharedRules(DefaultSubnet, Bridge()) {
		run(t, host, "iptables", append([]string{"-t", r.table, "-D", r.chain}, r.spec...)...)
	}
	run(t, host, "iptables", "-t", "nat", "-X", Chain)

	netsetup(t, host, "del", id)
	if links := run(t, host, "ip", "-o", "link"); strings.Contains(links, HostVeth(id)) || strings.Contains(links, Bridge()) {
		t.Errorf("links left after del:\n%s", links)
	}
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables differ after del:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// TestAddAfterPartialRules: the one-batch ways of add trust what they can check and fall back
// to a rule at a time when a batch fails. A bridge gone with the chain still there (a del
// killed between the two) makes the first-container batch fail on -N; shared rules missing
// (an add killed between nat's and filter's part) make the next container's check fail.
// Either way the next add completes the rules without duplicating any, and del of the last
// container leaves iptables as it found it.
func TestAddAfterPartialRules(t *testing.T) {
	host := setup(t)
	before := iptablesState(t, host)
	a, b, c := testutil.ID("neta"), testutil.ID("netb"), testutil.ID("netc")
	for _, id := range []string{a, b, c} {
		t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", id).Run() })
	}
	netsetup(t, host, "add", a, "-p", "8080:80")
	full := iptablesState(t, host)

	// No bridge, but the chain and every rule.
	run(t, host, "ip", "link", "del", Bridge())
	netsetup(t, host, "add", b, "-p", "8081:80")
	// The shared filter rules gone, the chain and the nat rules there.
	for _, r := range sharedRules(DefaultSubnet, Bridge()) {
		if r.table == "filter" {
			run(t, host, "iptables", append([]string{"-t", r.table, "-D", r.chain}, r.spec...)...)
		}
	}
	netsetup(t, host, "add", c, "-p", "8082:80")

	got := iptablesState(t, host)
	lines := strings.Split(got, "\n")
	for _, l := range strings.Split(full, "\n") {
		if strings.Contains(l, "hardway:") {
			continue // a's own: b and c have theirs besides
		}
		if n := slices.Index(lines, l); n < 0 || slices.Index(lines[n+1:], l) >= 0 {
			t.Errorf("after the adds, %q is not there exactly once:\n%s", l, got)
		}
	}
	for _, id := range []string{a, b, c} {
		if n := strings.Count(got, "hardway:"+id); n != 2 {
			t.Errorf("%d rules tagged hardway:%s, want 2 (DNAT and hairpin):\n%s", n, id, got)
		}
	}
	if links := run(t, host, "ip", "-o", "link"); !strings.Contains(links, HostVeth(c)) || !strings.Contains(links, "master "+Bridge()) {
		t.Errorf("%s not on a new %s:\n%s", HostVeth(c), Bridge(), links)
	}
	for _, id := range []string{a, b, c} {
		netsetup(t, host, "del", id)
	}
	if links := run(t, host, "ip", "-o", "link"); strings.Contains(links, "hw") || strings.Contains(links, Bridge()) {
		t.Errorf("links left after the last del:\n%s", links)
	}
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables differ after del:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

func TestParallelAddsGetDistinctAddresses(t *testing.T) {
	host := setup(t)
	before := iptablesState(t, host)
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = testutil.ID(fmt.Sprintf("par%d-", i))
		id := ids[i]
		t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", id).Run() })
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range ids {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := testutil.InNetns(host, netsetupBin, "add", ids[i]).CombinedOutput()
			if err != nil {
				errs[i] = fmt.Errorf("%v: %s", err, out)
			}
		}(i)
	}
	wg.Wait()
	seen := map[string]string{}
	for i, id := range ids {
		if errs[i] != nil {
			t.Fatalf("add %s: %v", id, errs[i])
		}
		ip, err := ContainerIP(id)
		if err != nil {
			t.Fatal(err)
		}
		if other, dup := seen[ip.String()]; dup {
			t.Errorf("%s and %s both got %s", other, id, ip)
		}
		seen[ip.String()] = id
	}
	if len(seen) != n {
		t.Errorf("%d distinct addresses for %d containers", len(seen), n)
	}
	for _, id := range ids {
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			if out, err := testutil.InNetns(host, netsetupBin, "del", id).CombinedOutput(); err != nil {
				t.Errorf("del %s: %v: %s", id, err, out)
			}
		}(id)
	}
	wg.Wait()
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables differ after deleting all:\n%s", after)
	}
}

func TestParsePort(t *testing.T) {
	for in, want := range map[string]Port{
		"8080:80":           {Host: 8080, Container: 80, Proto: "tcp"},
		"53:53/udp":         {Host: 53, Container: 53, Proto: "udp"},
		"127.0.0.1:8080:80": {HostIP: "127.0.0.1", Host: 8080, Container: 80, Proto: "tcp"},
	} {
		got, err := ParsePort(in)
		if err != nil || got != want {
			t.Errorf("ParsePort(%q) = %+v, %v", in, got, err)
		}
	}
	for _, in := range []string{"80", "x:80", "8080:80/sctp", "0:80", "8080:70000"} {
		if _, err := ParsePort(in); err == nil {
			t.Errorf("ParsePort(%q) accepted", in)
		}
	}
}

// dialFrom is dial run inside the container's netns id.
func dialFrom(t *testing.T, id, addr, port string) string {
	t.Helper()
	var out []byte
	for i := 0; i < 50; i++ {
		out, _ = exec.Command("nsenter", "--net="+state.NetnsPath(id), "--", "busybox", "nc", "-w", "2", addr, port).Output()
		if len(out) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.TrimSpace(string(out))
}

// udpAsk sends one datagram from the host-playing netns and returns the answer.
func udpAsk(t *testing.T, host, addr, port string, tries int) string {
	t.Helper()
	var out []byte
	for i := 0; i < tries; i++ {
		// A fixed source port: every try is the same conntrack flow.
		cmd := testutil.InNetns(host, "socat", "-T1", "-", "UDP4:"+addr+":"+port+",sourceport=40000,reuseaddr")
		cmd.Stdin = strings.NewReader("ping\n")
		out, _ = cmd.Output()
		if len(out) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return strings.TrimSpace(string(out))
}

func TestHairpinTwoContainersAndUDP(t *testing.T) {
	host := setup(t)
	before := iptablesState(t, host)
	// The host's own address, as eth0's would be on a real machine (on lo: the kernel here
	// has no dummy links, and any local address is what the DNAT matches).
	run(t, host, "ip", "addr", "add", "198.51.100.1/32", "dev", "lo")
	a, b := testutil.ID("hpa"), testutil.ID("hpb")
	for _, id := range []string{a, b} {
		id := id
		t.Cleanup(func() { testutil.InNetns(host, netsetupBin, "del", id).Run() })
	}
	netsetup(t, host, "add", a, "-p", "8080:80")
	netsetup(t, host, "add", b)
	ipB, err := ContainerIP(b)
	if err != nil {
		t.Fatal(err)
	}
	serve(t, a, "80", "hello-a")
	serve(t, b, "80", "hello-b")
	udp := exec.Command("nsenter", "--net="+state.NetnsPath(a), "--", "socat", "UDP4-RECVFROM:53,fork", "SYSTEM:echo pong")
	if err := udp.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { udp.Process.Kill(); udp.Wait() })
	// A UDP flow to 5353 before it is published: conntrack remembers it un-NATed, so the
	// publish must flush it for the same flow to reach the container afterwards.
	if got := udpAsk(t, host, "127.0.0.1", "5353", 1); got != "" {
		t.Fatalf("udp 5353 answered %q before it was published", got)
	}
	netsetup(t, host, "add", a, "-p", "8080:80", "-p", "5353:53/udp")

	if got := dial(t, host, "198.51.100.1", "8080"); got != "hello-a" {
		t.Errorf("published port via the host address 198.51.100.1:8080: got %q", got)
	}
	for _, addr := range []string{"198.51.100.1", "10.29.0.1"} {
		if got := dialFrom(t, a, addr, "8080"); got != "hello-a" {
			t.Errorf("hairpin: %s to its own published port %s:8080: got %q", a, addr, got)
		}
	}
	if got := dialFrom(t, a, ipB.String(), "80"); got != "hello-b" {
		t.Errorf("%s to %s (%s:80): got %q", a, b, ipB, got)
	}
	for _, addr := range []string{"198.51.100.1", "127.0.0.1"} {
		if got := udpAsk(t, host, addr, "5353", 30); got != "pong" {
			t.Errorf("udp published port via %s:5353: got %q", addr, got)
		}
	}
	show := netsetup(t, host, "show", a)
	for _, want := range []string{"hairpin on", "gateway 10.29.0.1/16", "--dport 5353", "-p udp", "POSTROUTING -s", "-j MASQUERADE"} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	netsetup(t, host, "del", a)
	netsetup(t, host, "del", b)
	if after := iptablesState(t, host); after != before {
		t.Errorf("iptables differ after del:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}
