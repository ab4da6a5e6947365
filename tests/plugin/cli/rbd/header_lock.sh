#!/usr/bin/env bash
# Header changes from many clients at once on one RBD image: concurrent `keyslot add`s and key
# rotations (add new, remove old) each either stick or fail cleanly, and never lock everyone out;
# a client waiting for the header lock gives up after RBD_LUKS_LOCK_TIMEOUT with a one-line error
# naming the holder; a lock left by a client that no longer has the image open is broken; `format`
# refuses an image another client has open unless --force.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
# shellcheck source-path=SCRIPTDIR source=../../../lib/header_race.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/header_race.bash"
require_cluster_and_cli

PY=/usr/bin/python3
TAG=hlock$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-header-lock.XXXXXX")
cleanup() {
  remove_images "rbd/$TAG-adds" "rbd/$TAG-rot" "rbd/$TAG-busy" "rbd/$TAG-open"
  rm -rf "$WORK"
}
trap cleanup EXIT

printf '%s' "first passphrase" >"$WORK/p1"
K1=(--passphrase-file "$WORK/p1")
# Enough for every racing client to get its turn; the busy case below sets a short one.
export RBD_LUKS_LOCK_TIMEOUT=60

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-adds" --size 4M "${K1[@]}" "${FAST_PBKDF2[@]}"
race_keyslot_adds "rbd:rbd/$TAG-adds" "$WORK/p1" 8

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-rot" --size 4M "${K1[@]}" "${FAST_PBKDF2[@]}"
race_rotations "rbd:rbd/$TAG-rot" "$WORK/p1" 6

# A client that finds the lock held by a live client waits RBD_LUKS_LOCK_TIMEOUT (here 0: one
# try), then gives up with one line naming the holder. The holder is a keyslot add with a slow KDF.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-busy" --size 4M "${K1[@]}" "${FAST_PBKDF2[@]}"
printf '%s' "slow passphrase" >"$WORK/slow"
"$RBD_LUKS" keyslot add "rbd:rbd/$TAG-busy" "${K1[@]}" --new-passphrase-file "$WORK/slow" \
  --pbkdf pbkdf2 --pbkdf-force-iterations 1000000 2>"$WORK/slow.err" &
slow=$!
header=rbd_header.$(rbdc info "rbd/$TAG-busy" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 100); do
  rados -p rbd lock list "$header" 2>/dev/null | grep -q '"rbd-luks.header"' && break
  sleep 0.02
done
printf '%s' "impatient passphrase" >"$WORK/impatient"
expect_exit 1 env RBD_LUKS_LOCK_TIMEOUT=0 "$RBD_LUKS" keyslot add "rbd:rbd/$TAG-busy" "${K1[@]}" \
  --new-passphrase-file "$WORK/impatient" "${FAST_PBKDF2[@]}"
err_has "another client is changing the LUKS header (client."
err_has "rbd-luks keyslot add, pid $slow on"
err_has "gave up after 0 s"
wait "$slow" || fail "the slow keyslot add failed: $(cat "$WORK/slow.err")"
expect_exit 0 "$RBD_LUKS" keyslot list "rbd:rbd/$TAG-busy"
[ "$(wc -l <"$WORK/out")" -eq 2 ] || fail "expected keyslots 0 and 1 only: $(cat "$WORK/out")"
pass "a client waiting for a held header lock gives up after RBD_LUKS_LOCK_TIMEOUT, naming the holder"

# A lock whose holder no longer has the image open (here: the rados tool, which never opened it)
# is broken, and its holder blocklisted first.
rados -p rbd lock get "$header" rbd-luks.header --lock-cookie "0000 a client that died" >/dev/null
holder_addr=$(rados -p rbd lock info "$header" rbd-luks.header |
  $PY -c 'import json,sys; print(json.load(sys.stdin)["lockers"][0]["addr"])')
expect_exit 0 env RBD_LUKS_LOCK_TIMEOUT=5 "$RBD_LUKS" keyslot add "rbd:rbd/$TAG-busy" "${K1[@]}" \
  --new-passphrase-file "$WORK/impatient" "${FAST_PBKDF2[@]}"
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$TAG-busy" --passphrase-file "$WORK/impatient"
ceph osd blocklist ls 2>/dev/null | grep -qF "$holder_addr" || fail "the gone holder $holder_addr was not blocklisted"
ceph osd blocklist rm "$holder_addr" >/dev/null 2>&1
pass "the header lock of a client that no longer has the image open is broken, the client blocklisted"

# format refuses an image another client has open (here Python's librbd) unless --force.
rbdc create --size 20M "rbd/$TAG-open"
$PY - "$CEPH_CONF" "$TAG-open" "$WORK/opened" <<'PYEOF' &
import os, sys, time, rados, rbd
conf, name, flag = sys.argv[1:]
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name) as img:
    open(flag, "w").close()
    while os.path.exists(flag):
        time.sleep(0.05)
PYEOF
holder=$!
for _ in $(seq 200); do [ -e "$WORK/opened" ] && break; sleep 0.05; done
[ -e "$WORK/opened" ] || fail "the Python client did not open the image"
expect_exit 1 "$RBD_LUKS" format "rbd:rbd/$TAG-open" "${K1[@]}" "${FAST_PBKDF2[@]}"
err_has "is open by another client (client."
err_has "use --force"
expect_exit 0 "$RBD_LUKS" format "rbd:rbd/$TAG-open" --force "${K1[@]}" "${FAST_PBKDF2[@]}"
rm "$WORK/opened"
wait "$holder"
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$TAG-open" "${K1[@]}"
pass "format refuses an image another client has open, unless --force"
