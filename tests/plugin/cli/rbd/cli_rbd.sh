#!/usr/bin/env bash
# The rbd-luks command line on rbd: targets, against the test cluster that CEPH_CONF names (the CTest
# fixture "ceph" starts it): every command, the target forms (rbd:POOL/IMAGE, POOL/IMAGE, namespaces,
# read-only @SNAP), the Ceph connection options, exit codes and one-line errors. librbd's native
# LUKS2 support (python3-rbd) is the independent reader of what rbd-luks writes.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli

PY=/usr/bin/python3
MiB=$((1024 * 1024))
TAG=cli$$
IMG=$TAG-img
NS=$TAG-ns
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-cli-rbd.XXXXXX")

cleanup() {
  remove_images "rbd/$IMG" "rbd/$TAG-raw" "rbd/$TAG-empty" "rbd/$TAG-small" "rbd/$TAG-broken" "rbd/$NS/img"
  rbdc namespace remove "rbd/$NS" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

rbd_size() { rbdc info "$1" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["size"])'; }

printf '%s' "first passphrase" >"$WORK/p1"
printf '%s' "second passphrase" >"$WORK/p2"
printf '%s' "wrong" >"$WORK/bad"
K1=(--passphrase-file "$WORK/p1")
K2=(--passphrase-file "$WORK/p2")

# create: the RBD image holds the plaintext size plus the 16 MiB LUKS2 header area.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$IMG" --size 64M "${K1[@]}" "${FAST_LUKS2[@]}"
[ "$(rbd_size "rbd/$IMG")" -eq $((80 * MiB)) ] || fail "create: RBD image is $(rbd_size "rbd/$IMG") bytes, not 80 MiB"
expect_exit 1 "$RBD_LUKS" create "rbd:rbd/$IMG" --size 64M "${K1[@]}" "${FAST_LUKS2[@]}"
err_has "already exists"
pass "create rbd:rbd/$IMG"

# dump: text and JSON, in both target forms.
expect_exit 0 "$RBD_LUKS" dump "rbd:rbd/$IMG"
grep -q "rbd:rbd/$IMG" "$WORK/out" || fail "dump does not name the image"
cp "$WORK/out" "$WORK/dump-long"
expect_exit 0 "$RBD_LUKS" dump "rbd/$IMG"
cmp -s "$WORK/out" "$WORK/dump-long" || fail "dump POOL/IMAGE differs from dump rbd:POOL/IMAGE"
expect_exit 0 "$RBD_LUKS" dump "rbd/$IMG" --json
offset=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["data_offset"])' "$WORK/out")
[ "$offset" -eq $((16 * MiB)) ] || fail "data offset is $offset, not 16 MiB"
pass "dump, long and short target forms"

# check: the right key opens a keyslot; a wrong one exits 3.
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$IMG" "${K1[@]}"
expect_exit 3 "$RBD_LUKS" check "rbd:rbd/$IMG" --passphrase-file "$WORK/bad"
pass "check, wrong passphrase exits 3"

# import/export round trip; librbd's own LUKS2 layer reads the same plaintext.
head -c $((5 * MiB + 4096)) /dev/urandom >"$WORK/plain"
expect_exit 0 "$RBD_LUKS" import "$WORK/plain" "rbd:rbd/$IMG" --offset $MiB "${K1[@]}"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$IMG" "$WORK/exported" "${K1[@]}"
[ "$(stat -c %s "$WORK/exported")" -eq $((64 * MiB)) ] || fail "export is not 64 MiB"
cmp -s <(tail -c +$((MiB + 1)) "$WORK/exported" | head -c "$(stat -c %s "$WORK/plain")") "$WORK/plain" \
  || fail "export differs from what import wrote"
cmp -s <(head -c $MiB "$WORK/exported") <(head -c $MiB /dev/zero) || fail "never-written range is not zeros"
$PY - "$CEPH_CONF" "$IMG" "$WORK/p1" "$WORK/plain" <<'PYEOF'
import sys, rados, rbd
conf, name, passfile, plain_path = sys.argv[1:]
plain = open(plain_path, "rb").read()
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name, read_only=True) as img:
    img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open(passfile, "rb").read())
    assert img.size() == 64 << 20, "native LUKS2 sees %d bytes" % img.size()
    assert img.read(1 << 20, len(plain)) == plain, "librbd native decryption differs from the imported plaintext"
PYEOF
pass "import/export round trip; librbd native LUKS2 reads the same data"

# read/write: unaligned, through stdin/stdout.
printf 'across a sector boundary' >"$WORK/piece"
expect_exit 0 "$RBD_LUKS" write "rbd:rbd/$IMG" --offset 4090 "${K1[@]}" <"$WORK/piece"
"$RBD_LUKS" read "rbd:rbd/$IMG" --offset 4090 --length "$(stat -c %s "$WORK/piece")" "${K1[@]}" >"$WORK/back"
cmp -s "$WORK/back" "$WORK/piece" || fail "read does not return what write wrote"
expect_exit 2 "$RBD_LUKS" read "rbd:rbd/$IMG" --offset $((64 * MiB - 4)) --length 8 "${K1[@]}"
pass "read/write"

