#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The access log is gathered per worker and written once per pass of its event loop (issue 14:
# a write(2) per line was 10% of the server's CPU with the JSON log on): 50 requests arriving
# together on 50 connections give 50 whole lines, one per request, in fewer writes than lines;
# a lone request's line is written at once. Needs strace (attached to the server by PID).
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || { echo "strace is needed" >&2; exit 1; }
cat >"$BERTH_TMP/log.yaml" <<'Y'
log: {format: json}
Y
start_server --config "$BERTH_TMP/log.yaml"
T=$BERTH_TMP
lines() { grep -c '"uri":"/v2/"' "$BERTH_LOG"; }
before=$(lines)
batched=0
for attempt in 1 2 3; do
    n0=$(lines)
    strace -f -qq -e trace=write -e signal=none -o "$T/st.$attempt" -p "$BERTH_PID" &
    spid=$!
    sleep 0.5
    got=$(python3 - "${HOSTPORT#*:}" <<'PY'
import socket, sys
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(50)]
for s in socks:
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
ok = 0
for s in socks:
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    ok += data.startswith(b"HTTP/1.1 200")
print(ok)
PY
)
    sleep 0.3
    kill "$spid"
    wait "$spid" 2>/dev/null
    check "attempt $attempt: 50 answers" 50 "$got"
    check "attempt $attempt: one line a request" 50 $(($(lines) - n0))
    writes=$(grep -c '^[0-9]* *write(2,' "$T/st.$attempt")
    if [ "$writes" -lt 50 ]; then batched=1; break; fi
done
check "50 lines in fewer than 50 writes" 1 "$batched"
# every line is one whole JSON object
python3 - "$BERTH_LOG" <<'PY' && ok || fail "a log line is not one JSON object"
import json, sys
for line in open(sys.argv[1]):
    json.loads(line)
PY
# a lone request's line is there at once
n0=$(lines)
curl -s -o /dev/null "$URL/v2/"
sleep 0.2
check "a lone request's line" 1 $(($(lines) - n0))
finish
