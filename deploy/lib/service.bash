# Service management shared by deploy/ceph-cluster.sh and deploy/openstack.sh (sourced, not run):
# a directory that the script marks as its own, daemons found by pid file and command line, starts
# that fail with the log tails that explain them, stop, and the start/stop/status/env dispatch.
#
# The sourcing script sets PROG (its name without .sh) and MARKER (the first line of MARKER_FILE);
# parse_args "$@" sets DIR and MARKER_FILE. It defines parse_args, cmd_start, cmd_status, cmd_env,
# service_pids (every process of DIR, one pid a line) and dead_services (names of the services
# whose process is gone; their logs are DIR/log/NAME.stderr and DIR/log/NAME.log).

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

# The usage lines of the script's header comment ("#   PROG.sh ...").
usage() {
  sed -n "s/^#   \\($PROG\\.sh .*\\)/usage: \\1/p" "$0" >&2
  exit 2
}

# Whether DIR was made by this script: MARKER_FILE starts with MARKER.
is_ours() { [ -f "$MARKER_FILE" ] && head -n 1 "$MARKER_FILE" | grep -qF "$MARKER"; }

# $1 with the characters special in an extended regular expression escaped, for pgrep patterns.
regex_escape() { printf '%s' "$1" | sed 's/[][\.*^$+?(){}|]/\\&/g'; }

# Prints the pid in pid file $1 if it names a live process; fails if not, or if the process is a
# zombie (daemons are children of init, which may reap them late).
live_pid() {
  local pid state
  pid=$(cat "$1" 2>/dev/null) || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  case "$state" in ''|Z) return 1 ;; esac
  echo "$pid"
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# require_free_ports HINT PORT...: dies naming the first port in use, and what to do about it.
require_free_ports() {
  local hint=$1 p
  shift
  for p in "$@"; do
    ! port_in_use "$p" || die "port $p is already in use; $hint"
  done
}

# Seconds since a `date +%s%N` timestamp, with one decimal.
seconds_since() { awk -v t0="$1" -v t1="$(date +%s%N)" 'BEGIN { printf "%.1f", (t1 - t0) / 1e9 }'; }

# Whole seconds until the `date +%s` deadline $1, at least 1.
seconds_left() {
  local left=$(($1 - $(date +%s)))
  [ "$left" -ge 1 ] || left=1
  echo "$left"
}

# poll TRIES CMD...: runs CMD every 0.05 s until it succeeds; fails after TRIES failed runs.
poll() {
  local tries=$1 i
  shift
  for ((i = 0; i < tries; i++)); do
    "$@" && return 0
    sleep 0.05
  done
  return 1
}

# bounded SECONDS LOG MESSAGE CMD...: runs CMD for at most SECONDS with its stderr in LOG, and ends
# LOG with MESSAGE when time runs out. Returns CMD's exit status (124 when it ran out of time).
bounded() {
  local seconds=$1 log=$2 message=$3 rc=0
  shift 3
  timeout -k 2 "$seconds" "$@" 2>"$log" || rc=$?
  [ "$rc" != 124 ] || echo "$message" >>"$log"
  return "$rc"
}

no_service_pids() { [ -z "$(service_pids)" ]; }

kill_services() {
  # The data dies with the directory, so there is nothing to shut down cleanly; SIGTERM would cost
  # seconds per daemon.
  local pid
  for pid in $(service_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  poll 100 no_service_pids || die "could not stop processes $(service_pids | tr '\n' ' ')of $DIR"
}

# The last lines of the logs of the services named (DIR/log/NAME.stderr and DIR/log/NAME.log), on
# stderr.
print_log_tails() {
  local n f
  for n in "$@"; do
    for f in "$DIR/log/$n.stderr" "$DIR/log/$n.log"; do
      [ -s "$f" ] || continue
      echo "---- last lines of $f" >&2
      tail -n 20 "$f" >&2
    done
  done
}

# Ends a failed start: one line saying why, the tails of the logs that explain it (those of
# services that died, else the ones named), and no processes left behind. Logs stay in DIR.
fail_start() {
  local reason=$1
  shift
  local dead
  dead=$(dead_services)
  # shellcheck disable=SC2086
  print_log_tails ${dead:-$*}
  kill_services
  echo "$PROG: start failed: $reason; logs in $DIR/log" >&2
  exit 1
}

# Dies unless DIR is ours, empty or absent: start never builds in a directory it did not make.
refuse_foreign_dir() {
  if ! is_ours && [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR exists and was not made by this script; choose another --dir"
  fi
}

cmd_stop() {
  [ -e "$DIR" ] || return 0
  is_ours || [ -z "$(ls -A "$DIR")" ] || die "$DIR was not made by this script; not touching it"
  kill_services
  rm -rf "$DIR"
}

service_main() {
  [ $# -ge 1 ] || usage
  local cmd=$1
  shift
  parse_args "$@"
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) usage ;;
  esac
}
