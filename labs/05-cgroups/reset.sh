#!/usr/bin/env bash
# Lab 05 reset: remove the lab's cgroups (killing what is in them) and its files.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"

for id in lab05-mem lab05-pids; do lab_sh "cgset delete $id"; done
if [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
  lab_sh "HARDWAY_CGROUP_ROOT=/sys/fs/cgroup/unified cgset delete lab05-v2"
  rmdir "/sys/fs/cgroup/unified/$LAB_CGPARENT" 2>/dev/null || true
fi
# The parent goes too when the lab made it and nothing else uses it.
for d in /sys/fs/cgroup/*/"$LAB_CGPARENT" /sys/fs/cgroup/"$LAB_CGPARENT"; do
  [ -d "$d" ] && rmdir "$d" 2>/dev/null
done
lab_unscratch
lab_forget
