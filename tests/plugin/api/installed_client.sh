#!/usr/bin/env bash
# What `cmake --install` puts down is enough to build and run a client: the build tree is installed
# into a scratch prefix, the examples in docs/examples are compiled against that prefix with
# pkg-config alone, and what the C example writes at an unaligned offset is read back by the C++
# example, by the installed rbd-luks and by librbd's native LUKS2 (python3-rbd). Also: the library
# exports only its API, and the installed fio engine finds the installed library by itself.
# Exits 77 (skipped) only when the rbd-luks binary has not been built.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../lib/rbd.bash"
require_cluster_and_cli
: "${RBDLUKS_BUILD_DIR:?RBDLUKS_BUILD_DIR must name the build tree}"

EXAMPLES=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../../docs/examples" && pwd)
IMG=inst$$-img
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-installed.XXXXXX")
PREFIX=$WORK/prefix
cleanup() {
  remove_images "rbd/$IMG"
  rm -rf "$WORK"
}
trap cleanup EXIT

cmake --install "$RBDLUKS_BUILD_DIR" --prefix "$PREFIX" >"$WORK/install.log" || {
  cat "$WORK/install.log" >&2
  fail "cmake --install"
}
pc=$(find "$PREFIX" -name rbd_luks.pc)
[ -n "$pc" ] || fail "no rbd_luks.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in bin/rbd-luks include/rbd_luks/librbd_luks.h include/rbd_luks/image.h include/rbd_luks/result.h \
  include/rbd_luks/error.h; do
  [ -e "$PREFIX/$f" ] || fail "$f is not installed"
done
[ -e "$libdir/librbd_luks.so" ] || fail "librbd_luks.so is not installed in $libdir"
pass "cmake --install: command, library, headers and pkg-config file"

# Only the C API (rbd_luks_*) and the C++ API (namespace rbdluks) leave the library.
nm -D --defined-only "$libdir/librbd_luks.so" | awk '{print $3}' | grep -v -e '^rbd_luks_' -e '^_ZN7rbdluks' \
  -e '^_ZNK7rbdluks' -e '^RBD_LUKS_' >"$WORK/extra-symbols" || true
[ ! -s "$WORK/extra-symbols" ] || { cat "$WORK/extra-symbols" >&2; fail "librbd_luks.so exports more than its API"; }
pass "librbd_luks.so exports only its API"

# The examples build from the installed tree alone: nothing of the source tree is on any path.
export PKG_CONFIG_PATH=$libdir/pkgconfig
read -ra flags <<<"$(pkg-config --cflags --libs rbd_luks)"
cc -Wall -Werror "$EXAMPLES/write_read.c" "${flags[@]}" -o "$WORK/write_read"
c++ -std=c++20 -Wall -Werror "$EXAMPLES/read_range.cc" "${flags[@]}" -o "$WORK/read_range"
pass "docs/examples build with pkg-config against the installed prefix"

printf '%s' "installed client passphrase" >"$WORK/pass"
expect_exit 0 "$PREFIX/bin/rbd-luks" create "rbd:rbd/$IMG" --size 16M --passphrase-file "$WORK/pass" "${FAST_LUKS2[@]}"
message="written by the C example across a sector boundary"
offset=$((3 * 4096 - 20))
export LD_LIBRARY_PATH=$libdir
"$WORK/write_read" rbd "$IMG" "$WORK/pass" "$offset" "$message" >"$WORK/out"
grep -q "written and read back" "$WORK/out" || fail "write_read: $(cat "$WORK/out")"
[ "$("$WORK/read_range" rbd "$IMG" "$WORK/pass" "$offset" "${#message}")" = "$message" ] ||
  fail "the C++ example reads something else back"
[ "$("$PREFIX/bin/rbd-luks" read "rbd:rbd/$IMG" --offset "$offset" --length "${#message}" --passphrase-file "$WORK/pass")" = \
  "$message" ] || fail "the installed rbd-luks reads something else back"
/usr/bin/python3 - "$CEPH_CONF" "$IMG" "$WORK/pass" "$offset" "$message" <<'PYEOF'
import sys, rados, rbd
conf, name, passfile, offset, message = sys.argv[1:]
with rados.Rados(conffile=conf) as cluster, cluster.open_ioctx("rbd") as io, rbd.Image(io, name, read_only=True) as img:
    img.encryption_load(rbd.RBD_ENCRYPTION_FORMAT_LUKS2, open(passfile, "rb").read())
    got = img.read(int(offset), len(message))
    assert got == message.encode(), "librbd native decryption reads %r" % got
PYEOF
if "$WORK/read_range" rbd "$IMG" "$WORK/pass-missing" 0 1 2>"$WORK/err"; then fail "a missing passphrase file opened"; fi
pass "C example wrote, C++ example, installed rbd-luks and librbd native LUKS2 read it back"

# The fio engine, when built, resolves librbd_luks.so from its own directory's parent.
engine=$(find "$PREFIX" -name rbd_luks_fio.so)
if [ -n "$engine" ]; then
  loaded=$(env -u LD_LIBRARY_PATH ldd "$engine" | awk '/librbd_luks/ {print $3}')
  if [ -z "$loaded" ] || [ "$(readlink -f "$loaded")" != "$(readlink -f "$libdir/librbd_luks.so")" ]; then
    fail "the installed fio engine loads '${loaded:-no librbd_luks}', not $libdir/librbd_luks.so"
  fi
  pass "installed fio engine finds the installed library"
fi
