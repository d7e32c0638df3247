#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The TLS policy of berth serve, tested with the openssl client: TLS 1.0 and 1.1, static-RSA
# key exchange and CBC suites fail the handshake; TLS 1.2 with ECDHE and AES-GCM and TLS 1.3
# succeed; tls.min_version "1.3" refuses TLS 1.2; tls.priorities replaces the policy; plain
# HTTP on the TLS port gets the spec's JSON in a plain-HTTP 400.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
cd "$T" || exit 1
openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 2 \
    -subj "/CN=127.0.0.1" -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null ||
    { fail "openssl req"; finish; }
PORT=$(free_port)

# handshake NAME EXPECT(ok|fail) s_client options...: the client offers whatever the options
# allow at security level 0, so that only the server's policy decides
handshake() {
    local name=$1 expect=$2 out got
    shift 2
    out=$(echo | timeout 10 openssl s_client -connect "127.0.0.1:$PORT" -CAfile server.crt \
        "$@" 2>&1)
    if echo "$out" | grep -qE 'Cipher is [A-Z0-9_-]+' && ! echo "$out" | grep -q 'Cipher is (NONE)'; then
        got=ok
    else
        got=fail
    fi
    check "$name" "$expect" "$got"
}

printf 'tls:\n  cert: %s/server.crt\n  key: %s/server.key\n' "$T" "$T" >tls.yaml
ops_start https "$PORT" --config tls.yaml
handshake "TLS 1.0" fail -tls1 -cipher 'DEFAULT:@SECLEVEL=0'
handshake "TLS 1.1" fail -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'
handshake "TLS 1.2 static RSA (AES128-SHA)" fail -tls1_2 -cipher 'AES128-SHA:@SECLEVEL=0'
handshake "TLS 1.2 static RSA (AES128-GCM-SHA256)" fail -tls1_2 -cipher 'AES128-GCM-SHA256'
handshake "TLS 1.2 ECDHE with CBC" fail -tls1_2 -cipher 'ECDHE-RSA-AES128-SHA:@SECLEVEL=0'
handshake "TLS 1.2 ECDHE with AES-GCM" ok -tls1_2 -cipher 'ECDHE-RSA-AES128-GCM-SHA256'
handshake "TLS 1.2 ECDHE with ChaCha20" ok -tls1_2 -cipher 'ECDHE-RSA-CHACHA20-POLY1305'
handshake "TLS 1.3" ok -tls1_3
out=$(curl -s -w ' %{http_code}' "http://127.0.0.1:$PORT/v2/")
check "plain HTTP on the TLS port: status" 400 "${out##* }"
body=${out% *}
check "plain HTTP on the TLS port: code" UNSUPPORTED \
    "$(echo "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["errors"][0]["code"])' 2>&1)"
case $body in *HTTPS* | *https*) ok ;; *) fail "the answer says to use HTTPS: $body" ;; esac
check "HTTPS still served" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert server.crt \
    "https://127.0.0.1:$PORT/v2/")"
ops_stop

printf 'tls:\n  cert: %s/server.crt\n  key: %s/server.key\n  min_version: "1.3"\n' "$T" "$T" >tls13.yaml
ops_start https "$PORT" --config tls13.yaml
handshake "min_version 1.3: TLS 1.2" fail -tls1_2
handshake "min_version 1.3: TLS 1.3" ok -tls1_3
ops_stop

printf 'tls:\n  cert: %s/server.crt\n  key: %s/server.key\n  priorities: "NORMAL:-VERS-ALL:+VERS-TLS1.2"\n' "$T" "$T" >prio.yaml
ops_start https "$PORT" --config prio.yaml
handshake "priorities TLS 1.2 only: TLS 1.3" fail -tls1_3
handshake "priorities TLS 1.2 only: TLS 1.2" ok -tls1_2
ops_stop

printf 'tls:\n  cert: x\n  key: y\n  min_version: "1.1"\n' >bad.yaml
"$BERTH" serve --root "$T/root" --config bad.yaml --print-config >/dev/null 2>err
check "min_version 1.1 is refused" 2 $?
finish
