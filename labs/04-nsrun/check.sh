#!/usr/bin/env bash
# labs/04-nsrun/check.sh: the state labs/04-nsrun/run.sh leaves; a hint for what is missing.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
LAB=$LAB_SCRATCH
B=$LAB_ROOT/containers/lab04
echo "$LAB_NAME:"
check_sh "the lab's bundle exists" "run step 1: pull … | unpack | overlay --id lab04 -- sh" \
  "test -f $B/config.json -a -d $B/rootfs/bin"
check_sh "CAP_CHOWN was dropped from the bundle" "run step 6: the jq that removes CAP_CHOWN" \
  "! jq -e '.process.capabilities.bounding | index(\"CAP_CHOWN\")' $B/config.json >/dev/null"
check_sh "no tmpfs leaked onto the host" "umount $LAB/shared (the leak of step 5)" \
  "! grep -q ' - tmpfs leak' /proc/self/mountinfo"
check_sh "the exec'd container stopped" "run: shim kill lab04 KILL" \
  "test \"\$(jq -r .status $B/state.json)\" != running"
check_end