# keyslots: add a second passphrase, remove the first.
expect_exit 0 "$RBD_LUKS" keyslot add "rbd:rbd/$IMG" "${K1[@]}" --new-passphrase-file "$WORK/p2" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" keyslot list "rbd:rbd/$IMG"
[ "$(grep -c . "$WORK/out")" -eq 2 ] || { cat "$WORK/out"; fail "keyslot list does not show 2 keyslots"; }
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$IMG" "${K2[@]}"
expect_exit 0 "$RBD_LUKS" keyslot remove "rbd:rbd/$IMG" 0 "${K2[@]}"
expect_exit 3 "$RBD_LUKS" check "rbd:rbd/$IMG" "${K1[@]}"
expect_exit 0 "$RBD_LUKS" keyslot list "rbd:rbd/$IMG"
[ "$(grep -c . "$WORK/out")" -eq 1 ] || { cat "$WORK/out"; fail "keyslot list does not show 1 keyslot"; }
"$RBD_LUKS" read "rbd:rbd/$IMG" --offset $MiB --length 4096 "${K2[@]}" >"$WORK/back"
cmp -s "$WORK/back" <(head -c 4096 "$WORK/plain") || fail "data unreadable after keyslot changes"
pass "keyslot add/list/remove"

# resize grows the RBD image with the plaintext.
expect_exit 0 "$RBD_LUKS" resize "rbd:rbd/$IMG" --size 96M "${K2[@]}"
[ "$(rbd_size "rbd/$IMG")" -ge $((112 * MiB)) ] || fail "resize: RBD image is only $(rbd_size "rbd/$IMG") bytes"
printf 'at the new end' >"$WORK/end"
expect_exit 0 "$RBD_LUKS" write "rbd:rbd/$IMG" --offset $((96 * MiB - 14)) "${K2[@]}" <"$WORK/end"
"$RBD_LUKS" read "rbd:rbd/$IMG" --offset $((96 * MiB - 14)) --length 14 "${K2[@]}" >"$WORK/back"
cmp -s "$WORK/back" "$WORK/end" || fail "resize: the new end does not hold what was written"
"$RBD_LUKS" read "rbd:rbd/$IMG" --offset $MiB --length 4096 "${K2[@]}" >"$WORK/back"
cmp -s "$WORK/back" <(head -c 4096 "$WORK/plain") || fail "resize lost data"
pass "resize to 96M"

# Snapshots are read-only views of the old data.
rbdc snap create --no-progress "rbd/$IMG@s1"
printf 'after the snapshot' >"$WORK/new"
expect_exit 0 "$RBD_LUKS" write "rbd:rbd/$IMG" --offset $MiB "${K2[@]}" <"$WORK/new"
"$RBD_LUKS" read "rbd:rbd/$IMG@s1" --offset $MiB --length 18 "${K2[@]}" >"$WORK/back"
cmp -s "$WORK/back" <(head -c 18 "$WORK/plain") || fail "snapshot does not show the old data"
"$RBD_LUKS" read "rbd:rbd/$IMG" --offset $MiB --length 18 "${K2[@]}" >"$WORK/back"
cmp -s "$WORK/back" "$WORK/new" || fail "head does not show the new data"
expect_exit 0 "$RBD_LUKS" check "rbd/$IMG@s1" "${K2[@]}"
expect_exit 1 "$RBD_LUKS" write "rbd:rbd/$IMG@s1" --offset 0 "${K2[@]}" <"$WORK/new"
err_has "read-only"
expect_exit 1 "$RBD_LUKS" keyslot add "rbd:rbd/$IMG@s1" "${K2[@]}" --new-passphrase-file "$WORK/p1" "${FAST_LUKS2[@]}"
expect_exit 1 "$RBD_LUKS" check "rbd:rbd/$IMG@nosnap" "${K2[@]}"
err_has "snapshot 'nosnap' of rbd:rbd/$IMG does not exist"
pass "snapshot is read-only and shows the old data"

# Namespaces.
rbdc namespace create "rbd/$NS"
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$NS/img" --size 8M "${K1[@]}" "${FAST_LUKS2[@]}"
rbdc ls "rbd/$NS" | grep -qx img || fail "image not created in namespace $NS"
expect_exit 0 "$RBD_LUKS" write "rbd:rbd/$NS/img" --offset 100 "${K1[@]}" <"$WORK/piece"
"$RBD_LUKS" read "rbd:rbd/$NS/img" --offset 100 --length "$(stat -c %s "$WORK/piece")" "${K1[@]}" >"$WORK/back"
cmp -s "$WORK/back" "$WORK/piece" || fail "namespace image: read differs from write"
expect_exit 1 "$RBD_LUKS" check "rbd:rbd/$TAG-nons/img" "${K1[@]}"
err_has "namespace '$TAG-nons' does not exist in pool 'rbd'"
pass "namespace rbd:rbd/$NS/img"

