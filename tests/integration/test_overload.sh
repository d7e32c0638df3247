#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Overload and shutdown: four times as many clients as the connection limit (wrk) neither stop
# the server nor starve a separate good client, and the request rate stays above a floor; on
# SIGTERM under load the server exits 0 within the drain deadline plus 1 s, idle keep-alive
# connections and a half-open upload included; a second signal exits at once.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
command -v wrk >/dev/null || {
    fail "wrk is not installed (scripts/setup.sh installs it)"
    finish
}
T=$BERTH_TMP
# The floor: the previous main served 148 req/s with 1024 clients against a limit of 256 on this kind of
# machine, and about 100,000 at the limit; a server that does not collapse stays far above.
FLOOR=5000

elapsed_ms() { echo $((($(date +%s%N) - $1) / 1000000)); }

# wait_exit PID: wait for the server to exit; sets CODE and MS (from now)
wait_exit() {
    local t0 i
    t0=$(date +%s%N)
    for i in $(seq 1 400); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.025
    done
    MS=$(elapsed_ms "$t0")
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1"
        CODE=killed
    else
        wait "$1"
        CODE=$?
    fi
}

printf 'max_connections: 256\ntimeouts:\n  drain: 2s\n' >"$T/c.yaml"
start_server --config "$T/c.yaml" --quiet

# ---- 1024 clients against a limit of 256-------------------------------------------------------
wrk -t2 -c1024 -d4s --timeout 10s "$URL/v2/" >"$T/wrk1" 2>&1 &
WRK=$!
sleep 1
good=0
worst=0
for _ in 1 2 3 4 5; do
    t0=$(date +%s%N)
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "$URL/v2/")
    ms=$(elapsed_ms "$t0")
    [ "$code" = 200 ] && good=$((good + 1))
    [ "$ms" -gt "$worst" ] && worst=$ms
    sleep 0.3
done
wait $WRK
check "good client served during the overload" 5 "$good"
if [ "$worst" -lt 3000 ]; then ok; else fail "good client waited ${worst} ms"; fi
rate=$(awk '/Requests\/sec/ {printf "%d", $2}' "$T/wrk1")
if [ "${rate:-0}" -ge "$FLOOR" ]; then ok; else
    fail "request rate at 4x the limit: ${rate:-none} req/s (floor $FLOOR): $(cat "$T/wrk1")"
fi
if grep -q "Non-2xx" "$T/wrk1"; then fail "non-2xx answers under load: $(cat "$T/wrk1")"; else ok; fi
server_alive && ok || fail "the server died under load"

# ---- SIGTERM under load: exit 0 within drain (2 s) + 1 s ------------------------------------
wrk -t2 -c1024 -d8s --timeout 10s "$URL/v2/" >"$T/wrk2" 2>&1 &
WRK=$!
# plus idle keep-alive connections and a half-open upload
python3 - "$HOSTPORT" >"$T/hold.out" 2>&1 <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
held = []
for i in range(20):
    s = socket.create_connection((host, int(port)))
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    s.recv(4096)
    held.append(s)
s = socket.create_connection((host, int(port)))
s.sendall(b"POST /v2/o/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
loc = [l for l in s.recv(4096).decode().split("\r\n") if l.lower().startswith("location:")][0]
loc = loc.split(":", 1)[1].strip()
s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
held.append(s)
time.sleep(30)
PY
HOLD=$!
sleep 1.5
kill -TERM "$BERTH_PID"
wait_exit "$BERTH_PID"
BERTH_PID=""
kill $WRK $HOLD 2>/dev/null
wait $WRK $HOLD 2>/dev/null
check "exit status after SIGTERM under load" 0 "$CODE"
if [ "$MS" -le 3000 ]; then ok; else fail "exit took ${MS} ms (drain 2 s + 1 s)"; fi
grep -q "shutting down" "$BERTH_LOG" && ok || fail "shutdown logged"

# ---- a second signal exits at once, even with a long drain and an upload in flight ----------
rm -rf "$T/root"
printf 'timeouts:\n  drain: 60s\n' >"$T/d.yaml"
start_server --config "$T/d.yaml" --quiet
python3 - "$HOSTPORT" >"$T/hold2.out" 2>&1 <<'PY' &
import socket, sys, time
host, port = sys.argv[1].split(":")
s = socket.create_connection((host, int(port)))
s.sendall(b"POST /v2/o/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
loc = [l for l in s.recv(4096).decode().split("\r\n") if l.lower().startswith("location:")][0]
loc = loc.split(":", 1)[1].strip()
s.sendall(f"PATCH {loc} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n".encode() + b"x" * 10)
time.sleep(30)
PY
HOLD=$!
sleep 1
kill -TERM "$BERTH_PID"
sleep 0.5
kill -0 "$BERTH_PID" 2>/dev/null && ok || fail "the first signal drains (waits for the upload)"
kill -TERM "$BERTH_PID"
wait_exit "$BERTH_PID"
BERTH_PID=""
kill $HOLD 2>/dev/null
wait $HOLD 2>/dev/null
if [ "$MS" -le 1000 ]; then ok; else fail "second signal: exit took ${MS} ms"; fi
case $CODE in killed | 0) fail "second signal: exit status $CODE" ;; *) ok ;; esac

finish
