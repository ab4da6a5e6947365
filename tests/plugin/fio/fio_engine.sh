#!/usr/bin/env bash
# The fio ioengine (plugin/fio/rbd_luks_fio.so) loaded by Debian's own /usr/bin/fio, against the test
# cluster that CEPH_CONF names: random writes of 4k/64k/4m blocks at queue depth 16 verified through
# the engine (and again by a new process), two jobs on disjoint ranges opening with the key that the
# image metadata refers to, data that peers read back (rbd-luks export, librbd's native LUKS2) and
# that is absent from the raw RBD bytes, and open failures (wrong passphrase, missing image, no
# stored key) that name the problem and change nothing. Every run also checks that the engine was
# built against headers matching this fio binary: the engine compares struct layouts with the running
# fio and refuses to start otherwise (docs/fio.md).
# Exits 77 (skipped) only when the rbd-luks binary has not been built; a missing engine fails.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli

FIO=/usr/bin/fio
ENGINE=$(dirname "$RBD_LUKS")/fio/rbd_luks_fio.so
[ -x "$FIO" ] || fail "$FIO is not installed (deploy/install-deps.sh installs it)"
[ -f "$ENGINE" ] || fail "the fio engine $ENGINE is not built: configure with" \
  "-DRBDLUKS_FIO_SOURCE=\$(deploy/fetch-fio-source.sh), as deploy/build.sh does"

