#!/usr/bin/env bash
# Lab 06 reset: stop the server, remove the containers' networks and the host-playing netns.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"

if [ -s "$LAB_SCRATCH/server.pid" ]; then
  lab_sh "kill \$(cat $LAB_SCRATCH/server.pid) 2>/dev/null || true"
fi
# The server may have outlived its pid file: anything still in the container's netns goes.
if [ -e /run/netns/lab06-web ]; then
  lab_sh "ip netns pids lab06-web | xargs -r kill -9"
fi
if [ -e /run/netns/lab06-host ]; then
  for id in lab06-web lab06-tmp; do lab_sh "nsenter --net=/run/netns/lab06-host -- netsetup del $id"; done
  lab_run ip netns del lab06-host
fi
lab_unscratch
lab_forget
