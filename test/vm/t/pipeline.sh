# The whole docker run flow on an image pulled on the host: unpack → overlay → netsetup →
# cgset → shim -- nsrun → inspect → docker-rm, and nothing left afterwards.
. /vmtest/t/lib
mkdir -p $HARDWAY_ROOT
[ -e $HARDWAY_ROOT/oci ] || cp -a /vmtest/store/oci $HARDWAY_ROOT/oci
img=$(grep '/library/busybox@' /vmtest/images)
layered=$(grep '/hardway/layered@' /vmtest/images)
[ -n "$img" ] && [ -n "$layered" ] || fail "no test images in /vmtest/images"
unpack "$img" >/dev/null
unpack "$layered" >/dev/null

id=web$$
bundle=$(overlay --id $id "$img" -- sh -c 'echo hello from $(hostname); echo pid=$$; exec sleep 1000')
[ -d "$bundle/rootfs/bin" ] || fail "overlay printed '$bundle', which has no rootfs"
netsetup add $id >/dev/null
cgset create $id --memory 64m --pids 50 --cpus 1 >/dev/null
pid=$(shim --id $id -- nsrun --netns $id --cgroup $id "$bundle")
[ -n "$pid" ] && kill -0 "$pid" || fail "shim printed pid '$pid', which does not run"
# Started directly in its cgroup: the container's process is in hardway/ID from the start.
is /proc/$pid/cgroup "0::/hardway/$id"
eventually 10 sh -c "shim logs $id | grep -q pid=1" || fail "the container did not print pid=1: $(shim logs $id 2>&1)"
shim logs $id | grep -qx "hello from $id" || fail "no 'hello from $id' in the logs: $(shim logs $id 2>&1)"
[ "$(readlink /proc/$pid/ns/net)" != "$(readlink /proc/1/ns/net)" ] || fail "the container shares the host's netns"
[ "$(readlink /proc/$pid/ns/pid)" != "$(readlink /proc/1/ns/pid)" ] || fail "the container shares the host's pid ns"
inspect $id >/tmp/$id.inspect 2>&1 || fail "inspect failed: $(cat /tmp/$id.inspect)"
cat /tmp/$id.inspect
grep -q "/hardway/$id" /tmp/$id.inspect || fail "inspect does not show the cgroup /hardway/$id"
grep -q 'overlay' /tmp/$id.inspect || fail "inspect does not show the overlay root"
grep -Eq '10\.[0-9]+\.[0-9]+\.[0-9]+' /tmp/$id.inspect || fail "inspect shows no container address"
addr=$(grep -Eo '10\.[0-9]+\.[0-9]+\.[0-9]+' /tmp/$id.inspect | grep -v '\.1$' | head -1)
ping -c 1 -W 5 "$addr" || fail "the container's address $addr does not answer a ping from the host"

"$REPO"/scripts/docker-rm $id || fail "docker-rm $id failed"
! kill -0 $pid 2>/dev/null || fail "the container's process $pid still runs after docker-rm"
[ ! -e $cg/hardway/$id ] || fail "cgroup $cg/hardway/$id left"
[ ! -e /run/netns/$id ] || fail "/run/netns/$id left"
! grep -q "$id" /proc/mounts || fail "a mount of $id is left: $(grep $id /proc/mounts)"
[ ! -e $HARDWAY_ROOT/containers/$id ] || fail "$HARDWAY_ROOT/containers/$id left"
! iptables-save 2>/dev/null | grep -q "hardway:$id" || fail "iptables rules of $id left"

# Foreground, on the two-layer image: the whiteout hides /etc/motd, /hello.txt is there.
id2=fg$$
bundle=$(overlay --id $id2 "$layered" -- sh -c 'echo pid=$$; cat /hello.txt; test ! -e /etc/motd && echo motd-gone')
netsetup add $id2 >/dev/null
cgset create $id2 --memory 32m >/dev/null
out=$(nsrun --netns $id2 --cgroup $id2 "$bundle")
echo "$out"
echo "$out" | grep -qx pid=1 || fail "nsrun: the command is not PID 1: $out"
echo "$out" | grep -qx motd-gone || fail "nsrun: the layered image's whiteout is not obeyed: $out"
"$REPO"/scripts/docker-rm $id2 >/dev/null || fail "docker-rm $id2 failed"
[ -z "$(ls $HARDWAY_ROOT/containers 2>/dev/null)" ] || fail "containers left: $(ls $HARDWAY_ROOT/containers)"
left=$(find $cg/hardway -mindepth 1 -type d 2>/dev/null)
[ -z "$left" ] || fail "cgroups left: $left"
