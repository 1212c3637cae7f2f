#!/usr/bin/env bash
# labs/07-shim/run.sh [--yes|--step]: why a shim. Kill the caller and the container lives;
# exit codes (and why PID 1 ignores SIGTERM); the json-file log; attach.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
lab_args "$@"
LAB=$LAB_SCRATCH
C=$LAB_ROOT/containers
# A re-run starts from a clean slate: what an earlier run left goes first.
if [ -e "$LAB_ROOT/containers/lab07" ]; then "$LAB_DIR/reset.sh" --yes >/dev/null 2>&1 || true; fi
lab_scratch

lab_step "a local registry with the seed images, and busybox pulled and unpacked"
lab_images
lab_sh "pull $REG/library/busybox:latest | unpack | tee $LAB/img"
img=$(cat "$LAB/img")

lab_step "a bundle whose process counts, one line a second, and has no TERM handler"
lab_sh "overlay --id lab07 $img -- sh -c 'i=0; while true; do i=\$((i+1)); echo tick \$i; sleep 1; done'"

lab_step "start it under shim from a shell, then SIGKILL that shell: the caller is gone"
lab_note "shim re-executes itself in a new session (setsid) with stdio on /dev/null, becomes a subreaper,"
lab_note "starts nsrun, learns the container's pid over a sync pipe, prints it, and the caller returns"
lab_sh "bash -c 'shim --trace --id lab07 -- nsrun $C/lab07 > $LAB/pid; kill -9 \$\$'; echo \"caller exit: \$? (137 = SIGKILL)\"; true"
lab_sh "cat $LAB/pid; shim ps"

lab_step "who is the container's parent now? the shim, in its own session, under PID 1"
lab_sh "ps -o pid,ppid,sid,args -p \$(jq -r .shimPid $C/lab07/state.json),\$(cat $LAB/pid)"
lab_sh "pstree -apS \$(jq -r .shimPid $C/lab07/state.json)"
lab_sh "cat $C/lab07/state.json"

lab_step "the log: Docker's json-file format, one object per line"
lab_sh "sleep 2; head -n 3 $C/lab07/log.json"
lab_run shim logs lab07

lab_step "attach: the output live, over the attach socket in the run dir"
lab_sh "ls -l $LAB_RUN/lab07/"
lab_sh "timeout 3 shim attach --no-stdin lab07 || true"

lab_step "SIGTERM does nothing: PID 1 of a pid namespace ignores signals it has no handler for"
lab_run shim kill lab07 TERM
lab_sh "sleep 1; shim ps | grep lab07; grep -E '^Sig(Cgt|Ign)' /proc/\$(cat $LAB/pid)/status"
lab_note "SigCgt (caught) is 0 for TERM: the kernel drops it. Docker's stop sends KILL after 10s for that reason"

lab_step "SIGKILL cannot be ignored: exit code 128+9, recorded by the shim after its caller is long gone"
lab_run shim kill lab07 KILL
lab_run shim wait lab07
lab_sh "jq '{status, exitCode, oomKilled, finished}' $C/lab07/state.json"
lab_sh "shim ps | grep lab07"

lab_done
