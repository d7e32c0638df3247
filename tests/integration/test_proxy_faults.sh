#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache when its upstream misbehaves (the tests' fault proxy in front of a
# second berth serve): a 429 with Retry-After is obeyed (no request before it passes) and the
# cached tag served meanwhile; 503; a hung upstream (the upstream's timeout); a blob cut mid-body or with a corrupted byte never reaches a
# client as a complete success and is never stored; concurrent pulls of one cold blob make one upstream
# request; writes under the prefix are refused with 405 UNSUPPORTED while other paths take
# pushes as always.
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

T=$BERTH_TMP
start_upstream up
start_fault "$up_PORT"
UP=http://127.0.0.1:$up_PORT
push_image "$UP" lib/app v1
APP_V1=$IMG_DIGEST
write_proxy_config "$T/cache.yaml" up.example "http://127.0.0.1:$FAULT_PORT" 1s
echo "      timeout: 2s" >>"$T/cache.yaml"
start_server --config "$T/cache.yaml"

push_image "$UP" lib/app cold
COLD_LAYER=$IMG_LAYER_DIGEST
req GET /v2/up.example/lib/app/manifests/v1
check "tag cached" 200 "$STATUS"

# ---- 429 with Retry-After: served stale, and the upstream is not asked again before it passes
fault_mode 429 3
sleep 1.2
: >"$FAULT_LOG"
req GET /v2/up.example/lib/app/manifests/v1
check "tag during a 429: served from the cache" 200 "$STATUS"
check "tag during a 429: the cached digest" "$APP_V1" "$(header Docker-Content-Digest)"
check "one request met the 429" 1 "$(wc -l <"$FAULT_LOG")"
sleep 1.2
for _ in 1 2 3; do
    req GET /v2/up.example/lib/app/manifests/v1
    check "tag while Retry-After runs: served" 200 "$STATUS"
done
check "no request to the upstream while Retry-After runs" 1 "$(wc -l <"$FAULT_LOG")"
req GET "/v2/up.example/lib/app/blobs/$COLD_LAYER"
expect_error "a cold blob while Retry-After runs" 503 UNAVAILABLE
ra=$(header Retry-After)
[ -n "$ra" ] && [ "$ra" -ge 1 ] && [ "$ra" -le 3 ] && ok ||
    fail "503 while the upstream asked to wait: Retry-After '$ra'"
check "still no request to the upstream" 1 "$(wc -l <"$FAULT_LOG")"
check "stale serves counted" 1 \
    "$([ "$(metric berth_proxy_stale_serves_total up.example)" -ge 4 ] && echo 1)"
fault_mode pass
sleep 2
req GET /v2/up.example/lib/app/manifests/v1
check "after Retry-After: served" 200 "$STATUS"
check "after Retry-After the upstream is asked again" 2 "$(wc -l <"$FAULT_LOG")"

# ---- 503: stale for a cached tag, 503 for what is not cached ----
fault_mode 503
sleep 1.2
req GET /v2/up.example/lib/app/manifests/v1
check "tag during a 503 outage: served stale" 200 "$STATUS"
req GET "/v2/up.example/lib/app/blobs/$COLD_LAYER"
expect_error "a cold blob during a 503 outage" 503 UNAVAILABLE

# ---- an upstream that hangs: the timeout, then stale for a tag, 503 for what is not cached ----
fault_mode hang 30
sleep 1.2
start=$(date +%s)
req GET /v2/up.example/lib/app/manifests/v1
check "tag while the upstream hangs: served stale" 200 "$STATUS"
req GET "/v2/up.example/lib/app/blobs/$COLD_LAYER"
expect_error "a cold blob while the upstream hangs" 503 UNAVAILABLE
took=$(($(date +%s) - start))
[ "$took" -le 10 ] && ok || fail "two requests to a hung upstream took ${took}s (timeout: 2s)"

