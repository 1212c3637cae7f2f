#!/usr/bin/env bash
# labs/07-shim/check.sh: the state run.sh leaves behind.
set -uo pipefail
. "$(dirname "$0")/../lib.sh"
C=$LAB_ROOT/containers/lab07

check "shim is built" "run: make" test -x "$LAB_TOP/bin/shim"
check "the container lab07 has a state.json" "run step 3: shim --id lab07 -- nsrun $C" test -f "$C/state.json"
check_sh "it exited with 137 (SIGKILL), recorded by the shim" "run step 8: shim kill lab07 KILL; shim wait lab07" \
  "jq -e '.status == \"exited\" and .exitCode == 137' $C/state.json"
check_sh "its log holds the ticks it printed" "run step 5: shim logs lab07" "shim logs lab07 2>/dev/null | grep '^tick 2\$' >/dev/null"
check_sh "no supervisor of lab07 is left running (a zombie waiting for PID 1 counts as gone)" "shim rm lab07" \
  "s=\$(awk '/^State:/ {print \$2}' /proc/\$(jq -r .shimPid $C/state.json)/status 2>/dev/null); [ -z \"\$s\" ] || [ \"\$s\" = Z ]"
check_sh "the attach socket is gone with the container" "it is removed when the container exits" "! test -e $LAB_RUN/lab07/attach"
check_end
