#!/usr/bin/env bash
# qemu_crypto_bench.sh: how fast QEMU's own LUKS encryption is (the `luks` image format and qcow2
# with encrypt.format=luks), whether the qcow2 cluster size changes it, and how it compares with
# rbd-luks's cipher and OpenSSL's AES-256-XTS on the same machine in the same run.
#
# What it measures, all on files in /dev/shm (RAM), so no disk is involved:
#   * `qemu-img convert` of SIZE bytes of random data into, and back out of:
#       raw (no encryption, baseline), luks, qcow2 and qcow2+LUKS at each cluster size in
#       --clusters (default 512, 4K, 64K, 1M, 2M: qcow2's smallest, default and largest sizes).
#     Encryption writes into an empty image made beforehand (`convert -n`), so the timing leaves
#     out the PBKDF2 calibration that `qemu-img create` runs (about 2 s of CPU whatever iter-time
#     says). Decryption converts the encrypted image back to raw (checked against the source in
#     the first round).
#     Each conversion's user+system CPU seconds (bash's `time`, getrusage of the child) and wall
#     time are recorded. The cost of the cipher alone is bytes / (CPU encrypted - CPU plain), the
#     plain image being raw for `luks` and qcow2 of the same cluster size for qcow2+LUKS.
#   * An A/B of the `luks` format with the CPU's AES instructions turned off in the libraries
#     qemu-img links: NETTLE_FAT_OVERRIDE=none (nettle) and GNUTLS_CPUID_OVERRIDE=0x1 (gnutls).
#     Whichever one slows QEMU down is the library that does its AES (--no-ab skips this).
#   * `rbd-luks bench crypto` (backend and GB/s per sector size, 512- and 256-bit keys).
#   * `openssl speed -elapsed -evp aes-256-xts` at 512 and 4096 bytes, encrypt and decrypt.
# Configurations alternate within each round and each round starts at a different one; the table
# gives medians over the rounds. On a shared machine trust the CPU seconds over wall time.
#
# Output: Markdown tables of the medians on stdout, progress on stderr, every sample in the CSV.
# Run (from anywhere; needs qemu-utils and openssl; 6-9 minutes with the defaults on 2 cores):
#   tests/bench/qemu_crypto_bench.sh --out qemu-crypto.csv
#   tests/bench/plot_qemu_crypto.py qemu-crypto.csv --png docs/performance/qemu-crypto-HOST.png
# Options: --size 1G  --rounds 3  --clusters 512,4K,64K,1M,2M  --out FILE.csv  --no-ab
#          --openssl-seconds 2
# The rbd-luks binary is $RBD_LUKS, else build/plugin/rbd-luks
# (relative to the repository root); without one that runs, its rows are left out.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SIZE_ARG=1G
ROUNDS=3
CLUSTERS_ARG=512,4K,64K,1M,2M
OUT=qemu-crypto.csv
AB=1
OPENSSL_SECONDS=2
SECRET=x  # passphrase of the throw-away test images

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
  exit "${1:-0}"
}

die() { echo "qemu_crypto_bench: $*" >&2; exit 1; }

# "1G", "64K", "512" -> bytes (powers of 1024).
to_bytes() {
  local v="$1" n unit
  [[ "$v" =~ ^([0-9]+)([KkMmGg]?)(i?B)?$ ]] || die "not a size: $v"
  n="${BASH_REMATCH[1]}"
  unit="${BASH_REMATCH[2]}"
  case "$unit" in
    K | k) n=$((n << 10)) ;;
    M | m) n=$((n << 20)) ;;
    G | g) n=$((n << 30)) ;;
  esac
  echo "$n"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --size) SIZE_ARG="${2:?}"; shift 2 ;;
    --rounds) ROUNDS="${2:?}"; shift 2 ;;
    --clusters) CLUSTERS_ARG="${2:?}"; shift 2 ;;
    --out) OUT="${2:?}"; shift 2 ;;
    --no-ab) AB=0; shift ;;
    --openssl-seconds) OPENSSL_SECONDS="${2:?}"; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage 2 ;;
  esac
done

SIZE="$(to_bytes "$SIZE_ARG")"
if [ "$SIZE" -le 0 ] || [ $((SIZE % (1 << 20))) -ne 0 ]; then
  die "--size must be a whole number of MiB"
fi
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "--rounds must be a positive integer"
CLUSTERS=()
IFS=, read -r -a cluster_args <<< "$CLUSTERS_ARG"
for c in "${cluster_args[@]}"; do
  b="$(to_bytes "$c")"
  if [ "$b" -lt 512 ] || [ "$b" -gt $((2 << 20)) ] || [ $((b & (b - 1))) -ne 0 ]; then
    die "qcow2 cluster sizes are powers of two from 512 to 2M, not $c"
  fi
  CLUSTERS+=("$b")
