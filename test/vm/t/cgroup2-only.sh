# The VM is the host we claim to support: cgroup v2 mounted alone at /sys/fs/cgroup, no v1.
. /vmtest/t/lib
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || fail "/sys/fs/cgroup is not cgroup2"
if grep ' cgroup ' /proc/mounts; then fail "a cgroup v1 hierarchy is mounted"; fi
echo "kernel $(uname -r); root controllers: $(cat $cg/cgroup.subtree_control)"
for c in memory cpu pids; do
	grep -qw $c $cg/cgroup.subtree_control || fail "$c is not enabled at the root"
done
# Linux 6.1 lacks lowerdir+ (6.8): the overlay fallback is what runs here.
case $(uname -r) in 6.[0-7].*|5.*) ;; *) fail "kernel $(uname -r) is not the old kernel this VM is for" ;; esac
