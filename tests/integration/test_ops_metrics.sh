#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Observability of berth serve: /metrics counters move by exactly the requests made (by method,
# route and code, with body bytes in and out and the latency histogram), the gauges (uploads in
# progress, stored bytes and blobs), /healthz and /readyz, and the JSON access log.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
M() { python3 "$(dirname "$0")/ops_metrics.py" "$@"; }
T=$BERTH_TMP
cat >"$T/cfg.yaml" <<Y
log: {format: json}
gc: {interval: 1s}
Y
start_server --config "$T/cfg.yaml"

req GET /healthz
check "healthz" "200 ok" "$STATUS $(cat "$BODY")"
req GET /readyz
check "readyz" 200 "$STATUS"
req POST /healthz
check "healthz POST" 405 "$STATUS"

curl -s "$URL/metrics" -D "$HDRS" -o "$T/m0"
check "metrics content type" "text/plain; version=0.0.4" "$(header Content-Type)"
if grep -q '^# TYPE berth_http_requests_total counter' "$T/m0"; then ok; else fail "TYPE line"; fi

# known requests
for _ in 1 2 3; do curl -s -o /dev/null "$URL/v2/"; done
for _ in 1 2; do curl -s -o /dev/null -I "$URL/v2/m/app/manifests/nope"; done
head -c 10000 /dev/urandom >"$T/blob"
d=$(push_blob m/app "$T/blob")
curl -s -o /dev/null "$URL/v2/m/app/blobs/$d"
del_bytes=$(curl -s -o /dev/null -w '%{size_download}' -X DELETE \
    "$URL/v2/m/app/blobs/sha256:$(printf '%064d' 0)")
curl -s "$URL/metrics" -o "$T/m1"

D() { M delta "$T/m0" "$T/m1" "$1"; }
check "GET base 200" 3 "$(D 'berth_http_requests_total{method="GET",route="base",code="200"}')"
check "HEAD manifests 404" 2 \
    "$(D 'berth_http_requests_total{method="HEAD",route="manifests",code="404"}')"
check "POST uploads 201" 1 "$(D 'berth_http_requests_total{method="POST",route="uploads",code="201"}')"
check "GET blobs 200" 1 "$(D 'berth_http_requests_total{method="GET",route="blobs",code="200"}')"
check "DELETE blobs 404" 1 "$(D 'berth_http_requests_total{method="DELETE",route="blobs",code="404"}')"
check "GET metrics 200 (the first scrape)" 1 \
    "$(D 'berth_http_requests_total{method="GET",route="metrics",code="200"}')"
check "uploads bytes in" 10000 "$(D 'berth_http_request_bytes_total{route="uploads"}')"
check "blobs bytes out" $((10000 + del_bytes)) "$(D 'berth_http_response_bytes_total{route="blobs"}')"
check "base bytes out" 6 "$(D 'berth_http_response_bytes_total{route="base"}')"
check "base latency count" 3 "$(D 'berth_http_request_duration_seconds_count{route="base"}')"
check "base latency +Inf bucket" 3 \
    "$(D 'berth_http_request_duration_seconds_bucket{route="base",le="+Inf"}')"
check "manifests latency count" 2 \
    "$(D 'berth_http_request_duration_seconds_count{route="manifests"}')"

# uploads in progress: a PATCH sent slowly is counted while it streams
loc=$(curl -s -o /dev/null -D - -X POST "$URL/v2/m/app/blobs/uploads/" | grep -i '^location:' |
    cut -d' ' -f2 | tr -d '\r')
head -c 300000 /dev/urandom >"$T/slow"
curl -s -o /dev/null -X PATCH --limit-rate 100k -H 'Content-Type: application/octet-stream' \
    --data-binary "@$T/slow" "$URL$loc" &
slow=$!
sleep 1
curl -s "$URL/metrics" -o "$T/m2"
check "upload requests in flight while streaming" 1 \
    "$(M value "$T/m2" berth_upload_requests_in_flight)"
check "one upload session open" 1 "$(M value "$T/m2" berth_upload_sessions_open)"
wait $slow
curl -s "$URL/metrics" -o "$T/m3"
check "upload requests in flight after" 0 "$(M value "$T/m3" berth_upload_requests_in_flight)"
check "the session stays open between its requests" 1 \
    "$(M value "$T/m3" berth_upload_sessions_open)"
check "its bytes" 300000 "$(M value "$T/m3" berth_upload_session_bytes)"

# stored bytes and blobs: refreshed by the maintenance thread (gc every second here)
sleep 2.2
curl -s "$URL/metrics" -o "$T/m4"
check "blobs gauge" 1 "$(M value "$T/m4" berth_storage_blobs)"
check "stored bytes gauge" 10000 "$(M value "$T/m4" berth_storage_blob_bytes)"
refreshed=$(M value "$T/m4" berth_storage_refresh_timestamp_seconds | cut -d. -f1)
age=$(($(date +%s) - refreshed))
if [ "$age" -ge 0 ] && [ "$age" -le 5 ]; then ok; else fail "storage refresh timestamp ($age s old)"; fi
if [ "$(M value "$T/m4" berth_gc_runs_total | cut -d. -f1)" -ge 1 ]; then ok; else
    fail "gc runs counted"
fi
# every metric follows the conventions: counters end in _total, no counter name without it,
# and each family has HELP and TYPE
if python3 - "$T/m4" <<'PY'; then ok; else fail "metric names and types"; fi
import re, sys
types = dict(re.findall(r'^# TYPE (\S+) (\S+)$', open(sys.argv[1]).read(), re.M))
helps = set(re.findall(r'^# HELP (\S+) ', open(sys.argv[1]).read(), re.M))
assert types and set(types) == helps, (set(types) ^ helps)
for name, kind in types.items():
    assert name.startswith('berth_'), name
    assert (kind == 'counter') == name.endswith('_total'), (name, kind)
PY
if grep -q 'berth serve: gc: ' "$BERTH_LOG"; then ok; else fail "gc summary line in the log"; fi

# a request target with bytes that are not UTF-8 (and a quote): the error body and the
# access log line are still JSON, with U+FFFD for each bad byte
if python3 - "${URL#http://}" <<'PY'; then ok; else fail "error body of a non-UTF-8 target"; fi
import json, socket, sys
host, port = sys.argv[1].rsplit(':', 1)
s = socket.create_connection((host, int(port)))
s.sendall(b'GET /v2/na\xffme"x/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
head, _, body = data.partition(b'\r\n\r\n')
assert head.startswith(b'HTTP/1.1 4'), head
json.loads(body.decode('utf-8'))
PY

# the access log: JSON lines with the request's fields
if python3 - "$BERTH_LOG" <<'PY'; then ok; else fail "json access log"; fi
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]  # every line is JSON
reqs = [l for l in lines if 'method' in l]
assert all(set(l) == {'time', 'level', 'msg'} for l in lines if 'method' not in l), lines
bad = [r for r in reqs if r['uri'].startswith('/v2/na')]
assert bad and bad[0]['uri'] == '/v2/na\ufffdme"x/tags/list', bad
assert len(reqs) >= 12, len(reqs)
for r in reqs:
    for k in ('time', 'remote', 'method', 'uri', 'status', 'bytes_in', 'bytes_out', 'duration_ms'):
        assert k in r, (k, r)
post = [r for r in reqs if r['method'] == 'POST' and r['status'] == 201]
assert post and post[0]['bytes_in'] == 10000 and post[0]['remote'] == '127.0.0.1', post
PY

finish
