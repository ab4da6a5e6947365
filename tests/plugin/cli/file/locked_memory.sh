#!/usr/bin/env bash
# Memory for keys and passphrases: where it can be locked, rbd-luks says nothing about it; where it
# cannot (no CAP_IPC_LOCK and RLIMIT_MEMLOCK 0), rbd-luks still works and says so in one warning
# line on stderr, which holds no secret, before any error line.
source "$TEST_LIB"

P1=$(passfile p1 "locked-memory passphrase")
PW=$(passfile pw "wrong")
IMG=$WORK/img
expect_exit 0 "$RBD_LUKS" create "file:$IMG" --size 4M --passphrase-file "$P1" "${FAST_LUKS2[@]}"

"$RBD_LUKS" -q check "file:$IMG" --passphrase-file "$P1" 2>"$WORK/err" || fail "check failed: $(cat "$WORK/err")"
[ ! -s "$WORK/err" ] || fail "a warning although memory could be locked: $(cat "$WORK/err")"
pass "memory lockable: no warning"

# Root may lock regardless of RLIMIT_MEMLOCK (CAP_IPC_LOCK), so root drops the capability first.
no_lock=(prlimit --memlock=0:0)
[ "$(id -u)" != 0 ] || no_lock=(setpriv --bounding-set -ipc_lock "${no_lock[@]}")
"${no_lock[@]}" "$RBD_LUKS" -q check "file:$IMG" --passphrase-file "$P1" 2>"$WORK/err" ||
  fail "check without lockable memory failed: $(cat "$WORK/err")"
[ "$(wc -l <"$WORK/err")" -eq 1 ] || fail "expected one warning line: $(cat "$WORK/err")"
grep -q '^rbd-luks: warning: cannot lock memory for keys and passphrases (mlock: .*RLIMIT_MEMLOCK 0 bytes): they may be written to swap$' \
  "$WORK/err" || fail "unexpected warning: $(cat "$WORK/err")"
! grep -qF "locked-memory passphrase" "$WORK/err" || fail "the passphrase is in the warning"
pass "memory not lockable: works, one warning line"

rc=0
"${no_lock[@]}" "$RBD_LUKS" check "file:$IMG" --passphrase-file "$PW" 2>"$WORK/err" || rc=$?
[ "$rc" -eq 3 ] || fail "wrong passphrase without lockable memory exited $rc"
[ "$(wc -l <"$WORK/err")" -eq 2 ] && sed -n 1p "$WORK/err" | grep -q '^rbd-luks: warning: ' &&
  sed -n 2p "$WORK/err" | grep -q '^rbd-luks: error: ' || fail "expected the warning, then one error line: $(cat "$WORK/err")"
pass "a failure without lockable memory: the warning, then the one error line"
