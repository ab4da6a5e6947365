#!/usr/bin/env bash
# rbd-luks with keys in Barbican on RBD images: `create --new-key barbican` stores a fresh 512-bit
# key and records barbican:UUID in the image metadata; a new process opens the image with the
# metadata alone; Barbican holds the secret with the expected type and bit length. The same with
# application-credential auth, and with the settings in a config file (--config, $RBD_LUKS_CONF),
# which is refused when it is readable by everyone. key-ref show/clear. No key or password leaks.
# shellcheck source=tests/plugin/cli/openstack/lib.bash
source "$OPENSTACK_TEST_LIB"

# as_app_cred CMD...: CMD with the application credential of rbd-luks instead of its password
# (exported in a subshell, so the secret never appears in a command line).
as_app_cred() (
  unset OS_USERNAME OS_PASSWORD OS_PROJECT_NAME OS_USER_DOMAIN_NAME OS_PROJECT_DOMAIN_NAME
  export OS_AUTH_TYPE=v3applicationcredential
  OS_APPLICATION_CREDENTIAL_ID=$(cred application_credential id)
  OS_APPLICATION_CREDENTIAL_SECRET=$(cred application_credential secret)
  export OS_APPLICATION_CREDENTIAL_ID OS_APPLICATION_CREDENTIAL_SECRET
  "$@"
)

# without_os_env CMD...: CMD with no OS_* variables at all.
without_os_env() (
  for v in $(compgen -e | grep '^OS_'); do unset "$v"; done
  "$@"
)

