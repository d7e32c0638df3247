#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# With log.format: json every line on stderr is one JSON object: the startup and shutdown
# lines, the access log, the gc summaries, htpasswd warnings and reloads, and libmicrohttpd's
# own messages (failed TLS handshakes, a TLS client on the plain port, malformed requests),
# which are info or debug, not errors. And htpasswd: a garbage line is skipped with a warning
# naming its line (at start and on reload), the reload is logged, the users around it work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
cd "$T" || exit 1
ssl() { openssl "$@" 2>/dev/null || { echo "openssl $1 failed" >&2; exit 1; }; }
ssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=berth log CA"
ssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\n' >server.ext
ssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
    -extfile server.ext
{
    htpasswd -Bbn alice alicepw | head -n 1
    echo "this line is garbage"
} >htpasswd

# every line of a log is a JSON object with a time; the levels of lines matching a pattern
all_json() {
    python3 - "$1" <<'PY'
import json, sys
for n, line in enumerate(open(sys.argv[1], encoding='utf-8'), 1):
    try:
        obj = json.loads(line)
    except ValueError:
        sys.exit('line %d is not JSON: %r' % (n, line))
    assert isinstance(obj, dict) and 'time' in obj, (n, line)
PY
}
level_of() { # FILE PATTERN: the levels of the lines whose msg contains PATTERN
    python3 - "$1" "$2" <<'PY'
import json, sys
print(' '.join(sorted({o['level'] for o in map(json.loads, open(sys.argv[1]))
                      if sys.argv[2] in o.get('msg', '')})))
PY
}

PORT=$(free_port)
cat >tls.yaml <<Y
log: {format: json}
tls: {cert: $T/server.crt, key: $T/server.key}
auth: {htpasswd: $T/htpasswd}
gc: {interval: 1s}
Y
ops_start https "$PORT" --config tls.yaml
check "alice logs in" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt \
    -u alice:alicepw "$URL/v2/")"
# failed handshakes: a client that does not trust the certificate, one offering TLS 1.1 only
curl -s -o /dev/null "$URL/v2/" 2>/dev/null
curl -sk -o /dev/null --tls-max 1.1 "$URL/v2/" 2>/dev/null
# plain HTTP on the TLS port
curl -s -o /dev/null "http://$HOSTPORT/v2/"
# a garbage line, then a new user, appended to the live file
sleep 1.1
{
    echo "another garbage line"
    htpasswd -Bbn bob bobpw | head -n 1
} >>htpasswd
sleep 1.1
check "bob, after the garbage line, logs in" 200 "$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert ca.crt -u bob:bobpw "$URL/v2/")"
check "alice still logs in" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt \
    -u alice:alicepw "$URL/v2/")"
sleep 1.5
ops_stop
L=$T/tls.log
mv "$BERTH_LOG" "$L"
if all_json "$L"; then ok; else fail "every line of the TLS server's log is JSON"; fi
check "startup line" notice "$(level_of "$L" 'listening on https://')"
check "shutdown line" notice "$(level_of "$L" 'shutting down')"
check "gc summary" notice "$(level_of "$L" 'berth serve: gc: ')"
check "garbage line at start, with its line number" warn \
    "$(level_of "$L" "htpasswd $T/htpasswd:2: line skipped")"
check "garbage line on reload, with its line number" warn \
    "$(level_of "$L" "htpasswd $T/htpasswd:3: line skipped")"
check "reload logged" notice "$(level_of "$L" "htpasswd $T/htpasswd reloaded: 2 users")"
check "failed handshakes are info" info "$(level_of "$L" 'libmicrohttpd: ')"
if grep -q '"level":"error"' "$L"; then fail "no line of a client's doing is an error"; else ok; fi
if grep -q 'garbage' "$L"; then fail "the content of a skipped line is not logged"; else ok; fi

# the plain port: a TLS client hello, a malformed Content-Length, an unknown HTTP version
cat >plain.yaml <<Y
log: {format: json, level: debug}
Y
ops_start http "$(free_port)" --config plain.yaml
python3 - "$HOSTPORT" <<'PY'
import socket, sys
host, port = sys.argv[1].rsplit(':', 1)
def send(b):
    s = socket.create_connection((host, int(port)))
    s.sendall(b)
    s.settimeout(2)
    try:
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()
send(b'\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + b'\x00' * 40)
send(b'GET /v2/ HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n')
send(b'GET /v2/ HTTP/9.9\r\nHost: x\r\n\r\n')
PY
curl -s -o /dev/null "$URL/v2/"
ops_stop
if all_json "$BERTH_LOG"; then ok; else fail "every line of the plain server's log is JSON"; fi
check "libmicrohttpd's messages about clients are debug" debug \
    "$(level_of "$BERTH_LOG" 'libmicrohttpd: ')"
check "three of them at least" 1 \
    "$(($(grep -c 'libmicrohttpd: ' "$BERTH_LOG") >= 3))"

finish
