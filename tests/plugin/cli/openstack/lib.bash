# Shared helpers for the OpenStack tests (sourced, not run): the local Keystone and Barbican of the
# "openstack" fixture, RBD images of the "ceph" fixture, and the check that no key or password
# ever shows up in what the tests produced (stderr of every command, rbd-luks's arguments, process
# listings taken during the run, the services' logs).
set -euo pipefail
: "${CEPH_CONF:?CEPH_CONF must name the ceph.conf of the test cluster}"
: "${RBD_LUKS:?RBD_LUKS must point at the rbd-luks binary}"
: "${RBD_LUKS_OPENSTACK_DIR:?RBD_LUKS_OPENSTACK_DIR must name the directory of the local OpenStack}"

PY=/usr/bin/python3
OS_DIR=$RBD_LUKS_OPENSTACK_DIR
TAG=${TAG:-os$$}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/rbd-luks-os.XXXXXX")
chmod 700 "$WORK"
# shellcheck disable=SC2034  # used by the scripts that source this file
FAST=(--pbkdf argon2id --pbkdf-force-iterations 4 --pbkdf-memory 32 --pbkdf-parallel 1)
IMAGES=()
SECRETS=()
PS_WATCH=

fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }
rbdc() { rbd --client-mount-timeout 20 "$@"; }

