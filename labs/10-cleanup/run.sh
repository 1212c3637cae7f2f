#!/usr/bin/env bash
# Lab 10: remove everything the workshop made, then prove that nothing is left.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
root=${HARDWAY_ROOT:-/var/lib/hardway}
run=${HARDWAY_RUN:-/run/hardway}
parent=${HARDWAY_CGROUP_PARENT:-hardway}

# The ids this lab removes, to check afterwards that no netns of theirs is left.
ids=$(ls "$root/containers" 2>/dev/null; cat "$run"/ipam/[0-9]* 2>/dev/null) || true

lab_step "list what is ours: containers, and what the kernel holds for them"
lab_run docker-ps -a
lab_sh "ls $root/containers 2>/dev/null || true"
lab_sh "grep -c ' $root/' /proc/self/mountinfo || true"
lab_sh "ip -br link show master hardway0 2>/dev/null || true"
lab_sh "iptables -t nat -S 2>/dev/null | grep -i hardway || true"
lab_sh "ls -d /sys/fs/cgroup/*/$parent/*/ /sys/fs/cgroup/$parent/*/ 2>/dev/null || true"

lab_step "each lab's reset.sh, the last lab first: each undoes exactly what its lab made"
lab_note "a lab's scratch files, the netns that played the host in lab 06, a second registry: only the lab knows them"
for d in $(ls -d "$LAB_TOP"/labs/[0-9][0-9]-*/ | sort -r); do
  n=$(basename "$d")
  [ "$n" = "$LAB_NAME" ] || [ ! -x "$d/reset.sh" ] && continue
  printf '%s\n' "${_c}\$ labs/$n/reset.sh --yes${_0}"
  "$d/reset.sh" --yes >"$LAB_RUN/reset.out" 2>&1 || { cat "$LAB_RUN/reset.out"; lab_note "labs/$n/reset.sh failed: the steps below sweep up what it left"; }
done
rm -f "$LAB_RUN/reset.out"

lab_step "docker-rm every container: shim rm, netsetup del, cgset delete, overlay rm"
lab_note "docker-rm stops a running container first; removing what is already gone succeeds"
lab_sh "for id in \$(ls $root/containers 2>/dev/null); do docker-rm --show \"\$id\"; done"

lab_step "undo what a lab made by hand without a container dir (a netns, an address, a cgroup)"
lab_note "the address book names each address's owner; every cgroup under $parent/ is a container's"
lab_sh "for f in $run/ipam/[0-9]*; do [ -e \"\$f\" ] && netsetup del \"\$(cat \"\$f\")\"; done; true"
lab_note "with no address left, a del (even of nothing) takes down the bridge and the shared rules:"
lab_note "they stay when the last container was deleted in another netns (lab 06's host) that shared the book"
lab_sh "ls $run/ipam/[0-9]* >/dev/null 2>&1 || netsetup del lab10-sweep"
lab_sh "for d in /sys/fs/cgroup/*/$parent/*/ /sys/fs/cgroup/$parent/*/; do [ -e \"\$d/cgroup.procs\" ] && cgset delete \"\$(basename \"\$d\")\"; done; true"
lab_sh "for d in /sys/fs/cgroup/*/$parent /sys/fs/cgroup/$parent; do [ -d \"\$d\" ] && rmdir \"\$d\"; done; true"

lab_step "stop the registry and remove what was pulled and unpacked (docker system prune -a)"
lab_run registry stop
lab_run rm -rf "$root/oci" "$root/overlay" "$root/registry" "$root/locks" "$run/scratch"

lab_step "verify: no mount, netns, veth, rule, cgroup or process of ours is left"
lab_note "the same walk over /proc/self/mountinfo, /run/netns, ip link, iptables-save, /sys/fs/cgroup and /proc that check.sh does"
if left=$(lab_leftovers $ids); then
  echo "nothing of ours is left"
else
  printf '%s\n' "$left"
  lab_die "these are still there (see README.md, Debug this stage alone)"
fi
lab_done
