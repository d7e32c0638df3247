#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# containerd's mirror form of the pull-through cache (hosts.toml `[host."http://berth"]`):
# `/v2/NAME/...?ns=REGISTRY` is the local repository PREFIX/NAME of the upstream that answers to
# REGISTRY (its prefix, its url's host, Docker Hub's names). The requests are the ones containerd
# makes (HEAD and GET of a manifest by tag and by digest, GET and HEAD of blobs, with its Accept
# list), against Distribution 2.8 behind the tests' fault proxy (which counts what reaches it).
# Covers: the ns selection and Docker Hub's library/ rule; the content lands under PREFIX/NAME
# (tags/list there); the path form with ns (override_path) is the same repository; an ns by the
# upstream's host; an ns no upstream answers to is 404 NAME_UNKNOWN and never serves the local
# repository NAME; no ns serves NAME as always; authorization on PREFIX/NAME (401, 403 without
# an upstream request, 200); writes with ns refused (405).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! command -v htpasswd >/dev/null || ! command -v docker-registry >/dev/null; then
    echo "htpasswd or docker-registry missing"
    exit 77
fi
T=$BERTH_TMP
ACCEPT='Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, */*'

start_distribution_upstream dist
start_fault "$dist_PORT"
DIST=http://127.0.0.1:$dist_PORT
push_image "$DIST" library/alpine 3.19 20000
ALPINE=$IMG_DIGEST
ALPINE_LAYER=$IMG_LAYER_DIGEST
ALPINE_LAYER_FILE=$IMG_LAYER
ALPINE_CONFIG=$IMG_CONFIG_DIGEST
push_image "$DIST" team/tool v1
TOOL=$IMG_DIGEST
: >"$FAULT_LOG"

: >"$T/htpasswd"
for u in bob carol dan; do
    htpasswd -Bbn "$u" "${u}pw" | head -n 1 >>"$T/htpasswd"
done
cat >"$T/cache.yaml" <<YAML
auth: {htpasswd: $T/htpasswd}
access:
  - repositories: "docker.io/*"
    users: [bob]
    actions: [pull]
  - repositories: "mirror.example/*"
    users: [bob]
    actions: [pull]
  - repositories: "docker.io/*"
    users: [dan]
    actions: [pull, push, delete]
  - repositories: "library/*"
    users: [bob, carol]
    actions: [pull, push]
proxy:
  upstreams:
    - prefix: docker.io
      url: http://127.0.0.1:$FAULT_PORT
    - prefix: mirror.example
      url: http://127.0.0.1:$dist_PORT
YAML
start_server --config "$T/cache.yaml"
B=(-u bob:bobpw)

# ---- a local repository library/alpine (pushed, not cached): never what ns=docker.io serves ----
LOCAL_DIR=$(mktemp -d "$T/local.XXXXXX")
head -c 1000 /dev/urandom >"$LOCAL_DIR/layer"
echo '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$LOCAL_DIR/config"
PUSH_AUTH=carol:carolpw put_blob "$URL" library/alpine "$LOCAL_DIR/layer" >/dev/null
PUSH_AUTH=carol:carolpw put_blob "$URL" library/alpine "$LOCAL_DIR/config" >/dev/null
make_manifest "$LOCAL_DIR/config" "$LOCAL_DIR/layer" "$LOCAL_DIR/manifest"
LOCAL=$(sha256_file "$LOCAL_DIR/manifest")
req PUT /v2/library/alpine/manifests/3.19 -u carol:carolpw \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$LOCAL_DIR/manifest"
check "local push of library/alpine:3.19" 201 "$STATUS"

# ---- authorization on the local path docker.io/library/alpine ----
check "anonymous HEAD, ns=docker.io: authentication first" 401 "$(curl -s -I -o /dev/null \
    -w '%{http_code}' -H "$ACCEPT" "$URL/v2/library/alpine/manifests/3.19?ns=docker.io")"
req GET "/v2/library/alpine/manifests/3.19?ns=docker.io" -H "$ACCEPT" -u carol:carolpw
expect_error "carol may pull library/* but not docker.io/*" 403 DENIED
check "a refused ns request reaches no upstream" 0 "$(wc -l <"$FAULT_LOG")"

# ---- what containerd does: HEAD by tag, GET by digest, GET blobs (config, layer) ----
curl -s -I -o /dev/null -D "$HDRS" -w '%{http_code}' "${B[@]}" -H "$ACCEPT" \
    "$URL/v2/library/alpine/manifests/3.19?ns=docker.io" >"$T/status"
check "HEAD manifest by tag, ns=docker.io" 200 "$(cat "$T/status")"
check "the upstream's digest, not the local push's" "$ALPINE" "$(header Docker-Content-Digest)"
req GET "/v2/library/alpine/manifests/$ALPINE?ns=docker.io" "${B[@]}" -H "$ACCEPT"
check "GET manifest by digest, ns=docker.io" 200 "$STATUS"
check "manifest bytes" "$ALPINE" "$(sha256_file "$BODY")"
req GET "/v2/library/alpine/manifests/3.19?ns=docker.io" "${B[@]}" -H "$ACCEPT"
check "GET manifest by tag, ns=docker.io" "200 $ALPINE" "$STATUS $(sha256_file "$BODY")"
req GET "/v2/library/alpine/blobs/$ALPINE_CONFIG?ns=docker.io" "${B[@]}"
check "GET config blob, ns=docker.io" "200 $ALPINE_CONFIG" "$STATUS $(sha256_file "$BODY")"
req GET "/v2/library/alpine/blobs/$ALPINE_LAYER?ns=docker.io" "${B[@]}"
check "GET layer blob, ns=docker.io" 200 "$STATUS"
check "layer bytes are the upstream's" "$(sha256_file "$ALPINE_LAYER_FILE")" "$(sha256_file "$BODY")"
curl -s -I -o /dev/null -D "$HDRS" -w '%{http_code}' "${B[@]}" \
    "$URL/v2/library/alpine/blobs/$ALPINE_LAYER?ns=docker.io" >"$T/status"
