#!/usr/bin/env bash
# labs/08-inspect/check.sh: the state run.sh leaves behind.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"

check "inspect is built" "run: make" test -x "$LAB_TOP/bin/inspect"
check_sh "the container lab08 is running under shim" "run step 2: shim --id lab08 -- nsrun --netns lab08 --cgroup lab08 …" \
  "shim ps | grep -E '^lab08 .* Up '"
check_sh "inspect sees its own pid, mnt, net, uts and ipc namespaces" "run step 3: inspect lab08" \
  "inspect lab08 --json --namespaces | jq -e '[.namespaces[] | select(.new) | .type] | contains([\"pid\",\"mnt\",\"net\",\"uts\",\"ipc\"])'"
check_sh "lsns agrees with inspect on its pid namespace" "run step 4: lsns -p PID" \
  "test \"\$(lsns -n -l -o NS -t pid -p \$(jq -r .pid $LAB_ROOT/containers/lab08/state.json))\" = \"\$(inspect lab08 --json --namespaces | jq -r '.namespaces[] | select(.type == \"pid\") | .ino')\""
check_sh "inspect shows its masked and read-only paths" "run step 6: inspect lab08 --mounts" \
  "inspect lab08 --mounts | grep -q 'masked paths:' && inspect lab08 --mounts | grep -q 'read-only paths:'"
check_sh "inspect shows its cgroup's 64m limit" "run step 2: cgset create lab08 --memory 64m" \
  "inspect lab08 --cgroup | grep -q 'memory limit: 67108864'"
check_end
