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
	"sync"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
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

	// No bridge yet means, as a rule, nothing of ours is in iptables either: worth trying
	// the one-batch way that fails if the chain is there after all.
	br, err := linkOrNil(Bridge())
	if err != nil {
		return "", err
	}
	first := br == nil
	had, err := lookupIP(id)
	if err != nil {
		return "", err
	}
	ip, err := allocate(id, sn)
	if err != nil {
		return "", err
	}
	nsPath := state.NetnsPath(id)
	// The links and the rules touch different parts of the kernel: build them at once.
	err = together(
		func() error { return wire(id, nsPath, sn, ip) },
		func() error { return addRules(id, sn, ip, ports, first, had == nil) },
	)
	if err != nil {
		return "", err
	}
	return nsPath, nil
}

// wire makes the netns, the bridge and the veth pair, and gives eth0 its address and route.
func wire(id, nsPath string, sn *net.IPNet, ip net.IP) error {
	if err := createNetns(nsPath, id); err != nil {
		return err
	}
	ns, err := netns.GetFromPath(nsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return err
	}
	defer h.Close()
	if err := linkUp(h, "lo", "ip -n "+id+" link set lo up"); err != nil {
		return err
	}
	gw := nthIP(sn, 1)
	br, err := ensureBridge(sn, gw)
	if err != nil {
		return err
	}
	if err := ensureVeth(id, h, ns, br); err != nil {
		return err
	}
	ones, _ := sn.Mask.Size()
	return configureEth0(id, h, ip, gw, ones)
}

// addRules adds the shared rules unless they are there and the container's own for each
// published port, in one batch: with first (the bridge was not there) the chain and every
// rule; with newIP (the address is new, so no earlier add of this id got to its rules) a
// check of the shared rules and the container's appended; else (an add again) a check of
// them all. A batch changes nothing if it fails (a table's part at least, see addBatch), and
// then each rule is checked and added on its own.
func addRules(id string, sn *net.IPNet, ip net.IP, ports []Port, first, newIP bool) error {
	var rules []rule
	var whys []string
	for _, r := range sharedRules(sn.String(), Bridge()) {
		rules, whys = append(rules, r), append(whys, "bridge network rule (shared by all containers)")
	}
	for _, p := range ports {
		rules = append(rules, portRule(id, p, ip.String()), hairpinRule(id, p, ip.String()))
		whys = append(whys, fmt.Sprintf("publish %s → %s:%d", p, ip, p.Container), fmt.Sprintf("hairpin: let %s reach its own published port %d", id, p.Host))
	}
	shared := len(sharedRules(sn.String(), Bridge()))
	checks := len(rules) // an add again: every rule is there, unless an add was killed
	switch {
	case first:
		checks = 0
	case newIP:
		checks = shared
	}
	err := addBatch(first, rules, whys, checks)
	if err == nil {
		return flushUDPs(ports)
	}
	trace.Step(fmt.Sprintf("the batch failed (%v): check and add the rules one at a time", err))
	ipt, err := newIPT()
	if err != nil {
		return err
	}
	fresh, err := ensureChain(ipt, "nat", Chain)
	if err != nil {
		return err
	}
	for i, r := range rules {
		// A chain made just now means no shared rule is there (add makes the chain before
		// them and del removes it after them, killed or not): append without -C first.
		add := appendRule
		if fresh && i < shared {
			add = appendNew
		}
		if err := add(ipt, whys[i], r); err != nil {
			return err
		}
	}
	return flushUDPs(ports)
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

// Del removes what Add made for the container: its port rules, the veth pair, the pinned
// netns and its address. When it was the last container, the bridge and the shared rules go
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
	sweepClaims()
	ip, err := lookupIP(id)
	if err != nil {
		return err
	}
	held := 0
	if ip != nil {
		held = 1
	}
	// The address is released last: a del killed before that leaves it, and the next del,
	// finding it, knows there is something to remove.
	last := allocated()-held == 0
	subnet := ""
	if last {
		subnet = bridgeSubnet() // for the rule-at-a-time way: the bridge may be gone by then
	}
	// The rules and the links are independent: remove them at once.
	err = together(
		func() error { return delRules(id, last, subnet) },
		func() error { return delLinks(id, last) },
	)
	if err != nil {
		return err
	}
	// After the links: the kernel tears an unpinned netns down in the background, taking
	// the locks a link deletion waits for.
	if err := deleteNetns(state.NetnsPath(id), id); err != nil {
		return err
	}
	return release(id)
}

// delRules removes the container's rules and, with the last container, the shared ones and
// the chain: one look with iptables-save and one batch of deletions (two processes, where a
// rule at a time took a dozen); the rule-at-a-time way if either fails.
func delRules(id string, last bool, subnet string) error {
	snap, err := saveRules()
	if err == nil {
		rules, chains := snap.toDelete(id, last)
		if err = deleteBatch("remove a rule of "+id, rules, chains); err == nil {
			return nil
		}
	}
	trace.Step(fmt.Sprintf("the batch failed (%v): remove the rules one at a time", err))
	ipt, err := newIPT()
	if err != nil {
		return err
	}
	if err := deleteOwnRules(ipt, id); err != nil {
		return err
	}
	if last {
		return teardownShared(ipt, subnet)
	}
	return nil
}

