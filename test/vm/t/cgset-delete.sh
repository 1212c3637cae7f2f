# cgset delete empties the cgroup with cgroup.kill (v2, Linux ≥ 5.14) and removes it.
. /vmtest/t/lib
id=del$$
cgset create $id >/dev/null
d=$cg/hardway/$id
sh -c "echo \$\$ > $d/cgroup.procs && exec sleep 1000" &
pid=$!
eventually 5 grep -qx $pid $d/cgroup.procs || fail "sleep never showed in $d/cgroup.procs"
sh -c "echo \$\$ > $d/cgroup.procs && exec sleep 1000" &
out=$(HARDWAY_TRACE=1 cgset delete $id 2>&1)
echo "$out"
echo "$out" | grep -q "echo 1 > $d/cgroup.kill" || fail "cgset delete did not use cgroup.kill"
set +e
wait $pid
rc=$?
set -e
[ $rc = 137 ] || fail "the process in the cgroup exited $rc, want 137 (killed)"
[ ! -e $d ] || fail "$d left after delete"
if ls $cg/hardway | grep -q $id; then fail "something of $id is left in $cg/hardway"; fi