# ---- a blob cut mid-body: refused, not stored ----
# (streamed as it arrives: a 200 whose body ends before its last byte, or a 503 when the
# failure came before any byte; never a complete 200)
incomplete() { # WHAT PATH
    local rc=0 st
    st=$(curl -s -o "$BODY" -w '%{http_code}' "$URL$2") || rc=$?
    { [ "$rc" != 0 ] || [ "$st" != 200 ]; } && ok ||
        fail "$1: a complete $st ($(wc -c <"$BODY") bytes)"
}
fault_mode close
incomplete "a blob the upstream cut mid-body" "/v2/up.example/lib/app/blobs/$COLD_LAYER"
fault_mode 503
head_req "/v2/up.example/lib/app/blobs/$COLD_LAYER"
check "the cut blob was not stored" 503 "$STATUS"

# ---- a corrupted byte: refused, not stored; then the good bytes are ----
fault_mode corrupt
: >"$FAULT_LOG"
incomplete "a corrupted blob" "/v2/up.example/lib/app/blobs/$COLD_LAYER"
check "the corrupted blob was fetched" 1 "$(upstream_requests "GET /v2/lib/app/blobs/$COLD_LAYER")"
fault_mode 503
req GET "/v2/up.example/lib/app/blobs/$COLD_LAYER"
check "the corrupted blob was not stored" 503 "$STATUS"
if [ "${BERTH_TEST_STORAGE:-}" != s3pg ] &&
    find "$T/root" -type f -name "${COLD_LAYER#sha256:}" | grep -q .; then
    fail "the corrupted blob is on disk"
else
    ok
fi
fault_mode pass
req GET "/v2/up.example/lib/app/blobs/$COLD_LAYER"
check "the good blob once the upstream behaves" 200 "$STATUS"
check "the good blob's bytes" "$COLD_LAYER" "$(sha256_file "$BODY")"

# ---- N concurrent pulls of one cold blob: one upstream request ----
push_image "$UP" lib/big v1 $((8 * 1024 * 1024))
BIG=$IMG_LAYER_DIGEST
fault_mode slow 1
: >"$FAULT_LOG"
N=10
pids=()
for i in $(seq 1 $N); do
    curl -s -o "$T/big.$i" -w '%{http_code}\n' "$URL/v2/up.example/lib/big/blobs/$BIG" \
        >"$T/big.$i.status" &
    pids+=($!)
done
wait "${pids[@]}"
good=0
for i in $(seq 1 $N); do
    if [ "$(cat "$T/big.$i.status")" = 200 ] && [ "$(sha256_file "$T/big.$i")" = "$BIG" ]; then
        good=$((good + 1))
    fi
done
check "every concurrent pull got the blob" "$N" "$good"
check "$N concurrent pulls of a cold blob: one upstream request" 1 \
    "$(upstream_requests "GET /v2/lib/big/blobs/$BIG")"
fault_mode pass

# ---- writes under the prefix are refused; elsewhere they work ----
req PUT /v2/up.example/lib/app/manifests/v2 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$IMG_MANIFEST"
expect_error "manifest push under the prefix" 405 UNSUPPORTED
check "Allow of the refusal" "GET, HEAD" "$(header Allow)"
req POST /v2/up.example/lib/app/blobs/uploads/
expect_error "upload under the prefix" 405 UNSUPPORTED
req DELETE "/v2/up.example/lib/app/manifests/$APP_V1"
expect_error "manifest delete under the prefix" 405 UNSUPPORTED
req DELETE "/v2/up.example/lib/app/blobs/$COLD_LAYER"
expect_error "blob delete under the prefix" 405 UNSUPPORTED
req GET "/v2/up.example/lib/app/manifests/$APP_V1"
check "the refused delete changed nothing" 200 "$STATUS"
req GET /v2/up.example/lib/app/tags/list
check "no tag v2 under the prefix" "False" "$(json '"v2" in j["tags"]')"
push_image "$URL" local/app v1
req GET /v2/local/app/manifests/v1
check "pushes elsewhere work as always" 200 "$STATUS"
push_image "$URL" up.example-other/app v1
req GET /v2/up.example-other/app/manifests/v1
check "a name that only starts with the prefix's text is not under it" 200 "$STATUS"

check "upstream errors counted" 1 \
    "$([ "$(metric berth_proxy_upstream_errors_total up.example)" -ge 5 ] && echo 1)"
finish
