#!/usr/bin/env bash
# labs/01-pull/run.sh [--yes|--step]: the registry protocol by hand with curl (ping, manifest,
# config, layer, digests, a Basic challenge), the same by pull --trace, and a tampered blob
# that pull refuses.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH # the lab's files: curl's downloads, the stores pull fills, the auth registry
REGROOT=$LAB_ROOT # the registry's storage is under it
ACCEPT='application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json'
lab_scratch
# The auth registry listens on the first free loopback port after the lab registry's.
AUTHREG=${LAB01_AUTH_REGISTRY:-}
if [ -z "$AUTHREG" ]; then
  p=${REG##*:}
  while p=$((p + 1)); ss -Hltn "sport = :$p" | grep -q .; do :; done
  AUTHREG=127.0.0.1:$p
fi
# Whatever happens, put the busybox layer step 9 tampers with back.
trap '[ -e "$LAB/layer.orig" ] && [ -n "${data:-}" ] && cp -p "$LAB/layer.orig" "$data" && rm -f "$LAB/layer.orig"' EXIT

lab_step "a local registry with the seed images"
lab_images

lab_step "ping: does it speak the v2 API, does it want credentials?"
lab_run curl -si "http://$REG/v2/"
echo

lab_step "the tags of library/busybox"
lab_sh "curl -s http://$REG/v2/library/busybox/tags/list; echo"

lab_step "the manifest, asking for every format we understand"
lab_run curl -s -H "Accept: $ACCEPT" -D "$LAB/manifest.headers" -o "$LAB/manifest.json" "http://$REG/v2/library/busybox/manifests/latest"
lab_run grep -i -e content-type -e docker-content-digest "$LAB/manifest.headers"
lab_run jq . "$LAB/manifest.json"
lab_note "the image's digest is the sha256 of exactly these bytes (compare Docker-Content-Digest):"
lab_run sha256sum "$LAB/manifest.json"

lab_step "the config blob: the manifest names it by digest, its bytes prove it"
cfg=$(jq -r .config.digest "$LAB/manifest.json")
lab_run curl -s -o "$LAB/config.json" "http://$REG/v2/library/busybox/blobs/$cfg"
lab_sh "echo '${cfg#sha256:}  $LAB/config.json' | sha256sum -c"
lab_run jq '{architecture, os, cmd: .config.Cmd, diff_ids: .rootfs.diff_ids}' "$LAB/config.json"

lab_step "the layer blob: its digest is of the gzip'd bytes, its diff_id of the tar"
layer=$(jq -r '.layers[0].digest' "$LAB/manifest.json")
lab_run curl -s -o "$LAB/layer.tar.gz" "http://$REG/v2/library/busybox/blobs/$layer"
lab_sh "echo '${layer#sha256:}  $LAB/layer.tar.gz' | sha256sum -c"
lab_sh "gunzip -c $LAB/layer.tar.gz | sha256sum      # = .rootfs.diff_ids[0] of the config"
lab_sh "tar tzf $LAB/layer.tar.gz | sed -n 1,5p"

lab_step "the same requests, made and narrated by pull, into the lab's own store"
lab_sh "HARDWAY_ROOT=$LAB/store pull --trace $REG/library/busybox"
lab_run jq . "$LAB/store/oci/index.json"
lab_note "busybox comes with Docker media types: its name leads to an OCI translation (hardway.converted-from = the"
lab_note "registry's digest, kept as the entry of no name), so tools that read OCI only find it by that name"
lab_sh "skopeo inspect oci:$LAB/store/oci:$REG/library/busybox:latest | jq '{Digest, Layers}'"
lab_sh "umoci unpack --image $LAB/store/oci:$REG/library/busybox:latest $LAB/umoci-bundle >/dev/null && ls $LAB/umoci-bundle/rootfs"

lab_step "a challenge: a second registry that wants a password (htpasswd, Basic auth)"
mkdir -p "$LAB/authreg" "$LAB/docker"
echo "$AUTHREG" >"$LAB/authreg/addr"
lab_sh "htpasswd -Bbn alice s3cret > $LAB/authreg/htpasswd"
lab_sh "HARDWAY_ROOT=$LAB/authreg HARDWAY_RUN=$LAB/authreg/run HARDWAY_REGISTRY=$AUTHREG HARDWAY_REGISTRY_HTPASSWD=$LAB/authreg/htpasswd scripts/registry start"
lab_sh "curl -si http://$AUTHREG/v2/ | grep -i -e '^HTTP' -e www-authenticate"
lab_sh "curl -si -u alice:s3cret http://$AUTHREG/v2/ | sed -n 1p"
lab_note "docker login keeps credentials in \$DOCKER_CONFIG/config.json; write one by hand:"
lab_sh "echo '{\"auths\":{\"$AUTHREG\":{\"auth\":\"'\$(printf alice:s3cret | base64)'\"}}}' > $LAB/docker/config.json"
lab_sh "DOCKER_CONFIG=$LAB/docker crane --insecure copy $REG/library/busybox $AUTHREG/library/busybox 2>/dev/null"
lab_sh "DOCKER_CONFIG=$LAB/docker HARDWAY_ROOT=$LAB/authstore pull --trace $AUTHREG/library/busybox 2>&1 | grep -A1 -e 401 -e '200 OK'"
lab_note "that registry has done its job: stop it"
lab_sh "HARDWAY_ROOT=$LAB/authreg HARDWAY_RUN=$LAB/authreg/run HARDWAY_REGISTRY=$AUTHREG scripts/registry stop"

lab_step "tamper with the layer in the registry's storage: pull refuses it"
hex=${layer#sha256:}
data=$REGROOT/registry/data/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data
lab_run cp -p "$data" "$LAB/layer.orig"
lab_sh "printf X | dd of=$data bs=1 seek=1000 conv=notrunc status=none   # one byte changed"
lab_wrong "HARDWAY_ROOT=$LAB/tampered pull $REG/library/busybox"
lab_sh "ls -A $LAB/tampered/oci/blobs/sha256/   # nothing under the layer's digest"
lab_run cp -p "$LAB/layer.orig" "$data"
lab_run rm "$LAB/layer.orig"
lab_note "the right bytes are back: the same pull now succeeds"
lab_sh "HARDWAY_ROOT=$LAB/tampered pull $REG/library/busybox"
lab_done
