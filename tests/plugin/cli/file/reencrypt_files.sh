#!/usr/bin/env bash
# `rbd-luks reencrypt` on image files, against cryptsetup 2.6 both ways: a volume cryptsetup made is
# reencrypted and cryptsetup opens it with every passphrase; the plaintext, decrypted by Python's
# `cryptography` with the volume key cryptsetup dumps, is byte for byte the same and no sector keeps
# its old ciphertext. Runs that die at a flush (strace kills the process there) are finished by the
# other tool: cryptsetup's by rbd-luks, rbd-luks's by cryptsetup (after `cryptsetup repair` when the
# death came inside a step, which cryptsetup requires). Refusals leave the image byte-identical.
source "$TEST_LIB"

XTS="$PY $HERE/../../../lib/xts_image.py"
P1=$(passfile p1 "first passphrase")
P2=$(passfile p2 "second passphrase")
P3=$(passfile p3 "not a passphrase")
DATA=$((16 << 20))
CS_FAST=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)

# A cryptsetup LUKS2 volume of 40 MiB of random data, with keyslots for P1 and P2.
ORIG=$WORK/orig.img
truncate -s $((DATA + (40 << 20))) "$ORIG"
dd if=/dev/urandom of="$ORIG" bs=1M seek=16 count=40 conv=notrunc status=none
cryptsetup luksFormat -q --type luks2 "${CS_FAST[@]}" --sector-size 4096 --key-file "$P1" "$ORIG"
cryptsetup luksAddKey -q "${CS_FAST[@]}" --key-file "$P1" "$ORIG" "$P2"
OLD_VK=$(vk_cryptsetup "$ORIG" "$P1")
$XTS plaintext "$ORIG" "$OLD_VK" "$DATA" 4096 "$WORK/plain"

# same_plaintext IMAGE WHAT [SECTOR]: cryptsetup opens IMAGE with P1 and P2 to a new volume key,
# under which the data (in sectors of SECTOR bytes, 4096 by default) is the original plaintext, with
# no sector's ciphertext left as it was.
same_plaintext() {
  local vk sector=${3:-4096}
  cryptsetup open --test-passphrase --key-file "$P1" "$1" || fail "$2: cryptsetup does not open with P1"
  cryptsetup open --test-passphrase --key-file "$P2" "$1" || fail "$2: cryptsetup does not open with P2"
  cryptsetup luksDump "$1" | grep -q "online-reencrypt" && fail "$2: the reencryption requirement is still there"
  vk=$(vk_cryptsetup "$1" "$P1")
  [ "$vk" != "$OLD_VK" ] || fail "$2: the volume key did not change"
  cryptsetup luksDump "$1" | grep -q "sector: $sector \[bytes\]" || fail "$2: the sectors are not of $sector bytes"
  $XTS plaintext "$1" "$vk" "$DATA" "$sector" "$WORK/back"
  cmp -s "$WORK/plain" "$WORK/back" || fail "$2: the plaintext changed"
  [ "$($XTS unchanged "$ORIG" "$1" "$DATA" 4096)" = 0 ] || fail "$2: sectors kept their old ciphertext"
}

IMG=$WORK/img
cp "$ORIG" "$IMG"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2"
err_has "41943040 of 41943040 data bytes rewritten"
same_plaintext "$IMG" "reencrypt"
pass "a cryptsetup volume reencrypted: cryptsetup opens it with both passphrases, same plaintext, every sector new"

cp "$ORIG" "$IMG"
expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1"
err_has "no passphrase given opens keyslot 1"
expect_exit 3 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P3"
expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --resume
err_has "no reencryption to resume"
expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --sector-size 1000
cmp -s "$ORIG" "$IMG" || fail "a refused reencrypt changed the image"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P2" --force
cryptsetup open --test-passphrase --key-file "$P1" "$IMG" 2>/dev/null && fail "--force kept the keyslot of P1"
cryptsetup open --test-passphrase --key-file "$P2" "$IMG" || fail "--force lost the keyslot of P2"
pass "refusals (a keyslot without passphrase, a wrong key, nothing to resume, a sector size of 1000) leave the image as it was; --force drops"

# Another sector size: rbd-luks from 4096 to 512 bytes; cryptsetup begins one and rbd-luks
# finishes it; rbd-luks, killed inside a step, is finished by cryptsetup.
cp "$ORIG" "$IMG"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --sector-size 512
same_plaintext "$IMG" "reencrypt --sector-size 512" 512
cp "$ORIG" "$IMG"
cryptsetup reencrypt -q --force-offline-reencrypt --init-only "${CS_FAST[@]}" --key-file "$P1" --key-slot 0 --sector-size 512 "$IMG"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2"
err_has "resumed the reencryption"
same_plaintext "$IMG" "cryptsetup --init-only --sector-size 512, rbd-luks finished" 512
cp "$ORIG" "$IMG"
rc=0
strace -f -o /dev/null -e inject=fdatasync:signal=SIGKILL:when=7 \
  "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --hotzone-size 4M \
  --threads 1 --pbkdf-force-iterations 1000 --sector-size 512 || rc=$?
