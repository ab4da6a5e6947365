#!/usr/bin/env bash
# Starts, checks and stops a throwaway local OpenStack Keystone (identity v3) and Barbican (key
# manager, behind real Keystone auth) for rbd-luks's tests and demo. Everything it owns lives
# under one directory and listens on 127.0.0.1 only; no systemd, no /etc, no Apache, no MySQL.
#
#   openstack.sh start  [--dir DIR] [--keystone-port PORT] [--barbican-port PORT]
#   openstack.sh status [--dir DIR]
#   openstack.sh env    [--dir DIR]
#   openstack.sh stop   [--dir DIR]
#
# See docs/local-openstack.md.
set -euo pipefail

readonly PROG=openstack
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib/openstack
readonly LIB
readonly PY=/usr/bin/python3
# First line of DIR/keystone.conf: marks a directory as ours, so `stop` never deletes a
# directory this script did not create.
readonly MARKER="# rbd-luks local OpenStack"
readonly START_BUDGET_S=${RBD_LUKS_OPENSTACK_START_TIMEOUT:-60}
readonly REGION=RegionOne
readonly SERVICES="keystone barbican"

DIR=${RBD_LUKS_OPENSTACK_DIR:-/tmp/rbd-luks-openstack}
KEYSTONE_PORT=${RBD_LUKS_KEYSTONE_PORT:-15000}
BARBICAN_PORT=${RBD_LUKS_BARBICAN_PORT:-19311}
PORTS_GIVEN=${RBD_LUKS_KEYSTONE_PORT:+yes}${RBD_LUKS_BARBICAN_PORT:+yes}
TOKEN_EXPIRATION=${RBD_LUKS_KEYSTONE_TOKEN_EXPIRATION:-3600}

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

usage() {
  sed -n 's/^#   \(openstack.sh .*\)/usage: \1/p' "$0" >&2
  exit 2
}

check_port() {
  if ! [[ "$2" =~ ^[0-9]+$ ]] || [ "$2" -lt 1024 ] || [ "$2" -gt 65535 ]; then
    die "$1 must be a number in 1024..65535, got '$2'"
  fi
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || usage; DIR=$2; shift 2 ;;
      --keystone-port) [ $# -ge 2 ] || usage; KEYSTONE_PORT=$2; PORTS_GIVEN=yes; shift 2 ;;
      --barbican-port) [ $# -ge 2 ] || usage; BARBICAN_PORT=$2; PORTS_GIVEN=yes; shift 2 ;;
      -h|--help) usage ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  check_port --keystone-port "$KEYSTONE_PORT"
  check_port --barbican-port "$BARBICAN_PORT"
  [ "$KEYSTONE_PORT" != "$BARBICAN_PORT" ] || die "Keystone and Barbican need different ports"
  # Keystone accepts 0, but it truncates issued_at to the second and adds the expiration to
  # that, so a token lives between N-1 and N seconds: with N = 1 it may be dead on arrival.
  if ! [[ "$TOKEN_EXPIRATION" =~ ^[0-9]+$ ]] || [ "$TOKEN_EXPIRATION" -lt 2 ]; then
    die "RBD_LUKS_KEYSTONE_TOKEN_EXPIRATION must be a whole number of seconds >= 2"
  fi
  DIR=$(realpath -m "$DIR")
  KEYSTONE_CONF=$DIR/keystone.conf
  BARBICAN_CONF=$DIR/barbican.conf
  set_ports "$KEYSTONE_PORT" "$BARBICAN_PORT"
}

set_ports() {
  KEYSTONE_PORT=$1
  BARBICAN_PORT=$2
  AUTH_URL=http://127.0.0.1:$KEYSTONE_PORT/v3
  BARBICAN_URL=http://127.0.0.1:$BARBICAN_PORT
}

# Switches to the ports that the OpenStack in DIR was started with (from barbican.conf).
use_running_ports() {
  local k b
  k=$(sed -n 's|^auth_url = http://127.0.0.1:\([0-9]*\)/v3$|\1|p' "$BARBICAN_CONF" 2>/dev/null) || true
  b=$(sed -n 's|^host_href = http://127.0.0.1:\([0-9]*\)$|\1|p' "$BARBICAN_CONF" 2>/dev/null) || true
  [ -z "$k" ] || [ -z "$b" ] || set_ports "$k" "$b"
}

is_ours() { [ -f "$KEYSTONE_CONF" ] && head -n 1 "$KEYSTONE_CONF" | grep -qF "$MARKER"; }