PY=/usr/bin/python3
MiB=$((1024 * 1024))
TAG=fio$$
IMG=$TAG-pass
KIMG=$TAG-key
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-fio.XXXXXX")
cleanup() {
  remove_images "rbd/$IMG" "rbd/$KIMG"
  ceph --connect-timeout 20 config-key rm "rbd-luks/$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
# fio leaves its verify state files in the working directory.
cd "$WORK"

# run_fio NAME ARGS...: one fio job NAME through the engine on pool rbd; the JSON report goes to
# WORK/NAME.json, stderr (where the engine's errors go) to WORK/NAME.err. Returns fio's status.
run_fio() {
  local name=$1
  shift
  timeout 120 "$FIO" --name="$name" --ioengine="external:$ENGINE" --pool=rbd "$@" \
    --output-format=json --output="$WORK/$name.json" 2>"$WORK/$name.err"
}

# fio_ok NAME ARGS...: run_fio, which must succeed.
fio_ok() {
  run_fio "$@" || { cat "$WORK/$1.err" >&2; fail "fio job $1 failed"; }
}

# report NAME EXPR: EXPR evaluated in Python over the jobs of WORK/NAME.json (a list of dicts).
report() {
  $PY -c 'import json, sys; jobs = json.load(open(sys.argv[1]))["jobs"]; print(eval(sys.argv[2]))' \
    "$WORK/$1.json" "$2"
}

# fio_err_has NAME TEXT...: the stderr of fio job NAME contains every TEXT.
fio_err_has() {
  local name=$1 text
  shift
  for text in "$@"; do
    grep -qF -- "$text" "$WORK/$name.err" || { cat "$WORK/$name.err" >&2; fail "$name: stderr lacks '$text'"; }
  done
}

# expect_bytes NAME DIR BYTES: the jobs of NAME moved BYTES in direction DIR (read or write), all.
expect_bytes() {
  local got
  got=$(report "$1" "sum(j['$2']['io_bytes'] for j in jobs)")
  [ "$got" -eq "$3" ] || fail "$1: $2 $got bytes, expected $3"
  [ "$(report "$1" "sum(j['error'] for j in jobs)")" -eq 0 ] || fail "$1: a job reports an error"
}

# The engine takes a passphrase file's bytes exactly, as the CLI does: with a trailing newline it is
# another passphrase.
printf '%s' "fio engine passphrase" >"$WORK/pass"
printf '%s\n' "fio engine passphrase" >"$WORK/pass.nl"
printf '%s\n' "not the passphrase" >"$WORK/bad"
MIXED=(--rw=randwrite --bssplit=4k/40:64k/40:4m/20 --iodepth=16 --verify=crc32c --verify_fatal=1)

"$RBD_LUKS" create "rbd:rbd/$IMG" --size 64M --passphrase-file "$WORK/pass" "${FAST_LUKS2[@]}" -q
"$RBD_LUKS" create "rbd:rbd/$KIMG" --size 64M --new-key "config-key:rbd-luks/$TAG" "${FAST_LUKS2[@]}" -q

# --- mixed block sizes, queue depth 16, verified ------------------------------------------------
# No size=: the job covers the plaintext volume (64 MiB), not the RBD image with its LUKS header.
fio_ok mixed --rbdname="$IMG" --passphrase_file="$WORK/pass" "${MIXED[@]}"
expect_bytes mixed write $((64 * MiB))
expect_bytes mixed read $((64 * MiB))
depth16=$(report mixed "jobs[0]['iodepth_level']['16']")
$PY -c "import sys; sys.exit(0 if float('$depth16') > 50 else 1)" ||
  fail "mixed: only $depth16% of the time at queue depth 16: requests are not asynchronous"
# A new process, a new open: the data is there.
fio_ok mixed --rbdname="$IMG" --passphrase_file="$WORK/pass" "${MIXED[@]}" --verify_only
expect_bytes mixed read $((64 * MiB))
pass "4k/64k/4m random writes at iodepth 16 over the whole volume, verified (crc32c) in the same and a new process"

# --- two jobs on disjoint halves, key from the image metadata ----------------------------------
TWO=(--rbdname="$KIMG" "${MIXED[@]}" --numjobs=2 --size=32M --offset_increment=32M)
fio_ok two "${TWO[@]}"
[ "$(report two "len(jobs)")" -eq 2 ] || fail "two: not 2 jobs"
expect_bytes two write $((64 * MiB))
expect_bytes two read $((64 * MiB))
fio_ok two "${TWO[@]}" --verify_only
expect_bytes two read $((64 * MiB))
pass "numjobs=2 with offset_increment, stored key (config-key), verified"

# --- peers read what fio wrote; the raw image does not hold it -----------------------------------
# verify_pattern=%o fills every block with its own offset as 8-byte little-endian words, so the
# plaintext is known without fio; the region lies inside the data that the mixed job left.
fio_ok pattern --rbdname="$IMG" --passphrase_file="$WORK/pass" --rw=randwrite --bs=64k --iodepth=16 \
  --offset=8M --size=16M --verify=pattern --verify_pattern=%o
expect_bytes pattern write $((16 * MiB))
"$RBD_LUKS" export "rbd:rbd/$IMG" "$WORK/export" --passphrase-file "$WORK/pass" -q
rbdc export --no-progress "rbd/$IMG" "$WORK/raw" >/dev/null
data_offset=$("$RBD_LUKS" dump "rbd:rbd/$IMG" --json | $PY -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
$PY - "$CEPH_CONF" "$IMG" "$WORK" "$data_offset" <<'PYEOF'
import struct, sys, rados, rbd
conf, name, work, data_offset = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
MiB, BS = 1 << 20, 64 << 10
start, end = 8 * MiB, 24 * MiB
expected = b"".join(struct.pack("<Q", off) * (BS // 8) for off in range(start, end, BS))
export = open(f"{work}/export", "rb").read()
raw = open(f"{work}/raw", "rb").read()

assert len(export) == 64 * MiB, f"export is {len(export)} bytes"
assert export[start:end] == expected, "rbd-luks export differs from the pattern fio wrote"
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("rbd") as io, \
        rbd.Image(io, name, read_only=True) as image:
    image.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open(f"{work}/pass", "rb").read())
    native = image.read(0, image.size())
# Outside the pattern: what the mixed job wrote (the whole volume), the same for both readers.
assert native == export, "librbd's native LUKS2 reads other plaintext than rbd-luks export"

assert len(raw) == data_offset + 64 * MiB, f"raw image is {len(raw)} bytes"
sectors = {expected[i:i + 4096] for i in range(0, len(expected), 4096)}
leaked = sum(raw[i:i + 4096] in sectors for i in range(0, len(raw), 4096))
assert leaked == 0, f"{leaked} plaintext sectors stored unencrypted in the raw image"
assert raw.find(expected[:64]) < 0, "a plaintext run appears in the raw image"
PYEOF
pass "fio's pattern reads back through rbd-luks export and librbd native LUKS2; raw RBD holds no plaintext"

# fio's output never shows a passphrase (its JSON report lists the job options, with the file name).
! grep -qF "fio engine passphrase" "$WORK"/*.json "$WORK"/*.err || fail "a passphrase appears in fio's output"

# --- open failures: non-zero exit, a line naming image and cause, the image unchanged -----------
sum_raw() { rbdc export --no-progress "rbd/$IMG" - 2>/dev/null | sha256sum; }
before=$(sum_raw)
! run_fio wrong --rbdname="$IMG" --passphrase_file="$WORK/bad" --rw=write --bs=4k --size=1M ||
  fail "fio with a wrong passphrase exited 0"
fio_err_has wrong "rbd_luks_fio: cannot open image rbd/$IMG with the passphrase in $WORK/bad" \
  "no keyslot opens with this passphrase"
[ "$(sum_raw)" = "$before" ] || fail "fio with a wrong passphrase changed the image"
! run_fio newline --rbdname="$IMG" --passphrase_file="$WORK/pass.nl" --rw=write --bs=4k --size=1M ||
  fail "fio accepted the passphrase with a newline appended"
fio_err_has newline "no keyslot opens with this passphrase"
[ "$(sum_raw)" = "$before" ] || fail "fio with a wrong passphrase changed the image"
pass "wrong passphrase (also the right one plus a newline): fio fails, says why, image unchanged"

! run_fio missing --rbdname="$TAG-missing" --passphrase_file="$WORK/pass" --rw=read --bs=4k ||
  fail "fio on a missing image exited 0"
fio_err_has missing "cannot open image rbd/$TAG-missing" "does not exist"
! run_fio nokey --rbdname="$IMG" --rw=write --bs=4k --size=1M || fail "fio without any key exited 0"
fio_err_has nokey "cannot open image rbd/$IMG with the key its metadata refers to" "records no key reference"
[ "$(sum_raw)" = "$before" ] || fail "a failed fio run changed the image"
pass "missing image and no stored key: fio fails and says why"

echo "fio_engine: all passed"
