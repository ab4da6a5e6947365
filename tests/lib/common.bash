# Helpers shared by the shell tests (tests/plugin/cli/file/*.sh through their lib.bash, and the
# cluster tests through rbd.bash): "ok" lines, failing at the first error, and exit-code checks of
# rbd-luks that also hold it to its one-line error message. Sourced, not run. The sourcing script sets RBD_LUKS
# (the binary under test) and WORK (its scratch directory, which gets the files out and err).

# Fast KDF settings, so tests spend their time on behaviour rather than on key stretching.
# shellcheck disable=SC2034  # for the sourcing scripts
FAST_LUKS2=(--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1)
# shellcheck disable=SC2034
FAST_PBKDF2=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

# expect_exit CODE CMD...: runs CMD with its output in $WORK/out and $WORK/err and checks its exit
# code; when CMD runs rbd-luks (directly or through env and the like) and fails, its stderr must be
# exactly one "rbd-luks: error:" line.
expect_exit() {
  local want=$1; shift
  local rc=0
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  [ "$rc" -eq "$want" ] || { cat "$WORK/err" >&2; fail "'$*' exited $rc, expected $want"; }
  local arg runs_ours=
  for arg in "$@"; do [ "$arg" != "$RBD_LUKS" ] || runs_ours=yes; done
  if [ "$want" -ne 0 ] && [ -n "$runs_ours" ]; then
    grep -q '^rbd-luks: error: ' "$WORK/err" || { cat "$WORK/err" >&2; fail "'$*' printed no 'rbd-luks: error:' line"; }
    [ "$(wc -l <"$WORK/err")" -eq 1 ] || { cat "$WORK/err" >&2; fail "'$*' printed more than one line on stderr"; }
  fi
  return 0
}

# err_has TEXT: the stderr of the last expect_exit contains TEXT.
err_has() { grep -qF -- "$1" "$WORK/err" || { cat "$WORK/err" >&2; fail "stderr lacks '$1'"; }; }

