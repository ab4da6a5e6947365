#!/usr/bin/env bash
# Zeros and file images. A file image's holes decrypt into noise in cryptsetup, so import writes every
# byte of the source into a file image unless --sparse-size asks for holes; an independent AES-XTS
# (Python's `cryptography`) must then read the source back from the whole data area. Export writes
# a sparse file whatever the image, and to stdout every byte.
source "$TEST_LIB"

P1=$(passfile p1 "thin files")
IMG=$WORK/img
MiB=$((1024 * 1024))
# 16 MiB: 1 MiB of data, an all-zero 1 MiB, 1 MiB of data, then a 13 MiB hole.
$PY - "$WORK/source" <<'PYEOF'
import os, sys
with open(sys.argv[1], "wb") as f:
    f.write(os.urandom(1 << 20) + bytes(1 << 20) + os.urandom(1 << 20))
    f.truncate(16 << 20)
PYEOF
rm -f "$IMG"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 16M --passphrase-file "$P1" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/source" "file:$IMG" --passphrase-file "$P1"
vk=$(vk_ours "$IMG" "$P1")
offset=$("$RBD_LUKS" dump "file:$IMG" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
$PY - "$IMG" "$WORK/source" "$vk" "$offset" <<'PYEOF'
import sys
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
img, source, vk, data_offset = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3]), int(sys.argv[4])
want = open(source, "rb").read()
with open(img, "rb") as f:
    f.seek(data_offset)
    ct = f.read(len(want))
for pos in range(0, len(ct), 4096):
    d = Cipher(algorithms.AES(vk), modes.XTS((pos // 512).to_bytes(16, "little"))).decryptor()
    if d.update(ct[pos:pos + 4096]) + d.finalize() != want[pos:pos + 4096]:
        sys.exit(f"sector at plaintext {pos} does not decrypt to the source")
PYEOF
pass "import into a file image writes every byte: an independent XTS reads the source from the data area"

expect_exit 0 "$RBD_LUKS" export "file:$IMG" "$WORK/exported" --passphrase-file "$P1"
cmp -s "$WORK/exported" "$WORK/source" || fail "export differs from the source"
allocated=$(($(stat -c %b "$WORK/exported") * 512))
[ "$allocated" -le $((2 * MiB + 64 * 1024)) ] || fail "exported file takes $allocated bytes for 2 MiB of data"
"$RBD_LUKS" export "file:$IMG" - --passphrase-file "$P1" | cmp -s - "$WORK/source" || fail "export to stdout differs"
pass "export writes a sparse file ($allocated bytes for 2 MiB of data), and every byte to stdout"

rm -f "$IMG"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 16M --passphrase-file "$P1" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/source" "file:$IMG" --sparse-size 4096 --passphrase-file "$P1"
expect_exit 0 "$RBD_LUKS" export "file:$IMG" "$WORK/exported" --passphrase-file "$P1"
cmp -s "$WORK/exported" "$WORK/source" || fail "--sparse-size 4096: export differs from the source"
expect_exit 0 "$RBD_LUKS" du "file:$IMG" --json
data_used=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["data_used"])' "$WORK/out")
[ "$data_used" -le $((2 * MiB + 64 * 1024)) ] || fail "--sparse-size 4096: the image holds $data_used bytes of data"
pass "--sparse-size 4096 leaves the zeros of the source as holes of the file image ($data_used bytes of data)"
