#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The HTTP layer as an attacker and the conformance suite use it (sec_http.py has the
# scenarios): strict framing, escapes in the request target, per-route Allow, 404 for
# references that cannot exist, Content-Range on every request that brings bytes into an
# upload, upload status while the session is busy; then, each against a server of its own,
# slow clients and idle floods over the connection limit, the header deadline, the
# per-address cap, and --print-config's connection limit from the descriptor limit.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
DIR=$(dirname "$0")
T=$BERTH_TMP

scenario() {
    local name=$1
    if python3 "$DIR/sec_http.py" "$name" 127.0.0.1 "${HOSTPORT#*:}" >"$T/$name.out" 2>&1; then
        ok
    else
        fail "$name: $(grep -E 'FAIL|Error|Traceback' "$T/$name.out" | head -20)"
    fi
    server_alive || fail "$name: the server died"
}

stop_server() {
    kill "$BERTH_PID" 2>/dev/null
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
    rm -rf "$BERTH_TMP/root"
}

start_server
for s in framing escapes allow unknown_refs content_range status_busy; do
    scenario "$s"
done
stop_server

printf 'max_connections: 100\ntimeouts:\n  header: 4s\n' >"$T/slow.yaml"
start_server --config "$T/slow.yaml"
scenario slow_clients
stop_server

printf 'timeouts:\n  header: 2s\n' >"$T/head.yaml"
start_server --config "$T/head.yaml"
scenario header_deadline
stop_server

printf 'limits:\n  connections_per_address: 5\n' >"$T/addr.yaml"
start_server --config "$T/addr.yaml"
scenario per_address
stop_server

# the default connection limit follows the descriptor limit: (N - 64) / 2
got=$(bash -c "ulimit -n 1000; \"$BERTH\" serve --root $T/root --print-config" | grep '^max_connections:')
check "max_connections from ulimit -n 1000" "max_connections: 468" "$got"

finish
