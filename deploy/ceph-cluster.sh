#!/usr/bin/env bash
# Starts, checks and stops a throwaway one-node Ceph cluster (one mon, one mgr, N OSDs on memstore,
# or on bluestore in a file when they must survive a crash) for rbd-luks's tests and demo.
# Everything it owns lives under one directory and listens on 127.0.0.1 only, so several clusters
# can run side by side; no systemd, no /etc/ceph, no /var. kill-osd and start-osd crash an OSD
# (SIGKILL) and bring it back, for tests of what clients see when an OSD fails.
#
#   ceph-cluster.sh start  [--dir DIR] [--port PORT] [--osds N] [--objectstore memstore|bluestore] [--healthy]
#   ceph-cluster.sh status [--dir DIR]
#   ceph-cluster.sh env    [--dir DIR]
#   ceph-cluster.sh stop   [--dir DIR] [--check]
#   ceph-cluster.sh kill-osd  N [--dir DIR]
#   ceph-cluster.sh start-osd N [--dir DIR]
#
# See docs/local-cluster.md.
set -euo pipefail

readonly PROG=ceph-cluster
LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib
readonly LIB
# shellcheck source=lib/service.bash
source "$LIB/service.bash"
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
OBJECTSTORE=memstore
HEALTHY=
CHECK=

parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --dir) [ $# -ge 2 ] || usage; DIR=$2; shift 2 ;;
      --port) [ $# -ge 2 ] || usage; PORT=$2; PORT_GIVEN=yes; shift 2 ;;
      --osds) [ $# -ge 2 ] || usage; OSDS=$2; shift 2 ;;
      --objectstore) [ $# -ge 2 ] || usage; OBJECTSTORE=$2; shift 2 ;;
      --healthy) HEALTHY=--healthy; shift ;;
      --check) CHECK=yes; shift ;;
      -h|--help) usage ;;
      *) die "unknown argument '$1'" ;;
    esac
  done
  if ! [[ "$PORT" =~ ^[0-9]+$ ]] || [ "$PORT" -lt 1024 ] || [ $((PORT + PORT_SPAN)) -gt 65535 ]; then
    die "--port must be a number in 1024..$((65535 - PORT_SPAN)), got '$PORT'"
  fi
  if ! [[ "$OSDS" =~ ^[0-9]+$ ]] || [ "$OSDS" -lt 1 ] || [ "$OSDS" -gt 8 ]; then
    die "--osds must be 1..8, got '$OSDS'"
  fi
  case "$OBJECTSTORE" in
    memstore|bluestore) ;;
    *) die "--objectstore must be memstore or bluestore, got '$OBJECTSTORE'" ;;
  esac
  [[ "$OSD_BYTES" =~ ^[0-9]+$ ]] || die "RBD_LUKS_CEPH_OSD_BYTES must be a byte count"
  DIR=$(realpath -m "$DIR")
  CONF=$DIR/ceph.conf
  MARKER_FILE=$CONF
  ADMIN_KEYRING=$DIR/ceph.client.admin.keyring
}

# Pids of every process started with this cluster's conf, found from their command lines so
# that daemons whose pid file is missing (a start that died half way) are found too.
service_pids() { pgrep -x -f "(.*/)?ceph-(mon|mgr|osd) -c $(regex_escape "$CONF") -i [^ ]+" || true; }

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
# Read by the mon when it creates the mgr map: only the always-on mgr modules, no restful & co.
mgr initial modules =
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
# Never even import the optional modules: loading them all takes the mgr seconds of CPU.
mgr disabled modules = alerts cephadm dashboard diskprediction_local influx insights iostat k8sevents localpool mds_autoscaler mirroring nfs osd_perf_query osd_support prometheus restful rook selftest snap_schedule stats telegraf test_orchestrator zabbix

[osd]
osd data = $DIR/\$name
osd journal = $DIR/\$name/journal
keyring = $DIR/\$name/keyring
$(objectstore_conf)
public addr = 127.0.0.1
cluster addr = 127.0.0.1
log file = $DIR/log/\$name.log
admin socket = $DIR/run/\$name.asok
pid file = $DIR/run/\$name.pid

