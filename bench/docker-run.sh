#!/usr/bin/env bash
# bench/docker-run.sh: the whole `docker run` flow, scripts/docker-run against podman run,
# side by side in one hyperfine run, on the same image from the same local registry.
#
#   warm: the image is already pulled and unpacked       docker-run --rm IMG true
#   cold: the image store is emptied before each run     (hyperfine --prepare)
#
# Runs in a throwaway network namespace (re-executes itself under unshare --net), with its
# own registry ($BENCH_REGISTRY, default 127.0.0.1:5092), state dirs and cgroup parent, so
# nothing of a learner's is touched. Podman (Debian's podman, make bench installs it) runs
# with everything of its own in the same temp dir too: --root, --runroot, --tmpdir, its
# network config dir, cgroupfs, no events, and a containers.conf (CONTAINERS_CONF) whose
# only change that matters is default_ulimits: nofile and nproc at this machine's hard
# limits. For root podman asks for nofile 1048576 and nproc 4194304 by default, which the
# runtime cannot set where the hard limits are lower and root lacks CAP_SYS_RESOURCE
# (runc: "error setting rlimit type 7"; crun: "setrlimit `RLIMIT_NPROC`: Operation not
# permitted"); at the hard limits (nproc: podman's own, pid_max) the raise is a no-op.
# The runtime is runc, as docker's: crun 1.8 refuses a hybrid cgroup setup ("cgroups in
# hybrid mode not supported") where cgroup v2 holds a controller. Both get the same network shape:
# a bridge with NAT (our netsetup's hardway0; podman's default bridge network, netavark),
# no published port. If podman still cannot run a container here, the script says why
# and times docker-run alone.
# Prints hyperfine's table, the warm runs again interleaved (the fair comparison on a shared
# machine), the ratios podman/docker-run (goal: warm at least 5x) and where a warm
# docker-run's time goes, stage by stage.
#
#   RUNS=20 bench/docker-run.sh      (ROUNDS=N interleaved rounds, default RUNS)
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
for t in hyperfine jq python3; do
  command -v "$t" >/dev/null || { echo "bench/docker-run.sh: error: $t not found (apt-get install $t)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hardway-bench-run.XXXXXX")
export HARDWAY_ROOT=$work/root HARDWAY_RUN=$work/run HARDWAY_REGISTRY=$reg
export HARDWAY_CGROUP_PARENT=hardway-bench-$$
img=$reg/library/busybox:latest
podman_ok=0

# podman as the bench runs it: a wrapper, so hyperfine's command lines stay readable.
pm=$work/podman
mkdir -p "$pm"/{root,run,tmp,net,vartmp}
nofile=$(ulimit -Hn) nproc=$(ulimit -Hu) pidmax=$(cat /proc/sys/kernel/pid_max)
[ "$nofile" = unlimited ] && nofile=1048576
# podman lowers its own (so conmon's and the runtime's) hard nproc to pid_max.
[ "$nproc" = unlimited ] || [ "$nproc" -gt "$pidmax" ] && nproc=$pidmax
cat >"$pm/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "none"
[network]
network_backend = "netavark"
EOF
cat >"$pm/podman" <<EOF
#!/bin/sh
CONTAINERS_CONF=$pm/containers.conf TMPDIR=$pm/vartmp exec podman --root $pm/root --runroot $pm/run \\
  --tmpdir $pm/tmp --network-config-dir $pm/net "\$@"
EOF
chmod +x "$pm/podman"

