#!/usr/bin/env bash
# Lab 00's undo: stop the registry and remove its storage (the seed images). The built
# tools stay: they are files of the repository, not state of the machine.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
lab_step "stop the registry and remove its storage"
lab_run registry stop
lab_run rm -rf "${HARDWAY_ROOT:-/var/lib/hardway}/registry"
lab_forget
