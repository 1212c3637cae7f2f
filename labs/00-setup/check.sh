#!/usr/bin/env bash
# Lab 00's self-check: the tools are built, the packages installed, the registry answers and
# holds the seed images.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

for t in pull unpack overlay nsrun cgset netsetup shim inspect; do
  check "bin/$t is built" "run: make (in $LAB_TOP)" test -x "$LAB_TOP/bin/$t"
done
check "crane is installed" "run: make tools" lab_have crane
for p in docker-registry busybox-static iptables iproute2 psmisc util-linux curl jq; do
  check "package $p is installed" "run: apt-get install $p" dpkg-query -W -f='${Status}' "$p"
done
check "overlayfs is available" "run: modprobe overlay" grep -qw overlay /proc/filesystems
check "the registry answers http://$REG/v2/" "run: scripts/registry start (then: scripts/registry status)" \
  curl -fsS --max-time 3 "http://$REG/v2/"
check_sh "the registry holds library/busybox:latest" "run: scripts/seed-images" \
  "curl -fsS --max-time 3 -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://$REG/v2/library/busybox/manifests/latest"
check_sh "the registry holds hardway/layered:latest" "run: scripts/seed-images" \
  "curl -fsS --max-time 3 -o /dev/null -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' http://$REG/v2/hardway/layered/manifests/latest"
check_end
