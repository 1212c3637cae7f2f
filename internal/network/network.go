// Package network is netsetup's engine: it gives a container a network namespace, a veth
// pair into the bridge hardway0, an address from a file-based address book, a default route,
// and the iptables rules that NAT its traffic out and publish its ports in, as Docker's
// bridge network does. Everything it adds for a container, `Del` removes.
package network

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/fsutil"
	"github.com/hardway/hardway/internal/state"
	"github.com/hardway/hardway/internal/trace"
)

// DefaultSubnet is the bridge network, clear of Docker's 172.17/16 and Podman's 10.88/16.
const DefaultSubnet = "10.29.0.0/16"

// Bridge is the bridge's name ($HARDWAY_BRIDGE changes it).
func Bridge() string {
	if b := os.Getenv("HARDWAY_BRIDGE"); b != "" {
		return b
	}
	return "hardway0"
}

// HostVeth is the host end of the container's veth pair: "hw" and 8 hex digits of the id's
// sha256, within the kernel's 15-character limit and distinct for ids sharing a prefix.
func HostVeth(id string) string {
	h := sha256.Sum256([]byte(id))
	return "hw" + hex.EncodeToString(h[:])[:8]
}

// Port is one published port: HOST[:IP]:CTR[/proto].
type Port struct {
	HostIP    string
	Host      int
	Container int
	Proto     string
}

func (p Port) String() string {
	s := fmt.Sprintf("%d:%d/%s", p.Host, p.Container, p.Proto)
	if p.HostIP != "" {
		s = p.HostIP + ":" + s
	}
	return s
}

// ParsePort reads docker's -p forms: 8080:80, 8080:80/udp, 127.0.0.1:8080:80.
func ParsePort(s string) (Port, error) {
	p := Port{Proto: "tcp"}
	spec := s
	if i := strings.LastIndex(spec, "/"); i >= 0 {
		p.Proto, spec = strings.ToLower(spec[i+1:]), spec[:i]
	}
	parts := strings.Split(spec, ":")
	if len(parts) == 3 {
		if net.ParseIP(parts[0]).To4() == nil {
			return p, fmt.Errorf("invalid host address in %q", s)
		}
		p.HostIP, parts = parts[0], parts[1:]
	}
	bad := cli.Errorf("write it as HOST:CONTAINER[/tcp|udp], e.g. 8080:80", "invalid port mapping %q", s)
	if len(parts) != 2 || (p.Proto != "tcp" && p.Proto != "udp") {
		return p, bad
	}
	var err1, err2 error
	p.Host, err1 = strconv.Atoi(parts[0])
	p.Container, err2 = strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil || p.Host < 1 || p.Host > 65535 || p.Container < 1 || p.Container > 65535 {
		return p, bad
	}
	return p, nil
}

// lock serialises every change to the bridge network and its address book.
func lock() (*fsutil.Lock, error) { return fsutil.LockFile(filepath.Join(state.IPAMDir(), "lock")) }

