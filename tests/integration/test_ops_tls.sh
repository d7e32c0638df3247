#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# HTTPS of berth serve: a CA and a server certificate (SAN IP:127.0.0.1) made with the openssl
# CLI; curl with --cacert, skopeo with --cert-dir; then mutual TLS: a client without a
# certificate, or with one from another CA, is refused, one with a certificate of the CA served.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
export HOME=$T/home
mkdir -p "$HOME" "$T/certs" "$T/mcerts"
cd "$T" || exit 1
ssl() { openssl "$@" 2>/dev/null || { echo "openssl $1 failed" >&2; exit 1; }; }
# ca
ssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=berth test CA"
# server
ssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
ssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
    -extfile server.ext
# client, and a client of another CA
ssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=alice"
printf 'extendedKeyUsage=clientAuth\n' >client.ext
ssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 \
    -extfile client.ext
ssl req -x509 -newkey rsa:2048 -nodes -keyout rogue.key -out rogue.crt -days 2 -subj "/CN=rogue"

PORT=$(free_port)
cat >tls.yaml <<Y
tls:
  cert: $T/server.crt
  key: $T/server.key
Y
ops_start https "$PORT" --config tls.yaml
check "https with the CA" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$URL/v2/")"
if curl -s -o /dev/null "$URL/v2/" 2>/dev/null; then fail "https without the CA accepted"; else ok; fi
check "plain http answered 400" 400 \
    "$(curl -s -o /dev/null -w '%{http_code}' "http://$HOSTPORT/v2/" 2>/dev/null)"
grep -q "listening on https://" "$BERTH_LOG" && ok || fail "log says https"

# skopeo with the CA in a directory (it takes *.crt there as CAs)
cp ca.crt certs/ca.crt
ops_layout "$T/layout" v1
if skopeo copy -q --dest-cert-dir "$T/certs" "oci:$T/layout:v1" "docker://$HOSTPORT/tls/app:v1" \
    2>err; then ok; else fail "skopeo push over https: $(cat err)"; fi
if skopeo inspect --cert-dir "$T/certs" "docker://$HOSTPORT/tls/app:v1" >/dev/null 2>err; then ok; else
    fail "skopeo inspect over https: $(cat err)"
fi
if skopeo inspect "docker://$HOSTPORT/tls/app:v1" >/dev/null 2>&1; then
    fail "skopeo trusted an unknown CA"
else
    ok
fi
check "pushed manifest" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt \
    "$URL/v2/tls/app/manifests/v1")"
ops_stop

# mutual TLS
cat >mtls.yaml <<Y
tls:
  cert: $T/server.crt
  key: $T/server.key
  client_ca: $T/ca.crt
Y
# the handshake itself needs a client certificate now, the readiness probe too
OPS_CURL=(--cert "$T/client.crt" --key "$T/client.key")
ops_start https "$PORT" --config mtls.yaml
OPS_CURL=()
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$URL/v2/" 2>/dev/null)
check "mTLS without a client certificate fails the handshake" 000 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt --cert rogue.crt --key rogue.key \
    "$URL/v2/" 2>/dev/null)
check "mTLS with a certificate of another CA fails the handshake" 000 "$code"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt --cert rogue.crt --key rogue.key \
    "$URL/healthz" 2>/dev/null)
check "mTLS /healthz with a certificate of another CA" 000 "$code"
check "mTLS with a client certificate" 200 "$(curl -s -o /dev/null -w '%{http_code}' \
    --cacert ca.crt --cert client.crt --key client.key "$URL/v2/tls/app/manifests/v1")"
code=$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt "$URL/metrics" 2>/dev/null)
case $code in 000 | 401 | 403) ok ;; *) fail "mTLS /metrics without a certificate: $code" ;; esac
cp client.crt mcerts/client.cert
cp client.key mcerts/client.key
cp ca.crt mcerts/ca.crt
if skopeo inspect --cert-dir "$T/mcerts" "docker://$HOSTPORT/tls/app:v1" >/dev/null 2>err; then ok; else
    fail "skopeo with a client certificate: $(cat err)"
fi
if skopeo inspect --cert-dir "$T/certs" "docker://$HOSTPORT/tls/app:v1" >/dev/null 2>&1; then
    fail "skopeo without a client certificate accepted"
else
    ok
fi
ops_stop

# a key that does not match the certificate, or a missing file, fails the start
cat >bad.yaml <<Y
tls:
  cert: $T/server.crt
  key: $T/rogue.key
Y
"$BERTH" serve --listen "127.0.0.1:$PORT" --root "$T/root" --config bad.yaml 2>err &
pid=$!
sleep 1
if kill -0 $pid 2>/dev/null; then
    kill $pid
    wait $pid 2>/dev/null
    fail "mismatched key accepted"
else
    wait $pid
    # a configuration error: status 2, naming where the certificate was set
    check "mismatched key status" 2 $?
    if grep -q "bad.yaml:[0-9]*:[0-9]*: tls.cert: .*cannot be used" err; then ok; else
        fail "mismatched key message: $(cat err)"
    fi
fi

finish
