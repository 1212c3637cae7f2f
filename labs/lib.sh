# labs/lib.sh: what every lab's run.sh, check.sh and reset.sh share. Source it first:
#
#   . "$(dirname "$0")/../lib.sh"
#
# run.sh                          check.sh                          reset.sh
#   lab_args "$@"                   check "the registry answers" \    lab_args "$@"
#   lab_step "pull the image"         "run: scripts/registry start" \  lab_run docker-rm lab01
#   lab_run pull "$REG/…"             curl -fsS "http://$REG/v2/"     lab_forget
#   lab_sh 'pull … | unpack'        check_end
#   lab_done
#
# Also: lab_note, lab_wrong (a command that fails on purpose), lab_die, check_sh, lab_have,
# lab_cgroup_dir, lab_leftovers; lab_images (the registry up and seeded, seeding only when
# the images are missing); lab_scratch / lab_unscratch (the lab's own files in $LAB_SCRATCH,
# made empty by run.sh, removed by reset.sh); $REG, $LAB_TOP (commands run from there),
# $LAB_ROOT, $LAB_RUN, $LAB_CGPARENT (the state dirs and cgroup parent: tests move them, so
# use these rather than /var/lib/hardway, /run/hardway, "hardway" or a fixed /tmp path).
#
# run.sh --yes runs straight through (how CI and labs/run run it); --step pauses before each
# step (the default on a terminal). Every command is echoed, as "$ command", before it runs.
# A lab's status (done / failed / not run) lives in $HARDWAY_RUN/labs/NAME: check_end writes
# done or failed, a failing run.sh step writes failed, lab_forget (reset.sh) removes it.

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[1]:-$0}")" && pwd)
LAB_NAME=$(basename "$LAB_DIR")
LAB_TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH="$LAB_TOP/bin:$LAB_TOP/.tools/bin:$LAB_TOP/scripts:$PATH"
export HARDWAY_REGISTRY=${HARDWAY_REGISTRY:-127.0.0.1:5000}
REG=$HARDWAY_REGISTRY
LAB_STATUS_DIR=${HARDWAY_RUN:-/run/hardway}/labs
# The state a lab works on; CI moves all of it (test/labs): never write the defaults.
LAB_ROOT=${HARDWAY_ROOT:-/var/lib/hardway}
LAB_RUN=${HARDWAY_RUN:-/run/hardway}
LAB_CGPARENT=${HARDWAY_CGROUP_PARENT:-hardway}
# A lab's own scratch files (a tarball, a second store, a pid file, a mount point) live in
# LAB_SCRATCH, under the run dir: never a fixed /tmp path, so CI's private state holds them
# and two runs never share them. run.sh starts it afresh (lab_scratch), reset.sh removes it.
LAB_SCRATCH=$LAB_RUN/scratch/$LAB_NAME
LAB_MODE=yes
LAB_STEP=0

if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
  _b=$'\033[1m' _d=$'\033[2m' _g=$'\033[32m' _r=$'\033[31m' _y=$'\033[33m' _c=$'\033[36m' _0=$'\033[0m'
else
  _b='' _d='' _g='' _r='' _y='' _c='' _0=''
fi

# lab_args parses run.sh's flags: --yes, --step, -h.
lab_args() {
  [ -t 0 ] && LAB_MODE=step
  while [ $# -gt 0 ]; do
    case "$1" in
      -y | --yes) LAB_MODE=yes ;;
      -s | --step) LAB_MODE=step ;;
      -h | --help)
        echo "usage: $0 [--yes|--step]   (--yes: straight through; --step: pause before each step)" >&2
        exit 2
        ;;
      *) echo "$LAB_NAME: error: unknown flag $1 (use --yes or --step)" >&2; exit 2 ;;
    esac
    shift
  done
  # Commands are shown as typed from the repository's top dir, and run from there.
  cd "$LAB_TOP"
  [ "$(id -u)" = 0 ] || lab_die "the labs mount, make namespaces, cgroups and network devices: run as root (sudo $0)"
}

