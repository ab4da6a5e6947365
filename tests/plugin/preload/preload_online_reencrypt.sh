#!/usr/bin/env bash
# `rbd-luks reencrypt TARGET --online` on an image that an unmodified program serves through the
# preload library: fio's rbd engine writes with crc32c verification while the client that fio is
# runs the reencryption the command asked for; afterwards the old data reads back through rbd-luks
# and librbd's native LUKS2, the volume key is new, and the key reference still opens the volume.
# Also: a keyslot whose passphrase the client lacks fails the request cleanly (without --force) and
# leaves the volume as it was; an image no client has open is refused; a request that no command
# confirms (its command went away) is never run; a client that closes the image half way stops the
# run, the command says so, and `rbd-luks reencrypt` finishes it; an interrupted command withdraws
# its request.
# Against the test cluster that CEPH_CONF names. Exits 77 (skipped) only when the rbd-luks binary
# has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
command -v fio >/dev/null || fail "fio is missing (deploy/install-deps.sh installs it)"

MiB=$((1024 * 1024))
TAG=prereenc$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-preload-reencrypt.XXXXXX")
FIO_PID=
cleanup() {
  [ -z "$FIO_PID" ] || kill -KILL "$FIO_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  remove_images "rbd/$TAG"
  ceph config-key rm "rbd-luks/$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "online preload passphrase" >"$WORK/pass"
printf '%s' "a second keyslot" >"$WORK/pass2"
K=(--passphrase-file "$WORK/pass")
printf 'accept-key-refs = config-key\n' >"$WORK/preload.conf"
export RBD_LUKS_PRELOAD_CONF="$WORK/preload.conf"
TARGET="rbd:rbd/$TAG"
DATA_BYTES=$((96 * MiB))

# serve RUNTIME [plain]: fio's rbd engine, through the preload library, writes the last 32 MiB of the
# image with verification until RUNTIME seconds pass or $WORK/stop appears. With `plain`, fio
# without the library only reads the RBD image: a client that does not follow requests.
serve() {
  rm -f "$WORK/stop"
  local preload=$PRELOAD_LIBRARY job=(--rw=randwrite --verify=crc32c --verify_fatal=1 --verify_backlog=64)
  [ "${2:-}" != plain ] || { preload=; job=(--rw=read); }
  # From $WORK: fio writes its verify state into its working directory when the trigger stops it.
  (cd "$WORK" && LD_PRELOAD="$preload" exec fio --name=online --ioengine=rbd --clientname=admin --pool=rbd \
    --rbdname="$TAG" "${job[@]}" --bs=6k --iodepth=8 --offset="$DATA_BYTES" --size=$((32 * MiB)) --verify_state_save=0 \
    --time_based --runtime="$1" --trigger-file="$WORK/stop") >"$WORK/fio.out" 2>&1 &
  FIO_PID=$!
  # Until fio's client has the image open (its watch; `rbd status` registers none).
  for _ in $(seq 300); do
    [ "$(rbdc status "rbd/$TAG" --format json | /usr/bin/python3 -c 'import json,sys; print(len(json.load(sys.stdin)["watchers"]))')" -ge 1 ] && return 0
    kill -0 "$FIO_PID" 2>/dev/null || { cat "$WORK/fio.out" >&2; fail "fio exited before it opened the image"; }
    sleep 0.1
  done
  fail "fio never opened the image"
}
# end_serving: fio stops (it closes the image) and must have verified every write without error.
end_serving() {
  touch "$WORK/stop"
  local rc=0
  wait "$FIO_PID" || rc=$?
  FIO_PID=
  [ "$rc" = 0 ] && grep -q "err= 0" "$WORK/fio.out" || { cat "$WORK/fio.out" >&2; fail "fio with verification: exit $rc"; }
}
volume_key() { volume_key_hex "$TARGET" "$WORK/vk" "${K[@]}"; }
header_records_run() { "$RBD_LUKS" dump "$TARGET" 2>&1 | grep -qi "reencrypt"; }

# A key reference in config-key holds the passphrase, as a hypervisor would use it.
expect_exit 0 "$RBD_LUKS" create "$TARGET" --size 128M "${K[@]}" "${FAST_LUKS2[@]}"
ceph config-key set "rbd-luks/$TAG" -i "$WORK/pass" >/dev/null 2>&1
expect_exit 0 "$RBD_LUKS" key-ref set "$TARGET" "config-key:rbd-luks/$TAG"
expect_exit 0 "$RBD_LUKS" keyslot add "$TARGET" --new-passphrase-file "$WORK/pass2" "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" preload enable "$TARGET" "${K[@]}"
head -c $DATA_BYTES /dev/urandom >"$WORK/data"
expect_exit 0 "$RBD_LUKS" import "$WORK/data" "$TARGET" "${K[@]}"
old_key=$(volume_key)

expect_exit 2 "$RBD_LUKS" reencrypt "$TARGET" --online
grep -qF "no client has it open" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
serve 120
expect_exit 2 "$RBD_LUKS" reencrypt "$TARGET" --online --keyslot-passphrase-file "$WORK/pass2"
grep -qF -- "--online takes no --keyslot-passphrase-file" "$WORK/err" || fail "no reason given: $(cat "$WORK/err")"
pass "--online refuses an image no client has open, and passphrase files"

# A request whose command went away: the client takes it, and runs nothing without the command.
REQ='{"id":"00112233deadbeef","state":"requested","drop_unopened_keyslots":true}'
rbdc image-meta set "rbd/$TAG" rbd-luks.reencrypt-request "$REQ" >/dev/null
sleep 3
rbdc image-meta get "rbd/$TAG" rbd-luks.reencrypt-request | grep -qF '"state":"taken"' ||
  fail "the client did not take the request: $(rbdc image-meta get "rbd/$TAG" rbd-luks.reencrypt-request)"
header_records_run && fail "an unconfirmed request began a run"
[ "$(volume_key)" = "$old_key" ] || fail "an unconfirmed request changed the volume key"
pass "a request no command confirms is taken but never run"

# Keyslot 1's passphrase is not the client's: without --force the request fails at once (exit 2, as
# the offline command's refusal), and the client goes on with the volume as it was.
expect_exit 2 "$RBD_LUKS" reencrypt "$TARGET" --online
grep -qF "the online reencryption in client." "$WORK/err" && grep -qi "keyslot" "$WORK/err" ||
  fail "the refusal does not name the keyslot: $(cat "$WORK/err")"
header_records_run && fail "a refused request left a reencryption in the header"
[ "$(volume_key)" = "$old_key" ] || fail "a refused request changed the volume key"
pass "a request that would lose a keyslot fails with its reason, and changes nothing"

# With --force: the run goes to the end while fio writes and verifies.
expect_exit 0 "$RBD_LUKS" reencrypt "$TARGET" --online --force --hotzone-size 2M
grep -qF "reencrypted $TARGET online in client." "$WORK/err" && grep -qF "dropped keyslot(s) 1" "$WORK/err" ||
  fail "no summary: $(cat "$WORK/err")"
kill -0 "$FIO_PID" 2>/dev/null || fail "fio ended before the run did"
end_serving
[ "$(volume_key)" != "$old_key" ] || fail "the volume key did not change"
header_records_run && fail "dump still shows a reencryption"
expect_exit 0 "$RBD_LUKS" export "$TARGET" "$WORK/exported"
cmp -s <(head -c $DATA_BYTES "$WORK/exported") "$WORK/data" || fail "the data before the run reads back otherwise"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
expect_exit 3 "$RBD_LUKS" check "$TARGET" --passphrase-file "$WORK/pass2"
pass "an online reencryption in fio's preload client: fio verifies every write, the key reference opens the new key"

# fio closes the image half way: the run stops between steps, and the offline command finishes it.
serve 120
"$RBD_LUKS" reencrypt "$TARGET" --online --hotzone-size 1M 2>"$WORK/err" &
cli_pid=$!
# Until the client reports progress (every 2 s).
under_way=
for _ in $(seq 600); do
  if rbdc image-meta get "rbd/$TAG" rbd-luks.reencrypt-request 2>/dev/null |
    grep -q '"done_bytes":[1-9].*"state":"running"'; then
    under_way=yes
    break
  fi
  sleep 0.1
done
[ -n "$under_way" ] || fail "the run never reported progress: $(cat "$WORK/err")"
end_serving
cli_rc=0
wait "$cli_pid" || cli_rc=$?
[ "$cli_rc" = 1 ] || fail "reencrypt --online exited $cli_rc when the client closed the image: $(cat "$WORK/err")"
grep -qF "closed the image at" "$WORK/err" && grep -qF "\`rbd-luks reencrypt $TARGET\` finishes the run" "$WORK/err" ||
  fail "the stop does not say how to finish: $(cat "$WORK/err")"
header_records_run || fail "the header records no stopped run"
expect_exit 1 "$RBD_LUKS" read "$TARGET" --offset 0 --length 4096 "${K[@]}"
expect_exit 0 "$RBD_LUKS" reencrypt "$TARGET" "${K[@]}"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes after the resume"
pass "a client that closes the image stops the run; \`rbd-luks reencrypt\` finishes it"

# A client that does not follow requests (fio without the library): SIGINT withdraws the request.
serve 120 plain
"$RBD_LUKS" reencrypt "$TARGET" --online 2>"$WORK/err" &
cli_pid=$!
sleep 2
kill -INT "$cli_pid" 2>/dev/null || fail "reencrypt --online ended before SIGINT: $(cat "$WORK/err")"
cli_rc=0
wait "$cli_pid" || cli_rc=$?
[ "$cli_rc" = 1 ] && grep -qF "the request is withdrawn, nothing changed" "$WORK/err" ||
  fail "reencrypt --online after SIGINT: exit $cli_rc: $(cat "$WORK/err")"
rbdc image-meta get "rbd/$TAG" rbd-luks.reencrypt-request | grep -qF '"state":"withdrawn"' ||
  fail "the record is not withdrawn: $(rbdc image-meta get "rbd/$TAG" rbd-luks.reencrypt-request)"
end_serving
pass "an interrupted command withdraws its request"
