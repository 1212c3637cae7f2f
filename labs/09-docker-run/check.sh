#!/usr/bin/env bash
# Lab 09's self-check: lab09-web runs as docker run would have it, and the --rm
# containers are gone.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
root=${HARDWAY_ROOT:-/var/lib/hardway}
st=$root/containers/lab09-web/state.json
pid=$(jq -r .pid "$st" 2>/dev/null || echo 0)

check "lab09-web is running (state.json says so)" "run: labs/09-docker-run/run.sh --step (step 4: docker-run -d --name lab09-web …)" \
  test "$(jq -r .status "$st" 2>/dev/null)" = running
check "its process $pid is alive" "the container exited: docker-logs lab09-web says why" test -d "/proc/$pid"
check_sh "it is PID 1 of its own pid namespace" "nsrun did not make a pid namespace: nsrun --trace shows the clone flags" \
  "awk '/^NSpid:/ { exit \$NF != 1 }' /proc/$pid/status"
for ns in mnt uts ipc pid net; do
  check "it has its own $ns namespace" "the container shares the host's $ns namespace: compare readlink /proc/$pid/ns/$ns /proc/self/ns/$ns" \
    test "$(readlink "/proc/$pid/ns/$ns")" != "$(readlink /proc/self/ns/$ns)"
done
check "its hostname is web (-h web)" "docker-run -h passes --hostname to overlay: overlay create --help" \
  test "$(nsenter -t "$pid" -u hostname 2>/dev/null)" = web
check_sh "its memory limit is 64m (67108864 bytes)" "run: cgset show lab09-web (docker-run --memory 64m passes it to cgset create)" \
  "grep -qx 67108864 \$(cgset show lab09-web >/dev/null 2>&1; for d in /sys/fs/cgroup/memory/${HARDWAY_CGROUP_PARENT:-hardway}/lab09-web/memory.limit_in_bytes /sys/fs/cgroup/${HARDWAY_CGROUP_PARENT:-hardway}/lab09-web/memory.max; do [ -e \$d ] && echo \$d; done)"
check_sh "its pids limit is 64" "run: cgset show lab09-web (--pids-limit 64)" \
  "grep -qx 64 \$(for d in /sys/fs/cgroup/pids/${HARDWAY_CGROUP_PARENT:-hardway}/lab09-web/pids.max /sys/fs/cgroup/${HARDWAY_CGROUP_PARENT:-hardway}/lab09-web/pids.max; do [ -e \$d ] && echo \$d; done)"
check "the published port answers: curl http://127.0.0.1:8089/ says hello from web" \
  "run: netsetup show lab09-web (a DNAT rule for 8089 must be in iptables -t nat -S HARDWAY)" \
  bash -c 'curl -fsS --max-time 3 http://127.0.0.1:8089/ | grep -qx "hello from web"'
for id in lab09-pipe lab09-once lab09-trace lab09-stop; do
  check "$id is gone (--rm, overlay rm, docker-rm)" "run: docker-rm $id" test ! -e "$root/containers/$id"
done
check_end
