#!/usr/bin/env bash
# Installs every Debian package that rbd-luks needs to build, test and benchmark.
# Idempotent and non-interactive; prints nothing when everything is already present.
set -euo pipefail

PACKAGES=(
  # build
  build-essential cmake ninja-build ccache pkg-config clang-format clang-tidy
  # the fuzzing build (tests/fuzz/): clang and its libFuzzer and sanitizer runtimes
  clang libclang-rt-14-dev
  # libraries
  libcrypto++-dev libargon2-dev nlohmann-json3-dev libboost-dev libcurl4-openssl-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  librbd-dev librados-dev libradospp-dev
  # the headers Debian's fio was configured with, for the fio ioengine (deploy/fetch-fio-source.sh)
  libaio-dev libnuma-dev librdmacm-dev libibverbs-dev
  # local Ceph cluster
  ceph-mon ceph-osd ceph-mgr ceph-common rbd-nbd
  # interoperability peers and test tools
  cryptsetup-bin qemu-utils qemu-block-extra fio python3-cryptography python3-rbd python3-rados
  # strace kills a peer (cryptsetup, rbd-luks) at its n-th flush, for the reencryption crash tests
  strace
  # the NBD export: nbdkit and its plugin header, and NBD clients for the tests
  nbdkit nbdkit-plugin-dev libnbd-bin
  # qemu-storage-daemon (FUSE and NBD exports) for the preload library's tests and benchmarks;
  # e2fsprogs makes and checks the filesystem on its FUSE export
  qemu-system-common e2fsprogs
  uuid-runtime xxd procps iproute2 curl
  # local OpenStack (Keystone + Barbican) for keyring tests
  python3-keystone python3-barbican python3-keystonemiddleware
  # benchmarks and plots for docs/performance.md (tests/bench/)
  openssl
  python3-matplotlib
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