// Add connects the container to the bridge network and returns its pinned netns path.
// Adding again is a no-op apart from adding new published ports.
func Add(id, subnet string, ports []Port) (string, error) {
	if err := state.ValidID(id); err != nil {
		return "", err
	}
	if subnet == "" {
		subnet = DefaultSubnet
	}
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil || sn.IP.To4() == nil {
		return "", cli.Errorf("an IPv4 CIDR such as "+DefaultSubnet, "invalid subnet %q", subnet)
	}
	if ones, _ := sn.Mask.Size(); ones > 30 {
		return "", cli.Errorf("use /30 or wider", "subnet %s is too small", subnet)
	}
	l, err := lock()
	if err != nil {
		return "", err
	}
	defer l.Unlock()

	nsPath := state.NetnsPath(id)
	if err := createNetns(nsPath, id); err != nil {
		return "", err
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return "", err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return "", err
	}
	defer h.Close()
	if err := linkUp(h, "lo", "ip -n "+id+" link set lo up"); err != nil {
		return "", err
	}
	gw := nthIP(sn, 1)
	br, err := ensureBridge(sn, gw)
	if err != nil {
		return "", err
	}
	ip, err := allocate(id, sn)
	if err != nil {
		return "", err
	}
	if err := ensureVeth(id, h, ns, br); err != nil {
		return "", err
	}
	ones, _ := sn.Mask.Size()
	if err := configureEth0(id, h, ip, gw, ones); err != nil {
		return "", err
	}
	ipt, err := newIPT()
	if err != nil {
		return "", err
	}
	if ok, err := ipt.ChainExists("nat", Chain); err == nil && !ok {
		// No chain: nothing of ours is there. The chain, the shared rules and this
		// container's in one iptables-restore; the rule-at-a-time way if that fails.
		var rules []rule
		var whys []string
		for _, r := range sharedRules(sn.String(), Bridge()) {
			rules, whys = append(rules, r), append(whys, "bridge network rule (shared by all containers)")
		}
		for _, p := range ports {
			rules = append(rules, portRule(id, p, ip.String()), hairpinRule(id, p, ip.String()))
			whys = append(whys, fmt.Sprintf("publish %s → %s:%d", p, ip, p.Container), fmt.Sprintf("hairpin: let %s reach its own published port %d", id, p.Host))
		}
		err := addFresh(rules, whys)
		if err == nil {
			if err := flushUDPs(ports); err != nil {
				return "", err
			}
			return nsPath, nil
		}
		trace.Step(fmt.Sprintf("the batch failed (%v): add the rules one at a time", err))
	}
	fresh, err := ensureChain(ipt, "nat", Chain)
	if err != nil {
		return "", err
	}
	for _, r := range sharedRules(sn.String(), Bridge()) {
		// A chain made just now means no shared rule is there (add makes the chain before
		// them and del removes it after them, killed or not): append without -C first.
		add := appendRule
		if fresh {
			add = appendNew
		}
		if err := add(ipt, "bridge network rule (shared by all containers)", r); err != nil {
			return "", err
		}
	}
	for _, p := range ports {
		if err := appendRule(ipt, fmt.Sprintf("publish %s → %s:%d", p, ip, p.Container), portRule(id, p, ip.String())); err != nil {
			return "", err
		}
		if err := appendRule(ipt, fmt.Sprintf("hairpin: let %s reach its own published port %d", id, p.Host), hairpinRule(id, p, ip.String())); err != nil {
			return "", err
		}
	}
	if err := flushUDPs(ports); err != nil {
		return "", err
	}
	return nsPath, nil
}

// flushUDPs is flushUDP for every published UDP port.
func flushUDPs(ports []Port) error {
	for _, p := range ports {
		if p.Proto == "udp" {
			if err := flushUDP(p.Host); err != nil {
				return err
			}
		}
	}
	return nil
}

// flushUDP forgets the conntrack entries of UDP packets already sent to the host port:
// NAT is decided on a flow's first packet, so a client that sent before the DNAT existed
// would keep missing the container for as long as its entry lives (CNI portmap does the same).
func flushUDP(port int) error {
	f := &netlink.ConntrackFilter{}
	if err := f.AddProtocol(17); err != nil {
		return err
	}
	if err := f.AddPort(netlink.ConntrackOrigDstPort, uint16(port)); err != nil {
		return err
	}
	trace.Step(fmt.Sprintf("forget UDP flows to port %d that predate the DNAT", port), fmt.Sprintf("conntrack -D -p udp --dport %d", port))
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, f); err != nil {
		return fmt.Errorf("flush conntrack for udp port %d: %w", port, err)
	}
	return nil
}

func nthIP(sn *net.IPNet, n uint32) net.IP {
	b := sn.IP.To4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) + n
	return net.IPv4(byte(v>>24), byte(v>>16), byte(v>>8), byte(v)).To4()
}

func linkUp(h *netlink.Handle, name, equiv string) error {
	l, err := h.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find %s: %w", name, err)
	}
	if l.Attrs().Flags&net.FlagUp != 0 {
		return nil
	}
	trace.Step("bring "+name+" up", equiv)
	return h.LinkSetUp(l)
}

func writeSysctl(key, val string) error {
	p := "/proc/sys/" + strings.ReplaceAll(key, ".", "/")
	if b, err := os.ReadFile(p); err == nil && strings.TrimSpace(string(b)) == val {
		return nil
	}
	trace.Step("set "+key, "sysctl -w "+key+"="+val)
	return os.WriteFile(p, []byte(val), 0)
}