# check_new_secret IMAGE: the image records barbican:UUID (raw encoding); Barbican holds a 512-bit
# symmetric AES secret under that UUID; saves the key as WORK/key-IMAGE. Prints the UUID.
check_new_secret() {
  local image=$1 ref uuid
  ref=$(image_meta "$image" rbd-luks.key-ref)
  [[ "$ref" =~ ^barbican:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]] ||
    fail "$image: metadata key reference is '$ref'"
  uuid=${ref#barbican:}
  SECRETS+=("$uuid")
  [ "$(image_meta "$image" rbd-luks.passphrase-encoding)" = raw ] || fail "$image: encoding not recorded as raw"
  [ "$(secret_field "$uuid" bit_length)" = 512 ] || fail "$image: secret bit_length is not 512"
  [ "$(secret_field "$uuid" secret_type)" = symmetric ] || fail "$image: secret is not symmetric"
  [ "$(secret_field "$uuid" algorithm)" = aes ] || fail "$image: secret algorithm is not aes"
  [ "$(secret_field "$uuid" name)" = "rbd-luks rbd:rbd/$image" ] || fail "$image: secret name"
  barbican rbd-luks GET "/v1/secrets/$uuid/payload" -H 'Accept: application/octet-stream' -o "$WORK/key-$image"
  [ "$(stat -c %s "$WORK/key-$image")" -eq 64 ] || fail "$image: the secret's payload is not 64 bytes"
  leak_key "$WORK/key-$image"
  echo "$uuid"
}

head -c 300000 /dev/urandom >"$WORK/data"

# --- password auth (the openrc) ------------------------------------------------------------------
img=$TAG-pw
IMAGES+=("$img")
start=$(date +%s%N)
expect_exit 0 rl create "rbd:rbd/$img" --size 16M --new-key barbican "${FAST[@]}"
uuid=$(check_new_secret "$img")
grep -qF "barbican:$uuid" "$WORK/err" || fail "create did not report the key reference"
expect_exit 0 rl import "$WORK/data" "rbd:rbd/$img" --offset 12345
# A new process, no key option: the metadata names the key.
rl read "rbd:rbd/$img" --offset 12345 --length 300000 >"$WORK/back"
cmp -s "$WORK/back" "$WORK/data" || fail "read back through the Barbican key differs"
pass "password auth: create --new-key barbican, write, reopen from metadata alone" \
  "($(( ($(date +%s%N) - start) / 1000000 )) ms)"

# The same key through the other key sources: a secret_ref URL, and its bytes as a passphrase file.
expect_exit 0 rl check "rbd:rbd/$img" --key-ref "barbican:$BARBICAN_URL/v1/secrets/$uuid"
expect_exit 0 rl check "rbd:rbd/$img" --passphrase-file "$WORK/key-$img"
expect_exit 3 rl check "rbd:rbd/$img" --passphrase-encoding hex
pass "the recorded key also opens by secret_ref URL and as raw bytes; hex encoding does not"

expect_exit 0 rl key-ref show "rbd:rbd/$img"
[ "$(cat "$WORK/out")" = "key-ref: barbican:$uuid
passphrase-encoding: raw" ] || fail "key-ref show printed: $(cat "$WORK/out")"
expect_exit 0 rl key-ref show "rbd:rbd/$img" --json
$PY -c 'import json, sys; d = json.load(open(sys.argv[1]))
assert d == {"key_ref": "barbican:" + sys.argv[2], "passphrase_encoding": "raw"}, d' "$WORK/out" "$uuid" ||
  fail "key-ref show --json"
pass "key-ref show"

# --- application credential auth -----------------------------------------------------------------
img2=$TAG-ac
IMAGES+=("$img2")
as_app_cred expect_exit 0 rl create "rbd:rbd/$img2" --size 16M --new-key barbican "${FAST[@]}"
uuid2=$(check_new_secret "$img2")
as_app_cred expect_exit 0 rl import "$WORK/data" "rbd:rbd/$img2" --offset 0
as_app_cred rl read "rbd:rbd/$img2" --offset 0 --length 300000 >"$WORK/back"
cmp -s "$WORK/back" "$WORK/data" || fail "application credential: read back differs"
# Same project: the password user opens it, and the credential opens the password user's image.
rl read "rbd:rbd/$img2" --offset 0 --length 300000 | cmp -s - "$WORK/data" || fail "password user cannot read $img2"
as_app_cred rl read "rbd:rbd/$img" --offset 12345 --length 300000 | cmp -s - "$WORK/data" ||
  fail "application credential cannot read $img"
[ "$uuid2" != "$uuid" ] || fail "two volumes share a secret"
pass "application credential auth: create, write, reopen; same project both ways"

# --- settings from a config file instead of the environment --------------------------------------
conf=$WORK/rbd-luks.conf
$PY - "$OS_DIR/credentials" >"$conf" <<'PYEOF'
import json, sys
c = json.load(open(sys.argv[1])); u = c["users"]["rbd-luks"]
print(f"""# rbd-luks test settings
[barbican]
auth_url = {c["auth_url"]}
username = {u["username"]}
password = {u["password"]}
project_name = {u["project"]}
user_domain_name = {c["user_domain_name"]}
project_domain_name = {c["project_domain_name"]}
region_name = {c["region"]}
timeout = 20
""")
PYEOF
chmod 600 "$conf"
without_os_env expect_exit 5 rl check "rbd:rbd/$img"
expect_error_mentions "OS_AUTH_URL" "barbican:$uuid"
without_os_env expect_exit 0 rl check "rbd:rbd/$img" --config "$conf"
RBD_LUKS_CONF=$conf without_os_env expect_exit 0 rl read "rbd:rbd/$img" --offset 12345 --length 1000
cmp -s "$WORK/out" <(head -c 1000 "$WORK/data") || fail "read with RBD_LUKS_CONF differs"
# The environment wins over the file.
OS_PASSWORD=wrong-password expect_exit 5 rl check "rbd:rbd/$img" --config "$conf"
expect_error_mentions "HTTP 401"
chmod 644 "$conf"
without_os_env expect_exit 5 rl check "rbd:rbd/$img" --config "$conf"
expect_error_mentions "readable by everyone"
pass "settings from --config and \$RBD_LUKS_CONF; environment overrides; world-readable file refused"

# --- key-ref clear ----------------------------------------------------------------------------------
expect_exit 0 rl key-ref clear "rbd:rbd/$img2"
[ -z "$(image_meta "$img2" rbd-luks.key-ref)" ] || fail "key-ref clear left the reference"
expect_exit 0 rl key-ref show "rbd:rbd/$img2"
[ "$(cat "$WORK/out")" = "key-ref: none" ] || fail "key-ref show after clear: $(cat "$WORK/out")"
expect_exit 2 rl check "rbd:rbd/$img2"
expect_exit 0 rl check "rbd:rbd/$img2" --key-ref "barbican:$uuid2"
pass "key-ref clear: no key source left; --key-ref still opens it"

check_no_leaks
