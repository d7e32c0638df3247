#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache (proxy.upstreams), pulled through with skopeo and curl: upstreams are a
# second berth serve (behind the tests' fault proxy, which counts the requests reaching it) and
# Distribution 2.8. Covers: a cold pull fills the cache and a warm one asks the upstream
# nothing; Docker Hub's library/ rule under the docker.io prefix; tags/list; a tag past its ttl
# revalidated with one HEAD; a moved tag fetched again; immutable tags never revalidated;
# digests and tags served with the upstream stopped (stale, logged, counted); 404 and 503 when
# nothing is cached; the metrics per upstream.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! command -v skopeo >/dev/null || ! command -v docker-registry >/dev/null; then
    echo "skopeo or docker-registry missing"
    exit 77
fi
SK="skopeo --insecure-policy"
T=$BERTH_TMP

start_upstream up
start_fault "$up_PORT"
start_distribution_upstream dist
UP=http://127.0.0.1:$up_PORT
push_image "$UP" lib/app v1 20000
APP_V1=$IMG_DIGEST
APP_LAYER=$IMG_LAYER_DIGEST
APP_LAYER_FILE=$IMG_LAYER
push_image "$UP" library/alpine 3.19
ALPINE=$IMG_DIGEST
push_image "$UP" lib/pinned v1.2.3
push_image "http://127.0.0.1:$dist_PORT" team/tool latest 30000
TOOL=$IMG_DIGEST
# a multi-platform index: amd64 and arm64 images under one tag
push_image "$UP" lib/multi amd64
AMD_MANIFEST=$IMG_MANIFEST
AMD_LAYER=$IMG_LAYER_DIGEST
push_image "$UP" lib/multi arm64
ARM_MANIFEST=$IMG_MANIFEST
ARM_LAYER=$IMG_LAYER_DIGEST
python3 - "$AMD_MANIFEST" "$ARM_MANIFEST" "$T/index.json" <<'PY'
import hashlib, json, sys
def desc(path, arch):
    b = open(path, "rb").read()
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b),
            "platform": {"os": "linux", "architecture": arch}}
idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [desc(sys.argv[1], "amd64"), desc(sys.argv[2], "arm64")]}
open(sys.argv[3], "w").write(json.dumps(idx))
PY
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/index.json" "$UP/v2/lib/multi/manifests/v1" || fail "index push"

cat >"$T/cache.yaml" <<EOF
proxy:
  upstreams:
    - prefix: up.example
      url: http://127.0.0.1:$FAULT_PORT
      ttl: 3s
      immutable_tags: ["v*.*.*"]
    - prefix: docker.io
      url: http://127.0.0.1:$FAULT_PORT/
      ttl: 1h
    - prefix: dist.example/mirror
      url: http://127.0.0.1:$dist_PORT
EOF
start_server --config "$T/cache.yaml"

# ---- a cold pull through the cache with skopeo, then a warm one asking nothing upstream ----
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/up.example/lib/app:v1" "oci:$T/out:v1" \
    >"$T/pull.log" 2>&1; then
    ok
else
    fail "skopeo pull through the cache: $(tail -n 5 "$T/pull.log")"
fi
# (skopeo may recompress into the layout: compare the cache's copy, not the layout's)
check "the layer was fetched once" 1 "$(upstream_requests "GET /v2/lib/app/blobs/$APP_LAYER")"
req GET "/v2/up.example/lib/app/blobs/$APP_LAYER"
check "cached layer is the upstream's" "$(sha256_file "$APP_LAYER_FILE")" "$(sha256_file "$BODY")"
cold=$(wc -l <"$FAULT_LOG")
[ "$cold" -ge 3 ] && ok || fail "a cold pull asked the upstream only $cold times"
check "misses counted" 1 "$([ "$(metric berth_proxy_cache_misses_total up.example)" -ge 3 ] && echo 1)"
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/up.example/lib/app:v1" "oci:$T/out2:v1" \
    >"$T/pull2.log" 2>&1; then
    ok
else
    fail "warm skopeo pull: $(tail -n 5 "$T/pull2.log")"
fi
check "a warm pull (tag fresh) asks the upstream nothing" "$cold" "$(wc -l <"$FAULT_LOG")"
check "hits counted" 1 "$([ "$(metric berth_proxy_cache_hits_total up.example)" -ge 3 ] && echo 1)"

# the cache is a repository like any other: listed, tagged
req GET /v2/up.example/lib/app/tags/list
check "tags/list of the cached repository" "v1" "$(json '",".join(j["tags"])')"
req GET /v2/_catalog
check "catalog names the cached repository" "True" "$(json '"up.example/lib/app" in j["repositories"]')"

# ---- an index is cached without every platform: skopeo pulls linux/amd64 through it ----
if $SK copy --src-tls-verify=false --override-os linux --override-arch amd64 \
    "docker://$HOSTPORT/up.example/lib/multi:v1" "oci:$T/multi:v1" >"$T/multi.log" 2>&1; then
    ok
else
    fail "skopeo pull of one platform of an index: $(tail -n 5 "$T/multi.log")"
