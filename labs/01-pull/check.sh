#!/usr/bin/env bash
# labs/01-pull/check.sh: the state labs/01-pull/run.sh leaves; a hint for what is missing.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
LAB=$LAB_SCRATCH
REGROOT=$LAB_ROOT
echo "$LAB_NAME:"
check "the registry answers on $REG" "scripts/registry start" curl -fsS -o /dev/null "http://$REG/v2/"
check_sh "manifest.json hashes to the digest the registry announced" "run step 4 (curl -D … -o …, no reformatting)" \
  "[ sha256:\$(sha256sum $LAB/manifest.json | cut -d' ' -f1) = \$(grep -i docker-content-digest $LAB/manifest.headers | tr -d '\r' | cut -d' ' -f2) ]"
check_sh "config.json is the image config, verified" "run step 5" \
  "echo \"\$(jq -r .config.digest $LAB/manifest.json | cut -d: -f2)  $LAB/config.json\" | sha256sum -c --quiet"
check_sh "pull recorded $REG/library/busybox:latest in the lab's store" "run step 7: HARDWAY_ROOT=$LAB/store pull $REG/library/busybox" \
  "jq -e --arg n $REG/library/busybox:latest '.manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"]==\$n)' $LAB/store/oci/index.json"
check_sh "skopeo reads busybox from the lab's store by the name pull gave it" "run step 7; skopeo inspect says why not" \
  "skopeo inspect oci:$LAB/store/oci:$REG/library/busybox:latest >/dev/null"
check_sh "pull got in with the password from \$DOCKER_CONFIG" "run step 8" \
  "jq -e '[.manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"])] | length == 1' $LAB/authstore/oci/index.json"
check_sh "the registry's busybox layer is intact again" "labs/01-pull/reset.sh puts the saved copy back" \
  "l=\$(jq -r '.layers[0].digest' $LAB/manifest.json | cut -d: -f2); [ \$(sha256sum $REGROOT/registry/data/docker/registry/v2/blobs/sha256/\${l:0:2}/\$l/data | cut -d' ' -f1) = \$l ]"
check_end
