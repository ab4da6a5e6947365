#!/usr/bin/env bash
# A known upstream hazard, pinned down: `qemu-img convert` of a LUKS2 RBD image opened through QEMU's
# own rbd encryption (encrypt.format=luks2, i.e. rbd_encryption_load) returns zeros where the image
# has data when librbd is Pacific (16.x), or Quincy before 17.2.8, or Reef before 18.2.5.
#
# Why: QEMU's rbd driver answers block-status queries (qemu_rbd_co_block_status) with
# rbd_diff_iterate2(..., whole_object=true) when the image has a valid fast-diff object map. In
# fast-diff mode, librbd's DiffIterate maps the requested plaintext range straight onto the RBD
# objects, without adding the encryption header's data offset (Ceph tracker 66570), so plaintext
# offset X is judged by the object holding raw offset X. qemu-img convert does not read what it
# believes unallocated: it writes zeros there. Plain reads (qemu-io, qemu-img dd, rbd-luks) are
# right; the data on disk is fine.
#
# This is a test, not only a demonstration: it asserts the bug's exact shape on an affected librbd
# (so a change in it, or a fix reaching this platform, is noticed) and the correct result on a fixed
# one; and, on every librbd, that rbd-luks export and read, qemu-img dd and qemu-io reads return the
# right bytes, and that disabling fast-diff/object-map makes qemu-img convert right.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli
# shellcheck source-path=SCRIPTDIR source=../../../lib/qemu.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/qemu.bash"

PY=/usr/bin/python3
MiB=$((1024 * 1024))
SIZE=$((32 * MiB))
TAG=pdi$$
FULL=$TAG-full
SPARSE=$TAG-sparse
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-pacific-diff.XXXXXX")
cleanup() {
  remove_images "rbd/$FULL" "rbd/$SPARSE"
  rm -rf "$WORK"
}
trap cleanup EXIT

for tool in qemu-img qemu-io; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (qemu-utils, and qemu-block-extra for rbd)"
done

printf '%s' "pacific diff passphrase" >"$WORK/pass"
KEY=(--passphrase-file "$WORK/pass")
SECRET=(--object "secret,id=sec0,file=$WORK/pass")

# qemu_opts IMAGE: QEMU's own LUKS2 support on rbd (librbd's rbd_encryption_load), as --image-opts.
qemu_opts() { echo "driver=rbd,pool=rbd,image=$1,conf=$CEPH_CONF,encrypt.format=luks2,encrypt.key-secret=sec0"; }

