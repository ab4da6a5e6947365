# Helpers for the shell tests against a Ceph cluster (tests/plugin/**/*.sh), on top of
# common.bash, which this sources. Sourced, not run.
# shellcheck source-path=SCRIPTDIR source=common.bash
source "$(dirname "${BASH_SOURCE[0]}")/common.bash"

# require_cluster_and_cli: what every cluster test script needs first: CEPH_CONF naming the test
# cluster (the CTest fixture sets it), and the rbd-luks binary in RBD_LUKS; without the binary the
# test exits 77, which CTest reports as skipped, or fails under RBDLUKS_REQUIRE_ALL=1 (CI).
require_cluster_and_cli() {
  : "${CEPH_CONF:?CEPH_CONF must name the ceph.conf of the test cluster}"
  if [ -z "${RBD_LUKS:-}" ] || [ ! -x "$RBD_LUKS" ]; then
    local why="rbd-luks is not built (RBD_LUKS=${RBD_LUKS:-unset}); build it with --target rbd-luks"
    [ "${RBDLUKS_REQUIRE_ALL:-}" != 1 ] || fail "$why (RBDLUKS_REQUIRE_ALL=1: nothing may be skipped)"
    echo "SKIP: $why"
    exit 77
  fi
}

# rbd with a bounded wait for the monitors, so a dead cluster fails a test instead of hanging it.
rbdc() { rbd --client-mount-timeout 20 "$@"; }

# remove_images POOL/IMAGE...: removes each image with its snapshots, quietly, for cleanup traps.
remove_images() {
  local image
  for image in "$@"; do
    rbdc snap purge "$image" >/dev/null 2>&1 || true
    rbdc rm "$image" >/dev/null 2>&1 || true
  done
}

# native_reads CONF IMAGE FILE PASSFILE: librbd's own LUKS2 layer (python3-rbd) reads image IMAGE of
# pool rbd with the passphrase in PASSFILE; its first bytes must equal FILE. Fails with the range
# that differs.
native_reads() {
  /usr/bin/python3 - "$@" <<'PYEOF'
import sys, rados, rbd
conf, name, path, passfile = sys.argv[1:]
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name) as image:
    image.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open(passfile).read())
    want = open(path, "rb").read()
    step = 16 << 20
    for at in range(0, len(want), step):
        got = image.read(at, min(step, len(want) - at))
        if got != want[at:at + len(got)]:
            sys.exit(f"librbd native LUKS2 reads other bytes than {path} in [{at}, {at + step})")
PYEOF
}

# holey_file PATH: 20 MiB of random bytes with 8 MiB of zeros at 4 MiB, which covers whole RBD
# objects of 4 MiB behind a 16 MiB header: data, then zeros over what a copy wrote before, then data.
holey_file() {
  /usr/bin/python3 - "$1" <<'PYEOF'
import os, sys
data = bytearray(os.urandom(20 << 20))
data[4 << 20:12 << 20] = bytes(8 << 20)
open(sys.argv[1], "wb").write(data)
PYEOF
}

# launch_nbd_server TARGET [options]: runs `rbd-luks nbd-server` in the background (SERVER_PID, its
# stderr in $WORK/server.err) and waits until it listens: its pid file, $WORK/pid, is written then.
launch_nbd_server() {
  rm -f "$WORK/pid"
  "$RBD_LUKS" nbd-server "$1" --pidfile "$WORK/pid" "${@:2}" 2>"$WORK/server.err" &
  SERVER_PID=$!
  for _ in $(seq 300); do
    [ ! -s "$WORK/pid" ] || return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "nbd-server exited before it listened: $(cat "$WORK/server.err")"
    sleep 0.1
  done
  fail "nbd-server did not listen within 30 s"
}

# volume_key_hex TARGET FILE KEY-ARGS...: the volume key that TARGET's header holds now, in hex, by
# `rbd-luks dump --dump-volume-key` into the scratch file FILE (removed again).
volume_key_hex() {
  local target=$1 file=$2
  shift 2
  "$RBD_LUKS" dump "$target" --dump-volume-key --volume-key-file "$file" "$@" >/dev/null 2>&1 ||
    fail "dump --dump-volume-key failed"
  od -An -tx1 "$file" | tr -d ' \n'
  rm -f "$file"
}
