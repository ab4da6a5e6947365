#!/usr/bin/env bash
# Fetches Debian's source of the installed fio, checks it, and configures it the way Debian built
# /usr/bin/fio, so that the fio ioengine (plugin/fio) compiles against the same headers and struct
# layouts as the binary that will load it. Prints the source directory; a second run only prints it.
#
#   fetch-fio-source.sh [DIR]
#
# DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/rbd-luks/fio-VERSION. See docs/fio.md.
#
# Why the configuration must match, and how it is matched: an external engine reads fio's structs
# directly. The headers it includes (fio.h, optgroup.h and what they pull in) test 27 CONFIG_
# macros; five of them shape structs: CONFIG_LIBAIO, CONFIG_POSIXAIO, CONFIG_SOLARISAIO and
# CONFIG_RDMA add members to the union at the end of struct io_u, CONFIG_CUDA adds fields at the
# end of struct thread_data. CONFIG_LIBNUMA adds <numa.h> to fio.h. The others only pick inline
# helpers and prototypes, which configure finds alike on the same Debian release. Debian's 3.33-3
# was built with libaio, POSIX AIO (glibc), rdma and libnuma (its Build-Depends; `ldd /usr/bin/fio`
# shows libaio, librdmacm, libibverbs and libnuma), without CUDA or Solaris AIO. We run configure
# with debian/rules' own flags and those -dev packages installed (deploy/install-deps.sh), and check
# the outcome instead of forcing defines, which would not compile without the headers anyway. Left
# out: --enable-gfio and --enable-libnbd (the GTK front end and the nbd engine; no header an engine
# includes tests them), and tcmalloc, which Debian's binary does not link (it only changes LIBS).
# The engine also checks the layout against the running binary (docs/fio.md, "Struct layout").
set -euo pipefail

PROG=fetch-fio-source
die() { echo "$PROG: $*" >&2; exit 1; }
log() { echo "$PROG: $*" >&2; }

# The one version whose checksum we know. Debian's archive index lists the same sha256
# (dists/bookworm/main/source/Sources.xz, package fio).
readonly FIO_VERSION=3.33
readonly FIO_SHA256=d2410e13e0f379d061d077cc5ae325835bb7c6186aa7bafc1df954cbc9b014fc
readonly CONFIGURE_FLAGS=(--disable-native --prefix=/usr --disable-tcmalloc)
# Layout-relevant defines of Debian's build: which must be set, and which must not.
readonly DEFINES_SET=(CONFIG_LIBAIO CONFIG_POSIXAIO CONFIG_RDMA CONFIG_LIBNUMA)
readonly DEFINES_UNSET=(CONFIG_SOLARISAIO CONFIG_CUDA)

[ $# -le 1 ] || die "usage: $PROG.sh [DIR]"

installed=$(dpkg-query -W -f='${Version}' fio 2>/dev/null) || die "fio is not installed (run deploy/install-deps.sh)"
upstream=${installed#*:}
upstream=${upstream%-*}
[ "$upstream" = "$FIO_VERSION" ] ||
  die "installed fio is $installed, but this script knows the source of fio $FIO_VERSION only; update FIO_VERSION and FIO_SHA256"

dir=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rbd-luks/fio-$FIO_VERSION}
dir=$(realpath -m "$dir")
stamp=$dir/.rbd-luks-configured
# What the tree was made from; a change (another tarball, other flags) makes a new tree.
want_stamp="sha256=$FIO_SHA256 configure=${CONFIGURE_FLAGS[*]}"

ready() { [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want_stamp" ]; }

if ready; then
  echo "$dir"
  exit 0
fi

mkdir -p "$(dirname "$dir")"
# Two builds may fetch at once (build/ and build-asan/ of run-tests.sh, a developer's own tree).
exec 9>"$dir.lock"
flock 9
if ready; then
  echo "$dir"
  exit 0
fi
if [ -e "$dir" ]; then
  [ -f "$stamp" ] || die "$dir exists but was not made by this script; remove it or pass another DIR"
  rm -rf "$dir"
fi

tmp=$(mktemp -d "$dir.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# The archive is the one this machine's apt installs fio from: the URI apt would fetch the installed
# fio's .deb from, up to its pool/ directory (RBD_LUKS_DEBIAN_ARCHIVE overrides it). The upstream
# tarball sits beside the .deb in that archive's pool.
archive=${RBD_LUKS_DEBIAN_ARCHIVE:-}
if [ -z "$archive" ]; then
  deb_uri=$(apt-get download --print-uris "fio=$installed" 2>/dev/null | awk -F"'" 'NR == 1 { print $2 }') || true
  [[ $deb_uri == */pool/* ]] ||
    die "apt does not say where fio $installed comes from (apt-get update, or set RBD_LUKS_DEBIAN_ARCHIVE)"
  archive=${deb_uri%%/pool/*}
fi
tarball=fio_$FIO_VERSION.orig.tar.gz
url=$archive/pool/main/f/fio/$tarball
log "downloading $url"
curl -fsSL --retry 3 --connect-timeout 20 --max-time 300 -o "$tmp/$tarball" "$url" 2>"$tmp/curl.err" ||
  die "download of $url failed: $(tr '\n' ' ' <"$tmp/curl.err")"
echo "$FIO_SHA256  $tmp/$tarball" | sha256sum --check --status ||
  die "$url does not have the expected sha256 $FIO_SHA256"

tar -xzf "$tmp/$tarball" -C "$tmp"
src=$tmp/fio-$FIO_VERSION
[ -f "$src/fio.h" ] || die "$tarball does not unpack to fio-$FIO_VERSION/"
log "configuring fio $FIO_VERSION (${CONFIGURE_FLAGS[*]})"
(cd "$src" && ./configure "${CONFIGURE_FLAGS[@]}") >"$src/configure.out" 2>&1 ||
  die "fio's configure failed; see the end of $src/configure.out: $(tail -n 1 "$src/configure.out")"

for define in "${DEFINES_SET[@]}"; do
  grep -qx "#define $define" "$src/config-host.h" ||
    die "configure did not enable $define as Debian's fio has it; install the -dev packages of deploy/install-deps.sh"
done
for define in "${DEFINES_UNSET[@]}"; do
  ! grep -qx "#define $define" "$src/config-host.h" || die "configure enabled $define, which Debian's fio does not have"
done

echo "$want_stamp" >"$src/.rbd-luks-configured"
mv "$src" "$dir"
log "fio $FIO_VERSION source configured in $dir"
echo "$dir"
