#!/usr/bin/env bash
# bench/pull.sh: pull against the industrial pullers, side by side, on the same registry.
#
# Starts its own registry (scripts/registry, on $BENCH_REGISTRY, default 127.0.0.1:5091, all
# state in a temporary dir), pushes two images and times, with hyperfine, a pull into a
# fresh destination each run (--prepare removes it) by:
#   pull     bin/pull REF                      (into its own HARDWAY_ROOT)
#   skopeo   skopeo copy docker://REF oci:DIR:x
#   crane    crane pull --format oci REF DIR
# Images: library/busybox (scripts/seed-images: one 1 MiB layer) and bench/big, a
# multi-layer image of 100+ MB compressed made offline from this host's own trees, one
# layer each (no debootstrap needed): /usr/lib/python3.11, /usr/lib/gcc,
# /usr/share/perl, /usr/share/locale (whichever exist; ~130 MB compressed on Debian 12).
# Prints hyperfine's table, the medians, the ratios to pull, and the peak RSS of one run of
# each (/usr/bin/time -f %M). Needs: hyperfine skopeo crane jq (make tools for crane).
#
#   RUNS=10 bench/pull.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$repo/.tools/bin:$PATH
runs=${RUNS:-10}
reg=${BENCH_REGISTRY:-127.0.0.1:5091}
for t in hyperfine skopeo crane jq /usr/bin/time; do
    command -v "$t" >/dev/null || { echo "bench/pull.sh: error: $t not found" >&2; exit 1; }
done
[[ -x $repo/bin/pull ]] || { echo "bench/pull.sh: error: bin/pull not built (run make)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/hardway-bench-pull.XXXXXX")
export HARDWAY_ROOT=$work/reg-root HARDWAY_RUN=$work/reg-run HARDWAY_REGISTRY=$reg
cleanup() { "$repo/scripts/registry" stop >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

"$repo/scripts/registry" start
"$repo/scripts/seed-images" >/dev/null

echo "bench/pull.sh: building bench/big from this host's trees" >&2
layers=()
for d in /usr/lib/python3.11 /usr/lib/gcc /usr/share/perl /usr/share/locale; do
    [[ -d $d ]] || continue
    t=$work/layer-${#layers[@]}.tar
    tar --owner=0 --group=0 --numeric-owner --mtime=@0 -C / -cf "$t" "${d#/}" 2>/dev/null || true
    layers+=(-f "$t")
done
crane --insecure append "${layers[@]}" -t "$reg/bench/big:latest" >/dev/null 2>&1
rm -f "$work"/layer-*.tar
size=$(crane --insecure manifest "$reg/bench/big:latest" | jq '[.layers[].size] | add')
echo "bench/pull.sh: bench/big: $(crane --insecure manifest "$reg/bench/big:latest" | jq '.layers | length') layers, $((size / 1048576)) MiB compressed" >&2

dst=$work/dst
cmd_pull="HARDWAY_ROOT=$dst $repo/bin/pull"
cmd_skopeo="skopeo copy --quiet --src-tls-verify=false"
cmd_crane="crane pull --insecure --format oci"

for img in library/busybox:latest bench/big:latest; do
    ref=$reg/$img
    name=${img//[\/:]/-}
    echo
    echo "== $img"
    hyperfine --style basic --warmup 1 --runs "$runs" --prepare "rm -rf $dst" \
        --export-json "$work/$name.json" \
        -n pull "$cmd_pull $ref" \
        -n skopeo "$cmd_skopeo docker://$ref oci:$dst:x" \
        -n crane "$cmd_crane $ref $dst"
    jq -r '.results as $r | ($r[] | select(.command=="pull") | .median) as $p |
        $r[] | "median \(.command): \(.median*1000 | floor) ms  (\(.median / $p * 100 | floor / 100)x pull)"' "$work/$name.json"
    for tool in pull skopeo crane; do
        rm -rf "$dst"
        case $tool in
            pull) c="env HARDWAY_ROOT=$dst $repo/bin/pull $ref" ;;
            skopeo) c="$cmd_skopeo docker://$ref oci:$dst:x" ;;
            crane) c="$cmd_crane $ref $dst" ;;
        esac
        kb=$( (/usr/bin/time -f %M -o "$work/rss" $c >/dev/null 2>&1); cat "$work/rss")
        echo "peak RSS $tool: $((kb / 1024)) MiB"
    done
done
