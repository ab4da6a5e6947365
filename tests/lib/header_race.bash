# Races of header changes against one LUKS volume, for the header-lock tests on RBD images
# (tests/plugin/cli/rbd/header_lock.sh) and on image files (tests/plugin/cli/file/header_lock.sh).
# Sourced after common.bash (fail, pass, FAST_PBKDF2); the sourcing script sets RBD_LUKS and WORK.
# A failed change must be a clean error (exit 1: the lock stayed busy; exit 3: the key no longer
# opens the header), never a success that did not stick.

# race_keyslot_adds TARGET OLD_PASSFILE N: N concurrent `keyslot add` processes, each with its own
# new passphrase; afterwards every passphrase whose add reported success opens the volume.
race_keyslot_adds() {
  local target=$1 old=$2 n=$3 i rc
  local -a pids=()
  for ((i = 0; i < n; i++)); do
    printf 'added passphrase %d' "$i" >"$WORK/add$i"
    "$RBD_LUKS" keyslot add "$target" --passphrase-file "$old" --new-passphrase-file "$WORK/add$i" \
      "${FAST_PBKDF2[@]}" >/dev/null 2>"$WORK/add$i.err" &
    pids+=($!)
  done
  local succeeded=0
  for ((i = 0; i < n; i++)); do
    rc=0
    wait "${pids[$i]}" || rc=$?
    check_race_exit "keyslot add #$i" "$rc" "$WORK/add$i.err" 1
    [ "$rc" -eq 0 ] || continue
    succeeded=$((succeeded + 1))
    expect_opens "$target" "$WORK/add$i" "keyslot add #$i reported success, but its passphrase"
  done
  [ "$succeeded" -gt 0 ] || fail "none of $n concurrent keyslot adds succeeded"
  pass "$n concurrent keyslot adds on $target: $succeeded succeeded, each opens afterwards"
}

# race_rotations TARGET OLD_PASSFILE N: N concurrent key rotations, each "add a new passphrase
# (authorised by the old one), then remove the old one's keyslot (authorised by the new one)",
# the way a rotation script does it. Afterwards the volume still opens, and every new passphrase
# whose add reported success opens it.
race_rotations() {
  local target=$1 old=$2 n=$3 i rc
  local old_slot
  old_slot=$("$RBD_LUKS" check "$target" --passphrase-file "$old" 2>&1 | grep -oE 'keyslot [0-9]+' | cut -d' ' -f2)
  [ -n "$old_slot" ] || fail "cannot tell which keyslot the old passphrase opens"
  local -a pids=()
  for ((i = 0; i < n; i++)); do
    printf 'rotated passphrase %d' "$i" >"$WORK/rot$i"
    (
      rc=0
      "$RBD_LUKS" keyslot add "$target" --passphrase-file "$old" --new-passphrase-file "$WORK/rot$i" \
        "${FAST_PBKDF2[@]}" >/dev/null 2>"$WORK/rot$i.add.err" || rc=$?
      echo "$rc" >"$WORK/rot$i.add.rc"
      [ "$rc" -eq 0 ] || exit 0
      rc=0
      "$RBD_LUKS" keyslot remove "$target" "$old_slot" --passphrase-file "$WORK/rot$i" \
        >/dev/null 2>"$WORK/rot$i.remove.err" || rc=$?
      echo "$rc" >"$WORK/rot$i.remove.rc"
    ) &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  local added=0
  for ((i = 0; i < n; i++)); do
    rc=$(cat "$WORK/rot$i.add.rc")
    check_race_exit "rotation #$i: keyslot add" "$rc" "$WORK/rot$i.add.err" 1 3
    if [ -f "$WORK/rot$i.remove.rc" ]; then
      # Another rotation may have removed the old keyslot first: "not active" is a usage error.
      check_race_exit "rotation #$i: keyslot remove" "$(cat "$WORK/rot$i.remove.rc")" "$WORK/rot$i.remove.err" 1 2
    fi
    [ "$rc" -eq 0 ] || continue
    added=$((added + 1))
    expect_opens "$target" "$WORK/rot$i" "rotation #$i added its passphrase, but it"
  done
  [ "$added" -gt 0 ] || fail "every one of $n rotations failed to add its passphrase: $target is locked"
  pass "$n concurrent key rotations on $target: $added added a passphrase, each opens afterwards"
}

# expect_opens TARGET PASSFILE WHAT: PASSFILE still opens TARGET, or the test fails saying WHAT.
expect_opens() {
  "$RBD_LUKS" check "$1" --passphrase-file "$2" 2>"$WORK/check.err" ||
    fail "$3 no longer opens $1 ($(cat "$WORK/check.err"))"
}

# check_race_exit WHAT RC ERRFILE ALLOWED...: RC is 0 or one of the allowed failure codes, and a
# failure printed exactly one "rbd-luks: error:" line.
check_race_exit() {
  local what=$1 rc=$2 err=$3 code
  shift 3
  [ "$rc" -ne 0 ] || return 0
  for code in "$@"; do
    if [ "$rc" -eq "$code" ]; then
      [ "$(wc -l <"$err")" -eq 1 ] && grep -q '^rbd-luks: error: ' "$err" ||
        fail "$what failed (exit $rc) without a one-line error: $(cat "$err")"
      return 0
    fi
  done
  fail "$what exited $rc: $(cat "$err")"
}
