#!/usr/bin/env bash
# Lab 09's undo: remove every container it made.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
lab_step "remove lab 09's containers"
lab_run docker-rm lab09-pipe lab09-once lab09-trace lab09-stop lab09-web
if lab_have docker && docker info >/dev/null 2>&1; then docker rm -f lab09-docker >/dev/null 2>&1 || true; fi
if lab_have podman && podman info >/dev/null 2>&1; then podman rm -f lab09-docker >/dev/null 2>&1 || true; fi
# The cgroup parent goes too when nothing else uses it (docker-rm leaves it for the next).
for d in /sys/fs/cgroup/*/"$LAB_CGPARENT" /sys/fs/cgroup/"$LAB_CGPARENT"; do
  [ -d "$d" ] && rmdir "$d" 2>/dev/null || true
done
lab_forget
