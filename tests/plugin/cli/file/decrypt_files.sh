#!/usr/bin/env bash
# `rbd-luks decrypt` on image files that cryptsetup 2.6 made: a LUKS2 volume (argon2id keyslot) that
# `cryptsetup reencrypt --encrypt` made of a plaintext file, and a LUKS1 volume (512-byte sectors)
# whose data Python's `cryptography` checks first, each become the plaintext byte for byte, the file
# as long as the data and sparse where the data is zeros. cryptsetup 2.6 decrypts only with a
# detached header (checked). A run killed at a flush (strace kills it there) leaves a file that
# cryptsetup and rbd-luks refuse to open as a volume, and the same command finishes it. Refusals
# change nothing.
source "$TEST_LIB"

XTS="$PY $HERE/../../../lib/xts_image.py"
P1=$(passfile p1 "decrypt passphrase")
P2=$(passfile p2 "wrong passphrase")
chmod 600 "$P1"  # it serves as a key file too
MiB=$((1 << 20))
{
  head -c $((24 * MiB)) /dev/urandom
  head -c $((4 * MiB)) /dev/zero
  head -c $((12 * MiB)) /dev/urandom
} >"$WORK/plain"
IMG=$WORK/img

# A LUKS2 volume of the plaintext, made by cryptsetup in place: data at 16 MiB, 56 MiB of it (the
# room --reduce-device-size took stays in the data, and reads as noise). What the decryption must
# give is the whole data segment, as Python's `cryptography` decrypts it with cryptsetup's key.
luks2_volume() {
  cp "$WORK/plain" "$IMG"
  truncate -s $((72 * MiB)) "$IMG"
  cryptsetup reencrypt -q --encrypt --type luks2 --reduce-device-size 32M "${FAST_LUKS2[@]}" --key-file "$P1" \
    --sector-size 4096 "$IMG"
  $XTS plaintext "$IMG" "$(vk_cryptsetup "$IMG" "$P1")" $((16 * MiB)) 4096 "$WORK/expected"
  cmp -s <(head -c $((40 * MiB)) "$WORK/expected") "$WORK/plain" || fail "cryptsetup's volume does not hold the plaintext"
}

# is_plaintext WHAT: the file is the expected plaintext, byte for byte, and no volume.
is_plaintext() {
  cmp -s "$IMG" "$WORK/expected" || fail "$1: the file is not the plaintext ($(stat -c %s "$IMG") bytes)"
  cryptsetup isLuks "$IMG" && fail "$1: cryptsetup still finds a LUKS header"
  [ ! -s "$IMG.rbd-luks-meta" ] || ! grep -q rbd-luks.decrypt "$IMG.rbd-luks-meta" || fail "$1: the marker is left"
  return 0
}

luks2_volume
expect_exit 1 cryptsetup reencrypt -q --decrypt --key-file "$P1" "$IMG"
grep -q -- "--header" "$WORK/err" || fail "cryptsetup's refusal changed: $(cat "$WORK/err")"
cp "$IMG" "$WORK/before"
expect_exit 3 "$RBD_LUKS" decrypt "file:$IMG" --passphrase-file "$P2"
expect_exit 2 "$RBD_LUKS" decrypt "file:$IMG" --passphrase-file "$P1" --resume
err_has "no decryption to resume"
cmp -s "$IMG" "$WORK/before" || fail "a refused decrypt changed the file"
expect_exit 0 "$RBD_LUKS" decrypt "file:$IMG" --passphrase-file - <"$P1"
is_plaintext "rbd-luks decrypt of cryptsetup's LUKS2"
[ $(($(stat -c %b "$IMG") * 512)) -le $((53 * MiB)) ] || fail "the zeros of the plaintext take space: $(du -h "$IMG")"
expect_exit 4 "$RBD_LUKS" decrypt "file:$IMG" --passphrase-file "$P1"
err_has "no LUKS header"
cmp -s "$IMG" "$WORK/expected" || fail "a refused decrypt changed the plain file"
pass "cryptsetup's LUKS2 volume (argon2id) decrypted in place to its plaintext (passphrase on standard input), sparse; cryptsetup 2.6 wants --header for that; refusals change nothing"

truncate -s $((42 * MiB)) "$WORK/luks1"
IMG=$WORK/luks1
cryptsetup luksFormat -q --type luks1 --pbkdf-force-iterations 1000 --key-file "$P1" "$IMG"
expect_exit 0 "$RBD_LUKS" write "file:$IMG" --offset 0 --passphrase-file "$P1" <"$WORK/plain"
$XTS plaintext "$IMG" "$(vk_cryptsetup "$IMG" "$P1")" $((2 * MiB)) 512 "$WORK/back"
cmp -s "$WORK/back" "$WORK/plain" || fail "the LUKS1 volume does not hold the plaintext"
cp "$WORK/plain" "$WORK/expected"
expect_exit 0 "$RBD_LUKS" decrypt "file:$IMG" --passphrase-file "$P1"
is_plaintext "rbd-luks decrypt of cryptsetup's LUKS1"
pass "cryptsetup's LUKS1 volume (512-byte sectors) decrypted in place to its plaintext"

# Killed at its n-th flush (the marker, the copy of the header, the erasure of the first, the steps,
# the end), with the key from the key reference in the image metadata.
IMG=$WORK/img
seen_refusal=0
for n in 2 3 4 6 9 12 16; do
  luks2_volume
  expect_exit 0 "$RBD_LUKS" key-ref set "file:$IMG" "file:$P1"
  rc=0
  strace -f -o /dev/null -e inject=fdatasync,fsync:signal=SIGKILL:when=$n "$RBD_LUKS" decrypt "file:$IMG" \
    --hotzone-size 4M >/dev/null 2>&1 || rc=$?
  [ "$rc" = 137 ] || fail "rbd-luks decrypt was not killed at flush $n (exit $rc)"
  if ! cryptsetup isLuks "$IMG"; then
    seen_refusal=1
    expect_exit 1 "$RBD_LUKS" export "file:$IMG" "$WORK/out.img"
    err_has "a decryption in place has not finished"
    expect_exit 1 "$RBD_LUKS" dump "file:$IMG"
    err_has "bytes decrypted"
  fi
  # Other rewrites are refused, and keep the key reference.
  expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG"
  err_has "a decryption in place has not finished"
  expect_exit 2 "$RBD_LUKS" encrypt "file:$IMG" --passphrase-file "$P1"
  grep -q "rbd-luks.key-ref" "$IMG.rbd-luks-meta" || fail "a refused encrypt dropped the key reference"
  expect_exit 0 "$RBD_LUKS" decrypt "file:$IMG"
  err_has "resumed the decryption"
  is_plaintext "killed at flush $n, then finished"
  grep -q "rbd-luks.key-ref" "$IMG.rbd-luks-meta" && fail "the key reference is left on the plain image"
done
[ "$seen_refusal" = 1 ] || fail "no kill came after the header was erased"
pass "a decrypt killed at 7 flushes: cryptsetup and rbd-luks refuse the file meanwhile, reencrypt and encrypt too (the key reference stays), a rerun finishes it"
