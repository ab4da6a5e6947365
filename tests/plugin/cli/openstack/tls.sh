#!/usr/bin/env bash
# TLS to Barbican: a stand-in Barbican on https (a test CA's certificate for 127.0.0.1, serving one
# secret's payload to any token) behind the real Keystone. Verification is on by default: an
# unknown CA and a wrong host name fail with exit 5 and say so, without retries; OS_CACERT or
# cafile in the config file make it work; `insecure = true` turns verification off.
# shellcheck source=tests/plugin/cli/openstack/lib.bash
source "$OPENSTACK_TEST_LIB"

# A CA and a server certificate for IP 127.0.0.1 (not for the name localhost).
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=rbd-luks-test-ca -keyout "$WORK/ca.key" \
  -out "$WORK/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$WORK/server.key" -out "$WORK/server.csr" 2>/dev/null
printf 'subjectAltName = IP:127.0.0.1\n' >"$WORK/san.ext"
openssl x509 -req -in "$WORK/server.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" -CAcreateserial -days 1 \
  -extfile "$WORK/san.ext" -out "$WORK/server.pem" 2>/dev/null

head -c 64 /dev/urandom >"$WORK/key"
chmod 600 "$WORK/key"
leak_key "$WORK/key"
uuid=0badc0de-1111-2222-3333-444455556666
$PY - "$WORK" <<'PYEOF' &
import http.server, os, ssl, sys
work = sys.argv[1]
key = open(os.path.join(work, "key"), "rb").read()
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        ok = self.path.endswith("/payload") and self.headers.get("X-Auth-Token")
        body = key if ok else b""
        self.send_response(200 if ok else 401)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(os.path.join(work, "server.pem"), os.path.join(work, "server.key"))
server.socket = context.wrap_socket(server.socket, server_side=True)
with open(os.path.join(work, "port.tmp"), "w") as f:
    f.write(str(server.server_address[1]))
os.rename(os.path.join(work, "port.tmp"), os.path.join(work, "port"))
server.serve_forever()
PYEOF
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; cleanup' EXIT
for _ in $(seq 100); do [ -s "$WORK/port" ] && break; sleep 0.1; done
[ -s "$WORK/port" ] || fail "the https stand-in did not start"
port=$(cat "$WORK/port")

# A LUKS2 file whose passphrase is the key's raw bytes.
expect_exit 0 rl create "file:$WORK/img" --size 4M --key-ref "file:$WORK/key" "${FAST[@]}"
export RBD_LUKS_BARBICAN_URL=https://127.0.0.1:$port

expect_exit 5 rl check "file:$WORK/img" --key-ref "barbican:$uuid"
expect_error_mentions "barbican:$uuid" "certificate"
grep -q attempts "$WORK/err" && fail "a certificate failure was retried"
OS_CACERT=$WORK/ca.pem expect_exit 0 rl check "file:$WORK/img" --key-ref "barbican:$uuid"
pass "https: unknown CA refused (exit 5, names the certificate problem, no retries); OS_CACERT accepted"

RBD_LUKS_BARBICAN_URL=https://localhost:$port OS_CACERT=$WORK/ca.pem \
  expect_exit 5 rl check "file:$WORK/img" --key-ref "barbican:$uuid"
expect_error_mentions "localhost"
pass "https: certificate for another host name refused"

printf '[barbican]\ncafile = %s\n' "$WORK/ca.pem" >"$WORK/ca.conf"
expect_exit 0 rl check "file:$WORK/img" --key-ref "barbican:$uuid" --config "$WORK/ca.conf"
printf '[barbican]\ninsecure = true\n' >"$WORK/insecure.conf"
expect_exit 0 rl check "file:$WORK/img" --key-ref "barbican:$uuid" --config "$WORK/insecure.conf"
printf '[barbican]\ninsecure = false\n' >"$WORK/secure.conf"
expect_exit 5 rl check "file:$WORK/img" --key-ref "barbican:$uuid" --config "$WORK/secure.conf"
pass "config file: cafile trusted; insecure = true skips verification; insecure = false does not"

check_no_leaks
