#!/usr/bin/env bash
# `rbd-luks encrypt` on image files, against cryptsetup 2.6 (`reencrypt --encrypt --reduce-device-size`)
# both ways: a plaintext file becomes a volume cryptsetup opens, whose data Python's `cryptography`
# decrypts (with the key cryptsetup dumps) to the original bytes, at the data offset, the file cut
# back to plaintext + header. Runs that die at a flush (strace kills the process there) are finished
# by the other tool: cryptsetup's by rbd-luks, rbd-luks's by cryptsetup (after `cryptsetup repair`
# when the death came inside a step), then cut back by `rbd-luks encrypt`. Refusals change nothing.
source "$TEST_LIB"

XTS="$PY $HERE/../../../lib/xts_image.py"
P1=$(passfile p1 "encrypt passphrase")
P2=$(passfile p2 "another passphrase")
MiB=$((1 << 20))
CS_FAST=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
head -c $((40 * MiB)) /dev/urandom >"$WORK/plain"
IMG=$WORK/img

# plaintext_is IMAGE BYTES WHAT: cryptsetup opens IMAGE with P1, and the first BYTES of its data,
# decrypted independently, are the plaintext.
plaintext_is() {
  cryptsetup open --test-passphrase --key-file "$P1" "$1" || fail "$3: cryptsetup does not open it"
  cryptsetup luksDump "$1" | grep -q "online-reencrypt" && fail "$3: the reencryption requirement is still there"
  $XTS plaintext "$1" "$(vk_cryptsetup "$1" "$P1")" $((16 * MiB)) 4096 "$WORK/back"
  cmp -s <(head -c "$2" "$WORK/back") "$WORK/plain" || fail "$3: the plaintext changed"
}

cp "$WORK/plain" "$IMG"
expect_exit 0 "$RBD_LUKS" encrypt "file:$IMG" --passphrase-file "$P1" "${FAST_PBKDF2[@]}"
[ "$(stat -c %s "$IMG")" = $((56 * MiB)) ] || fail "the file is $(stat -c %s "$IMG") bytes, not plaintext + 16 MiB"
plaintext_is "$IMG" $((40 * MiB)) "rbd-luks encrypt"
expect_exit 0 "$RBD_LUKS" export "file:$IMG" "$WORK/out" --passphrase-file "$P1"
cmp -s "$WORK/out" "$WORK/plain" || fail "rbd-luks export differs from the plaintext"
pass "a plaintext file encrypted in place: cryptsetup opens it, the data decrypts to the plaintext, the file is 16 MiB longer"

expect_exit 2 "$RBD_LUKS" encrypt "file:$IMG" --passphrase-file "$P1"
err_has "holds a LUKS header already"
head -c $((8 * MiB)) /dev/urandom >"$WORK/small"
cp "$WORK/small" "$WORK/small.img"
expect_exit 2 "$RBD_LUKS" encrypt "file:$WORK/small.img" --passphrase-file "$P1"
err_has "fewer than the data offset"
cmp -s "$WORK/small" "$WORK/small.img" || fail "a refused encrypt changed the file"
pass "refusals: a volume already, fewer bytes than the data offset; the file is unchanged"

# cryptsetup begins (on the file grown by 32 MiB, the room its --reduce-device-size takes), rbd-luks
# finishes: cryptsetup's layout keeps the grown size, 16 MiB of it past the plaintext.
seen_header=0
for n in 10 12 14 16; do
  cp "$WORK/plain" "$IMG"
  truncate -s $((72 * MiB)) "$IMG"
  rc=0
  # In WORK: killed, cryptsetup leaves its temporary header (LUKS2-temp-*.new) in the working directory.
  (cd "$WORK" && strace -f -o /dev/null -e inject=fdatasync,fsync:signal=SIGKILL:when=$n cryptsetup reencrypt -q \
    --encrypt --type luks2 --reduce-device-size 32M "${CS_FAST[@]}" --key-file "$P1" --sector-size 4096 "$IMG") || rc=$?
  [ "$rc" = 137 ] || fail "cryptsetup was not killed at flush $n (exit $rc)"
  cryptsetup isLuks "$IMG" || continue  # killed before its header: the test case is the next one
  seen_header=1
  expect_exit 0 "$RBD_LUKS" encrypt "file:$IMG" --passphrase-file "$P1"
  err_has "resumed the encryption"
  plaintext_is "$IMG" $((40 * MiB)) "cryptsetup killed at flush $n, rbd-luks finished"
done
[ "$seen_header" = 1 ] || fail "cryptsetup never died after writing its header"
pass "cryptsetup's interrupted encryptions finished by rbd-luks"

# rbd-luks begins, cryptsetup finishes, rbd-luks cuts the file back.
hot_step() { "$RBD_LUKS" dump "file:$1" --json | $PY -c 'import json,sys; r=json.load(sys.stdin)["reencryption"]; print(int(r is not None and r["hotzone"] is not None))'; }
seen_hot=0
for n in 4 5 6 8 10; do
  cp "$WORK/plain" "$IMG"
  rm -f "$IMG.rbd-luks-meta"
  rc=0
  strace -f -o /dev/null -e inject=fdatasync:signal=SIGKILL:when=$n "$RBD_LUKS" encrypt "file:$IMG" \
    --passphrase-file "$P1" "${FAST_PBKDF2[@]}" --threads 1 || rc=$?
  [ "$rc" = 137 ] || fail "rbd-luks was not killed at flush $n (exit $rc)"
  cryptsetup isLuks "$IMG" || fail "rbd-luks died at flush $n before its header; the cases need a header"
  if [ "$(hot_step "$IMG")" = 1 ]; then
    seen_hot=1
    cryptsetup repair -q --key-file "$P1" "$IMG" || fail "cryptsetup repair failed after flush $n"
  fi
  cryptsetup reencrypt -q --force-offline-reencrypt --resume-only --key-file "$P1" "$IMG" ||
    fail "cryptsetup cannot finish rbd-luks killed at flush $n"
  plaintext_is "$IMG" $((40 * MiB)) "rbd-luks killed at flush $n, cryptsetup finished"
  expect_exit 0 "$RBD_LUKS" encrypt "file:$IMG" --passphrase-file "$P1"
  [ "$(stat -c %s "$IMG")" = $((56 * MiB)) ] || fail "flush $n: not cut back to plaintext + 16 MiB"
  expect_exit 0 "$RBD_LUKS" export "file:$IMG" "$WORK/out" --passphrase-file "$P1"
  cmp -s "$WORK/out" "$WORK/plain" || fail "flush $n: rbd-luks export differs after cryptsetup finished"
done
[ "$seen_hot" = 1 ] || fail "rbd-luks never died inside a step"
pass "rbd-luks's interrupted encryptions finished by cryptsetup (repair first inside a step), then cut back"

# A second passphrase and the key reference keep working as for any volume.
expect_exit 0 "$RBD_LUKS" keyslot add "file:$IMG" --passphrase-file "$P1" --new-passphrase-file "$P2" "${FAST_PBKDF2[@]}"
cryptsetup open --test-passphrase --key-file "$P2" "$IMG" || fail "the added keyslot does not open"
pass "the encrypted volume takes keyslots like any other"
