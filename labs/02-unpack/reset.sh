#!/usr/bin/env bash
# labs/02-unpack/reset.sh: remove the lab's store and files, stop the registry if the lab
# started it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
# The hostile image pushed in step 8 (its blobs go with the registry's garbage collection).
repo=${HARDWAY_ROOT:-/var/lib/hardway}/registry/data/docker/registry/v2/repositories/lab02
[ -d "$repo" ] && lab_sh "rm -rf $repo"
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
