#!/usr/bin/env bash
# Lab 06: Docker's bridge network by hand: netns, veth, bridge, routes, MASQUERADE, DNAT,
# the localhost case and hairpin, all inside a network namespace that plays the host.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
H="nsenter --net=/run/netns/lab06-host --"
# A re-run starts from a clean slate: what an earlier run left goes first.
if [ -e /run/netns/lab06-host ]; then "$LAB_DIR/reset.sh" --yes >/dev/null 2>&1 || true; fi
lab_scratch

lab_step "a throwaway namespace plays the host, so your machine's network is untouched"
lab_note "198.51.100.1 on its lo plays the host's own address (eth0's on a real machine)"
lab_sh 'ip netns add lab06-host && ip -n lab06-host link set lo up && ip -n lab06-host addr add 198.51.100.1/32 dev lo'

lab_step "connect a container: netns, bridge, veth, address, route, NAT, a published port"
lab_sh "$H netsetup add lab06-web -p 8080:80 --trace"

lab_step "what the kernel now holds"
lab_run ip netns list
lab_sh "$H ip -br link show master hardway0; $H ip -br addr show hardway0"
lab_sh 'ip -n lab06-web -br addr show eth0; ip -n lab06-web route'
lab_note "the container's default route is the bridge's address: the host routes (and NATs) its traffic"

lab_step "a server in the container, reached four ways"
lab_sh "nsenter --net=/run/netns/lab06-web -- busybox nc -ll -p 80 -e echo hello from lab06-web >/dev/null 2>&1 & echo \$! > $LAB_SCRATCH/server.pid"
ip=$(ip -n lab06-web -4 -o addr show eth0 | awk '{print $4}' | cut -d/ -f1)
lab_sh "sleep 0.5; $H busybox nc -w 2 $ip 80                    # host → container address"
lab_sh "$H busybox nc -w 2 198.51.100.1 8080           # host address → published port (DNAT in PREROUTING/OUTPUT)"
lab_sh "$H busybox nc -w 2 127.0.0.1 8080              # localhost: route_localnet + MASQUERADE"
lab_sh "nsenter --net=/run/netns/lab06-web -- busybox nc -w 2 198.51.100.1 8080   # hairpin: the container to its own port"

lab_step "the rules: compare with 'iptables -t nat -S' on a Docker host (README)"
lab_sh "$H iptables -t nat -S | grep -e HARDWAY -e hardway"
lab_sh "$H sysctl net.ipv4.ip_forward net.ipv4.conf.hardway0.route_localnet"
lab_sh "$H netsetup show lab06-web"

lab_step "a second container comes and goes: del removes exactly what add made"
lab_sh "$H iptables-save | grep -c hardway"
lab_sh "$H netsetup add lab06-tmp -p 9090:80 >/dev/null; $H iptables-save | grep -c hardway"
lab_sh "$H netsetup del lab06-tmp --trace; $H iptables-save | grep -c hardway"

lab_done
