#!/usr/bin/env bash
# Headers that ask a reader to pay before anything can be verified: huge keys, millions of AF
# stripes, Argon2 with thousands of threads or gigabytes, PBKDF2 with billions of iterations, and
# many keyslots that are each just under the limit. Each is refused as a bad header (exit 4) from its
# numbers alone. The passphrase is the right one, so a reader that paid the cost would get exit 0
# (after seconds to minutes, which the timeout turns into a failure instead of a hang).
source "$TEST_LIB"
EDIT=(/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../../../lib/luks2_json.py")

IMG=$WORK/img
P=$(passfile pass "hostile header passphrase")

fresh_luks2() {
  sparse "$IMG" 40M
  cryptsetup luksFormat -q --type luks2 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$P"
}
refused() {  # refused WHAT TEXT: check exits 4 at once, naming TEXT
  expect_exit 4 timeout 20 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P"
  err_has "$2"
  pass "refused: $1"
}
argon2() {  # argon2 TIME MEMORY CPUS: keyslot 0's KDF, same salt
  "${EDIT[@]}" "$IMG" "k = j['keyslots']['0']['kdf']; j['keyslots']['0']['kdf'] = {'type': 'argon2id', 'time': $1, 'memory': $2, 'cpus': $3, 'salt': k['salt']}"
}

fresh_luks2
"${EDIT[@]}" "$IMG" 'j["keyslots"]["0"]["area"]["key_size"] = 268435456'
refused "a 256 MiB keyslot area key" "larger than any cipher's"

fresh_luks2
"${EDIT[@]}" "$IMG" 'j["keyslots"]["0"]["af"]["stripes"] = 16777216'
refused "16.7 million AF stripes" "AF stripes"

fresh_luks2
argon2 4 1048576 20000
refused "Argon2 with 20000 threads" "20000 threads"

fresh_luks2
argon2 4 8388608 4
refused "Argon2 with 8 GiB of memory" "8388608 KiB of memory"

fresh_luks2
argon2 100000 1048576 4
refused "Argon2 with 100000 passes over 1 GiB" "100000 passes"

fresh_luks2
"${EDIT[@]}" "$IMG" 'j["keyslots"]["0"]["kdf"]["iterations"] = 2147483648'
refused "a keyslot with 2^31 PBKDF2 iterations" "2147483648 iterations"

fresh_luks2
"${EDIT[@]}" "$IMG" 'j["digests"]["0"]["iterations"] = 2147483648'
refused "a digest with 2^31 PBKDF2 iterations" "digest 0: PBKDF2 with 2147483648 iterations"

# Nine keyslots, each just under the limit for one: together more than eight at the limit.
fresh_luks2
for i in 1 2 3 4 5 6 7 8; do
  cryptsetup luksAddKey -q "${FAST_PBKDF2[@]}" --key-file "$P" "$IMG" "$P"
done
"${EDIT[@]}" "$IMG" 'for k in j["keyslots"].values(): k["kdf"]["iterations"] = 134000000'
refused "nine keyslots just under the limit each" "together cost"

# LUKS1: the same limits on the keyslot and digest iterations (big-endian fields of the binary header).
sparse "$IMG" 8M
cryptsetup luksFormat -q --type luks1 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$P"
printf '\x80\x00\x00\x00' | dd of="$IMG" bs=1 seek=$((208 + 4)) conv=notrunc status=none
refused "a LUKS1 keyslot with 2^31 iterations" "keyslot 0: PBKDF2 with 2147483648 iterations"
cryptsetup luksFormat -q --type luks1 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$P"
printf '\x80\x00\x00\x00' | dd of="$IMG" bs=1 seek=164 conv=notrunc status=none
refused "a LUKS1 volume key digest with 2^31 iterations" "volume key digest: PBKDF2"

# The limits leave real headers alone: cryptsetup's defaults (argon2id, benchmarked) open.
sparse "$IMG" 40M
cryptsetup luksFormat -q --type luks2 --iter-time 300 "$IMG" --key-file "$P"
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P"
pass "a header with cryptsetup's default KDF opens"
