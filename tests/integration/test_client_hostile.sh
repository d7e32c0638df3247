#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A registry that points the client elsewhere: an upload Location, a Link of the tag list and a
# blob redirect on another host (localhost:B for a registry at 127.0.0.1:A) get the request
# without the user's credentials; the other host records every Authorization it receives. A tag
# list whose Link names the page itself fails at once.
. "$(dirname "$0")/client_lib.sh"

A=$(free_port)
B=$(free_port)
cat >"$WORK/hostile.py" <<'PY'
import base64, hashlib, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
A, B = int(sys.argv[1]), int(sys.argv[2])
GOOD = "Basic " + base64.b64encode(b"u:p").decode()
seen = []  # the Authorization headers the other host received ("" when none)
cfg = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
cd = "sha256:" + hashlib.sha256(cfg).hexdigest()
man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                             "digest": cd, "size": len(cfg)}, "layers": []}).encode()
md = "sha256:" + hashlib.sha256(man).hexdigest()
OTHER = "http://localhost:%d" % B
class Main(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", hdr=None):
        self.send_response(code)
        for k, v in (hdr or {}).items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def drain(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        if n: self.rfile.read(n)
    def auth_ok(self):
        if self.headers.get("Authorization", "") == GOOD: return True
        self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"x"}]}',
                  {"WWW-Authenticate": 'Basic realm="r"'})
        return False
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        p = self.path
        if p == "/stats": return self.send(200, json.dumps(seen).encode())
        if not self.auth_ok(): return
        if p in ("/v2/", "/v2"): return self.send(200, b"{}")
        if p == "/v2/loop/tags/list":
            return self.send(200, b'{"name":"loop","tags":["x"]}',
                             {"Link": '</v2/loop/tags/list>; rel="next"'})
        if p == "/v2/a/tags/list":
            return self.send(200, b'{"name":"a","tags":["x"]}',
                             {"Link": '<%s/v2/a/tags/list?last=x>; rel="next"' % OTHER})
        if p in ("/v2/a/manifests/v1", "/v2/a/manifests/" + md):
            return self.send(200, man, {"Content-Type": "application/vnd.oci.image.manifest.v1+json",
                                        "Docker-Content-Digest": md})
        if p == "/v2/a/blobs/" + cd and self.command == "GET":
            return self.send(307, b"", {"Location": OTHER + "/blob"})
        return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}')
    def do_POST(self):
        self.drain()
        if not self.auth_ok(): return
        return self.send(202, b"", {"Location": OTHER + "/v2/a/blobs/uploads/1", "Range": "0-0"})
class Other(Main):
    def other(self):
        self.drain()
        if self.path == "/stats": return self.send(200, json.dumps(seen).encode())
        seen.append(self.headers.get("Authorization", ""))
        if self.path == "/blob": return self.send(200, cfg)
        self.send(401, b"{}", {"WWW-Authenticate": 'Basic realm="r"'})
    do_GET = do_PATCH = do_PUT = do_DELETE = do_POST = other
s2 = ThreadingHTTPServer(("127.0.0.1", B), Other)
threading.Thread(target=s2.serve_forever, daemon=True).start()
ThreadingHTTPServer(("127.0.0.1", A), Main).serve_forever()
PY
python3 "$WORK/hostile.py" "$A" "$B" >"$WORK/hostile.log" 2>&1 &
PIDS+=($!)
wait_port "$A"
H=127.0.0.1:$A
make_layout "$WORK/l1" v1 >/dev/null

seen() { curl -s "http://127.0.0.1:$B/stats"; }

# 1. the upload session's Location is on another host: the PATCH/PUT there carry no credentials
set +e
"$BERTH" copy --quiet --user u --password p "oci:$WORK/l1:v1" "$H/a:v1" 2>"$WORK/err"
set -e
grep -q "localhost:$B" "$WORK/err" || fail "the push did not reach the other host: $(cat "$WORK/err")"
grep -q "another origin" "$WORK/err" || fail "no word on the other origin: $(cat "$WORK/err")"
s=$(seen)
echo "other host after the push: $s"
[ "$s" != "[]" ] || fail "the other host received nothing"
! grep -q Basic <<<"$s" || fail "credentials sent to the upload Location's other host: $s"

# 2. the tag list's next page is on another host
set +e
"$BERTH" tags --user u --password p "$H/a" >/dev/null 2>"$WORK/err"
set -e
s=$(seen)
! grep -q Basic <<<"$s" || fail "credentials sent to the Link's other host: $s"

# 3. a blob GET redirected (307) to another host: the config arrives, without credentials there
n_before=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$(seen)")
"$BERTH" inspect --config --user u --password p "$H/a:v1" >"$WORK/cfg" || fail "inspect --config"
grep -q '"amd64"' "$WORK/cfg" || fail "config not read through the redirect: $(cat "$WORK/cfg")"
s=$(seen)
n_after=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])))' "$s")
[ "$n_after" -gt "$n_before" ] || fail "the blob redirect did not reach the other host"
! grep -q Basic <<<"$s" || fail "credentials sent to the blob redirect's other host: $s"
# 4. a tag list whose Link names the page itself: an error at once, not 100,000 requests
set +e
timeout 60 "$BERTH" tags --user u --password p "$H/loop" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "exit status of a tag list that links to itself"
grep -q "names the same page" "$WORK/err" || fail "a self-linking tag list: $(cat "$WORK/err")"
echo "PASS"
