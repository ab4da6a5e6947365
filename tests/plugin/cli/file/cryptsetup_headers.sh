#!/usr/bin/env bash
# Headers made by cryptsetup open with rbd-luks and give cryptsetup's volume key, and headers made by
# rbd-luks pass cryptsetup's checks and give ours: LUKS2 (argon2id, pbkdf2, 512/4096 sectors, several
# keyslots) and LUKS1, with keyslots added and removed by either tool.
source "$TEST_LIB"

P1=$(passfile p1 "first passphrase")
P2=$(passfile p2 "second one")
P3=$(passfile p3 $'third\nwith a newline\n')
PW=$(passfile pw "wrong")
IMG=$WORK/img

same_key() {  # IMAGE PASSFILE WHAT
  local theirs ours
  theirs=$(vk_cryptsetup "$1" "$2")
  ours=$(vk_ours "$1" "$2")
  [ -n "$theirs" ] && [ "$theirs" = "$ours" ] || fail "$3: volume keys differ (cryptsetup ${theirs:0:8}..., rbd-luks ${ours:0:8}...)"
}

# --- cryptsetup formats, rbd-luks opens -------------------------------------------------------
for variant in "luks2 argon2id 512" "luks2 argon2id 4096" "luks2 pbkdf2 4096" "luks2 argon2i 512" "luks1 pbkdf2 512"; do
  read -r type kdf sector <<<"$variant"
  sparse "$IMG" 32M
  args=(--batch-mode --type "$type" --key-file "$P1")
  if [ "$kdf" = pbkdf2 ]; then args+=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
  else args+=(--pbkdf "$kdf" --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1); fi
  [ "$type" = luks2 ] && args+=(--sector-size "$sector")
  cryptsetup luksFormat "${args[@]}" "$IMG"
  cryptsetup luksAddKey --batch-mode --key-file "$P1" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$IMG" "$P2"
  expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P1"
  expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P2"
  expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$PW"
  same_key "$IMG" "$P1" "cryptsetup $variant"
  "$RBD_LUKS" dump "file:$IMG" --json >"$WORK/dump.json"
  $PY - "$WORK/dump.json" "$type" "$sector" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1]))
assert d["version"] == int(sys.argv[2][-1]), d
assert d["sector_size"] == int(sys.argv[3]), d
assert "volume_key" not in json.dumps(d).lower()
PYEOF
  pass "cryptsetup $variant opens with rbd-luks"

  # A keyslot added by rbd-luks opens in cryptsetup; a slot removed by rbd-luks no longer does.
  fast=("${FAST_LUKS2[@]}"); [ "$kdf" = pbkdf2 ] || [ "$type" = luks1 ] && fast=("${FAST_PBKDF2[@]}")
  expect_exit 0 "$RBD_LUKS" keyslot add "file:$IMG" --passphrase-file "$P2" --new-passphrase-file "$P3" "${fast[@]}"
  cryptsetup open --test-passphrase --batch-mode --key-file "$P3" "$IMG" || fail "$variant: slot added by rbd-luks rejected by cryptsetup"
  expect_exit 0 "$RBD_LUKS" keyslot remove "file:$IMG" 1 --passphrase-file "$P1"
  if cryptsetup open --test-passphrase --batch-mode --key-file "$P2" "$IMG" 2>/dev/null; then
    fail "$variant: cryptsetup still opens a slot rbd-luks removed"
  fi
  cryptsetup luksDump "$IMG" >/dev/null || fail "$variant: cryptsetup rejects the header after our changes"
  same_key "$IMG" "$P3" "cryptsetup $variant after keyslot changes"
  pass "cryptsetup $variant: keyslot add/remove by rbd-luks"
done

