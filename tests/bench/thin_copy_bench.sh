#!/usr/bin/env bash
# thin_copy_bench.sh: `rbd-luks import` and `export` of a thin image next to `rbd import` and
# `rbd export` of the same plaintext into and out of a plain image, on one cluster in one run.
#
# The source: a sparse file of --size bytes (4G) holding --data-percent (10) of it as random data
# in 8 MiB extents spread evenly, with some all-zero 4 KiB blocks inside them (which both tools
# should leave unwritten). Each round imports into a fresh image with each tool, records `rbd du`'s
# used bytes, exports each image to a file and compares it with the source, and removes the
# images; the tools go first in turn. Throughput is plaintext bytes (the whole --size, as both
# tools cover it) per second of wall time. Output: a Markdown table of medians, with the ratios
# rbd-luks/rbd taken per round, and the targets (throughput >= 0.9 of rbd's, used bytes within
# 10% of rbd's).
#
# Run (CEPH_CONF names the cluster; the pool must hold two images of the data):
#   CEPH_CONF=... tests/bench/thin_copy_bench.sh [--pool rbd] [--size 4G] [--data-percent 10]
#                                                [--rounds 3] [--rbd-luks build/plugin/rbd-luks]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
pool=rbd size=4G percent=10 rounds=3 rbd_luks=$here/../../build/plugin/rbd-luks
while [ $# -gt 0 ]; do
  case $1 in
    --pool) pool=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --data-percent) percent=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --rbd-luks) rbd_luks=$2; shift 2 ;;
    *) echo "thin_copy_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
: "${CEPH_CONF:?CEPH_CONF must name the cluster}"
work=$(mktemp -d "${TMPDIR:-/tmp}/thin-copy-bench.XXXXXX")
tag=thinbench$$
cleanup() {
  rbd rm "$pool/$tag-plain" >/dev/null 2>&1 || true
  rbd rm "$pool/$tag-luks" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

bytes=$(numfmt --from=iec "$size")
python3 - "$work/source" "$bytes" "$percent" <<'PYEOF'
import os, sys
path, size, percent = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
extent = 8 << 20
count = max(1, int(size * percent / 100 / extent))
stride = size // count
with open(path, "wb") as f:
    f.truncate(size)
    for i in range(count):
        data = bytearray(os.urandom(extent))
        data[1 << 20:(1 << 20) + 4096] = bytes(4096)  # a zero block inside the data
        f.seek(i * stride)
        f.write(data)
PYEOF
printf '%s' "bench passphrase" >"$work/pass"
chmod 600 "$work/pass"
key=(--passphrase-file "$work/pass")
used() { rbd du "$1" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["images"][0]["used_size"])'; }
seconds() { local start=$1; python3 -c "import time,sys; print(time.monotonic() - float(sys.argv[1]))" "$start"; }
now() { python3 -c 'import time; print(time.monotonic())'; }

echo "round,tool,import_s,export_s,used_bytes" >"$work/samples.csv"
run_tool() {
  local tool=$1 t
  if [ "$tool" = rbd ]; then
    t=$(now); rbd import --no-progress "$work/source" "$pool/$tag-plain" >/dev/null; local imp; imp=$(seconds "$t")
    local u; u=$(used "$pool/$tag-plain")
    t=$(now); rbd export --no-progress "$pool/$tag-plain" "$work/out" >/dev/null; local exp; exp=$(seconds "$t")
    rbd rm --no-progress "$pool/$tag-plain" >/dev/null
  else
    "$rbd_luks" -q create "rbd:$pool/$tag-luks" --size "$bytes" "${key[@]}" --pbkdf pbkdf2 --pbkdf-force-iterations 1000
    t=$(now); "$rbd_luks" -q import "$work/source" "rbd:$pool/$tag-luks" "${key[@]}"; local imp; imp=$(seconds "$t")
    local u; u=$(used "$pool/$tag-luks")
    t=$(now); "$rbd_luks" -q export "rbd:$pool/$tag-luks" "$work/out" "${key[@]}"; local exp; exp=$(seconds "$t")
    rbd rm --no-progress "$pool/$tag-luks" >/dev/null
  fi
  cmp -s "$work/out" "$work/source" || { echo "thin_copy_bench.sh: $tool exported other bytes" >&2; exit 1; }
  rm -f "$work/out"
  echo "$round,$tool,$imp,$exp,$u" >>"$work/samples.csv"
}
for round in $(seq 1 "$rounds"); do
  if [ $((round % 2)) -eq 1 ]; then order="rbd rbd-luks"; else order="rbd-luks rbd"; fi
  for tool in $order; do run_tool "$tool"; done
  echo "round $round of $rounds done" >&2
done

cpu=$(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')
python3 - "$work/samples.csv" "$bytes" "$percent" "$cpu" "$(nproc)" <<'PYEOF'
import csv, statistics, sys
path, size, percent, cpu, cpus = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
rows = list(csv.DictReader(open(path)))
by = {}
for r in rows:
    by.setdefault(r["round"], {})[r["tool"]] = r
med = statistics.median
def mbps(s): return size / float(s) / 1e6
print(f"thin copy: {size >> 20} MiB image, {percent}% data, {len(by)} rounds; cpu {cpu} x {cpus}")
print("| | rbd | rbd-luks | rbd-luks/rbd (median of rounds) |")
print("|---|---|---|---|")
for col, label, f in [("import_s", "import MB/s", mbps), ("export_s", "export MB/s", mbps)]:
    a = med(f(r["rbd"][col]) for r in by.values())
    b = med(f(r["rbd-luks"][col]) for r in by.values())
    ratio = med(f(r["rbd-luks"][col]) / f(r["rbd"][col]) for r in by.values())
    print(f"| {label} | {a:.0f} | {b:.0f} | {ratio:.3f} |")
ua = med(int(r["rbd"]["used_bytes"]) for r in by.values())
ub = med(int(r["rbd-luks"]["used_bytes"]) for r in by.values())
print(f"| used (rbd du) | {ua >> 20} MiB | {ub >> 20} MiB | {ub / ua:.3f} |")
imp = med(mbps(r["rbd-luks"]["import_s"]) / mbps(r["rbd"]["import_s"]) for r in by.values())
exp = med(mbps(r["rbd-luks"]["export_s"]) / mbps(r["rbd"]["export_s"]) for r in by.values())
print(f"targets: import {imp:.3f} and export {exp:.3f} of rbd's throughput, want >= 0.90: "
      f"{'met' if min(imp, exp) >= 0.9 else 'missed'}; used {ub / ua:.3f} of rbd's, want <= 1.10: "
      f"{'met' if ub / ua <= 1.10 else 'missed'}")
PYEOF
