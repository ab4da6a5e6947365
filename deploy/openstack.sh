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
# shellcheck source=lib/service.bash
source "$LIB/../service.bash"
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
  MARKER_FILE=$KEYSTONE_CONF
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

# Pids of the servers of DIR, found from their command lines so that servers whose pid file is
# missing or stale (a start that died half way) are found too.
service_pids() {
  pgrep -f "/(keystone|barbican)_server\.py --config-file $(regex_escape "$DIR")/(keystone|barbican)\.conf( |\$)" \
    || true
}

# Pid of one server if it runs.
server_pid() { live_pid "$DIR/run/$1.pid"; }

dead_services() {
  local n
  for n in $SERVICES; do server_pid "$n" >/dev/null || echo "$n"; done
}

# HTTP status of a GET (000 when nothing answers within 2 s).
http_status() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" || true; }

keystone_answers() { [ "$(http_status "$AUTH_URL")" = 200 ]; }
# / is Barbican's unauthenticated version list (300 Multiple Choices).
barbican_answers() { [ "$(http_status "$BARBICAN_URL/")" = 300 ]; }

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
    if [ -n "$(service_pids)" ]; then
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
  fi
  refuse_foreign_dir
  require_free_ports "choose other ports" "$KEYSTONE_PORT" "$BARBICAN_PORT"

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
  local n
  for n in $SERVICES; do
    poll 100 test -s "$DIR/run/$n.pid" || fail_start "$n did not start" "$n"
  done
  wait_for keystone "$deadline"
  wait_for barbican "$deadline"

  local budget
  budget=$(seconds_left "$deadline")
  RBD_LUKS_OS_ADMIN_PASSWORD=$admin_pw RBD_LUKS_OS_BARBICAN_PASSWORD=$barbican_pw \
    RBD_LUKS_OS_RBD_LUKS_PASSWORD=$(random_hex 16) RBD_LUKS_OS_OTHER_PASSWORD=$(random_hex 16) \
    bounded "$budget" "$DIR/log/provision.stderr" "provision: not done within $START_BUDGET_S s" \
      "$PY" "$LIB/provision.py" --dir "$DIR" --auth-url "$AUTH_URL" --barbican-url "$BARBICAN_URL" \
      --region "$REGION" --token-expiration "$TOKEN_EXPIRATION" --budget "$budget" \
    || fail_start "$(tail -n 1 "$DIR/log/provision.stderr")" keystone barbican
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

service_main "$@"
