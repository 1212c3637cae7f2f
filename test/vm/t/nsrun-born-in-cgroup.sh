# On a cgroup v2 host nsrun clones the init straight into the container's cgroup (clone3
# CLONE_INTO_CGROUP, Linux 5.7): the init's first look at /proc/self/cgroup (traced before
# it waits for nsrun's go-ahead, so before any join could have happened) already shows it,
# and nsrun writes no cgroup.procs. The container's process, in the cgroup namespace overlay
# asks for on v2, sees that cgroup as its root, 0::/, and so does an nsrun exec.
. /vmtest/t/lib
mkdir -p $HARDWAY_ROOT
[ -e $HARDWAY_ROOT/oci ] || cp -a /vmtest/store/oci $HARDWAY_ROOT/oci
img=$(grep '/library/busybox@' /vmtest/images)
unpack "$img" >/dev/null
id=born$$
bundle=$(overlay --id $id "$img" -- cat /proc/self/cgroup)
cgset create $id --pids 20 >/dev/null
out=$(nsrun --trace --cgroup $id "$bundle" 2>/tmp/$id.trace) || fail "nsrun failed: $(cat /tmp/$id.trace)"
cat /tmp/$id.trace
[ "$out" = "0::/" ] || fail "the container's first process is in '$out', want 0::/ (the root of its cgroup namespace)"
grep -q "CLONE_INTO_CGROUP $cg/hardway/$id" /tmp/$id.trace || fail "the trace shows no clone3 CLONE_INTO_CGROUP"
grep -q "the init starts in cgroup 0::/hardway/$id\$" /tmp/$id.trace || fail "the init did not start in its cgroup: $(grep 'init starts' /tmp/$id.trace)"
! grep -q cgroup.procs /tmp/$id.trace || fail "nsrun wrote cgroup.procs: the init was moved, not born there"

# exec: the joiner ends up in the running container's cgroup too (joined, not cloned: the
# kernel checks CLONE_INTO_CGROUP against the forking thread's cgroup namespace, the
# container's, which does not hold nsrun's own cgroup).
sed -i 's#"cat",#"sleep",#; s#"/proc/self/cgroup"#"1000"#' "$bundle/config.json"
nsrun --cgroup $id "$bundle" &
npid=$!
# Born in the cgroup, the init is in cgroup.procs before it has made its cgroup namespace:
# wait for the container's process itself.
eventually 10 sh -c "grep -qx sleep /proc/\$(head -1 $cg/hardway/$id/cgroup.procs)/comm" || fail "the sleeping container did not start"
cpid=$(head -1 $cg/hardway/$id/cgroup.procs)
echo "exec into $cpid ($(cat /proc/$cpid/comm))"
out=$(timeout 30 nsrun --trace exec --pid $cpid -- cat /proc/self/cgroup 2>/tmp/$id.trace) || fail "nsrun exec failed: $(cat /tmp/$id.trace)"
[ "$out" = "0::/" ] || fail "nsrun exec's command is in '$out', want 0::/ (the container's cgroup)"
# SIGKILL: a SIGTERM would reach only the container's PID 1, which ignores it (no handler).
kill -KILL $npid; wait $npid || true
overlay rm $id >/dev/null
cgset delete $id >/dev/null
