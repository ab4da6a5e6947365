#!/usr/bin/env bash
# Thin images stay thin: `rbd-luks import` leaves all-zero blocks of the source unwritten on a fresh
# image and zeroes them where the image held data, skips the holes of a sparse source file, and
# `rbd-luks export` writes a sparse file; `rbd du` (the cluster's own count) and a file's allocated
# blocks (`stat -c %b`) are the judges, `cmp` and librbd's native LUKS2 (python3-rbd) the readers.
# Where the image never held data, never-written blocks inside a written object read as zeros in
# librbd's native layer only on a store that reports holes in sparse reads: BLUESTORE_CEPH_CONF,
# when set, names such a cluster (the "ceph_bluestore" fixture) for that check.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli

PY=/usr/bin/python3
MiB=$((1024 * 1024))
TAG=thin$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-thin.XXXXXX")
cleanup() {
  remove_images "rbd/$TAG-sparse" "rbd/$TAG-held" "rbd/$TAG-stdin" "rbd/$TAG-full" "rbd/$TAG-big" "rbd/$TAG-luks1"
  [ -z "${BLUESTORE_CEPH_CONF:-}" ] || CEPH_CONF=$BLUESTORE_CEPH_CONF remove_images "rbd/$TAG-sparse" "rbd/$TAG-holey"
  rm -rf "$WORK"
}
trap cleanup EXIT

printf '%s' "thin passphrase" >"$WORK/pass"
K=(--passphrase-file "$WORK/pass")
used() { rbdc du "$1" --format json | $PY -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["used_size"])'; }
allocated_bytes() { echo $(($(stat -c %b "$1") * 512)); }

# A 1 GiB sparse file with a few scattered extents, 4 MiB 12 KiB of data in all: the source file
# takes only those (its holes are never read), and they touch four 4 MiB objects of the image.
$PY - "$WORK/sparse.raw" <<'PYEOF'
import os, sys
extents = [(0, 1 << 20), (300 * 2**20 + 12288, 4096), (513 * 2**20, 3 << 20), ((1 << 30) - 8192, 8192)]
with open(sys.argv[1], "wb") as f:
    f.truncate(1 << 30)
    for offset, length in extents:
        f.seek(offset)
        f.write(os.urandom(length))
PYEOF
data_bytes=$(((4 << 20) + 12288))
[ "$(allocated_bytes "$WORK/sparse.raw")" -le $((data_bytes + 16 * 4096)) ] || fail "the source file is not sparse here"

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-sparse" --size 1G "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/sparse.raw" "rbd:rbd/$TAG-sparse" "${K[@]}"
# The header's first object (LUKS2 header and keyslots) and the four objects the data touches.
want_used=$(((1 + 4) * 4 * MiB))
got_used=$(used "rbd/$TAG-sparse")
[ "$got_used" -le "$want_used" ] || fail "sparse import uses $got_used bytes, want <= $want_used"
[ "$got_used" -ge $((4 * MiB)) ] || fail "sparse import uses $got_used bytes: the data is not there"
expect_exit 0 "$RBD_LUKS" du "rbd:rbd/$TAG-sparse" --json
du_used=$($PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["used"], d["size"])' "$WORK/out")
[ "$du_used" = "$got_used $((1 << 30))" ] || fail "rbd-luks du says '$du_used', rbd du used $got_used of 1 GiB"
pass "import of a 1 GiB sparse file with 4 MiB of data: $got_used bytes used (rbd du), as rbd-luks du says"

expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-sparse" "$WORK/exported.raw" "${K[@]}"
cmp -s "$WORK/exported.raw" "$WORK/sparse.raw" || fail "export differs from the imported file"
exported=$(allocated_bytes "$WORK/exported.raw")
[ "$exported" -le $((data_bytes + 2 * 4 * MiB)) ] || fail "the exported file takes $exported bytes for $data_bytes of data"
pass "export writes a sparse file: identical, $exported bytes allocated for $data_bytes of data"
"$RBD_LUKS" export "rbd:rbd/$TAG-sparse" - "${K[@]}" | cmp -s - "$WORK/sparse.raw" || fail "export to stdout differs"
pass "export to stdout writes every byte"

# From standard input the zero blocks are found all the same (the holes are read as zeros).
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-stdin" --size 1G "${K[@]}" "${FAST_LUKS2[@]}"
"$RBD_LUKS" import - "rbd:rbd/$TAG-stdin" "${K[@]}" <"$WORK/sparse.raw" || fail "import from stdin"
[ "$(used "rbd/$TAG-stdin")" -le "$want_used" ] || fail "import from stdin uses $(used "rbd/$TAG-stdin") bytes"
"$RBD_LUKS" export "rbd:rbd/$TAG-stdin" - "${K[@]}" | cmp -s - "$WORK/sparse.raw" || fail "stdin import differs"
pass "import from stdin skips zero blocks too"

