#!/usr/bin/env bash
# Data interop with the peers that write encrypted RBD images, through the rbd-luks command:
# librbd's native encryption (`rbd encryption format` luks2/luks1, data written with
# rbd_encryption_load via python3-rbd) and qemu-img/qemu-io's LUKS driver on rbd (what Cinder uses).
# Unaligned offsets, both ends of the image, snapshots; and the reverse direction for LUKS1.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli
# shellcheck source=../../../lib/qemu.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/qemu.bash"

PY=/usr/bin/python3
TAG=nat$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-native.XXXXXX")
cleanup() {
  remove_images "rbd/$TAG-l2" "rbd/$TAG-l1" "rbd/$TAG-ours1" "rbd/$TAG-qemu"
  rm -rf "$WORK"
}
trap cleanup EXIT

printf '%s' "native passphrase" >"$WORK/pass"
MiB=$((1024 * 1024))

# native_write IMAGE FORMAT SPECS...: loads native encryption and writes random bytes at each
# "offset:length" (negative offset = from the end); saves what it wrote as WORK/IMAGE.OFFSET files.
native_write() {
  $PY - "$WORK" "$@" <<'PYEOF'
import os, sys, rados, rbd
work, name, fmt, *specs = sys.argv[1:]
fmts = {"luks1": rbd.RBD_ENCRYPTION_FORMAT_LUKS1, "luks2": rbd.RBD_ENCRYPTION_FORMAT_LUKS2}
with rados.Rados(conffile="") as cluster, cluster.open_ioctx("rbd") as ioctx, rbd.Image(ioctx, name) as img:
    img.encryption_load(fmts[fmt], open(os.path.join(work, "pass"), "rb").read())
    size = img.size()
    for spec in specs:
        off, length = (int(x) for x in spec.split(":"))
        if off < 0:
            off = size + off
        data = os.urandom(length)
        img.write(data, off)
        open(os.path.join(work, f"{name}.{off}"), "wb").write(data)
        print(off, length)
PYEOF
}

# check_written IMAGE < "offset length" lines: rbd-luks reads each range back identically.
check_written() {
  local image=$1 off len
  while read -r off len; do
    "$RBD_LUKS" read "rbd:rbd/$image" --offset "$off" --length "$len" --passphrase-file "$WORK/pass" >"$WORK/back"
    cmp -s "$WORK/back" "$WORK/$image.$off" || fail "$image: $len bytes at $off differ from what native librbd wrote"
  done
}

# --- librbd native format + native writes -> rbd-luks reads ----------------------------------
for fmt in luks2 luks1; do
  image=$TAG-${fmt/luks/l}
  rbdc create --size 64M "rbd/$image"
  rbdc encryption format "rbd/$image" "$fmt" "$WORK/pass"
  size=$("$RBD_LUKS" dump "rbd:rbd/$image" --json | $PY -c 'import json,sys; d=json.load(sys.stdin); print(d["data_offset"])')
  native_write "$image" "$fmt" 0:100 4095:3 100000:77777 $((4 * MiB - 100)):300 -5000:904 -4096:4095 -1:1 >"$WORK/ranges"
  check_written "$image" <"$WORK/ranges"
  # The plaintext size rbd-luks reports is what native librbd reports.
  ours=$("$RBD_LUKS" export "rbd:rbd/$image" - --passphrase-file "$WORK/pass" | wc -c)
  native=$($PY -c "
import rados, rbd
with rados.Rados(conffile='') as c, c.open_ioctx('rbd') as io, rbd.Image(io, '$image') as i:
    i.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_${fmt^^}, open('$WORK/pass','rb').read()); print(i.size())")
  [ "$ours" -eq "$native" ] || fail "$fmt: plaintext size $ours, native librbd says $native (data offset $size)"
  pass "librbd native $fmt: native writes (unaligned, both ends) read back through rbd-luks"

  # Snapshot: native overwrite after a snapshot; rbd-luks at @snap shows the old bytes.
  cp "$WORK/$image.100000" "$WORK/old"
  rbdc snap create "rbd/$image@s1"
  native_write "$image" "$fmt" 100000:77777 >/dev/null
  "$RBD_LUKS" read "rbd:rbd/$image@s1" --offset 100000 --length 77777 --passphrase-file "$WORK/pass" >"$WORK/back"
  cmp -s "$WORK/back" "$WORK/old" || fail "$fmt: snapshot does not show the data from before the snapshot"
  check_written "$image" <<<"100000 77777"
  pass "librbd native $fmt: snapshot view through rbd-luks"
