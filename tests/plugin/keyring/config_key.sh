#!/usr/bin/env bash
# Keys in Ceph config-key on the real cluster: --new-key config-key:KEY stores a fresh key and records
# it; a new process opens the image with only the metadata, as a restricted cephx user that may read
# config-key entries under "rbd-luks/" and nothing else of config-key; failures exit 5 and write nothing.
# --new-key never overwrites a key, also for a client that may not ask whether one exists, and
# uses no key it could not read back; a failed create removes only the key it stored.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli

TAG=ck$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-ck.XXXXXX")
cephc() { ceph --connect-timeout 20 "$@"; }
cleanup() {
  remove_images "rbd/$TAG" "rbd/$TAG-pre" "rbd/$TAG-noget"
  for k in "rbd-luks/$TAG" "other/$TAG" "rbd-luks/$TAG-pre" "rbd-luks/$TAG-noget" "rbd-luks/$TAG-rb"; do
    cephc config-key rm "$k" >/dev/null 2>&1 || true
  done
  for u in "$TAG-reader" "$TAG-nocap" "$TAG-noexists" "$TAG-noget"; do cephc auth rm "client.$u" >/dev/null 2>&1 || true; done
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

# creator USER CMD...: a cephx user with rbd caps and the config-key commands CMD... under rbd-luks/.
creator() {
  local user=$1 caps="profile rbd" cmd; shift
  for cmd in "$@"; do caps+=", allow command \"config-key $cmd\" with \"key\" prefix \"rbd-luks/\""; done
  cephc auth get-or-create "client.$user" mon "$caps" osd "profile rbd pool=rbd" -o "$WORK/$user.keyring" >/dev/null
}

# An existing key, and a creator that may get, set and rm but not ask "exists": rbd-luks must not
# take the refused question for "no such key" and overwrite it.
printf 'precious' >"$WORK/precious"
cephc config-key set "rbd-luks/$TAG-pre" -i "$WORK/precious" >/dev/null 2>&1
creator "$TAG-noexists" get set rm
expect_exit 5 "$RBD_LUKS" --id "$TAG-noexists" --keyring "$WORK/$TAG-noexists.keyring" \
  create "rbd:rbd/$TAG-pre" --size 16M --new-key "config-key:rbd-luks/$TAG-pre" "${FAST_LUKS2[@]}"
err_has "config-key exists of rbd-luks/$TAG-pre: Permission denied"
cephc config-key get "rbd-luks/$TAG-pre" -o "$WORK/held" 2>/dev/null
cmp -s "$WORK/precious" "$WORK/held" || fail "an existing config-key was overwritten"
! rbd info "rbd/$TAG-pre" >/dev/null 2>&1 || fail "a refused --new-key left an image"
pass "--new-key config-key: without the exists cap: exit 5, the existing key untouched"

# A creator that may not read keys back cannot check that the key is its own: exit 5, no image, and
# the key it set is left for the operator (unverified, so not provably its to delete).
creator "$TAG-noget" exists set rm
expect_exit 5 "$RBD_LUKS" --id "$TAG-noget" --keyring "$WORK/$TAG-noget.keyring" \
  create "rbd:rbd/$TAG-noget" --size 16M --new-key "config-key:rbd-luks/$TAG-noget" "${FAST_LUKS2[@]}"
err_has "config-key:rbd-luks/$TAG-noget was set but could not be read back"
! rbd info "rbd/$TAG-noget" >/dev/null 2>&1 || fail "an unverified --new-key left an image"
pass "--new-key config-key: a key that cannot be read back is not used"

# create over an existing image fails after the key was stored: that key, and only it, goes again.
expect_exit 1 "$RBD_LUKS" create "rbd:rbd/$TAG" --size 16M --new-key "config-key:rbd-luks/$TAG-rb" "${FAST_LUKS2[@]}"
! cephc config-key exists "rbd-luks/$TAG-rb" >/dev/null 2>&1 || fail "the key of a failed create was left behind"
pass "failed create: the key it stored is removed"
