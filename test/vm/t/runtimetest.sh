# runtime-tools' runtimetest (built on the host from tools/) as the container's process: it
# checks from inside that what nsrun made matches config.json — here on a pure v2 host.
. /vmtest/t/lib
[ -x /vmtest/runtimetest ] || fail "/vmtest/runtimetest is missing (scripts/test-vm builds it from tools/)"
mkdir -p $HARDWAY_ROOT
[ -e $HARDWAY_ROOT/oci ] || cp -a /vmtest/store/oci $HARDWAY_ROOT/oci
img=$(grep '/library/busybox@' /vmtest/images)
unpack "$img" >/dev/null
id=rt$$
bundle=$(overlay --id $id "$img" -- /runtimetest --path=/)
cp /vmtest/runtimetest "$bundle/rootfs/runtimetest"
# As the host's TestRuntimetest does: runtimetest stops at a read-only path it cannot read,
# and /proc/sysrq-trigger is write-only: leave it out of readonlyPaths.
awk '{ l[NR] = $0 } END {
	for (i = 1; i <= NR; i++) if (l[i] ~ /"\/proc\/sysrq-trigger",?$/) {
		if (l[i] !~ /,$/) sub(/,$/, "", l[i - 1]); skip[i] = 1 }
	for (i = 1; i <= NR; i++) if (!skip[i]) print l[i] }' "$bundle/config.json" >/tmp/$id.json
mv /tmp/$id.json "$bundle/config.json"
# runtimetest reads the spec it checks against at --path.
cp "$bundle/config.json" "$bundle/rootfs/config.json"
cgset create $id --memory 64m --pids 100 >/dev/null
set +e
out=$(nsrun --cgroup $id "$bundle" 2>&1)
rc=$?
set -e
echo "$out"
overlay rm $id >/dev/null
cgset delete $id >/dev/null
echo "$out" | grep -q '^ok ' || fail "runtimetest ran no check (exit $rc)"
# "not ok … # TODO" are checks runtimetest itself cannot make yet: not failures.
bad=$(echo "$out" | grep '^not ok' | grep -v '# TODO' || true)
[ -z "$bad" ] || fail "runtimetest: $(echo "$bad" | wc -l) checks failed: $(echo "$bad" | head -3 | tr '\n' ';')"
[ $rc = 0 ] || fail "runtimetest exited $rc"
