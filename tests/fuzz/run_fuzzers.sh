#!/usr/bin/env bash
# Builds the seed corpora and runs the libFuzzer harnesses of the fuzzing build (tests/fuzz/,
# docs/fuzzing.md). Fails on any crash, sanitizer report, leak or timeout, and leaves the input that
# caused it in OUT/artifacts/.
#
# Usage: run_fuzzers.sh [--seconds N | --runs N] [--build-dir DIR] [--out DIR] [HARNESS...]
#   --seconds N   fuzz each harness for N seconds (CI; default 30)
#   --runs N      fuzz each harness for N executions (the long run: --runs 10000000)
#   --build-dir   the RBDLUKS_FUZZ=ON build (default build-fuzz/)
#   --out DIR     corpora, logs and artifacts (default BUILD_DIR/fuzz-run/)
#   HARNESS       luks2_header luks2_image luks1_header key_reference openstack_config (default: all)
# Seeds: headers cut from cryptsetup's test images ($RBDLUKS_CRYPTSETUP_TEST_IMAGES, default
# ../shared/cryptsetup-test-images beside the checkout), from images cryptsetup and rbd-luks
# ($RBD_LUKS, default build/plugin/rbd-luks) format here, the committed seeds/ and regressions/.
# Missing images leave their seeds out; missing tools do too, or fail under RBDLUKS_REQUIRE_ALL=1 (CI).
# Before fuzzing, each harness replays its regressions/ inputs, the crashes fuzzing found and fixed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

limit=(-max_total_time=30)
build=$root/build-fuzz
out=
harnesses=()
while [ $# -gt 0 ]; do
  case $1 in
    --seconds) limit=(-max_total_time="$2"); shift 2 ;;
    --runs) limit=(-runs="$2"); shift 2 ;;
    --build-dir) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -*) echo "run_fuzzers.sh: unknown option $1" >&2; exit 2 ;;
    *) harnesses+=("$1"); shift ;;
  esac
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(luks2_header luks2_image luks1_header key_reference openstack_config)
out=${out:-$build/fuzz-run}
images=${RBDLUKS_CRYPTSETUP_TEST_IMAGES:-$root/../shared/cryptsetup-test-images}
rbd_luks=${RBD_LUKS:-$root/build/plugin/rbd-luks}

# The largest input each harness takes: a LUKS2 JSON area of a 16 KiB header, the first 64 KiB of an
# image (both copies of a 16 KiB header and more), the 1024 bytes cryptsetup reads of a LUKS1 header.
declare -A max_len=([luks2_header]=16384 [luks2_image]=65536 [luks1_header]=1024 [key_reference]=4096
                    [openstack_config]=4096)
# No allocation stacks in ASan's bookkeeping: a fifth of each LUKS2 run's time. A report then lacks
# the stack where the memory was allocated; replaying its input (the fuzzer with the artifact as
# argument) without this setting gives it.
export ASAN_OPTIONS=${ASAN_OPTIONS:-malloc_context_size=0}
declare -A dict=([luks2_header]=$here/luks2.dict [luks2_image]=$here/luks2.dict)

seeds=$out/seeds
rm -rf "$seeds" && mkdir -p "$seeds" "$out/corpus" "$out/logs" "$out/artifacts"
sources=()
if [ -f "$images/SOURCE.txt" ]; then
  for archive in luks1-images luks2_header_requirements LUKS-d238e48a-0ed3-4169-b841-f26b44693134 \
                 luks2-validation-images luks2-validation-images-argon2i luks2_mda_images; do
    sources+=("$images/$archive.tar.xz")
  done
  for image in compatimage compatimage2 compatv10image luks2_invalid_cipher luks2_keyslot_unassigned \
               luks2_valid_hdr blkid-luks2-pv; do
    sources+=("$images/$image.img.xz")
  done
  sources+=("$images"/valid_header_file.xz "$images"/evil_hdr-*.xz)
else
  # They live outside the repository and nothing installs them, so a checkout elsewhere fuzzes from
  # the headers below alone (as interop.cryptsetup_test_images skips there).
  echo "run_fuzzers.sh: cryptsetup's test images are not at $images; their seeds are left out" >&2
fi
bash "$here/make_seed_images.sh" "$seeds/images" "$rbd_luks"
sources+=("$seeds"/images/*.img)
python3 "$here/seed_corpus.py" "$seeds" "${sources[@]}"

for name in "${harnesses[@]}"; do
  fuzzer=$build/tests/fuzz/${name}_fuzzer
  [ -x "$fuzzer" ] || { echo "run_fuzzers.sh: $fuzzer is not built (RBDLUKS_FUZZ=ON)" >&2; exit 1; }
  corpus=$out/corpus/$name
  mkdir -p "$corpus"
  for dir in "$seeds/$name" "$here/seeds/$name" "$here/regressions/$name"; do
    if [ -d "$dir" ]; then cp "$dir"/* "$corpus/"; fi
  done
  log=$out/logs/$name.log
  if [ -d "$here/regressions/$name" ]; then
    "$fuzzer" "$here/regressions/$name"/* >"$log.regressions" 2>&1 || {
      tail -40 "$log.regressions" >&2
      echo "run_fuzzers.sh: $name fails on an input of tests/fuzz/regressions/$name/ (log: $log.regressions)" >&2
      exit 1
    }
  fi
  start=$(date +%s)
  rc=0
  "$fuzzer" "${limit[@]}" -max_len="${max_len[$name]}" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    ${dict[$name]:+-dict="${dict[$name]}"} -artifact_prefix="$out/artifacts/$name-" "$corpus" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  printf '%-17s %10s runs in %4ss, corpus %5s files, exit %s\n' "$name" "${runs:-?}" "$(($(date +%s) - start))" \
    "$(find "$corpus" -type f | wc -l)" "$rc"
  if [ "$rc" != 0 ]; then
    grep -E -A30 '^==[0-9]+==|runtime error|ERROR: libFuzzer' "$log" | head -60 >&2
    echo "run_fuzzers.sh: $name failed (log: $log; input: $out/artifacts/$name-*)" >&2
    exit 1
  fi
done