# Pids of the servers of DIR, found from their command lines so that servers whose pid file is
# missing or stale (a start that died half way) are found too.
server_pids() {
  local dir_re
  dir_re=$(printf '%s' "$DIR" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  pgrep -f "/(keystone|barbican)_server\.py --config-file $dir_re/(keystone|barbican)\.conf( |\$)" || true
}

# Pid of one server if it runs (its pid file names a live, non-zombie process).
server_pid() {
  local pid state
  pid=$(cat "$DIR/run/$1.pid" 2>/dev/null) || return 1
  state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
  case "$state" in ''|Z) return 1 ;; esac
  echo "$pid"
}

# Whether something accepts TCP connections on 127.0.0.1:$1.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# HTTP status of a GET (000 when nothing answers within 2 s).
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

keystone_answers() { [ "$(http_status "$AUTH_URL")" = 200 ]; }
# / is Barbican's unauthenticated version list (300 Multiple Choices).
barbican_answers() { [ "$(http_status "$BARBICAN_URL/")" = 300 ]; }

# Seconds since a `date +%s%N` timestamp, with one decimal.
seconds_since() { awk -v t0="$1" -v t1="$(date +%s%N)" 'BEGIN { printf "%.1f", (t1 - t0) / 1e9 }'; }

kill_servers() {
  # The data dies with the directory, so there is nothing to shut down cleanly.
  local pid waited=0
  for pid in $(server_pids); do kill -KILL "$pid" 2>/dev/null || true; done
  while [ -n "$(server_pids)" ]; do
    [ $waited -lt 100 ] || die "could not stop processes $(server_pids | tr '\n' ' ')of $DIR"
    sleep 0.05; waited=$((waited + 1))
  done
}

# Ends a failed start: one line saying why, the tails of the logs that explain it (those of
# servers that died, else the ones named), and no processes left behind. Logs stay in DIR.
fail_start() {
  local reason=$1; shift
  local names="" n f
  for n in $SERVICES; do server_pid "$n" >/dev/null || names+="$n "; done
  for n in ${names:-$*}; do
    for f in "$DIR/log/$n.stderr" "$DIR/log/$n.log"; do
      [ -s "$f" ] || continue
      echo "---- last lines of $f" >&2
      tail -n 20 "$f" >&2
    done
  done
  kill_servers
  echo "$PROG: start failed: $reason; logs in $DIR/log" >&2
  exit 1
}

random_hex() { od -An -tx1 -N"$1" /dev/urandom | tr -d ' \n'; }

# render TEMPLATE OUT NAME=VALUE...: the template with every @NAME@ replaced.
render() {
  local template=$1 out=$2 script="" kv value
  shift 2
  for kv in "$@"; do
    value=$(printf '%s' "${kv#*=}" | sed 's/[\\|&]/\\&/g')
    script+="s|@${kv%%=*}@|$value|g;"
  done
  sed "$script" "$template" >"$out"
}

# Runs `$1_server.py ARGS...` in the background, detached from this script's session.
spawn() {
  local name=$1; shift
  setsid "$PY" "$LIB/${name}_server.py" "$@" --pid-file "$DIR/run/$name.pid" \
    </dev/null >>"$DIR/log/$name.stderr" 2>&1 &
}

# Waits until `$1_answers` succeeds; fails the start when a server exits or time runs out.
wait_for() {
  local name=$1 deadline=$2
  local n
  until "${name}_answers"; do
    for n in $SERVICES; do server_pid "$n" >/dev/null || fail_start "$n exited" "$n"; done
    [ "$(date +%s)" -lt "$deadline" ] || fail_start "$name not answering within $START_BUDGET_S s" "$name"
    sleep 0.1
  done
}

