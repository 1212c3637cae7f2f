# internal/cgroup's own Go tests, compiled on the host (go test -c) and run on this pure v2
# host, except those that cannot apply here:
#   TestMoreLimitsInV1Files  writes v1 files only;
#   TestWatchCLI             builds cgset with the go tool, which the VM does not have
#                            (the cgset-* scripts drive the built cgset instead);
#   TestLimitBelowUsage      expects v1's EBUSY; on v2 the kernel takes a memory.max below
#                            usage and reclaims, then OOM-kills (see docs/test-vm.md).
/vmtest/cgroup.test -test.v -test.skip 'TestMoreLimitsInV1Files|TestWatchCLI|TestLimitBelowUsage'