# --- rbd-luks formats, cryptsetup opens -------------------------------------------------------
for variant in "luks2 argon2id 4096" "luks2 argon2i 512" "luks2 pbkdf2 2048" "luks1 pbkdf2 512"; do
  read -r type kdf sector <<<"$variant"
  sparse "$IMG" 32M
  fast=("${FAST_LUKS2[@]}"); [ "$kdf" = pbkdf2 ] && fast=("${FAST_PBKDF2[@]}")
  [ "$kdf" = argon2i ] && fast[1]=argon2i
  args=(--type "$type" --passphrase-file "$P1" "${fast[@]}")
  [ "$type" = luks2 ] && args+=(--sector-size "$sector")
  expect_exit 0 "$RBD_LUKS" format "file:$IMG" "${args[@]}"
  cryptsetup luksDump "$IMG" >"$WORK/dump.txt" || fail "$variant: cryptsetup luksDump rejects our header"
  grep -q "Version:.*${type: -1}" "$WORK/dump.txt" || fail "$variant: luksDump shows the wrong version"
  cryptsetup open --test-passphrase --batch-mode --key-file "$P1" "$IMG" || fail "$variant: cryptsetup rejects our keyslot"
  same_key "$IMG" "$P1" "rbd-luks $variant"
  if [ "$type" = luks2 ]; then
    grep -qE "sector: *$sector" "$WORK/dump.txt" || fail "$variant: sector size not $sector in luksDump"
    grep -q "offset: 16777216 \[bytes\]" "$WORK/dump.txt" || fail "$variant: data offset is not 16 MiB"
  else
    grep -qE "Payload offset:\s*8192" "$WORK/dump.txt" || fail "$variant: payload offset is not 8192 sectors"
  fi
  # cryptsetup adds a keyslot; rbd-luks opens it. cryptsetup removes ours; rbd-luks refuses it.
  cryptsetup luksAddKey --batch-mode --key-file "$P1" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 "$IMG" "$P2"
  expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P2"
  cryptsetup luksKillSlot --batch-mode --key-file "$P2" "$IMG" 0
  expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P1"
  same_key "$IMG" "$P2" "rbd-luks $variant after cryptsetup keyslot changes"
  pass "rbd-luks $variant opens with cryptsetup"
done

# Every keyslot rbd-luks writes opens in cryptsetup, one by one.
sparse "$IMG" 32M
expect_exit 0 "$RBD_LUKS" format "file:$IMG" --passphrase-file "$P1" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" keyslot add "file:$IMG" --passphrase-file "$P1" --new-passphrase-file "$P2" "${FAST_PBKDF2[@]}"
expect_exit 0 "$RBD_LUKS" keyslot add "file:$IMG" --passphrase-file "$P1" --new-passphrase-file "$P3" "${FAST_LUKS2[@]}"
for slot in 0 1 2; do
  cryptsetup open --test-passphrase --batch-mode --key-slot "$slot" --key-file "$( [ $slot = 0 ] && echo "$P1" || { [ $slot = 1 ] && echo "$P2" || echo "$P3"; })" "$IMG" ||
    fail "cryptsetup rejects keyslot $slot written by rbd-luks"
done
[ "$("$RBD_LUKS" keyslot list "file:$IMG" | wc -l)" -eq 3 ] || fail "keyslot list does not show 3 slots"
pass "three rbd-luks keyslots open one by one in cryptsetup"

# A token naming a keyslot (as systemd-cryptenroll writes) survives our removal of that keyslot, and
# the header stays valid for cryptsetup.
printf '{"type":"rbd-luks-test","keyslots":["1"]}' | cryptsetup token import --batch-mode --token-id 0 "$IMG"
expect_exit 0 "$RBD_LUKS" keyslot remove "file:$IMG" 1 --passphrase-file "$P1"
cryptsetup luksDump "$IMG" >"$WORK/dump.txt" || fail "cryptsetup rejects the header after removing a token's keyslot"
grep -q "rbd-luks-test" "$WORK/dump.txt" || fail "the token was lost"
cryptsetup open --test-passphrase --batch-mode --key-file "$P3" "$IMG" || fail "keyslot 2 no longer opens"
pass "removing a keyslot that a token names keeps the token and a valid header"
