#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# The push and pull workflows of the distribution spec against a live `berth serve`: base
# endpoint, monolithic, chunked and streamed uploads, mounts, manifests and their errors.
. "$(dirname "$0")/lib.sh"
start_server

T=$BERTH_TMP
NAME=it/push-pull

# --- base -------------------------------------------------------------------------------
req GET /v2/
check "GET /v2/ status" 200 "$STATUS"
check "GET /v2/ api version" "registry/2.0" "$(header Docker-Distribution-API-Version)"

# --- monolithic POST ?digest= -------------------------------------------------------------
printf 'config-%s' "$RANDOM" >"$T/config"
head -c 70000 /dev/urandom >"$T/layer"
CFG=$(sha256_file "$T/config")
LAYER=$(sha256_file "$T/layer")
req POST "/v2/$NAME/blobs/uploads/?digest=$CFG" --data-binary "@$T/config" \
    -H 'Content-Type: application/octet-stream'
check "monolithic POST status" 201 "$STATUS"
check "monolithic POST location" "/v2/$NAME/blobs/$CFG" "$(header Location)"
check "monolithic POST digest header" "$CFG" "$(header Docker-Content-Digest)"

# sha512 digests are supported too
S512="sha512:$(sha512sum "$T/config" | cut -d' ' -f1)"
req POST "/v2/$NAME/blobs/uploads/?digest=$S512" --data-binary "@$T/config"
check "sha512 monolithic POST" 201 "$STATUS"
req GET "/v2/$NAME/blobs/$S512"
check "sha512 blob GET" "$CFG" "$(sha256_file "$BODY")"

# --- POST a session, then PUT the whole blob ------------------------------------------------
req POST "/v2/$NAME/blobs/uploads/"
check "POST session status" 202 "$STATUS"
LOC=$(header Location)
UUID=$(header Docker-Upload-UUID)
check "POST session location" "/v2/$NAME/blobs/uploads/$UUID" "$LOC"
check "POST session range" "0-0" "$(header Range)"
check "POST session content-length" "0" "$(header Content-Length)"

# chunked: two PATCHes with Content-Range, then an out-of-order one
head -c 30000 "$T/layer" >"$T/c1"
tail -c +30001 "$T/layer" | head -c 30000 >"$T/c2"
tail -c +60001 "$T/layer" >"$T/c3"
req PATCH "$LOC" --data-binary "@$T/c1" -H 'Content-Type: application/octet-stream' \
    -H 'Content-Range: 0-29999'
check "PATCH chunk 1 status" 202 "$STATUS"
check "PATCH chunk 1 range" "0-29999" "$(header Range)"
check "PATCH chunk 1 location" "$LOC" "$(header Location)"
req PATCH "$LOC" --data-binary "@$T/c3" -H 'Content-Type: application/octet-stream' \
    -H 'Content-Range: 60000-69999'
expect_error "PATCH out of order" 416 BLOB_UPLOAD_INVALID
check "416 carries the session's Range" "0-29999" "$(header Range)"
check "416 carries the session's Location" "$LOC" "$(header Location)"
check "416 carries Blob-Upload-Session-ID" "$UUID" "$(header Blob-Upload-Session-ID)"
req PATCH "$LOC" --data-binary "@$T/c2" -H 'Content-Range: bytes=30000-x'
expect_error "PATCH with a malformed Content-Range" 416 BLOB_UPLOAD_INVALID
req PATCH "$LOC" --data-binary "@$T/c2" -H 'Content-Type: application/octet-stream' \
    -H 'Content-Range: 30000-59999'
check "PATCH chunk 2 status" 202 "$STATUS"
check "PATCH chunk 2 range" "0-59999" "$(header Range)"
req GET "$LOC"
check "upload status" 204 "$STATUS"
check "upload status range" "0-59999" "$(header Range)"
check "upload status location" "$LOC" "$(header Location)"
# the last chunk comes with the closing PUT
req PUT "$LOC?digest=$LAYER" --data-binary "@$T/c3" -H 'Content-Type: application/octet-stream'
check "PUT close with last chunk" 201 "$STATUS"
check "PUT close location" "/v2/$NAME/blobs/$LAYER" "$(header Location)"
check "PUT close digest" "$LAYER" "$(header Docker-Content-Digest)"
req GET "$LOC"
expect_error "closed session is gone" 404 BLOB_UPLOAD_UNKNOWN

