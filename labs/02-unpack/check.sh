#!/usr/bin/env bash
# labs/02-unpack/check.sh: the state labs/02-unpack/run.sh leaves; a hint for what is missing.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
LAB=$LAB_SCRATCH
S=$LAB_ROOT
# chains prints the image's layer dirs: chain ids from the config's diff_ids (the OCI rule:
# chain[0] = diff_id[0], chain[i] = sha256(chain[i-1] + " " + diff_id[i])).
chains() {
  local man cfg prev="" d
  man=$S/oci/blobs/sha256/$(sed 's/.*@sha256://' "$LAB/img")
  cfg=$S/oci/blobs/sha256/$(jq -r .config.digest "$man" | cut -d: -f2)
  for d in $(jq -r '.rootfs.diff_ids[]' "$cfg"); do
    if [ -z "$prev" ]; then prev=$d; else prev=sha256:$(printf '%s %s' "$prev" "$d" | sha256sum | cut -d' ' -f1); fi
    echo "$S/overlay/${prev#sha256:}"
  done
}
echo "$LAB_NAME:"
check_sh "the layered image is pulled" "run step 2: labs/02-unpack/run.sh --step" \
  "test -s $LAB/img && test -s $S/oci/blobs/sha256/\$(sed 's/.*@sha256://' $LAB/img)"
check "both of its layers are unpacked, each with diff/ and link" "run step 4: unpack \$(cat $LAB/img 2>/dev/null)" \
  bash -c "$(declare -f chains); LAB=$LAB S=$S; n=0; for c in \$(chains); do test -d \$c/diff -a -s \$c/link || exit 1; n=\$((n+1)); done; [ \$n = 2 ]"
check_sh "the whiteout of /etc/motd is a 0/0 char device" "unpack translates .wh.motd: re-run step 4" \
  "stat -c '%F %t:%T' $S/overlay/*/diff/etc/motd | grep -qx 'character special file 0:0'"
check_sh "no half-extracted layer is left (.tmp-*)" "a killed unpack leaves one; the next unpack removes it" \
  "! ls -d $S/overlay/.tmp-* 2>/dev/null"
check_sh "the hostile layer wrote nothing outside: $LAB/victim is empty" "run step 9; if victim/pwned exists, remove it and re-run" \
  "test -s $LAB/evil-img && [ -z \"\$(ls -A $LAB/victim)\" ]"
check_sh "and nothing of it is in the store" "unpack must refuse the layer and remove its temp dir" \
  "! find $S/overlay -name pwned | grep -q ."
check_end
