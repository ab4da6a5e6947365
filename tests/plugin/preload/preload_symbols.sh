#!/usr/bin/env bash
# The preload library defines every librbd C function that takes an image or completion handle,
# covers (implements or forwards) every such function that QEMU's rbd driver and fio import, and
# librbd_luks.so (which the preload library runs on) imports none of librbd's C functions, so that
# none of rbd-luks's own calls into librbd comes back to the preload library.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/common.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/common.bash"
block_rbd=$(dpkg -L qemu-block-extra | grep '/block-rbd\.so$')
python3 "$PRELOAD_CHECK" "$LIBRBD_HEADER" "$PRELOAD_TABLE" --check "$PRELOAD_LIBRARY" "$block_rbd" "$(command -v fio)" ||
  fail "the preload library does not cover librbd's C API as QEMU and fio use it"
pass "every image and completion function defined; QEMU's and fio's imports covered"
own=$(nm -D --undefined-only "$LIBRBD_LUKS" | awk '$2 ~ /^rbd_/ { print $2 }')
[ -z "$own" ] || fail "librbd_luks.so calls librbd's C API, which the preload library would intercept: $own"
pass "librbd_luks.so reaches librbd through its C++ API only"