# streamed PATCH without Content-Range, then PUT without a body
printf 'streamed-%s' "$RANDOM" >"$T/streamed"
SD=$(sha256_file "$T/streamed")
req POST "/v2/$NAME/blobs/uploads/"
LOC=$(header Location)
req PATCH "$LOC" --data-binary "@$T/streamed" -H 'Content-Type: application/octet-stream'
check "streamed PATCH" 202 "$STATUS"
req PUT "$LOC?digest=$SD"
check "PUT close without body" 201 "$STATUS"

# digest mismatch on close
req POST "/v2/$NAME/blobs/uploads/"
LOC=$(header Location)
req PUT "$LOC?digest=sha256:$(printf '%064d' 0)" --data-binary 'something else'
expect_error "PUT with wrong digest" 400 DIGEST_INVALID
req PUT "/v2/$NAME/blobs/uploads/nonexistent?digest=$SD" --data-binary 'x'
expect_error "PUT on unknown session" 404 BLOB_UPLOAD_UNKNOWN
req POST "/v2/$NAME/blobs/uploads/?digest=sha256:nothex" --data-binary 'x'
expect_error "POST with malformed digest" 400 DIGEST_INVALID

# cancel a session
req POST "/v2/$NAME/blobs/uploads/"
LOC=$(header Location)
req DELETE "$LOC"
check "DELETE session" 204 "$STATUS"
req GET "$LOC"
expect_error "cancelled session" 404 BLOB_UPLOAD_UNKNOWN

# --- blob pull ------------------------------------------------------------------------------
req GET "/v2/$NAME/blobs/$LAYER"
check "GET blob status" 200 "$STATUS"
check "GET blob bytes" "$LAYER" "$(sha256_file "$BODY")"
check "GET blob digest header" "$LAYER" "$(header Docker-Content-Digest)"
check "GET blob content type" "application/octet-stream" "$(header Content-Type)"
check "GET blob accept-ranges" "bytes" "$(header Accept-Ranges)"
check "GET blob length" "70000" "$(header Content-Length)"
head_req "/v2/$NAME/blobs/$LAYER"
check "HEAD blob status" 200 "$STATUS"
check "HEAD blob length" "70000" "$(header Content-Length)"
req GET "/v2/$NAME/blobs/$LAYER" -H 'Range: bytes=10-19'
check "Range GET status" 206 "$STATUS"
check "Range GET content-range" "bytes 10-19/70000" "$(header Content-Range)"
check "Range GET bytes" "$(head -c 20 "$T/layer" | tail -c 10 | od -An -tx1)" "$(od -An -tx1 "$BODY")"
req GET "/v2/$NAME/blobs/$LAYER" -H 'Range: bytes=-5'
check "suffix Range" "bytes 69995-69999/70000" "$(header Content-Range)"
req GET "/v2/$NAME/blobs/$LAYER" -H 'Range: bytes=70000-'
check "unsatisfiable Range" 416 "$STATUS"
check "unsatisfiable Range content-range" "bytes */70000" "$(header Content-Range)"
req GET "/v2/$NAME/blobs/sha256:$(printf '%064d' 1)"
expect_error "GET unknown blob" 404 BLOB_UNKNOWN
req GET "/v2/$NAME/blobs/sha256:xyz"
expect_error "GET blob with bad digest" 400 DIGEST_INVALID
req GET "/v2/Bad_Name/blobs/$LAYER"
expect_error "GET blob with bad name" 400 NAME_INVALID

# --- mount --------------------------------------------------------------------------------
req POST "/v2/it/other/blobs/uploads/?mount=$LAYER&from=$NAME"
check "mount from" 201 "$STATUS"
check "mount location" "/v2/it/other/blobs/$LAYER" "$(header Location)"
req POST "/v2/it/third/blobs/uploads/?mount=$CFG"
check "mount without from" 201 "$STATUS"
req POST "/v2/it/other/blobs/uploads/?mount=sha256:$(printf '%064d' 2)&from=$NAME"
check "mount of an absent blob falls back to a session" 202 "$STATUS"
check "fallback session has an id" "1" "$([ -n "$(header Docker-Upload-UUID)" ] && echo 1)"

