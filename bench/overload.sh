#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Overload: `wrk -t2 -d5s GET /v2/` with 200, 1,000 and 10,000 concurrent clients against
# berth serve with its default settings and against Distribution 2.8, interleaved, on loopback.
# Prints a markdown table of requests/s, non-2xx answers and socket errors, and how long each
# server took to exit after SIGTERM right after the heaviest run.
#   bench/overload.sh          (from the project's root, after `make`)
# Env: BERTH (default build/berth), BENCH_PORT (default 5200; uses it and the next one).
set -euo pipefail
BERTH=${BERTH:-build/berth}
PORT=${BENCH_PORT:-5200}
DPORT=$((PORT + 1))
CLIENTS=${CLIENTS:-"200 1000 10000"}
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"

start_berth() {
    "$BERTH" serve --listen "127.0.0.1:$PORT" --root "$work/berth" --quiet 2>"$work/berth.log" &
    berth_pid=$!
    pids+=("$berth_pid")
}
cat >"$work/distribution.yml" <<YML
version: 0.1
http: {addr: "127.0.0.1:$DPORT"}
storage: {filesystem: {rootdirectory: $work/distribution}, delete: {enabled: true}}
log: {level: error, accesslog: {disabled: true}}
YML
start_dist() {
    docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 &
    dist_pid=$!
    pids+=("$dist_pid")
}
start_berth
start_dist
for _ in $(seq 1 100); do
    curl -sf -o /dev/null "http://127.0.0.1:$PORT/v2/" &&
        curl -sf -o /dev/null "http://127.0.0.1:$DPORT/v2/" && break
    sleep 0.1
done
max=$("$BERTH" serve --root "$work/berth" --print-config | awk '/^max_connections:/ {print $2}')

run() { # URL CLIENTS -> "req/s non2xx errors"
    wrk -t2 -c"$2" -d5s --timeout 5s "$1" 2>&1 | awk '
        /Requests\/sec/ {r=$2}
        /Non-2xx/ {n=$NF}
        /Socket errors/ {gsub(",", ""); e=$4+$6+$8+$10}
        END {printf "%s %s %s", r+0, n+0, e+0}'
}

stop_time() { # PID -> seconds until it exited after SIGTERM (or "> 15" and killed)
    local t0 i
    t0=$(date +%s%N)
    kill -TERM "$1"
    for i in $(seq 1 300); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$1" 2>/dev/null; then
        kill -9 "$1"
        echo "> 15 (killed)"
    else
        awk -v ns=$(($(date +%s%N) - t0)) 'BEGIN {printf "%.2f", ns / 1e9}'
    fi
}

echo "berth max_connections (default, from the descriptor limit $(ulimit -n)): $max"
echo
echo "| clients | berth req/s | berth non-2xx | berth socket errors | distribution req/s | distribution non-2xx | distribution socket errors |"
echo "|---|---|---|---|---|---|---|"
for c in $CLIENTS; do
    read -r br bn be <<<"$(run "http://127.0.0.1:$PORT/v2/" "$c")"
    read -r dr dn de <<<"$(run "http://127.0.0.1:$DPORT/v2/" "$c")"
    printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$c" "$br" "$bn" "$be" "$dr" "$dn" "$de"
done
# shutdown right after load: wrk in the background, SIGTERM 2 s in
last=${CLIENTS##* }
wrk -t2 -c"$last" -d6s --timeout 5s "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 &
sleep 2
echo
echo "berth exit after SIGTERM under $last clients: $(stop_time "$berth_pid") s"
wait $! 2>/dev/null || true
wrk -t2 -c"$last" -d6s --timeout 5s "http://127.0.0.1:$DPORT/v2/" >/dev/null 2>&1 &
sleep 2
echo "distribution exit after SIGTERM under $last clients: $(stop_time "$dist_pid") s"
wait $! 2>/dev/null || true
