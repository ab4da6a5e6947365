#!/usr/bin/env bash
# What an online reencryption costs the clients, and how fast it goes. fio's nbd engine runs a steady
# load against `rbd-luks nbd-server`, 4 KiB random writes at RATE per second (a busy VM's disk, not
# a saturated cluster), for SECONDS alone and for as long as `--reencrypt` takes to move an image of
# SIZE_MIB that is full of data; its latencies are compared. Then `rbd-luks reencrypt` runs on
# the same image with no client, for the run's own speed without the load. Prints the CPU and one
# JSON object. By hand, not under CTest, on a quiet machine:
#   CEPH_CONF=/tmp/cl/ceph.conf RBD_LUKS=build/plugin/rbd-luks bash tests/bench/online_reencrypt_bench.sh [SIZE_MIB] [SECONDS] [RATE]
set -euo pipefail

SIZE_MIB=${1:-1024}
SECONDS_FIO=${2:-15}
RATE=${3:-500}
RBD_LUKS=${RBD_LUKS:?set RBD_LUKS to the rbd-luks binary}
: "${CEPH_CONF:?set CEPH_CONF to the cluster}"
WORK=$(mktemp -d /tmp/rbd-luks-online-bench.XXXXXX)
NAME=onlinebench$$
SERVER_PID=
cleanup() {
  [ -z "$SERVER_PID" ] || kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rbd rm --no-progress "rbd/$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
printf '%s' "online bench passphrase" >"$WORK/pass"
K=(--passphrase-file "$WORK/pass")
SOCK=$WORK/nbd.sock
now() { date +%s.%N; }

serve() {
  rm -f "$WORK/pid"
  "$RBD_LUKS" nbd-server "rbd:rbd/$NAME" --socket "$SOCK" --pidfile "$WORK/pid" "${K[@]}" "$@" 2>"$WORK/server.err" &
  SERVER_PID=$!
  until [ -s "$WORK/pid" ]; do
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
    sleep 0.05
  done
}
unserve() {
  kill -TERM "$SERVER_PID"
  wait "$SERVER_PID" || true
  SERVER_PID=
}
# The writes: fio's arguments but for how long.
FIO=(fio --name=clients --ioengine=nbd --uri="nbd+unix:///?socket=$SOCK" --rw=randwrite --bs=4k --iodepth=4
  --rate_iops="$RATE" --time_based --size="$((SIZE_MIB / 2))M" --output-format=json)

"$RBD_LUKS" create "rbd:rbd/$NAME" --size "${SIZE_MIB}M" "${K[@]}" --pbkdf pbkdf2 --pbkdf-force-iterations 1000 >/dev/null
serve
head -c "$((SIZE_MIB << 20))" /dev/urandom | nbdcopy - "nbd+unix:///?socket=$SOCK"
"${FIO[@]}" --runtime="$SECONDS_FIO" >"$WORK/alone.json"
unserve

# fio for as long as the run takes: SIGTERM ends it with its results. (Not SIGINT: a command this
# script starts in the background ignores it.)
serve --reencrypt
began=$(now)
"${FIO[@]}" --runtime=3600 >"$WORK/during.json" &
fio_pid=$!
until grep -qF "while serving it:" "$WORK/server.err"; do
  kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.err" >&2; exit 1; }
  sleep 0.05
done
online_s=$(echo "$(now) - $began" | bc)
kill -TERM "$fio_pid"
wait "$fio_pid" || true
unserve

began=$(now)
"$RBD_LUKS" reencrypt "rbd:rbd/$NAME" "${K[@]}" --quiet
offline_s=$(echo "$(now) - $began" | bc)

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) CPUs"
/usr/bin/python3 - "$WORK/alone.json" "$WORK/during.json" "$SIZE_MIB" "$online_s" "$offline_s" "$RATE" <<'EOF'
import json, sys
# fio may print a line about the signal that ended it before its JSON.
def writes(path):
    text = open(path).read()
    return json.loads(text[text.index("{"):])["jobs"][0]["write"]
alone, during = writes(sys.argv[1]), writes(sys.argv[2])
size_mib, online_s, offline_s = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
p99 = lambda w: w["clat_ns"]["percentile"]["99.000000"] / 1e6
result = {
    "image_mib": size_mib,
    "fio_4k_randwrite": {"rate_iops": int(sys.argv[6]),
        "alone": {"iops": round(alone["iops"]), "p99_ms": round(p99(alone), 2), "max_ms": round(alone["clat_ns"]["max"] / 1e6, 1)},
        "during_online_reencryption": {"iops": round(during["iops"]), "p99_ms": round(p99(during), 2),
                                       "max_ms": round(during["clat_ns"]["max"] / 1e6, 1)},
        "p99_ratio": round(p99(during) / p99(alone), 2),
    },
    "reencryption_seconds": {"online_under_fio": round(online_s, 1), "offline_alone": round(offline_s, 1)},
}
print(json.dumps(result, indent=2))
EOF
