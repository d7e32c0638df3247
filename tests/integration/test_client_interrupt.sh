#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A registry killed in the middle of a copy: the copy fails with a message naming what failed,
# exits 1, and leaves no tag at the destination (registry or OCI layout) and no upload session
# open; a destination restarted mid-upload is resumed from the session's Range (Distribution,
# berth serve, and a python sink that keeps the bytes of a PATCH it cuts).
. "$(dirname "$0")/client_lib.sh"

BIG_LAYER=$((300 * 1024)) make_layout "$WORK/l1" v1 >/dev/null
start_distribution DST
D=127.0.0.1:$DST_PORT

# 1. the source dies while a layer streams (the fake serves 4 KiB every 50 ms)
start_fake SRC "$WORK/l1" --slow
S=127.0.0.1:$SRC_PORT
"$BERTH" copy "$S/src/app:v1" "$D/dst/app:v1" >"$WORK/out" 2>"$WORK/err" &
cp=$!
wait_stream SRC
kill "$SRC_PID"
set +e
wait "$cp"
rc=$?
set -e
echo "source died: $(cat "$WORK/err")"
expect_eq "$rc" 1 "exit status when the source dies"
grep -q "blob sha256:" "$WORK/err" || fail "message does not name the blob: $(cat "$WORK/err")"
grep -q "$S" "$WORK/err" || fail "message does not name the source: $(cat "$WORK/err")"
expect_eq "$(manifest_code "$D" dst/app v1)" 404 \
    "tag at the destination after a failed copy"

# the same into a layout: no tag in index.json
start_fake SRC2 "$WORK/l1" --slow
S=127.0.0.1:$SRC2_PORT
"$BERTH" copy "$S/src/app:v1" "oci:$WORK/lay-out:v1" >/dev/null 2>"$WORK/err" &
cp=$!
wait_stream SRC2
kill "$SRC2_PID"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 1 "exit status when the source dies (layout)"
! grep -q '"v1"' "$WORK/lay-out/index.json" || fail "tag in the layout after a failed copy"

# 2. the destination dies while a layer is being fetched
start_fake SRC3 "$WORK/l1" --slow
S=127.0.0.1:$SRC3_PORT
"$BERTH" copy "$S/src/app:v1" "$D/dst/app:v1" >/dev/null 2>"$WORK/err" &
cp=$!
wait_stream SRC3
kill "$DST_PID"
set +e
wait "$cp"
rc=$?
set -e
echo "destination died: $(cat "$WORK/err")"
expect_eq "$rc" 1 "exit status when the destination dies"
grep -q "127.0.0.1:$DST_PORT" "$WORK/err" || fail "message does not name the destination: $(cat "$WORK/err")"
# restart a registry on the same storage: still no tag
docker-registry serve "$WORK/DST/config.yml" >>"$WORK/DST/log" 2>&1 &
PIDS+=($!)
wait_port "$DST_PORT"
expect_eq "$(manifest_code "$D" dst/app v1)" 404 \
    "tag after the destination died"
# and a copy after the restart completes
start_fake SRC4 "$WORK/l1"
"$BERTH" copy --quiet "127.0.0.1:$SRC4_PORT/src/app:v1" "$D/dst/app:v1"
expect_eq "$(manifest_code "$D" dst/app v1)" 200 \
    "copy after the restart"

# 3. a registry that is not up yet when the copy starts: connection errors are retried with
#    backoff (200, 400, 800, 1600 ms), so a registry that comes up within that window is reached
port=$(free_port)
"$BERTH" copy --verbose "oci:$WORK/l1:v1" "127.0.0.1:$port/late/app:v1" >/dev/null 2>"$WORK/late.log" &
cp=$!
sleep 0.3
FIXED_PORT=$port start_distribution LATE
set +e
wait "$cp"
rc=$?
set -e
grep -q 'retrying in' "$WORK/late.log" || fail "no retry: $(cat "$WORK/late.log")"
expect_eq "$rc" 0 "copy to a registry that came up late"
expect_eq "$(manifest_code "127.0.0.1:$port" late/app v1)" 200 "late copy tag"

