#!/usr/bin/env bash
# labs/03-overlay/check.sh: the state labs/03-overlay/run.sh leaves; a hint for what is missing.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
LAB=$LAB_SCRATCH
S=$LAB_ROOT
C=$S/containers/lab03
echo "$LAB_NAME:"
check_sh "the container's root is an overlay mount" "run step 3: overlay --id lab03 \$(cat $LAB/img)" \
  "grep -q ' $C/rootfs .* - overlay ' /proc/self/mountinfo"
check_sh "/etc/motd is gone from the merged root" "the top layer's whiteout hides it: is its layer in lowerdir?" \
  "test ! -e $C/rootfs/etc/motd"
check_sh "the init layer's mount points and placeholders are there" "overlay writes containers/lab03/init" \
  "test -d $C/rootfs/proc -a -f $C/rootfs/etc/resolv.conf -a -L $C/rootfs/etc/mtab"
check_sh "the write landed in upper/" "run step 6: echo changed > $C/rootfs/hello.txt" \
  "grep -qx changed $C/upper/hello.txt"
check_sh "the deletion is a whiteout in upper/" "run step 6: rm $C/rootfs/bin/ls" \
  "stat -c '%F %t:%T' $C/upper/bin/ls | grep -qx 'character special file 0:0'"
check_sh "the layers did not change" "only upper/ may change; unpack the image again to repair the store" \
  "! grep -rqx changed $S/overlay/*/diff/hello.txt && ls $S/overlay/*/diff/bin/ls"
check_end
