#!/usr/bin/env bash
# `rbd-luks reencrypt` on RBD images: a thin image that librbd's native encryption wrote (and, for
# the last two, formatted) is reencrypted reading and writing only its allocated objects (the command's count, and
# `rbd du` before and after); librbd's native LUKS2 (python3-rbd) then reads the same plaintext with
# the same passphrase, and no sector keeps its old ciphertext (`rbd export` of the raw bytes, compared
# by Python). While a run is interrupted, librbd native and rbd-luks refuse to open the image; the
# same command finishes it. An image another client has open is refused. A snapshot keeps the old
# key and its data. Then `decrypt` turns two of the volumes back into plain images (thin, and
# stopped by SIGINT half way). A clone is reencrypted and decrypted while its parent keeps its key.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli

PY=/usr/bin/python3
TAG=reenc$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-reencrypt.XXXXXX")
SERVER=
cleanup() {
  [ -z "$SERVER" ] || kill "$SERVER" 2>/dev/null || true
  remove_images "rbd/$TAG-thin" "rbd/$TAG-stop" "rbd/$TAG-plain" "rbd/$TAG-ref" "rbd/$TAG-clone"
  rbdc snap unprotect "rbd/$TAG-parent@base" 2>/dev/null || true
  rbdc snap purge "rbd/$TAG-parent" >/dev/null 2>&1 || true
  remove_images "rbd/$TAG-parent"
  [ ! -f "${BLUESTORE_CEPH_CONF:-/nonexistent}" ] || CEPH_CONF=$BLUESTORE_CEPH_CONF remove_images "rbd/$TAG-holes" "rbd/$TAG-plain-holes"
  rm -rf "$WORK"
}
trap cleanup EXIT

printf '%s' "reencrypt passphrase" >"$WORK/pass"
K=(--passphrase-file "$WORK/pass")
MiB=$((1024 * 1024))
DATA=$((16 * MiB))
XTS="$PY $(dirname "${BASH_SOURCE[0]}")/../../../lib/xts_image.py"
used() { rbdc du "$1" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["used_size"])'; }
vk() {
  rm -f "$WORK/vk"
  "$RBD_LUKS" -q dump "rbd:$1" --dump-volume-key --volume-key-file "$WORK/vk" "${K[@]}"
  xxd -p -c 256 "$WORK/vk" | tr -d '\n'
}

# native_write IMAGE OFFSET:LENGTH...: random bytes through librbd's native LUKS2, also written
# into the plaintext model WORK/IMAGE.model (sparse, the image's plaintext size).
native_write() {
  $PY - "$WORK" "$@" <<'PYEOF'
import os, sys, rados, rbd
work, name, *specs = sys.argv[1:]
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name) as img:
    img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open(os.path.join(work, "pass"), "rb").read())
    with open(os.path.join(work, name + ".model"), "r+b" if os.path.exists(os.path.join(work, name + ".model")) else "wb") as model:
        model.truncate(img.size())
        for spec in specs:
            off, length = (int(x) for x in spec.split(":"))
            data = os.urandom(length)
            img.write(data, off)
            model.seek(off)
            model.write(data)
PYEOF
}
# two_numbers REGEX: the numbers that the two \([0-9]*\) groups of REGEX match in the last stderr.
two_numbers() { sed -n "s/.*$1.*/\1 \2/p" "$WORK/err"; }
native_opens() {
  $PY - "$1" <<PYEOF
import sys, rados, rbd
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, sys.argv[1]) as img:
    try:
        img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open("$WORK/pass", "rb").read())
    except rbd.Error as e:
        sys.exit(1)
PYEOF
}

# A 512 MiB image with 16 MiB of data in three places, written by librbd native: four whole 4 MiB
# objects (on this store librbd native reads the unwritten part of a written object as noise; a
# partly written object is the BlueStore case at the end).
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-thin" --size $((512 * MiB - DATA)) "${K[@]}" "${FAST_LUKS2[@]}"
native_write "$TAG-thin" 0:$((4 * MiB)) $((300 * MiB)):$((4 * MiB)) $((488 * MiB)):$((8 * MiB))
rbdc snap create "rbd/$TAG-thin@before"
cp "$WORK/$TAG-thin.model" "$WORK/snap.model"
old_vk=$(vk "rbd/$TAG-thin")
rbdc export "rbd/$TAG-thin" "$WORK/raw.before" >/dev/null 2>&1
used_before=$(used "rbd/$TAG-thin")