[client]
keyring = $ADMIN_KEYRING
client mount timeout = 15
$(client_objectstore_conf)
EOF
}

# The [osd] lines of the object store. memstore keeps the data in RAM: fast, and gone when the OSD
# dies. bluestore keeps it in a sparse file, osd.N/block (with no block path set, mkfs creates it
# there), so an OSD killed with SIGKILL comes back with every write it acknowledged; its caches are
# kept small, as the test data is.
#
# memstore trims snapshots one PG at a time: Ceph 16's snap mapper keeps every PG's keys in one
# omap, and a PG that looks for its next key to trim may land on the first key of the next PG, which
# that PG's own trimmer (on another thread) may be erasing. memstore's omap iterator takes no
# reference to the key it points at, so that is a use after free: a test run's OSD died of it
# (SIGSEGV in MemStore::OmapIteratorImpl::value, called from SnapMapper::get_next_objects_to_trim;
# `ceph crash ls` and `ceph crash info ID` on such a cluster show it). bluestore's iterators read a
# snapshot of the store and are not affected.
objectstore_conf() {
  if [ "$OBJECTSTORE" = memstore ]; then
    printf '%s\n' "osd objectstore = memstore" "memstore device bytes = $OSD_BYTES" "osd max trimming pgs = 1"
    return
  fi
  printf '%s\n' "osd objectstore = bluestore" \
    "bluestore block create = true" \
    "bluestore block size = $OSD_BYTES" \
    "bluestore cache autotune = false" \
    "bluestore cache size = 134217728" \
    "osd memory target = 1073741824"
}

# The [client] lines for OSDs that may be killed. A killed OSD stays up in the OSD map (with one
# OSD, no peer reports it), so a client learns of its successor only when it asks the mon for a
# newer map, which it does for ops older than objecter_timeout, checked every
# objecter_tick_interval (10 s and 5 s by default): asking after 2 s, checked every second, it
# finds a restarted OSD in seconds instead of up to 15 s.
client_objectstore_conf() {
  if [ "$OBJECTSTORE" != memstore ]; then printf '%s\n' "objecter timeout = 2" "objecter tick interval = 1"; fi
}

