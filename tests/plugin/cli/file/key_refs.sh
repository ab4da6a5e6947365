#!/usr/bin/env bash
# Key references on file: targets: --key-ref file:PATH, --new-key file:PATH, the reference recorded
# in the image metadata (open with no key option), raw and hex passphrase encodings checked against
# cryptsetup, and refusal with exit 5 when the key cannot be fetched.
source "$TEST_LIB"

IMG=$WORK/img
KEY=$WORK/key.bin
head -c 64 /dev/urandom >"$KEY"
chmod 600 "$KEY"

# --key-ref with hex encoding: the passphrase is the lowercase hex of the key (OpenStack's convention).
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --key-ref "file:$KEY" --passphrase-encoding hex "${FAST_LUKS2[@]}"
xxd -p -c 256 "$KEY" | tr -d '\n' >"$WORK/hexpass"
cryptsetup open --test-passphrase --batch-mode --key-file "$WORK/hexpass" "$IMG" || fail "hex passphrase not accepted by cryptsetup"
# No key option: the metadata names the key and its encoding.
expect_exit 0 "$RBD_LUKS" check "file:$IMG"
echo hello | "$RBD_LUKS" write "file:$IMG" --offset 100
[ "$("$RBD_LUKS" read "file:$IMG" --offset 100 --length 6)" = hello ] || fail "metadata-keyed read/write"
# The wrong encoding opens nothing.
expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-encoding raw
pass "--key-ref file: with hex encoding; reopened from metadata alone"

# --new-key file:PATH creates a 0600 key file and records it; raw encoding is the default.
rm -f "$IMG"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --new-key "file:$WORK/new.key" "${FAST_LUKS2[@]}"
[ "$(stat -c %a "$WORK/new.key")" = 600 ] || fail "new key file is not 0600"
[ "$(stat -c %s "$WORK/new.key")" = 64 ] || fail "new key is not 64 bytes"
cryptsetup open --test-passphrase --batch-mode --key-file "$WORK/new.key" "$IMG" || fail "raw key not accepted by cryptsetup"
expect_exit 0 "$RBD_LUKS" check "file:$IMG"
# It never overwrites an existing key.
expect_exit 5 "$RBD_LUKS" create "file:$WORK/img2" --size 4M --new-key "file:$WORK/new.key" "${FAST_LUKS2[@]}"
[ ! -e "$WORK/img2" ] || fail "a failed --new-key left an image behind"
pass "--new-key file: creates, records and never overwrites"

# The key is gone: exit 5, one line, naming the reference; nothing written.
mv "$WORK/new.key" "$WORK/moved.key"
cp "$IMG" "$WORK/before"
expect_exit 5 "$RBD_LUKS" check "file:$IMG"
grep -q "file:$WORK/new.key" "$WORK/err" || fail "error does not name the key reference: $(cat "$WORK/err")"
expect_exit 5 "$RBD_LUKS" write "file:$IMG" --offset 0 </dev/null
cmp -s "$IMG" "$WORK/before" || fail "image changed although the key was unavailable"
pass "missing key: exit 5, names the reference, image unchanged"

# Conflicting and malformed key options are usage errors.
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --key-ref nonsense
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --key-ref "vault:x"
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$KEY" --passphrase-file "$KEY"
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$KEY" --passphrase-encoding base64
pass "malformed key options: exit 2"

# The key never appears in what we print.
"$RBD_LUKS" dump "file:$IMG" --json >"$WORK/dump.json" 2>&1
"$RBD_LUKS" check "file:$WORK/before" --key-ref "file:$WORK/moved.key" -q 2>>"$WORK/dump.json" || true
if grep -qF "$(xxd -p -c 256 "$WORK/moved.key" | cut -c1-16)" "$WORK/dump.json"; then fail "key material in output"; fi
pass "no key material in output"