done
command -v qemu-img > /dev/null || die "qemu-img not found (Debian: apt-get install qemu-utils)"
command -v openssl > /dev/null || die "openssl not found"

RBD_LUKS=${RBD_LUKS:-$ROOT/build/plugin/rbd-luks}
if ! "$RBD_LUKS" bench crypto --seconds 0.01 > /dev/null 2>&1; then
  echo "qemu_crypto_bench: $RBD_LUKS does not run; leaving out the rbd-luks rows" >&2
  RBD_LUKS=""
fi

mkdir -p "$(dirname "$OUT")"
WORK="$(mktemp -d /dev/shm/qemu-crypto-bench.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP

cpu_model() {
  local fam model name
  fam="$(awk -F': ' '/^cpu family/ {print $2; exit}' /proc/cpuinfo)"
  model="$(awk -F': ' '/^model[ \t]*:/ {print $2; exit}' /proc/cpuinfo)"
  name="$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  echo "$name (cpu family $fam, model $model), $(nproc) CPUs"
}

{
  echo "# cpu: $(cpu_model)"
  echo "# qemu-img: $(qemu-img --version | sed -n 1p)"
  echo "# openssl: $(openssl version)"
  echo "# size: $SIZE"
  echo "# rounds: $ROUNDS"
  echo "# date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# loadavg at start: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "tool,round,op,format,cluster_size,sector_size,key_bits,variant,bytes,user_s,sys_s,wall_s,gb_per_s"
} > "$OUT"

row() { local IFS=,; echo "$*" >> "$OUT"; }

echo "source: $((SIZE >> 20)) MiB of random data in $WORK" >&2
head -c "$SIZE" /dev/urandom > "$WORK/src.raw"

# Empty target images, made once and copied before each conversion. Making a LUKS header runs a
# PBKDF2 calibration, which QEMU 7.2 sometimes aborts with "Unable to get accurate CPU usage":
# try again then.
make_template() {  # NAME FORMAT [-o OPTIONS]
  local name="$1" fmt="$2" try
  shift 2
  for try in 1 2 3 4 5; do
    if qemu-img create -q --object "secret,id=s0,data=$SECRET" -f "$fmt" "$@" \
      "$WORK/$name.tmpl" "$SIZE" 2> "$WORK/err"; then
      return 0
    fi
    grep -q "accurate CPU usage" "$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    echo "qemu-img create $name: PBKDF calibration failed, try $try" >&2
  done
  die "could not create $name"
}

KDF="iter-time=10"  # milliseconds of PBKDF2 per keyslot: opening the image costs about that much
JOBS=()             # format:cluster_size:variant
make_template raw raw
make_template luks luks -o "key-secret=s0,$KDF"
JOBS+=(raw:0:default luks:0:default)
[ "$AB" -eq 1 ] && JOBS+=(luks:0:nettle-noaesni luks:0:gnutls-noaccel)
for c in "${CLUSTERS[@]}"; do
  make_template "qcow2-$c" qcow2 -o "cluster_size=$c"
  make_template "qcow2-luks-$c" qcow2 \
    -o "encrypt.format=luks,encrypt.key-secret=s0,encrypt.$KDF,cluster_size=$c"
  JOBS+=("qcow2:$c:default" "qcow2-luks:$c:default")
done

# Runs a command under bash's `time`; sets U S W (user, system, wall seconds).
timed() {
  local TIMEFORMAT="%3U %3S %3R"
  { time "$@" 2> "$WORK/err"; } 2> "$WORK/time" || { cat "$WORK/err" >&2; exit 1; }
  read -r U S W < "$WORK/time"
}

image_opts() {  # FORMAT FILE -> --image-opts string
  case "$1" in
    raw) echo "driver=raw,file.filename=$2" ;;
    luks) echo "driver=luks,key-secret=s0,file.filename=$2" ;;
    qcow2) echo "driver=qcow2,file.filename=$2" ;;
    qcow2-luks) echo "driver=qcow2,encrypt.key-secret=s0,file.filename=$2" ;;
  esac
}

