#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache bounded by max_size: over the cap, the server's gc evicts the least
# recently pulled cached manifests (and then collects their blobs) until the upstream's cached
# bytes fit; what was pulled recently stays, and pushed content (outside every prefix) is never
# evicted. Evictions are counted; an evicted image is fetched again when pulled.
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

T=$BERTH_TMP
MIB=$((1024 * 1024))
start_upstream up
start_fault "$up_PORT"
UP=http://127.0.0.1:$up_PORT
push_image "$UP" lib/a v1 $MIB
A=$IMG_DIGEST A_LAYER=$IMG_LAYER_DIGEST
push_image "$UP" lib/b v1 $MIB
B=$IMG_DIGEST B_LAYER=$IMG_LAYER_DIGEST
push_image "$UP" lib/c v1 $MIB
C=$IMG_DIGEST C_LAYER=$IMG_LAYER_DIGEST
cat >"$T/cache.yaml" <<EOF
gc:
  interval: 1s
  grace: 2s # (0s would collect a pushed layer before its manifest arrives)
proxy:
  upstreams:
    - prefix: up.example
      url: http://127.0.0.1:$FAULT_PORT
      max_size: 2560KiB
    - prefix: idx.example
      url: http://127.0.0.1:$FAULT_PORT
      max_size: 1536KiB
EOF
start_server --config "$T/cache.yaml"
req GET /metrics
check "the evictions metric is there" 1 "$(grep -c '^berth_proxy_evictions_total{upstream="up.example"} 0' "$BODY")"

# pushed content, older than everything cached and larger than the cap: never evicted
push_image "$URL" local/big v1 $((3 * MIB))
LOCAL=$IMG_DIGEST LOCAL_LAYER=$IMG_LAYER_DIGEST

pull() { # NAME LAYER: the image's manifest and layer through the cache
    req GET "/v2/up.example/lib/$1/manifests/v1"
    check "pull of $1" 200 "$STATUS"
    req GET "/v2/up.example/lib/$1/blobs/$2"
    check "layer of $1" "$2" "$(sha256_file "$BODY")"
}
pull a "$A_LAYER"
sleep 1.1
pull b "$B_LAYER"
sleep 1.1
pull a "$A_LAYER" # a is now more recent than b
sleep 1.1
pull c "$C_LAYER" # over the cap: b, the least recently pulled, goes

# wait for a gc pass to evict and collect
for _ in $(seq 1 50); do
    [ "$(metric berth_proxy_evictions_total up.example)" -ge 1 ] 2>/dev/null && break
    sleep 0.2
done
check "one manifest evicted" 1 "$(metric berth_proxy_evictions_total up.example)"
sleep 2.2 # another gc pass: the blobs no manifest needs are collected
grep -q "proxy up.example: evicted up.example/lib/b@$B" "$BERTH_LOG" && ok ||
    fail "no log line for the eviction of b"

fault_mode 503
: >"$FAULT_LOG"
req GET "/v2/up.example/lib/b/manifests/$B"
check "the least recently pulled (b) was evicted" 503 "$STATUS"
req GET "/v2/up.example/lib/b/blobs/$B_LAYER"
check "b's layer was collected" 503 "$STATUS"
req GET "/v2/up.example/lib/a/manifests/$A"
check "a (pulled again recently) stays" 200 "$STATUS"
req GET "/v2/up.example/lib/a/blobs/$A_LAYER"
check "a's layer stays" 200 "$STATUS"
req GET "/v2/up.example/lib/c/manifests/$C"
check "c (pulled last) stays" 200 "$STATUS"
req GET "/v2/up.example/lib/c/blobs/$C_LAYER"
check "c's layer stays" 200 "$STATUS"
check "these were served from the cache" 2 "$(wc -l <"$FAULT_LOG")"
req GET "/v2/local/big/manifests/v1"
check "pushed content is never evicted" "$LOCAL" "$(header Docker-Content-Digest)"
req GET "/v2/local/big/blobs/$LOCAL_LAYER"
check "pushed content's layer stays" "$LOCAL_LAYER" "$(sha256_file "$BODY")"
check "only one eviction" 1 "$(metric berth_proxy_evictions_total up.example)"

