# scripts/lib.sh: what docker-run and docker-rm share. Sourced, never run.
#
#   show CMD…      print CMD on stderr the way a learner would type it, when $show is 1
#   step CMD…      show it, then run it

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
