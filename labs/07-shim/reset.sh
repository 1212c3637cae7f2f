#!/usr/bin/env bash
# labs/07-shim/reset.sh: remove the lab's container (state, log, bundle) and files; stop the
# registry if the lab started it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
lab_run shim rm lab07
lab_run overlay rm lab07
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
