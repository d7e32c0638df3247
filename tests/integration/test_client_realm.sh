#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The token realm a registry names. A registry reached over HTTPS whose realm is plain HTTP on
# a host that is not loopback (127.0.0.2 here: berth counts only localhost, 127.0.0.1 and
# [::1] as loopback) does not get the user's credentials there, and the command says why;
# --tls-verify=false allows it. A realm that is not HTTP(S) (file:) is not fetched.
. "$(dirname "$0")/client_lib.sh"

cd "$WORK" || exit 1
ssl() { openssl "$@" 2>/dev/null || fail "openssl $1"; }
ssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=test CA"
ssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\n' >srv.ext
ssl x509 -req -in srv.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out srv.crt -days 2 \
    -extfile srv.ext
mkdir -p cas && cp ca.crt cas/ca.crt
python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.2", 0)); s.close()' 2>/dev/null ||
    { echo "skip: 127.0.0.2 cannot be bound"; exit 77; }

A=$(free_port)
R=$(free_port)
cat >realm.py <<'PY'
import json, ssl, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
A, R, certdir = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
realm = {"url": "http://127.0.0.2:%d/token" % R}
seen = []  # Authorization headers of the token requests
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", hdr=None):
        self.send_response(code)
        for k, v in (hdr or {}).items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        if self.path.startswith("/token"):
            seen.append(self.headers.get("Authorization", ""))
            return self.send(200, b'{"token":"t"}')
        if self.path == "/stats": return self.send(200, json.dumps(seen).encode())
        if self.path.startswith("/realm?"):
            realm["url"] = self.path.split("?", 1)[1]; return self.send(200, b"")
        if self.headers.get("Authorization") == "Bearer t":
            return self.send(200, b'{"name":"a","tags":["v1"]}', {"Content-Type": "application/json"})
        self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}',
                  {"WWW-Authenticate": 'Bearer realm="%s",service="s",scope="x"' % realm["url"]})
tok = ThreadingHTTPServer(("127.0.0.2", R), H)
threading.Thread(target=tok.serve_forever, daemon=True).start()
ctl = ThreadingHTTPServer(("127.0.0.1", R), H)
threading.Thread(target=ctl.serve_forever, daemon=True).start()
srv = ThreadingHTTPServer(("127.0.0.1", A), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(certdir + "/srv.crt", certdir + "/srv.key")
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
python3 realm.py "$A" "$R" "$WORK" >realm.log 2>&1 &
PIDS+=($!)
wait_port "$R"
H=127.0.0.1:$A
seen() { curl -s "http://127.0.0.1:$R/stats"; }

# 1. the registry is HTTPS, the realm plain HTTP elsewhere: no credentials sent, a clear error
set +e
"$BERTH" tags --cert-dir "$WORK/cas" --user u --password p "$H/a" >out 2>err
rc=$?
set -e
echo "plain realm: rc $rc: $(cat err)"
expect_eq "$rc" 1 "exit status with a plain-HTTP realm"
! grep -q Basic <<<"$(seen)" || fail "credentials sent in plain HTTP to the realm: $(seen)"
grep -q "plain HTTP" err || fail "no reason given: $(cat err)"

# anonymous, the realm is asked (nothing to leak)
"$BERTH" tags --cert-dir "$WORK/cas" "$H/a" | grep -qx v1 || fail "anonymous tags with the plain realm"

# --tls-verify=false: the user accepted it
"$BERTH" tags --tls-verify=false --user u --password p "$H/a" | grep -qx v1 ||
    fail "--tls-verify=false with the plain realm"
grep -q Basic <<<"$(seen)" || fail "--tls-verify=false: the realm got no credentials: $(seen)"

# 2. a realm that is not HTTP(S): not read
curl -s "http://127.0.0.1:$R/realm?file://$WORK/ca.crt" >/dev/null
set +e
"$BERTH" tags --cert-dir "$WORK/cas" "$H/a" >out 2>err
rc=$?
set -e
echo "file realm: rc $rc: $(cat err)"
expect_eq "$rc" 1 "exit status with a file: realm"
grep -qi "protocol" err || fail "a file: realm was fetched: $(cat err)"
echo PASS
