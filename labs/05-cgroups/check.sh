#!/usr/bin/env bash
# Lab 05 self-check: the state run.sh leaves behind.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
export PATH="$LAB_TOP/bin:$PATH"

check "cgset is built" "run: make" test -x "$LAB_TOP/bin/cgset"
check_sh "the cgroup lab05-mem exists with a 16m memory limit" "run step 2: cgset create lab05-mem --memory 16m" \
  'cgset show lab05-mem | grep -q "memory limit: 16777216"'
check_sh "the kernel OOM-killed in lab05-mem and cgset counts it" "run step 5 (tail /dev/zero in lab05-mem)" \
  'cgset show lab05-mem | grep -Eq "oom kills: +[1-9]"'
check_sh "cgset watch printed the OOM kill" "run step 5: cgset watch lab05-mem" "grep -q '^oom lab05-mem ' $LAB_SCRATCH/watch.out"
check_sh "lab05-pids was deleted with its processes" "run step 6: cgset delete lab05-pids" \
  "! ls -d /sys/fs/cgroup/*/$LAB_CGPARENT/lab05-pids /sys/fs/cgroup/$LAB_CGPARENT/lab05-pids 2>/dev/null | grep -q ."
check_sh "no v2 test cgroup left on the unified hierarchy" "HARDWAY_CGROUP_ROOT=/sys/fs/cgroup/unified cgset delete lab05-v2" \
  "! test -d /sys/fs/cgroup/unified/$LAB_CGPARENT/lab05-v2"
check_end
