#!/usr/bin/env bash
# Starts, checks and stops a throwaway one-node Ceph cluster (one mon, one mgr, N memstore OSDs)
# for rbd-luks's tests and demo. Everything it owns lives under one directory and listens on
# 127.0.0.1 only, so several clusters can run side by side; no systemd, no /etc/ceph, no /var.
#
#   ceph-cluster.sh start  [--dir DIR] [--port PORT] [--osds N]
#   ceph-cluster.sh status [--dir DIR]
#   ceph-cluster.sh env    [--dir DIR]
#   ceph-cluster.sh stop   [--dir DIR]
#
# See docs/local-cluster.md.
set -euo pipefail

readonly PROG=ceph-cluster
# Marks a directory as ours, so `stop` never deletes a directory this script did not create.
readonly MARKER="# rbd-luks local test cluster"
readonly START_BUDGET_S=${RBD_LUKS_CEPH_START_TIMEOUT:-60}
readonly OSD_BYTES=${RBD_LUKS_CEPH_OSD_BYTES:-$((2 * 1024 * 1024 * 1024))}
# Messenger ports of the mgr and OSDs come from [PORT+2, PORT+PORT_SPAN), so clusters whose mon
# ports are at least PORT_SPAN apart never compete for ports. An OSD binds 8 (4 addresses, v1+v2).
readonly PORT_SPAN=100

DIR=${RBD_LUKS_CEPH_DIR:-/tmp/rbd-luks-ceph}
PORT=${RBD_LUKS_CEPH_PORT:-17789}
PORT_GIVEN=${RBD_LUKS_CEPH_PORT:+yes}
OSDS=1

die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

usage() {
  sed -n '5,8p' "$0" | sed 's/^# *//' >&2
  exit 2
}

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || usage; DIR=$2; shift 2 ;;
      --port) [ $# -ge 2 ] || usage; PORT=$2; PORT_GIVEN=yes; shift 2 ;;
      --osds) [ $# -ge 2 ] || usage; OSDS=$2; shift 2 ;;
      -h|--help) usage ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  [[ "$PORT" =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1024 ] && [ $((PORT + PORT_SPAN)) -le 65535 ] \
    || die "--port must be a number in 1024..$((65535 - PORT_SPAN)), got '$PORT'"
  [[ "$OSDS" =~ ^[0-9]+$ ]] && [ "$OSDS" -ge 1 ] && [ "$OSDS" -le 8 ] \
    || die "--osds must be 1..8, got '$OSDS'"
  [[ "$OSD_BYTES" =~ ^[0-9]+$ ]] || die "RBD_LUKS_CEPH_OSD_BYTES must be a byte count"
  mkdir -p "$(dirname "$DIR")"
  DIR=$(cd "$(dirname "$DIR")" && pwd)/$(basename "$DIR")
  CONF=$DIR/ceph.conf
  ADMIN_KEYRING=$DIR/ceph.client.admin.keyring
}

# The ceph CLI with this cluster's conf; a short mount timeout so a dead mon fails fast.
cephc() { ceph -c "$CONF" --client_mount_timeout=8 "$@"; }

is_ours() { [ -f "$CONF" ] && head -n 1 "$CONF" | grep -qF "$MARKER"; }

# Pids of every process started with this cluster's conf, found from their command lines so
# that daemons whose pid file is missing (a start that died half way) are found too.
cluster_pids() {
  local conf_re
  conf_re=$(printf '%s' "$CONF" | sed 's/[][\.*^$+?(){}|]/\\&/g')
  pgrep -x -f "ceph-(mon|mgr|osd) -c $conf_re -i [^ ]+" || true
}

