#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine: installs dependencies, checks formatting,
# builds, runs clang-tidy, runs every test (unit, interoperability, cluster, OpenStack), then builds with
# AddressSanitizer + UndefinedBehaviorSanitizer and runs the unit and cluster tests again under them,
# fuzzes every libFuzzer harness for a bounded time, and builds and runs the RBD stress test under
# ThreadSanitizer.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { printf '\n==> %s\n' "$*"; }
# What the source tree holds besides its commit before the tests; checked again at the end.
tree_state() { git status --porcelain --untracked-files=all; }
in_git=false
git rev-parse --is-inside-work-tree >/dev/null 2>&1 && in_git=true
tree_before=
! $in_git || tree_before=$(tree_state)

# Everything the tests use is installed below, so a test that finds a tool or service missing fails
# instead of skipping (tests/CMakeLists.txt).
export RBDLUKS_REQUIRE_ALL=1

step "installing dependencies"
bash deploy/install-deps.sh

step "checking formatting (clang-format)"
git ls-files '*.cc' '*.h' | xargs clang-format --dry-run -Werror

step "building (build/)"
RBD_LUKS_BUILD_DIR="$root/build" bash deploy/build.sh

step "static analysis (clang-tidy on common/ and plugin/, .clang-tidy, findings are errors)"
# clang cannot compile Ceph 16's buffer.h as C++20: one comparison of a const_iterator with an
# iterator (buffers_t::insert_after) is ambiguous under C++20's reversed operator candidates, which
# GCC accepts. clang-tidy therefore reads a copy of Ceph's rados/ and rbd/ headers in which that
# comparison converts explicitly (and nothing else changes), so plugin/rbd/rbd_image.cc and
# rbd_buffer_list.cc are analysed like every other file; the build uses the installed headers.
tidy_include=$root/build/tidy-include
rm -rf "$tidy_include" && mkdir -p "$tidy_include"
cp -r /usr/include/rados /usr/include/rbd "$tidy_include/"
sed -i 's/_root\.next = it == end() ? &item : _root\.next;/_root.next = it == const_iterator(end()) ? \&item : _root.next;/' \
  "$tidy_include/rados/buffer.h"
[ "$(grep -c 'it == const_iterator(end())' "$tidy_include/rados/buffer.h")" = 1 ] || {
  echo "run-tests: Ceph's buffer.h is not the one clang-tidy's copy expects (Ceph 16); see this step" >&2
  exit 1
}
run-clang-tidy -p "$root/build" -j 2 -quiet -extra-arg="-isystem$tidy_include" "$root/(common|plugin)/" \
  >"$root/build/clang-tidy.log" 2>&1 || {
  grep -E '(error|warning): ' "$root/build/clang-tidy.log" | sort -u >&2
  echo "clang-tidy found the problems above (whole log: build/clang-tidy.log)" >&2
  exit 1
}

step "running the test suite"
ctest --test-dir "$root/build" --output-on-failure -j 2 --timeout 900

step "building with ASan+UBSan (build-asan/)"
RBD_LUKS_BUILD_DIR="$root/build-asan" bash deploy/build.sh -DRBDLUKS_SANITIZE=ON

step "running unit and cluster tests under ASan+UBSan"
# Not here: fio_engine, nbdkit_plugin, preload_clients, preload_online_reencrypt and installed_client
# load the instrumented librbd_luks.so into programs built without ASan (fio, nbdkit, qemu-img; the
# examples, compiled against the installed tree), which ASan refuses (the follower of reencryption
# requests that preload_online_reencrypt drives runs here in rbd_tests' ReencryptRequest* tests); thin_images, which needs the bluestore cluster left out below; bench_io,
# a timed benchmark that would only take a minute more; and the OSD failure tests, which would start a
# second cluster for about a minute of what the cluster does, while the error paths they reach in
# rbd-luks are the ones the blocklist and stalled-pool tests drive here. The main run covers them all.
# reencrypt_rbd runs here without its BlueStore part, for the same reason as thin_images.
# The crash-point tests check every other change of a run here, and the last (the main run checks
# every change): under the sanitizers all of them would take about five minutes more.
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 RBDLUKS_CRASH_POINT_STRIDE=2 \
  ctest --test-dir "$root/build-asan" --output-on-failure -j 2 -L 'unit|rbd' --timeout 900 \
  -E '^(rbd\.(fio_engine|nbdkit_plugin|preload_clients|preload_online_reencrypt|installed_client|bench_io|thin_images)|ceph_bluestore\..*|UncachedFailureTest\..*|CacheModes/OsdRestartTest\..*)$'

step "building the libFuzzer harnesses with clang, ASan+UBSan (build-fuzz/)"
RBD_LUKS_BUILD_DIR="$root/build-fuzz" CC=clang CXX=clang++ bash deploy/build.sh -DRBDLUKS_FUZZ=ON

step "fuzzing each harness for 30 s (tests/fuzz/run_fuzzers.sh, docs/fuzzing.md)"
# Fresh seed corpora every run; a crash, sanitizer report, leak or timeout fails the suite and leaves
# its input in build-fuzz/fuzz-run/artifacts/.
bash tests/fuzz/run_fuzzers.sh --seconds 30 --build-dir "$root/build-fuzz"

step "building the RBD stress test with ThreadSanitizer (build-tsan/)"
RBD_LUKS_BUILD_DIR="$root/build-tsan" RBD_LUKS_BUILD_TARGET=rbd_stress_tsan bash deploy/build.sh -DRBDLUKS_TSAN=ON

step "running the RBD stress test under ThreadSanitizer"
RBDLUKS_STRESS_SECONDS=10 ctest --test-dir "$root/build-tsan" --output-on-failure -L tsan --timeout 600

step "checking that the tests left nothing in the source tree"
# Tests write into their own temporary directories and the build directories (CTest runs them from
# build/); a file that one writes into the source tree by its path would end up in a commit.
if $in_git; then
  tree_after=$(tree_state)
  [ "$tree_after" = "$tree_before" ] || {
    diff <(printf '%s\n' "$tree_before") <(printf '%s\n' "$tree_after") >&2 || true
    echo "run-tests: the tests changed or left the files above in the source tree" >&2
    exit 1
  }
else
  echo "not a git work tree: nothing to compare"
fi

step "all tests passed"
