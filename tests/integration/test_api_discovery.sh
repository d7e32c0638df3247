#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Content discovery and management against a live `berth serve`: tags list and catalog with
# pagination and Link headers, referrers with and without the artifactType filter, deletes.
. "$(dirname "$0")/lib.sh"
start_server

T=$BERTH_TMP
MT=application/vnd.oci.image.manifest.v1+json
NAME=it/disc

printf 'config-%s' "$RANDOM" >"$T/config"
printf 'layer-%s' "$RANDOM" >"$T/layer"
CFG=$(push_blob "$NAME" "$T/config")
LAYER=$(push_blob "$NAME" "$T/layer")
make_manifest "$T/config" "$T/layer" "$T/manifest"
MD=$(sha256_file "$T/manifest")
MSIZE=$(stat -c %s "$T/manifest")
for tag in v3 v1 latest v2 a-tag; do
    req PUT "/v2/$NAME/manifests/$tag" --data-binary "@$T/manifest" -H "Content-Type: $MT"
    check "PUT tag $tag" 201 "$STATUS"
done

# --- tags list ----------------------------------------------------------------------------
req GET "/v2/$NAME/tags/list"
check "tags list" 200 "$STATUS"
check "tags list name" "$NAME" "$(json 'j["name"]')"
check "tags in lexical order" "a-tag latest v1 v2 v3" "$(json '" ".join(j["tags"])')"
check "no Link without n" "" "$(header Link)"
req GET "/v2/$NAME/tags/list?n=2"
check "tags page 1" "a-tag latest" "$(json '" ".join(j["tags"])')"
check "tags page 1 Link" "</v2/$NAME/tags/list?last=latest&n=2>; rel=\"next\"" "$(header Link)"
req GET "/v2/$NAME/tags/list?n=2&last=latest"
check "tags page 2" "v1 v2" "$(json '" ".join(j["tags"])')"
check "tags page 2 Link" "</v2/$NAME/tags/list?last=v2&n=2>; rel=\"next\"" "$(header Link)"
req GET "/v2/$NAME/tags/list?n=2&last=v2"
check "tags page 3" "v3" "$(json '" ".join(j["tags"])')"
check "tags last page has no Link" "" "$(header Link)"
req GET "/v2/$NAME/tags/list?n=0"
check "n=0" "0" "$(json 'len(j["tags"])')"
req GET "/v2/$NAME/tags/list?n=99999999999"
check "a huge n is capped, not refused" "a-tag latest v1 v2 v3" "$(json '" ".join(j["tags"])')"
req GET "/v2/$NAME/tags/list?n=abc"
check "bad n" 400 "$STATUS"
req GET "/v2/it/unknown/tags/list"
expect_error "tags of unknown repository" 404 NAME_UNKNOWN
req GET "/v2/bad..name/tags/list"
expect_error "tags of invalid name" 400 NAME_INVALID

# --- catalog ------------------------------------------------------------------------------
for r in it/cat-b it/cat-a it/cat-c; do
    push_blob "$r" "$T/config" >/dev/null
done
req GET "/v2/_catalog"
check "catalog" 200 "$STATUS"
check "catalog content" "it/cat-a it/cat-b it/cat-c it/disc" "$(json '" ".join(j["repositories"])')"
req GET "/v2/_catalog?n=3"
check "catalog page 1" "it/cat-a it/cat-b it/cat-c" "$(json '" ".join(j["repositories"])')"
check "catalog Link" "</v2/_catalog?last=it/cat-c&n=3>; rel=\"next\"" "$(header Link)"
req GET "/v2/_catalog?n=3&last=it/cat-c"
check "catalog page 2" "it/disc" "$(json '" ".join(j["repositories"])')"
check "catalog last page has no Link" "" "$(header Link)"

