#!/usr/bin/env bash
# Writes LUKS images for the seed corpus into DIR: headers as `cryptsetup luksFormat` and
# `rbd-luks create` write them, in the shapes each tool offers (LUKS1 and LUKS2, pbkdf2 and argon2,
# sector and metadata sizes, labels, a second keyslot, a token). Every KDF is set to its cheapest.
#
# Usage: make_seed_images.sh DIR [RBD_LUKS_BINARY]
# Without the rbd-luks binary, or without cryptsetup, that tool's images are left out, except under
# RBDLUKS_REQUIRE_ALL=1 (CI), where a missing tool fails.
set -euo pipefail
dir=$1 rbd_luks=${2:-}
mkdir -p "$dir"
printf '%s' 'fuzz seed passphrase' >"$dir/pass"
printf '%s' 'second passphrase' >"$dir/pass2"

missing() {
  if [ "${RBDLUKS_REQUIRE_ALL:-0}" = 1 ]; then
    echo "make_seed_images.sh: $1 is missing (RBDLUKS_REQUIRE_ALL=1)" >&2
    exit 1
  fi
  echo "make_seed_images.sh: $1 is missing; its seeds are left out" >&2
}

fast_pbkdf2=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)
fast_argon2=(--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1)

if command -v cryptsetup >/dev/null; then
  cs() {  # cs NAME OPTIONS...: a 20 MiB image formatted by cryptsetup
    local image=$dir/cryptsetup-$1.img
    shift
    truncate -s 20M "$image"
    cryptsetup luksFormat -q --key-file "$dir/pass" "$@" "$image"
  }
  cs luks2-pbkdf2 --type luks2 "${fast_pbkdf2[@]}"
  cs luks2-argon2id --type luks2 "${fast_argon2[@]}" --label fuzz-seed --subsystem rbd-luks
  cs luks2-argon2i --type luks2 --pbkdf argon2i --pbkdf-force-iterations 4 --pbkdf-memory 32 --sector-size 512
  cs luks2-metadata-64k --type luks2 "${fast_pbkdf2[@]}" --luks2-metadata-size 64k --luks2-keyslots-size 2m \
    &>/dev/null  # it warns that 2 MiB of keyslots area holds few keyslots
  cs luks2-cbc-256 --type luks2 "${fast_pbkdf2[@]}" --key-size 256 --hash sha512 --cipher aes-cbc-essiv:sha256
  cs luks1 --type luks1 "${fast_pbkdf2[@]}"
  cs luks1-sha1-256 --type luks1 "${fast_pbkdf2[@]}" --hash sha1 --key-size 256
  # A second keyslot, and a token, on copies of the first.
  cp "$dir/cryptsetup-luks2-pbkdf2.img" "$dir/cryptsetup-luks2-two-slots.img"
  cryptsetup luksAddKey -q "${fast_pbkdf2[@]}" --key-file "$dir/pass" "$dir/cryptsetup-luks2-two-slots.img" \
    "$dir/pass2"
  cryptsetup token import --json-file - "$dir/cryptsetup-luks2-two-slots.img" \
    <<<'{"type":"rbd-luks-seed","keyslots":["0"],"note":"a token cryptsetup keeps verbatim"}'
  cp "$dir/cryptsetup-luks1.img" "$dir/cryptsetup-luks1-two-slots.img"
  cryptsetup luksAddKey -q "${fast_pbkdf2[@]}" --key-file "$dir/pass" "$dir/cryptsetup-luks1-two-slots.img" \
    "$dir/pass2"
else
  missing cryptsetup
fi

if [ -n "$rbd_luks" ] && [ -x "$rbd_luks" ]; then
  ours() {  # ours NAME OPTIONS...: an image file created by rbd-luks
    local image=$dir/rbd-luks-$1.img
    shift
    "$rbd_luks" create "file:$image" --size 1M --passphrase-file "$dir/pass" --quiet "$@"
  }
  ours luks2 "${fast_argon2[@]}"
  ours luks2-pbkdf2-512 "${fast_pbkdf2[@]}" --sector-size 512 --key-size 256
  ours luks1 --type luks1 "${fast_pbkdf2[@]}"
  "$rbd_luks" keyslot add "file:$dir/rbd-luks-luks2.img" --passphrase-file "$dir/pass" \
    --new-passphrase-file "$dir/pass2" "${fast_argon2[@]}" --quiet
else
  missing "the rbd-luks binary (build/plugin/rbd-luks)"
fi
