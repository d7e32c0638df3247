#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache and authorization: the upstream is Distribution 2.8 with htpasswd auth,
# reached with the credentials of an auth file (podman auth.json form) named by the upstream's
# `credentials`; the cache's own users and access rules apply to the local path PREFIX/NAME
# (anonymous: 401, a user without pull: 403, a user with pull: served); an upstream configured
# without credentials gets nothing and the client a 404; pushes under the prefix are refused
# even for a user who may push.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! command -v htpasswd >/dev/null || ! command -v docker-registry >/dev/null; then
    echo "htpasswd or docker-registry missing"
    exit 77
fi
T=$BERTH_TMP

# ---- the upstream: Distribution with Basic auth ----
htpasswd -Bbn alice alicepw | head -n 1 >"$T/upstream.htpasswd"
port=$(free_port)
mkdir -p "$T/dist/data"
cat >"$T/dist/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $T/dist/data}}
http: {addr: 127.0.0.1:$port}
auth: {htpasswd: {realm: upstream, path: $T/upstream.htpasswd}}
EOF
docker-registry serve "$T/dist/config.yml" >"$T/dist/log" 2>&1 &
PROXY_PIDS+=($!)
wait_http "http://127.0.0.1:$port/v2/" || { echo "distribution did not start" >&2; exit 1; }
PUSH_AUTH=alice:alicepw push_image "http://127.0.0.1:$port" team/app v1
APP=$IMG_DIGEST
APP_LAYER=$IMG_LAYER_DIGEST

printf '{"auths":{"127.0.0.1:%s":{"auth":"%s"}}}\n' "$port" "$(printf alice:alicepw | base64)" \
    >"$T/auth.json"

# ---- the cache: its own users and rules ----
: >"$T/htpasswd"
for u in bob carol; do
    htpasswd -Bbn "$u" "${u}pw" | head -n 1 >>"$T/htpasswd"
done
cat >"$T/cache.yaml" <<EOF
auth: {htpasswd: $T/htpasswd}
access:
  - repositories: "dist/*"
    users: [bob]
    actions: [pull, push]
  - repositories: "nocreds/*"
    users: [bob]
    actions: [pull]
  - repositories: "mine/*"
    users: [carol]
    actions: [pull, push]
proxy:
  upstreams:
    - prefix: dist
      url: http://127.0.0.1:$port
      credentials: $T/auth.json
    - prefix: nocreds
      url: http://127.0.0.1:$port
EOF
start_server --config "$T/cache.yaml"

req GET /v2/dist/team/app/manifests/v1
expect_error "anonymous pull under the prefix" 401 UNAUTHORIZED
req GET /v2/dist/team/app/manifests/v1 -u carol:carolpw
expect_error "pull by a user the rules do not allow" 403 DENIED
req GET /v2/dist/team/app/manifests/v1 -u bob:bobpw
check "pull by an allowed user, upstream reached with the auth file" 200 "$STATUS"
check "the upstream's manifest" "$APP" "$(header Docker-Content-Digest)"
req GET "/v2/dist/team/app/blobs/$APP_LAYER" -u bob:bobpw
check "blob through the cache with credentials" 200 "$STATUS"
check "blob bytes" "$APP_LAYER" "$(sha256_file "$BODY")"
req GET "/v2/dist/team/app/blobs/$APP_LAYER" -u carol:carolpw
expect_error "cached blob, user without pull" 403 DENIED

req GET /v2/nocreds/team/app/manifests/v1 -u bob:bobpw
expect_error "an upstream without credentials gets nothing" 404 MANIFEST_UNKNOWN
if grep -q "alicepw\|$(printf alice:alicepw | base64)" "$BERTH_LOG"; then
    fail "the log holds the upstream's credentials"
else
    ok
fi

req POST /v2/dist/team/app/blobs/uploads/ -u bob:bobpw
expect_error "push under the prefix by a user who may push" 405 UNSUPPORTED
req POST /v2/dist/team/app/blobs/uploads/
expect_error "anonymous push under the prefix: authentication first" 401 UNAUTHORIZED
finish