# 4. the destination killed (-9) and restarted on the same storage while a layer streams into an
#    upload session: the client asks the session where it stands (GET: its Range), goes on from
#    there (or, when the registry dropped the session, starts it anew), and the copy completes.
#    Distribution keeps the bytes of the half-received PATCH (so a replay from 0 gets 416, or
#    400 when its session state no longer matches); berth serve rolls them back.
serve_on() { # PORT ROOT LOG: start berth serve, wait for it, set SERVE_PID
    "$BERTH" serve --listen "127.0.0.1:$1" --root "$2" >>"$3" 2>&1 &
    SERVE_PID=$!
    PIDS+=($SERVE_PID)
    wait_port "$1"
}
sessions() { # ROOT: upload sessions open in a berth store
    find "$1/_berth/uploads" -name '*.json' 2>/dev/null | wc -l
}
BIG_LAYER=$((600 * 1024)) make_layout "$WORK/l4" v1 >/dev/null
dport=$(free_port)
mkdir -p "$WORK/D4/data"
{
    echo "version: 0.1"
    echo "log: {level: error, accesslog: {disabled: true}}"
    echo "storage: {filesystem: {rootdirectory: $WORK/D4/data}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$dport, secret: berth-test-secret}"
} >"$WORK/D4/config.yml"
docker-registry serve "$WORK/D4/config.yml" >"$WORK/D4/log" 2>&1 &
D4_PID=$!
PIDS+=($D4_PID)
wait_port "$dport"
start_fake SRC5 "$WORK/l4" --slow
"$BERTH" copy --verbose "127.0.0.1:$SRC5_PORT/src/app:v1" "127.0.0.1:$dport/dst/app:v1" \
    >"$WORK/out" 2>"$WORK/restart.log" &
cp=$!
wait_stream SRC5
kill -9 "$D4_PID"
wait "$D4_PID" 2>/dev/null || true
docker-registry serve "$WORK/D4/config.yml" >>"$WORK/D4/log" 2>&1 &
PIDS+=($!)
wait_port "$dport"
set +e
wait "$cp"
rc=$?
set -e
grep -E 'resuming|restarting|416|asking' "$WORK/restart.log" | head -5 || true
expect_eq "$rc" 0 "copy through a Distribution restart: exit status ($(tail -n 1 "$WORK/restart.log"))"
# (whether Distribution kept bytes of the cut PATCH depends on the moment of the kill: when it
# did, the replay is refused and the client restarts the blob; section 6 checks a resume
# deterministically)
expect_eq "$(manifest_digest "127.0.0.1:$dport" dst/app v1)" "$(cat "$WORK/out")" \
    "tag after the Distribution restart"

start_fake SRC7 "$WORK/l4" --slow
bport=$(free_port)
mkdir -p "$WORK/B"
serve_on "$bport" "$WORK/B/root" "$WORK/B/log"
B=127.0.0.1:$bport
"$BERTH" copy --verbose "127.0.0.1:$SRC7_PORT/src/app:v1" "$B/dst/app:v1" >"$WORK/out" \
    2>"$WORK/restart2.log" &
cp=$!
wait_stream SRC7
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
serve_on "$bport" "$WORK/B/root" "$WORK/B/log"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 0 "copy through a berth serve restart: exit status ($(tail -n 1 "$WORK/restart2.log"))"
expect_eq "$(manifest_digest "$B" dst/app v1)" "$(cat "$WORK/out")" "tag after the restart"
expect_eq "$(sessions "$WORK/B/root")" 0 "sessions left after a copy through a restart"

# 5. a copy that fails (the source dies mid-layer) cancels the upload sessions it opened
start_fake SRC6 "$WORK/l4" --slow
"$BERTH" copy "127.0.0.1:$SRC6_PORT/src/app:v1" "$B/dst/gone:v1" >/dev/null 2>"$WORK/err" &
cp=$!
wait_stream SRC6
[ "$(sessions "$WORK/B/root")" -ge 1 ] || fail "no session open while the layer streams"
kill "$SRC6_PID"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 1 "exit status when the source dies (berth serve destination)"
expect_eq "$(sessions "$WORK/B/root")" 0 "sessions left after a failed copy"
# (the server counts a request once its answer is out: allow it a moment)
# (the server counts a request once its answer is out: allow it a moment; the text is read
# whole first, as grep -q ending a pipe early would fail curl under pipefail)
for _ in $(seq 1 20); do
    metrics=$(curl -s "http://$B/metrics")
    grep -q 'method="DELETE",route="uploads",code="204"' <<<"$metrics" && break
    sleep 0.1
done
grep -q 'method="DELETE",route="uploads",code="204"' <<<"$metrics" ||
    fail "no DELETE of the upload session in the metrics: $(grep DELETE <<<"$metrics")"

