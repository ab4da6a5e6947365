#!/usr/bin/env bash
# preload_api_test (librbd's C API, nothing of rbd-luks linked) under librbd_luks_preload.so, on an
# encrypted image that a client-side `image =` line opts in and on a plain image.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
TAG=preapi$$
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-preload-api.XXXXXX")
cleanup() {
  remove_images "rbd/$TAG-enc" "rbd/$TAG-plain"
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "api passphrase" >"$WORK/pass"
expect_exit 0 "$RBD_LUKS" create "rbd:rbd/$TAG-enc" --size 32M --passphrase-file "$WORK/pass" "${FAST_LUKS2[@]}"
rbdc create --size 32M "rbd/$TAG-plain"
printf 'image = rbd/%s\npassphrase-file = %s\n' "$TAG-enc" "$WORK/pass" >"$WORK/preload.conf"
# In the sanitizer build the library links ASan's runtime, which must come first of all libraries.
preload=$PRELOAD_LIBRARY
asan=$(ldd "$PRELOAD_LIBRARY" | awk '/libasan/ { print $3 }')
[ -z "$asan" ] || preload="$asan $PRELOAD_LIBRARY"
RBD_LUKS_PRELOAD_CONF="$WORK/preload.conf" PRELOAD_TEST_ENCRYPTED="$TAG-enc" PRELOAD_TEST_PLAIN="$TAG-plain" \
  LD_PRELOAD="$preload" "$PRELOAD_API_TEST" || fail "preload_api_test failed"
pass "librbd's C API through the preload library behaves as librbd on plain and encrypted images"
