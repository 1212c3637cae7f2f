#!/usr/bin/env bash
# labs/04-nsrun/reset.sh: remove the lab's container, bundle, propagation mount and files; stop
# the registry if the lab started it.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
lab_run shim rm lab04
lab_run overlay rm lab04
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
