#!/usr/bin/env bash
# `rbd-luks nbd-server --reencrypt`: the volume key of an RBD image changes while NBD clients go on.
# fio's nbd engine writes with crc32c verification during the run, and nbdcopy reads the data that
# was there before; afterwards fio verifies everything it wrote, the old volume key is gone, both
# keyslots' passphrases open the volume, and librbd's native LUKS2 reads the same bytes. A SIGTERM
# half way stops the run with a nonzero exit and a message saying how to finish it, and
# `rbd-luks reencrypt` finishes it. Then `rbd-luks reencrypt --online` asks a running server for a
# run, alone and as two commands at the same instant. Against the test cluster that CEPH_CONF
# names.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
for tool in nbdcopy fio; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

MiB=$((1024 * 1024))
TAG=nbdreenc$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-online-reencrypt.XXXXXX")
SERVER_PID=
cleanup() {
  [ -z "$SERVER_PID" ] || kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  remove_images "rbd/$TAG"
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "online reencryption passphrase" >"$WORK/pass"
printf '%s' "the other keyslot's passphrase" >"$WORK/pass2"
K=(--passphrase-file "$WORK/pass")
SOCK="$WORK/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"
TARGET="rbd:rbd/$TAG"
# The data that is there before the run: 192 MiB; fio writes the last 64 MiB of the image.
DATA_BYTES=$((192 * MiB))
FIO=(fio --name=online --ioengine=nbd --uri="$URI" --rw=randwrite --bs=6k --iodepth=8 --offset="$DATA_BYTES"
  --size="$((64 * MiB))" --verify=crc32c --verify_fatal=1 --verify_state_save=0)

# start [options]: runs the server on $SOCK and waits until it listens (its pid file).
start() { launch_nbd_server "$TARGET" --socket "$SOCK" "${K[@]}" "$@"; }
# stop: SIGTERM; sets STOP_RC to the server's exit status.
stop() {
  kill -TERM "$SERVER_PID"
  STOP_RC=0
  wait "$SERVER_PID" || STOP_RC=$?
  SERVER_PID=
}
# wait_log TEXT: until the server's log has TEXT (300 s at most: under ASan on 2 cores, with fio).
wait_log() {
  for _ in $(seq 3000); do
    grep -qF -- "$1" "$WORK/server.err" && return 0
    kill -0 "$SERVER_PID" 2>/dev/null || fail "nbd-server exited: $(cat "$WORK/server.err")"
    sleep 0.1
  done
  fail "the server's log never said '$1': $(cat "$WORK/server.err")"
}
volume_key() { volume_key_hex "$TARGET" "$WORK/vk" "${K[@]}"; }
# data_reads_back: the first DATA_BYTES of the export are the data file.
data_reads_back() {
  nbdcopy --connections=2 "$URI" "$WORK/out"
  cmp -s <(head -c $DATA_BYTES "$WORK/out") "$WORK/data"
}

expect_exit 0 "$RBD_LUKS" create "$TARGET" --size 256M "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" keyslot add "$TARGET" --new-passphrase-file "$WORK/pass2" "${K[@]}" "${FAST_LUKS2[@]}"
head -c $DATA_BYTES /dev/urandom >"$WORK/data"
start
nbdcopy --connections=4 "$WORK/data" "$URI"
stop
[ "$STOP_RC" = 0 ] || fail "nbd-server exited $STOP_RC: $(cat "$WORK/server.err")"
old_key=$(volume_key)

# The run, with 2 MiB hotzones (96 steps over the data), and fio writing meanwhile.
start --reencrypt --hotzone-size 2M --keyslot-passphrase-file "$WORK/pass2"
progress_lines() { grep -c "reencrypted [0-9]*% " "$WORK/server.err" || true; }
"${FIO[@]}" --verify_backlog=64 >"$WORK/fio.out" 2>&1 &
fio_pid=$!
lines_before=$(progress_lines)
data_reads_back || fail "nbdcopy read other bytes during the run"
wait "$fio_pid" || { cat "$WORK/fio.out" >&2; fail "fio with verification during the run"; }
lines_after=$(progress_lines)
[ "$lines_after" -gt "$lines_before" ] || fail "the run made no progress while fio and nbdcopy ran: $(cat "$WORK/server.err")"
wait_log "while serving it:"
grep -qF "reencrypted 50% " "$WORK/server.err" || fail "no progress lines: $(cat "$WORK/server.err")"
pass "fio's randwrite (6 KiB, crc32c, verify_backlog) and an nbdcopy read of the old data during an online reencryption"

"${FIO[@]}" --verify_only=1 >"$WORK/fio.out" 2>&1 || { cat "$WORK/fio.out" >&2; fail "fio verify after the run"; }
data_reads_back || fail "nbdcopy reads other bytes after the run"
stop
[ "$STOP_RC" = 0 ] || fail "nbd-server exited $STOP_RC: $(cat "$WORK/server.err")"
new_key=$(volume_key)
[ "$new_key" != "$old_key" ] || fail "the volume key did not change"
"$RBD_LUKS" dump "$TARGET" >"$WORK/dump" 2>&1 || fail "dump: $(cat "$WORK/dump")"
grep -qi "reencrypt" "$WORK/dump" && fail "dump still shows a reencryption: $(cat "$WORK/dump")"
expect_exit 0 "$RBD_LUKS" read "$TARGET" --offset 0 --length 4096 --passphrase-file "$WORK/pass2" >/dev/null
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
pass "after it: fio verifies all it wrote, a new volume key, both passphrases open, librbd native reads the data"

# SIGTERM half way: the run stops between steps, the server says how to finish it and exits 1;
# no client opens the image until `rbd-luks reencrypt` has finished the run.
start --reencrypt --hotzone-size 1M --threads 1 --keyslot-passphrase-file "$WORK/pass2"
wait_log "reencrypted 10% "
stop
[ "$STOP_RC" = 1 ] || fail "nbd-server exited $STOP_RC after a SIGTERM half way: $(cat "$WORK/server.err")"
if ! grep -qF "the server stopped before the reencryption of $TARGET finished (" "$WORK/server.err" ||
  ! grep -qF "\`rbd-luks reencrypt $TARGET\` finishes it" "$WORK/server.err"; then
  fail "no way to finish it said: $(cat "$WORK/server.err")"
fi
"$RBD_LUKS" dump "$TARGET" >"$WORK/dump" 2>&1 || fail "dump: $(cat "$WORK/dump")"
grep -qi "reencrypt" "$WORK/dump" || fail "dump shows no reencryption in progress: $(cat "$WORK/dump")"
expect_exit 1 "$RBD_LUKS" read "$TARGET" --offset 0 --length 4096 "${K[@]}"
expect_exit 0 "$RBD_LUKS" reencrypt "$TARGET" "${K[@]}" --keyslot-passphrase-file "$WORK/pass2"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes after the resume"
start
"${FIO[@]}" --verify_only=1 >"$WORK/fio.out" 2>&1 || { cat "$WORK/fio.out" >&2; fail "fio verify after the resume"; }
stop
pass "SIGTERM half way: exit 1 saying how to finish; rbd-luks reencrypt finishes it; all data reads back"

# `rbd-luks reencrypt --online` asks the running server (started without --reencrypt) to run one;
# keyslot 1's passphrase is not the server's, so --force drops it.
start
old_key=$(volume_key)
# From $WORK: fio writes its verify state into its working directory when the trigger stops it.
(cd "$WORK" && exec "${FIO[@]}" --verify_backlog=64 --time_based --runtime=300 --trigger-file="$WORK/stop") \
  >"$WORK/fio.out" 2>&1 &
fio_pid=$!
expect_exit 0 "$RBD_LUKS" reencrypt "$TARGET" --online --force --hotzone-size 4M
grep -qF "reencrypted $TARGET online in client." "$WORK/err" || fail "no summary: $(cat "$WORK/err")"
kill -0 "$fio_pid" 2>/dev/null || { cat "$WORK/fio.out" >&2; fail "fio ended before the run did"; }
touch "$WORK/stop"
wait "$fio_pid" || { cat "$WORK/fio.out" >&2; fail "fio with verification during the run that --online asked for"; }
data_reads_back || fail "nbdcopy reads other bytes after the run that --online asked for"
stop
[ "$STOP_RC" = 0 ] || fail "nbd-server exited $STOP_RC: $(cat "$WORK/server.err")"
[ "$(volume_key)" != "$old_key" ] || fail "the volume key did not change"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
pass "reencrypt --online runs in nbd-server: fio verifies during it, librbd native reads the data"

# Two commands at the same instant (metadata has no compare-and-set): a server that has not run one
# yet runs one, the volume key changes once, and each command exits 0 (it ran or followed that run)
# or 1 (it refused, its request having been replaced), with one error line; never another code or a
# hang. (Started together, the two have collided in every round tried: one exits 1 saying another
# request replaced its own.)
start
old_key=$(volume_key)
pids=()
for n in 1 2; do
  timeout 300 "$RBD_LUKS" reencrypt "$TARGET" --online --hotzone-size 4M >"$WORK/cmd$n.out" 2>"$WORK/cmd$n.err" &
  pids+=($!)
done
rcs=()
for n in 1 2; do
  rc=0
  wait "${pids[n - 1]}" || rc=$?
  rcs+=("$rc")
  case "$rc" in
    0) grep -qF "reencrypted $TARGET online in client." "$WORK/cmd$n.err" ||
      fail "command $n exited 0 with no summary: $(cat "$WORK/cmd$n.err")" ;;
    1) [ "$(grep -c '^rbd-luks: error: ' "$WORK/cmd$n.err")" = 1 ] ||
      fail "command $n exited 1 without one error line: $(cat "$WORK/cmd$n.err")" ;;
    *) fail "command $n exited $rc: $(cat "$WORK/cmd$n.err")" ;;
  esac
done
[ "${rcs[0]}" = 0 ] || [ "${rcs[1]}" = 0 ] ||
  fail "neither command ran: $(cat "$WORK/cmd1.err" "$WORK/cmd2.err")"
data_reads_back || fail "nbdcopy reads other bytes after two commands at once"
stop
[ "$STOP_RC" = 0 ] || fail "nbd-server exited $STOP_RC: $(cat "$WORK/server.err")"
[ "$(volume_key)" != "$old_key" ] || fail "the volume key did not change"
echo "the commands exited ${rcs[0]} and ${rcs[1]}" \
  "$(cat "$WORK/cmd1.err" "$WORK/cmd2.err" | grep '^rbd-luks: error: ' || true)"
pass "two reencrypt --online commands at once: one run, a new key, each command 0 or 1 with its reason"