lab_die() {
  echo "${_r}$LAB_NAME: error: $*${_0}" >&2
  lab_status failed
  exit 1
}

# lab_status done|failed writes this lab's status file.
lab_status() {
  mkdir -p "$LAB_STATUS_DIR" 2>/dev/null || return 0
  printf '%s %s\n' "$1" "$(date -u +%FT%TZ)" >"$LAB_STATUS_DIR/$LAB_NAME.tmp" &&
    mv -f "$LAB_STATUS_DIR/$LAB_NAME.tmp" "$LAB_STATUS_DIR/$LAB_NAME"
}

# lab_forget: the lab is "not run" again (reset.sh).
lab_forget() { rm -f "$LAB_STATUS_DIR/$LAB_NAME"; }

# lab_note TEXT…: a line of explanation between commands.
lab_note() { printf '%s\n' "${_d}# $*${_0}"; }

# lab_step TITLE: starts the next numbered step; in --step mode waits for Enter first.
lab_step() {
  LAB_STEP=$((LAB_STEP + 1))
  if [ "$LAB_MODE" = step ]; then
    local ans=""
    printf '\n%s' "${_y}[Enter] step $LAB_STEP: $*   (q quits) ${_0}"
    read -r ans </dev/tty || ans=""
    [ "$ans" = q ] && { printf '\nstopped before step %s\n' "$LAB_STEP"; exit 0; }
  fi
  printf '\n%s\n' "${_b}== $LAB_NAME step $LAB_STEP: $*${_0}"
}

# _lab_quote prints its arguments as one command line a learner could type.
_lab_quote() {
  local a line=""
  for a in "$@"; do
    case "$a" in
      *[!a-zA-Z0-9_./:=@%+,-]* | "") a="'${a//\'/\'\\\'\'}'" ;;
    esac
    line+="${line:+ }$a"
  done
  printf '%s' "$line"
}

_lab_failed() {
  echo "${_r}$LAB_NAME: step $LAB_STEP failed (exit $2): $1${_0}" >&2
  echo "${_r}  see the step in $LAB_DIR/README.md; re-run with: $LAB_DIR/run.sh --step${_0}" >&2
  lab_status failed
  exit 1
}

# lab_run CMD ARGS…: echo the command, run it; a failure fails the lab.
lab_run() {
  local line rc=0
  line=$(_lab_quote "$@")
  printf '%s\n' "${_c}\$ $line${_0}"
  "$@" || rc=$?
  [ "$rc" = 0 ] || _lab_failed "$line" "$rc"
}

# lab_sh 'SHELL LINE': echo a pipeline or a line with $(…) exactly as written, run it with bash.
lab_sh() {
  local rc=0
  printf '%s\n' "${_c}\$ $1${_0}"
  bash -o pipefail -c "$1" || rc=$?
  [ "$rc" = 0 ] || _lab_failed "$1" "$rc"
}

# lab_wrong 'SHELL LINE': a command that fails on purpose, to show the wrong output; its
# failure is expected and said so, its success would be the surprise.
lab_wrong() {
  local rc=0
  printf '%s\n' "${_c}\$ $1${_0}   ${_y}# fails on purpose${_0}"
  bash -o pipefail -c "$1" || rc=$?
  if [ "$rc" = 0 ]; then
    _lab_failed "$1 (expected to fail, it succeeded)" 0
  fi
  printf '%s\n' "${_d}# (exit $rc, as expected)${_0}"
}

# lab_done: the end of run.sh.
lab_done() {
  printf '\n%s\n' "${_g}$LAB_NAME: all $LAB_STEP steps ran. Check the machine's state: $LAB_DIR/check.sh${_0}"
}

