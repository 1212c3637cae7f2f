#!/usr/bin/env bash
# labs/03-overlay/reset.sh: unmount and remove the lab's container, its store and files; stop
# the registry if the lab started it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
lab_run overlay rm lab03
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