# --- referrers ----------------------------------------------------------------------------
printf '{}' >"$T/empty-config"
push_blob "$NAME" "$T/empty-config" >/dev/null
printf 'sig-%s' "$RANDOM" >"$T/sig"
printf 'sbom-%s' "$RANDOM" >"$T/sbom"
push_blob "$NAME" "$T/sig" >/dev/null
push_blob "$NAME" "$T/sbom" >/dev/null
make_manifest "$T/empty-config" "$T/sig" "$T/sig-manifest" "$MD" "$MSIZE" application/vnd.example.sig
make_manifest "$T/empty-config" "$T/sbom" "$T/sbom-manifest" "$MD" "$MSIZE" application/vnd.example.sbom
SIGD=$(sha256_file "$T/sig-manifest")
SBOMD=$(sha256_file "$T/sbom-manifest")
req PUT "/v2/$NAME/manifests/$SIGD" --data-binary "@$T/sig-manifest" -H "Content-Type: $MT"
check "PUT referrer" 201 "$STATUS"
check "OCI-Subject header" "$MD" "$(header OCI-Subject)"
req PUT "/v2/$NAME/manifests/$SBOMD" --data-binary "@$T/sbom-manifest" -H "Content-Type: $MT"
check "PUT second referrer" 201 "$STATUS"
req GET "/v2/$NAME/referrers/$MD"
check "referrers" 200 "$STATUS"
check "referrers content type" "application/vnd.oci.image.index.v1+json" "$(header Content-Type)"
check "referrers list both" "$(printf '%s\n' "$SIGD" "$SBOMD" | sort | tr '\n' ' ')" \
    "$(json '" ".join(sorted(m["digest"] for m in j["manifests"])) + " "')"
check "referrers not filtered" "" "$(header OCI-Filters-Applied)"
req GET "/v2/$NAME/referrers/$MD?artifactType=application/vnd.example.sig"
check "filtered referrers" "$SIGD" "$(json '" ".join(m["digest"] for m in j["manifests"])')"
check "filtered artifactType" "application/vnd.example.sig" \
    "$(json 'j["manifests"][0]["artifactType"]')"
check "OCI-Filters-Applied" "artifactType" "$(header OCI-Filters-Applied)"
req GET "/v2/$NAME/referrers/sha256:$(printf '%064d' 7)"
check "referrers of unknown digest" 200 "$STATUS"
check "referrers of unknown digest are empty" "0" "$(json 'len(j["manifests"])')"
req GET "/v2/it/no-such-repo/referrers/$MD"
check "referrers of an unknown repository" 200 "$STATUS"
check "referrers of an unknown repository are empty" "0" "$(json 'len(j["manifests"])')"
req GET "/v2/$NAME/referrers/not-a-digest"
expect_error "referrers of bad digest" 400 DIGEST_INVALID

# --- deletes ------------------------------------------------------------------------------
req DELETE "/v2/$NAME/manifests/v3"
check "DELETE tag" 202 "$STATUS"
req GET "/v2/$NAME/manifests/v3"
expect_error "deleted tag" 404 MANIFEST_UNKNOWN
req GET "/v2/$NAME/manifests/$MD"
check "manifest stays after tag delete" 200 "$STATUS"
req DELETE "/v2/$NAME/manifests/v3"
expect_error "DELETE absent tag" 404 MANIFEST_UNKNOWN
req DELETE "/v2/$NAME/manifests/$SIGD"
check "DELETE manifest by digest" 202 "$STATUS"
req GET "/v2/$NAME/manifests/$SIGD"
expect_error "deleted manifest" 404 MANIFEST_UNKNOWN
req GET "/v2/$NAME/referrers/$MD"
check "deleted referrer is gone" "$SBOMD" "$(json '" ".join(m["digest"] for m in j["manifests"])')"
req DELETE "/v2/$NAME/manifests/$MD"
check "DELETE tagged manifest by digest" 202 "$STATUS"
req GET "/v2/$NAME/manifests/v1"
expect_error "tags of a deleted manifest go" 404 MANIFEST_UNKNOWN
req DELETE "/v2/$NAME/blobs/$LAYER"
check "DELETE blob" 202 "$STATUS"
req GET "/v2/$NAME/blobs/$LAYER"
expect_error "deleted blob" 404 BLOB_UNKNOWN
req DELETE "/v2/$NAME/blobs/$LAYER"
expect_error "DELETE absent blob" 404 BLOB_UNKNOWN
req GET "/v2/it/cat-a/blobs/$CFG"
check "other repositories keep a shared blob" 200 "$STATUS"

server_alive && ok || fail "server died"
finish
