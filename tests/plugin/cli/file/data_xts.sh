#!/usr/bin/env bash
# Data written by rbd-luks decrypts, with the volume key, to the same plaintext under an independent
# AES-XTS implementation (Python's `cryptography`), for several sector sizes; export gives it back;
# unaligned writes and reads through the CLI match a model.
source "$TEST_LIB"

P1=$(passfile p1 "data test")
IMG=$WORK/img
PLAIN=$WORK/plain
head -c $((3 * 1024 * 1024 + 4096 * 3)) /dev/urandom >"$PLAIN"

for variant in "luks2 4096" "luks2 512" "luks2 1024" "luks1 512"; do
  read -r type sector <<<"$variant"
  fast=("${FAST_LUKS2[@]}"); [ "$type" = luks1 ] && fast=("${FAST_PBKDF2[@]}")
  rm -f "$IMG"
  args=(--type "$type" --passphrase-file "$P1" "${fast[@]}" --size 8M)
  [ "$type" = luks2 ] && args+=(--sector-size "$sector")
  expect_exit 0 "$RBD_LUKS" create "file:$IMG" "${args[@]}"
  expect_exit 0 "$RBD_LUKS" import "$PLAIN" "file:$IMG" --offset 65536 --passphrase-file "$P1"
  vk=$(vk_ours "$IMG" "$P1")
  offset=$("$RBD_LUKS" dump "file:$IMG" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
  $PY - "$IMG" "$PLAIN" "$vk" "$offset" "$sector" <<'PYEOF'
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
img, plain_path, vk, data_offset, sector = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
plain = open(plain_path, "rb").read()
start = 65536  # plaintext offset the import wrote to
with open(img, "rb") as f:
    f.seek(data_offset + start)
    ct = f.read(len(plain))
assert ct != plain[: len(ct)], "data is not encrypted"
out = bytearray()
for pos in range(0, len(ct), sector):
    tweak = ((start + pos) // 512).to_bytes(16, "little")
    d = Cipher(algorithms.AES(vk), modes.XTS(tweak)).decryptor()
    out += d.update(ct[pos : pos + sector]) + d.finalize()
assert bytes(out) == plain, "independent XTS decryption differs from the plaintext"
PYEOF
  expect_exit 0 "$RBD_LUKS" export "file:$IMG" "$WORK/exported" --passphrase-file "$P1"
  [ "$(stat -c %s "$WORK/exported")" -eq $((8 * 1024 * 1024)) ] || fail "$variant: export size is not the plaintext size"
  cmp -s <(tail -c +65537 "$WORK/exported" | head -c "$(stat -c %s "$PLAIN")") "$PLAIN" || fail "$variant: export differs"
  cmp -s <(head -c 65536 "$WORK/exported") <(head -c 65536 /dev/zero) || fail "$variant: never-written range is not zeros"
  pass "$variant: rbd-luks data decrypts with Python cryptography; export matches"
done

# Unaligned reads and writes through the CLI against a model file.
rm -f "$IMG"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 1M --passphrase-file "$P1" "${FAST_LUKS2[@]}"
head -c $((1024 * 1024)) /dev/zero >"$WORK/model"
for spec in "1 10" "4095 2" "4096 4096" "100 9000" "1048000 576" "0 1"; do
  read -r off len <<<"$spec"
  head -c "$len" /dev/urandom >"$WORK/piece"
  expect_exit 0 "$RBD_LUKS" write "file:$IMG" --offset "$off" --passphrase-file "$P1" <"$WORK/piece"
  dd if="$WORK/piece" of="$WORK/model" bs=1 seek="$off" conv=notrunc status=none
  "$RBD_LUKS" read "file:$IMG" --offset "$off" --length "$len" --passphrase-file "$P1" >"$WORK/back"
  cmp -s "$WORK/back" "$WORK/piece" || fail "read back of $len bytes at $off differs"
done
"$RBD_LUKS" export "file:$IMG" "$WORK/all" --passphrase-file "$P1"
cmp -s "$WORK/all" "$WORK/model" || fail "unaligned writes: image differs from the model"
expect_exit 2 "$RBD_LUKS" read "file:$IMG" --offset 1048570 --length 10 --passphrase-file "$P1"
expect_exit 2 "$RBD_LUKS" write "file:$IMG" --offset 1048570 --length 10 --passphrase-file "$P1" </dev/null
pass "unaligned CLI reads and writes match the model; out-of-range I/O is a usage error"
