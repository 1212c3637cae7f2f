#!/usr/bin/env bash
# Lab 09: docker run, the whole flow: first as one pipeline of the eight tools, then as
# scripts/docker-run with the flags a Docker user types, then beside Docker or Podman.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
img=$REG/library/busybox:latest
root=${HARDWAY_ROOT:-/var/lib/hardway}
web='mkdir -p /www && echo "hello from $(hostname)" > /www/index.html && exec httpd -f -p 80 -h /www'

# A re-run starts from a clean slate: the containers of an earlier run go first.
docker-rm lab09-pipe lab09-once lab09-web lab09-trace >/dev/null 2>&1 || true

lab_step "the whole flow as one pipeline: each stage prints the handle the next one reads"
lab_note "pull prints NAME@sha256:…, unpack passes it on, overlay prints the bundle dir, nsrun runs it"
lab_sh "pull $img | unpack | overlay --id lab09-pipe -- sh -c 'echo \"I am pid \$\$ on \$(hostname), my root is \$(grep \" / / \" /proc/self/mountinfo | cut -d\" \" -f8)\"' | nsrun"
lab_run overlay rm lab09-pipe

lab_step "the same flow as docker-run, every stage shown (--show), removed on exit (--rm)"
lab_run docker-run --show --rm --name lab09-once --memory 64m --pids-limit 32 "$img" \
  sh -c 'echo "memory limit: $(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)"; echo "pids limit: $(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)"'

lab_step "--trace: the kernel-level steps behind each stage (the network and cgroup stages here)"
lab_note "every trace line names the stage and the command you could type instead"
lab_sh "HARDWAY_TRACE=1 docker-run --rm --name lab09-trace --memory 32m $img true 2>&1 | grep -A1 -E '^(netsetup: (create the veth|plug the host|give the container|route everything|create the chain)|cgset: limit)' | grep -v '^--\$'"

lab_step "a web server in the background: -d, -p, -h, --memory, --cpus, --pids-limit"
lab_run docker-run -d --name lab09-web -p 8089:80 -h web --memory 64m --cpus 0.5 --pids-limit 64 "$img" sh -c "$web"
lab_sh 'for i in $(seq 50); do curl -fsS --max-time 1 http://127.0.0.1:8089/ && break; sleep 0.1; done'

lab_step "the docker family: ps, logs, stop (a second container), exec"
lab_run docker-ps
lab_run docker-logs lab09-web
if nsrun exec --help 2>&1 | grep -q '^Usage: nsrun exec'; then
  lab_run docker-exec lab09-web cat /etc/hostname
else
  lab_note "docker-exec needs nsrun exec, which this nsrun does not have yet; the same by hand:"
  lab_sh "nsenter -t \$(jq .pid $root/containers/lab09-web/state.json) -u -m cat /etc/hostname"
fi
lab_run docker-run -d --name lab09-stop "$img" sleep 600
lab_note "sleep is PID 1 and has no SIGTERM handler, so the kernel ignores TERM: docker-stop sends KILL after -t seconds"
lab_run docker-stop -t 1 lab09-stop
lab_run docker-ps -a
lab_run docker-rm lab09-stop

lab_step "the container as the kernel sees it: process tree, root mount, cgroup, NAT rule"
pid=$(jq -r .pid "$root/containers/lab09-web/state.json")
lab_run pstree -apsS "$pid"
lab_sh "grep ' / / ' /proc/$pid/mountinfo | cut -c1-160"
lab_sh "grep -E 'memory|pids|cpu,' /proc/$pid/cgroup"
lab_sh "iptables -t nat -S HARDWAY"

lab_step "side by side with Docker or Podman: the same image, the same views"
engine=""
if lab_have docker && docker info >/dev/null 2>&1; then
  engine=docker
elif lab_have podman && podman info >/dev/null 2>&1; then
  engine=podman
fi
if [ -z "$engine" ]; then
  lab_note "SKIPPED: no container engine answers here (docker info / podman info fail): there is nothing to compare with."
  lab_note "On a machine with Docker or Podman this step runs the same image with: ENGINE run -d --name lab09-docker -p 8090:80 --memory 64m $img …"
  lab_note "and shows its pstree -apsS, its ' / / ' mountinfo line, /proc/PID/cgroup and iptables -t nat -S (see README.md)."
else
  # Podman speaks TLS to every registry unless told; Docker takes 127.0.0.0/8 as insecure.
  tls=()
  [ "$engine" = podman ] && tls=(--tls-verify=false)
  "$engine" rm -f lab09-docker >/dev/null 2>&1 || true
  printf '%s\n' "${_c}\$ $engine run -d --name lab09-docker ${tls[*]} -p 8090:80 --memory 64m $img sh -c '$web'${_0}"
  if ! "$engine" run -d --name lab09-docker "${tls[@]}" -p 8090:80 --memory 64m "$img" sh -c "$web"; then
    lab_note "SKIPPED: $engine answers but cannot run a container on this machine (its error is above): nothing to compare with."
  else
    dpid=$("$engine" inspect -f '{{.State.Pid}}' lab09-docker)
    lab_run pstree -apsS "$dpid"
    lab_sh "grep ' / / ' /proc/$dpid/mountinfo | cut -c1-160"
    lab_sh "grep -E 'memory|pids|cpu,' /proc/$dpid/cgroup"
    lab_sh "iptables -t nat -S | grep -E 'DOCKER|NETAVARK|CNI' | grep 8090 || true"
  fi
  lab_run "$engine" rm -f lab09-docker
fi

lab_done
