#!/usr/bin/env bash
# bench/nsrun.sh: start-to-exit latency of /bin/true in one busybox bundle, side by side in one
# hyperfine run:
#   nsrun      bin/nsrun BUNDLE
#   runc       runc run -b BUNDLE ID           (Debian's runc)
#   crun       crun run -b BUNDLE ID           (Debian's crun)
#   floor      unshare --fork --pid --mount --uts --ipc --net true
# then the peak RSS of each (GNU time's %M: the largest process of the run), then nsrun, crun
# and the floor (and base) interleaved, ROUNDS rounds (100), the order rotating each round:
# the fair comparison on a shared machine, where hyperfine's runs of one command in a row
# can all catch the same burst of load.
#
# The bundle is `runc spec`'s config (no seccomp: Debian's runc and crun load none by
# default there, so nsrun runs with hardway.seccomp=unconfined too; cgroup: runc and crun
# make one per container, nsrun joins none). crun 1.8 refuses this host's hybrid cgroup
# layout, so the script re-executes itself in a private mount namespace where the empty
# /sys/fs/cgroup/unified is unmounted, for all four alike. Nothing outside that namespace
# and its temporary dir is touched.
#
#   RUNS=50 bench/nsrun.sh
#   BASE=/tmp/nsrun-old bench/nsrun.sh   # also an older nsrun build, as "base", in both parts
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ "${BENCH_IN_MNTNS:-}" != 1 ]; then
  [ "$(id -u)" = 0 ] || { echo "bench/nsrun.sh: error: needs root (namespaces, mounts)" >&2; exit 1; }
  BENCH_IN_MNTNS=1 exec unshare --mount --propagation private -- "$0" "$@"
fi
if mountpoint -q /sys/fs/cgroup/unified; then umount /sys/fs/cgroup/unified; fi

runs=${RUNS:-30}
nsrun=$repo/bin/nsrun
[ -x "$nsrun" ] || { echo "bench/nsrun.sh: error: $nsrun is not built (run: make)" >&2; exit 1; }
for t in hyperfine runc crun busybox python3 /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "bench/nsrun.sh: error: $t not found (apt-get install hyperfine runc crun busybox-static time)" >&2; exit 1; }
done

work=$(mktemp -d "${TMPDIR:-/tmp}/hardway-bench-nsrun.XXXXXX")
trap 'rm -rf "$work"' EXIT
b=$work/bundle
mkdir -p "$b/rootfs/bin" "$b/rootfs/proc" "$b/rootfs/sys" "$b/rootfs/dev" "$b/rootfs/tmp"
cp "$(command -v busybox)" "$b/rootfs/bin/busybox"
ln -s busybox "$b/rootfs/bin/true"
ln -s busybox "$b/rootfs/bin/sh"
(cd "$b" && runc spec)
python3 - "$b/config.json" <<'PY'
import json, sys
p = sys.argv[1]
c = json.load(open(p))
c["process"]["terminal"] = False
c["process"]["args"] = ["/bin/true"]
c.setdefault("annotations", {})["hardway.seccomp"] = "unconfined"
json.dump(c, open(p, "w"), indent=1)
PY
mkdir -p "$work/runc" "$work/crun"

base=${BASE:-}
[ -z "$base" ] || [ -x "$base" ] || { echo "bench/nsrun.sh: error: BASE=$base is not an executable" >&2; exit 1; }

# Every tool must run the bundle before it is timed.
"$nsrun" "$b"
[ -z "$base" ] || "$base" "$b"
runc --root "$work/runc" run -b "$b" "check$$"
crun --root "$work/crun" run -b "$b" "check$$"

