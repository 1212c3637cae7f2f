#!/usr/bin/env bash
# bench/shim.sh: resident memory of one supervisor, shim against Debian's conmon, each
# supervising the same sleeping busybox container.
#
#   shim    bin/shim --id ID -- bin/nsrun BUNDLE       (the shim, and nsrun which stays as
#                                                       the container's parent)
#   conmon  conmon -r runc -b BUNDLE …; runc start     (runc exits once the container runs)
#
# Both bundles hold the same rootfs (Debian's static busybox) and the same config.json
# (runc spec, made non-terminal, running `sleep 1000`). Prints VmRSS and Pss of each
# supervisor from /proc/PID/status and smaps_rollup, the ratio shim/conmon, and shim+nsrun
# against conmon (what stays resident for one container). Needs root, conmon (Debian's
# 2.1.6 runs runc), runc, busybox-static, python3; run `make` first.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
for t in conmon runc python3; do
    command -v "$t" >/dev/null || { echo "bench/shim.sh: error: $t not found (apt-get install conmon runc)" >&2; exit 1; }
done
[[ -x /bin/busybox ]] || { echo "bench/shim.sh: error: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }
[[ -x $BIN/shim && -x $BIN/nsrun ]] || { echo "bench/shim.sh: error: bin/shim or bin/nsrun not built (run make)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/hardway-bench-shim.XXXXXX)
export HARDWAY_ROOT=$work/root HARDWAY_RUN=$work/run
id=bench$$
cid=benchc$$
cleanup() {
    "$BIN/shim" rm "$id" >/dev/null 2>&1 || true
    runc --root "$work/runc" kill "$cid" KILL >/dev/null 2>&1 || true
    sleep 0.3
    runc --root "$work/runc" delete -f "$cid" >/dev/null 2>&1 || true
    if [[ -s $work/conmon.pid ]]; then kill "$(cat "$work/conmon.pid")" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

# One bundle made by hand: busybox and its applet links, runc's default spec.
mkbundle() {
    local b=$1
    mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp"
    cp /bin/busybox "$b/rootfs/bin/busybox"
    for a in sh sleep; do ln -s busybox "$b/rootfs/bin/$a"; done
    (cd "$b" && runc spec)
    python3 - "$b/config.json" <<'EOF'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["process"]["terminal"] = False
s["process"]["args"] = ["sleep", "1000"]
json.dump(s, open(p, "w"), indent=2)
EOF
}

mkdir -p "$HARDWAY_ROOT/containers" "$HARDWAY_RUN" "$work/runc" "$work/exits" "$work/socks"
mkbundle "$HARDWAY_ROOT/containers/$id"
mkbundle "$work/conmon-bundle"

echo "+ shim --id $id -- nsrun \$HARDWAY_ROOT/containers/$id" >&2
"$BIN/shim" --id "$id" -- "$BIN/nsrun" "$HARDWAY_ROOT/containers/$id" >/dev/null
shimpid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["shimPid"])' "$HARDWAY_ROOT/containers/$id/state.json")
nsrunpid=$(cat "/proc/$shimpid/task/$shimpid/children" | awk '{print $1}')

echo "+ conmon -c $cid -r runc -b BUNDLE -l k8s-file:… ; runc start $cid" >&2
conmon --api-version 1 -c "$cid" -u "$cid" -n "$cid" -r "$(command -v runc)" -b "$work/conmon-bundle" \
    -p "$work/ctr.pid" -P "$work/conmon.pid" -l "k8s-file:$work/ctr.log" --exit-dir "$work/exits" \
    --socket-dir-path "$work/socks" --runtime-arg --root --runtime-arg "$work/runc" --log-level error
for _ in $(seq 100); do [[ -s $work/ctr.pid ]] && break; sleep 0.05; done
runc --root "$work/runc" start "$cid"
conmonpid=$(cat "$work/conmon.pid")
sleep 1 # let both settle into their steady state

kb() { awk -v k="$2:" '$1==k {print $2}' "/proc/$1/$3"; }
row() { printf '%-22s pid %-7s VmRSS %6s kB   Pss %6s kB\n' "$1" "$2" "$(kb "$2" VmRSS status)" "$(kb "$2" Pss smaps_rollup)"; }
echo
echo "resident memory, one sleeping busybox container each:"
row "shim (supervisor)" "$shimpid"
row "nsrun (its runtime)" "$nsrunpid"
row "conmon 2.1.6" "$conmonpid"
s=$(kb "$shimpid" VmRSS status); n=$(kb "$nsrunpid" VmRSS status); c=$(kb "$conmonpid" VmRSS status)
sp=$(kb "$shimpid" Pss smaps_rollup); np=$(kb "$nsrunpid" Pss smaps_rollup); cp=$(kb "$conmonpid" Pss smaps_rollup)
echo
awk -v s="$s" -v n="$n" -v c="$c" -v sp="$sp" -v np="$np" -v cp="$cp" 'BEGIN {
    printf "VmRSS ratio shim/conmon:         %.2fx\n", s/c
    printf "VmRSS ratio (shim+nsrun)/conmon: %.2fx\n", (s+n)/c
    printf "Pss   ratio shim/conmon:         %.2fx\n", sp/cp
    printf "Pss   ratio (shim+nsrun)/conmon: %.2fx\n", (sp+np)/cp
}'