expect_exit 0 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-thin" "${K[@]}"
read -r written total < <(two_numbers ': \([0-9]*\) of \([0-9]*\) data bytes rewritten')
[ "$total" = $((512 * MiB - DATA)) ] || fail "the command counts $total data bytes, not 512 MiB - 16 MiB"
[ "$written" = $((16 * MiB)) ] || fail "$written bytes rewritten for 16 MiB of data in four objects"
[ "$(used "rbd/$TAG-thin")" -le "$used_before" ] || fail "the image grew: $(used "rbd/$TAG-thin") > $used_before bytes"
[ "$(vk "rbd/$TAG-thin")" != "$old_vk" ] || fail "the volume key did not change"
native_reads "$CEPH_CONF" "$TAG-thin" "$WORK/$TAG-thin.model" "$WORK/pass"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-thin" "$WORK/exported" "${K[@]}"
cmp -s "$WORK/exported" "$WORK/$TAG-thin.model" || fail "rbd-luks export differs from what was written"
rbdc export "rbd/$TAG-thin" "$WORK/raw.after" >/dev/null 2>&1
[ "$($XTS unchanged "$WORK/raw.before" "$WORK/raw.after" "$DATA" 4096)" = 0 ] ||
  fail "sectors kept their old ciphertext"
pass "a 512 MiB thin image with 16 MiB of data: $written bytes rewritten, no growth, librbd native reads it, every sector new"

expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-thin@before" "$WORK/snap.out" "${K[@]}"
cmp -s "$WORK/snap.out" "$WORK/snap.model" || fail "the snapshot no longer reads its data"
pass "a snapshot taken before keeps the old key and reads its data with the same passphrase"

# Another client has it open: refused, whatever --force says.
"$RBD_LUKS" nbd-server "rbd:rbd/$TAG-thin" --socket "$WORK/nbd.sock" "${K[@]}" 2>"$WORK/server.err" &
SERVER=$!
for _ in $(seq 100); do [ -S "$WORK/nbd.sock" ] && break; sleep 0.1; done
expect_exit 1 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-thin" "${K[@]}" --force
err_has "is open by another client"
kill "$SERVER"
wait "$SERVER" || fail "the NBD server did not stop cleanly"
SERVER=
pass "refused while an NBD server has the image open"

# Interrupted by SIGINT: neither librbd native nor rbd-luks opens the image until the same command
# finishes. 82 MiB: the last object is half of one (RBD objects are 4 MiB), also for the decryption
# of this image below.
rbdc create --size 82M "rbd/$TAG-stop"
rbdc encryption format "rbd/$TAG-stop" luks2 "$WORK/pass" >/dev/null
native_write "$TAG-stop" 0:$((64 * MiB - 4096))
"$RBD_LUKS" reencrypt "rbd:rbd/$TAG-stop" "${K[@]}" --hotzone-size 4M --threads 1 2>"$WORK/err" &
pid=$!
for _ in $(seq 300); do
  [ "$("$RBD_LUKS" dump "rbd:rbd/$TAG-stop" --json 2>/dev/null | $PY -c 'import json,sys; r=json.load(sys.stdin)["reencryption"]; print(int(r is not None and r["progress"] > 0))' 2>/dev/null)" = 1 ] && break
  sleep 0.02
done
kill -INT "$pid"
wait "$pid" && fail "the interrupted run exited 0"
err_has "run the same command again to finish it"
native_opens "$TAG-stop" && fail "librbd native opened a half-reencrypted image"
expect_exit 1 "$RBD_LUKS" read "rbd:rbd/$TAG-stop" --offset 0 --length 4096 "${K[@]}"
err_has "a reencryption of this volume has not finished"
# RBD's checksums hash the head of each block (cryptsetup reaches the image only through a mapping).
"$RBD_LUKS" dump "rbd:rbd/$TAG-stop" | grep -q "resilience checksum (rbd-luks-sha256-head64)" ||
  fail "dump does not show the head checksum"
expect_exit 2 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-stop" "${K[@]}" --resilience-hash sha256
err_has "resuming it takes no"
expect_exit 0 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-stop" "${K[@]}"
err_has "resumed the reencryption"
native_reads "$CEPH_CONF" "$TAG-stop" "$WORK/$TAG-stop.model" "$WORK/pass"
pass "SIGINT leaves an image (82 MiB: a half object at the end) neither librbd native nor rbd-luks opens, with head checksums; the same command finishes it"

