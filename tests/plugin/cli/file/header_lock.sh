#!/usr/bin/env bash
# Header changes from many processes at once on one image file: concurrent `keyslot add`s and key
# rotations (add new, remove old) each either stick or fail cleanly, and never lock everyone out.
# shellcheck source=lib.bash
source "$TEST_LIB"
# shellcheck source-path=SCRIPTDIR source=../../../lib/header_race.bash
source "$HERE/../../../lib/header_race.bash"

P1=$(passfile p1 "first passphrase")
export RBD_LUKS_LOCK_TIMEOUT=60

expect_exit 0 "$RBD_LUKS" create "file:$WORK/adds.img" --size 4M --passphrase-file "$P1" "${FAST_PBKDF2[@]}"
race_keyslot_adds "file:$WORK/adds.img" "$P1" 8

expect_exit 0 "$RBD_LUKS" create "file:$WORK/rot.img" --size 4M --passphrase-file "$P1" "${FAST_PBKDF2[@]}"
race_rotations "file:$WORK/rot.img" "$P1" 6
