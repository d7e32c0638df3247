#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# Ctrl-C while `berth copy` settles a loopback registry's scheme (HTTPS first, then plain HTTP):
# the copy stops with exit status 130 and says it was interrupted, not what the HTTPS attempt
# failed with. The registry here is a stand-in that answers the TLS handshake in plain text (as
# a plain-HTTP registry does) and, when the plain-HTTP attempt comes, sends the copy SIGINT and
# answers nothing.
. "$(dirname "$0")/lib.sh"
T=$BERTH_TMP

port=$(free_port)
cat >"$T/fake.py" <<'PY'
import os, signal, socket, sys, time
port, pidfile = int(sys.argv[1]), sys.argv[2]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(4)
print("ready", flush=True)
held = []
for n in range(2):
    c, _ = s.accept()
    c.recv(4096)
    if n == 0:  # the HTTPS attempt: a plain-text answer to the ClientHello
        c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        c.close()
    else:  # the plain-HTTP attempt: Ctrl-C, and no answer
        os.kill(int(open(pidfile).read()), signal.SIGINT)
        held.append(c)
time.sleep(20)
PY
python3 "$T/fake.py" "$port" "$T/copy.pid" >"$T/fake.out" 2>&1 &
FAKE=$!
trap 'kill "$FAKE" 2>/dev/null; cleanup' EXIT
for _ in $(seq 1 100); do
    grep -q ready "$T/fake.out" 2>/dev/null && break
    sleep 0.05
done

(
    echo "$BASHPID" >"$T/copy.pid"
    exec timeout 30 "$BERTH" copy --quiet "127.0.0.1:$port/app:v1" "oci:$T/layout:v1"
) 2>"$T/copy.err"
check "berth copy interrupted while probing the scheme: exit status" 130 "$?"
grep -q "interrupted" "$T/copy.err" && ok || fail "no word of the interruption: $(cat "$T/copy.err")"
if grep -q "wrong version number\|SSL" "$T/copy.err"; then
    fail "the HTTPS attempt's failure reported instead: $(cat "$T/copy.err")"
else
    ok
fi
finish
