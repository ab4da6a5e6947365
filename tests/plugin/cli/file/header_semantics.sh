#!/usr/bin/env bash
# What a LUKS2 header means, where a misreading returns wrong data with exit 0: keyslots that are
# not bound to the data segment (cryptsetup luksAddKey --unbound), a keyslot claimed by two digests,
# and a data segment with an IV offset (iv_tweak). Headers come from cryptsetup, edited and resealed
# with tests/lib/luks2_json.py where cryptsetup cannot make them.
source "$TEST_LIB"
EDIT=(/usr/bin/python3 "$(dirname "${BASH_SOURCE[0]}")/../../../lib/luks2_json.py")

IMG=$WORK/img
BOUND=$(passfile bound "bound passphrase")
UNBOUND=$(passfile unbound "unbound passphrase")
sum() { sha256sum "$IMG" | cut -d' ' -f1; }

# --- Unbound keyslots: listed as such, never opening the data --------------------------------------
sparse "$IMG" 40M
cryptsetup luksFormat -q --type luks2 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$BOUND"
cryptsetup luksAddKey -q --unbound -s 512 "${FAST_PBKDF2[@]}" --key-file "$BOUND" "$IMG" "$UNBOUND"
cryptsetup luksDump "$IMG" | grep -q '1: luks2 (unbound)' || fail "cryptsetup made no unbound keyslot"
echo "data written with the volume key" | "$RBD_LUKS" write "file:$IMG" --offset 0 --passphrase-file "$BOUND"
before=$(sum)

expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$UNBOUND"
expect_exit 3 "$RBD_LUKS" read "file:$IMG" --offset 0 --length 16 --passphrase-file "$UNBOUND"
[ ! -s "$WORK/out" ] || fail "read with an unbound keyslot's passphrase printed data"
printf 'garbage' >"$WORK/in"
expect_exit 3 "$RBD_LUKS" write "file:$IMG" --offset 0 --passphrase-file "$UNBOUND" <"$WORK/in"
expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$UNBOUND" --key-slot 1
err_has "keyslot 1 is unbound"
[ "$(sum)" = "$before" ] || fail "a refused write changed the image"
pass "an unbound keyslot's passphrase opens nothing (exit 3) and writes nothing"

expect_exit 0 "$RBD_LUKS" dump "file:$IMG"
grep -q '^  1: luks2 (unbound)$' "$WORK/out" || { cat "$WORK/out"; fail "dump does not mark keyslot 1 unbound"; }
grep -q '^  0: luks2$' "$WORK/out" || { cat "$WORK/out"; fail "dump marks keyslot 0 wrongly"; }
expect_exit 0 "$RBD_LUKS" dump "file:$IMG" --json
/usr/bin/python3 -c '
import json, sys
slots = {s["id"]: s["unbound"] for s in json.load(open(sys.argv[1]))["keyslots"]}
sys.exit(0 if slots == {0: False, 1: True} else "unbound flags in dump --json: %r" % slots)' "$WORK/out"
expect_exit 0 "$RBD_LUKS" keyslot list "file:$IMG"
[ "$(grep -c 'unbound' "$WORK/out")" = 1 ] && grep -q $'^1\t.*\tunbound$' "$WORK/out" ||
  { cat "$WORK/out"; fail "keyslot list does not mark keyslot 1 (only) unbound"; }
pass "dump, dump --json and keyslot list mark the unbound keyslot"

# Removing the only bound keyslot would leave the data unreadable, unbound keyslots or not.
expect_exit 2 "$RBD_LUKS" keyslot remove "file:$IMG" 0 --passphrase-file "$BOUND"
err_has "last one that opens the data"
expect_exit 0 "$RBD_LUKS" read "file:$IMG" --offset 0 --length 32 --passphrase-file "$BOUND"
[ "$(cat "$WORK/out")" = "data written with the volume key" ] || fail "the bound passphrase no longer reads the data"
pass "the last bound keyslot is protected; the bound passphrase still reads the data"

# --- A keyslot in two digests: a bad header (exit 4) -----------------------------------------------
sparse "$IMG" 40M
cryptsetup luksFormat -q --type luks2 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$BOUND"
"${EDIT[@]}" "$IMG" 'd = dict(j["digests"]["0"]); d["segments"] = []; j["digests"]["1"] = d'
expect_exit 4 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$BOUND"
err_has "keyslot 0 is assigned to digests 0 and 1"
pass "a keyslot listed in two digests is a bad header"

# --- iv_tweak: refused, never read as if it were 0 --------------------------------------------------
sparse "$IMG" 40M
cryptsetup luksFormat -q --type luks2 "${FAST_PBKDF2[@]}" "$IMG" --key-file "$BOUND"
echo "written with IV offset 0" | "$RBD_LUKS" write "file:$IMG" --offset 0 --passphrase-file "$BOUND"
"${EDIT[@]}" "$IMG" 'j["segments"]["0"]["iv_tweak"] = "8"'
cryptsetup open --test-passphrase -q --key-file "$BOUND" "$IMG" || fail "cryptsetup does not accept the edited header"
expect_exit 1 "$RBD_LUKS" read "file:$IMG" --offset 0 --length 16 --passphrase-file "$BOUND"
err_has "iv_tweak 8"
[ ! -s "$WORK/out" ] || fail "read of a volume with an IV offset printed data"
pass "a data segment with iv_tweak 8 is refused (exit 1), not read with the wrong tweaks"
