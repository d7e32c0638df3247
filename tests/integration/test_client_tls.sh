#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# TLS of the berth client against berth serve with HTTPS: a CA, a server certificate and a
# client certificate made with the openssl CLI. A loopback registry is tried over HTTPS first
# (plain HTTP only when HTTPS fails); an unknown CA is refused with a hint; --cert-dir, the
# per-registry certs.d directory (BERTH_CERTS_D replaces the base directories here) and
# --tls-verify=false make it work; mutual TLS with a *.cert/*.key pair; a plain loopback server
# still works, and --tls-verify=true refuses it; a host that is not loopback gets plain HTTP only
# when registries.conf marks it insecure or with --tls-verify=false.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
export HOME=$T/home
export BERTH_CERTS_D=$T/certs.d
export CONTAINERS_REGISTRIES_CONF=$T/registries.conf
unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_RUNTIME_DIR XDG_CONFIG_HOME
mkdir -p "$HOME" "$T/certs" "$T/mcerts" "$T/certs.d"
cd "$T" || exit 1
ssl() { openssl "$@" 2>/dev/null || { echo "openssl $1 failed" >&2; exit 1; }; }
ssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj "/CN=berth test CA"
ssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj "/CN=127.0.0.1"
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
ssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
    -extfile server.ext
ssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr -subj "/CN=alice"
printf 'extendedKeyUsage=clientAuth\n' >client.ext
ssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out client.crt -days 2 \
    -extfile client.ext
cp ca.crt certs/ca.crt
ops_layout "$T/layout" v1

# run NAME CMD...: run a berth command, keep its status in RC and its stderr in $T/NAME.err
run() {
    local name=$1
    shift
    "$BERTH" "$@" >"$T/$name.out" 2>"$T/$name.err"
    RC=$?
}

PORT=$(free_port)
cat >tls.yaml <<Y
tls:
  cert: $T/server.crt
  key: $T/server.key
Y
ops_start https "$PORT" --config tls.yaml
H=$HOSTPORT

# 1. an unknown CA: refused, exit 1, with the certificate problem and what to do about it
run untrusted copy "oci:$T/layout:v1" "$H/tls/app:v1"
check "copy with an unknown CA: exit status" 1 "$RC"
grep -qi 'certificate' untrusted.err && ok || fail "no certificate problem named: $(cat untrusted.err)"
grep -q -- '--cert-dir' untrusted.err && ok || fail "no hint: $(cat untrusted.err)"
run untrusted2 inspect "$H/tls/app:v1"
check "inspect with an unknown CA: exit status" 1 "$RC"

# 2. --cert-dir: copy, inspect, tags
run cd_copy copy --quiet --cert-dir "$T/certs" "oci:$T/layout:v1" "$H/tls/app:v1"
check "copy with --cert-dir" "0" "$RC"
[ "$RC" = 0 ] || cat cd_copy.err >&2
check "pushed over https" 200 "$(curl -s -o /dev/null -w '%{http_code}' --cacert ca.crt \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$URL/v2/tls/app/manifests/v1")"
run cd_inspect inspect --cert-dir "$T/certs" "$H/tls/app:v1"
check "inspect with --cert-dir" 0 "$RC"
run cd_tags tags --cert-dir "$T/certs" "$H/tls/app"
check "tags with --cert-dir" "0 v1" "$RC $(cat cd_tags.out)"
# berth login takes the same TLS options
echo pw | "$BERTH" login -u u --password-stdin --authfile "$T/a.json" "$H" >/dev/null 2>&1
check "login with an unknown CA: exit status" 1 "$?"
echo pw | "$BERTH" login -u u --password-stdin --authfile "$T/a.json" --cert-dir "$T/certs" "$H" \
    >/dev/null 2>&1
check "login with --cert-dir" 0 "$?"

# 3. the registry's certs.d directory (BASE/HOST:PORT/*.crt)
mkdir -p "$T/certs.d/$H"
cp ca.crt "$T/certs.d/$H/ca.crt"
run sd_tags tags "$H/tls/app"
check "tags with certs.d" "0 v1" "$RC $(cat sd_tags.out)"
run sd_copy copy --quiet "$H/tls/app:v1" "$H/tls/copy:v1"
check "copy with certs.d" 0 "$RC"
run sd_inspect inspect "$H/tls/copy:v1"
check "inspect with certs.d" 0 "$RC"
# a *.cert without its *.key is an error, as podman says
touch "$T/certs.d/$H/lone.cert"
run lone tags "$H/tls/app"
check "lone client certificate: exit status" 1 "$RC"
grep -q 'missing key' lone.err && ok || fail "lone .cert message: $(cat lone.err)"
rm -rf "$T/certs.d/$H"