# Names (mon.a, osd.0...) of daemons whose pid file points to a process that is gone.
dead_services() {
  local f
  for f in "$DIR"/run/*.pid; do
    [ -e "$f" ] || continue
    live_pid "$f" >/dev/null || basename "$f" .pid
  done
}

admin() { timeout -k 2 30 /usr/bin/python3 "$LIB/ceph_admin.py" "$CONF" "$@"; }

# Creates every key, the mon store and the OSD stores; no daemon runs yet.
make_cluster() {
  local osd_uuids=$1
  mkdir -p "$DIR"/{run,log,crash,mon,mgr.x}
  write_conf "$(uuidgen)"

  # The admin keyring serves clients. The mon keyring also holds mon. and the mgr and OSD keys
  # with their caps, so mon mkfs puts every daemon in the auth database at once.
  ceph-authtool --create-keyring "$ADMIN_KEYRING" --gen-key -n client.admin \
    --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool --create-keyring "$DIR/mon/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
  ceph-authtool "$DIR/mon/keyring" --import-keyring "$ADMIN_KEYRING" >/dev/null
  ceph-authtool --create-keyring "$DIR/mgr.x/keyring" --gen-key -n mgr.x \
    --cap mon 'allow profile mgr' --cap osd 'allow *' --cap mds 'allow *' >/dev/null
  ceph-authtool "$DIR/mon/keyring" --import-keyring "$DIR/mgr.x/keyring" >/dev/null
  local i=0 uuid
  for uuid in $osd_uuids; do
    mkdir -p "$DIR/osd.$i"
    ceph-authtool --create-keyring "$DIR/osd.$i/keyring" --gen-key -n "osd.$i" \
      --cap mon 'allow profile osd' --cap mgr 'allow profile osd' --cap osd 'allow *' >/dev/null
    ceph-authtool "$DIR/mon/keyring" --import-keyring "$DIR/osd.$i/keyring" >/dev/null
    ceph-osd -c "$CONF" -i "$i" --mkfs --osd-uuid "$uuid" --no-mon-config \
      >"$DIR/log/osd.$i.stderr" 2>&1 || fail_start "ceph-osd --mkfs failed for osd.$i" "osd.$i"
    i=$((i + 1))
  done

  monmaptool --create --fsid "$(sed -n 's/^fsid = //p' "$CONF")" \
    --addv a "[v2:127.0.0.1:$PORT,v1:127.0.0.1:$((PORT + 1))]" "$DIR/monmap" >/dev/null
  ceph-mon -c "$CONF" -i a --mkfs --monmap "$DIR/monmap" --keyring "$DIR/mon/keyring" \
    >"$DIR/log/mon.a.stderr" 2>&1 || fail_start "ceph-mon --mkfs failed" mon.a
}

# Each daemon forks into the background once initialised; a non-zero exit means it never got
# that far.
start_daemon() {
  local type=$1 id=$2
  "ceph-$type" -c "$CONF" -i "$id" >>"$DIR/log/$type.$id.stderr" 2>&1 \
    || fail_start "ceph-$type -i $id did not start" "$type.$id"
}

# Creates pool rbd if needed and waits until the cluster is usable (with --healthy: also until
# the mgr is active and health is HEALTH_OK). Prints the health; on failure leaves the reason in
# DIR/log/init.stderr.
init_cluster() {
  local budget osds=$2
  budget=$(seconds_left "$1")
  # The helper's deadlines bound its waits, not a mon command that hangs; timeout bounds all.
  # shellcheck disable=SC2086
  bounded "$budget" "$DIR/log/init.stderr" "not ready within $START_BUDGET_S s" \
    /usr/bin/python3 "$LIB/ceph_admin.py" "$CONF" init --osds "$osds" --budget "$budget" --pid-dir "$DIR/run" $HEALTHY
}

cmd_start() {
  local t0 deadline health
  t0=$(date +%s%N)
  deadline=$(($(date +%s) + START_BUDGET_S))
  if is_ours; then
    local running_port
    running_port=$(sed -n 's/^mon host = \[v2:127.0.0.1:\([0-9]*\),.*/\1/p' "$CONF")
    if [ -n "$(service_pids)" ] && admin status --quiet 2>/dev/null; then
      [ -z "$PORT_GIVEN" ] || [ "$running_port" = "$PORT" ] \
        || die "a cluster is already running in $DIR on port $running_port, not $PORT; stop it first"
      if [ -n "$HEALTHY" ]; then
        init_cluster "$deadline" 1 >/dev/null || die "$(tail -n 1 "$DIR/log/init.stderr")"
      fi
      echo "$CONF"
      return 0
    fi
    log "recreating the stopped or broken cluster in $DIR"
    cmd_stop
  fi
  refuse_foreign_dir
  require_free_ports "choose another --port" "$PORT" $((PORT + 1))

  local i osd_uuids="" osd_names=""
  for ((i = 0; i < OSDS; i++)); do
    osd_uuids+="$(uuidgen) "
    osd_names+="osd.$i "
  done
  make_cluster "$osd_uuids"
  start_daemon mon a
  start_daemon mgr x
  local err
  # shellcheck disable=SC2086
  err=$(admin register-osds $osd_uuids 2>&1) || fail_start "$err" mon.a
  for ((i = 0; i < OSDS; i++)); do start_daemon osd "$i"; done
  # shellcheck disable=SC2086
  health=$(init_cluster "$deadline" "$OSDS") \
    || fail_start "$(tail -n 1 "$DIR/log/init.stderr")" $osd_names mon.a ${HEALTHY:+mgr.x}
  log "ready in $(seconds_since "$t0") s: $health"
  echo "$CONF"
}

# The pid of osd.$1, found from its command line like service_pids.
osd_pid() { pgrep -x -f "(.*/)?ceph-osd -c $(regex_escape "$CONF") -i $1" || true; }
osd_gone() { [ -z "$(osd_pid "$1")" ]; }

