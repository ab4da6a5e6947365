#!/usr/bin/env bash
# `rbd-luks bench io` against the test cluster: one short run of all three paths (plain librbd,
# rbd-luks, librbd native encryption) gives a table and JSON with a real measurement for every point
# (throughput, CPU time and peak memory, each path in a process of its own),
# leaves no benchmark images behind (also when interrupted), and rejects bad options with exit 2.
# The JSON then goes through tests/bench/plot_bench_io.py, the script behind docs/performance.md.
# Speed itself is not asserted here: targets live in the benchmark's own output.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=../../../lib/rbd.bash
source "$(dirname "${BASH_SOURCE[0]}")/../../../lib/rbd.bash"
require_cluster_and_cli

PY=/usr/bin/python3
PLOT=$(dirname "${BASH_SOURCE[0]}")/../../../bench/plot_bench_io.py
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-bench-io.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

bench_images() { rbdc ls rbd | grep -c '^rbd-luks-bench-' || true; }
SHORT=(--size 8M --block-sizes 4K,1M --queue-depths 1,4 --seconds 0.2 --rounds 2)

expect_exit 0 "$RBD_LUKS" bench io rbd "${SHORT[@]}" --json
$PY - "$WORK/out" <<'EOF' || fail "bench io --json: $(cat "$WORK/out")"
import json, sys
result = json.load(open(sys.argv[1]))
points = result["results"]
assert len(points) == 2 * 2 * 2, f"{len(points)} points, want 8"
for p in points:
    assert set(p["paths"]) == {"plain", "rbd-luks", "native"}, p["paths"].keys()
    for name, path in p["paths"].items():
        assert len(path["rounds"]) == 2, (name, path["rounds"])
        for r in path["rounds"]:
            assert r["bytes"] > 0 and r["requests"] > 0 and r["bytes"] % p["block_size"] == 0, r
            assert r["bytes"] == r["requests"] * p["block_size"], r
            # A librados client's resident set is tens of MiB; each path has a process of its own.
            assert 8 << 20 < r["peak_resident_bytes"] < 4 << 30, r
        assert path["mb_per_s"] > 0 and path["cpu_s_per_gb"] > 0 and path["peak_resident_mib"] > 8, path
    luks = p["paths"]["rbd-luks"]
    assert luks["ratio_to_plain"] > 0 and "extra_cpu_s_per_gb" in luks, luks
    assert 0 < luks["peak_resident_ratio_to_plain"] < 100, luks
    assert "ratio_to_plain_ci95" not in luks, "two rounds cannot give a 95% interval"
machine = result["machine"]
assert machine["cipher_backend"] != "unknown"
EOF
cp "$WORK/out" "$WORK/result.json"
[ "$(bench_images)" -eq 0 ] || fail "bench io left images behind: $(rbdc ls rbd)"
pass "bench io --json: 8 points x 3 paths x 2 rounds, images removed"

# Paths in another order than the default: each worker process must see its request pipe close
# (a worker forked later must not keep it open), or the run never ends.
expect_exit 0 timeout 300 "$RBD_LUKS" bench io rbd --size 8M --block-sizes 4K --queue-depths 16 --rw read \
  --paths rbd-luks,plain --seconds 0.1 --rounds 6
grep -Eq '^read +4K +16 ' "$WORK/out" || fail "bench io table lacks the read 4K qd16 row: $(cat "$WORK/out")"
# Six rounds are the fewest that give a 95% interval for the median: the smallest and largest ratio.
grep -Eq 'read  4K IOPS +[0-9.]+ \(95% CI [0-9.]+-[0-9.]+\), want >= 0.95: (met|MISSED)$' "$WORK/out" ||
  fail "bench io does not check the 4K IOPS target with its interval: $(cat "$WORK/out")"
grep -Eq '^  highest: read 4K qd 16, [0-9.]+ \(95% CI [0-9.]+-[0-9.]+\), want <= 1.20: (met|MISSED)$' "$WORK/out" ||
  fail "bench io does not check the peak memory target: $(cat "$WORK/out")"
if grep -q native "$WORK/out"; then fail "--paths rbd-luks,plain still ran native"; fi
pass "bench io table with the target check and its confidence interval"

# Partial-sector requests: 512-byte blocks, and 4K blocks 512 bytes past block boundaries.
expect_exit 0 "$RBD_LUKS" bench io rbd --size 8M --block-sizes 512,4K --misalign 512 --queue-depths 4 --rw write \
  --seconds 0.1 --rounds 1
grep -Eq '^write +512 +4 ' "$WORK/out" || fail "bench io table lacks the write 512 row: $(cat "$WORK/out")"
grep -q 'requests start 512 bytes past block boundaries' "$WORK/out" || fail "bench io does not say it misaligns"
if grep -q 'targets' "$WORK/out"; then fail "bench io checked the aligned targets on misaligned requests"; fi
expect_exit 2 "$RBD_LUKS" bench io rbd --misalign 5M
pass "bench io with partial-sector requests (--misalign, 512-byte blocks)"

# Interrupted while measuring: the images still go.
"$RBD_LUKS" bench io rbd --size 8M --block-sizes 4K --queue-depths 1 --seconds 30 --rounds 1 >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 1 100); do grep -q 'filling the native' "$WORK/err" && break; sleep 0.1; done
sleep 1
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
[ "$rc" -eq 1 ] || fail "interrupted bench io exited $rc, not 1: $(cat "$WORK/err")"
err_has "interrupted"
[ "$(bench_images)" -eq 0 ] || fail "interrupted bench io left images behind: $(rbdc ls rbd)"
pass "bench io interrupted: exit 1, images removed"

expect_exit 2 "$RBD_LUKS" bench io rbd --block-sizes 1000
err_has "multiple of 512"
expect_exit 2 "$RBD_LUKS" bench io rbd --queue-depths 0
expect_exit 2 "$RBD_LUKS" bench io rbd --paths plain,fast
err_has "not 'fast'"
expect_exit 2 "$RBD_LUKS" bench io rbd --paths plain,rbd-luks,plain
err_has "names plain twice"
expect_exit 2 "$RBD_LUKS" bench io rbd --rw randrw
expect_exit 1 "$RBD_LUKS" bench io no-such-pool --seconds 0.1
err_has "does not exist"
pass "bench io bad options: exit 2; missing pool: exit 1"

# The plot and table behind docs/performance.md, from this JSON.
$PY "$PLOT" "$WORK/result.json" --queue-depth 4 --png "$WORK/plot.png" --markdown "$WORK/table.md"
[ "$(head -c 8 "$WORK/plot.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "plot is not a PNG"
[ "$(grep -c '^| \(write\|read\) ' "$WORK/table.md")" -eq 8 ] || fail "table: $(cat "$WORK/table.md")"
pass "plot_bench_io.py: PNG and Markdown table"