// delLinks deletes the veth pair and, with the last container, the bridge.
func delLinks(id string, last bool) error {
	host := HostVeth(id)
	v, err := linkOrNil(host)
	if err != nil {
		return err
	}
	var br netlink.Link
	if last {
		if br, err = linkOrNil(Bridge()); err != nil {
			return err
		}
	}
	if v != nil && br != nil {
		err := deleteInOne(v, br)
		if err == nil {
			return nil
		}
		trace.Step(fmt.Sprintf("that failed (%v): one link at a time", err))
	}
	if v != nil {
		trace.Step("delete the veth pair (its eth0 end goes with it)", "ip link del "+host)
		if err := netlink.LinkDel(v); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", host, err)
		}
	}
	if br != nil {
		trace.Step("last container gone: remove the bridge", "ip link del "+Bridge())
		if err := netlink.LinkDel(br); err != nil && !isNotFound(err) {
			return fmt.Errorf("delete %s: %w", Bridge(), err)
		}
	}
	return nil
}

// linkGroup is the interface group del puts the last veth and the bridge in, to delete both
// with one request (ip link del group): the kernel then waits once for its readers to let go
// of the links (synchronize_net, rcu_barrier), not once per link, ~20 ms less on a small VM.
// 0x6877 is "hw"; group 0 is every link's default.
const linkGroup = 0x6877

// deleteInOne deletes the veth and the bridge in one request, if no other link is in
// linkGroup (deleting a group deletes all of it).
func deleteInOne(v, br netlink.Link) error {
	links, err := netlink.LinkList()
	if err != nil {
		return err
	}
	for _, l := range links {
		if a := l.Attrs(); a.Group == linkGroup && a.Index != v.Attrs().Index && a.Index != br.Attrs().Index {
			return fmt.Errorf("%s is in interface group %d", a.Name, linkGroup)
		}
	}
	g := fmt.Sprint(linkGroup)
	trace.Step("last container gone: delete the veth pair (its eth0 end goes with it) and the bridge in one request",
		"ip link set "+v.Attrs().Name+" group "+g, "ip link set "+br.Attrs().Name+" group "+g, "ip link del group "+g)
	for _, l := range []netlink.Link{v, br} {
		if err := netlink.LinkSetGroup(l, linkGroup); err != nil {
			return fmt.Errorf("put %s in group %s: %w", l.Attrs().Name, g, err)
		}
	}
	req := nl.NewNetlinkRequest(unix.RTM_DELLINK, unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_GROUP, nl.Uint32Attr(linkGroup)))
	if _, err := req.Execute(unix.NETLINK_ROUTE, 0); err != nil {
		return fmt.Errorf("delete group %s: %w", g, err)
	}
	return nil
}

// linkOrNil finds a link by name; nil if there is none.
func linkOrNil(name string) (netlink.Link, error) {
	l, err := netlink.LinkByName(name)
	if isNotFound(err) {
		return nil, nil
	}
	return l, err
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, unix.ENODEV)
}

// bridgeSubnet is the subnet of the bridge's address, DefaultSubnet if it has none.
func bridgeSubnet() string {
	if br, err := netlink.LinkByName(Bridge()); err == nil {
		if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) > 0 {
			a := addrs[0].IPNet
			return (&net.IPNet{IP: a.IP.Mask(a.Mask), Mask: a.Mask}).String()
		}
	}
	return DefaultSubnet
}

// together runs the steps at once and returns the first error, in their order. With
// --trace they run one after the other, up to the first error, so the narration reads in
// order.
func together(steps ...func() error) error {
	if trace.Enabled() {
		for _, f := range steps {
			if err := f(); err != nil {
				return err
			}
		}
		return nil
	}
	errs := make([]error, len(steps))
	var wg sync.WaitGroup
	for i, f := range steps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f()
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
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

// teardownShared removes the rules every container shared, one at a time: filter's first,
// then nat's and the chain (the order addBatch relies on).
func teardownShared(ipt *iptables.IPTables, subnet string) error {
	rules := sharedRules(subnet, Bridge())
	slices.SortStableFunc(rules, func(a, b rule) int { return strings.Compare(a.table, b.table) }) // filter < nat
	for _, r := range rules {
		if err := deleteRule(ipt, "last container gone: remove a shared rule", r); err != nil {
			return err
		}
	}
	// -X alone when the chain is empty, as every del leaves it; one a killed del left rules
	// in is flushed first.
	err := ipt.DeleteChain("nat", Chain)
	if err != nil && !notExist(err) {
		err = ipt.ClearAndDeleteChain("nat", Chain)
	}
	if err != nil && !notExist(err) {
		return err
	}
	if err == nil {
		trace.Step("remove the published-ports chain", "iptables -t nat -X "+Chain)
	}
	return nil
}
