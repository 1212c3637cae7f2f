#!/usr/bin/env bash
# labs/04-nsrun/run.sh [--yes|--step]: namespaces one at a time, chroot vs pivot_root (a chroot
# escape pivot_root stops), mount propagation (the leak and the fix), capabilities and what
# dropping one stops, and a second process in a running container with nsrun exec.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
S=$LAB_ROOT
B=$S/containers/lab04
# A re-run starts from a clean slate.
shim rm lab04 >/dev/null 2>&1 || true
overlay rm lab04 >/dev/null 2>&1 || true
lab_scratch
# args CMD sets the bundle's process to `sh -c CMD`, the way a learner edits config.json.
args() { lab_sh "jq --arg c '$1' '.process.args = [\"sh\", \"-c\", \$c]' $B/config.json > $LAB/c.json && cp $LAB/c.json $B/config.json"; }

lab_step "a local registry with the seed images, and a busybox bundle"
lab_images
lab_sh "pull $REG/library/busybox | unpack | overlay --id lab04 -- sh"

lab_step "namespaces one at a time, with util-linux's unshare"
lab_sh "unshare --pid --fork --mount-proc sh -c 'echo my pid: \$\$; ps -o pid,comm'"
lab_sh "unshare --uts sh -c 'hostname lab04-uts; echo inside: \$(hostname)'; echo outside: \$(hostname)"
lab_sh "unshare --net ip -br link"
lab_note "each flag is one clone(2) flag: CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWNET; nsrun asks for them all at once."

lab_step "nsrun does them all, then mounts, pivot_root, capabilities and seccomp: --trace says why"
args 'echo pid $$ on $(hostname); ip link'
lab_sh "nsrun --trace $B 2>&1 | grep -v -e 'create /dev/' -e 'link /dev/' -e 'mknod ' -e 'ln -s '"

lab_step "chroot is not a container: through /proc/1/root a chrooted process sees the host"
lab_sh "unshare --mount sh -c 'mount -t proc proc $B/rootfs/proc && chroot $B/rootfs sh -c \"ls /proc/1/root$LAB_TOP | head -3\"'"
args "ls /proc/1/root/ | head -3; ls /proc/1/root$LAB_TOP 2>&1 | head -3"
lab_sh "nsrun $B"
lab_note "in nsrun's pid namespace PID 1 is the container's own process, and pivot_root + umount -l"
lab_note "took the old root away: the host's files are not under any path any more."

lab_step "mount propagation: a mount made in a new namespace leaks back through a shared mount"
lab_sh "mkdir -p $LAB/shared && mount --bind $LAB/shared $LAB/shared && mount --make-shared $LAB/shared"
lab_sh "unshare --mount --propagation unchanged mount -t tmpfs leak $LAB/shared"
lab_sh "grep -c ' $LAB/shared .* - tmpfs leak' /proc/self/mountinfo"
lab_sh "umount $LAB/shared"
lab_note "the fix, what nsrun does first (mount --make-rprivate /): nothing made inside comes back"
lab_sh "unshare --mount --propagation private mount -t tmpfs leak $LAB/shared"
lab_sh "grep -c ' $LAB/shared .* - tmpfs leak' /proc/self/mountinfo || true"
lab_sh "umount $LAB/shared"

lab_step "capabilities: Docker's 14 let root chown, not set the hostname; drop CAP_CHOWN and chown fails"
args 'grep Cap /proc/self/status; hostname other || echo hostname refused; touch /tmp/f; chown 1:1 /tmp/f && echo chown ok'
lab_sh "nsrun $B"
lab_sh "jq '.process.capabilities |= map_values(map(select(. != \"CAP_CHOWN\")))' $B/config.json > $LAB/c.json && cp $LAB/c.json $B/config.json"
lab_wrong "nsrun $B"

lab_step "a second process in a running container: nsrun exec"
args 'echo started > /tmp/ready; exec sleep 3600'
lab_sh "shim --id lab04 -- nsrun $B"
lab_sh "for i in 1 2 3 4 5 6 7 8 9 10; do [ -e $B/rootfs/tmp/ready ] && break; sleep 0.2; done"
lab_sh "nsrun exec --trace lab04 -- sh -c 'echo pid \$\$ next to:; ps -o pid,comm; cat /tmp/ready'"
lab_note "sleep as PID 1 has no handler for TERM, and PID 1 ignores signals it does not handle: KILL it"
lab_sh "shim kill lab04 KILL; shim wait lab04 || true"
lab_done
