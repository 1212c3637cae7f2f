#!/usr/bin/env bash
# labs/01-pull/reset.sh: put a tampered layer back, stop the lab's auth registry (and the
# main one if the lab started it), remove the lab's files.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
if [ -e "$LAB/layer.orig" ] && [ -s "$LAB/manifest.json" ]; then
  l=$(jq -r '.layers[0].digest' "$LAB/manifest.json" | cut -d: -f2)
  lab_run cp -p "$LAB/layer.orig" "$LAB_ROOT/registry/data/docker/registry/v2/blobs/sha256/${l:0:2}/$l/data"
fi
if [ -s "$LAB/authreg/addr" ]; then
  lab_sh "HARDWAY_ROOT=$LAB/authreg HARDWAY_RUN=$LAB/authreg/run HARDWAY_REGISTRY=$(cat "$LAB/authreg/addr") scripts/registry stop"
fi
if [ -e "$LAB/started-registry" ]; then
  lab_run scripts/registry stop
fi
lab_unscratch
lab_forget