fi
check "the amd64 layer was fetched" 1 "$(upstream_requests "GET /v2/lib/multi/blobs/$AMD_LAYER")"
check "the arm64 layer was not" 0 "$(upstream_requests "GET /v2/lib/multi/blobs/$ARM_LAYER")"
req GET /v2/up.example/lib/multi/manifests/v1
check "the index is served from the cache" "$(sha256_file "$T/index.json")" "$(header Docker-Content-Digest)"
req GET "/v2/up.example/lib/multi/manifests/$(sha256_file "$ARM_MANIFEST")"
check "the other platform's manifest on demand" 200 "$STATUS"

# ---- Docker Hub's library/ rule: docker.io/alpine is library/alpine upstream ----
req GET /v2/docker.io/alpine/manifests/3.19
check "docker.io/alpine:3.19 served" 200 "$STATUS"
check "docker.io/alpine is library/alpine upstream" "$ALPINE" "$(header Docker-Content-Digest)"
check "the upstream was asked for library/alpine" 1 \
    "$([ "$(upstream_requests "/v2/library/alpine/manifests/")" -ge 1 ] && echo 1)"

# ---- Distribution 2.8 as an upstream, under a two-component prefix ----
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/dist.example/mirror/team/tool:latest" \
    "oci:$T/out3:latest" >"$T/pull3.log" 2>&1; then
    ok
else
    fail "skopeo pull from Distribution through the cache: $(tail -n 5 "$T/pull3.log")"
fi
req GET /v2/dist.example/mirror/team/tool/manifests/latest
check "Distribution's image cached" "$TOOL" "$(header Docker-Content-Digest)"

# ---- not found upstream: 404, the spec's JSON ----
req GET /v2/up.example/lib/app/manifests/nope
expect_error "a tag the upstream does not have" 404 MANIFEST_UNKNOWN
req GET "/v2/up.example/lib/app/blobs/sha256:$(printf '%064d' 0)"
expect_error "a blob the upstream does not have" 404 BLOB_UNKNOWN

# ---- past the ttl: one HEAD revalidates; a moved tag is fetched again ----
sleep 3.2
: >"$FAULT_LOG"
req GET /v2/up.example/lib/app/manifests/v1
check "revalidated tag served" 200 "$STATUS"
check "same digest after revalidation" "$APP_V1" "$(header Docker-Content-Digest)"
check "revalidation is one HEAD" "HEAD /v2/lib/app/manifests/v1" "$(cat "$FAULT_LOG")"
check "revalidations counted" 1 "$(metric berth_proxy_revalidations_total up.example)"
push_image "$UP" lib/app v1 5000
APP_V1B=$IMG_DIGEST
sleep 3.2
req GET /v2/up.example/lib/app/manifests/v1
check "a moved tag follows the upstream" "$APP_V1B" "$(header Docker-Content-Digest)"
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/up.example/lib/app:v1" "oci:$T/outb:v1" \
    >"$T/pullb.log" 2>&1; then
    ok
else
    fail "skopeo pull of the moved tag: $(tail -n 5 "$T/pullb.log")"
fi
# immutable tags (v*.*.*) are never revalidated
req GET /v2/up.example/lib/pinned/manifests/v1.2.3
check "immutable tag cached" 200 "$STATUS"
sleep 3.2
: >"$FAULT_LOG"
req GET /v2/up.example/lib/pinned/manifests/v1.2.3
check "immutable tag served past the ttl" 200 "$STATUS"
check "immutable tag not revalidated" 0 "$(wc -l <"$FAULT_LOG")"

# ---- the upstream stopped: digests served (zero upstream calls), tags served stale ----
kill "$FAULT_PID"
wait "$FAULT_PID" 2>/dev/null
sleep 3.2
req GET "/v2/up.example/lib/app/manifests/$APP_V1"
check "manifest by digest, upstream stopped" 200 "$STATUS"
req GET "/v2/up.example/lib/app/blobs/$APP_LAYER"
check "blob by digest, upstream stopped" 200 "$STATUS"
check "blob bytes, upstream stopped" "$APP_LAYER" "$(sha256_file "$BODY")"
req GET /v2/up.example/lib/app/manifests/v1
check "tag past its ttl, upstream stopped: served stale" 200 "$STATUS"
check "stale tag is the last one seen" "$APP_V1B" "$(header Docker-Content-Digest)"
check "stale serves counted" 1 "$(metric berth_proxy_stale_serves_total up.example)"
check "upstream errors counted" 1 \
    "$([ "$(metric berth_proxy_upstream_errors_total up.example)" -ge 1 ] && echo 1)"
grep -q "serving cached up.example/lib/app:v1" "$BERTH_LOG" && ok ||
    fail "no log line for the stale serve"
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/up.example/lib/app:v1" "oci:$T/out4:v1" \
    >"$T/pull4.log" 2>&1; then
    ok
else
    fail "skopeo pull with the upstream stopped: $(tail -n 5 "$T/pull4.log")"
fi
req GET /v2/up.example/lib/other/manifests/v1
expect_error "nothing cached, upstream stopped" 503 UNAVAILABLE
if grep -q "127.0.0.1:$FAULT_PORT" "$BODY"; then
    fail "the error names the upstream's address"
else
    ok
fi
check "bytes counted" 1 "$([ "$(metric berth_proxy_upstream_bytes_total up.example)" -gt 20000 ] && echo 1)"

finish