# 4. --tls-verify=false, and the two-word spelling
run nv1 inspect --tls-verify=false "$H/tls/app:v1"
check "inspect --tls-verify=false" 0 "$RC"
run nv2 tags --tls-verify false "$H/tls/app"
check "tags --tls-verify false" "0 v1" "$RC $(cat nv2.out)"
run nv3 tags --tls-verify=maybe "$H/tls/app"
check "--tls-verify=maybe is a usage error" 2 "$RC"
ops_stop

# 5. mutual TLS: the client pair from a directory (ca.crt, client.cert, client.key)
cat >mtls.yaml <<Y
tls:
  cert: $T/server.crt
  key: $T/server.key
  client_ca: $T/ca.crt
Y
OPS_CURL=(--cert "$T/client.crt" --key "$T/client.key")
ops_start https "$PORT" --config mtls.yaml
OPS_CURL=()
cp ca.crt mcerts/ca.crt
run m_nocert tags --cert-dir "$T/certs" "$H/tls/app"
check "mTLS without a client certificate: exit status" 1 "$RC"
cp client.crt mcerts/client.cert
cp client.key mcerts/client.key
run m_cert tags --cert-dir "$T/mcerts" "$H/tls/app"
check "mTLS with a client certificate" "0 v1" "$RC $(cat m_cert.out)"
[ "$RC" = 0 ] || cat m_cert.err >&2
mkdir -p "$T/certs.d/$H"
cp mcerts/* "$T/certs.d/$H/"
run m_copy copy --quiet "oci:$T/layout:v1" "$H/tls/mtls:v1"
check "mTLS copy with certs.d" 0 "$RC"
rm -rf "$T/certs.d/$H"
ops_stop

# 6. a plain HTTP server on loopback: still works (HTTPS tried first, then plain HTTP)
rm -rf "$T/root"
ops_start http "$PORT"
run plain copy --quiet "oci:$T/layout:v1" "$H/plain/app:v1"
check "copy to a plain loopback server" 0 "$RC"
[ "$RC" = 0 ] || cat plain.err >&2
run plain_tags tags "$H/plain/app"
check "tags of a plain loopback server" "0 v1" "$RC $(cat plain_tags.out)"
# --tls-verify=true: HTTPS only, even on loopback
run strict tags --tls-verify=true "$H/plain/app"
check "--tls-verify=true refuses plain HTTP" 1 "$RC"

# 7. a host name that is not loopback in berth's eyes but resolves to 127.0.0.1 (the machine's
#    name, where /etc/hosts says so): HTTPS only, unless registries.conf marks it insecure or
#    --tls-verify=false
NAME=$(hostname)
if [ "$(getent hosts "$NAME" | awk '{print $1; exit}')" = 127.0.0.1 ] && [ "$NAME" != localhost ]; then
    N=$NAME:$PORT
    run far tags "$N/plain/app"
    check "plain HTTP refused for a registry that is not loopback" 1 "$RC"
    cat >"$CONTAINERS_REGISTRIES_CONF" <<C
unqualified-search-registries = ["docker.io"]

[[registry]]
location = "other.example:5000"
insecure = true

[[registry]]
location = "$N"
insecure = true
C
    run far_conf tags "$N/plain/app"
    check "registries.conf insecure = true allows plain HTTP" "0 v1" "$RC $(cat far_conf.out)"
    [ "$RC" = 0 ] || cat far_conf.err >&2
    printf '[[registry]]\nlocation = "%s"\ninsecure = false\n' "$N" >"$CONTAINERS_REGISTRIES_CONF"
    run far_conf2 tags "$N/plain/app"
    check "registries.conf insecure = false" 1 "$RC"
    # the v1 format
    printf "[registries.insecure]\nregistries = ['%s']\n" "$N" >"$CONTAINERS_REGISTRIES_CONF"
    run far_v1 tags "$N/plain/app"
    check "registries.conf v1 [registries.insecure]" "0 v1" "$RC $(cat far_v1.out)"
    rm -f "$CONTAINERS_REGISTRIES_CONF"
    run far_nv tags --tls-verify=false "$N/plain/app"
    check "--tls-verify=false allows plain HTTP" "0 v1" "$RC $(cat far_nv.out)"
else
    echo "note: $NAME does not resolve to 127.0.0.1; the non-loopback checks did not run"
fi
ops_stop
finish