write_conf() {
  local fsid=$1
  cat >"$CONF" <<EOF
$MARKER, written by deploy/ceph-cluster.sh. Removed by \`ceph-cluster.sh stop\`.
[global]
fsid = $fsid
mon host = [v2:127.0.0.1:$PORT,v1:127.0.0.1:$((PORT + 1))]
ms bind ipv4 = true
ms bind ipv6 = false
ms bind port min = $((PORT + 2))
ms bind port max = $((PORT + PORT_SPAN - 1))
auth cluster required = cephx
auth service required = cephx
auth client required = cephx
run dir = $DIR/run
crash dir = $DIR/crash
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
mon warn on insecure global id reclaim = false
mon warn on insecure global id reclaim allowed = false
# /tmp of a busy build machine is often more than 70% full; that is no reason for HEALTH_WARN.
mon data avail warn = 2
mon data avail crit = 1
# One mon and no disks: commit map changes at once instead of batching them for a second, and
# report PG states every second, so a new cluster is usable and HEALTH_OK in a few seconds.
paxos propose interval = 0.05
paxos min wait = 0.01
mgr stats period = 1
mgr tick period = 1
mon mgr digest period = 1

[mon]
mon data = $DIR/mon/\$name
keyring = $DIR/mon/keyring
log file = $DIR/log/\$name.log
mon cluster log file = $DIR/log/cluster.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid

[mgr]
mgr data = $DIR/\$name
keyring = $DIR/\$name/keyring
public addr = 127.0.0.1
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid
mgr initial modules =

[osd]
osd data = $DIR/\$name
osd journal = $DIR/\$name/journal
keyring = $DIR/\$name/keyring
osd objectstore = memstore
memstore device bytes = $OSD_BYTES
public addr = 127.0.0.1
cluster addr = 127.0.0.1
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid

[client]
keyring = $ADMIN_KEYRING
client mount timeout = 15
EOF
}

# Ends the run with a one-line reason and the tails of the daemon logs that explain it.
fail_start() {
  local reason=$1; shift
  echo "$PROG: start failed: $reason (dir $DIR, port $PORT)" >&2
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    echo "---- last lines of $f" >&2
    tail -n 20 "$f" >&2
  done
  exit 1
}

remaining() { echo $((DEADLINE - $(date +%s))); }

# Runs "$@" until it succeeds or the start budget is spent.
wait_for() {
  until "$@" >/dev/null 2>&1; do
    [ "$(remaining)" -gt 0 ] || return 1
    sleep 0.2
  done
}

# Reads `ceph status` and says whether every OSD is up and in and pool rbd exists.
# With -v also prints the health and an explanation of what is missing.
check_usable() {
  local verbose=${1:-}
  local status pools
  status=$(cephc status -f json 2>/dev/null) || { [ -z "$verbose" ] || echo "mon not reachable"; return 1; }
  pools=$(cephc osd pool ls 2>/dev/null) || return 1
  STATUS_JSON=$status POOLS=$pools VERBOSE=$verbose OSDS_WANTED=${OSDS_WANTED:-1} /usr/bin/python3 -c '
import json, os, sys
s = json.loads(os.environ["STATUS_JSON"])
o = s["osdmap"]
health = s["health"]["status"]
problems = []
if o["num_osds"] < int(os.environ["OSDS_WANTED"]):
    problems.append("%d OSDs known, expected %s" % (o["num_osds"], os.environ["OSDS_WANTED"]))
if o["num_up_osds"] != o["num_osds"] or o["num_in_osds"] != o["num_osds"]:
    problems.append("OSDs up %d, in %d of %d" % (o["num_up_osds"], o["num_in_osds"], o["num_osds"]))
if "rbd" not in os.environ["POOLS"].split():
    problems.append("no pool rbd")
if os.environ["VERBOSE"]:
    print(health + (": " + ", ".join(problems) if problems else ""))
    for name, check in s["health"].get("checks", {}).items():
        print("  %s: %s" % (name, check["summary"]["message"]))
sys.exit(1 if problems else 0)
'
}

daemon_logs() { ls "$DIR"/log/*.log 2>/dev/null | grep -v cluster.log || true; }

cmd_start() {
  DEADLINE=$(($(date +%s) + START_BUDGET_S))
  if is_ours; then
    local running_port
    running_port=$(sed -n 's/^mon host = \[v2:127.0.0.1:\([0-9]*\),.*/\1/p' "$CONF")
    if [ -n "$(cluster_pids)" ] && OSDS_WANTED=1 check_usable; then
      [ -z "$PORT_GIVEN" ] || [ "$running_port" = "$PORT" ] \
        || die "a cluster is already running in $DIR on port $running_port, not $PORT; stop it first"
      echo "$CONF"
      return 0
    fi
    log "found a stale or unhealthy cluster in $DIR; recreating it"
    cmd_stop
  elif [ -e "$DIR" ] && [ -n "$(ls -A "$DIR")" ]; then
    die "$DIR exists and is not a cluster made by this script; choose another --dir"
  fi
  local p
  for p in "$PORT" $((PORT + 1)); do
    ! ss -Hltn "sport = :$p" | grep -q . || die "port $p on 127.0.0.1 is already in use; choose another --port"
  done

  mkdir -p "$DIR"/{run,log,crash,mon}
  write_conf "$(uuidgen)"

  # Keys: the admin keyring serves clients; the mon keyring adds mon. and the mgr and OSD keys
  # with their caps, so mkfs registers every daemon in the auth database at once.
  ceph-authtool --create-keyring "$ADMIN_KEYRING" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/mon/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$DIR/mon/keyring" --import-keyring "$ADMIN_KEYRING" >/dev/null
  mkdir -p "$DIR/mgr.x"
  ceph-authtool --create-keyring "$DIR/mgr.x/keyring" --gen-key -n mgr.x \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$DIR/mon/keyring" --import-keyring "$DIR/mgr.x/keyring" >/dev/null
  local i
  for ((i = 0; i < OSDS; i++)); do
    mkdir -p "$DIR/osd.$i"
    ceph-authtool --create-keyring "$DIR/osd.$i/keyring" --gen-key -n "osd.$i" \
      --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    ceph-authtool "$DIR/mon/keyring" --import-keyring "$DIR/osd.$i/keyring" >/dev/null
  done

  monmaptool --create --fsid "$(sed -n 's/^fsid = //p' "$CONF")" \
    --addv a "[v2:127.0.0.1:$PORT,v1:127.0.0.1:$((PORT + 1))]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/mon/keyring" \
    >"$DIR/log/mon.a.stderr" 2>&1 || fail_start "ceph-mon --mkfs failed" "$DIR/log/mon.a.stderr"
  ceph-mon -c "$CONF" -i a >>"$DIR/log/mon.a.stderr" 2>&1 \
    || fail_start "ceph-mon did not start" "$DIR/log/mon.a.stderr" "$DIR/log/mon.a.log"
  ceph-mgr -c "$CONF" -i x >"$DIR/log/mgr.x.stderr" 2>&1 \
    || fail_start "ceph-mgr did not start" "$DIR/log/mgr.x.stderr" "$DIR/log/mgr.x.log"

  local uuid
  for ((i = 0; i < OSDS; i++)); do
    uuid=$(uuidgen)
    ceph-osd -c "$CONF" -i "$i" --mkfs --osd-uuid "$uuid" --no-mon-config \
      >"$DIR/log/osd.$i.stderr" 2>&1 || fail_start "ceph-osd --mkfs failed for osd.$i" "$DIR/log/osd.$i.stderr"
    wait_for cephc osd new "$uuid" "$i" \
      || fail_start "mon did not accept osd.$i" "$DIR/log/mon.a.stderr" "$DIR/log/mon.a.log"
    ceph-osd -c "$CONF" -i "$i" >>"$DIR/log/osd.$i.stderr" 2>&1 \
      || fail_start "ceph-osd did not start for osd.$i" "$DIR/log/osd.$i.stderr" "$DIR/log/osd.$i.log"
  done

  cephc osd pool create rbd 8 8 >/dev/null 2>&1 \
    || fail_start "could not create pool rbd" $(daemon_logs)
  timeout "$(remaining)" rbd -c "$CONF" pool init rbd >/dev/null 2>"$DIR/log/pool-init.stderr" \
    || fail_start "rbd pool init did not finish (PGs not active?)" "$DIR/log/pool-init.stderr" $(daemon_logs)
  OSDS_WANTED=$OSDS wait_for check_usable \
    || fail_start "OSDs not all up and in: $(OSDS_WANTED=$OSDS check_usable -v | head -n 1)" $(daemon_logs)
  echo "$CONF"
}

cmd_status() {
  is_ours || { echo "no cluster in $DIR"; return 1; }
  [ -n "$(cluster_pids)" ] || { echo "cluster in $DIR is not running"; return 1; }
  check_usable -v
}

cmd_env() {
  is_ours || die "no cluster in $DIR"
  echo "export CEPH_CONF=$CONF"
  echo "export CEPH_KEYRING=$ADMIN_KEYRING"
  echo "export RBD_LUKS_CEPH_DIR=$DIR"
}

cmd_stop() {
  if [ ! -e "$DIR" ]; then return 0; fi
  is_ours || [ -z "$(ls -A "$DIR")" ] || die "$DIR is not a cluster made by this script; not touching it"
  local pids pid waited=0
  pids=$(cluster_pids)
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    kill -TERM $pids 2>/dev/null || true
    while [ -n "$(cluster_pids)" ] && [ $waited -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
    for pid in $(cluster_pids); do kill -KILL "$pid" 2>/dev/null || true; done
    waited=0
    while [ -n "$(cluster_pids)" ] && [ $waited -lt 50 ]; do sleep 0.1; waited=$((waited + 1)); done
    [ -z "$(cluster_pids)" ] || die "could not stop processes $(cluster_pids | tr '\n' ' ')of $DIR"
  fi
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