done

# --- rbd-luks LUKS1 format + writes -> librbd native reads -----------------------------------
image=$TAG-ours1
"$RBD_LUKS" create "rbd:rbd/$image" --type luks1 --size 32M --passphrase-file "$WORK/pass" "${FAST_PBKDF2[@]}" -q
head -c 5000 /dev/urandom >"$WORK/a"; head -c 3 /dev/urandom >"$WORK/b"
"$RBD_LUKS" write "rbd:rbd/$image" --offset 777 --passphrase-file "$WORK/pass" <"$WORK/a"
"$RBD_LUKS" write "rbd:rbd/$image" --offset $((32 * MiB - 3)) --passphrase-file "$WORK/pass" <"$WORK/b"
$PY - "$image" "$WORK" <<'PYEOF'
import sys, rados, rbd
name, work = sys.argv[1:]
with rados.Rados(conffile="") as c, c.open_ioctx("rbd") as io, rbd.Image(io, name) as img:
    img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS1, open(f"{work}/pass", "rb").read())
    assert img.size() == 32 << 20, img.size()
    assert img.read(777, 5000) == open(f"{work}/a", "rb").read(), "native reads different data at 777"
    assert img.read((32 << 20) - 3, 3) == open(f"{work}/b", "rb").read(), "native reads different data at the end"
PYEOF
# Never-written sectors: rbd-luks reads all-zero ciphertext as zeros. (Native librbd does the same
# only where the object store reports a hole; inside an object that has data, memstore reports
# none, so native decrypts such sectors to noise. See docs/design.md.)
"$RBD_LUKS" read "rbd:rbd/$image" --offset 0 --length 512 --passphrase-file "$WORK/pass" | cmp -s - <(head -c 512 /dev/zero) ||
  fail "never-written sector does not read as zeros through rbd-luks"
pass "rbd-luks LUKS1 on RBD reads back through librbd native encryption"

# --- qemu-img / qemu-io LUKS on rbd (the way Cinder creates encrypted volumes) ----------------
image=$TAG-qemu
secret=(--object "secret,id=sec0,file=$WORK/pass")
qemu_img_create_rbd "rbd/$image" 16M -q -f luks "${secret[@]}" -o key-secret=sec0,iter-time=10
qemu-io "${secret[@]}" --image-opts \
  "driver=luks,key-secret=sec0,file.driver=rbd,file.pool=rbd,file.image=$image,file.conf=$CEPH_CONF" \
  -c "write -P 0xa5 1000 5000" -c "write -P 0x3c 16769000 1000" >/dev/null
"$RBD_LUKS" dump "rbd:rbd/$image" --json | $PY -c 'import json,sys; d=json.load(sys.stdin); assert d["version"]==1 and d["data_offset"]==4040*512, d'
"$RBD_LUKS" read "rbd:rbd/$image" --offset 1000 --length 5000 --passphrase-file "$WORK/pass" >"$WORK/back"
cmp -s "$WORK/back" <(head -c 5000 /dev/zero | tr '\0' '\245') || fail "qemu-written bytes at 1000 differ"
"$RBD_LUKS" read "rbd:rbd/$image" --offset 16769000 --length 1000 --passphrase-file "$WORK/pass" >"$WORK/back"
cmp -s "$WORK/back" <(head -c 1000 /dev/zero | tr '\0' '\074') || fail "qemu-written bytes at the end differ"
# And back: rbd-luks writes, qemu-io reads.
head -c 4096 /dev/zero | tr '\0' '\132' | "$RBD_LUKS" write "rbd:rbd/$image" --offset 8192 --passphrase-file "$WORK/pass"
qemu-io "${secret[@]}" --image-opts \
  "driver=luks,key-secret=sec0,file.driver=rbd,file.pool=rbd,file.image=$image,file.conf=$CEPH_CONF" \
  -c "read -P 0x5a 8192 4096" | grep -q "read 4096/4096" || fail "qemu-io does not read what rbd-luks wrote"
pass "qemu-img/qemu-io LUKS1 on rbd: both directions"
