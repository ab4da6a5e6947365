#!/usr/bin/env bash
# Configures and builds rbd-luks into build/ (or $RBD_LUKS_BUILD_DIR). Extra arguments go to cmake
# at configure time, e.g. -DRBDLUKS_SANITIZE=ON for the sanitizer build. $RBD_LUKS_BUILD_TARGET, when
# set, builds only that target (e.g. rbd_stress_tsan).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${RBD_LUKS_BUILD_DIR:-$root/build}
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/ccache}
# Relative paths and no working directory in the hash, so fresh clones (CI) hit the same cache.
export CCACHE_BASEDIR=$root CCACHE_NOHASHDIR=true
# The fio ioengine compiles against Debian's source of the installed fio (docs/fio.md); cached.
fio_source=$(bash "$root/deploy/fetch-fio-source.sh")
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRBDLUKS_FIO_SOURCE="$fio_source" "$@" >/dev/null
cmake --build "$build" -j "$(nproc)" ${RBD_LUKS_BUILD_TARGET:+--target "$RBD_LUKS_BUILD_TARGET"}
