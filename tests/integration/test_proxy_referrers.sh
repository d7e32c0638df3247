#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Referrers through the pull-through cache: the referrers (a signature, an SBOM) of a pulled
# manifest are fetched with it, from a berth upstream's referrers API and from Distribution
# 2.8's referrers tag schema (an index tagged sha256-HEX), and served by the cache's
# /v2/NAME/referrers/DIGEST, also once the upstream is down; referrers added upstream later
# are fetched when the subject's referrers are asked for past the ttl.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

if ! command -v docker-registry >/dev/null; then
    echo "docker-registry missing"
    exit 77
fi
T=$BERTH_TMP
start_upstream up
start_fault "$up_PORT"
start_distribution_upstream dist
UP=http://127.0.0.1:$up_PORT
DIST=http://127.0.0.1:$dist_PORT

# push_referrer URL NAME SUBJECT_MANIFEST_FILE ARTIFACT_TYPE: a manifest whose subject is the
# given one, pushed by digest; echoes its digest
push_referrer() {
    local url=$1 name=$2 dir sd ss
    dir=$(mktemp -d "$T/ref.XXXXXX")
    echo "{}" >"$dir/config"
    head -c 300 /dev/urandom >"$dir/layer"
    put_blob "$url" "$name" "$dir/config" >/dev/null
    put_blob "$url" "$name" "$dir/layer" >/dev/null
    sd=$(sha256_file "$3")
    ss=$(wc -c <"$3")
    make_manifest "$dir/config" "$dir/layer" "$dir/m" "$sd" "$ss" "$4"
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/m" "$url/v2/$name/manifests/$(sha256_file "$dir/m")" ||
        { echo "push of a referrer failed" >&2; exit 1; }
    cp "$dir/m" "$T/last_referrer"
    sha256_file "$dir/m"
}

# referrers PATH: the artifactTypes of the cache's referrers answer, sorted, comma-separated
referrers() {
    req GET "$1"
    json '",".join(sorted(d.get("artifactType", "") for d in j["manifests"]))'
}

# ---- a berth upstream (referrers API) ----
push_image "$UP" lib/app v1
APP=$IMG_DIGEST
APP_MANIFEST=$IMG_MANIFEST
SIG=$(push_referrer "$UP" lib/app "$IMG_MANIFEST" application/vnd.example.signature)
SBOM=$(push_referrer "$UP" lib/app "$IMG_MANIFEST" application/spdx+json)

# ---- Distribution 2.8 (no referrers API: the tag schema) ----
push_image "$DIST" team/tool v1
TOOL=$IMG_DIGEST
DSIG=$(push_referrer "$DIST" team/tool "$IMG_MANIFEST" application/vnd.example.signature)
python3 - "$T/last_referrer" "$T/schema.json" <<'PY'
import hashlib, json, sys
b = open(sys.argv[1], "rb").read()
idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b),
                      "artifactType": "application/vnd.example.signature"}]}
open(sys.argv[2], "w").write(json.dumps(idx))
PY
curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/schema.json" "$DIST/v2/team/tool/manifests/sha256-${TOOL#sha256:}" ||
    fail "push of the referrers tag schema index"

cat >"$T/cache.yaml" <<EOF
proxy:
  upstreams:
    - prefix: up.example
      url: http://127.0.0.1:$FAULT_PORT
      ttl: 2s
    - prefix: dist.example
      url: $DIST
EOF
start_server --config "$T/cache.yaml"

req GET /v2/up.example/lib/app/manifests/v1
check "the image pulled through the cache" "$APP" "$(header Docker-Content-Digest)"
check "its referrers asked for with it" 1 "$(upstream_requests "GET /v2/lib/app/referrers/$APP")"
fault_mode 503
check "referrers served by the cache, upstream down" \
    "application/spdx+json,application/vnd.example.signature" \
    "$(referrers "/v2/up.example/lib/app/referrers/$APP")"
check "referrers answer" 200 "$STATUS"
req GET "/v2/up.example/lib/app/referrers/$APP?artifactType=application/spdx%2Bjson"
check "filtered by artifactType" "$SBOM" "$(json '",".join(d["digest"] for d in j["manifests"])')"
req GET "/v2/up.example/lib/app/manifests/$SIG"
check "the signature manifest served, upstream down" 200 "$STATUS"
check "the signature's subject" "$APP" "$(json 'j["subject"]["digest"]')"

# referrers added upstream later: asked again past the ttl
fault_mode pass
sleep 2.2
push_image "$UP" lib/app v2 >/dev/null
# (a referrer of v2: not part of v1's answer)
push_referrer "$UP" lib/app "$IMG_MANIFEST" application/vnd.example.other >/dev/null
ATT=$(push_referrer "$UP" lib/app "$APP_MANIFEST" application/vnd.example.attestation)
check "past the ttl, a new referrer upstream is served" \
    "application/spdx+json,application/vnd.example.attestation,application/vnd.example.signature" \
    "$(referrers "/v2/up.example/lib/app/referrers/$APP")"
req GET "/v2/up.example/lib/app/manifests/$ATT"
check "and cached" 200 "$STATUS"
: >"$FAULT_LOG"
referrers "/v2/up.example/lib/app/referrers/$APP" >/dev/null
check "within the ttl the upstream is not asked" 0 "$(wc -l <"$FAULT_LOG")"
# the upstream down past the ttl: what is cached, counted as stale
fault_mode 503
sleep 2.2
check "upstream down past the ttl: the cached referrers" \
    "application/spdx+json,application/vnd.example.attestation,application/vnd.example.signature" \
    "$(referrers "/v2/up.example/lib/app/referrers/$APP")"
check "referrers answer with the upstream down" 200 "$STATUS"

# ---- the referrers tag schema (Distribution 2.8) ----
req GET /v2/dist.example/team/tool/manifests/v1
check "Distribution's image pulled" "$TOOL" "$(header Docker-Content-Digest)"
kill "$dist_PID"
wait "$dist_PID" 2>/dev/null
check "referrers from the tag schema served, upstream stopped" \
    "application/vnd.example.signature" "$(referrers "/v2/dist.example/team/tool/referrers/$TOOL")"
req GET "/v2/dist.example/team/tool/manifests/$DSIG"
check "the signature manifest cached" 200 "$STATUS"
finish
