package network

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"syscall"

	"github.com/hardway/hardway/internal/trace"
)

// savedRule is one "-A CHAIN …" line of iptables-save, as the kernel holds the rule.
type savedRule struct {
	table, chain, line, tag string
}

// snapshot is what iptables-save shows of the rules: the tagged ones, and which chains exist.
type snapshot struct {
	rules  []savedRule
	chains map[string]bool // "nat/HARDWAY"
}

// saveRules reads every table in one iptables-save run. Deleting the rules exactly as it
// prints them needs no guess at how iptables normalises a rule (-m tcp, quoting).
func saveRules() (*snapshot, error) {
	cmd := exec.Command("iptables-save")
	cmd.SysProcAttr = diesWithUs()
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("iptables-save: %w", err)
	}
	s := &snapshot{chains: map[string]bool{}}
	table := ""
	for _, l := range strings.Split(string(out), "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"):
			s.chains[table+"/"+strings.Fields(l[1:])[0]] = true
		case strings.HasPrefix(l, "-A "):
			f := strings.Fields(l)
			r := savedRule{table: table, chain: f[1], line: l}
			for i := 2; i+1 < len(f); i++ {
				if f[i] == "--comment" {
					r.tag = strings.Trim(f[i+1], `"`)
					break
				}
			}
			s.rules = append(s.rules, r)
		}
	}
	return s, nil
}

// deleteBatch removes rules (and then chains, "table/CHAIN", which must end up empty) in
// one iptables-restore --noflush run: one process instead of one per rule, and each table's
// part applied atomically. Nothing else in the tables is touched.
func deleteBatch(why string, rules []savedRule, chains []string) error {
	if len(rules) == 0 && len(chains) == 0 {
		return nil
	}
	var in bytes.Buffer
	// filter's part first: see addBatch.
	for _, table := range []string{"filter", "nat"} {
		var lines []string
		for _, r := range rules {
			if r.table == table {
				d := "-D" + strings.TrimPrefix(r.line, "-A")
				trace.Step(why, "iptables -t "+table+" "+d)
				lines = append(lines, d)
			}
		}
		for _, c := range chains {
			if t, name, _ := strings.Cut(c, "/"); t == table {
				trace.Step("remove the published-ports chain", "iptables -t "+table+" -X "+name)
				lines = append(lines, "-X "+name)
			}
		}
		if len(lines) > 0 {
			fmt.Fprintf(&in, "*%s\n%s\nCOMMIT\n", table, strings.Join(lines, "\n"))
		}
	}
	return restore(&in, len(rules)+len(chains))
}

// addBatch appends rules in one iptables-restore --noflush. With chain, it first makes our
// chain (an add that found no bridge, so most likely nothing of ours): the batch fails if
// the chain is there. Otherwise the first checks rules are only checked (-C), the shared
// ones an add of a new address expects to find: the batch fails if one is missing. A table's
// part changes nothing when one of its lines fails. nat's part (the chain, the shared nat
// rules, the container's) commits before filter's, and del removes filter's before nat's: a
// kill in between leaves the chain, so the next add does not take the rules for absent.
func addBatch(chain bool, rules []rule, whys []string, checks int) error {
	var in bytes.Buffer
	n := 0
	for _, table := range []string{"nat", "filter"} {
		var lines []string
		if chain && table == "nat" {
			trace.Step("create the chain for published ports", "iptables -t nat -N "+Chain)
			lines = append(lines, "-N "+Chain)
		}
		for i, r := range rules {
			if r.table != table {
				continue
			}
			op, why := "-A", whys[i]
			if i < checks {
				op, why = "-C", "check: "+why
			}
			a := op + " " + r.chain + " " + strings.Join(r.spec, " ")
			trace.Step(why, "iptables -t "+table+" "+a)
			lines = append(lines, a)
		}
		n += len(lines)
		if len(lines) > 0 {
			fmt.Fprintf(&in, "*%s\n%s\nCOMMIT\n", table, strings.Join(lines, "\n"))
		}
	}
	return restore(&in, n)
}

// restore applies a batch with iptables-restore --noflush: one process for every change.
func restore(in *bytes.Buffer, n int) error {
	trace.Step(fmt.Sprintf("the %d steps above, in one go", n), "iptables-restore -w --noflush <<EOF … EOF")
	cmd := exec.Command("iptables-restore", "-w", "--noflush")
	cmd.Stdin = in
	cmd.SysProcAttr = diesWithUs()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// diesWithUs has the kernel kill an iptables child when netsetup is killed, so a kill -9
// leaves no batch running behind the next netsetup's back (a batch commits whole or not at
// all, so killing it is safe).
func diesWithUs() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
