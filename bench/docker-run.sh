#!/usr/bin/env bash
# bench/docker-run.sh: the whole `docker run` flow, scripts/docker-run against podman run,
# side by side in one hyperfine run, on the same image from the same local registry.
#
#   warm: the image is already pulled and unpacked       docker-run --rm IMG true
#   cold: the image store is emptied before each run     (hyperfine --prepare)
#
# Runs in a throwaway network namespace (re-executes itself under unshare --net), with its
# own registry ($BENCH_REGISTRY, default 127.0.0.1:5092), state dirs and cgroup parent, so
# nothing of a learner's is touched. Podman (Debian's podman) is compared only when it can
# run a container here; otherwise the script says why and times docker-run alone.
# Prints hyperfine's table and the ratios podman/docker-run (goal: warm at least 5x).
#
#   RUNS=20 bench/docker-run.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${BENCH_IN_NETNS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench/docker-run.sh: error: needs root (namespaces, mounts, cgroups)" >&2; exit 1; }
  BENCH_IN_NETNS=1 exec unshare --net -- "$0" "$@"
fi
ip link set lo up
export PATH=$repo/bin:$repo/.tools/bin:$repo/scripts:$PATH
runs=${RUNS:-10}
reg=${BENCH_REGISTRY:-127.0.0.1:5092}
for t in hyperfine jq; do
  command -v "$t" >/dev/null || { echo "bench/docker-run.sh: error: $t not found (apt-get install $t)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hardway-bench-run.XXXXXX")
export HARDWAY_ROOT=$work/root HARDWAY_RUN=$work/run HARDWAY_REGISTRY=$reg
export HARDWAY_CGROUP_PARENT=hardway-bench-$$
img=$reg/library/busybox:latest
podman_ok=0
cleanup() {
  for d in "$HARDWAY_ROOT"/containers/*; do [ -e "$d" ] && docker-rm "${d##*/}" >/dev/null 2>&1; done
  registry stop >/dev/null 2>&1 || true
  [ "$podman_ok" = 1 ] && podman rmi -f "$img" >/dev/null 2>&1
  for d in /sys/fs/cgroup/*/"$HARDWAY_CGROUP_PARENT" /sys/fs/cgroup/"$HARDWAY_CGROUP_PARENT"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  rm -rf "$work"
}
trap cleanup EXIT

registry start
seed-images >/dev/null 2>&1
docker-run --rm "$img" true # warm the store once

if command -v podman >/dev/null && podman run --rm --tls-verify=false "$img" true >/dev/null 2>"$work/podman.err"; then
  podman_ok=1
else
  echo "bench/docker-run.sh: podman is not compared: $(command -v podman >/dev/null && tail -n1 "$work/podman.err" || echo 'not installed (apt-get install podman)')" >&2
fi

prune="rm -rf $HARDWAY_ROOT/oci $HARDWAY_ROOT/overlay"
args=(--runs "$runs" --warmup 1 --export-json "$work/warm.json"
  -n "docker-run (warm)" "docker-run --rm $img true")
[ "$podman_ok" = 1 ] && args+=(-n "podman run (warm)" "podman run --rm --tls-verify=false $img true")
hyperfine "${args[@]}"
args=(--runs "$runs" --export-json "$work/cold.json"
  --prepare "$prune" -n "docker-run (cold)" "docker-run --rm $img true")
[ "$podman_ok" = 1 ] && args+=(--prepare "podman rmi -f $img >/dev/null 2>&1 || true" -n "podman run (cold)" "podman run --rm --tls-verify=false $img true")
hyperfine "${args[@]}"

for kind in warm cold; do
  jq -r --arg kind "$kind" '.results | map({(.command): .median}) | add | . as $m | keys as $k
    | "\($kind): docker-run median \($m[$k[0]] * 1000 | floor) ms"
      + (if ($k | length) > 1 then ", podman/docker-run = \(($m[$k[1]] / $m[$k[0]]) * 100 | floor / 100)x" else "" end)' \
    "$work/$kind.json"
done