# Dies unless osd.$1 belongs to this cluster and keeps its data when it dies.
require_persistent_osd() {
  is_ours || die "no cluster in $DIR"
  if ! [[ "$1" =~ ^[0-9]+$ ]] || [ ! -d "$DIR/osd.$1" ]; then die "no osd.$1 in $DIR"; fi
  grep -qx "osd objectstore = bluestore" "$CONF" \
    || die "the OSDs of $DIR keep their data in memory and would lose it; start with --objectstore bluestore"
}

# A crash: SIGKILL, nothing flushed or shut down. The OSD map still shows the OSD up (with one OSD,
# no peer reports it), so clients keep sending to it until it is back or their ops time out.
cmd_kill_osd() {
  local id=$1 pid
  require_persistent_osd "$id"
  pid=$(osd_pid "$id")
  [ -n "$pid" ] || die "osd.$id of $DIR is not running"
  kill -KILL "$pid"
  poll 100 osd_gone "$id" || die "osd.$id of $DIR (pid $pid) did not die"
  # Its pid file would make every later wait of this script report the OSD as dead.
  rm -f "$DIR/run/osd.$id.pid"
}

# Starts a killed OSD and waits until it is up again in the OSD map and answers a read in pool rbd.
cmd_start_osd() {
  local id=$1 t0 deadline
  require_persistent_osd "$id"
  osd_gone "$id" || die "osd.$id of $DIR is already running"
  t0=$(date +%s%N)
  deadline=$(($(date +%s) + START_BUDGET_S))
  ceph-osd -c "$CONF" -i "$id" >>"$DIR/log/osd.$id.stderr" 2>&1 \
    || die "ceph-osd -i $id did not start; logs in $DIR/log"
  bounded "$(seconds_left "$deadline")" "$DIR/log/init.stderr" "osd.$id not up within $START_BUDGET_S s" \
    /usr/bin/python3 "$LIB/ceph_admin.py" "$CONF" wait-osd "$id" --asok "$DIR/run/osd.$id.asok" \
    --budget "$(seconds_left "$deadline")" --pid-dir "$DIR/run" \
    || die "osd.$id did not come back: $(tail -n 1 "$DIR/log/init.stderr"); logs in $DIR/log"
  log "osd.$id up again in $(seconds_since "$t0") s"
}

cmd_status() {
  is_ours || { echo "no cluster in $DIR"; return 1; }
  [ -n "$(service_pids)" ] || { echo "cluster in $DIR is not running"; return 1; }
  admin status
}

cmd_env() {
  is_ours || die "no cluster in $DIR"
  echo "export CEPH_CONF=$CONF"
  echo "export RBD_LUKS_CEPH_DIR=$DIR"
}

# stop --check, the test fixtures' cleanup: when a daemon died or the cluster stopped answering
# during the run, prints the cluster's status and the end of every log, and fails. stop deletes the
# directory, so a test run whose cluster broke half way would otherwise leave no trace of why.
cmd_checked_stop() {
  local broken=0 dead status names
  if [ -n "$CHECK" ] && is_ours; then
    dead=$(dead_services)
    status=$(admin status 2>&1) || broken=1
    [ -z "$dead" ] || broken=1
    if [ "$broken" = 1 ]; then
      log "the cluster in $DIR broke while in use${dead:+; daemons gone: ${dead//$'\n'/ }}; its status:"
      echo "$status" >&2
      names=$(find "$DIR/log" -maxdepth 1 -name '*.log' -printf '%f\n' | sed 's/\.log$//' | sort)
      # shellcheck disable=SC2086
      print_log_tails $names
    fi
  fi
  cmd_stop
  return "$broken"
}

# kill-osd and start-osd take the OSD's number before the options; the rest go to service_main.
case "${1:-}" in
  kill-osd|start-osd)
    [ $# -ge 2 ] || usage
    command=$1 osd_id=$2
    shift 2
    parse_args "$@"
    "cmd_${command//-/_}" "$osd_id"
    ;;
  stop)
    shift
    parse_args "$@"
    cmd_checked_stop
    ;;
  *) service_main "$@" ;;
esac