# cred PATH...: a value from the credentials file, e.g. `cred users other password`.
cred() { $PY -c 'import json, sys; v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]: v = v[k]
print(v)' "$OS_DIR/credentials" "$@"; }

# The openrc of user rbd-luks (password auth) is the environment of every rbd-luks run.
# shellcheck disable=SC1091
source "$OS_DIR/openrc"
BARBICAN_URL=$(cred barbican_url)

# --- secrets that must not leak ----------------------------------------------------------------
LEAKS=$WORK/leak-patterns
: >"$LEAKS"
leak_pattern() { printf '%s\n' "$1" >>"$LEAKS"; }
# leak_key FILE: the key in FILE as hex and as base64.
leak_key() {
  leak_pattern "$(xxd -p -c 1000 "$1" | tr -d '\n')"
  leak_pattern "$(base64 -w0 "$1")"
}
for user in rbd-luks other admin barbican; do leak_pattern "$(cred users "$user" password)"; done
leak_pattern "$(cred application_credential secret)"

# Process listings every 100 ms while the test runs: a key or password in anyone's argv shows here.
ps_watch() {
  while :; do ps -eo args >>"$WORK/ps.log" 2>/dev/null || true; sleep 0.1; done
}
ps_watch &
PS_WATCH=$!

# check_no_leaks: none of the patterns occurs in stderr, arguments, process listings or logs.
check_no_leaks() {
  kill "$PS_WATCH" 2>/dev/null || true
  wait "$PS_WATCH" 2>/dev/null || true
  PS_WATCH=
  local files=("$WORK/stderr.log" "$WORK/argv.log" "$WORK/ps.log" "$OS_DIR"/log/*)
  local found
  found=$(grep -l -F -f "$LEAKS" "${files[@]}" 2>/dev/null || true)
  [ -z "$found" ] || fail "key material or a password appears in: $found"
  [ "$(wc -l <"$WORK/ps.log")" -gt 10 ] || fail "the process listing watcher recorded nothing"
  pass "no key or password in stderr, rbd-luks arguments, $(wc -l <"$WORK/ps.log") process-listing lines" \
    "or the service logs"
}

cleanup() {
  [ -z "$PS_WATCH" ] || kill "$PS_WATCH" 2>/dev/null || true
  for image in "${IMAGES[@]}"; do rbdc rm "rbd/$image" >/dev/null 2>&1 || true; done
  for uuid in "${SECRETS[@]}"; do barbican rbd-luks DELETE "/v1/secrets/$uuid" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- running rbd-luks ----------------------------------------------------------------------------
# rl ARGS...: rbd-luks, with its arguments and stderr recorded for check_no_leaks.
rl() {
  printf '%q ' "$@" >>"$WORK/argv.log"
  echo >>"$WORK/argv.log"
  local rc=0
  "$RBD_LUKS" "$@" 2>"$WORK/rl.err" || rc=$?
  cat "$WORK/rl.err" >>"$WORK/stderr.log"
  cat "$WORK/rl.err" >&2
  return $rc
}

# expect_exit CODE rl ARGS...: the exit code, and for failures exactly one "rbd-luks: error:" line.
expect_exit() {
  local want=$1; shift
  local rc=0
  [ "$1" = rl ] || { printf '%q ' "$@" >>"$WORK/argv.log"; echo >>"$WORK/argv.log"; }
  "$@" >"$WORK/out" 2>"$WORK/err" || rc=$?
  cat "$WORK/err" >>"$WORK/stderr.log"
  [ "$rc" -eq "$want" ] || { cat "$WORK/err" >&2; fail "'$*' exited $rc, expected $want"; }
  if [ "$want" -ne 0 ]; then
    if [ "$(wc -l <"$WORK/err")" -ne 1 ] || ! grep -q '^rbd-luks: error: ' "$WORK/err"; then
      cat "$WORK/err" >&2
      fail "'$*': not exactly one error line"
    fi
  fi
  return 0
}

# expect_error_mentions TEXT...: the last expect_exit's error line contains every TEXT.
expect_error_mentions() {
  local text
  for text in "$@"; do
    grep -qF -- "$text" "$WORK/err" || fail "error does not mention '$text': $(cat "$WORK/err")"
  done
}

# --- Barbican through curl, as an operator or Cinder would do it ---------------------------------
# Request bodies and headers with secrets go through files, never through curl's arguments.
# token USER: writes a header file WORK/hdr-USER with a fresh X-Auth-Token for that user.
token() {
  local user=$1
  $PY - "$OS_DIR/credentials" "$user" >"$WORK/auth-$user.json" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); u = c["users"][sys.argv[2]]
print(json.dumps({"auth": {"identity": {"methods": ["password"], "password": {"user": {
    "name": u["username"], "domain": {"name": "Default"}, "password": u["password"]}}},
    "scope": {"project": {"name": u["project"], "domain": {"name": "Default"}}}}}))
PYEOF
  curl -sf -D "$WORK/auth-$user.hdr" -o /dev/null -H 'Content-Type: application/json' \
    -d @"$WORK/auth-$user.json" "$OS_AUTH_URL/auth/tokens" || fail "Keystone gave $user no token"
  sed -n 's/^x-subject-token: \(.*\)\r$/X-Auth-Token: \1/Ip' "$WORK/auth-$user.hdr" >"$WORK/hdr-$user"
  rm -f "$WORK/auth-$user.json"
}

# barbican USER METHOD PATH [CURL ARGS...]: a Barbican API call as USER; prints the body.
barbican() {
  local user=$1 method=$2 path=$3; shift 3
  [ -s "$WORK/hdr-$user" ] || token "$user"
  curl -sf -X "$method" -H @"$WORK/hdr-$user" "$@" "$BARBICAN_URL$path"
}

# store_key USER KEYFILE: stores the bytes of KEYFILE as a symmetric secret; prints its UUID.
store_key() {
  local user=$1 keyfile=$2 uuid
  $PY - "$keyfile" >"$WORK/secret.json" <<'PYEOF'
import base64, json, sys
key = open(sys.argv[1], "rb").read()
print(json.dumps({"name": "test key", "payload": base64.b64encode(key).decode(), "payload_content_type":
    "application/octet-stream", "payload_content_encoding": "base64", "algorithm": "aes",
    "bit_length": 8 * len(key), "mode": "xts", "secret_type": "symmetric"}))
PYEOF
  uuid=$(barbican "$user" POST /v1/secrets -H 'Content-Type: application/json' -d @"$WORK/secret.json" |
    $PY -c 'import json, sys; print(json.load(sys.stdin)["secret_ref"].rsplit("/", 1)[1])')
  rm -f "$WORK/secret.json"
  SECRETS+=("$uuid")
  echo "$uuid"
}

# secret_field UUID FIELD: a field of the secret's metadata (as user rbd-luks).
secret_field() {
  barbican rbd-luks GET "/v1/secrets/$1" -H 'Accept: application/json' |
    $PY -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$2"
}

# image_meta IMAGE KEY: an RBD image-meta value, empty when absent.
image_meta() { rbdc image-meta get "rbd/$1" "$2" 2>/dev/null || true; }

# export_image IMAGE FILE: the raw (encrypted) bytes, to prove a failed command wrote nothing.
export_image() { rm -f "$2"; rbdc export --no-progress "rbd/$1" "$2" >/dev/null 2>&1 || fail "rbd export $1 failed"; }

# closed_port: a local TCP port nobody listens on.
closed_port() {
  $PY -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}
