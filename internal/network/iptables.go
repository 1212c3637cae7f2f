package network

import (
	"errors"
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"

	"github.com/hardway/hardway/internal/trace"
)

// Chain is the nat chain that holds the published ports, entered from PREROUTING (packets
// from outside) and OUTPUT (connections made on the host itself).
const Chain = "HARDWAY"

// sharedTag marks the rules every container shares; a container's own rules carry
// "hardway:ID", so `netsetup del ID` finds exactly what `add` made.
const sharedTag = "hardway"

func containerTag(id string) string { return "hardway:" + id }

type rule struct {
	table, chain string
	spec         []string
}

// sharedRules are what Docker sets up once per bridge: masquerade what leaves the subnet,
// send connections to a local address through HARDWAY, let the bridge's traffic be forwarded.
func sharedRules(subnet, bridge string) []rule {
	c := []string{"-m", "comment", "--comment", sharedTag}
	r := func(table, chain string, spec ...string) rule {
		// The comment goes before the target, where iptables -S prints it.
		n := len(spec) - 2
		s := append(append(append([]string{}, spec[:n]...), c...), spec[n:]...)
		return rule{table, chain, s}
	}
	return []rule{
		r("nat", "POSTROUTING", "-s", subnet, "!", "-o", bridge, "-j", "MASQUERADE"),
		// Connections from the host's own addresses (127.0.0.1 included) to a published port
		// leave with the bridge's address, so the container can answer them.
		r("nat", "POSTROUTING", "-o", bridge, "-m", "addrtype", "--src-type", "LOCAL", "-j", "MASQUERADE"),
		r("nat", "PREROUTING", "-m", "addrtype", "--dst-type", "LOCAL", "-j", Chain),
		r("nat", "OUTPUT", "-m", "addrtype", "--dst-type", "LOCAL", "-j", Chain),
		r("filter", "FORWARD", "-i", bridge, "-j", "ACCEPT"),
		r("filter", "FORWARD", "-o", bridge, "-j", "ACCEPT"),
	}
}

// portRule is the DNAT of one published port.
func portRule(id string, p Port, ip string) rule {
	spec := []string{"-p", p.Proto}
	if p.HostIP != "" {
		spec = append(spec, "-d", p.HostIP)
	}
	spec = append(spec, "--dport", fmt.Sprint(p.Host), "-m", "comment", "--comment", containerTag(id),
		"-j", "DNAT", "--to-destination", fmt.Sprintf("%s:%d", ip, p.Container))
	return rule{"nat", Chain, spec}
}

// hairpinRule masquerades a container's connection to its own published port: after DNAT
// the packet goes back to the container it came from, which would answer itself directly
// (the reply would skip the un-DNAT) unless the source is rewritten to the bridge's address,
// as Docker's hairpin=true rules do.
func hairpinRule(id string, p Port, ip string) rule {
	return rule{"nat", "POSTROUTING", []string{"-s", ip, "-d", ip, "-p", p.Proto, "--dport", fmt.Sprint(p.Container),
		"-m", "comment", "--comment", containerTag(id), "-j", "MASQUERADE"}}
}

// ownRules are every rule tagged with the container's id: its DNATs and hairpin masquerades.
func ownRules(ipt *iptables.IPTables, id string) ([]rule, error) {
	var out []rule
	for _, c := range []string{Chain, "POSTROUTING"} {
		rs, err := taggedRules(ipt, "nat", c, containerTag(id))
		if err != nil {
			return nil, err
		}
		out = append(out, rs...)
	}
	return out, nil
}

func newIPT() (*iptables.IPTables, error) {
	ipt, err := iptables.New()
	if err != nil {
		return nil, fmt.Errorf("iptables: %w (install it: apt-get install iptables)", err)
	}
	return ipt, nil
}

func appendRule(ipt *iptables.IPTables, why string, r rule) error {
	ok, err := ipt.Exists(r.table, r.chain, r.spec...)
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	return appendNew(ipt, why, r)
}

// appendNew appends a rule known not to be there.
func appendNew(ipt *iptables.IPTables, why string, r rule) error {
	trace.Step(why, "iptables -t "+r.table+" -A "+r.chain+" "+trace.Cmd(r.spec...))
	return ipt.Append(r.table, r.chain, r.spec...)
}

func deleteRule(ipt *iptables.IPTables, why string, r rule) error {
	// -D straight away, "not there" being fine: one iptables run instead of -C then -D
	// (each is a process, and del removes six shared rules with the last container). A
	// jump to our chain after an add killed before it made the chain fails the same way.
	if err := ipt.Delete(r.table, r.chain, r.spec...); err != nil {
		if notExist(err) {
			return nil
		}
		return err
	}
	trace.Step(why, "iptables -t "+r.table+" -D "+r.chain+" "+trace.Cmd(r.spec...))
	return nil
}

// notExist says whether iptables failed because the rule or chain is not there.
func notExist(err error) bool {
	var e *iptables.Error
	return errors.As(err, &e) && e.IsNotExist()
}

// ensureChain makes the chain unless it is there, and says whether it made it.
func ensureChain(ipt *iptables.IPTables, table, chain string) (bool, error) {
	ok, err := ipt.ChainExists(table, chain)
	if err != nil || ok {
		return false, err
	}
	trace.Step("create the chain for published ports", "iptables -t "+table+" -N "+chain)
	return true, ipt.NewChain(table, chain)
}

// taggedRules lists the rules of table/chain that carry the comment tag, as argument lists
// without the leading "-A CHAIN".
func taggedRules(ipt *iptables.IPTables, table, chain, tag string) ([]rule, error) {
	ok, err := ipt.ChainExists(table, chain)
	if err != nil || !ok {
		return nil, err
	}
	lines, err := ipt.List(table, chain)
	if err != nil {
		return nil, err
	}
	var out []rule
	for _, l := range lines {
		f := strings.Fields(l)
		for i := range f {
			f[i] = strings.Trim(f[i], `"`) // -S quotes comments; the rule's args are unquoted
		}
		if len(f) < 2 || f[0] != "-A" {
			continue
		}
		for i := 2; i+1 < len(f); i++ {
			if f[i] == "--comment" && f[i+1] == tag {
				out = append(out, rule{table, chain, f[2:]})
				break
			}
		}
	}
	return out, nil
}
