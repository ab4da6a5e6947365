#!/usr/bin/env bash
# When the Barbican key cannot be had, rbd-luks exits 5 with one error line that names the secret
# and says why, and writes nothing to the image (a write with data on stdin is attempted each time;
# the raw image is compared before and after): Barbican down, Keystone down, wrong password,
# another project's secret (403), a deleted secret (404), a malformed reference, no credentials,
# plain http to a host other than this one.
# `create --new-key barbican` that cannot store its key leaves no image behind.
# shellcheck source=tests/plugin/cli/openstack/lib.bash
source "$OPENSTACK_TEST_LIB"

img=$TAG-fail
IMAGES+=("$img")
expect_exit 0 rl create "rbd:rbd/$img" --size 16M --new-key barbican "${FAST[@]}"
uuid=$(image_meta "$img" rbd-luks.key-ref)
uuid=${uuid#barbican:}
SECRETS+=("$uuid")
barbican rbd-luks GET "/v1/secrets/$uuid/payload" -H 'Accept: application/octet-stream' -o "$WORK/key"
leak_key "$WORK/key"
printf 'precious data' >"$WORK/data"
expect_exit 0 rl write "rbd:rbd/$img" --offset 0 <"$WORK/data"
export_image "$img" "$WORK/before"
head -c 4096 /dev/urandom >"$WORK/junk"

# refused WHAT TEXT... -- [ENV=VALUE...]: a write fails with exit 5, its error names the secret and
# every TEXT, it takes under 10 s, and the image is unchanged.
refused() {
  local what=$1; shift
  local texts=()
  while [ "$1" != -- ]; do texts+=("$1"); shift; done
  shift
  local start=$SECONDS
  expect_exit 5 env "$@" "$RBD_LUKS" write "rbd:rbd/$img" --offset 0 <"$WORK/junk"
  expect_error_mentions "barbican:$uuid" "${texts[@]}"
  [ $((SECONDS - start)) -lt 10 ] || fail "$what: took $((SECONDS - start)) s"
  export_image "$img" "$WORK/after"
  cmp -s "$WORK/before" "$WORK/after" || fail "$what: the image changed"
  pass "$what: exit 5, '$(sed 's/^rbd-luks: error: //' "$WORK/err" | cut -c1-150)...', image unchanged"
}

port=$(closed_port)
refused "Barbican down" "127.0.0.1:$port" "attempts" -- RBD_LUKS_BARBICAN_URL="http://127.0.0.1:$port"
refused "Keystone down" "cannot reach Keystone" "127.0.0.1:$port" -- OS_AUTH_URL="http://127.0.0.1:$port/v3"
# Plain http beyond the loopback interface is not even attempted unless the config file allows it
# (.invalid never resolves, so the allowed attempt fails at the lookup).
refused "plain http to another host" "not sent: plain http" "insecure_http" -- \
  RBD_LUKS_BARBICAN_URL="http://barbican.invalid:9311"
refused "plain http to another host's Keystone" "cannot reach Keystone" "not sent: plain http" -- \
  OS_AUTH_URL="http://keystone.invalid:5000/v3"
printf '[barbican]\ninsecure_http = true\n' >"$WORK/insecure-http.conf"
refused "plain http allowed by insecure_http" "barbican.invalid" "resolve" -- RBD_LUKS_CONF="$WORK/insecure-http.conf" \
  RBD_LUKS_BARBICAN_URL="http://barbican.invalid:9311"
refused "wrong password" "HTTP 401" "user rbd-luks" -- OS_PASSWORD=wrong-password
refused "unknown project" "HTTP 401" -- OS_PROJECT_NAME=no-such-project
refused "no credentials" "OS_AUTH_URL" -- -u OS_AUTH_URL -u OS_USERNAME -u OS_PASSWORD -u OS_PROJECT_NAME \
  RBD_LUKS_CONF=

# User "other" of project "other": its password goes through an exported variable, not argv.
token other
OS_PASSWORD=$(cred users other password) OS_USERNAME=other OS_PROJECT_NAME=other \
  refused "another project's secret" "HTTP 403" --
# Access control lists let another project's user read it: Barbican's ACL, not rbd-luks, decides.
printf '{"read": {"users": ["%s"], "project-access": true}}' "$(cred users other user_id)" >"$WORK/acl.json"
barbican rbd-luks PUT "/v1/secrets/$uuid/acl" -H 'Content-Type: application/json' -d @"$WORK/acl.json" >/dev/null
OS_PASSWORD=$(cred users other password) OS_USERNAME=other OS_PROJECT_NAME=other \
  expect_exit 0 rl check "rbd:rbd/$img"
pass "with a read ACL for user other, other opens it"

# A malformed reference never reaches Barbican.
expect_exit 5 rl check "rbd:rbd/$img" --key-ref barbican:not-a-uuid
expect_error_mentions "barbican:not-a-uuid"

# The secret is deleted: 404.
barbican rbd-luks DELETE "/v1/secrets/$uuid" >/dev/null
refused "deleted secret" "HTTP 404" --

# --new-key barbican that cannot store the key: exit 5 and no image.
for env_setting in "RBD_LUKS_BARBICAN_URL=http://127.0.0.1:$port" "OS_PASSWORD=wrong-password"; do
  expect_exit 5 env "$env_setting" "$RBD_LUKS" create "rbd:rbd/$TAG-never" --size 16M --new-key barbican "${FAST[@]}"
  expect_error_mentions "barbican"
  if rbdc info "rbd/$TAG-never" >/dev/null 2>&1; then IMAGES+=("$TAG-never"); fail "failed --new-key left an image"; fi
done
pass "create --new-key barbican without Barbican: exit 5, no image"

check_no_leaks
