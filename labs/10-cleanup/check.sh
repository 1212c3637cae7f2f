#!/usr/bin/env bash
# Lab 10's self-check: the machine holds nothing of ours any more.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
left=$(lab_leftovers) || true
# none KIND: nothing of that kind is left; else print them, registries first (the likeliest
# to be forgotten, and the hint names them).
none() { ! grep "^$1: " <<<"$left" | awk '/ serve /{print; next} {rest = rest $0 "\n"} END {printf "%s", rest}' | grep .; }
check "no mount under the state dirs" "run: overlay rm ID (or umount the path shown)" none mount
check "no network namespace of ours" "run: netsetup del ID (or ip netns del NAME)" none netns
check "no bridge hardway0 and no veth on it" "run: netsetup del ID for each container (the last one removes the bridge)" none link
check "no iptables rule or chain of ours" "run: netsetup del ID; the rules carry the comment hardway:ID (iptables-save | grep hardway)" none iptables
check "no cgroup of ours" "run: cgset delete ID, then rmdir the empty parent dirs shown" none cgroup
check "no process of ours (shim, nsrun, the container, the registry)" "run: scripts/registry stop; docker-rm ID" none process
check "no address in the address book" "run: netsetup del ID (the file names the owner)" none address
check "no container dir" "run: docker-rm ID" none "container dir"
check_end