check "HEAD layer blob, ns=docker.io" 200 "$(cat "$T/status")"
check "upstream asked for the layer once" 1 "$(upstream_requests "GET /v2/library/alpine/blobs/$ALPINE_LAYER")"

# ---- it is the local repository docker.io/library/alpine ----
req GET /v2/docker.io/library/alpine/tags/list "${B[@]}"
check "tags/list of docker.io/library/alpine" "['3.19']" "$(json 'j["tags"]')"
req GET "/v2/docker.io/library/alpine/blobs/$ALPINE_LAYER" "${B[@]}"
check "the layer under the path form, no ns" 200 "$STATUS"
# hosts.toml with override_path ("http://berth/v2/docker.io"): the name is already under the prefix
req GET "/v2/docker.io/library/alpine/manifests/3.19?ns=docker.io" "${B[@]}" -H "$ACCEPT"
check "path form with ns=docker.io is the same repository" "200 $ALPINE" \
    "$STATUS $(header Docker-Content-Digest)"
# Docker Hub's library/ rule: a one-component name
req GET "/v2/alpine/manifests/$ALPINE?ns=docker.io" "${B[@]}" -H "$ACCEPT"
check "ns=docker.io, one-component name: library/" "200 $ALPINE" "$STATUS $(sha256_file "$BODY")"
# Docker Hub's other names select the same upstream
STATUS=$(curl -s -I -o /dev/null -D "$HDRS" -w '%{http_code}' "${B[@]}" -H "$ACCEPT" \
    "$URL/v2/library/alpine/manifests/$ALPINE?ns=registry-1.docker.io")
check "ns=registry-1.docker.io selects the docker.io upstream" "200 $ALPINE" \
    "$STATUS $(header Docker-Content-Digest)"

# ---- no ns: the local repository, as always ----
req GET /v2/library/alpine/manifests/3.19 "${B[@]}" -H "$ACCEPT"
check "no ns: the local push" "200 $LOCAL" "$STATUS $(header Docker-Content-Digest)"
req GET "/v2/library/alpine/manifests/3.19?ns=" "${B[@]}" -H "$ACCEPT"
check "empty ns: the local push" "200 $LOCAL" "$STATUS $(header Docker-Content-Digest)"

# ---- an ns no upstream answers to: 404, never the local repository of that name ----
before=$(wc -l <"$FAULT_LOG")
req GET "/v2/library/alpine/manifests/3.19?ns=quay.io" "${B[@]}" -H "$ACCEPT"
expect_error "ns=quay.io (no such upstream)" 404 NAME_UNKNOWN
if grep -q "127.0.0.1" "$BODY"; then fail "the error names an upstream's address"; else ok; fi
req GET "/v2/library/alpine/blobs/$ALPINE_LAYER?ns=quay.io" "${B[@]}"
expect_error "blob with ns=quay.io" 404 NAME_UNKNOWN
req GET "/v2/library/alpine/manifests/3.19?ns=127.0.0.1:1" "${B[@]}" -H "$ACCEPT"
expect_error "ns that looks like an address is only matched" 404 NAME_UNKNOWN
check "unknown ns asks no upstream" "$before" "$(wc -l <"$FAULT_LOG")"

# ---- an upstream selected by its url's host ----
req GET "/v2/team/tool/manifests/v1?ns=127.0.0.1:$dist_PORT" "${B[@]}" -H "$ACCEPT"
check "ns=the upstream's host:port" "200 $TOOL" "$STATUS $(header Docker-Content-Digest)"
req GET /v2/mirror.example/team/tool/tags/list "${B[@]}"
check "cached under mirror.example/team/tool" "['v1']" "$(json 'j["tags"]')"

# ---- writes with ns: refused under the prefix, nothing changes ----
req PUT "/v2/library/alpine/manifests/evil?ns=docker.io" -u carol:carolpw \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' --data-binary "@$LOCAL_DIR/manifest"
check "push with ns=docker.io: authorization on docker.io/library/alpine" 403 "$STATUS"
req GET /v2/library/alpine/tags/list "${B[@]}"
check "the local repository is unchanged" "['3.19']" "$(json 'j["tags"]')"
req DELETE "/v2/library/alpine/manifests/$ALPINE?ns=docker.io" "${B[@]}"
check "delete with ns=docker.io refused (bob may only pull docker.io/*)" 403 "$STATUS"
req DELETE "/v2/library/alpine/manifests/$ALPINE?ns=docker.io" -u dan:danpw
expect_error "delete with ns=docker.io by a user who may delete docker.io/*" 405 UNSUPPORTED
req POST "/v2/library/alpine/blobs/uploads/?ns=docker.io" -u dan:danpw
expect_error "upload with ns=docker.io by a user who may push docker.io/*" 405 UNSUPPORTED
check "nothing deleted" 200 "$(curl -s -o /dev/null -w '%{http_code}' "${B[@]}" -H "$ACCEPT" \
    "$URL/v2/docker.io/library/alpine/manifests/$ALPINE")"
finish