# One hyperfine run for all four, through its shell (whose startup it measures and
# subtracts): runc and crun need a fresh container id per run, the shell's $$.
extra=()
[ -z "$base" ] || extra=(-n base "$base $b")
hyperfine --warmup 3 --runs "$runs" --export-json "$work/h.json" \
  -n nsrun "$nsrun $b" "${extra[@]}" \
  -n runc "runc --root $work/runc run -b $b b\$\$" \
  -n crun "crun --root $work/crun run -b $b b\$\$" \
  -n floor "unshare --fork --pid --mount --uts --ipc --net true" \
  >/dev/null

peak() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
declare -A mem
mem[nsrun]=$(peak "$nsrun" "$b")
mem[runc]=$(peak runc --root "$work/runc" run -b "$b" "m$$")
mem[crun]=$(peak crun --root "$work/crun" run -b "$b" "m$$")
mem[floor]=$(peak unshare --fork --pid --mount --uts --ipc --net true)
mem[base]=-
[ -z "$base" ] || mem[base]=$(peak "$base" "$b")

python3 - "$work/h.json" "${mem[nsrun]}" "${mem[runc]}" "${mem[crun]}" "${mem[floor]}" "${mem[base]}" <<'PY'
import json, sys
r = {}
for x in json.load(open(sys.argv[1]))["results"]:
    r[x["command"]] = x
mem = dict(zip(["nsrun", "runc", "crun", "floor", "base"], sys.argv[2:7]))
print(f"{'':8}{'mean ms':>10}{'± ms':>8}{'min ms':>9}{'peak RSS KiB':>14}")
for n in ["nsrun", "base", "runc", "crun", "floor"]:
    if n not in r:
        continue
    x = r[n]
    print(f"{n:8}{x['mean']*1e3:10.2f}{x['stddev']*1e3:8.2f}{x['min']*1e3:9.2f}{mem[n]:>14}")
m = {n: r[n]["mean"] for n in r}
print(f"\nrunc/nsrun {m['runc']/m['nsrun']:.2f}x   crun/nsrun {m['crun']/m['nsrun']:.2f}x   "
      f"nsrun/floor {m['nsrun']/m['floor']:.2f}x   (goals: crun/nsrun > 1, nsrun/floor < 2)")
print(f"peak RSS runc/nsrun {int(mem['runc'])/int(mem['nsrun']):.2f}x")
if "base" in m:
    print(f"base/nsrun {m['base']/m['nsrun']:.2f}x")
PY

# Interleaved: nsrun, crun, the floor (and base) in turn, wall time from perf_counter
# (PAIRS, the old name of ROUNDS, still works).
python3 - "$nsrun" "$b" "${ROUNDS:-${PAIRS:-100}}" "$work/crun" "$base" <<'PY'
import statistics, subprocess, sys, time
nsrun, bundle, rounds, crunroot, base = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
cmds = {"nsrun": lambda i: [nsrun, bundle],
        "crun": lambda i: ["crun", "--root", crunroot, "run", "-b", bundle, f"i{i}"],
        "floor": lambda i: ["unshare", "--fork", "--pid", "--mount", "--uts", "--ipc", "--net", "true"]}
if base:
    cmds["base"] = lambda i: [base, bundle]
t = {k: [] for k in cmds}
names = list(cmds)
for i in range(rounds):
    for k in names[i % len(names):] + names[:i % len(names)]:
        s = time.perf_counter()
        subprocess.run(cmds[k](i), check=True)
        t[k].append((time.perf_counter() - s) * 1e3)
print(f"\ninterleaved, {rounds} rounds:")
for k, v in t.items():
    v.sort()
    print(f"{k:8}median {statistics.median(v):7.2f} ms   p25 {v[len(v) // 4]:7.2f}   min {v[0]:7.2f}")
m = {k: statistics.median(v) for k, v in t.items()}
line = f"crun/nsrun {m['crun']/m['nsrun']:.2f}x   nsrun/floor {m['nsrun']/m['floor']:.2f}x (medians)"
if base:
    line += f"   base/nsrun {m['base']/m['nsrun']:.2f}x"
print(line)
PY
