#!/usr/bin/env bash
# An encrypted Cinder volume, made the way Cinder's RBD driver makes one: a random 64-byte key in
# Barbican, `qemu-img create -f luks` on rbd: with the passphrase = lowercase hex of the key
# (passed in a file, as Cinder does), data written by qemu-io. rbd-luks reads it with
# --key-ref barbican:UUID --passphrase-encoding hex; `key-ref set` records the reference only once
# it opens a keyslot, after which the volume opens with no key option; what rbd-luks writes,
# qemu-io reads. (The pre-Newton "mangled" form is --passphrase-encoding hex-mangled, tested in
# tests/plugin/cli/file/key_refs.sh.)
# shellcheck source=tests/plugin/cli/openstack/lib.bash
source "$OPENSTACK_TEST_LIB"

vol=$TAG-cinder
IMAGES+=("$vol")
head -c 64 /dev/urandom >"$WORK/key"
leak_key "$WORK/key"
uuid=$(store_key rbd-luks "$WORK/key")
xxd -p -c 64 "$WORK/key" | tr -d '\n' >"$WORK/passphrase"
chmod 600 "$WORK/passphrase"

# What cinder.volume.drivers.rbd does for a volume type with provider luks, aes-xts-plain64, 256.
secret=(--object "secret,id=luks_sec,format=raw,file=$WORK/passphrase")
# shellcheck source=tests/lib/qemu.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/qemu.bash"
qemu_img_create_rbd "rbd/$vol" 16M -q -f luks "${secret[@]}" \
  -o key-secret=luks_sec,cipher-alg=aes-256,cipher-mode=xts,ivgen-alg=plain64,iter-time=10
qio() {
  qemu-io "${secret[@]}" --image-opts \
    "driver=luks,key-secret=luks_sec,file.driver=rbd,file.pool=rbd,file.image=$vol,file.conf=$CEPH_CONF" "$@"
}
qio -c "write -P 0x5a 65536 131072" -c "write -P 0xc3 16773120 4096" >/dev/null
expect_exit 0 rl dump "rbd:rbd/$vol" --json
$PY -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"]==1 and d["data_offset"]==4040*512, d' \
  "$WORK/out" || fail "qemu-img did not make the LUKS1 layout Cinder volumes have"

expect_exit 0 rl read "rbd:rbd/$vol" --key-ref "barbican:$uuid" --passphrase-encoding hex --offset 65536 --length 131072
cmp -s "$WORK/out" <(head -c 131072 /dev/zero | tr '\0' '\132') || fail "data qemu-io wrote at 64 KiB differs"
expect_exit 0 rl read "rbd:rbd/$vol" --key-ref "barbican:$BARBICAN_URL/v1/secrets/$uuid" --passphrase-encoding hex \
  --offset 16773120 --length 4096
cmp -s "$WORK/out" <(head -c 4096 /dev/zero | tr '\0' '\303') || fail "data qemu-io wrote at the end differs"
pass "Cinder-style volume (qemu-img luks, hex of the Barbican key):" \
  "read with --key-ref barbican:UUID --passphrase-encoding hex"

# The raw key bytes are not the passphrase: exit 3 (wrong key), not 5.
expect_exit 3 rl check "rbd:rbd/$vol" --key-ref "barbican:$uuid"

# key-ref set refuses a reference that opens nothing, and records nothing then.
export_image "$vol" "$WORK/before"
expect_exit 3 rl key-ref set "rbd:rbd/$vol" "barbican:$uuid" --passphrase-encoding raw
expect_error_mentions "barbican:$uuid" "opens no keyslot"
[ -z "$(image_meta "$vol" rbd-luks.key-ref)" ] || fail "a failed key-ref set recorded a reference"
expect_exit 2 rl key-ref set "rbd:rbd/$vol" "barbican:$uuid" --passphrase-encoding base64
expect_exit 2 rl key-ref set "rbd:rbd/$vol" "barbican:$uuid" --key-ref "barbican:$uuid"
export_image "$vol" "$WORK/after"
cmp -s "$WORK/before" "$WORK/after" || fail "a failed key-ref set changed the image"
pass "key-ref set with the wrong encoding: exit 3, nothing recorded or written"

expect_exit 0 rl key-ref set "rbd:rbd/$vol" "barbican:$uuid" --passphrase-encoding hex
[ "$(image_meta "$vol" rbd-luks.key-ref)" = "barbican:$uuid" ] || fail "key-ref set did not record the reference"
[ "$(image_meta "$vol" rbd-luks.passphrase-encoding)" = hex ] || fail "key-ref set did not record hex"
# No key option from now on, in new processes.
expect_exit 0 rl read "rbd:rbd/$vol" --offset 65536 --length 131072
cmp -s "$WORK/out" <(head -c 131072 /dev/zero | tr '\0' '\132') || fail "metadata-keyed read differs"
head -c 9000 /dev/zero | tr '\0' '\167' >"$WORK/ours"
expect_exit 0 rl write "rbd:rbd/$vol" --offset 1000000 <"$WORK/ours"
qio -c "read -P 0x77 1000000 9000" >"$WORK/qio.out"
grep -q "verification failed" "$WORK/qio.out" && fail "qemu-io reads different bytes where rbd-luks wrote"
grep -q "read 9000/9000 bytes" "$WORK/qio.out" || fail "qemu-io read failed: $(cat "$WORK/qio.out")"
pass "key-ref set: then opens with no key option; rbd-luks writes, qemu-io (Cinder's reader) reads"

# A secret_ref URL may be recorded too; only its UUID is used.
expect_exit 0 rl key-ref set "rbd:rbd/$vol" "barbican:$BARBICAN_URL/v1/secrets/$uuid" --passphrase-encoding hex
expect_exit 0 rl check "rbd:rbd/$vol"
pass "key-ref set with a secret_ref URL"

# Backup and restore as the operator guide describes: ciphertext with rbd export/import; the
# restored copy opens with the same Barbican key once its reference is set again.
rbdc export --no-progress "rbd/$vol" "$WORK/backup.img" >/dev/null 2>&1
rbdc import --no-progress "$WORK/backup.img" "rbd/$vol-restored" >/dev/null 2>&1
IMAGES+=("$vol-restored")
expect_exit 2 rl check "rbd:rbd/$vol-restored"
expect_exit 0 rl key-ref set "rbd:rbd/$vol-restored" "barbican:$uuid" --passphrase-encoding hex -q
expect_exit 0 rl read "rbd:rbd/$vol-restored" --offset 1000000 --length 9000
cmp -s "$WORK/out" "$WORK/ours" || fail "restored volume reads different data"
pass "ciphertext backup (rbd export/import) restored and opened with the Barbican key"

check_no_leaks
