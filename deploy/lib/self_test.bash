# Helpers shared by the self-tests test-ceph-cluster.sh and test-openstack.sh (sourced, not run):
# "ok"/"FAIL" lines that count failures, timing, and the processes of a directory. The sourcing
# script sets WORK, its scratch directory, before the first check.

# port_in_use and seconds_since, as the scripts under test see them.
# shellcheck source-path=SCRIPTDIR source=service.bash
source "$(dirname "${BASH_SOURCE[0]}")/service.bash"

FAILURES=0

pass() { echo "ok   - $*"; }
fail() { echo "FAIL - $*"; FAILURES=$((FAILURES + 1)); }
# check WHAT CMD...: runs CMD with its output in a log, shown only when CMD fails.
check() {
  local what=$1; shift
  if "$@" >"$WORK/check.log" 2>&1; then
    pass "$what"
  else
    fail "$what"
    sed 's/^/#   /' "$WORK/check.log" | tail -n 20
  fi
}

# start_both WHAT_B OUT_A CMD_A... -- CMD_B...: runs two starts at once (their output in
# WORK/start-{a,b}.{out,err}) and shows their stderr; checks that both exit 0 and that A prints
# OUT_A, and ends the self-test unless both started.
start_both() {
  local what_b=$1 out_a=$2 t0 pid_a pid_b rc_a=0 rc_b=0
  local cmd_a=()
  shift 2
  while [ "$1" != -- ]; do cmd_a+=("$1"); shift; done
  shift
  t0=$(date +%s%N)
  "${cmd_a[@]}" >"$WORK/start-a.out" 2>"$WORK/start-a.err" &
  pid_a=$!
  "$@" >"$WORK/start-b.out" 2>"$WORK/start-b.err" &
  pid_b=$!
  wait "$pid_a" || rc_a=$?
  wait "$pid_b" || rc_b=$?
  echo "# both started in $(seconds_since "$t0") s"
  cat "$WORK/start-a.err" "$WORK/start-b.err" | sed 's/^/# /'
  check "start A exits 0" [ "$rc_a" = 0 ]
  check "start B ($what_b) exits 0" [ "$rc_b" = 0 ]
  check "start prints $out_a" [ "$(cat "$WORK/start-a.out")" = "$out_a" ]
  if [ "$rc_a" != 0 ] || [ "$rc_b" != 0 ]; then
    echo "cannot go on without both"
    exit 1
  fi
}

less_than() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a < b) }'; }

# Processes whose command line names directory $1: its services, or clients left hanging.
procs_of() { pgrep -f -- "$1/" || true; }

# The last line of a self-test: exit status 0 when every check passed.
finish() {
  if [ "$FAILURES" -ne 0 ]; then
    echo "$FAILURES check(s) failed"
    exit 1
  fi
  echo "all checks passed"
}