[ "$rc" = 137 ] || fail "rbd-luks was not killed at flush 7 (exit $rc)"
"$RBD_LUKS" dump "file:$IMG" | grep -q "^Reencryption: " || fail "the killed run left no reencryption"
cryptsetup repair -q --key-file "$P1" "$IMG" || fail "cryptsetup repair failed"
cryptsetup reencrypt -q --force-offline-reencrypt --resume-only --key-file "$P1" "$IMG" ||
  fail "cryptsetup cannot resume rbd-luks's sector size change"
same_plaintext "$IMG" "rbd-luks --sector-size 512 killed, cryptsetup finished" 512
pass "sector size 4096 to 512: by rbd-luks, begun by cryptsetup and finished by rbd-luks, begun by rbd-luks and finished by cryptsetup"

# Another cipher key size, 512-byte sectors, rbd-luks's own argon2id volume.
OWN=$WORK/own.img
expect_exit 0 "$RBD_LUKS" create "file:$OWN" --size 8M --sector-size 512 --key-size 512 --passphrase-file "$P1" "${FAST_LUKS2[@]}"
head -c $((8 << 20)) /dev/urandom >"$WORK/own.plain"
expect_exit 0 "$RBD_LUKS" import "$WORK/own.plain" "file:$OWN" --passphrase-file "$P1"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$OWN" --passphrase-file "$P1" --key-size 256
cryptsetup luksDump "$OWN" | grep -q "Cipher key: 256 bits" || fail "the new keyslot does not hold a 256-bit key"
vk=$(vk_cryptsetup "$OWN" "$P1")
[ ${#vk} = 64 ] || fail "cryptsetup dumps a ${#vk}-digit key, not a 256-bit one"
$XTS plaintext "$OWN" "$vk" "$DATA" 512 "$WORK/own.back"
cmp -s "$WORK/own.plain" "$WORK/own.back" || fail "512-byte sectors: the plaintext changed"
pass "512-byte sectors, argon2id keyslot, AES-256-XTS to AES-128-XTS: cryptsetup's key, same plaintext"

# cryptsetup begins, rbd-luks finishes: its --init-only state, and its process killed at a flush.
hot_step() { "$RBD_LUKS" dump "file:$1" --json | $PY -c 'import json,sys; r=json.load(sys.stdin)["reencryption"]; print(int(r is not None and r["hotzone"] is not None))'; }
cp "$ORIG" "$IMG"
cryptsetup reencrypt -q --force-offline-reencrypt --init-only "${CS_FAST[@]}" --key-file "$P1" --key-slot 0 "$IMG"
# cryptsetup re-wrapped slot 0 only; P2, given to the resume, gets its keyslot there.
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2"
err_has "resumed the reencryption"
same_plaintext "$IMG" "cryptsetup --init-only, rbd-luks finished"
seen_hot=0
for n in 6 7 9 12 15; do
  cp "$ORIG" "$IMG"
  rc=0
  strace -f -o /dev/null -e inject=fdatasync,fsync:signal=SIGKILL:when=$n cryptsetup reencrypt -q \
    --force-offline-reencrypt "${CS_FAST[@]}" --key-file "$P1" --key-slot 0 --hotzone-size 1M "$IMG" || rc=$?
  [ "$rc" = 137 ] || fail "cryptsetup was not killed at flush $n (exit $rc)"
  [ "$(hot_step "$IMG")" = 0 ] || seen_hot=1
  expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2"
  same_plaintext "$IMG" "cryptsetup killed at flush $n, rbd-luks finished"
done
[ "$seen_hot" = 1 ] || fail "cryptsetup never died inside a step"
pass "cryptsetup's interrupted runs (init only; killed at 5 flushes, in and between steps) finished by rbd-luks"

# rbd-luks begins, cryptsetup finishes.
seen_hot=0
for n in 4 5 6 7 9 12; do
  cp "$ORIG" "$IMG"
  rc=0
  strace -f -o /dev/null -e inject=fdatasync:signal=SIGKILL:when=$n \
    "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --hotzone-size 4M \
    --threads 1 --pbkdf-force-iterations 1000 || rc=$?
  [ "$rc" = 137 ] || fail "rbd-luks was not killed at flush $n (exit $rc)"
  cp "$IMG" "$WORK/twin"
  if [ "$(hot_step "$IMG")" = 1 ]; then
    seen_hot=1
    cryptsetup repair -q --key-file "$P1" "$IMG" || fail "cryptsetup repair failed after flush $n"
  fi
  cryptsetup reencrypt -q --force-offline-reencrypt --resume-only --key-file "$P1" "$IMG" ||
    fail "cryptsetup cannot resume rbd-luks killed at flush $n"
  same_plaintext "$IMG" "rbd-luks killed at flush $n, cryptsetup finished"
  expect_exit 0 "$RBD_LUKS" reencrypt "file:$WORK/twin" --passphrase-file "$P2"
  same_plaintext "$WORK/twin" "rbd-luks killed at flush $n, rbd-luks finished"
done
[ "$seen_hot" = 1 ] || fail "no run died inside a step"
# cryptsetup's end leaves rbd-luks's librbd fence (a keyslot of 520 bits): the next reencrypt drops it.
cryptsetup luksDump "$IMG" | grep -q "Key:        520 bits" || fail "no fence left after cryptsetup finished"
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2"
cryptsetup luksDump "$IMG" | grep -q "Key:        520 bits" && fail "the fence is still there"
cryptsetup luksAddKey -q "${CS_FAST[@]}" --key-file "$P1" "$IMG" "$P3" || fail "cryptsetup cannot add a keyslot"
pass "rbd-luks's interrupted runs (killed at 6 flushes, in and between steps) finished by cryptsetup and by rbd-luks; the fence cryptsetup leaves goes with the next reencrypt"

# The head checksum (RBD's default, chosen here on a file): cryptsetup does not know the hash, so it
# refuses to resume or repair such a run, inside a step and between steps, and changes nothing past
# the headers (its resume writes a new reencrypt digest first, for the same state); rbd-luks
# finishes it.
for n in 5 7; do
  cp "$ORIG" "$IMG"
  rc=0
  strace -f -o /dev/null -e inject=fdatasync:signal=SIGKILL:when=$n \
    "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --hotzone-size 4M \
    --threads 1 --pbkdf-force-iterations 1000 --resilience-hash rbd-luks-sha256-head64 || rc=$?
  [ "$rc" = 137 ] || fail "rbd-luks was not killed at flush $n (exit $rc)"
  cryptsetup luksDump "$IMG" | grep -q "Hash:       rbd-luks-sha256-head64" || fail "no head checksum in the header"
  cp "$IMG" "$WORK/twin"
  # Flush 5 comes between steps, flush 7 inside one, where only a repair could go on.
  [ "$(hot_step "$IMG")" = "$([ "$n" = 7 ] && echo 1 || echo 0)" ] || fail "flush $n is not where the test expects it"
  if [ "$n" = 7 ]; then
    cryptsetup repair -q --key-file "$P1" "$IMG" 2>"$WORK/cs.err" && fail "cryptsetup repaired a head checksum step"
    grep -q "rbd-luks-sha256-head64 is not available" "$WORK/cs.err" || fail "cryptsetup's repair does not name the hash"
  fi
  cryptsetup reencrypt -q --force-offline-reencrypt --resume-only --key-file "$P1" "$IMG" 2>"$WORK/cs.err" &&
    fail "cryptsetup resumed a run with the head checksum (flush $n)"
  cmp -s -i 32768 "$IMG" "$WORK/twin" || fail "cryptsetup changed a run with the head checksum (flush $n)"
  expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P2"
  same_plaintext "$IMG" "head checksum, killed at flush $n, rbd-luks finished"
done
cp "$ORIG" "$IMG"
expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --resilience-hash crc32
err_has "checksum hash crc32 is not supported"
cmp -s "$ORIG" "$IMG" || fail "a refused --resilience-hash changed the image"
pass "the head checksum: cryptsetup refuses to resume it (killed between steps and inside one, where repair fails too, naming the hash) and changes no data; rbd-luks finishes; an unknown hash is a usage error"

# Interrupted by a signal: the volume refuses to open, dump says where it stands, the same
# command finishes it.
cp "$ORIG" "$IMG"
"$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --keyslot-passphrase-file "$P2" --hotzone-size 1M \
  --threads 1 2>"$WORK/err" &
pid=$!
for _ in $(seq 200); do
  [ "$("$RBD_LUKS" dump "file:$IMG" --json 2>/dev/null | $PY -c 'import json,sys; r=json.load(sys.stdin)["reencryption"]; print(int(r is not None and r["progress"] > 0))' 2>/dev/null)" = 1 ] && break
  sleep 0.02
done
kill -INT "$pid"
wait "$pid" && fail "the interrupted run exited 0"
err_has "run the same command again to finish it"
expect_exit 1 "$RBD_LUKS" export "file:$IMG" "$WORK/out" --passphrase-file "$P1"
err_has "a reencryption of this volume has not finished"
"$RBD_LUKS" dump "file:$IMG" | grep -q "^Reencryption: .*bytes done" || fail "dump does not show the reencryption"
expect_exit 2 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --cipher aes-xts-plain64
expect_exit 0 "$RBD_LUKS" reencrypt "file:$IMG" --passphrase-file "$P1" --resume
same_plaintext "$IMG" "interrupted by SIGINT, resumed"
pass "SIGINT stops between steps: the volume does not open, dump shows the progress, --resume finishes"
