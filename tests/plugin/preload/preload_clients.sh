#!/usr/bin/env bash
# librbd_luks_preload.so under unmodified programs on librbd's C API, against the test cluster that
# CEPH_CONF names: qemu-img (info, convert, compare, map, snapshot), qemu-io (unaligned and
# asynchronous writes, write-zeroes, discard, flush), qemu-storage-daemon's FUSE export with ext4 on
# a loop device, and fio's rbd engine with verify; what they wrote read back by `rbd-luks export`
# and librbd's native LUKS2. A plain image and an encrypted image that did not opt in are
# untouched; a wrong key, a missing key reference, an unreachable Barbican and librbd's own
# encryption stacked on top are refused at open with one line.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
for tool in qemu-img qemu-io qemu-storage-daemon fio losetup mkfs.ext4 fsck.ext4; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

PY=/usr/bin/python3
MiB=$((1024 * 1024))
TAG=pre$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-preload.XXXXXX")
IMAGES=(enc plain other ref fs noref bar)
cleanup() {
  mountpoint -q "$WORK/mnt" 2>/dev/null && umount "$WORK/mnt"
  [ -z "${LOOP:-}" ] || losetup -d "$LOOP" 2>/dev/null || true
  [ ! -s "$WORK/qsd.pid" ] || kill "$(cat "$WORK/qsd.pid")" 2>/dev/null || true
  local name
  for name in "${IMAGES[@]}"; do remove_images "rbd/$TAG-$name"; done
  ceph config-key rm "rbd-luks/$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "preload passphrase" >"$WORK/pass"
printf '%s' "not the passphrase" >"$WORK/wrong"
K=(--passphrase-file "$WORK/pass")
printf 'passphrase-file = %s\naccept-key-refs = config-key,barbican\n' "$WORK/pass" >"$WORK/preload.conf"
export RBD_LUKS_PRELOAD_CONF="$WORK/preload.conf"
pre() { LD_PRELOAD="$PRELOAD_LIBRARY" "$@"; }
uri() { echo "rbd:rbd/$TAG-$1:conf=$CEPH_CONF"; }
opts() { echo "driver=raw,file.driver=rbd,file.pool=rbd,file.image=$TAG-$1,file.conf=$CEPH_CONF"; }
size_of() { pre qemu-img info --output=json -f raw "$(uri "$1")" | $PY -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'; }

# An opted-in image: its plaintext size, through the preload library only.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-enc" --size 64M "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" preload enable "rbd:rbd/$TAG-enc" "${K[@]}"
[ "$(size_of enc)" = $((64 * MiB)) ] || fail "qemu-img info: $(size_of enc), not the 64 MiB plaintext"
[ "$(qemu-img info --output=json -f raw "$(uri enc)" | $PY -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')" -gt $((64 * MiB)) ] ||
  fail "without the preload library qemu-img should see the whole RBD image"
pass "qemu-img info: the plaintext size with the preload library, the RBD size without"

# qemu-img convert in (with a zero run over what was data), out, compare, map.
holey_file "$WORK/data"
head -c $((20 * MiB)) /dev/urandom >"$WORK/noise"
pre qemu-img convert -n -f raw -O raw "$WORK/noise" "$(uri enc)"
# librbd's native LUKS2 reads it. (Not after the zero run below: the test cluster's memstore returns
# zeroed objects as data, which librbd then decrypts; the thin-image tests check it on bluestore.)
native_reads "$CEPH_CONF" "$TAG-enc" "$WORK/noise" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
pre qemu-img convert -n -f raw -O raw "$WORK/data" "$(uri enc)"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-enc" "$WORK/exported" "${K[@]}"
cmp -s <(head -c $((20 * MiB)) "$WORK/exported") "$WORK/data" || fail "rbd-luks export differs from what qemu-img wrote"
pre qemu-img compare -f raw -F raw "$WORK/data" "$(uri enc)" >/dev/null || fail "qemu-img compare: the image differs"
pre qemu-img convert -f raw -O raw "$(uri enc)" "$WORK/out"
cmp -s "$WORK/out" "$WORK/exported" || fail "qemu-img convert out differs from rbd-luks export"
pre qemu-img map --output=json -f raw "$(uri enc)" >"$WORK/map.json"
$PY - "$WORK/map.json" <<'PYEOF' || fail "qemu-img map: $(cat "$WORK/map.json")"
import json, sys
MiB = 1 << 20
data = [(e["start"], e["start"] + e["length"]) for e in json.load(open(sys.argv[1])) if e["data"]]
merged = []
for start, end in data:
    if merged and merged[-1][1] == start:
        merged[-1] = (merged[-1][0], end)
    else:
        merged.append((start, end))
# 4 MiB objects behind a 16 MiB header: the 20 MiB written are five whole objects, and what lies
# past them reads as a hole. (qemu-img zeroes in 2 MiB requests, which leave librbd's objects in
# place, as they would on a plain image.)
assert merged == [(0, 20 * MiB)], merged
PYEOF
pass "qemu-img convert, compare and map; rbd-luks and librbd native read what qemu-img wrote"

# qemu-io: unaligned writes, asynchronous ones, write-zeroes and discard, each read back with its
# pattern; then the same bytes through rbd-luks.
pre qemu-io -f raw "$(uri enc)" \
  -c 'write -P 0x5a 4097 10000' -c 'read -P 0x5a 4097 10000' \
  -c 'aio_write -P 0x11 123 777' -c 'aio_write -P 0x22 70000 5000' -c 'aio_flush' \
  -c 'read -P 0x11 123 777' -c 'read -P 0x22 70000 5000' \
  -c 'write -z 8192 4096' -c 'read -P 0 8192 4096' \
  -c 'discard 1M 1M' -c 'read -P 0 1M 1M' -c 'flush' >"$WORK/qemu-io.out" 2>&1
! grep -qiE 'fail|error|mismatch' "$WORK/qemu-io.out" || fail "qemu-io: $(cat "$WORK/qemu-io.out")"
"$RBD_LUKS" read "rbd:rbd/$TAG-enc" --offset 70000 --length 5000 "${K[@]}" >"$WORK/read"
cmp -s "$WORK/read" <(head -c 5000 /dev/zero | tr '\0' '\042') || fail "rbd-luks reads other bytes than qemu-io wrote"
pass "qemu-io: unaligned and asynchronous writes, write-zeroes, discard, flush; read back by rbd-luks"

# Snapshots: create, list with the plaintext size, roll back, remove.
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-enc" "$WORK/before" "${K[@]}"
pre qemu-img snapshot -c s1 --image-opts "$(opts enc)"
pre qemu-io -f raw "$(uri enc)" -c 'write -P 0x77 0 1M' >/dev/null
pre qemu-img snapshot -l --image-opts "$(opts enc)" >"$WORK/snaps"
grep -qE '^s1 .* 64 MiB ' "$WORK/snaps" || fail "qemu-img snapshot -l: $(cat "$WORK/snaps")"
pre qemu-img snapshot -a s1 --image-opts "$(opts enc)"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-enc" "$WORK/after" "${K[@]}"
cmp -s "$WORK/before" "$WORK/after" || fail "the rollback did not bring the plaintext back"
pre qemu-img snapshot -d s1 --image-opts "$(opts enc)"
[ -z "$(rbdc snap ls "rbd/$TAG-enc")" ] || fail "qemu-img snapshot -d left the snapshot"
pass "qemu-img snapshot: create, list (plaintext size), roll back, remove"

# fio's rbd engine (completions polled through rbd_poll_io_events) with crc32c verification, at
# 4 KiB and at 6 KiB, which straddles encryption sectors; the header is intact afterwards.
for bs in 4k 6k; do
  pre fio --name="t$bs" --ioengine=rbd --clientname=admin --pool=rbd --rbdname="$TAG-enc" --rw=randwrite \
    --bs="$bs" --iodepth=16 --size=12M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 \
    --output-format=json --output="$WORK/fio.json" >/dev/null 2>&1 || fail "fio --bs=$bs: $(cat "$WORK/fio.json")"
  $PY -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; assert j["error"] == 0 and j["read"]["io_bytes"] > 0, j' \
    "$WORK/fio.json" || fail "fio --bs=$bs verified nothing"
done
expect_exit 0 "$RBD_LUKS" check "rbd:rbd/$TAG-enc" "${K[@]}"
pass "fio's rbd engine with verify=crc32c at 4 KiB and 6 KiB; the LUKS header is intact"

# qemu-storage-daemon's FUSE export, a loop device and ext4.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-fs" --size 128M "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" preload enable "rbd:rbd/$TAG-fs" "${K[@]}"
mkdir "$WORK/mnt"
touch "$WORK/disk"
pre qemu-storage-daemon --daemonize --pidfile "$WORK/qsd.pid" \
  --blockdev "driver=rbd,node-name=n0,pool=rbd,image=$TAG-fs,conf=$CEPH_CONF,cache.direct=on" \
  --export "type=fuse,id=e0,node-name=n0,mountpoint=$WORK/disk,writable=on"
[ "$(stat -c %s "$WORK/disk")" = $((128 * MiB)) ] || fail "the FUSE export is $(stat -c %s "$WORK/disk") bytes"
# Turning the preload off under a client that has the image open is refused.
expect_exit 1 "$RBD_LUKS" preload disable "rbd:rbd/$TAG-fs"
err_has "is open by another client"
"$RBD_LUKS" preload status "rbd:rbd/$TAG-fs" | grep -qx 'preload: on' || fail "preload disable changed an image in use"
LOOP=$(losetup -f --show "$WORK/disk")
mkfs.ext4 -q "$LOOP"
mount "$LOOP" "$WORK/mnt"
cp "$WORK/data" "$WORK/mnt/file1"
head -c 3333 /dev/urandom >"$WORK/mnt/file2"
cp "$WORK/mnt/file2" "$WORK/file2"
umount "$WORK/mnt"
fsck.ext4 -n "$LOOP" >"$WORK/fsck" 2>&1 || fail "fsck: $(cat "$WORK/fsck")"
mount "$LOOP" "$WORK/mnt"
cmp -s "$WORK/mnt/file1" "$WORK/data" && cmp -s "$WORK/mnt/file2" "$WORK/file2" || fail "files differ after remount"
umount "$WORK/mnt"
losetup -d "$LOOP"
LOOP=
kill "$(cat "$WORK/qsd.pid")"
while kill -0 "$(cat "$WORK/qsd.pid")" 2>/dev/null; do sleep 0.1; done
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-fs" "$WORK/fs.img" "${K[@]}"
fsck.ext4 -n "$WORK/fs.img" >"$WORK/fsck" 2>&1 || fail "fsck of rbd-luks export: $(cat "$WORK/fsck")"
pass "qemu-storage-daemon FUSE export: mkfs.ext4, mount, write, fsck -n, remount and verify; rbd-luks export is clean"

# Images that did not opt in are librbd's: a plain image and an encrypted one, byte for byte.
head -c $((8 * MiB)) /dev/urandom >"$WORK/plain"
rbdc import --no-progress "$WORK/plain" "rbd/$TAG-plain"
pre qemu-img convert -f raw -O raw "$(uri plain)" "$WORK/plain.out"
cmp -s "$WORK/plain.out" "$WORK/plain" || fail "a plain image reads differently with the preload library"
pre qemu-io -f raw "$(uri plain)" -c 'write -P 0x33 5000 3000' >/dev/null
rbdc export --no-progress "rbd/$TAG-plain" "$WORK/plain.rbd"
$PY - "$WORK/plain" "$WORK/plain.rbd" <<'PYEOF' || fail "a write to a plain image through the preload library is not plain"
import sys
want = bytearray(open(sys.argv[1], "rb").read())
want[5000:8000] = b"\x33" * 3000
assert open(sys.argv[2], "rb").read() == want
PYEOF
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-other" --size 16M "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" write "rbd:rbd/$TAG-other" --offset 0 "${K[@]}" <"$WORK/plain"
rbdc export --no-progress "rbd/$TAG-other" "$WORK/other.rbd"
pre qemu-img convert -f raw -O raw "$(uri other)" "$WORK/other.out"
cmp -s "$WORK/other.out" "$WORK/other.rbd" || fail "an encrypted image that did not opt in was decrypted"
pass "a plain image and a not-opted-in encrypted image pass through byte for byte"

# The key from the image's reference (config-key), as for an image with no passphrase around.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-ref" --size 16M --new-key "config-key:rbd-luks/$TAG" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" preload enable "rbd:rbd/$TAG-ref"
pre qemu-img convert -n -f raw -O raw "$WORK/plain" "$(uri ref)"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-ref" "$WORK/ref.out"
cmp -s <(head -c $((8 * MiB)) "$WORK/ref.out") "$WORK/plain" || fail "the image opened with its key reference reads other bytes"
pass "the key from the image's config-key reference"

# Refusals: one line, a failed open, nothing served.
refused() {  # refused NAME EXPECTED_TEXT [VAR=value...]: qemu-img info of image NAME must fail so
  local name=$1 expected=$2 rc=0
  env "${@:3}" LD_PRELOAD="$PRELOAD_LIBRARY" qemu-img info -f raw "$(uri "$name")" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -ne 0 ] || fail "$name opened: $(cat "$WORK/out")"
  [ "$(grep -c '^rbd-luks preload: ' "$WORK/err")" = 1 ] || fail "$name: not one rbd-luks line: $(cat "$WORK/err")"
  grep -q "$expected" "$WORK/err" || fail "$name: $(cat "$WORK/err")"
  echo "    $(grep '^rbd-luks preload: ' "$WORK/err")"
}
printf 'passphrase-file = %s\n' "$WORK/wrong" >"$WORK/wrong.conf"
refused enc "no keyslot opens" RBD_LUKS_PRELOAD_CONF="$WORK/wrong.conf"
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-noref" --size 16M "${K[@]}" "${FAST_LUKS2[@]}"
rbdc image-meta set "rbd/$TAG-noref" rbd-luks.preload on >/dev/null
printf 'accept-key-refs = config-key\n' >"$WORK/noref.conf"
refused noref "no key reference" RBD_LUKS_PRELOAD_CONF="$WORK/noref.conf"
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-bar" --size 16M "${K[@]}" "${FAST_LUKS2[@]}"
rbdc image-meta set "rbd/$TAG-bar" rbd-luks.key-ref barbican:0b1f7c52-8f5c-4a4c-9d7e-3d1f6ab0c001 >/dev/null
rbdc image-meta set "rbd/$TAG-bar" rbd-luks.preload on >/dev/null
printf '[barbican]\nauth_url = http://127.0.0.1:9/v3\nusername = nova\npassword = x\nproject_name = p\nuser_domain_name = Default\nproject_domain_name = Default\nconnect_timeout = 2\nretries = 0\n' >"$WORK/os.conf"
chmod 600 "$WORK/os.conf"
refused bar "barbican\|Keystone\|keystone" RBD_LUKS_CONF="$WORK/os.conf"
rc=0
pre qemu-img info --object "secret,id=s0,file=$WORK/pass" \
  --image-opts "driver=rbd,pool=rbd,image=$TAG-enc,conf=$CEPH_CONF,encrypt.format=luks2,encrypt.key-secret=s0" \
  >"$WORK/out" 2>"$WORK/err" || rc=$?
[ "$rc" -ne 0 ] && grep -q "must not stack" "$WORK/err" || fail "librbd's encryption on top: rc=$rc $(cat "$WORK/err")"
pass "wrong key, missing key reference, unreachable Barbican and librbd's encryption on top: a failed open and one line"