# check DESCRIPTION HINT CMD ARGS…: one state check (the command's output is hidden).
LAB_CHECKS=0
LAB_FAILS=0
check() {
  local desc=$1 hint=$2 out rc=0
  shift 2
  LAB_CHECKS=$((LAB_CHECKS + 1))
  out=$("$@" 2>&1) || rc=$?
  if [ "$rc" = 0 ]; then
    printf '  %s %s\n' "${_g}ok  ${_0}" "$desc"
  else
    LAB_FAILS=$((LAB_FAILS + 1))
    printf '  %s %s\n' "${_r}FAIL${_0}" "$desc"
    printf '       %s\n' "${_y}hint: $hint${_0}"
    if [ -n "$out" ]; then
      local n
      n=$(printf '%s\n' "$out" | wc -l)
      printf '%s\n' "$out" | sed -n 1,8p | sed "s/^/       ${_d}| /; s/\$/${_0}/"
      [ "$n" -gt 8 ] && printf '       %s\n' "${_d}| … and $((n - 8)) more lines${_0}"
    fi
  fi
  return 0
}

# check_sh DESCRIPTION HINT 'SHELL LINE': check with a pipeline.
check_sh() { check "$1" "$2" bash -o pipefail -c "$3"; }

# check_end: the summary and the status; exit 0 when every check passed.
check_end() {
  if [ "$LAB_FAILS" = 0 ]; then
    echo "${_g}$LAB_NAME: $LAB_CHECKS/$LAB_CHECKS checks pass${_0}"
    lab_status done
    exit 0
  fi
  echo "${_r}$LAB_NAME: $LAB_FAILS of $LAB_CHECKS checks fail (the hints say what is missing)${_0}"
  lab_status failed
  exit 1
}

