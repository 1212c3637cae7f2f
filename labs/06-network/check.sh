#!/usr/bin/env bash
# Lab 06 self-check: the network run.sh leaves up.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export PATH="$LAB_TOP/bin:$PATH"
H="nsenter --net=/run/netns/lab06-host --"

check "the host-playing netns lab06-host exists" "run step 1 of run.sh" test -e /run/netns/lab06-host
check "the container's netns is pinned at /run/netns/lab06-web" "run step 2: netsetup add lab06-web -p 8080:80" test -e /run/netns/lab06-web
check_sh "its eth0 has an address on 10.29.0.0/16" "run step 2" 'ip -n lab06-web -4 addr show eth0 | grep -q "inet 10\.29\."'
check_sh "the bridge hardway0 is up in the host netns" "run step 2" "$H ip link show hardway0 | grep -q 'state UP'"
check_sh "a DNAT rule publishes 8080" "run step 2 with -p 8080:80" "$H iptables -t nat -S HARDWAY | grep -q 'dport 8080'"
check_sh "the published port answers on 127.0.0.1" "is the server running? run step 4" "$H busybox nc -w 2 127.0.0.1 8080 | grep -q hello"
check_sh "hairpin: the container reaches its own published port" "netsetup add sets hairpin and a MASQUERADE per port" \
  "nsenter --net=/run/netns/lab06-web -- busybox nc -w 2 198.51.100.1 8080 | grep -q hello"
check_sh "lab06-tmp left nothing behind" "netsetup del lab06-tmp" "! $H iptables-save | grep -q 'hardway:lab06-tmp' && ! test -e /run/netns/lab06-tmp"
check_end
