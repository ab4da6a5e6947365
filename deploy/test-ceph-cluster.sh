#!/usr/bin/env bash
# Self-test of deploy/ceph-cluster.sh: two clusters side by side (A on bluestore, B on memstore),
# RBD I/O through the rbd CLI and the Python bindings, isolation between them, idempotent start, an
# OSD of A killed and restarted with its data, fast failure of clients of a dead cluster, stop --check
# failing on a broken cluster, and a stop that leaves no directory and no process behind. Exit
# status 0 = all passed. Takes about 40 s, most of it the client timeouts against a dead cluster.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/self_test.bash
source "$HERE/lib/self_test.bash"
CLUSTER=$HERE/ceph-cluster.sh
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/rbd-luks-cluster-test.XXXXXX)
DIR_A=$WORK/a
DIR_B=$WORK/b

cleanup() {
  "$CLUSTER" stop --dir "$DIR_A" >/dev/null 2>&1 || true
  "$CLUSTER" stop --dir "$DIR_B" >/dev/null 2>&1 || true
  "$CLUSTER" stop --dir "$WORK/c" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# A mon port with the PORT_SPAN (100) ports above it free, so the test does not collide with a
# cluster already running here (e.g. the default one on 17789).
free_port_block() {
  local port=$1 p
  for ((p = port; p < port + 100; p++)); do
    if port_in_use "$p"; then
      free_port_block $((port + 100))
      return
    fi
  done
  echo "$port"
}
PORT_A=$(free_port_block 27700)
PORT_B=$(free_port_block $((PORT_A + 200)))

# --- start two clusters at once -------------------------------------------------------------
echo "# clusters A (bluestore) and B on ports $PORT_A and $PORT_B"
start_both "2 OSDs, --healthy" "$DIR_A/ceph.conf" \
  "$CLUSTER" start --dir "$DIR_A" --port "$PORT_A" --objectstore bluestore -- \
  "$CLUSTER" start --dir "$DIR_B" --port "$PORT_B" --osds 2 --healthy
CONF_A=$DIR_A/ceph.conf
CONF_B=$DIR_B/ceph.conf

check "status exits 0 on a running cluster" "$CLUSTER" status --dir "$DIR_A"
check "B has 2 OSDs up" bash -c "ceph -c '$CONF_B' osd stat | grep -q '2 osds: 2 up'"
check "B is HEALTH_OK with an active mgr after --healthy" \
  bash -c "ceph -c '$CONF_B' -s | grep -q 'HEALTH_OK' && ceph -c '$CONF_B' -s | grep -q 'mgr: x(active'"
# Listening sockets of the daemons of A and B, as "ADDRESS:PORT".
listening() {
  local pid
  for pid in $(procs_of "$DIR_A") $(procs_of "$DIR_B"); do
    ss -Hltnp | grep "pid=$pid," | awk '{print $4}'
  done
}
addresses=$(listening)
# shellcheck disable=SC2016  # $1 belongs to the inner shell
check "daemons listen, on 127.0.0.1 only" \
  bash -c '[ -n "$1" ] && ! grep -v "^127\.0\.0\.1:" <<<"$1"' _ "$addresses"

t0=$(date +%s%N)
check "start on a running cluster exits 0" "$CLUSTER" start --dir "$DIR_A" --port "$PORT_A"
elapsed=$(seconds_since "$t0")
check "start on a running cluster is quick ($elapsed s)" less_than "$elapsed" 3
check "start --healthy on a running cluster waits for HEALTH_OK" \
  bash -c "'$CLUSTER' start --dir '$DIR_A' --healthy && ceph -c '$CONF_A' health | grep -qx HEALTH_OK"
check "start refuses a port in use, without creating its dir" \
  bash -c "! '$CLUSTER' start --dir '$WORK/c' --port '$PORT_A' 2>/dev/null && [ ! -e '$WORK/c' ]"

# --- RBD I/O through the CLI ------------------------------------------------------------------
head -c $((8 * 1024 * 1024)) /dev/urandom >"$WORK/data.bin"
for x in A B; do
  conf_var=CONF_$x; conf=${!conf_var}
  check "rbd create on $x" rbd -c "$conf" create --size 64M "rbd/img$x"
  check "rbd bench write on $x" \
    rbd -c "$conf" bench --io-type write --io-size 64K --io-total 16M "rbd/img$x"
  check "rbd bench read on $x" \
    rbd -c "$conf" bench --io-type read --io-size 64K --io-total 16M "rbd/img$x"
  check "rbd import on $x" rbd -c "$conf" import --no-progress "$WORK/data.bin" "rbd/data$x"
  check "rbd export on $x" rbd -c "$conf" export --no-progress "rbd/data$x" "$WORK/out$x.bin"
  check "export returns what import wrote on $x" cmp -s "$WORK/data.bin" "$WORK/out$x.bin"
done
check "A sees only its own images" [ "$(rbd -c "$CONF_A" ls | sort | tr '\n' ' ')" = "dataA imgA " ]
check "B sees only its own images" [ "$(rbd -c "$CONF_B" ls | sort | tr '\n' ' ')" = "dataB imgB " ]
check "env output works with eval" \
  bash -c "eval \"\$('$CLUSTER' env --dir '$DIR_B')\" && [ \"\$(rbd ls | sort | tr '\n' ' ')\" = 'dataB imgB ' ]"

# --- the Python bindings with the same conf ---------------------------------------------------
check "python rados/rbd open the image and round-trip a write on A" "$PY" - "$CONF_A" "$WORK/data.bin" <<'EOF'
import sys, rados, rbd
conf, data_path = sys.argv[1], sys.argv[2]
expected = open(data_path, "rb").read(4096)
with rados.Rados(conffile=conf) as cluster:
    with cluster.open_ioctx("rbd") as ioctx:
        with rbd.Image(ioctx, "dataA") as image:
            assert image.size() == 8 * 1024 * 1024, image.size()
            assert image.read(0, 4096) == expected
        with rbd.Image(ioctx, "imgA") as image:
            image.write(b"\xa5" * 4096, 1 << 20)
            assert image.read(1 << 20, 4096) == b"\xa5" * 4096
EOF

# --- an OSD of A crashes and comes back --------------------------------------------------------
check "kill-osd refuses an OSD that keeps its data in memory" \
  bash -c "! '$CLUSTER' kill-osd 0 --dir '$DIR_B' 2>/dev/null && ceph -c '$CONF_B' osd stat | grep -q '2 up'"
check "kill-osd 0 exits 0" "$CLUSTER" kill-osd 0 --dir "$DIR_A"
check "... and osd.0 is gone" bash -c "! pgrep -x -f -- 'ceph-osd -c $CONF_A -i 0'"
t0=$(date +%s%N)
check "a client's read fails while the OSD is down" \
  bash -c "! timeout 30 rbd -c '$CONF_A' --rados-osd-op-timeout 2 export --no-progress rbd/dataA - >/dev/null 2>&1"
elapsed=$(seconds_since "$t0")
check "... within its op timeout, 2 s, and 5 s to spare ($elapsed s)" less_than "$elapsed" 7
t0=$(date +%s%N)
check "start-osd 0 exits 0" "$CLUSTER" start-osd 0 --dir "$DIR_A"
elapsed=$(seconds_since "$t0")
check "... within 30 s ($elapsed s)" less_than "$elapsed" 30
check "start-osd refuses an OSD that is running" bash -c "! '$CLUSTER' start-osd 0 --dir '$DIR_A' 2>/dev/null"
check "what was written before the crash reads back" \
  bash -c "rbd -c '$CONF_A' export --no-progress rbd/dataA - | cmp -s - '$WORK/data.bin'"
check "status exits 0 after the restart" "$CLUSTER" status --dir "$DIR_A"

# --- a dead cluster: clients fail fast instead of waiting 300 s --------------------------------
for pid_file in "$DIR_B"/run/*.pid; do kill -KILL "$(cat "$pid_file")"; done
t0=$(date +%s%N)
check "ceph -s fails against a dead cluster" bash -c "! timeout 60 ceph -c '$CONF_B' -s >/dev/null 2>&1"
elapsed=$(seconds_since "$t0")
check "... within 20 s ($elapsed s)" less_than "$elapsed" 20
check "status exits nonzero on a dead cluster" bash -c "! '$CLUSTER' status --dir '$DIR_B' >/dev/null"

# --- a daemon that dies during start ----------------------------------------------------------
# A ceph-osd earlier on PATH that starts the real one and kills it as soon as it has forked into
# the background, so the OSD dies while start waits for it: start must fail fast, say why, show
# the log and leave no process behind.
DIR_C=$WORK/c
PORT_C=$(free_port_block $((PORT_B + 200)))
mkdir -p "$WORK/shim"
cat >"$WORK/shim/ceph-osd" <<'EOF'
#!/usr/bin/env bash
/usr/bin/ceph-osd "$@" || exit
case " $* " in *" --mkfs "*) exit 0 ;; esac
conf=$2 id=$4
kill -KILL "$(cat "$(dirname "$conf")/run/osd.$id.pid")"
EOF
chmod +x "$WORK/shim/ceph-osd"
t0=$(date +%s%N)
rc_c=0
PATH=$WORK/shim:$PATH "$CLUSTER" start --dir "$DIR_C" --port "$PORT_C" >/dev/null 2>"$WORK/start-c.err" || rc_c=$?
elapsed=$(seconds_since "$t0")
check "start fails when an OSD dies" [ "$rc_c" = 1 ]
check "... within 30 s ($elapsed s)" less_than "$elapsed" 30
check "... saying which daemon died" grep -q 'start failed: daemon exited: osd.0' "$WORK/start-c.err"
check "... showing the end of its log" grep -q "last lines of $DIR_C/log/osd.0.log" "$WORK/start-c.err"
check "... leaving no process behind" [ -z "$(procs_of "$DIR_C")" ]
check "... and the logs in place" [ -s "$DIR_C/log/mon.a.log" ]
check "stop after a failed start removes the dir" \
  bash -c "'$CLUSTER' stop --dir '$DIR_C' && [ ! -e '$DIR_C' ]"

# --- stop --------------------------------------------------------------------------------------
check "stop --check of B, whose daemons were killed, exits 1" \
  bash -c "! '$CLUSTER' stop --check --dir '$DIR_B' 2>'$WORK/stop-b.err'"
check "... naming the daemons gone" grep -q 'daemons gone: mgr.x mon.a osd.0 osd.1' "$WORK/stop-b.err"
check "... showing the end of the OSDs' logs" grep -q "last lines of $DIR_B/log/osd.1.log" "$WORK/stop-b.err"
check "stop --check of A, healthy again, exits 0" "$CLUSTER" stop --check --dir "$DIR_A"
for x in A B; do
  dir_var=DIR_$x; dir=${!dir_var}
  check "stop $x exits 0" "$CLUSTER" stop --dir "$dir"
  check "stop $x removed its dir" [ ! -e "$dir" ]
  check "no process of $x remains" [ -z "$(procs_of "$dir")" ]
  check "status exits nonzero after stop $x" bash -c "! '$CLUSTER' status --dir '$dir' >/dev/null"
done
check "stop of an absent cluster exits 0" "$CLUSTER" stop --dir "$DIR_A"

finish