# encrypt: a thin plain image, written without encryption (whole objects, for this store), becomes
# a volume in place; librbd native reads the plaintext, and it takes the space and size that
# `create` + `import` of the same bytes take.
$PY - "$WORK" "$TAG-plain" <<'PYEOF'
import os, sys, rados, rbd
work, name = sys.argv[1:]
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as io:
    rbd.RBD().create(io, name, 64 << 20)
    with rbd.Image(io, name) as img, open(os.path.join(work, "plain.model"), "wb") as model:
        model.truncate(64 << 20)
        for off, length in ((0, 4 << 20), (24 << 20, 4 << 20), (60 << 20, 4 << 20)):
            data = os.urandom(length)
            img.write(data, off)
            model.seek(off)
            model.write(data)
PYEOF
expect_exit 0 "$RBD_LUKS" encrypt "rbd:rbd/$TAG-plain" "${K[@]}" "${FAST_LUKS2[@]}"
written=$(sed -n 's/.*: [0-9]* data bytes, \([0-9]*\) of them written.*/\1/p' "$WORK/err")
[ "$written" = $((12 * MiB)) ] || fail "encrypt wrote $written bytes for 12 MiB of data"
[ "$(rbdc info "rbd/$TAG-plain" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["size"])')" = $((80 * MiB)) ] ||
  fail "the encrypted image is not plaintext + 16 MiB"
native_reads "$CEPH_CONF" "$TAG-plain" "$WORK/plain.model" "$WORK/pass"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-plain" "$WORK/plain.out" "${K[@]}"
cmp -s "$WORK/plain.out" "$WORK/plain.model" || fail "rbd-luks export differs from the plaintext"
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-ref" --size $((64 * MiB)) "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/plain.model" "rbd:rbd/$TAG-ref" "${K[@]}"
[ "$(used "rbd/$TAG-plain")" = "$(used "rbd/$TAG-ref")" ] ||
  fail "encrypt uses $(used "rbd/$TAG-plain") bytes, create + import $(used "rbd/$TAG-ref")"
pass "a thin plain image encrypted in place ($written bytes written): librbd native reads it; size and space as create + import"

# decrypt: the thin volume (reencrypted above) becomes its plain data in place, reading and writing
# only what its allocated objects hold; plain librbd (`rbd export`) reads the plaintext, and the
# image takes no more space. The snapshot keeps its header and data.
used_before=$(used "rbd/$TAG-thin")
expect_exit 0 "$RBD_LUKS" decrypt "rbd:rbd/$TAG-thin" "${K[@]}"
read -r size written < <(two_numbers 'now a plain image of \([0-9]*\) bytes, \([0-9]*\) of them written')
[ "$size" = $((512 * MiB - DATA)) ] || fail "decrypt reports $size bytes of plaintext, not 512 MiB - 16 MiB"
[ "$written" = $((16 * MiB)) ] || fail "decrypt wrote $written bytes for 16 MiB of data"
[ "$(rbdc info "rbd/$TAG-thin" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["size"])')" = "$size" ] ||
  fail "the decrypted image is not as long as its plaintext"
rbdc export "rbd/$TAG-thin" "$WORK/plain.thin" >/dev/null 2>&1
cmp -s "$WORK/plain.thin" "$WORK/$TAG-thin.model" || fail "rbd export of the decrypted image differs from the plaintext"
[ "$(used "rbd/$TAG-thin")" -le "$used_before" ] || fail "the image grew: $(used "rbd/$TAG-thin") > $used_before bytes"
rbdc image-meta list "rbd/$TAG-thin" | grep -qE "rbd-luks\.(decrypt|key-ref|passphrase-encoding|preload)" && fail "rbd-luks metadata is left: $(rbdc image-meta list "rbd/$TAG-thin")"
native_opens "$TAG-thin" && fail "librbd native still finds a volume"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-thin@before" "$WORK/snap.out" "${K[@]}"
cmp -s "$WORK/snap.out" "$WORK/snap.model" || fail "the snapshot no longer reads its data"
pass "a 512 MiB thin volume with 16 MiB of data decrypted in place ($written bytes written): rbd export reads the plaintext, no growth; the snapshot keeps its key and data"