# berth du shows the cache apart from pushed content, per upstream prefix (a and c cached; b
# holds nothing: the fs store still lists its empty layout, the database does not)
{ echo "root: $T/root"; cat "$T/cache.yaml"; } >"$T/du.yaml"
"$BERTH" du --config "$T/du.yaml" >"$T/du.out" 2>&1 || fail "berth du: $(cat "$T/du.out")"
sed 's/^/du: /' "$T/du.out"
check "du: the cache's repositories under their prefix" 1 \
    "$(grep -cE '^ +2\.0 MiB +0 B +4  cache up\.example/ \([23]\)$' "$T/du.out")"
check "du: pushed content apart" 1 \
    "$(grep -cE '^ +3\.0 MiB +[0-9.]+ [KMG]?i?B +3  pushed \(1\)$' "$T/du.out")"
if [ "${BERTH_TEST_STORAGE:-}" != s3pg ]; then
    "$BERTH" du --root "$T/root" >"$T/du2.out" 2>&1 || fail "berth du --root"
    check "du without a configuration: no cache table" 0 "$(grep -c 'cache up.example' "$T/du2.out")"
fi

# an evicted image is fetched again when pulled
fault_mode pass
pull b "$B_LAYER"

# ---- an index and its platform manifest: the child pulled first is refused while the index
# needs it, so the index goes first, then the child, before anything more recent ----
push_image "$UP" lib/multi amd64 $MIB
AMD=$IMG_DIGEST AMD_LAYER=$IMG_LAYER_DIGEST AMD_MANIFEST=$IMG_MANIFEST
python3 - "$AMD_MANIFEST" "$T/index.json" <<'PY'
import hashlib, json, sys
b = open(sys.argv[1], "rb").read()
idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b),
                      "platform": {"os": "linux", "architecture": "amd64"}}]}
open(sys.argv[2], "w").write(json.dumps(idx))
PY
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/index.json" "$UP/v2/lib/multi/manifests/v1" || fail "index push"
INDEX=$(sha256_file "$T/index.json")
push_image "$UP" lib/d v1 $MIB
D=$IMG_DIGEST D_LAYER=$IMG_LAYER_DIGEST
req GET "/v2/idx.example/lib/multi/manifests/$AMD"
check "the platform manifest pulled" 200 "$STATUS"
req GET "/v2/idx.example/lib/multi/blobs/$AMD_LAYER"
check "its layer" "$AMD_LAYER" "$(sha256_file "$BODY")"
sleep 1.1
req GET /v2/idx.example/lib/multi/manifests/v1
check "then the index" "$INDEX" "$(header Docker-Content-Digest)"
sleep 1.1
req GET /v2/idx.example/lib/d/manifests/v1
check "then another image" 200 "$STATUS"
req GET "/v2/idx.example/lib/d/blobs/$D_LAYER"
check "its layer" "$D_LAYER" "$(sha256_file "$BODY")"
for _ in $(seq 1 50); do
    [ "$(metric berth_proxy_evictions_total idx.example)" -ge 2 ] 2>/dev/null && break
    sleep 0.2
done
check "the index and its platform manifest evicted" 2 "$(metric berth_proxy_evictions_total idx.example)"
fault_mode 503
req GET "/v2/idx.example/lib/multi/manifests/$INDEX"
check "the index is gone" 503 "$STATUS"
req GET "/v2/idx.example/lib/multi/manifests/$AMD"
check "its platform manifest is gone" 503 "$STATUS"
req GET "/v2/idx.example/lib/d/manifests/$D"
check "the more recent image stays" 200 "$STATUS"
if grep -q "cannot evict" "$BERTH_LOG"; then fail "an eviction was refused: $(grep 'cannot evict' "$BERTH_LOG" | head -n 1)"; else ok; fi
finish
