#!/usr/bin/env bash
# labs/03-overlay/run.sh [--yes|--step]: lowerdir/upperdir/workdir, the init layer,
# copy-on-write in action, the page limit and the short links, Docker's GraphDriver data.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
S=$LAB_ROOT
lab_scratch
# A re-run starts from a clean slate: the container of an earlier run goes first.
overlay rm lab03 >/dev/null 2>&1 || true

lab_step "a local registry with the seed images"
lab_images


lab_step "pull and unpack the two-layer image"
lab_sh "pull $REG/hardway/layered | unpack | tee $LAB/img"
img=$(cat "$LAB/img")
C=$S/containers/lab03

lab_step "overlay, narrated: the init layer, then one mount of all the layers"
lab_sh "overlay --trace --id lab03 $img"

lab_step "what the kernel mounted: one lowerdir+ per layer, top first"
lab_sh "grep ' $C/rootfs ' /proc/self/mountinfo | awk '{print \$NF}' | tr , '\\n'"

lab_step "the merged root: /etc/motd deleted by the top layer's whiteout, the init layer's files"
lab_sh "ls $C/rootfs $C/rootfs/etc; cat $C/rootfs/hello.txt"
lab_sh "find $C/init | sort; readlink $C/rootfs/etc/mtab"

lab_step "copy-on-write: a write lands in upper/, the layers never change"
lab_sh "echo changed > $C/rootfs/hello.txt && rm -f $C/rootfs/bin/ls"
lab_sh "ls -l $C/upper $C/upper/bin; cat $C/upper/hello.txt"
lab_sh "cat $S/overlay/*/diff/hello.txt; ls -l $S/overlay/*/diff/bin/ls"
lab_note "rm made a whiteout (char 0/0) in upper/bin: the same mark unpack writes for .wh. files."

lab_step "why short links: mount(2) takes one page of options"
lab_sh "getconf PAGESIZE"
lab_sh "d=\$(ls -d $S/overlay/[0-9a-f]* | sed -n 1p)/diff; echo \"one full lower path: \${#d} bytes; one l/ name: 29 bytes\""
lab_sh "echo \"128 layers: full paths \$(( (${#S} + 83) * 128 )) bytes, l/ names \$(( 29 * 128 )) bytes\""
lab_note "Docker and overlay mount from the store's dir so relative l/ names work; with the new mount"
lab_note "API (Linux >= 6.8) each layer is its own fsconfig(lowerdir+) call, up to the kernel's 500."

lab_step "the same facts as docker inspect's GraphDriver shows them"
lab_sh "lowers=\$(grep ' $C/rootfs ' /proc/self/mountinfo | awk '{print \$NF}' | tr , '\\n' | sed -n 's/^lowerdir+=//p' | (cd $S/overlay && xargs -n1 readlink -f) | paste -sd:); jq -n --arg c $C --arg lowers \"\$lowers\" '{GraphDriver: {Name: \"overlay2\", Data: {LowerDir: \$lowers, MergedDir: (\$c + \"/rootfs\"), UpperDir: (\$c + \"/upper\"), WorkDir: (\$c + \"/work\")}}}'"
lab_note "Docker's LowerDir starts with <id>-init/diff too; ours is containers/lab03/init."
lab_done
