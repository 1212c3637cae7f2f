#!/usr/bin/env bash
# Lab 00: build the tools, check the machine, start the local registry and seed it.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"

lab_step "build the eight tools (and crane, the registry client seed-images pushes with)"
lab_note "each tool is one static Go binary in bin/: one stage of docker run"
if [ "${HARDWAY_LABS_SKIP_BUILD:-0}" = 1 ]; then
  lab_note "HARDWAY_LABS_SKIP_BUILD=1: not rebuilding, using bin/ as it was built"
else
  lab_run make -s -C "$LAB_TOP" build tools
fi
lab_run ls bin/

lab_step "check the Debian packages the labs use"
lab_note "docker-registry: the registry; busybox-static: the image content; iptables/iproute2: the network;"
lab_note "psmisc/util-linux: pstree, lsns, findmnt, nsenter; skopeo/umoci/runc: the industrial twins"
lab_sh "dpkg-query -W -f='\${Package} \${Version}\n' docker-registry busybox-static iptables iproute2 psmisc util-linux curl jq"
lab_note "optional, to compare each stage with its industrial twin:"
lab_sh "dpkg-query -W -f='\${Package} \${Version}\n' skopeo umoci runc 2>/dev/null || echo 'not all installed: apt-get install skopeo umoci runc'"

lab_step "check the kernel: overlayfs, namespaces, cgroups"
lab_sh 'grep -w overlay /proc/filesystems || modprobe overlay'
lab_sh 'ls /proc/self/ns/'
lab_sh 'stat -fc "cgroup root: %T (tmpfs = v1 or hybrid, cgroup2fs = unified v2)" /sys/fs/cgroup'

lab_step "start the local registry on $REG (loopback only; storage under ${HARDWAY_ROOT:-/var/lib/hardway}/registry)"
lab_run registry start
lab_sh "curl -sS -i http://$REG/v2/ | sed -n 1p"

lab_step "build the seed images offline and push them"
lab_note "busybox from Debian's busybox-static, a two-layer image with a whiteout, a multi-platform index"
lab_run seed-images
lab_sh "curl -sS http://$REG/v2/_catalog"

lab_step "ask the registry for busybox's manifest, as pull will"
lab_sh "curl -sS -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://$REG/v2/library/busybox/manifests/latest | jq '{mediaType, config: .config.digest, layers: [.layers[].digest]}'"

lab_done