# librbd_release: the Ceph release of the installed librbd (e.g. 16.2.15), which QEMU's rbd driver
# loads: the package version where there is one, else what the rbd command reports.
librbd_release() {
  local v=
  if command -v dpkg-query >/dev/null; then v=$(dpkg-query -W -f '${Version}' librbd1 2>/dev/null || true); fi
  if [ -z "$v" ] && command -v rpm >/dev/null; then v=$(rpm -q --qf '%{VERSION}' librbd1 2>/dev/null || true); fi
  [ -n "$v" ] || v=$(rbd --version | awk '{print $3}')
  v=${v#*:}
  [[ "$v" =~ ^([0-9]+)\.([0-9]+)\.([0-9]+) ]] || fail "cannot tell the librbd version from '$v'"
  echo "${BASH_REMATCH[1]}.${BASH_REMATCH[2]}.${BASH_REMATCH[3]}"
}

# diff_iterate_fixed X.Y.Z: whether that release has the fix for Ceph tracker 66570 (17.2.8, 18.2.5,
# 19.2.0 and later; none for Pacific).
diff_iterate_fixed() {
  local major minor patch
  IFS=. read -r major minor patch <<<"$1"
  [ "$major" -ge 19 ] && return 0
  [ "$major" -eq 18 ] && { [ "$minor" -gt 2 ] || { [ "$minor" -eq 2 ] && [ "$patch" -ge 5 ]; }; } && return 0
  [ "$major" -eq 17 ] && { [ "$minor" -gt 2 ] || { [ "$minor" -eq 2 ] && [ "$patch" -ge 8 ]; }; } && return 0
  return 1
}

# map_extents IMAGE: `qemu-img map --output=json`, adjacent extents of the same kind merged, as
# "start length data|zero" lines.
map_extents() {
  qemu-img map --output=json "${SECRET[@]}" --image-opts "$(qemu_opts "$1")" | $PY -c '
import json, sys
merged = []
for e in json.load(sys.stdin):
    kind = "data" if e["data"] else "zero"
    if merged and merged[-1][2] == kind and merged[-1][0] + merged[-1][1] == e["start"]:
        merged[-1][1] += e["length"]
    else:
        merged.append([e["start"], e["length"], kind])
for start, length, kind in merged:
    print(start, length, kind)'
}

# same_range A B OFFSET LENGTH: files A and B hold the same LENGTH bytes at OFFSET.
same_range() { cmp -s -i "$3:$3" -n "$4" "$1" "$2"; }
# zero_range FILE OFFSET LENGTH: FILE holds LENGTH zero bytes at OFFSET.
zero_range() { cmp -s -i "$2:0" -n "$3" "$1" /dev/zero; }

convert_to() { rm -f "$2"; qemu-img convert "${SECRET[@]}" -O raw --image-opts "$(qemu_opts "$1")" "$2"; }

RELEASE=$(librbd_release)
if diff_iterate_fixed "$RELEASE"; then FIXED=yes; else FIXED=; fi
echo "# librbd $RELEASE: rbd_diff_iterate2 in fast-diff mode is ${FIXED:+not }expected to ignore the encryption data offset"

# --- An image written whole by rbd-luks --------------------------------------------------------
"$RBD_LUKS" create "rbd:rbd/$FULL" --size "$SIZE" "${KEY[@]}" "${FAST_PBKDF2[@]}" -q
head -c "$SIZE" /dev/urandom >"$WORK/plain"
"$RBD_LUKS" import "$WORK/plain" "rbd:rbd/$FULL" "${KEY[@]}"
DATA_OFFSET=$("$RBD_LUKS" dump "rbd:rbd/$FULL" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
OBJ=$(rbdc info "rbd/$FULL" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["object_size"])')
features=$(rbdc info "rbd/$FULL" --format json | $PY -c 'import json,sys; print(" ".join(json.load(sys.stdin)["features"]))')
[[ " $features " == *" fast-diff "* ]] || fail "the image has no fast-diff (features: $features); this test needs the default features"
[ "$OBJ" -lt "$DATA_OFFSET" ] || fail "object size $OBJ is not below the data offset $DATA_OFFSET; the bug would not show"
# rbd-luks writes the LUKS2 metadata and keyslots into the first object only, so the header
# objects 1..DATA_OFFSET/OBJ-1 never exist; the data objects all do.

# (a) rbd-luks reads the plaintext back whole.
"$RBD_LUKS" export "rbd:rbd/$FULL" "$WORK/export" "${KEY[@]}"
cmp -s "$WORK/export" "$WORK/plain" || fail "rbd-luks export differs from what was imported"
pass "rbd-luks export is byte-identical to the 32 MiB imported"

# (b) qemu-img convert through QEMU's own LUKS2 (encrypt.format=luks2).
convert_to "$FULL" "$WORK/convert"
[ "$(stat -c %s "$WORK/convert")" -eq "$SIZE" ] || fail "qemu-img convert wrote $(stat -c %s "$WORK/convert") bytes, not $SIZE"
if [ -n "$FIXED" ]; then
  cmp -s "$WORK/convert" "$WORK/plain" || fail "librbd $RELEASE should have the fix for Ceph tracker 66570, but qemu-img convert differs from the plaintext"
  pass "librbd $RELEASE: qemu-img convert with encrypt.format=luks2 returns the plaintext"
else
  # Plaintext [0, OBJ) is judged by the header's first object (exists): right. [OBJ, DATA_OFFSET)
  # by the header objects that do not exist: zeros. [DATA_OFFSET, SIZE) by data objects: right.
  same_range "$WORK/convert" "$WORK/plain" 0 "$OBJ" || fail "qemu-img convert: plaintext [0, $OBJ) differs"
  zero_range "$WORK/convert" "$OBJ" $((DATA_OFFSET - OBJ)) ||
    fail "librbd $RELEASE: expected the known bug (zeros for plaintext [$OBJ, $DATA_OFFSET)), but qemu-img convert has data there: has a fix for Ceph tracker 66570 reached this librbd?"
  zero_range "$WORK/plain" "$OBJ" $((DATA_OFFSET - OBJ)) && fail "the random source is zero there; cannot tell"
  same_range "$WORK/convert" "$WORK/plain" "$DATA_OFFSET" $((SIZE - DATA_OFFSET)) ||
    fail "qemu-img convert: plaintext [$DATA_OFFSET, $SIZE) differs"
  pass "KNOWN BUG (librbd $RELEASE, Ceph tracker 66570): qemu-img convert with encrypt.format=luks2 returns zeros for plaintext [$OBJ, $DATA_OFFSET) of data that is there; the rest is right"
fi

# (c) Reads that do not ask for block status get the right bytes through the same QEMU driver.
"$RBD_LUKS" read "rbd:rbd/$FULL" --offset "$OBJ" --length 16 "${KEY[@]}" | od -An -tx1 -v | xargs >"$WORK/want"
qemu-io "${SECRET[@]}" --image-opts "$(qemu_opts "$FULL")" -c "read -v $OBJ 16" |
  awk 'NR == 1 { for (i = 2; i <= 17; i++) printf "%s%s", $i, (i < 17 ? " " : "\n") }' >"$WORK/got"
cmp -s "$WORK/got" "$WORK/want" || fail "qemu-io read at $OBJ: '$(cat "$WORK/got")', rbd-luks read: '$(cat "$WORK/want")'"
od -An -tx1 -v -j "$OBJ" -N 16 "$WORK/plain" | xargs | cmp -s - "$WORK/want" || fail "rbd-luks read at $OBJ differs from the plaintext"
rm -f "$WORK/dd"
qemu-img dd "${SECRET[@]}" --image-opts -O raw bs=4M "if=$(qemu_opts "$FULL")" "of=$WORK/dd"
cmp -s "$WORK/dd" "$WORK/plain" || fail "qemu-img dd through encrypt.format=luks2 differs from the plaintext"
pass "qemu-io read and qemu-img dd through encrypt.format=luks2 return the plaintext (the data on disk is right)"

# (d) qemu-img map shows the allocation of the raw objects at plaintext offsets.
map_extents "$FULL" >"$WORK/map"
if [ -n "$FIXED" ]; then
  printf '0 %s data\n' "$SIZE" >"$WORK/map-want"
else
  printf '0 %s data\n%s %s zero\n%s %s data\n' "$OBJ" "$OBJ" $((DATA_OFFSET - OBJ)) "$DATA_OFFSET" $((SIZE - DATA_OFFSET)) >"$WORK/map-want"
fi
cmp -s "$WORK/map" "$WORK/map-want" || { paste "$WORK/map" "$WORK/map-want" >&2; fail "qemu-img map: extents differ from the expected (left: got, right: expected)"; }
pass "qemu-img map --output=json: $(tr '\n' ';' <"$WORK/map")"

# --- A sparse image: data whose raw counterpart object is absent is lost whole ----------------
# 4 MiB of data at plaintext 20 MiB sits in raw object (20 MiB + DATA_OFFSET) / OBJ; block status
# looks at raw object 20 MiB / OBJ instead, which holds the never-written plaintext 20 MiB - DATA_OFFSET.
"$RBD_LUKS" create "rbd:rbd/$SPARSE" --size "$SIZE" "${KEY[@]}" "${FAST_PBKDF2[@]}" -q
head -c $((4 * MiB)) /dev/urandom >"$WORK/piece"
"$RBD_LUKS" write "rbd:rbd/$SPARSE" --offset $((20 * MiB)) "${KEY[@]}" <"$WORK/piece"
"$RBD_LUKS" read "rbd:rbd/$SPARSE" --offset $((20 * MiB)) --length $((4 * MiB)) "${KEY[@]}" | cmp -s - "$WORK/piece" ||
  fail "rbd-luks read of the sparse image differs from what was written"
convert_to "$SPARSE" "$WORK/convert-sparse"
if [ -n "$FIXED" ]; then
  cmp -s "$WORK/convert-sparse" <(head -c $((20 * MiB)) /dev/zero; cat "$WORK/piece"; head -c $((SIZE - 24 * MiB)) /dev/zero) ||
    fail "librbd $RELEASE: qemu-img convert of the sparse image differs from its plaintext"
  pass "librbd $RELEASE: qemu-img convert of a sparse image keeps its data"
else
  cmp -s "$WORK/convert-sparse" <(head -c "$SIZE" /dev/zero) ||
    fail "librbd $RELEASE: expected qemu-img convert of the sparse image to be all zeros (known bug)"
  pass "KNOWN BUG (librbd $RELEASE): qemu-img convert of a sparse image with data only at plaintext 20 MiB is all zeros; rbd-luks reads the data"
fi

# --- Without fast-diff, QEMU reports everything allocated and qemu-img convert is right ---------
rbdc feature disable "rbd/$FULL" fast-diff object-map
convert_to "$FULL" "$WORK/convert-nofd"
cmp -s "$WORK/convert-nofd" "$WORK/plain" || fail "without fast-diff/object-map, qemu-img convert still differs from the plaintext"
map_extents "$FULL" >"$WORK/map"
printf '0 %s data\n' "$SIZE" | cmp -s - "$WORK/map" || fail "without fast-diff, qemu-img map: $(tr '\n' ';' <"$WORK/map")"
pass "rbd feature disable fast-diff object-map: qemu-img convert returns the plaintext"
