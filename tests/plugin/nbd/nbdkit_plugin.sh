#!/usr/bin/env bash
# nbdkit-rbdluks-plugin.so with real NBD clients (nbdinfo, nbdcopy, fio's nbd engine) over a unix
# socket, against the test cluster that CEPH_CONF names: sizes and flags, data both ways read back
# by `rbd-luks export` and librbd's native LUKS2, zeros copied as NBD zero requests, the allocation
# map as NBD extents, fio with verify, the key from the image metadata, and a wrong key refused
# before nbdkit serves anything.
# Exits 77 (skipped) only when the rbd-luks binary or the plugin has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
if [ -z "${NBDKIT_PLUGIN:-}" ] || [ ! -f "$NBDKIT_PLUGIN" ]; then
  why="the nbdkit plugin is not built (NBDKIT_PLUGIN=${NBDKIT_PLUGIN:-unset}; needs nbdkit-plugin-dev)"
  [ "${RBDLUKS_REQUIRE_ALL:-}" != 1 ] || fail "$why (RBDLUKS_REQUIRE_ALL=1: nothing may be skipped)"
  echo "SKIP: $why"
  exit 77
fi
for tool in nbdkit nbdinfo nbdcopy fio; do
  command -v "$tool" >/dev/null || fail "$tool is missing (deploy/install-deps.sh installs it)"
done

PY=/usr/bin/python3
MiB=$((1024 * 1024))
TAG=nbd$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-nbd.XXXXXX")
cleanup() {
  remove_images "rbd/$TAG" "rbd/$TAG-ref"
  ceph config-key rm "rbd-luks/$TAG" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "nbd passphrase" >"$WORK/pass"
printf '%s' "not the passphrase" >"$WORK/wrong"
K=(--passphrase-file "$WORK/pass")
serve() { nbdkit -U - "$NBDKIT_PLUGIN" image="rbd/$1" "${@:2}"; }

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG" --size 64M "${K[@]}" "${FAST_LUKS2[@]}"
serve "$TAG" passphrase-file="$WORK/pass" --run 'nbdinfo --json "$uri"' >"$WORK/info.json"
$PY - "$WORK/info.json" <<'PYEOF' || fail "nbdinfo: $(cat "$WORK/info.json")"
import json, sys
info = json.load(open(sys.argv[1]))
export = info["exports"][0]
assert export["export-size"] == 64 << 20, export["export-size"]
for flag in ("can_flush", "can_trim", "can_zero", "can_multi_conn"):
    assert export[flag], flag
assert not export["is_read_only"]
PYEOF
pass "nbdinfo: the plaintext size, writable, flush, trim, zero and multi-conn"

# Data in and out with nbdcopy, read back by rbd-luks and by librbd's native LUKS2.
head -c $((20 * MiB)) /dev/urandom >"$WORK/data"
serve "$TAG" passphrase-file="$WORK/pass" --run "nbdcopy '$WORK/data' \"\$uri\" && nbdcopy \"\$uri\" '$WORK/out'"
cmp -s <(head -c $((20 * MiB)) "$WORK/out") "$WORK/data" || fail "nbdcopy out differs from what went in"
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG" "$WORK/exported" "${K[@]}"
cmp -s <(head -c $((20 * MiB)) "$WORK/exported") "$WORK/data" || fail "rbd-luks export differs from what nbdcopy wrote"
native_reads "$CEPH_CONF" "$TAG" "$WORK/data" "$WORK/pass" || fail "librbd native LUKS2 reads other bytes"
pass "nbdcopy in and out; rbd-luks and librbd native read what NBD wrote"

# The allocation map as NBD extents: data, then a hole that reads as zeros.
serve "$TAG" passphrase-file="$WORK/pass" --run 'nbdinfo --map "$uri"' >"$WORK/map"
grep -qE '^ +0 +20971520 +0 +data' "$WORK/map" || fail "extents: $(cat "$WORK/map")"
grep -qE '^ +20971520 +46137344 +3 +hole,zero' "$WORK/map" || fail "extents: $(cat "$WORK/map")"
pass "NBD extents follow the image's allocation map"

# Zeros over data: nbdcopy sends the source's zero blocks as NBD zero requests.
holey_file "$WORK/holey"
serve "$TAG" passphrase-file="$WORK/pass" --run "nbdcopy '$WORK/holey' \"\$uri\""
expect_exit 0 "$RBD_LUKS" export "rbd:rbd/$TAG" "$WORK/exported" "${K[@]}"
cmp -s <(head -c $((20 * MiB)) "$WORK/exported") "$WORK/holey" || fail "zeros written through NBD do not read back as zeros"
pass "zero requests read back as zeros"

# fio's own nbd engine, random writes of 4 KiB and unaligned 6 KiB with crc32c verification.
for bs in 4k 6k; do
  serve "$TAG" passphrase-file="$WORK/pass" --run "fio --name=verify --ioengine=nbd --uri=\"\$uri\" --rw=randwrite \
    --bs=$bs --iodepth=8 --size=16M --verify=crc32c --do_verify=1 --verify_fatal=1 --verify_state_save=0 >'$WORK/fio.out' 2>&1" ||
    { cat "$WORK/fio.out" >&2; fail "fio nbd engine, bs=$bs"; }
done
pass "fio's nbd engine: 4 KiB and 6 KiB random writes verify (crc32c)"

# A wrong key: nbdkit stops before it listens, with one error line, and runs nothing.
rc=0
serve "$TAG" passphrase-file="$WORK/wrong" --run "touch '$WORK/ran'" 2>"$WORK/err" || rc=$?
[ "$rc" -ne 0 ] || fail "nbdkit served an image with a wrong key"
[ ! -e "$WORK/ran" ] || fail "nbdkit ran its command with a wrong key"
grep -q "no keyslot opens" "$WORK/err" || fail "wrong key: $(cat "$WORK/err")"
pass "a wrong key stops nbdkit before it serves: $(head -1 "$WORK/err")"

# The key from the image metadata (config-key), limited by accept-key-refs.
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-ref" --size 16M --new-key "config-key:rbd-luks/$TAG" "${FAST_LUKS2[@]}"
serve "$TAG-ref" accept-key-refs=config-key --run 'nbdcopy /dev/urandom "$uri" --length=1M 2>/dev/null || true; nbdinfo --size "$uri"' \
  >"$WORK/size" || fail "nbdkit with the key from the metadata"
[ "$(cat "$WORK/size")" -eq $((16 * MiB)) ] || fail "key from metadata: size $(cat "$WORK/size")"
rc=0
serve "$TAG-ref" accept-key-refs=barbican --run true 2>"$WORK/err" || rc=$?
[ "$rc" -ne 0 ] || fail "nbdkit took a key reference that accept-key-refs leaves out"
pass "the key from the image's key reference; one that accept-key-refs leaves out is refused"