# lab_scratch: an empty LAB_SCRATCH (what an earlier run left there would skew this one).
lab_scratch() {
  local m
  # Unmount first whatever an earlier run left mounted in it, deepest first.
  while read -r m; do umount -l "$m" 2>/dev/null || true; done < <(awk -v d="$LAB_SCRATCH/" \
    'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  rm -rf "$LAB_SCRATCH"
  mkdir -p "$LAB_SCRATCH"
}

# lab_unscratch: reset.sh's half of lab_scratch: unmount and remove LAB_SCRATCH.
lab_unscratch() {
  local m
  while read -r m; do lab_run umount -l "$m"; done < <(awk -v d="$LAB_SCRATCH/" \
    'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
  [ -e "$LAB_SCRATCH" ] && lab_run rm -rf "$LAB_SCRATCH"
  rmdir "$LAB_RUN/scratch" 2>/dev/null || true
}

# lab_images: the registry answers and holds the seed images. Lab 00 seeds them once; a
# later lab seeds again only when they are missing (seed-images takes a while), and starts
# the registry only when none answers (then its reset.sh stops it: started-registry).
lab_images() {
  local r missing=""
  if ! curl -fsS -o /dev/null --max-time 3 "http://$REG/v2/" 2>/dev/null; then
    lab_run registry start
    touch "$LAB_SCRATCH/started-registry"
  fi
  for r in library/busybox hardway/layered; do
    curl -fsS --max-time 3 "http://$REG/v2/$r/tags/list" 2>/dev/null | grep -q '"latest"' || missing=1
  done
  if [ -n "$missing" ]; then
    lab_run seed-images
  else
    lab_note "the seed images are there (lab 00 pushed them): no need to run seed-images again"
    lab_sh "curl -sS http://$REG/v2/library/busybox/tags/list http://$REG/v2/hardway/layered/tags/list"
  fi
}

# lab_cgroup_dir CONTROLLER ID: the cgroup dir of container ID that holds CONTROLLER's files
# (memory, pids, cpu …): /sys/fs/cgroup/CONTROLLER/PARENT/ID on v1 and hybrid,
# /sys/fs/cgroup/PARENT/ID on unified v2.
lab_cgroup_dir() {
  if [ "$(stat -fc %T /sys/fs/cgroup)" = cgroup2fs ]; then
    echo "/sys/fs/cgroup/$LAB_CGPARENT/$2"
  else
    echo "/sys/fs/cgroup/$1/$LAB_CGPARENT/$2"
  fi
}

# lab_have CMD: is a command installed?
lab_have() { command -v "$1" >/dev/null 2>&1; }

# lab_leftovers [ID…] prints, one per line, everything of ours the kernel still holds: mounts
# under the state dirs, network namespaces, the bridge and its veths, iptables rules and
# chains, cgroups, processes (our tools, the registry, anything in our cgroups), address
# book entries and container dirs. Nothing printed (exit 0) means a clean machine.
lab_leftovers() {
  local root=${HARDWAY_ROOT:-/var/lib/hardway} run=${HARDWAY_RUN:-/run/hardway}
  local parent=${HARDWAY_CGROUP_PARENT:-hardway} bridge=${HARDWAY_BRIDGE:-hardway0}
  local found=0 ns p d
  _left() { echo "$*"; found=1; }
  while read -r d; do _left "mount: $d"; done < <(awk -v r="$root/" -v u="$run/" \
    'index($5, r) == 1 || index($5, u) == 1 { print $5 }' /proc/self/mountinfo)
  # A netns is ours when a container dir, a run dir or an address of ours names it, or it
  # is one of the ids given as arguments (those a cleanup just removed).
  local -A known=()
  for d in "$@"; do known[$d]=1; done
  for d in "$root"/containers/* "$run"/*; do [ -e "$d" ] && known[${d##*/}]=1; done
  for d in "$run"/ipam/[0-9]*; do [ -e "$d" ] && known[$(<"$d")]=1; done
  for ns in /run/netns/*; do
    [ -e "$ns" ] || continue
    ns=${ns##*/}
    [ -n "${known[$ns]:-}" ] && _left "netns: /run/netns/$ns"
  done
  while read -r d; do _left "link: $d"; done < <(ip -o link show 2>/dev/null |
    awk -F': ' -v b="$bridge" '$2 == b || $0 ~ ("master " b " ") { print $2 }')
  if command -v iptables-save >/dev/null; then
    while read -r d; do _left "iptables: $d"; done < <(iptables-save 2>/dev/null | grep -E 'HARDWAY|hardway' | grep -v '^#')
  fi
  while read -r d; do _left "cgroup: $d"; done < <(find /sys/fs/cgroup -maxdepth 2 -type d -name "${parent%%/*}" 2>/dev/null)
  # Processes, read with bash builtins only (a fork per process is slow on a busy machine):
  # one of our tools working on this state root, the registry serving it, or anything in
  # our cgroups.
  local -a argv envv cg
  local tool e mine
  for p in /proc/[0-9]*; do
    [ "${p#/proc/}" = $$ ] && continue
    mapfile -d '' -t argv 2>/dev/null <"$p/cmdline" || continue
    [ ${#argv[@]} -gt 0 ] || continue
    mine=0
    tool=${argv[0]##*/}
    case " pull unpack overlay nsrun cgset netsetup shim inspect " in
      *" $tool "*)
        mapfile -d '' -t envv 2>/dev/null <"$p/environ" || envv=()
        e=""
        for d in "${envv[@]}"; do [ "${d#HARDWAY_ROOT=}" != "$d" ] && e=${d#HARDWAY_ROOT=}; done
        [ "${e:-/var/lib/hardway}" = "$root" ] && mine=1
        ;;
    esac
    [[ " ${argv[*]} " == *" serve $root/registry/config.yml "* ]] && mine=1
    if [ "$mine" = 0 ]; then
      mapfile -t cg 2>/dev/null <"$p/cgroup" || cg=()
      for d in "${cg[@]}"; do
        [[ $d == *":/$parent" || $d == *":/$parent/"* ]] && mine=1
      done
    fi
    [ "$mine" = 1 ] && _left "process: ${p#/proc/} ${argv[*]}"
  done
  for d in "$run"/ipam/*; do [ -e "$d" ] && [ "${d##*/}" != lock ] && _left "address: ${d##*/} ($(cat "$d" 2>/dev/null))"; done
  for d in "$root"/containers/*; do [ -e "$d" ] && _left "container dir: $d"; done
  [ "$found" = 0 ]
}
