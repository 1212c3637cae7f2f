# An OOM kill in a 32m cgroup is seen in memory.events and reported by cgset show and watch.
. /vmtest/t/lib
id=oom$$
cgset create $id --memory 32m >/dev/null
d=$cg/hardway/$id
cgset watch $id >/tmp/$id.watch 2>&1 &
watch=$!
sleep 0.5
set +e
# tail keeps the never-ending "line" of /dev/zero in memory until the kernel kills it
# (bounded: without memory.max it would only be throttled, forever).
timeout 60 sh -c "echo \$\$ > $d/cgroup.procs && exec tail /dev/zero"
rc=$?
set -e
[ $rc = 137 ] || fail "tail /dev/zero in a 32m cgroup exited $rc, want 137 (SIGKILL by the OOM killer)"
cat $d/memory.events
k=$(awk '$1 == "oom_kill" { print $2 }' $d/memory.events)
[ "${k:-0}" -ge 1 ] || fail "memory.events says oom_kill ${k:-0}"
json=$(cgset show --json $id)
echo "$json"
echo "$json" | grep -Eq '"oomKills": *[1-9]' || fail "cgset show --json does not report the OOM kill: $json"
cgset show $id | grep -Eq 'oom kills: *[1-9]' || fail "cgset show does not report the OOM kill"
eventually 10 sh -c "! kill -0 $watch" || fail "cgset watch did not end when the cgroup emptied"
wait $watch || fail "cgset watch failed: $(cat /tmp/$id.watch)"
cat /tmp/$id.watch
grep -q "^oom $id [1-9]" /tmp/$id.watch || fail "cgset watch printed no 'oom $id N': $(cat /tmp/$id.watch)"
cgset delete $id
[ ! -e $d ] || fail "$d left"