// ensureBridge makes the bridge with the gateway address and brings it up, once; it also
// turns on forwarding, and route_localnet so a published port answers on 127.0.0.1 too.
func ensureBridge(sn *net.IPNet, gw net.IP) (netlink.Link, error) {
	name := Bridge()
	br, err := netlink.LinkByName(name)
	if err != nil {
		var nf netlink.LinkNotFoundError
		if !errors.As(err, &nf) {
			return nil, err
		}
		trace.Step("create the bridge every container plugs into", "ip link add "+name+" type bridge")
		if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if br, err = netlink.LinkByName(name); err != nil {
			return nil, err
		}
	}
	addrs, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	ones, _ := sn.Mask.Size()
	want := &net.IPNet{IP: gw, Mask: sn.Mask}
	have := false
	for _, a := range addrs {
		if a.IPNet.String() == want.String() {
			have = true
		}
	}
	if !have {
		trace.Step("give the bridge the gateway address", fmt.Sprintf("ip addr add %s/%d dev %s", gw, ones, name))
		if err := netlink.AddrAdd(br, &netlink.Addr{IPNet: want}); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("address %s on %s: %w", want, name, err)
		}
	}
	if br.Attrs().Flags&net.FlagUp == 0 {
		trace.Step("bring the bridge up", "ip link set "+name+" up")
		if err := netlink.LinkSetUp(br); err != nil {
			return nil, err
		}
	}
	if err := writeSysctl("net.ipv4.ip_forward", "1"); err != nil {
		return nil, err
	}
	if err := writeSysctl("net.ipv4.conf."+name+".route_localnet", "1"); err != nil {
		return nil, err
	}
	return br, nil
}

// ensureVeth creates the veth pair with its peer born inside the netns as eth0, and plugs
// the host end into the bridge.
func ensureVeth(id string, h *netlink.Handle, ns netns.NsHandle, br netlink.Link) error {
	host := HostVeth(id)
	l, err := netlink.LinkByName(host)
	if err != nil {
		if _, e := h.LinkByName("eth0"); e == nil {
			return cli.Errorf("run: netsetup del "+id, "netns %s already has an eth0 but %s is missing", id, host)
		}
		trace.Step("create the veth pair, its peer inside the netns as eth0",
			fmt.Sprintf("ip link add %s type veth peer name eth0 netns %s", host, id))
		v := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: host}, PeerName: "eth0", PeerNamespace: netlink.NsFd(int(ns))}
		if err := netlink.LinkAdd(v); err != nil {
			return fmt.Errorf("create veth %s: %w", host, err)
		}
		if l, err = netlink.LinkByName(host); err != nil {
			return err
		}
	}
	if l.Attrs().MasterIndex != br.Attrs().Index {
		trace.Step("plug the host end into the bridge", "ip link set "+host+" master "+Bridge())
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return err
		}
	}
	// Hairpin lets a frame leave by the port it came in on: a container that reaches its own
	// published port through the host's address gets its answer back on its own veth.
	if pi, err := netlink.LinkGetProtinfo(l); err != nil || !pi.Hairpin {
		trace.Step("let the container reach itself through the bridge (hairpin)", "ip link set "+host+" type bridge_slave hairpin on")
		if err := netlink.LinkSetHairpin(l, true); err != nil {
			return fmt.Errorf("hairpin on %s: %w", host, err)
		}
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		trace.Step("bring the host end up", "ip link set "+host+" up")
		return netlink.LinkSetUp(l)
	}
	return nil
}