# Missing image and pool: exit 1 and a message naming them.
expect_exit 1 "$RBD_LUKS" check "rbd:rbd/$TAG-missing" "${K1[@]}"
err_has "rbd:rbd/$TAG-missing does not exist"
expect_exit 1 "$RBD_LUKS" dump "$TAG-nopool/img"
err_has "pool '$TAG-nopool' does not exist"
pass "missing image and pool"

# format: a fresh RBD image is fine; one holding data that is not LUKS needs --force.
rbdc create "rbd/$TAG-empty" --size 32M
expect_exit 0 "$RBD_LUKS" format "rbd:rbd/$TAG-empty" "${K1[@]}" "${FAST_LUKS2[@]}"
expect_exit 1 "$RBD_LUKS" format "rbd:rbd/$TAG-empty" "${K1[@]}" "${FAST_LUKS2[@]}"
err_has "LUKS"
head -c $((32 * MiB)) /dev/zero >"$WORK/raw"
head -c 4096 /dev/urandom | dd of="$WORK/raw" bs=4096 seek=100 conv=notrunc status=none
rbdc import "$WORK/raw" "rbd/$TAG-raw" >/dev/null 2>&1
expect_exit 1 "$RBD_LUKS" format "rbd:rbd/$TAG-raw" "${K1[@]}" "${FAST_LUKS2[@]}"
err_has "already holds data"
expect_exit 0 "$RBD_LUKS" format "rbd:rbd/$TAG-raw" --force "${K1[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$TAG-raw" "${K1[@]}"
pass "format refuses non-LUKS data without --force"

# A damaged header on RBD: exit 4 when both copies are gone; an image too small for the header: refused.
rbdc create "rbd/$TAG-small" --size 8M
expect_exit 1 "$RBD_LUKS" format "rbd:rbd/$TAG-small" "${K1[@]}" "${FAST_LUKS2[@]}"
err_has "too small"
[ "$(rbdc diff "rbd/$TAG-small" | wc -l)" -le 1 ] || fail "refused format wrote to the small image"
rbdc export "rbd/$TAG-raw" "$WORK/hdr" >/dev/null 2>&1
printf 'XXXX' | dd of="$WORK/hdr" bs=1 seek=0 conv=notrunc status=none
printf 'XXXX' | dd of="$WORK/hdr" bs=1 seek=16384 conv=notrunc status=none
rbdc import "$WORK/hdr" "rbd/$TAG-broken" >/dev/null 2>&1
expect_exit 4 "$RBD_LUKS" check "rbd:rbd/$TAG-broken" "${K1[@]}"
pass "damaged header on rbd exits 4; too-small image refused and untouched"

# Connection options: -c, --id, --name, --keyring, CEPH_ARGS, and a dead cluster failing fast.
keyring=$(dirname "$CEPH_CONF")/ceph.client.admin.keyring
conf=$CEPH_CONF
expect_exit 0 env -u CEPH_CONF "$RBD_LUKS" -c "$conf" --id admin --keyring "$keyring" check "rbd/$IMG" "${K2[@]}"
expect_exit 0 env -u CEPH_CONF "$RBD_LUKS" --conf "$conf" -n client.admin check "rbd/$IMG" "${K2[@]}"
expect_exit 1 env -u CEPH_CONF "$RBD_LUKS" -c "$WORK/no.conf" check "rbd/$IMG" "${K2[@]}"
err_has "$WORK/no.conf"
expect_exit 1 "$RBD_LUKS" --keyring "$WORK/no-keyring" check "rbd/$IMG" "${K2[@]}"
err_has "no keyring found"
expect_exit 1 env CEPH_ARGS="--id nosuchclient" "$RBD_LUKS" check "rbd/$IMG" "${K2[@]}"
err_has "client.nosuchclient"
expect_exit 0 env CEPH_ARGS="--id nosuchclient" "$RBD_LUKS" --id admin check "rbd/$IMG" "${K2[@]}"
expect_exit 2 "$RBD_LUKS" --id admin --name client.admin check "rbd/$IMG" "${K2[@]}"
expect_exit 2 "$RBD_LUKS" --name admin check "rbd/$IMG" "${K2[@]}"
dead_port=$($PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
printf '[global]\nmon host = 127.0.0.1:%s\nkeyring = %s\n' "$dead_port" "$keyring" >"$WORK/dead.conf"
start=$(date +%s)
expect_exit 1 env RBD_LUKS_MOUNT_TIMEOUT=3 "$RBD_LUKS" -c "$WORK/dead.conf" check "rbd/$IMG" "${K2[@]}"
[ $(($(date +%s) - start)) -lt 15 ] || fail "a dead cluster took $(($(date +%s) - start)) s to fail"
err_has "no monitor answered within 3 s"
pass "connection options and a dead cluster"

echo "cli_rbd: all passed"
