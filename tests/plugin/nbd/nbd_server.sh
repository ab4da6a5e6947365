#!/usr/bin/env bash
# `rbd-luks nbd-server` with real NBD clients (nbdinfo, nbdcopy, fio's nbd engine, qemu-img) and a
# wire-level client (nbd_wire_checks.py), against the test cluster that CEPH_CONF names: sizes,
# flags and block sizes; data both ways read back by `rbd-luks export` and librbd's native LUKS2;
# several connections at once; zeros; malformed and out-of-range requests; read-only exports; a
# stop with writes in flight that answers every request it read and loses none it answered; TCP;
# and the errors that must come before anything listens.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
for tool in nbdinfo nbdcopy fio qemu-img; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

PY=/usr/bin/python3
WIRE="$(dirname "${BASH_SOURCE[0]}")/nbd_wire_checks.py"
MiB=$((1024 * 1024))
TAG=nbdsrv$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-nbd-server.XXXXXX")
SERVER_PID=
cleanup() {
  [ -z "$SERVER_PID" ] || kill "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  remove_images "rbd/$TAG" "rbd/$TAG-ref"
  ceph config-key rm "rbd-luks/$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "nbd server passphrase" >"$WORK/pass"
printf '%s' "not the passphrase" >"$WORK/wrong"
K=(--passphrase-file "$WORK/pass")
SOCK="$WORK/nbd.sock"
URI="nbd+unix:///?socket=$SOCK"

# start TARGET [options]: runs the server on $SOCK and waits until it listens (its pid file).
start() { launch_nbd_server "$1" --socket "$SOCK" "${@:2}"; }
# stop [no-signal]: SIGTERM (unless something else sent it); the server must exit 0 within 20 s
# and leave neither socket nor pid file behind.
stop() {
  [ "${1:-}" = no-signal ] || kill -TERM "$SERVER_PID"
  local rc=0 begun=$SECONDS
  wait "$SERVER_PID" || rc=$?
  SERVER_PID=
  [ "$rc" -eq 0 ] || fail "nbd-server exited $rc after SIGTERM: $(cat "$WORK/server.err")"
  [ $((SECONDS - begun)) -le 20 ] || fail "nbd-server took $((SECONDS - begun)) s to stop"
  if [ -e "$SOCK" ] || [ -e "$WORK/pid" ]; then fail "nbd-server left its socket or pid file behind"; fi
}

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG" --size 64M "${K[@]}" "${FAST_LUKS2[@]}"
start "rbd:rbd/$TAG" "${K[@]}"
[ "$(stat -c %a "$SOCK")" = 600 ] || fail "the socket is mode $(stat -c %a "$SOCK"), not 600"
nbdinfo --json "$URI" >"$WORK/info.json"
$PY - "$WORK/info.json" <<'PYEOF' || fail "nbdinfo: $(cat "$WORK/info.json")"
import json, sys
export = json.load(open(sys.argv[1]))["exports"][0]
assert export["export-size"] == 64 << 20, export["export-size"]
for flag in ("can_flush", "can_fua", "can_trim", "can_zero", "can_multi_conn"):
    assert export[flag], flag
assert not export["is_read_only"]
assert (export["block_size_minimum"], export["block_size_preferred"], export["block_size_maximum"]) == (1, 4096, 32 << 20)
PYEOF
pass "nbdinfo: the plaintext size, writable, flush, FUA, trim, zero, multi-conn, block sizes; socket mode 600"

# Data in and out with nbdcopy over four connections at once, read back by rbd-luks and by librbd's
# native LUKS2 once the server has stopped.
head -c $((20 * MiB)) /dev/urandom >"$WORK/data"
nbdcopy --connections=4 --requests=16 "$WORK/data" "$URI"
nbdcopy --connections=4 "$URI" "$WORK/out"
cmp -s <(head -c $((20 * MiB)) "$WORK/out") "$WORK/data" || fail "nbdcopy out differs from what went in"
qemu-img compare -f raw -F raw "$WORK/data" "$URI" >"$WORK/compare" 2>&1 ||
  fail "qemu-img compare over NBD: $(cat "$WORK/compare")"
stop
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG" "$WORK/exported" "${K[@]}"
cmp -s <(head -c $((20 * MiB)) "$WORK/exported") "$WORK/data" || fail "rbd-luks export differs from what nbdcopy wrote"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
pass "nbdcopy in and out over 4 connections; qemu-img compare; rbd-luks and librbd native read what NBD wrote"

# The allocation map as NBD block status: data, then a hole that reads as zeros.
start "rbd:rbd/$TAG" "${K[@]}"
nbdinfo --map "$URI" >"$WORK/map"
grep -qE '^ +0 +20971520 +0 +data' "$WORK/map" || fail "extents: $(cat "$WORK/map")"
grep -qE '^ +20971520 +46137344 +3 +hole,zero' "$WORK/map" || fail "extents: $(cat "$WORK/map")"
pass "NBD block status (base:allocation) follows the image's allocation map"

# Zeros over data: nbdcopy sends the source's zero blocks as NBD zero requests.
holey_file "$WORK/holey"
nbdcopy "$WORK/holey" "$URI"
qemu-img convert -f raw -O raw "$URI" "$WORK/converted"
cmp -s <(head -c $((20 * MiB)) "$WORK/converted") "$WORK/holey" || fail "zeros written through NBD do not read back as zeros"
pass "zero requests read back as zeros (qemu-img convert from NBD)"

# fio's nbd engine: 4 KiB and unaligned 6 KiB random writes with crc32c verification, and four jobs,
# each on its own connection and quarter of the image, at once.
for bs in 4k 6k; do
  fio --name=verify --ioengine=nbd --uri="$URI" --rw=randwrite --bs=$bs --iodepth=8 --size=16M \
    --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 >"$WORK/fio.out" 2>&1 ||
    { cat "$WORK/fio.out" >&2; fail "fio nbd engine, bs=$bs"; }
done
fio --name=verify --ioengine=nbd --uri="$URI" --rw=randwrite --bs=6k --iodepth=8 --numjobs=4 --size=12M \
  --offset_increment=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 >"$WORK/fio.out" 2>&1 ||
  { cat "$WORK/fio.out" >&2; fail "fio nbd engine, 4 jobs"; }
pass "fio's nbd engine: 4 KiB and 6 KiB random writes verify (crc32c), also 4 connections at once"

# The wire, request by request: every reply and every byte as the protocol says.
$PY "$WIRE" "$SOCK" $((64 * MiB)) writable || fail "wire checks"
pass "wire checks: options, out-of-range and unknown requests, FUA, zeros, pipelining, a client that stalls, structured replies, block status, disconnects"

# Sixteen clients at once; the seventeenth is turned away.
$PY "$WIRE" "$SOCK" $((64 * MiB)) connections 16 || fail "connection checks"
pass "16 clients served at once, the 17th refused"

# A stop with writes in flight: no reply carries an error, the server exits 0 in time, and the image
# holds exactly the writes that were answered: none answered and lost, none applied unanswered.
$PY "$WIRE" "$SOCK" $((64 * MiB)) stop "$SERVER_PID" "$WORK/answered.json" >"$WORK/stop.out" || fail "stop checks"
stop no-signal
"$RBD_LUKS" read "rbd:rbd/$TAG" --offset 0 --length $((16 * MiB)) "${K[@]}" >"$WORK/after-stop"
$PY "$WIRE" "$SOCK" $((64 * MiB)) check-stop "$WORK/answered.json" "$WORK/after-stop" || fail "writes after the stop"
pass "SIGTERM with writes in flight: $(cat "$WORK/stop.out"); the image holds exactly those; exit 0"

# The image shrinks under the server (another client resizes it): requests across the new end fail
# instead of being cut short and reported whole.
start "rbd:rbd/$TAG" "${K[@]}"
expect_exit 0 "$RBD_LUKS" resize "rbd:rbd/$TAG" --size 32M "${K[@]}"
$PY "$WIRE" "$SOCK" $((64 * MiB)) shrunk $((32 * MiB)) || fail "requests across a new end"
stop
expect_exit 0 "$RBD_LUKS" resize "rbd:rbd/$TAG" --size 64M "${K[@]}"
pass "after a shrink under the server, reads and writes across the new end fail (EINVAL, ENOSPC)"

# Read-only: --read-only, and a snapshot.
start "rbd:rbd/$TAG" "${K[@]}" --read-only
[ "$(nbdinfo --is read-only "$URI"; echo $?)" = 0 ] || fail "--read-only export is writable"
$PY "$WIRE" "$SOCK" $((64 * MiB)) read-only || fail "read-only wire checks"
stop
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG" "$WORK/now" "${K[@]}"
rbdc snap create "rbd/$TAG@s1" >/dev/null 2>&1
start "rbd:rbd/$TAG@s1" "${K[@]}"
nbdinfo --is read-only "$URI" || fail "a snapshot export is writable"
nbdcopy "$URI" "$WORK/snap"
cmp -s "$WORK/snap" "$WORK/now" || fail "the snapshot export reads other bytes than rbd-luks export"
stop
rbdc snap rm "rbd/$TAG@s1" >/dev/null 2>&1
pass "read-only exports (--read-only, @snapshot) refuse changes with EPERM and read the data"

# TCP on the loopback address.
PORT=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
launch_nbd_server "rbd:rbd/$TAG" --port "$PORT" "${K[@]}"
grep -q "warning: NBD over TCP has neither access control nor encryption" "$WORK/server.err" ||
  fail "no warning about TCP: $(cat "$WORK/server.err")"
[ "$(nbdinfo --size "nbd://127.0.0.1:$PORT")" -eq $((64 * MiB)) ] || fail "TCP export size"
nbdcopy "nbd://127.0.0.1:$PORT" "$WORK/tcp"
cmp -s "$WORK/tcp" "$WORK/now" || fail "the TCP export reads other bytes"
stop
pass "TCP: nbd://127.0.0.1:$PORT serves the same bytes, with a warning that TCP has no access control"

# The key from the image metadata (config-key), limited by --accept-key-refs.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-ref" --size 16M --new-key "config-key:rbd-luks/$TAG" "${FAST_LUKS2[@]}"
start "rbd:rbd/$TAG-ref" --accept-key-refs config-key
[ "$(nbdinfo --size "$URI")" -eq $((16 * MiB)) ] || fail "key from metadata: size"
stop
expect_exit 5 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG-ref" --socket "$SOCK" --accept-key-refs barbican
pass "the key from the image's key reference; one that --accept-key-refs leaves out exits 5"

# Errors before anything listens: each one line with cli.md's exit code, and no socket left.
expect_exit 3 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG" --socket "$SOCK" --passphrase-file "$WORK/wrong"
[ ! -e "$SOCK" ] || fail "a wrong key left a socket"
expect_exit 2 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG" "${K[@]}"
expect_exit 2 "$RBD_LUKS" nbd-server "file:$WORK/data" --socket "$SOCK" "${K[@]}"
expect_exit 2 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG" --socket "$SOCK" --port 1 "${K[@]}"
touch "$WORK/not-a-socket"
expect_exit 1 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG" --socket "$WORK/not-a-socket" "${K[@]}"
[ -f "$WORK/not-a-socket" ] || fail "a file in the socket's place was removed"
start "rbd:rbd/$TAG" "${K[@]}"
expect_exit 1 "$RBD_LUKS" nbd-server "rbd:rbd/$TAG" --socket "$SOCK" "${K[@]}"
nbdinfo --size "$URI" >/dev/null || fail "a second server broke the first one's socket"
stop
# A server that died without cleaning up leaves its socket behind; the next one replaces it.
$PY -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$SOCK"
[ -S "$SOCK" ] || fail "expected a stale socket"
start "rbd:rbd/$TAG" "${K[@]}"
nbdinfo --size "$URI" >/dev/null || fail "no server on a replaced stale socket"
stop
pass "wrong key (3), usage (2), a path that is not a socket and a socket in use (1); a stale socket is replaced"