run_job() {  # ROUND FORMAT:CLUSTER:VARIANT
  local round="$1" fmt cluster variant tmpl img sector=0 keybits=0 env_cmd=(env)
  IFS=: read -r fmt cluster variant <<< "$2"
  case "$variant" in
    nettle-noaesni) env_cmd+=(NETTLE_FAT_OVERRIDE=none) ;;
    gnutls-noaccel) env_cmd+=(GNUTLS_CPUID_OVERRIDE=0x1) ;;
  esac
  tmpl="$fmt"
  [ "$cluster" -gt 0 ] && tmpl="$fmt-$cluster"
  case "$fmt" in *luks) sector=512; keybits=512 ;; esac  # QEMU's LUKS1 defaults: aes-256-xts
  img="$WORK/img"
  cp "$WORK/$tmpl.tmpl" "$img"
  timed "${env_cmd[@]}" qemu-img convert -n --object "secret,id=s0,data=$SECRET" \
    -f raw "$WORK/src.raw" --target-image-opts "$(image_opts "$fmt" "$img")"
  row qemu-img "$round" encrypt "$fmt" "$cluster" "$sector" "$keybits" "$variant" "$SIZE" "$U" "$S" "$W" ""
  printf '  %-8s %-11s %8s %-15s %6.2f s CPU %7.0f MB/s\n' encrypt "$fmt" "$cluster" "$variant" \
    "$(echo "$U $S" | awk '{print $1 + $2}')" "$(echo "$SIZE $W" | awk '{print $1 / $2 / 1e6}')" >&2
  rm -f "$WORK/back.raw"
  timed "${env_cmd[@]}" qemu-img convert --object "secret,id=s0,data=$SECRET" \
    --image-opts "$(image_opts "$fmt" "$img")" -O raw "$WORK/back.raw"
  if [ "$round" -eq 1 ] && ! cmp -s "$WORK/src.raw" "$WORK/back.raw"; then
    die "$fmt $cluster: decrypted data differ from the source"
  fi
  row qemu-img "$round" decrypt "$fmt" "$cluster" "$sector" "$keybits" "$variant" "$SIZE" "$U" "$S" "$W" ""
  printf '  %-8s %-11s %8s %-15s %6.2f s CPU %7.0f MB/s\n' decrypt "$fmt" "$cluster" "$variant" \
    "$(echo "$U $S" | awk '{print $1 + $2}')" "$(echo "$SIZE $W" | awk '{print $1 / $2 / 1e6}')" >&2
  rm -f "$WORK/back.raw" "$img"
}

# rbd-luks and openssl report GB/s of wall-clock time. Their rows also get the CPU and wall seconds
# of the whole command, so that the table can scale the rate to GB per CPU second, as for QEMU.
run_rbd_luks() {  # ROUND
  local backend cipher keybits sector enc dec
  timed "$RBD_LUKS" bench crypto > "$WORK/rbd-luks.txt"
  backend="$(awk '/^backend:/ {print $2; exit}' "$WORK/rbd-luks.txt")"
  while read -r cipher keybits sector enc dec; do
    [ "$cipher" = aes-xts ] || continue
    row rbd-luks "$1" encrypt aes-xts "" "$sector" "$keybits" "$backend" "" "$U" "$S" "$W" "$enc"
    row rbd-luks "$1" decrypt aes-xts "" "$sector" "$keybits" "$backend" "" "$U" "$S" "$W" "$dec"
  done < "$WORK/rbd-luks.txt"
  echo "  rbd-luks bench crypto: $backend, $U s user $S s system in $W s" >&2
}

run_openssl() {  # ROUND
  local bytes op flag rate
  for bytes in 512 4096; do
    for op in encrypt decrypt; do
      flag=()
      [ "$op" = decrypt ] && flag=(-decrypt)
      timed openssl speed -elapsed -seconds "$OPENSSL_SECONDS" -bytes "$bytes" -mr "${flag[@]}" \
        -evp aes-256-xts > "$WORK/openssl.txt"
      rate="$(awk -F: '/^\+F:/ {print $NF / 1e9}' "$WORK/openssl.txt")"
      [ -n "$rate" ] || die "no result from openssl speed"
      row openssl "$1" "$op" aes-256-xts "" "$bytes" 512 evp "" "$U" "$S" "$W" "$rate"
      printf '  openssl aes-256-xts %-7s %4d B: %.2f GB/s, %s s CPU in %s s\n' "$op" "$bytes" "$rate" \
        "$(echo "$U $S" | awk '{print $1 + $2}')" "$W" >&2
    done
  done
}

