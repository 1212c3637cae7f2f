# pids.max holds a fork loop: at most 20 tasks, the rest refused (pids.events max > 0).
. /vmtest/t/lib
id=pids$$
cgset create $id --pids 20 >/dev/null
d=$cg/hardway/$id
set +e
sh -c "echo \$\$ > $d/cgroup.procs; i=0; while [ \$i -lt 60 ]; do sleep 300 & i=\$((i + 1)); done" >/tmp/$id.out 2>&1
set -e
n=$(cat $d/pids.current)
echo "pids.current $n; $(cat $d/pids.events); $(grep -c . /tmp/$id.out) fork errors"
[ "$n" -le 20 ] || fail "pids.current is $n with pids.max 20"
[ "$n" -ge 10 ] || fail "only $n tasks ran: the loop did not reach the limit"
m=$(awk '$1 == "max" { print $2 }' $d/pids.events)
[ "${m:-0}" -ge 1 ] || fail "pids.events says max ${m:-0}: no fork was refused"
cgset delete $id
[ ! -e $d ] || fail "$d left"
