#!/usr/bin/env bash
# Lab 05: cgroups by hand: the files, v1 vs v2, an OOM kill, a fork bomb held by pids.max.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
lab_scratch
# A re-run starts from a clean slate.
for id in lab05-mem lab05-pids; do cgset delete "$id" >/dev/null 2>&1 || true; done

lab_step "which cgroup layout does this machine have?"
lab_note "cgroup2fs at /sys/fs/cgroup: unified v2; tmpfs with a cgroup2 at unified/: hybrid; tmpfs alone: v1"
lab_sh 'stat -fc "%T  /sys/fs/cgroup" /sys/fs/cgroup; stat -fc "%T  /sys/fs/cgroup/unified" /sys/fs/cgroup/unified 2>/dev/null || true'
lab_sh 'cat /proc/self/cgroup'

lab_step "create a cgroup with limits, narrated: every file cgset writes"
lab_run cgset create lab05-mem --memory 16m --memory-swap 16m --pids 50 --cpus 0.5 --trace
lab_run cgset show lab05-mem

lab_step "the same limits are plain files: read them back"
if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
  d=$(lab_cgroup_dir memory lab05-mem)
  lab_sh "cat $d/memory.max $d/memory.swap.max $d/pids.max $d/cpu.max"
else
  lab_sh "cat $(lab_cgroup_dir memory lab05-mem)/memory.limit_in_bytes $(lab_cgroup_dir pids lab05-mem)/pids.max $(lab_cgroup_dir cpu lab05-mem)/cpu.cfs_quota_us"
  lab_note "v2 would say memory.max, pids.max and 'cpu.max = 50000 100000' in one dir instead"
fi

lab_step "v2 on this machine: the v2 code path, and a controller that is not delegated"
if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  lab_note "hybrid host: the cgroup2 at unified/ exists but every controller is bound to a v1 hierarchy"
  lab_sh 'cat /sys/fs/cgroup/unified/cgroup.controllers; echo "(those are all the controllers it has)"'
  lab_run env HARDWAY_CGROUP_ROOT=/sys/fs/cgroup/unified cgset create lab05-v2 --trace
  lab_wrong 'HARDWAY_CGROUP_ROOT=/sys/fs/cgroup/unified cgset set lab05-v2 --memory 64m'
  lab_run env HARDWAY_CGROUP_ROOT=/sys/fs/cgroup/unified cgset delete lab05-v2 --trace
else
  lab_sh "cat /sys/fs/cgroup/cgroup.subtree_control /sys/fs/cgroup/$LAB_CGPARENT/cgroup.subtree_control"
  lab_note "each ancestor lists the controllers its children may use: that is what delegated means"
fi

lab_step "an OOM kill: tail /dev/zero grows until the kernel kills it, and cgset watch reports it"
lab_note "cgset watch runs in the background; it prints 'oom ID COUNT' and exits when the cgroup is empty"
lab_sh "cgset watch lab05-mem > $LAB_SCRATCH/watch.out & sh -c 'cgset add lab05-mem \$\$ && exec tail /dev/zero' || echo \"tail ended: exit \$? (137 = SIGKILL)\"; wait; cat $LAB_SCRATCH/watch.out"
lab_sh 'cgset show lab05-mem | grep -e "oom kills" -e "memory limit"'
lab_sh 'dmesg 2>/dev/null | grep -i "memory cgroup out of memory" | tail -n 1 || true'

lab_step "a fork bomb held by pids.max"
lab_run cgset create lab05-pids --pids 10
lab_note "the shell moves itself in, then starts 30 sleeps: forks past the 10th task fail"
lab_sh 'sh -c "cgset add lab05-pids \$\$; for i in \$(seq 30); do sleep 60 & done 2>/dev/null; wait" & sleep 1; cgset show lab05-pids | grep "pids current"'
lab_run cgset show lab05-pids
lab_note "delete kills what is inside (freezer then SIGKILL on v1, cgroup.kill on v2) and removes the dirs"
lab_run cgset delete lab05-pids --trace

lab_done
