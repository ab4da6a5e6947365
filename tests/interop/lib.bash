# Shared helpers for the interoperability tests (sourced, not run).
# Each test gets a private temporary directory, removed on exit, and fails on the first error.
set -euo pipefail

: "${RBD_LUKS:?RBD_LUKS must point at the rbd-luks binary}"
PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-test.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Fast KDF settings, so tests spend their time on behaviour rather than on key stretching.
FAST_LUKS2=(--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1)
FAST_PBKDF2=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE CMD...: runs CMD, checks its exit code, and that a failure printed one
# "rbd-luks: error:" line on stderr.
expect_exit() {
  local want=$1; shift
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$WORK/err" >&2; fail "'$*' exited $rc, expected $want"; }
  if [ "$want" -ne 0 ] && [ "$(basename "$1")" = "rbd-luks" ]; then
    grep -q '^rbd-luks: error: ' "$WORK/err" || fail "'$*' printed no 'rbd-luks: error:' line"
    [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err" >&2; fail "'$*' printed more than one line on stderr"; }
  fi
  return 0
}

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