cmd_start() {
  local t0 deadline
  t0=$(date +%s%N)
  deadline=$(($(date +%s) + START_BUDGET_S))
  if is_ours; then
    if [ -n "$(server_pids)" ]; then
      local want_ports="$KEYSTONE_PORT/$BARBICAN_PORT"
      use_running_ports
      [ -z "$PORTS_GIVEN" ] || [ "$want_ports" = "$KEYSTONE_PORT/$BARBICAN_PORT" ] \
        || die "an OpenStack on ports $KEYSTONE_PORT/$BARBICAN_PORT is running in $DIR; stop it first"
      if [ -f "$DIR/openrc" ] && server_pid keystone >/dev/null && server_pid barbican >/dev/null \
          && keystone_answers && barbican_answers; then
        local running
        running=$(sed -n 's/^expiration = //p' "$KEYSTONE_CONF")
        [ -z "${RBD_LUKS_KEYSTONE_TOKEN_EXPIRATION:-}" ] || [ "$running" = "$TOKEN_EXPIRATION" ] \
          || die "Keystone in $DIR issues $running s tokens, not $TOKEN_EXPIRATION; stop it first"
        echo "$DIR/openrc"
        return 0
      fi
      set_ports "${want_ports%/*}" "${want_ports#*/}"
    fi
    log "recreating the stopped or broken OpenStack in $DIR"
    cmd_stop
  elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR exists and was not made by this script; choose another --dir"
  fi
  local p
  for p in "$KEYSTONE_PORT" "$BARBICAN_PORT"; do
    ! port_in_use "$p" || die "port $p is already in use; choose other ports"
  done

  # DIR holds the fernet keys, every password and Barbican's KEK: for our eyes only.
  umask 077
  mkdir -p "$DIR"/{run,log}
  local admin_pw barbican_pw
  admin_pw=$(random_hex 16)
  barbican_pw=$(random_hex 16)
  render "$LIB/keystone.conf.in" "$KEYSTONE_CONF" DIR="$DIR" TOKEN_EXPIRATION="$TOKEN_EXPIRATION"
  render "$LIB/barbican.conf.in" "$BARBICAN_CONF" DIR="$DIR" REGION="$REGION" \
    KEYSTONE_PORT="$KEYSTONE_PORT" BARBICAN_PORT="$BARBICAN_PORT" \
    BARBICAN_PASSWORD="$barbican_pw" KEK="$(head -c 32 /dev/urandom | base64)"

  # Both start at once: Barbican contacts Keystone only when the first request comes in.
  RBD_LUKS_KEYSTONE_BOOTSTRAP_PASSWORD=$admin_pw spawn keystone \
    --config-file "$KEYSTONE_CONF" --port "$KEYSTONE_PORT" --region "$REGION"
  spawn barbican --config-file "$BARBICAN_CONF" --paste-file "$LIB/barbican-api-paste.ini" \
    --port "$BARBICAN_PORT"
  # The launchers write their pid files first thing; give them a moment to exist.
  local n waited=0
  for n in $SERVICES; do
    until [ -s "$DIR/run/$n.pid" ]; do
      [ $waited -lt 100 ] || fail_start "$n did not start" "$n"
      sleep 0.05; waited=$((waited + 1))
    done
  done
  wait_for keystone "$deadline"
  wait_for barbican "$deadline"

  local budget=$((deadline - $(date +%s)))
  [ "$budget" -ge 1 ] || budget=1
  local rc=0
  RBD_LUKS_OS_ADMIN_PASSWORD=$admin_pw RBD_LUKS_OS_BARBICAN_PASSWORD=$barbican_pw \
    RBD_LUKS_OS_RBD_LUKS_PASSWORD=$(random_hex 16) RBD_LUKS_OS_OTHER_PASSWORD=$(random_hex 16) \
    timeout -k 2 "$budget" "$PY" "$LIB/provision.py" --dir "$DIR" --auth-url "$AUTH_URL" \
      --barbican-url "$BARBICAN_URL" --region "$REGION" --token-expiration "$TOKEN_EXPIRATION" \
      --budget "$budget" 2>"$DIR/log/provision.stderr" || rc=$?
  [ "$rc" != 124 ] || echo "provision: not done within $START_BUDGET_S s" >>"$DIR/log/provision.stderr"
  [ "$rc" = 0 ] || fail_start "$(tail -n 1 "$DIR/log/provision.stderr")" keystone barbican
  log "ready in $(seconds_since "$t0") s: Keystone $AUTH_URL, Barbican $BARBICAN_URL"
  echo "$DIR/openrc"
}

cmd_status() {
  is_ours || { echo "no OpenStack in $DIR"; return 1; }
  use_running_ports
  local rc=0
  if server_pid keystone >/dev/null && keystone_answers; then
    echo "keystone: up at $AUTH_URL"
  else
    echo "keystone: down"; rc=1
  fi
  if server_pid barbican >/dev/null && barbican_answers; then
    echo "barbican: up at $BARBICAN_URL"
  else
    echo "barbican: down"; rc=1
  fi
  return $rc
}

cmd_env() {
  if ! is_ours || [ ! -f "$DIR/openrc" ]; then die "no OpenStack in $DIR"; fi
  grep '^export ' "$DIR/openrc"
  echo "export RBD_LUKS_OPENSTACK_DIR=$DIR"
}

cmd_stop() {
  [ -e "$DIR" ] || return 0
  is_ours || [ -z "$(ls -A "$DIR")" ] || die "$DIR was not made by this script; not touching it"
  kill_servers
  rm -rf "$DIR"
}

main() {
  [ $# -ge 1 ] || usage
  local cmd=$1; shift
  parse_args "$@"
  case "$cmd" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    env) cmd_env ;;
    *) usage ;;
  esac
}

main "$@"
