#!/usr/bin/env bash
# labs/08-inspect/run.sh [--yes|--step]: read a running container through /proc, with
# inspect and with the standard tools, and compare it with Docker's own views.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
C=$LAB_ROOT/containers
REF=$(cd "$LAB_TOP/.." && pwd)/shared/reference
# A re-run starts from a clean slate: what an earlier run left goes first.
if [ -e "$LAB_ROOT/containers/lab08" ]; then "$LAB_DIR/reset.sh" --yes >/dev/null 2>&1 || true; fi
lab_scratch

lab_step "a local registry with the seed images, and busybox pulled and unpacked"
lab_images
lab_sh "pull $REG/library/busybox:latest | unpack | tee $LAB/img"
img=$(cat "$LAB/img")

lab_step "a whole container: bundle, network, cgroup, and the shim above it"
lab_sh "overlay --id lab08 $img -- sh -c 'sleep 1000 & sleep 1000' >/dev/null"
lab_run netsetup add lab08
lab_run cgset create lab08 --memory 64m --pids 100
lab_sh "shim --id lab08 -- nsrun --netns lab08 --cgroup lab08 $C/lab08 | tee $LAB/pid"
pid=$(cat "$LAB/pid")

lab_step "everything at once: inspect"
lab_run inspect lab08

lab_step "the namespaces, read by hand: one symlink per namespace, the inode is its identity"
lab_sh "ls -l /proc/$pid/ns/ | awk 'NR > 1 {print \$9, \$11}'"
lab_sh "ls -l /proc/self/ns/ | awk 'NR > 1 {print \$9, \$11}'"
lab_run lsns -p "$pid"
lab_note "cgroup, user and time are the host's: Docker too leaves them (user only with userns-remap)"

lab_step "the process tree: the shim above the container, and where the namespaces change"
lab_sh "pstree -apS \$(jq -r .shimPid $C/lab08/state.json)"
lab_run inspect lab08 --processes
if [ -f "$REF/dockerd-containerd-shim-runc-pstree.md" ]; then
  lab_note "Docker's: containerd-shim-runc-v2 under PID 1, the container's process below it"
  lab_sh "grep -m 3 'containerd-shim' $REF/dockerd-containerd-shim-runc-pstree.md | cut -c1-160"
fi

lab_step "the mounts: mountinfo is one line per mount, findmnt draws it as a tree"
lab_sh "head -n 5 /proc/$pid/mountinfo"
lab_sh "findmnt -N $pid -o TARGET,SOURCE,FSTYPE,OPTIONS | sed -n 1,12p"
lab_note "inspect groups them: the overlay root with its layers, virtual filesystems, cgroups,"
lab_note "masked paths (/dev/null or an empty ro tmpfs over them), read-only paths, the bind-mounted /etc files"
lab_run inspect lab08 --mounts
if [ -f "$REF/namespaces-cgroups-overlay-mountinfo.md" ]; then
  lab_note "a Docker container's overlay line, from the reference notes:"
  lab_sh "grep -m 2 -i 'overlay.*lowerdir' $REF/namespaces-cgroups-overlay-mountinfo.md | cut -c1-200 || true"
fi

lab_step "the cgroup: /proc/PID/cgroup names it, its files hold the limits"
lab_sh "cat /proc/$pid/cgroup"
lab_run inspect lab08 --cgroup
if [ -f "$REF/namespaces-cgroups-overlay-mountinfo.md" ]; then
  lab_note "Docker's containers sit in /docker/<id> (cgroupfs) or system.slice/docker-<id>.scope (systemd):"
  lab_sh "grep -m 3 -E '/docker[/-]' $REF/namespaces-cgroups-overlay-mountinfo.md | cut -c1-160 || true"
fi

lab_step "the network, the image and the state"
lab_run inspect lab08 --network --image

lab_step "the same view as one JSON document, for scripts"
lab_sh "inspect lab08 --json | jq -c '{container, pid, shimPid, new: [.namespaces[] | select(.new) | .type], masked: [.mounts[] | select(.group == \"masked paths\") | .target]}'"

lab_step "any process works: your own shell, which shares every namespace with the host"
lab_sh "inspect --pid \$\$ --namespaces"

lab_done
