#!/usr/bin/env bash
# Self-test of deploy/openstack.sh: two local OpenStacks side by side (one with 3-second tokens),
# Keystone password and application-credential auth, the key-manager endpoint in the token's
# catalog, a 512-bit XTS key stored in Barbican and read back byte for byte, 401/403/404 where
# they belong, token expiry, idempotent start, refusal of used ports, a failed start that leaves
# nothing running, and a stop that leaves no directory and no process. Exit status 0 = all passed.
# Takes about 20-30 s, most of it the two starts.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib/self_test.bash
source "$HERE/lib/self_test.bash"
OPENSTACK=$HERE/openstack.sh
PY=/usr/bin/python3
WORK=$(mktemp -d /tmp/rbd-luks-openstack-test.XXXXXX)
DIR_A=$WORK/a
DIR_B=$WORK/b
DIR_C=$WORK/c
DIR_D=$WORK/d
SHORT_TOKEN_S=3

cleanup() {
  local d
  for d in "$DIR_A" "$DIR_B" "$DIR_C" "$DIR_D"; do
    "$OPENSTACK" stop --dir "$d" >/dev/null 2>&1 || true
  done
  [ -z "${port_holder:-}" ] || kill "$port_holder" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The first port from $1 up that is free and not in $2 (ports already handed out).
free_port() {
  local p=$1
  while port_in_use "$p" || [[ " $2 " == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}
K_A=$(free_port 25000 "")
B_A=$(free_port 25311 "$K_A")
K_B=$(free_port $((K_A + 1)) "$K_A $B_A")
B_B=$(free_port $((B_A + 1)) "$K_A $B_A $K_B")

mode_of() { stat -c %a "$1"; }

# json FILE PYTHON-EXPR: evaluates EXPR on the parsed file bound to `d`, prints the result.
json() {
  "$PY" -c 'import datetime, json, sys; d = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' \
    "$1" "$2"
}

# request NAME CURL-ARGS...: runs curl; WORK/NAME.body, .headers, .code hold the response.
request() {
  local name=$1; shift
  curl -s -m 20 -o "$WORK/$name.body" -D "$WORK/$name.headers" -w '%{http_code}' "$@" \
    >"$WORK/$name.code" || echo 000 >"$WORK/$name.code"
}
code_of() { cat "$WORK/$1.code"; }
# answered NAME CODE: whether request NAME got HTTP CODE.
answered() { [ "$(code_of "$1")" = "$2" ]; }
# got_key NAME: whether request NAME got 200 and exactly the key stored.
got_key() { answered "$1" 200 && cmp -s "$WORK/key.bin" "$WORK/$1.body"; }
subject_token() { sed -n 's/^x-subject-token: *//Ip' "$WORK/$1.headers" | tr -d '\r'; }

# password_token NAME AUTH_URL USER PASSWORD PROJECT
password_token() {
  request "$1" -H 'Content-Type: application/json' -d "$(printf '%s' \
    '{"auth": {"identity": {"methods": ["password"], "password": {"user": {"name": "'"$3"'",' \
    '"domain": {"name": "Default"}, "password": "'"$4"'"}}}, "scope": {"project": {"name":' \
    '"'"$5"'", "domain": {"name": "Default"}}}}}')" "$2/auth/tokens"
}

# --- start two at once; B issues short-lived tokens ------------------------------------------
echo "# A and B on Keystone/Barbican ports $K_A/$B_A and $K_B/$B_B"
start_both "${SHORT_TOKEN_S} s tokens" "$DIR_A/openrc" \
  "$OPENSTACK" start --dir "$DIR_A" --keystone-port "$K_A" --barbican-port "$B_A" -- \
  env "RBD_LUKS_KEYSTONE_TOKEN_EXPIRATION=$SHORT_TOKEN_S" \
  "$OPENSTACK" start --dir "$DIR_B" --keystone-port "$K_B" --barbican-port "$B_B"
CRED=$DIR_A/credentials
AUTH_URL=http://127.0.0.1:$K_A/v3
BARBICAN_URL=http://127.0.0.1:$B_A

check "status exits 0 when both answer" "$OPENSTACK" status --dir "$DIR_A"
check "credentials and openrc are mode 600, DIR 700" \
  [ "$(mode_of "$CRED")$(mode_of "$DIR_A/openrc")$(mode_of "$DIR_A")" = 600600700 ]
check "credentials name the endpoints" \
  [ "$(json "$CRED" 'd["auth_url"] + " " + d["barbican_url"]')" = "$AUTH_URL $BARBICAN_URL" ]
# listen_addresses PORT...: the local addresses of the listening TCP sockets on those ports.
listen_addresses() {
  local p
  for p in "$@"; do ss -Hltn | awk -v p=":$p" 'substr($4, length($4) - length(p) + 1) == p { print $4 }'; done
}
loopback_only() { echo "listening: $(listen_addresses "$K_A" "$B_A" | tr '\n' ' ')"
  [ "$(listen_addresses "$K_A" "$B_A" | tr '\n' ' ')" = "127.0.0.1:$K_A 127.0.0.1:$B_A " ]; }
check "both listen on 127.0.0.1 only" loopback_only

pids_before=$(cat "$DIR_A"/run/*.pid)
t0=$(date +%s%N)
check "start again on a running one exits 0" "$OPENSTACK" start --dir "$DIR_A"
again=$(seconds_since "$t0")
pids_after=$(cat "$DIR_A"/run/*.pid)
same_servers_at_once() { [ "$pids_before" = "$pids_after" ] && less_than "$again" 3; }
check "... at once ($again s) and keeps the same servers" same_servers_at_once
check "start with other ports on a running one is refused" \
  bash -c "! '$OPENSTACK' start --dir '$DIR_A' --keystone-port $((K_A + 7)) --barbican-port $B_A"
check "a used port is refused" \
  bash -c "! '$OPENSTACK' start --dir '$DIR_C' --keystone-port $K_A --barbican-port $((B_B + 50))"
env_is_usable() (
  eval "$("$OPENSTACK" env --dir "$DIR_A")"
  [ "$OS_AUTH_URL/$OS_USERNAME/$OS_PROJECT_NAME/$OS_USER_DOMAIN_NAME/$OS_PROJECT_DOMAIN_NAME" = \
    "$AUTH_URL/rbd-luks/rbd-luks/Default/Default" ] &&
  [ "$OS_IDENTITY_API_VERSION/$OS_REGION_NAME/$RBD_LUKS_OPENSTACK_DIR" = "3/RegionOne/$DIR_A" ] &&
  [ "$OS_PASSWORD" = "$(json "$CRED" 'd["users"]["rbd-luks"]["password"]')" ]
)
check "env exports OS_* of user rbd-luks for eval" env_is_usable

# --- Keystone --------------------------------------------------------------------------------
password_token tok "$AUTH_URL" rbd-luks "$(json "$CRED" 'd["users"]["rbd-luks"]["password"]')" rbd-luks
TOKEN=$(subject_token tok)
check "password auth answers 201 with X-Subject-Token" [ "$(code_of tok)/${TOKEN:+set}" = 201/set ]
catalog_url=$(json "$WORK/tok.body" '[e["url"] for s in d["token"]["catalog"]
  if s["type"] == "key-manager" for e in s["endpoints"]
  if e["interface"] == "public" and e["region_id"] == "RegionOne"][0]' 2>&1) || true
check "the token's catalog has key-manager at $BARBICAN_URL" [ "$catalog_url" = "$BARBICAN_URL" ]
roles=$(json "$WORK/tok.body" '" ".join(sorted(r["name"] for r in d["token"]["roles"]))' 2>&1) || true
has_creator_and_member() { [[ " $roles " == *" creator "* && " $roles " == *" member "* ]]; }
check "user rbd-luks has roles creator and member (got: $roles)" has_creator_and_member

password_token other "$AUTH_URL" other "$(json "$CRED" 'd["users"]["other"]["password"]')" other
OTHER_TOKEN=$(subject_token other)
check "user other gets a token" answered other 201

app_body=$(printf '{"auth": {"identity": {"methods": ["application_credential"],
  "application_credential": {"id": "%s", "secret": "%s"}}}}' \
  "$(json "$CRED" 'd["application_credential"]["id"]')" \
  "$(json "$CRED" 'd["application_credential"]["secret"]')")
request app -H 'Content-Type: application/json' -d "$app_body" "$AUTH_URL/auth/tokens"
APP_TOKEN=$(subject_token app)
app_project=$(json "$WORK/app.body" 'd["token"]["project"]["name"]' 2>&1) || true
check "application credential auth answers 201, scoped to rbd-luks" \
  [ "$(code_of app)/$app_project" = 201/rbd-luks ]
bad_app=${app_body/\"secret\": \"/\"secret\": \"x}
request badapp -H 'Content-Type: application/json' -d "$bad_app" "$AUTH_URL/auth/tokens"
check "a wrong application credential secret answers 401" answered badapp 401

# --- Barbican --------------------------------------------------------------------------------
head -c 64 /dev/urandom >"$WORK/key.bin"
secret_body=$(printf '{"name": "rbd-luks test key", "payload": "%s",
  "payload_content_type": "application/octet-stream", "payload_content_encoding": "base64",
  "algorithm": "aes", "bit_length": 512, "mode": "xts", "secret_type": "symmetric"}' \
  "$(base64 -w0 "$WORK/key.bin")")
request post -H "X-Auth-Token: $TOKEN" -H 'Content-Type: application/json' -d "$secret_body" \
  "$BARBICAN_URL/v1/secrets"
SECRET_REF=$(json "$WORK/post.body" 'd["secret_ref"]' 2>/dev/null) || SECRET_REF=
check "POST /v1/secrets answers 201 with a secret_ref under $BARBICAN_URL/v1/secrets/" \
  [ "$(code_of post)/${SECRET_REF%/*}" = "201/$BARBICAN_URL/v1/secrets" ]

request get -H "X-Auth-Token: $TOKEN" -H 'Accept: application/octet-stream' "$SECRET_REF/payload"
check "GET payload answers 200 with the same 64 bytes" got_key get
request meta -H "X-Auth-Token: $TOKEN" -H 'Accept: application/json' "$SECRET_REF"
check "the metadata says aes, 512 bits, xts, symmetric" \
  [ "$(json "$WORK/meta.body" \
    '" ".join(str(d[k]) for k in ("algorithm", "bit_length", "mode", "secret_type"))' 2>&1)" \
    = "aes 512 xts symmetric" ]
request getapp -H "X-Auth-Token: $APP_TOKEN" -H 'Accept: application/octet-stream' "$SECRET_REF/payload"
check "the application credential's token reads it too" got_key getapp
request getother -H "X-Auth-Token: $OTHER_TOKEN" -H 'Accept: application/octet-stream' "$SECRET_REF/payload"
check "user other (another project) gets 403" answered getother 403
request getbad -H "X-Auth-Token: ${TOKEN%?????}xxxxx" -H 'Accept: application/octet-stream' \
  "$SECRET_REF/payload"
check "a bad token gets 401" answered getbad 401
request getnone -H 'Accept: application/octet-stream' "$SECRET_REF/payload"
check "no token gets 401" answered getnone 401
request delete -X DELETE -H "X-Auth-Token: $TOKEN" "$SECRET_REF"
check "DELETE answers 204" answered delete 204
request getdeleted -H "X-Auth-Token: $TOKEN" -H 'Accept: application/octet-stream' "$SECRET_REF/payload"
check "a deleted secret gets 404" answered getdeleted 404

# --- short-lived tokens (B) ------------------------------------------------------------------
CRED_B=$DIR_B/credentials
password_token short "http://127.0.0.1:$K_B/v3" rbd-luks \
  "$(json "$CRED_B" 'd["users"]["rbd-luks"]["password"]')" rbd-luks
SHORT=$(subject_token short)
t_token=$(date +%s%N)
lifetime=$(json "$WORK/short.body" 'round((
  datetime.datetime.fromisoformat(d["token"]["expires_at"].rstrip("Z")) -
  datetime.datetime.fromisoformat(d["token"]["issued_at"].rstrip("Z"))).total_seconds())' 2>&1) \
  || true
check "B's tokens live $SHORT_TOKEN_S s (expires_at - issued_at = $lifetime)" \
  [ "$lifetime" = "$SHORT_TOKEN_S" ]
request shortok -H "X-Auth-Token: $SHORT" "http://127.0.0.1:$B_B/v1/secrets"
check "B's fresh token works at Barbican" answered shortok 200
sleep "$(awk -v t0="$t_token" -v t1="$(date +%s%N)" -v s="$SHORT_TOKEN_S" \
  'BEGIN { w = s + 1.2 - (t1 - t0) / 1e9; printf "%.2f", (w > 0 ? w : 0) }')"
request shortold -H "X-Auth-Token: $SHORT" "http://127.0.0.1:$B_B/v1/secrets"
check "... and gets 401 once expired" answered shortold 401
request shortks -H "X-Auth-Token: $SHORT" -H "X-Subject-Token: $SHORT" "http://127.0.0.1:$K_B/v3/auth/tokens"
check "... which Keystone no longer validates (401 or 404: $(code_of shortks))" \
  bash -c "[ '$(code_of shortks)' = 401 ] || [ '$(code_of shortks)' = 404 ]"
password_token renew "http://127.0.0.1:$K_B/v3" rbd-luks \
  "$(json "$CRED_B" 'd["users"]["rbd-luks"]["password"]')" rbd-luks
request renewed -H "X-Auth-Token: $(subject_token renew)" "http://127.0.0.1:$B_B/v1/secrets"
check "a renewed token works again" answered renewed 200

# --- a start that fails ----------------------------------------------------------------------
t0=$(date +%s%N)
rc=0
RBD_LUKS_OPENSTACK_START_TIMEOUT=1 "$OPENSTACK" start --dir "$DIR_C" \
  --keystone-port "$(free_port $((K_B + 100)) "")" --barbican-port "$(free_port $((B_B + 100)) "")" \
  >/dev/null 2>"$WORK/start-c.err" || rc=$?
failed_in=$(seconds_since "$t0")
# failed_fast RC SECONDS ERR-FILE LAST-LINE-REGEX: exit status 1 within 10 s, stderr ending as
# expected.
failed_fast() { [ "$1" = 1 ] && less_than "$2" 10 && tail -n 1 "$3" | grep -q "$4"; }
check "a start that cannot finish in time fails ($failed_in s) with the reason last" \
  failed_fast "$rc" "$failed_in" "$WORK/start-c.err" "^openstack: start failed: .*; logs in $DIR_C/log\$"
check "... and leaves no process but its logs" bash -c "[ -z '$(procs_of "$DIR_C")' ] && [ -d '$DIR_C/log' ]"

# A socket bound to the port but not listening: the port check passes, Barbican's bind fails.
HELD_PORT=$(free_port $((B_B + 200)) "")
"$PY" -c 'import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1]))); time.sleep(60)' "$HELD_PORT" &
port_holder=$!
sleep 0.3
t0=$(date +%s%N)
rc=0
"$OPENSTACK" start --dir "$DIR_D" --keystone-port "$(free_port $((K_B + 200)) "$HELD_PORT")" \
  --barbican-port "$HELD_PORT" >/dev/null 2>"$WORK/start-d.err" || rc=$?
failed_in=$(seconds_since "$t0")
kill "$port_holder"
check "a start whose Barbican exits fails at once ($failed_in s), showing Barbican's log" \
  failed_fast "$rc" "$failed_in" "$WORK/start-d.err" "^openstack: start failed: barbican exited"
check "... whose last lines say why" grep -q "cannot listen on 127.0.0.1:$HELD_PORT" "$WORK/start-d.err"
check "... and leaves no process" [ -z "$(procs_of "$DIR_D")" ]

# --- stop ------------------------------------------------------------------------------------
for d in "$DIR_A" "$DIR_B" "$DIR_C" "$DIR_D"; do
  check "stop $(basename "$d") exits 0" "$OPENSTACK" stop --dir "$d"
done
dirs_gone() {
  local d
  for d in "$DIR_A" "$DIR_B" "$DIR_C" "$DIR_D"; do [ ! -e "$d" ] || { echo "$d remains"; return 1; }; done
}
check "stop removes the directories" dirs_gone
check "no process of any of them remains" [ -z "$(procs_of "$WORK")" ]
ports_free() {
  local p
  for p in "$K_A" "$B_A" "$K_B" "$B_B"; do ! port_in_use "$p" || { echo "$p in use"; return 1; }; done
}
check "their ports are free" ports_free
check "stop without anything to stop exits 0" "$OPENSTACK" stop --dir "$DIR_A"
check "status without anything exits non-zero" bash -c "! '$OPENSTACK' status --dir '$DIR_A'"

finish
