#!/usr/bin/env bash
# bench/unpack.sh: unpack + overlay (extract every layer, mount the merged root) against umoci unpack and plain sequential `tar -xzf`, on
# the same ~120 MB five-layer gzip image built offline from host dirs. Prints hyperfine's
# medians, the ratios and the peak memory (max RSS) of each. Needs root, hyperfine, umoci,
# jq and /usr/bin/time; run `make` first (uses bin/unpack and bin/overlay).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$PWD/bin
RUNS=${RUNS:-5}
DIRS=${DIRS:-"/usr/sbin /usr/lib/python3.11 /usr/share/perl /usr/lib/git-core /usr/share/perl5"}
work=$(mktemp -d /var/tmp/hardway-bench.XXXXXX)
# KEEP=1 keeps the image and state (for strace/perf) and prints where.
if [ "${KEEP:-}" = 1 ]; then trap 'echo "kept $work" >&2' EXIT
else trap 'umount "$work/root/containers/bench/rootfs" 2>/dev/null || true; rm -rf "$work"' EXIT; fi
export HARDWAY_ROOT=$work/root HARDWAY_RUN=$work/run
oci=$HARDWAY_ROOT/oci
mkdir -p "$oci/blobs/sha256" "$HARDWAY_RUN"
echo '{"imageLayoutVersion":"1.0.0"}' >"$oci/oci-layout"

put() { # put FILE -> prints sha256 hex, stores the blob
  local h; h=$(sha256sum "$1" | cut -d' ' -f1); mv "$1" "$oci/blobs/sha256/$h"; echo "$h"
}
layers=() diffids=()
for d in $DIRS; do
  tar -C / -cf "$work/l.tar" "${d#/}"
  diffids+=("sha256:$(sha256sum "$work/l.tar" | cut -d' ' -f1)")
  gzip -6 "$work/l.tar"
  size=$(stat -c %s "$work/l.tar.gz")
  layers+=("{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"sha256:$(put "$work/l.tar.gz")\",\"size\":$size}")
done
jq -nc --argjson ids "$(printf '%s\n' "${diffids[@]}" | jq -R . | jq -sc .)" \
  '{architecture:"amd64",os:"linux",config:{Cmd:["sh"]},rootfs:{type:"layers",diff_ids:$ids}}' >"$work/config"
csize=$(stat -c %s "$work/config"); chash=$(put "$work/config")
jq -nc --argjson layers "[$(IFS=,; echo "${layers[*]}")]" --arg c "sha256:$chash" --argjson cs "$csize" \
  '{schemaVersion:2,mediaType:"application/vnd.oci.image.manifest.v1+json",config:{mediaType:"application/vnd.oci.image.config.v1+json",digest:$c,size:$cs},layers:$layers}' >"$work/manifest"
msize=$(stat -c %s "$work/manifest"); mhash=$(put "$work/manifest")
jq -nc --arg d "sha256:$mhash" --argjson s "$msize" \
  '{schemaVersion:2,manifests:[{mediaType:"application/vnd.oci.image.manifest.v1+json",digest:$d,size:$s,annotations:{"org.opencontainers.image.ref.name":"bench.local/bench:latest"}}]}' >"$oci/index.json"
img=bench.local/bench@sha256:$mhash
blobs=("${layers[@]}")
echo "image: ${#layers[@]} layers, $(du -sm "$oci" | cut -f1) MB compressed, $(du -scm $DIRS | tail -1 | cut -f1) MB of files" >&2

# overlay rm is cleanup, like removing umoci's bundle: in --prepare, not timed.
ours="$BIN/unpack $img >/dev/null && $BIN/overlay --id bench $img >/dev/null"
clean_ours="$BIN/overlay rm bench; rm -rf $HARDWAY_ROOT/overlay $HARDWAY_ROOT/containers"
umoci_cmd="umoci unpack --image $oci:bench.local/bench:latest $work/umoci >/dev/null"
tarseq="mkdir -p $work/tar && for b in $(for l in "${layers[@]}"; do echo "$l" | jq -r .digest | sed 's/sha256://'; done | tr '\n' ' '); do tar -xzf $oci/blobs/sha256/\$b -C $work/tar; done"

[ "${BUILD_ONLY:-}" = 1 ] && { echo "$img"; exit 0; }
hyperfine --runs "$RUNS" --warmup 1 --export-json "$work/h.json" \
  --prepare "$clean_ours" -n "unpack+overlay" "$ours" \
  --prepare "rm -rf $work/umoci" -n "umoci unpack" "$umoci_cmd" \
  --prepare "rm -rf $work/tar" -n "tar -xzf per layer" "$tarseq" >&2

peak() { # peak RSS in MB of a command
  /usr/bin/time -f %M bash -c "$1" 2>&1 >/dev/null | tail -1 | awk '{printf "%.0f", $1/1024}'
}
eval "$clean_ours" >/dev/null 2>&1 || true
m_ours=$(peak "$BIN/unpack $img"); eval "$clean_ours" >/dev/null 2>&1 || true
rm -rf "$work/umoci"; m_umoci=$(peak "$umoci_cmd"); rm -rf "$work/tar"; m_tar=$(peak "$tarseq")

jq -r --arg mo "$m_ours" --arg mu "$m_umoci" --arg mt "$m_tar" '
  .results as $r | ($r[0].median) as $o |
  "\nmedian s   vs ours  peak MB  command",
  ($r[] | "\(.median*1000|round/1000)\t\(.median/$o*100|round/100)x\t" +
     (if .command=="unpack+overlay" then $mo elif .command=="umoci unpack" then $mu else $mt end) + "\t\(.command)")' "$work/h.json"
