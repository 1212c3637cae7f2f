# scripts/lib.sh: what docker-run and docker-rm share. Sourced, never run.
#
#   show CMD…      print CMD on stderr the way a learner would type it, when $show is 1
#   step CMD…      show it, then run it
#   step_bg CMD…   show it with a trailing &, then run it in the background ($! is its pid)
#   remove ID [stopped]   docker-rm's undo of one container (its stages' output on stdout)

show() {
  [ "${show:-0}" = 1 ] || return 0
  local a line=""
  for a in "$@"; do
    # Quote an argument the way a learner would type it.
    case "$a" in
      *[!a-zA-Z0-9_./:=@%+,-]*|"") a="'${a//\'/\'\\\'\'}'" ;;
    esac
    line+="${line:+ }$a"
  done
  line+=${show_tail:-}
  if [ -t 2 ] && [ -z "${NO_COLOR:-}" ]; then
    printf '\033[2m$ %s\033[0m\n' "$line" >&2
  else
    printf '$ %s\n' "$line" >&2
  fi
}

step() {
  show "$@"
  "$@"
}

step_bg() {
  show_tail=" &" show "$@"
  "$@" &
}

# remove ID [stopped]: everything of the container goes. shim rm stops it if it still runs
# and removes its state and logs; then its network, cgroup and root filesystem no longer
# depend on each other and are undone side by side (netsetup del mostly waits on the
# kernel tearing links down, which the other two need not wait for). "stopped" says the
# container has already exited (docker-run --rm in the foreground, once nsrun returned): then
# shim rm has nothing to stop and goes side by side with them. Fails if any step failed.
remove() {
  local id=$1 ok=0 jobs=() j
  if [ "${2:-}" = stopped ]; then
    step_bg shim rm "$id"; jobs+=($!)
  else
    step shim rm "$id" || ok=1
  fi
  step_bg netsetup del "$id"; jobs+=($!)
  step_bg cgset delete "$id"; jobs+=($!)
  step overlay rm "$id" || ok=1
  for j in "${jobs[@]}"; do wait "$j" || ok=1; done
  return "$ok"
}