for ((round = 1; round <= ROUNDS; round++)); do
  echo "round $round/$ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  n="${#JOBS[@]}"
  start=$(((round - 1) * n / ROUNDS))  # each round starts at another configuration
  for ((i = 0; i < n; i++)); do
    run_job "$round" "${JOBS[$(((start + i) % n))]}"
  done
  [ -n "$RBD_LUKS" ] && run_rbd_luks "$round"
  run_openssl "$round"
done
echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" >> "$OUT"

# The tables: medians over the rounds, in Markdown.
awk -F, -v size="$SIZE" -v rounds="$ROUNDS" '
function median(list,   n, v, i, j, t) {
  n = split(list, v, " ")
  for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] + 0 > v[j] + 0; j--) {
    t = v[j]; v[j] = v[j - 1]; v[j - 1] = t
  }
  return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
}
function spread(list,   n, v, i, lo, hi) {
  n = split(list, v, " ")
  lo = hi = v[1] + 0
  for (i = 2; i <= n; i++) { if (v[i] + 0 < lo) lo = v[i] + 0; if (v[i] + 0 > hi) hi = v[i] + 0 }
  return hi - lo
}
# MB per extra CPU second of the encrypted conversion over the plain one in the same round (median
# over the rounds); "noise" when those per-round differences spread wider than their median.
function crypto(key, base, op,   r, diffs, d) {
  diffs = ""
  for (r = 1; r <= rounds; r++)
    if ((key, op, r) in cpur && (base, op, r) in cpur) diffs = diffs " " (cpur[key, op, r] - cpur[base, op, r])
  d = median(diffs)
  return d > 0 && d > spread(diffs) ? sprintf("%.0f", size / d / 1e6) : "noise"
}
function clabel(c) { return c == 0 ? "-" : (c >= 1048576 ? c / 1048576 "M" : (c >= 1024 ? c / 1024 "K" : c)) }
/^#/ || $1 == "tool" { next }
$1 == "qemu-img" {
  key = $4 SUBSEP $5 SUBSEP $8
  if (!(key in seen)) { seen[key] = 1; order[++nkeys] = key }
  cpu[key, $3] = cpu[key, $3] " " ($10 + $11)
  cpur[key, $3, $2] = $10 + $11
  wall[key, $3] = wall[key, $3] " " $12
  next
}
{
  lkey = $1 SUBSEP $8 SUBSEP $7 SUBSEP $6
  if (!(lkey in lseen)) { lseen[lkey] = 1; lorder[++nl] = lkey }
  rate[lkey, $3] = rate[lkey, $3] " " $13
  # GB per CPU second: the wall-clock rate times wall / CPU seconds of the whole command
  cpurate[lkey, $3] = cpurate[lkey, $3] " " ($10 + $11 > 0 ? $13 * $12 / ($10 + $11) : $13)
}
END {
  printf "\nqemu-img convert of %.0f MiB, medians of %d rounds. CPU = user+system seconds of qemu-img;\n", size / 1048576, rounds
  printf "cipher MB/s = bytes / (CPU - CPU of the same conversion without encryption in the same round),\n"
  printf "median over the rounds; \"noise\" where those differences spread (max - min) wider than their median.\n\n"
  print "| format | cluster | variant | enc CPU s | enc wall MB/s | enc cipher MB/s (CPU) | dec CPU s | dec wall MB/s | dec cipher MB/s (CPU) |"
  print "|---|---|---|---|---|---|---|---|---|"
  for (i = 1; i <= nkeys; i++) {
    split(order[i], k, SUBSEP)
    base = (k[1] == "qcow2-luks") ? "qcow2" SUBSEP k[2] SUBSEP "default" : "raw" SUBSEP 0 SUBSEP "default"
    line = sprintf("| %s | %s | %s", k[1], clabel(k[2]), k[3])
    for (d = 1; d <= 2; d++) {
      op = d == 1 ? "encrypt" : "decrypt"
      c = median(cpu[order[i], op])
      w = median(wall[order[i], op])
      cm = (k[1] ~ /luks/) ? crypto(order[i], base, op) : "-"
      line = line sprintf(" | %.2f | %.0f | %s", c, size / w / 1e6, cm)
    }
    print line " |"
  }
  if (nl) {
    print "\nCipher alone, GB/s (10^9 bytes/s), medians of the rounds: as the tool reports it (wall clock),"
    print "and per CPU second (that times wall / user+system seconds of the whole tool run):\n"
    print "| tool | backend | key bits | sector / buffer bytes | enc GB/s (wall) | dec GB/s (wall) | enc GB/CPU s | dec GB/CPU s |"
    print "|---|---|---|---|---|---|---|---|"
    for (i = 1; i <= nl; i++) {
      split(lorder[i], k, SUBSEP)
      printf "| %s | %s | %s | %s | %.2f | %.2f | %.2f | %.2f |\n", k[1], k[2], k[3], k[4], \
        median(rate[lorder[i], "encrypt"]), median(rate[lorder[i], "decrypt"]), \
        median(cpurate[lorder[i], "encrypt"]), median(cpurate[lorder[i], "decrypt"])
    }
  }
}' "$OUT"
echo >&2
echo "samples: $OUT" >&2
