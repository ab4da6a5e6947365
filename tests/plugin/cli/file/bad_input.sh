#!/usr/bin/env bash
# Bad input gets the exit code from docs/cli.md and one clear error line, and loses nothing:
# wrong passphrase, not-LUKS data, truncated images, damaged header copies, usage errors.
source "$TEST_LIB"

P1=$(passfile p1 "right")
PW=$(passfile pw "wrong")
IMG=$WORK/img

expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --passphrase-file "$P1" "${FAST_LUKS2[@]}"
expect_exit 3 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$PW"
expect_exit 3 "$RBD_LUKS" read "file:$IMG" --offset 0 --length 1 --passphrase-file "$PW"
pass "wrong passphrase: exit 3"

# Usage errors: exit 2.
expect_exit 2 "$RBD_LUKS"
expect_exit 2 "$RBD_LUKS" frobnicate
expect_exit 2 "$RBD_LUKS" check
expect_exit 2 "$RBD_LUKS" check "file:$IMG" --no-such-option
expect_exit 2 "$RBD_LUKS" check "file:$IMG"
expect_exit 2 "$RBD_LUKS" format "file:$IMG" --type luks3 --passphrase-file "$P1"
expect_exit 2 "$RBD_LUKS" format "file:$IMG" --key-size 384 --passphrase-file "$P1"
expect_exit 2 "$RBD_LUKS" format "file:$IMG" --type luks1 --sector-size 4096 --passphrase-file "$P1"
expect_exit 2 "$RBD_LUKS" read "file:$IMG" --offset x --length 1 --passphrase-file "$P1"
pass "usage errors: exit 2"

# Refuses to format over an existing LUKS header without --force, and the header stays intact.
cp "$IMG" "$WORK/before"
expect_exit 1 "$RBD_LUKS" format "file:$IMG" --passphrase-file "$PW" "${FAST_LUKS2[@]}"
cmp -s "$IMG" "$WORK/before" || fail "refused format changed the image"
expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P1"
pass "format refuses an existing LUKS header"

# Not LUKS: exit 4.
head -c 1M /dev/urandom >"$WORK/random"
sparse "$WORK/zeros" 20M
for f in random zeros; do
  expect_exit 4 "$RBD_LUKS" check "file:$WORK/$f" --passphrase-file "$P1"
  expect_exit 4 "$RBD_LUKS" dump "file:$WORK/$f"
done
pass "not-LUKS data: exit 4"

# Truncated images: exit 4, no crash.
for n in 0 100 4096 5000 16384 20000 32768 40000; do
  head -c "$n" "$IMG" >"$WORK/trunc"
  expect_exit 4 "$RBD_LUKS" dump "file:$WORK/trunc"
done
pass "truncated headers: exit 4"