# The pre-Newton "mangled" hex form (hex(b) without its leading zero), as os-brick's fallback tries.
rm -f "$IMG"
printf '\x01\x0a\xab\x00\x10' >"$WORK/short.key"
chmod 600 "$WORK/short.key"
printf '1aab010' >"$WORK/mangled.pass"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --passphrase-file "$WORK/mangled.pass" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$WORK/short.key" --passphrase-encoding hex-mangled
expect_exit 3 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$WORK/short.key" --passphrase-encoding hex
pass "hex-mangled encoding matches the pre-Newton passphrase form"

# A file: reference may come from image metadata, which whoever can write the image controls. The
# key file must be a regular file, not a symlink, of the caller or root, private to its owner; the
# refusal is exit 5 with one line naming the file and the reason. The metadata here is written
# directly into the file image's sidecar, as a hostile writer would.
rm -f "$IMG" "$IMG.rbd-luks-meta"
head -c 64 /dev/urandom >"$WORK/good.key"
chmod 600 "$WORK/good.key"
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --key-ref "file:$WORK/good.key" "${FAST_LUKS2[@]}"
refers_to() { printf '{"rbd-luks.key-ref": "file:%s", "rbd-luks.passphrase-encoding": "raw"}\n' "$1" >"$IMG.rbd-luks-meta"; }
# refused PATH REASON: a check through the metadata fails with exit 5, naming PATH and REASON, at once.
refused() {
  refers_to "$1"
  expect_exit 5 timeout 10 "$RBD_LUKS" check "file:$IMG"
  err_has "key file:$1: $2"
}
mkfifo "$WORK/fifo"
refused "$WORK/fifo" "is a FIFO, not a regular file"
refused /dev/zero "is a character device, not a regular file"
refused "$WORK" "is a directory, not a regular file"
ln -s "$WORK/good.key" "$WORK/link.key"
refused "$WORK/link.key" "is a symbolic link (not followed)"
cp "$WORK/good.key" "$WORK/shared.key"
for mode in 644 640 604 620 602; do
  chmod "$mode" "$WORK/shared.key"
  refused "$WORK/shared.key" "has mode 0$mode: group or others may access it"
done
if [ "$(id -u)" = 0 ]; then
  cp "$WORK/good.key" "$WORK/theirs.key"
  chown 65534 "$WORK/theirs.key"
  refused "$WORK/theirs.key" "belongs to uid 65534, neither to uid 0 nor to root"
fi
refers_to "$WORK/good.key"
expect_exit 0 "$RBD_LUKS" check "file:$IMG"
chmod 400 "$WORK/good.key"
expect_exit 0 "$RBD_LUKS" check "file:$IMG"
# The same rules hold for a reference given on the command line.
expect_exit 5 timeout 10 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$WORK/fifo"
pass "file: keys: FIFO, device, directory, symlink, group/other access and foreign owner refused with exit 5"

# --accept-key-refs limits what the metadata may name: keyrings, and key files directly in a directory.
mkdir -p "$WORK/keys"
cp -p "$WORK/good.key" "$WORK/keys/vol.key"
refers_to "$WORK/keys/vol.key"
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --accept-key-refs "config-key, file:$WORK/keys/"
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --accept-key-refs file
expect_exit 5 "$RBD_LUKS" check "file:$IMG" --accept-key-refs config-key,barbican
err_has "key reference file:$WORK/keys/vol.key in the metadata of file:$IMG is not accepted (accepted: config-key,barbican)"
for path in "$WORK/good.key" "$WORK/keys/../good.key" "$WORK/keys/./vol.key" "$WORK/keys/sub/vol.key"; do
  refers_to "$path"
  expect_exit 5 "$RBD_LUKS" check "file:$IMG" --accept-key-refs "file:$WORK/keys"
  err_has "is not accepted"
done
# It applies to the metadata only: the operator's own --key-ref is taken as given.
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --key-ref "file:$WORK/good.key" --accept-key-refs config-key
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --accept-key-refs vault
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --accept-key-refs "file:relative/dir"
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --accept-key-refs "config-key,,barbican"
pass "--accept-key-refs: refuses references outside the list with exit 5, malformed lists with exit 2"