# 6. a registry that keeps the bytes of a half-received PATCH and keeps the session (a python
#    sink): the first large PATCH is cut after 1 MiB, the replay from 0 gets 416, and the client
#    resumes from the session's Range at byte 1048576
cat >"$WORK/sink.py" <<'PY'
import hashlib, json, re, socket, sys, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
port, cut = int(sys.argv[1]), int(sys.argv[2])
blobs, manifests, sessions = {}, {}, {}
stats = {"cut": 0, "416": 0, "patch_starts": []}
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""
    def session(self, repo, sid):
        n = len(sessions[sid])
        return {"Location": "/v2/%s/blobs/uploads/%s" % (repo, sid), "Range": "0-%d" % (n - 1 if n else 0)}
    def route(self):
        p = self.path.split("?")[0]
        q = dict(x.split("=", 1) for x in self.path.split("?")[1].split("&")) if "?" in self.path else {}
        if p == "/stats": return self.send(200, json.dumps(stats).encode())
        if p in ("/v2/", "/v2"): return self.send(200, b"{}")
        m = re.match(r"^/v2/(.+)/blobs/uploads/([^/]*)$", p)
        if m:
            repo, sid = m.group(1), m.group(2)
            digest = q.get("digest", "").replace("%3A", ":")
            if self.command == "POST":
                data = self.body()
                if digest:
                    if "sha256:" + hashlib.sha256(data).hexdigest() != digest: return self.send(400, b"{}")
                    blobs[digest] = data
                    return self.send(201, b"", {"Location": "/v2/%s/blobs/%s" % (repo, digest)})
                sid = uuid.uuid4().hex; sessions[sid] = b""
                return self.send(202, b"", self.session(repo, sid))
            if sid not in sessions: return self.send(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')
            if self.command == "GET": return self.send(204, b"", self.session(repo, sid))
            if self.command == "DELETE": del sessions[sid]; return self.send(204)
            cr = self.headers.get("Content-Range")
            if cr and int(cr.split("-")[0]) != len(sessions[sid]):
                self.body(); stats["416"] += 1
                return self.send(416, b'{"errors":[{"code":"BLOB_UPLOAD_INVALID"}]}', self.session(repo, sid))
            if self.command == "PATCH":
                stats["patch_starts"].append(len(sessions[sid]))
                n = int(self.headers.get("Content-Length") or 0)
                if n > cut and stats["cut"] == 0:
                    stats["cut"] += 1
                    sessions[sid] += self.rfile.read(cut)
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                sessions[sid] += self.body()
                return self.send(202, b"", self.session(repo, sid))
            if self.command == "PUT":
                data = sessions[sid] + self.body()
                if "sha256:" + hashlib.sha256(data).hexdigest() != digest: return self.send(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
                blobs[digest] = data; del sessions[sid]
                return self.send(201, b"", {"Location": "/v2/%s/blobs/%s" % (repo, digest)})
        m = re.match(r"^/v2/(.+)/(blobs|manifests)/(.+)$", p)
        if m:
            kind, ref = m.group(2), m.group(3)
            if kind == "blobs":
                return self.send(200, blobs[ref]) if ref in blobs else self.send(404, b"{}")
            if self.command == "PUT":
                data = self.body(); d = "sha256:" + hashlib.sha256(data).hexdigest()
                manifests[ref] = manifests[d] = (data, self.headers.get("Content-Type"))
                return self.send(201, b"", {"Docker-Content-Digest": d})
            if ref not in manifests: return self.send(404, b"{}")
            data, mt = manifests[ref]
            return self.send(200, data, {"Content-Type": mt, "Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()})
        return self.send(404, b"{}")
    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = route
ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
sport=$(free_port)
python3 "$WORK/sink.py" "$sport" $((1024 * 1024)) >"$WORK/sink.log" 2>&1 &
PIDS+=($!)
wait_port "$sport"
BIG_LAYER=$((6 * 1024 * 1024)) make_layout "$WORK/l6" v1 >/dev/null
set +e
"$BERTH" copy --verbose "oci:$WORK/l6:v1" "127.0.0.1:$sport/sink/app:v1" >"$WORK/out" 2>"$WORK/sink.err"
rc=$?
set -e
grep -E 'resuming|416|where it stands' "$WORK/sink.err" || true
expect_eq "$rc" 0 "copy through a cut PATCH: exit status ($(tail -n 1 "$WORK/sink.err"))"
grep -q "resuming blob sha256:[0-9a-f]* at byte 1048576" "$WORK/sink.err" ||
    fail "no resume at byte 1048576: $(grep -v '^berth: \(GET\|HEAD\)' "$WORK/sink.err")"
stats=$(curl -s "http://127.0.0.1:$sport/stats")
expect_eq "$(python3 -c 'import json,sys; s=json.loads(sys.argv[1]); print(s["cut"], s["patch_starts"][-1])' "$stats")" \
    "1 1048576" "the sink: one cut PATCH, the last PATCH from byte 1048576"
expect_eq "$(manifest_code "127.0.0.1:$sport" sink/app v1)" 200 "tag after the resumed copy"
echo "ok"
