#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# Names that someone else wrote reach the user's terminal only when they are names:
# `berth tags oci:DIR` skips a ref.name no reference can take (an escape sequence and a
# newline in org.opencontainers.image.ref.name; before, it reached the terminal raw and forged
# a line "fake") and lists a name that index.json lists twice once; `berth tags` and
# `berth catalog` skip what a hostile registry sends that is not a tag or a repository name.
. "$(dirname "$0")/client_lib.sh"

make_layout "$WORK/l" app >/dev/null
python3 - "$WORK/l/index.json" <<'PY'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
m = j["manifests"][0]
evil = json.loads(json.dumps(m))
evil["annotations"]["org.opencontainers.image.ref.name"] = "evil\x1b]0;owned\x07\nfake"
dup = json.loads(json.dumps(m))
other = json.loads(json.dumps(m))
other["annotations"]["org.opencontainers.image.ref.name"] = "example.com/app:v2"
j["manifests"] += [evil, dup, other]
json.dump(j, open(p, "w"))
PY
"$BERTH" tags "oci:$WORK/l" >"$WORK/out" 2>"$WORK/err" || fail "tags: $(cat "$WORK/err")"
expect_eq "$(tr '\n' ' ' <"$WORK/out")" "app example.com/app:v2 " "names listed"
! grep -q $'\033' "$WORK/out" || fail "an escape sequence printed"
# the listed names are the ones copy takes
"$BERTH" copy --quiet "oci:$WORK/l:example.com/app:v2" "oci:$WORK/out2:v2" >/dev/null ||
    fail "copy of a listed name"

# a registry (a small fake) whose tag list and catalog hold an escape sequence and a newline
PORT=$(free_port)
python3 - "$PORT" <<'PY' &
import http.server, json, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/v2/x/tags/list"):
            b = {"name": "x", "tags": ["ok", "a\u001b]0;owned\u0007", "b\nfake", "v2"]}
        elif self.path.startswith("/v2/_catalog"):
            b = {"repositories": ["good", "ev\u001b[2Jil", "x\nfake", "team/app"]}
        elif self.path == "/v2/":
            b = {}
        else:
            self.send_response(404)
            self.end_headers()
            return
        b = json.dumps(b).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
PIDS+=($!)
wait_port "$PORT"
"$BERTH" tags "127.0.0.1:$PORT/x" >"$WORK/out" 2>"$WORK/err" || fail "tags: $(cat "$WORK/err")"
expect_eq "$(tr '\n' ' ' <"$WORK/out")" "ok v2 " "tags of a hostile registry"
"$BERTH" catalog "127.0.0.1:$PORT" >"$WORK/out" 2>"$WORK/err" || fail "catalog: $(cat "$WORK/err")"
expect_eq "$(tr '\n' ' ' <"$WORK/out")" "good team/app " "catalog of a hostile registry"
echo "ok"
