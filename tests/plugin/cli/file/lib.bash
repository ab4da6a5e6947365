# Shared helpers for the interoperability tests (sourced, not run).
# Each test gets a private temporary directory, removed on exit, and fails on the first error.
set -euo pipefail

: "${RBD_LUKS:?RBD_LUKS must point at the rbd-luks binary}"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# fail, pass, expect_exit, err_has, FAST_LUKS2, FAST_PBKDF2
# shellcheck source-path=SCRIPTDIR source=../../../lib/common.bash
source "$HERE/../../../lib/common.bash"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# passfile NAME TEXT: a passphrase file holding exactly TEXT (no newline).
passfile() { printf '%s' "$2" >"$WORK/$1"; echo "$WORK/$1"; }

# sparse IMAGE SIZE: a sparse file.
sparse() { rm -f "$1"; truncate -s "$2" "$1"; }

# Volume key as lowercase hex, from cryptsetup and from rbd-luks.
vk_cryptsetup() {
  cryptsetup luksDump --batch-mode --dump-volume-key --key-file "$2" "$1" |
    sed -n '/MK dump:/,$p' | sed 's/MK dump://' | grep -oE '\b[0-9a-f]{2}\b' | tr -d '\n'
}
vk_ours() {
  rm -f "$WORK/vk.bin"
  "$RBD_LUKS" -q dump "file:$1" --dump-volume-key --volume-key-file "$WORK/vk.bin" --passphrase-file "$2"
  xxd -p -c 256 "$WORK/vk.bin" | tr -d '\n'
}