# --- manifests ----------------------------------------------------------------------------
make_manifest "$T/config" "$T/layer" "$T/manifest"
MD=$(sha256_file "$T/manifest")
MT=application/vnd.oci.image.manifest.v1+json
req PUT "/v2/$NAME/manifests/v1" --data-binary "@$T/manifest" -H "Content-Type: $MT"
check "PUT manifest" 201 "$STATUS"
check "PUT manifest location" "/v2/$NAME/manifests/$MD" "$(header Location)"
check "PUT manifest digest" "$MD" "$(header Docker-Content-Digest)"
req GET "/v2/$NAME/manifests/v1" -H "Accept: $MT"
check "GET manifest by tag" 200 "$STATUS"
check "GET manifest bytes" "$MD" "$(sha256_file "$BODY")"
check "GET manifest content type" "$MT" "$(header Content-Type)"
check "GET manifest digest header" "$MD" "$(header Docker-Content-Digest)"
check "GET manifest length" "$(stat -c %s "$T/manifest")" "$(header Content-Length)"
req GET "/v2/$NAME/manifests/$MD"
check "GET manifest by digest" 200 "$STATUS"
head_req "/v2/$NAME/manifests/v1"
check "HEAD manifest" 200 "$STATUS"
check "HEAD manifest digest" "$MD" "$(header Docker-Content-Digest)"
check "HEAD manifest length" "$(stat -c %s "$T/manifest")" "$(header Content-Length)"
req PUT "/v2/$NAME/manifests/$MD" --data-binary "@$T/manifest" -H "Content-Type: $MT"
check "PUT manifest by digest" 201 "$STATUS"
req PUT "/v2/$NAME/manifests/v1-params" --data-binary "@$T/manifest" \
    -H "Content-Type: $MT; charset=utf-8"
check "Content-Type parameters are ignored" 201 "$STATUS"
req PUT "/v2/$NAME/manifests/v1-form" --data-binary "@$T/manifest"
check "a non-manifest Content-Type defers to the document's mediaType" 201 "$STATUS"
req GET "/v2/$NAME/manifests/v1-form"
check "stored media type comes from the document" "$MT" "$(header Content-Type)"
req GET "/v2/$NAME/manifests/nope"
expect_error "GET unknown tag" 404 MANIFEST_UNKNOWN
req GET "/v2/$NAME/manifests/sha256:$(printf '%064d' 3)"
expect_error "GET unknown digest" 404 MANIFEST_UNKNOWN
req GET "/v2/it/never-pushed/manifests/v1"
expect_error "GET manifest of unknown repo" 404 MANIFEST_UNKNOWN

# errors of a PUT
head -c 100 /dev/urandom >"$T/absent-layer"
make_manifest "$T/config" "$T/absent-layer" "$T/bad-manifest"
req PUT "/v2/$NAME/manifests/v2" --data-binary "@$T/bad-manifest" -H "Content-Type: $MT"
expect_error "manifest with an absent blob" 400 MANIFEST_BLOB_UNKNOWN
req PUT "/v2/$NAME/manifests/v2" --data-binary '{"schemaVersion": 2, "config": ' -H "Content-Type: $MT"
expect_error "invalid JSON" 400 MANIFEST_INVALID
req PUT "/v2/$NAME/manifests/sha256:$(printf '%064d' 4)" --data-binary "@$T/manifest" \
    -H "Content-Type: $MT"
expect_error "manifest digest mismatch" 400 DIGEST_INVALID
python3 -c 'import sys; sys.stdout.write("{\"a\":\"" + "x" * (4 * 1024 * 1024) + "\"}")' >"$T/huge"
req PUT "/v2/$NAME/manifests/huge" --data-binary "@$T/huge" -H "Content-Type: $MT"
expect_error "too large manifest" 413 SIZE_INVALID
req PUT "/v2/$NAME/manifests/huge" --data-binary "@$T/huge" -H "Content-Type: $MT" \
    -H 'Transfer-Encoding: chunked'
expect_error "too large chunked manifest" 413 SIZE_INVALID
req PUT "/v2/$NAME/manifests/-bad-tag" --data-binary "@$T/manifest" -H "Content-Type: $MT"
expect_error "invalid tag" 400 MANIFEST_INVALID
req PUT "/v2/UPPER/manifests/v1" --data-binary "@$T/manifest" -H "Content-Type: $MT"
expect_error "invalid name" 400 NAME_INVALID

# a name with route words in it
req PUT "/v2/it/blobs/manifests/manifests/v1" --data-binary "@$T/manifest" -H "Content-Type: $MT"
expect_error "name ending in manifests/ is its own repository" 400 MANIFEST_BLOB_UNKNOWN

server_alive && ok || fail "server died"
finish