# --sparse-size 0 writes every byte; a size that is no multiple of the sector size is refused.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-full" --size 64M "${K[@]}" "${FAST_LUKS2[@]}"
head -c $((64 * MiB)) "$WORK/sparse.raw" >"$WORK/head.raw"
expect_exit 2 "$RBD_LUKS" import "$WORK/head.raw" "rbd:rbd/$TAG-full" --sparse-size 1000 "${K[@]}"
err_has "--sparse-size"
[ "$(used "rbd/$TAG-full")" -le $((4 * MiB)) ] || fail "a refused import wrote data"
expect_exit 0 "$RBD_LUKS" import "$WORK/head.raw" "rbd:rbd/$TAG-full" --sparse-size 0 "${K[@]}"
[ "$(used "rbd/$TAG-full")" -eq $((68 * MiB)) ] || fail "--sparse-size 0 uses $(used "rbd/$TAG-full") bytes, not all"
pass "--sparse-size 0 writes every byte; --sparse-size 1000 is a usage error"

# Over an image that held data: zero blocks of the source read back as zeros afterwards, through
# rbd-luks and through librbd's native LUKS2, and whole objects of zeros are given back.
$PY - "$WORK/random.raw" "$WORK/holey.raw" <<'PYEOF'
import os, sys
data = bytearray(os.urandom(64 << 20))
open(sys.argv[1], "wb").write(data)
data = bytearray(os.urandom(64 << 20))
data[(1 << 20) + 4096:(1 << 20) + 12288] = bytes(8192)       # inside an object, data on both sides
data[(20 << 20) + 100:(20 << 20) + 9000] = bytes(8900)       # not block-aligned: two whole blocks
data[24 << 20:40 << 20] = bytes(16 << 20)                    # four whole objects
data[(60 << 20) + 4096:] = bytes((4 << 20) - 4096)           # to the end of the image
open(sys.argv[2], "wb").write(data)
PYEOF
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-held" --size 64M "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/random.raw" "rbd:rbd/$TAG-held" "${K[@]}"
before=$(used "rbd/$TAG-held")
expect_exit 0 "$RBD_LUKS" import "$WORK/holey.raw" "rbd:rbd/$TAG-held" "${K[@]}"
after=$(used "rbd/$TAG-held")
[ "$after" -le $((before - 16 * MiB)) ] || fail "zeroing four whole objects left $after of $before bytes used"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG-held" "$WORK/held.out" "${K[@]}"
cmp -s "$WORK/held.out" "$WORK/holey.raw" || fail "import over data: rbd-luks reads other bytes"
native_reads "$CEPH_CONF" "$TAG-held" "$WORK/holey.raw" "$WORK/pass" || fail "import over data: native read"
pass "import over data: zero blocks read as zeros through rbd-luks and librbd native; used $before -> $after"

# 8 MiB objects: a run of zeros is acted on once it ends, across the 4 MiB chunks of the copy, so
# the two whole objects it covers are given back.
rbdc create "rbd/$TAG-big" --size 80M --object-size 8M
expect_exit 0 "$RBD_LUKS" format "rbd:rbd/$TAG-big" "${K[@]}" "${FAST_LUKS2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/random.raw" "rbd:rbd/$TAG-big" "${K[@]}"
before=$(used "rbd/$TAG-big")
expect_exit 0 "$RBD_LUKS" import "$WORK/holey.raw" "rbd:rbd/$TAG-big" "${K[@]}"
after=$(used "rbd/$TAG-big")
[ "$after" -le $((before - 16 * MiB)) ] || fail "8 MiB objects: zeroing two whole objects left $after of $before used"
"$RBD_LUKS" export "rbd:rbd/$TAG-big" - "${K[@]}" | cmp -s - "$WORK/holey.raw" || fail "8 MiB objects: export differs"
native_reads "$CEPH_CONF" "$TAG-big" "$WORK/holey.raw" "$WORK/pass" || fail "8 MiB objects: native read"
pass "8 MiB objects: whole objects of zeros given back ($before -> $after), identical both ways"

# LUKS1, Cinder's format, which Nova reads through QEMU's own LUKS driver (it decrypts holes into
# noise): import writes every byte unless --sparse-size asks.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-luks1" --type luks1 --size 64M "${K[@]}" "${FAST_PBKDF2[@]}"
expect_exit 0 "$RBD_LUKS" import "$WORK/holey.raw" "rbd:rbd/$TAG-luks1" "${K[@]}"
[ "$(used "rbd/$TAG-luks1")" -ge $((64 * MiB)) ] || fail "LUKS1: import left holes ($(used "rbd/$TAG-luks1") used)"
pass "LUKS1: import writes every byte by default"

# Fresh images with zero blocks inside objects that get data: identical through librbd's native
# LUKS2 too, on a store whose sparse reads report holes (bluestore; memstore returns the zeros
# before written data as data, which librbd then decrypts: design.md, "Holes").
if [ -n "${BLUESTORE_CEPH_CONF:-}" ]; then
  for source in sparse holey; do
    CEPH_CONF=$BLUESTORE_CEPH_CONF expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-$source" \
      --size "$(stat -c %s "$WORK/$source.raw")" "${K[@]}" "${FAST_LUKS2[@]}"
    CEPH_CONF=$BLUESTORE_CEPH_CONF expect_exit 0 "$RBD_LUKS" import "$WORK/$source.raw" "rbd:rbd/$TAG-$source" "${K[@]}"
    native_reads "$BLUESTORE_CEPH_CONF" "$TAG-$source" "$WORK/$source.raw" "$WORK/pass" || fail "native read of $source.raw"
  done
  pass "fresh images, zero blocks inside written objects: librbd native reads the sources (bluestore)"
else
  echo "note: BLUESTORE_CEPH_CONF unset: librbd native's reads of fresh sparse imports are left out"
fi
