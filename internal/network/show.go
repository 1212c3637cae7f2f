package network

import (
	"fmt"
	"io"
	"strings"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/state"
)

// Info is what `netsetup show` reports.
type Info struct {
	ID       string   `json:"id"`
	Netns    string   `json:"netns"`
	IP       string   `json:"ip"`
	Bridge   string   `json:"bridge"`
	Gateway  string   `json:"gateway"`
	HostVeth string   `json:"hostVeth"`
	Hairpin  bool     `json:"hairpin"`
	Peer     string   `json:"peer"`
	Routes   []string `json:"routes"`
	Rules    []string `json:"rules"`
}

// Show reads the container's network back from the kernel.
func Show(id string) (*Info, error) {
	if err := state.ValidID(id); err != nil {
		return nil, err
	}
	in := &Info{ID: id, Netns: state.NetnsPath(id), Bridge: Bridge(), HostVeth: HostVeth(id), Peer: "eth0"}
	ip, err := lookupIP(id)
	if err != nil {
		return nil, err
	}
	if ip == nil && !isNetns(in.Netns) {
		return nil, cli.Errorf("run: netsetup add "+id, "container %s has no network", id)
	}
	if ip != nil {
		in.IP = ip.String()
	}
	if l, err := netlink.LinkByName(in.HostVeth); err != nil {
		in.HostVeth += " (missing)"
	} else if pi, err := netlink.LinkGetProtinfo(l); err == nil {
		in.Hairpin = pi.Hairpin
	}
	if br, err := netlink.LinkByName(in.Bridge); err == nil {
		if addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4); len(addrs) > 0 {
			in.Gateway = addrs[0].IPNet.String()
		}
	}
	if ns, err := netns.GetFromPath(in.Netns); err == nil {
		defer ns.Close()
		if h, err := netlink.NewHandleAt(ns); err == nil {
			defer h.Close()
			routes, _ := h.RouteList(nil, netlink.FAMILY_V4)
			for _, r := range routes {
				in.Routes = append(in.Routes, formatRoute(h, r))
			}
		}
	} else {
		in.Netns += " (missing)"
	}
	if ipt, err := newIPT(); err == nil {
		rules, _ := ownRules(ipt, id)
		for _, r := range rules {
			in.Rules = append(in.Rules, "iptables -t "+r.table+" -A "+r.chain+" "+strings.Join(r.spec, " "))
		}
	}
	return in, nil
}

func formatRoute(h *netlink.Handle, r netlink.Route) string {
	dst := "default"
	if r.Dst != nil && r.Dst.String() != "0.0.0.0/0" {
		dst = r.Dst.String()
	}
	s := dst
	if r.Gw != nil {
		s += " via " + r.Gw.String()
	}
	if l, err := h.LinkByIndex(r.LinkIndex); err == nil {
		s += " dev " + l.Attrs().Name
	}
	if r.Src != nil {
		s += " src " + r.Src.String()
	}
	return s
}

// WriteInfo renders Info as plain text.
func WriteInfo(w io.Writer, in *Info) error {
	var b strings.Builder
	fmt.Fprintf(&b, "container: %s\n", in.ID)
	fmt.Fprintf(&b, "netns:     %s\n", in.Netns)
	fmt.Fprintf(&b, "address:   %s\n", orNone(in.IP))
	hp := ""
	if in.Hairpin {
		hp = ", hairpin on"
	}
	fmt.Fprintf(&b, "veth:      %s (host, on bridge %s%s) <-> %s (in the netns)\n", in.HostVeth, in.Bridge, hp, in.Peer)
	fmt.Fprintf(&b, "bridge:    %s, gateway %s\n", in.Bridge, orNone(in.Gateway))
	fmt.Fprintf(&b, "routes:\n")
	for _, r := range in.Routes {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	fmt.Fprintf(&b, "rules:\n")
	if len(in.Rules) == 0 {
		fmt.Fprintf(&b, "  (no published ports)\n")
	}
	for _, r := range in.Rules {
		fmt.Fprintf(&b, "  %s\n", r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