# Damage one copy: the other still opens; a write (keyslot add) repairs it. Damage both: exit 4.
flip() { # FILE OFFSET: inverts one byte
  printf "$(printf '\\x%02x' $(( 0xff ^ $(od -An -tu1 -j "$2" -N1 "$1") )))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
for where in primary secondary; do
  cp "$WORK/before" "$IMG"
  if [ $where = primary ]; then off=$((4096 + 10)); else off=$((16384 + 4096 + 10)); fi
  flip "$IMG" "$off"
  expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P1"
  P2=$(passfile p2 "another")
  expect_exit 0 "$RBD_LUKS" keyslot add "file:$IMG" --passphrase-file "$P1" --new-passphrase-file "$P2" "${FAST_LUKS2[@]}"
  cryptsetup luksDump "$IMG" >/dev/null 2>"$WORK/cs.err" || fail "cryptsetup rejects the repaired header"
  ! grep -qi "checksum" "$WORK/cs.err" || fail "cryptsetup still sees a bad checksum after repair: $(cat "$WORK/cs.err")"
  # The repaired copy is valid on its own: damage the other one and open again.
  if [ $where = primary ]; then flip "$IMG" $((16384 + 4096 + 10)); else flip "$IMG" $((4096 + 10)); fi
  expect_exit 0 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P2"
  pass "damaged $where copy: opens from the other copy and is repaired by the next write"
done
cp "$WORK/before" "$IMG"
flip "$IMG" $((4096 + 10))
flip "$IMG" $((16384 + 4096 + 10))
expect_exit 4 "$RBD_LUKS" check "file:$IMG" --passphrase-file "$P1"
pass "both copies damaged: exit 4"

# Missing files and passphrase files.
expect_exit 1 "$RBD_LUKS" check "file:$WORK/nope" --passphrase-file "$P1"
expect_exit 5 "$RBD_LUKS" check "file:$WORK/before" --passphrase-file "$WORK/no-pass"
pass "missing image (exit 1) and missing passphrase file (exit 5)"

# Image too small for the header and data offset.
sparse "$WORK/small" 1M
expect_exit 1 "$RBD_LUKS" format "file:$WORK/small" --passphrase-file "$P1" "${FAST_LUKS2[@]}"
cmp -s "$WORK/small" <(head -c 1M /dev/zero) || fail "failed format changed the small image"
pass "image too small: refused, unchanged"

# Header strings are data whoever can write the image controls: a label (and subsystem) with bytes
# that are not UTF-8 and terminal control sequences, as cryptsetup writes them. dump --json stays
# valid JSON (the bad bytes become U+FFFD), text shows them escaped, nothing aborts.
LABEL=$(printf 'bad\xff\xfe\x1b[31mred\x07\ttab')
sparse "$WORK/labelled" 20M
cryptsetup luksFormat --batch-mode --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file "$P1" \
  --label "$LABEL" --subsystem "$(printf 'sub\xc3')" "$WORK/labelled"
expect_exit 0 "$RBD_LUKS" dump "file:$WORK/labelled" --json
"$PY" - "$WORK/out" <<'PY' || fail "dump --json of a non-UTF-8 label: $(head -c 300 "$WORK/out")"
import json, sys
d = json.load(open(sys.argv[1], encoding="utf-8"))
assert d["label"] == "bad\ufffd\ufffd\x1b[31mred\x07\ttab", repr(d["label"])
assert d["subsystem"] == "sub\ufffd", repr(d["subsystem"])
PY
expect_exit 0 "$RBD_LUKS" dump "file:$WORK/labelled"
grep -qF 'bad\xff\xfe\x1b[31mred\x07\x09tab' "$WORK/out" || fail "label not escaped: $(grep -a Label "$WORK/out")"
grep -qF 'sub\xc3' "$WORK/out" || fail "subsystem not escaped"
! LC_ALL=C grep -qaP '[\x00-\x08\x0b-\x1f\x7f]' "$WORK/out" || fail "raw control bytes in the text dump"
pass "dump of a header with a non-UTF-8 label and control bytes: valid JSON, escaped text"

# A LUKS1 header (no checksum) whose cipher mode holds a newline and escape sequences: a cipher
# rbd-luks does not implement (exit 1), and the error quotes it escaped, on one line (expect_exit
# checks that), as does dump.
sparse "$WORK/l1" 8M
cryptsetup luksFormat --batch-mode --type luks1 --pbkdf-force-iterations 1000 --key-file "$P1" "$WORK/l1"
printf 'xts\nplain\x1b[2J\xff\0' | dd of="$WORK/l1" bs=1 seek=40 conv=notrunc status=none
expect_exit 1 "$RBD_LUKS" check "file:$WORK/l1" --passphrase-file "$P1"
err_has 'xts\x0aplain\x1b[2J\xff'
expect_exit 0 "$RBD_LUKS" dump "file:$WORK/l1"
! grep -q $'\x1b' "$WORK/out" || fail "dump printed a raw escape byte"
grep -qF 'xts\x0aplain\x1b[2J\xff' "$WORK/out" || { cat "$WORK/out"; fail "dump does not show the cipher mode escaped"; }
pass "a hostile LUKS1 cipher mode: exit 1, one escaped line; dump shows it escaped"
