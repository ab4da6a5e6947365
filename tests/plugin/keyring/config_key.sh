#!/usr/bin/env bash
# Keys in Ceph config-key on the real cluster: --new-key config-key:KEY stores a fresh key and records
# it; a new process opens the image with only the metadata, as a restricted cephx user that may read
# config-key entries under "rbd-luks/" and nothing else of config-key; failures exit 5 and write nothing.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli

TAG=ck$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-ck.XXXXXX")
cephc() { ceph --connect-timeout 20 "$@"; }
cleanup() {
  remove_images "rbd/$TAG"
  for k in "rbd-luks/$TAG" "other/$TAG"; do cephc config-key rm "$k" >/dev/null 2>&1 || true; done
  for u in "$TAG-reader" "$TAG-nocap"; do cephc auth rm "client.$u" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG" --size 16M --new-key "config-key:rbd-luks/$TAG" "${FAST_LUKS2[@]}"
[ "$(rbd image-meta get "rbd/$TAG" rbd-luks.key-ref)" = "config-key:rbd-luks/$TAG" ] || fail "key reference not in the image metadata"
cephc config-key get "rbd-luks/$TAG" -o "$WORK/key" 2>/dev/null
[ "$(stat -c %s "$WORK/key")" -eq 64 ] || fail "config-key does not hold a 64-byte key"
printf 'data via config-key' | "$RBD_LUKS" write "rbd:rbd/$TAG" --offset 4096
pass "--new-key config-key: created, recorded, usable"

# A restricted client: rbd access plus config-key get under rbd-luks/ only.
cephc auth get-or-create "client.$TAG-reader" \
  mon "profile rbd, allow command \"config-key get\" with \"key\" prefix \"rbd-luks/\"" \
  osd "profile rbd pool=rbd" -o "$WORK/reader.keyring" >/dev/null
got=$("$RBD_LUKS" --id "$TAG-reader" --keyring "$WORK/reader.keyring" read "rbd:rbd/$TAG" --offset 4096 --length 19)
[ "$got" = "data via config-key" ] || fail "restricted reader got '$got'"
pass "restricted cephx user (config-key get under rbd-luks/) opens with metadata alone"

# The same user cannot read a key outside its prefix: exit 5, and the message says why.
cephc config-key set "other/$TAG" -i "$WORK/key" >/dev/null 2>&1
expect_exit 5 "$RBD_LUKS" --id "$TAG-reader" --keyring "$WORK/reader.keyring" check "rbd:rbd/$TAG" --key-ref "config-key:other/$TAG"
grep -q "caps" "$WORK/err" || fail "no hint about caps: $(cat "$WORK/err")"
# A user with rbd caps but no config-key cap at all: exit 5.
cephc auth get-or-create "client.$TAG-nocap" mon "profile rbd" osd "profile rbd pool=rbd" -o "$WORK/nocap.keyring" >/dev/null
expect_exit 5 "$RBD_LUKS" --id "$TAG-nocap" --keyring "$WORK/nocap.keyring" check "rbd:rbd/$TAG"
pass "cephx user without the cap: exit 5"

# A missing config-key: exit 5, nothing written.
rbd export "rbd/$TAG" "$WORK/before" >/dev/null 2>&1
cephc config-key rm "rbd-luks/$TAG" >/dev/null 2>&1
expect_exit 5 "$RBD_LUKS" write "rbd:rbd/$TAG" --offset 0 </dev/null
rbd export "rbd/$TAG" "$WORK/after" >/dev/null 2>&1
cmp -s "$WORK/before" "$WORK/after" || fail "image changed although the key was missing"
pass "missing config-key: exit 5, image unchanged"