cleanup() {
  for d in "$HARDWAY_ROOT"/containers/*; do [ -e "$d" ] && docker-rm "${d##*/}" >/dev/null 2>&1; done
  registry stop >/dev/null 2>&1 || true
  if command -v podman >/dev/null; then
    "$pm/podman" rm -af >/dev/null 2>&1
    "$pm/podman" system reset -f >/dev/null 2>&1 # its images, and unmounts its storage
  fi
  for d in /sys/fs/cgroup/*/"$HARDWAY_CGROUP_PARENT" /sys/fs/cgroup/"$HARDWAY_CGROUP_PARENT"; do
    [ -d "$d" ] && rmdir "$d" 2>/dev/null
  done
  # Whatever podman left mounted under its own dirs (never anything else: $work is a
  # mktemp dir, checked non-empty).
  [ -n "$work" ] && awk -v w="$work/" 'index($5, w) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do umount -l "$m"; done
  rm -rf "$work"
}
trap cleanup EXIT

registry start
seed-images >/dev/null 2>&1
docker-run --rm "$img" true # warm the store once

podman="$pm/podman run --rm --tls-verify=false $img true"
if command -v podman >/dev/null && $podman >/dev/null 2>"$work/podman.err"; then
  podman_ok=1
  echo "podman $(podman --version | awk '{print $3}') runs as $pm/podman:"
  sed -n 2,3p "$pm/podman"
  echo "with CONTAINERS_CONF:"; cat "$pm/containers.conf"
else
  echo "bench/docker-run.sh: podman is not compared: $(command -v podman >/dev/null && tail -n1 "$work/podman.err" || echo 'not installed (apt-get install podman)')" >&2
fi

prune="rm -rf $HARDWAY_ROOT/oci $HARDWAY_ROOT/overlay"
args=(--runs "$runs" --warmup 1 --export-json "$work/warm.json"
  -n "docker-run (warm)" "docker-run --rm $img true")
[ "$podman_ok" = 1 ] && args+=(-n "podman run (warm)" "$podman")
hyperfine "${args[@]}"
args=(--runs "$runs" --export-json "$work/cold.json"
  --prepare "$prune" -n "docker-run (cold)" "docker-run --rm $img true")
[ "$podman_ok" = 1 ] && args+=(--prepare "$pm/podman rmi -f $img >/dev/null 2>&1 || true" -n "podman run (cold)" "$podman")
hyperfine "${args[@]}"

# Warm, interleaved: docker-run and podman run in turn, ROUNDS rounds (default RUNS), the
# order swapping each round: hyperfine times one command's runs in a row, so on a shared
# machine a burst of load can land on one of them; these medians are the fair comparison.
if [ "$podman_ok" = 1 ]; then
  python3 - "${ROUNDS:-$runs}" "docker-run --rm $img true" "$podman" <<'PY'
import shlex, statistics, subprocess, sys, time
rounds, cmds = int(sys.argv[1]), {"docker-run": sys.argv[2], "podman run": sys.argv[3]}
t = {k: [] for k in cmds}
names = list(cmds)
for i in range(rounds):
    for k in (names if i % 2 == 0 else names[::-1]):
        s = time.perf_counter()
        subprocess.run(shlex.split(cmds[k]), check=True, stdout=subprocess.DEVNULL)
        t[k].append((time.perf_counter() - s) * 1e3)
print(f"warm, interleaved, {rounds} rounds:")
for k, v in t.items():
    v.sort()
    print(f"  {k:11} median {statistics.median(v):7.1f} ms   p25 {v[len(v) // 4]:7.1f}   min {v[0]:7.1f}")
m = {k: statistics.median(v) for k, v in t.items()}
print(f"  podman/docker-run {m['podman run'] / m['docker-run']:.2f}x (medians; goal: at least 5x)")
PY
fi

# Where a warm docker-run's time goes: each stage of `docker-run --rm IMG true` by hand,
# as docker-run and docker-rm run them, timed one by one (mean of $runs; docker-rm runs the
# last three side by side, so its share is less than their sum).
ms() { echo $((${EPOCHREALTIME/./} / 1000)); } # bash's clock: no date process per lap
stages=(pull unpack overlay "netsetup add" "cgset create" nsrun "shim rm" "netsetup del" "cgset delete" "overlay rm")
declare -A took
for r in $(seq "$runs"); do
  id=bench-stage-$r t=$(ms)
  lap() { local n; n=$(ms); took[$1]=$((${took[$1]:-0} + n - t)); t=$n; }
  h=$(pull --missing "$img"); lap pull
  unpack "$h" >/dev/null; lap unpack
  b=$(overlay --id "$id" --volatile "$h" -- true); lap overlay
  netsetup add "$id" >/dev/null; lap "netsetup add"
  cgset create "$id" >/dev/null; lap "cgset create"
  nsrun --netns "$id" --cgroup "$id" "$b"; lap nsrun
  shim rm "$id" >/dev/null; lap "shim rm"
  netsetup del "$id" >/dev/null; lap "netsetup del"
  cgset delete "$id" >/dev/null; lap "cgset delete"
  overlay rm "$id" >/dev/null; lap "overlay rm"
done
echo "warm docker-run by stage (mean of $runs, ms):"
total=0
for s in "${stages[@]}"; do total=$((total + ${took[$s]} / runs)); done
for s in "${stages[@]}"; do printf '  %-13s %5d  %3d%%\n' "$s" $((${took[$s]} / runs)) $((100 * ${took[$s]} / runs / (total > 0 ? total : 1))); done
printf '  %-13s %5d\n' total "$total"

for kind in warm cold; do
  jq -r --arg kind "$kind" '.results | map({(.command): .median}) | add | . as $m | keys as $k
    | "\($kind): docker-run median \($m[$k[0]] * 1000 | floor) ms"
      + (if ($k | length) > 1 then ", podman/docker-run = \(($m[$k[1]] / $m[$k[0]]) * 100 | floor / 100)x" else "" end)' \
    "$work/$kind.json"
done
