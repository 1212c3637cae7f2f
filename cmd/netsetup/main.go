// Command netsetup is the network stage of `docker run`: it gives a container a network
// namespace wired to the bridge hardway0, an address, NAT and published ports.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"

	"github.com/hardway/hardway/internal/cli"
	"github.com/hardway/hardway/internal/network"
)

const description = `Set up a container's network: the network stage of 'docker run'.

'add' reads a container id (argument or one line of stdin) and builds Docker's bridge
network for it: a network namespace pinned at /run/netns/ID (as 'ip netns add' does), the
bridge hardway0 with the gateway 10.29.0.1/16, a veth pair hw<hash>/eth0, an address from
the address book in $HARDWAY_RUN/ipam, a default route, outbound NAT (MASQUERADE) and a
DNAT rule per published port in the nat chain HARDWAY. It prints the netns path on stdout;
nsrun --netns ID puts the container in it:

  netsetup add web -p 8080:80          # prints /run/netns/web
  shim --id web -- nsrun --netns web "$bundle"
  curl http://127.0.0.1:8080/
  netsetup show web                    # address, veth, routes, rules
  netsetup del web

A published port answers on every host address, on 127.0.0.1 (route_localnet on the
bridge, and a MASQUERADE of host-sourced traffic into it), and from the container itself
(hairpin: the bridge port in hairpin mode plus a per-port MASQUERADE, like Docker's
hairpin=true rules). Publishing a UDP port forgets conntrack entries that predate it.

Adding again is a no-op (the same address). 'del' removes exactly what 'add' made for the
container; when the last container goes, the bridge, the HARDWAY chain and the shared rules
go too (net.ipv4.ip_forward stays on). Every rule carries the comment hardway:ID
(hardway for the shared ones): iptables -t nat -S | grep hardway.`

type addCmd struct {
	Publish []string `short:"p" help:"Publish a container port on the host: HOST:CTR[/tcp|udp] or IP:HOST:CTR (repeatable)." placeholder:"HOST:CTR"`
	Subnet  string   `help:"Bridge network (the first address is the gateway)." default:"${subnet}"`
	ID      string   `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *addCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	var ports []network.Port
	for _, s := range c.Publish {
		p, err := network.ParsePort(s)
		if err != nil {
			return err
		}
		ports = append(ports, p)
	}
	path, err := network.Add(id, c.Subnet, ports)
	if err != nil {
		return err
	}
	fmt.Println(path)
	return nil
}

type delCmd struct {
	ID string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *delCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	return network.Del(id)
}

type showCmd struct {
	JSON bool   `name:"json" help:"Print a JSON record instead of text."`
	ID   string `arg:"" optional:"" name:"ID" help:"Container id (default: one line of stdin)."`
}

func (c *showCmd) Run() error {
	id, err := cli.Input(c.ID, "container id")
	if err != nil {
		return err
	}
	in, err := network.Show(id)
	if err != nil {
		return err
	}
	if c.JSON {
		return cli.PrintJSON(in)
	}
	return network.WriteInfo(os.Stdout, in)
}

type netsetupCmd struct {
	cli.Globals
	Add  addCmd  `cmd:"" help:"Create the container's netns, veth, address, NAT and published ports; prints the netns path."`
	Del  delCmd  `cmd:"" aliases:"rm" help:"Remove what add made for the container (gone already is fine)."`
	Show showCmd `cmd:"" help:"Show the container's address, veth pair, routes and rules."`
}

func main() {
	var cmd netsetupCmd
	cli.Main("netsetup", description, &cmd, &cmd.Globals, kong.Vars{"subnet": network.DefaultSubnet})
}
