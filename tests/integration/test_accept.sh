#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Manifest GET content negotiation: an OCI manifest or index is served only to a client whose
# Accept headers admit it (exactly, or by a wildcard), or that sends none.
. "$(dirname "$0")/lib.sh"
start_server
T=$BERTH_TMP
OCI=application/vnd.oci.image.manifest.v1+json
IDX=application/vnd.oci.image.index.v1+json
DOCKER=application/vnd.docker.distribution.manifest.v2+json

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
head -c 1000 /dev/urandom >"$T/layer"
push_blob neg "$T/config" >/dev/null
push_blob neg "$T/layer" >/dev/null
make_manifest "$T/config" "$T/layer" "$T/m"
req PUT /v2/neg/manifests/v1 -H "Content-Type: $OCI" --data-binary "@$T/m"
check "push" 201 "$STATUS"
M=$(sha256_file "$T/m")
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d}]}' \
    "$IDX" "$OCI" "$M" "$(stat -c %s "$T/m")" >"$T/i"
req PUT /v2/neg/manifests/multi -H "Content-Type: $IDX" --data-binary "@$T/i"
check "push index" 201 "$STATUS"

req GET /v2/neg/manifests/v1 -H "Accept: $DOCKER"
expect_error "docker-only Accept for an OCI manifest" 404 MANIFEST_UNKNOWN
req GET /v2/neg/manifests/v1 -H "Accept: $OCI"
check "exact Accept" 200 "$STATUS"
check "Content-Type" "$OCI" "$(header Content-Type)"
req GET /v2/neg/manifests/v1 -H "Accept: $DOCKER" -H "Accept: $OCI;q=0.9"
check "one of several Accept headers" 200 "$STATUS"
req GET /v2/neg/manifests/v1 -H "Accept: $DOCKER, $OCI"
check "a list in one header" 200 "$STATUS"
req GET /v2/neg/manifests/v1 -H "Accept: application/*"
check "type wildcard" 200 "$STATUS"
req GET /v2/neg/manifests/v1 -H "Accept: */*"
check "full wildcard" 200 "$STATUS"
req GET /v2/neg/manifests/v1 -H "Accept:"
check "no Accept header" 200 "$STATUS"
req GET /v2/neg/manifests/multi -H "Accept: $OCI"
expect_error "an index to a client that takes only manifests" 404 MANIFEST_UNKNOWN
req GET /v2/neg/manifests/multi -H "Accept: $OCI" -H "Accept: $IDX"
check "index admitted" 200 "$STATUS"
check "index served as pushed" "$(sha256_file "$T/i")" "$(sha256_file "$BODY")"
finish
