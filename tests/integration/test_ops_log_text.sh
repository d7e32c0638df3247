#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The text log (the default log.format) quotes what clients and files send without passing
# control bytes through: a request target with ESC or ^A, a user name in an htpasswd file
# with a terminal escape, and bytes that are not UTF-8 are written as \xNN, so that an
# operator's `tail -f` cannot be sent terminal escape sequences and no line can be forged.
# Before, they were copied raw. (The JSON log escapes them already: test_ops_logs.sh.)
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
printf 'alice:$2y$05$p84Tx7ThsGSGrY7afAlEHOOffkRUrevcg6x2C33IqLHoVqkM5GSIW\n' >"$T/htpasswd"
printf '\033]0;owned\007evil:plain\n' >>"$T/htpasswd"
cat >"$T/c.yaml" <<Y
auth: {htpasswd: $T/htpasswd}
access:
  - {repositories: "*", anonymous: true, actions: [pull]}
Y
start_server --config "$T/c.yaml"
python3 - "${HOSTPORT#*:}" <<'PY'
import socket, sys
for target in (b'/v2/a\x1b[2J\x01b/tags/list', b'/v2/x\xff\xfe/manifests/y'):
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    s.sendall(b'GET ' + target + b' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    s.settimeout(2)
    try:
        while s.recv(4096):
            pass
    except OSError:
        pass
    s.close()
PY
sleep 0.3
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
# no byte below 0x20 but the newline, no DEL, no byte that is not UTF-8
bad=$(python3 -c '
import sys
data = open(sys.argv[1], "rb").read()
bad = [b for b in data if (b < 0x20 and b != 10) or b == 0x7f]
try:
    data.decode("utf-8")
except UnicodeDecodeError:
    bad.append(-1)
print(len(bad))' "$BERTH_LOG")
check "control bytes in the text log" 0 "$bad"
if grep -qF 'a\x1b[2J\x01b/tags/list' "$BERTH_LOG"; then ok; else
    fail "the request target escaped: $(grep tags/list "$BERTH_LOG" | cat -A)"
fi
if grep -qF '/v2/x\xff\xfe/manifests/y' "$BERTH_LOG"; then ok; else
    fail "non-UTF-8 escaped: $(grep manifests/y "$BERTH_LOG" | cat -A)"
fi
if grep -qF "user '\\x1b]0;owned\\x07evil' skipped" "$BERTH_LOG"; then ok; else
    fail "htpasswd user escaped: $(grep htpasswd "$BERTH_LOG" | cat -A)"
fi
finish
