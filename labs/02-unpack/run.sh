#!/usr/bin/env bash
# labs/02-unpack/run.sh [--yes|--step]: layers, digests vs diff_ids, whiteouts made visible,
# and the tar breakout a naive extractor falls for, contained by unpack.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH   # the lab's own files: the hostile tar, the victim dir
S=$LAB_ROOT # the store, shared with the next labs
lab_scratch

lab_step "a local registry with the seed images"
lab_images


lab_step "pull an image of two layers (the second deletes /etc/motd)"
lab_sh "pull $REG/hardway/layered | tee $LAB/img"
img=$(cat "$LAB/img")
man=$S/oci/blobs/sha256/${img##*@sha256:}

lab_step "digests name the compressed blobs, diff_ids the uncompressed tars"
lab_sh "jq '.layers[] | {mediaType, digest, size}' $man"
lab_sh "jq .rootfs.diff_ids $S/oci/blobs/sha256/\$(jq -r .config.digest $man | cut -d: -f2)"
top=$(jq -r '.layers[1].digest' "$man" | cut -d: -f2)
lab_sh "sha256sum $S/oci/blobs/sha256/$top         # = the second digest"
lab_sh "gzip -dc $S/oci/blobs/sha256/$top | sha256sum   # = the second diff_id"
lab_sh "gzip -dc $S/oci/blobs/sha256/$top | tar -tv      # .wh.motd: a whiteout"

lab_step "unpack, narrated: each layer verified, each whiteout translated"
lab_run unpack --trace "$img"

lab_step "the layer store, laid out like Docker's overlay2"
lab_sh "ls -l $S/overlay $S/overlay/l"
lab_sh "for d in $S/overlay/[0-9a-f]*; do echo \"\$d: link=\$(cat \$d/link) lower=\$(cat \$d/lower 2>/dev/null)\"; done"

lab_step "the whiteout on disk: a 0/0 character device where .wh.motd was"
lab_sh "ls -l $S/overlay/*/diff/etc/ | grep -e '^c' -e motd"

lab_step "a hostile layer: a symlink out of the tree, then a file written through it"
mkdir -p "$LAB/victim" "$LAB/s1" "$LAB/s2/escape" "$LAB/naive"
ln -sfn "$LAB/victim" "$LAB/s1/escape"
echo pwned >"$LAB/s2/escape/pwned"
lab_sh "tar -cf $LAB/evil.tar -C $LAB/s1 escape && tar -rf $LAB/evil.tar -C $LAB/s2 escape/pwned && tar -tvf $LAB/evil.tar"

lab_step "a naive extractor falls for it: the file lands in the victim dir, outside"
lab_sh "python3 -c 'import tarfile; tarfile.open(\"$LAB/evil.tar\").extractall(\"$LAB/naive\")' && ls -l $LAB/victim"
lab_note "GNU tar refuses it (it delays such symlinks); Go's archive/tar leaves it to you."
rm -f "$LAB/victim/pwned"

lab_step "as an image layer, unpacked by unpack: refused, nothing written anywhere"
lab_run crane append -f "$LAB/evil.tar" -t "$REG/lab02/evil:latest"
lab_wrong "pull $REG/lab02/evil | tee $LAB/evil-img | unpack --trace"
lab_note "inside the layer, escape -> $LAB/victim resolves (openat2 RESOLVE_IN_ROOT) to diff$LAB/victim,"
lab_note "which the layer does not have: unpack refuses, as Docker does, and removes its temp dir."
lab_sh "ls -A $LAB/victim | wc -l; ls -A $S/overlay"
lab_done