# Interrupted by SIGINT half way: meanwhile no client writes (librbd's exclusive lock), librbd native
# finds no volume, rbd-luks says a decryption is under way (its snapshot still reads). Then a
# rollback to that snapshot (RbdDecryptionTest resumes interrupted runs on RBD).
stop_id=$(rbdc info "rbd/$TAG-stop" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["id"])')
rbdc snap create "rbd/$TAG-stop@pre" >/dev/null 2>&1
"$RBD_LUKS" decrypt "rbd:rbd/$TAG-stop" "${K[@]}" --hotzone-size 1M --threads 1 2>"$WORK/err" &
pid=$!
# Watches the marker in the image's header object (no image open, so no watcher) and, once the
# first step is recorded, tries a write through plain librbd, which the exclusive lock the run holds
# must refuse; then stops the run.
$PY - "$stop_id" "$pid" "$TAG-stop" <<'PYEOF'
import json, os, signal, sys, time, rados, rbd
image_id, pid, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as io:
    deadline = time.time() + 60
    while time.time() < deadline:
        with rados.ReadOpCtx() as op:
            values, _ = io.get_omap_vals_by_keys(op, ("metadata_rbd-luks.decrypt",))
            io.operate_read_op(op, "rbd_header." + image_id)
            marker = dict(values).get("metadata_rbd-luks.decrypt")
        if marker and json.loads(marker)["progress"] > 0:
            with rbd.Image(io, name) as img:
                try:
                    img.write(b"x" * 4096, 40 << 20)
                    refused = False
                except rbd.ReadOnlyImage:
                    refused = True
            os.kill(pid, signal.SIGINT)
            sys.exit(0 if refused else "a plain librbd client wrote during the decryption")
        time.sleep(0.005)
sys.exit("the decryption recorded no step in 60 s")
PYEOF
wait "$pid" && fail "the interrupted decrypt exited 0"
err_has "run the same command again to finish it"
native_opens "$TAG-stop" && fail "librbd native opened a half-decrypted image"
expect_exit 1 "$RBD_LUKS" read "rbd:rbd/$TAG-stop" --offset 0 --length 4096 "${K[@]}"
err_has "a decryption in place has not finished"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-stop@pre" "$WORK/pre.out" "${K[@]}"
cmp -s "$WORK/pre.out" "$WORK/$TAG-stop.model" || fail "the snapshot taken before the decryption reads other data"
# Rolled back to the snapshot taken before the run: the data holds no record of the progress the
# marker claims, so the rerun refuses; without the marker it starts afresh and finishes.
rbdc snap rollback "rbd/$TAG-stop@pre" >/dev/null 2>&1
expect_exit 1 "$RBD_LUKS" decrypt "rbd:rbd/$TAG-stop" "${K[@]}"
err_has "holds no record of the decryption's progress"
rbdc image-meta remove "rbd/$TAG-stop" rbd-luks.decrypt
expect_exit 0 "$RBD_LUKS" decrypt "rbd:rbd/$TAG-stop" "${K[@]}"
rbdc export "rbd/$TAG-stop" "$WORK/plain.stop" >/dev/null 2>&1
cmp -s "$WORK/plain.stop" "$WORK/$TAG-stop.model" || fail "rbd export of the decryption after the rollback differs from the plaintext"
pass "decrypt holds librbd's exclusive lock (a plain librbd write fails); stopped by SIGINT, librbd native and rbd-luks refuse the image but not its snapshot; after a rollback to that snapshot the rerun refuses, and without the marker decrypt starts afresh"