func configureEth0(id string, h *netlink.Handle, ip, gw net.IP, ones int) error {
	eth0, err := h.LinkByName("eth0")
	if err != nil {
		return fmt.Errorf("eth0 in netns %s: %w", id, err)
	}
	addr := &net.IPNet{IP: ip, Mask: net.CIDRMask(ones, 32)}
	addrs, err := h.AddrList(eth0, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	have := false
	for _, a := range addrs {
		have = have || a.IPNet.String() == addr.String()
	}
	if !have {
		trace.Step("give the container its address", fmt.Sprintf("ip -n %s addr add %s dev eth0", id, addr))
		if err := h.AddrAdd(eth0, &netlink.Addr{IPNet: addr}); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
	}
	if err := linkUp(h, "eth0", "ip -n "+id+" link set eth0 up"); err != nil {
		return err
	}
	routes, err := h.RouteList(eth0, netlink.FAMILY_V4)
	if err != nil {
		return err
	}
	for _, r := range routes {
		if (r.Dst == nil || r.Dst.String() == "0.0.0.0/0") && r.Gw.Equal(gw) {
			return nil
		}
	}
	trace.Step("route everything else through the bridge", fmt.Sprintf("ip -n %s route add default via %s", id, gw))
	return h.RouteReplace(&netlink.Route{LinkIndex: eth0.Attrs().Index, Gw: gw})
}

// Del removes what Add made for the container: its port rules, the veth pair, its address
// and the pinned netns. When it was the last container, the bridge and the shared rules go
// too, so the host is left as it was before the first add (ip_forward stays on). Deleting
// what is already gone succeeds.
func Del(id string) error {
	if err := state.ValidID(id); err != nil {
		return err
	}
	l, err := lock()
	if err != nil {
		return err
	}
	defer l.Unlock()
	ipt, err := newIPT()
	if err != nil {
		return err
	}
	// One look at the rules now, one batch of deletions at the end (two processes, where a
	// rule at a time took a dozen); the rule-at-a-time way stays as the fallback.
	snap, serr := saveRules()
	if serr != nil {
		if err := deleteOwnRules(ipt, id); err != nil {
			return err
		}
	}
	host := HostVeth(id)
	if v, err := netlink.LinkByName(host); err == nil {
		trace.Step("delete the veth pair (its eth0 end goes with it)", "ip link del "+host)
		if err := netlink.LinkDel(v); err != nil {
			return fmt.Errorf("delete %s: %w", host, err)
		}
	}
	if err := release(id); err != nil {
		return err
	}
	sweepClaims()
	if err := deleteNetns(state.NetnsPath(id), id); err != nil {
		return err
	}
	last := allocated() == 0
	if snap != nil {
		rules, chains := snap.toDelete(id, last)
		if err := deleteBatch("remove a rule of "+id, rules, chains); err != nil {
			trace.Step(fmt.Sprintf("the batch failed (%v): remove the rules one at a time", err))
			if err := deleteOwnRules(ipt, id); err != nil {
				return err
			}
		} else if last {
			return deleteBridge()
		}
	}
	if last {
		return teardownShared(ipt)
	}
	return nil
}

// deleteOwnRules removes the rules tagged with the container's id, one iptables run each.
func deleteOwnRules(ipt *iptables.IPTables, id string) error {
	rules, err := ownRules(ipt, id)
	if err != nil {
		return err
	}
	for _, r := range rules {
		if err := deleteRule(ipt, "remove a rule of "+id, r); err != nil {
			return err
		}
	}
	return nil
}

// toDelete picks from the snapshot the container's own rules and, when it was the last
// container, the shared ones, whatever a killed del left in our chain, and the chain.
func (s *snapshot) toDelete(id string, last bool) ([]savedRule, []string) {
	var rules []savedRule
	for _, r := range s.rules {
		ours := r.tag == containerTag(id)
		if last {
			// This bridge's shared rules (another HARDWAY_BRIDGE's stay), the jumps to our
			// chain, and what a killed del left in the chain.
			f := strings.Fields(r.line)
			shared := r.tag == sharedTag && (slices.Contains(f, Bridge()) || slices.Contains(f, Chain))
			ours = ours || shared || r.table == "nat" && r.chain == Chain
		}
		if ours {
			rules = append(rules, r)
		}
	}
	var chains []string
	if last && s.chains["nat/"+Chain] {
		chains = append(chains, "nat/"+Chain)
	}
	return rules, chains
}

// teardownShared removes the bridge and the rules every container shared.
func teardownShared(ipt *iptables.IPTables) error {
	br, err := netlink.LinkByName(Bridge())
	if err != nil {
		return nil // no bridge: nothing of ours is shared
	}
	subnet := DefaultSubnet
	if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) > 0 {
		a := addrs[0].IPNet
		subnet = (&net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}).String()
	}
	for _, r := range sharedRules(subnet, Bridge()) {
		if err := deleteRule(ipt, "last container gone: remove a shared rule", r); err != nil {
			return err
		}
	}
	// -X alone when the chain is empty, as every del leaves it; one a killed del left rules
	// in is flushed first.
	err = ipt.DeleteChain("nat", Chain)
	if err != nil && !notExist(err) {
		err = ipt.ClearAndDeleteChain("nat", Chain)
	}
	if err != nil && !notExist(err) {
		return err
	}
	if err == nil {
		trace.Step("remove the published-ports chain", "iptables -t nat -X "+Chain)
	}
	return deleteBridge()
}

// deleteBridge removes the bridge once no container is left on it.
func deleteBridge() error {
	br, err := netlink.LinkByName(Bridge())
	if err != nil {
		return nil
	}
	trace.Step("last container gone: remove the bridge", "ip link del "+Bridge())
	return netlink.LinkDel(br)
}
