# cgset create on a pure v2 host: one directory, Docker's limits in v2 files.
. /vmtest/t/lib
id=lim$$
p=$(cgset create $id --memory 32m --pids 20 --cpus 0.5)
[ "$p" = /hardway/$id ] || fail "cgset create printed '$p', want /hardway/$id"
d=$cg/hardway/$id
is $d/memory.max 33554432
is $d/pids.max 20
is $d/cpu.max "50000 100000"
# Docker's --memory sets swap to the same again: memory.swap.max holds the difference.
is $d/memory.swap.max 33554432
grep -qw memory $cg/hardway/cgroup.subtree_control || fail "memory not delegated to hardway/'s children"
cgset show $id
cgset set $id --memory 48m --cpus 1.5
is $d/memory.max 50331648
is $d/cpu.max "150000 100000"
# Again with the same values: a no-op that prints the same handle.
[ "$(cgset create $id --memory 48m --cpus 1.5)" = /hardway/$id ] || fail "create again did not print the handle"
cgset delete $id
[ ! -e $d ] || fail "$d is left after cgset delete"
cgset delete $id || fail "delete of a gone cgroup failed"
# Bad input: one line, nothing created.
if out=$(cgset create bad$$ --memory 1k 2>&1); then fail "--memory 1k accepted"; fi
echo "$out" | grep -q '^cgset: error: ' || fail "error is not 'cgset: error: …': $out"
[ ! -e $cg/hardway/bad$$ ] || fail "a refused create left $cg/hardway/bad$$"