# On BlueStore, librbd native reads the never-written parts of a written object as zeros (its sparse
# reads report holes); a reencryption must leave those holes unwritten, or they would read as noise.
# (The sanitizer run of deploy/run-tests.sh starts no BlueStore cluster: there this part is left out.)
if [ -n "${BLUESTORE_CEPH_CONF:-}" ] && [ -f "$BLUESTORE_CEPH_CONF" ]; then
  export CEPH_CONF=$BLUESTORE_CEPH_CONF
  rbdc create --size 64M "rbd/$TAG-holes"
  rbdc encryption format "rbd/$TAG-holes" luks2 "$WORK/pass" >/dev/null
  native_write "$TAG-holes" 12288:4096 $((5 * MiB)):8192 $((20 * MiB - 4096)):12288
  native_reads "$CEPH_CONF" "$TAG-holes" "$WORK/$TAG-holes.model" "$WORK/pass"
  expect_exit 0 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-holes" "${K[@]}"
  native_reads "$CEPH_CONF" "$TAG-holes" "$WORK/$TAG-holes.model" "$WORK/pass"
  pass "BlueStore: the holes inside partly written objects stay holes; librbd native reads zeros there after"
  expect_exit 0 "$RBD_LUKS" decrypt "rbd:rbd/$TAG-holes" "${K[@]}"
  rbdc export "rbd/$TAG-holes" "$WORK/plain.holes" >/dev/null 2>&1
  cmp -s "$WORK/plain.holes" "$WORK/$TAG-holes.model" || fail "rbd export of the decrypted image differs from the plaintext"
  pass "BlueStore: that volume decrypted in place reads back as its plaintext, zeros where nothing was written"

  rbdc create --size 40M "rbd/$TAG-plain-holes"
  $PY - "$WORK" "$TAG-plain-holes" <<'PYEOF'
import os, sys, rados, rbd
work, name = sys.argv[1:]
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name) as img:
    with open(os.path.join(work, "plain-holes.model"), "wb") as model:
        model.truncate(40 << 20)
        for off, length in ((8192, 4096), ((5 << 20) + 512, 100000), ((39 << 20), 1 << 20)):
            data = bytearray(os.urandom(length))
            data[4096:8192] = bytes(min(4096, max(0, length - 4096)))  # zeros inside written data
            img.write(bytes(data), off)
            model.seek(off)
            model.write(data)
PYEOF
  expect_exit 0 "$RBD_LUKS" encrypt "rbd:rbd/$TAG-plain-holes" "${K[@]}" "${FAST_LUKS2[@]}"
  native_reads "$CEPH_CONF" "$TAG-plain-holes" "$WORK/plain-holes.model" "$WORK/pass"
  pass "BlueStore: a plain image with partly written objects encrypted; librbd native reads zeros where nothing was"
fi

# A clone: the parent's data counts as the clone's (diff iteration includes the parent), so it is
# read through the clone and written into it under the clone's new key; the parent keeps its own.
rbdc create --size 64M "rbd/$TAG-parent"
rbdc encryption format "rbd/$TAG-parent" luks2 "$WORK/pass" >/dev/null
native_write "$TAG-parent" 0:$((8 * MiB)) $((40 * MiB)):$((4 * MiB))
rbdc snap create "rbd/$TAG-parent@base" >/dev/null 2>&1
rbdc snap protect "rbd/$TAG-parent@base"
rbdc clone "rbd/$TAG-parent@base" "rbd/$TAG-clone"
cp "$WORK/$TAG-parent.model" "$WORK/$TAG-clone.model"
native_write "$TAG-clone" $((4 * MiB)):$((2 * MiB))
old_vk=$(vk "rbd/$TAG-clone")
# 4 MiB steps: a step over the parent's data alone would be passed over if the parent did not count.
expect_exit 0 "$RBD_LUKS" reencrypt "rbd:rbd/$TAG-clone" "${K[@]}" --hotzone-size 4M
[ "$(vk "rbd/$TAG-clone")" != "$old_vk" ] || fail "the clone's volume key did not change"
[ "$(vk "rbd/$TAG-parent")" = "$old_vk" ] || fail "the parent's volume key changed"
native_reads "$CEPH_CONF" "$TAG-clone" "$WORK/$TAG-clone.model" "$WORK/pass"
native_reads "$CEPH_CONF" "$TAG-parent" "$WORK/$TAG-parent.model" "$WORK/pass"
expect_exit 0 "$RBD_LUKS" decrypt "rbd:rbd/$TAG-clone" "${K[@]}" --hotzone-size 4M
rbdc export "rbd/$TAG-clone" "$WORK/plain.clone" >/dev/null 2>&1
cmp -s "$WORK/plain.clone" "$WORK/$TAG-clone.model" || fail "rbd export of the decrypted clone differs from its plaintext"
native_reads "$CEPH_CONF" "$TAG-parent" "$WORK/$TAG-parent.model" "$WORK/pass"
pass "a clone reencrypted (librbd native reads its data and its parent's under the new key) and decrypted; the parent keeps its key and data"
