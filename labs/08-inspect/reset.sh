#!/usr/bin/env bash
# labs/08-inspect/reset.sh: remove the lab's container (shim, network, cgroup, bundle) and
# files; stop the registry if the lab started it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
lab_run shim rm lab08
lab_run netsetup del lab08
lab_run cgset delete lab08
lab_run overlay rm lab08
# The cgroup parent goes too when the lab made it and nothing else uses it.
for d in /sys/fs/cgroup/*/"$LAB_CGPARENT" /sys/fs/cgroup/"$LAB_CGPARENT"; do
  [ -d "$d" ] && rmdir "$d" 2>/dev/null
done
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
