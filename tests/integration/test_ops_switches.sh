#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The operator's switches, as Distribution's storage.maintenance.readonly and
# storage.delete.enabled. Read-only (--read-only, storage.read_only, BERTH_STORAGE_READ_ONLY):
# pulls go on; pushes, uploads and deletes are refused with 405 UNSUPPORTED and change nothing;
# the online gc removes nothing. Deletes off (--no-deletes, storage.delete_enabled: false,
# BERTH_STORAGE_DELETE_ENABLED=false): DELETE of manifests, tags and blobs is 405 UNSUPPORTED,
# pushes and the cancelling of one's upload still work.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
PORT=$(free_port)
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# content: a tagged image, an untagged manifest (gc would collect it), an open upload session
ops_start http "$PORT"
check "push" 201 "$(ops_push_image "" sw/app v1)"
head -c 700 /dev/urandom >"$T/l2"
echo '{"n":2}' >"$T/c2"
l2=$(push_blob sw/app "$T/l2")
c2=$(push_blob sw/app "$T/c2")
make_manifest "$T/c2" "$T/l2" "$T/m2"
m2=$(sha256_file "$T/m2")
check "untagged manifest" 201 "$(code -X PUT --data-binary "@$T/m2" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$URL/v2/sw/app/manifests/$m2")"
loc=$(curl -s -o /dev/null -D - -X POST "$URL/v2/sw/app/blobs/uploads/" | grep -i '^location:' |
    cut -d' ' -f2 | tr -d '\r')
ops_stop

# ---- read-only, with an online gc that would remove the untagged manifest ----------------
cat >"$T/ro.yaml" <<Y
gc: {interval: 1s, grace: 0s, untagged_delay: 1s}
Y
ops_start http "$PORT" --config "$T/ro.yaml" --read-only
check "pull a manifest" 200 "$(code -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$URL/v2/sw/app/manifests/v1")"
check "pull a blob" 200 "$(code "$URL/v2/sw/app/blobs/$l2")"
req GET /v2/sw/app/tags/list
check "tags" 200 "$STATUS"
req PUT /v2/sw/app/manifests/v2 --data-binary "@$T/m2" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json'
expect_error "manifest PUT in read-only mode" 405 UNSUPPORTED
check "Allow names reads only" "GET, HEAD" "$(header Allow)"
req POST /v2/sw/app/blobs/uploads/
expect_error "upload POST in read-only mode" 405 UNSUPPORTED
req PATCH "$loc" --data-binary "@$T/l2" -H 'Content-Type: application/octet-stream'
expect_error "upload PATCH in read-only mode" 405 UNSUPPORTED
req DELETE /v2/sw/app/manifests/v1
expect_error "tag DELETE in read-only mode" 405 UNSUPPORTED
req DELETE "/v2/sw/app/blobs/$l2"
expect_error "blob DELETE in read-only mode" 405 UNSUPPORTED
sleep 2.5
check "the refused PUT tagged nothing" 404 "$(code "$URL/v2/sw/app/manifests/v2")"
check "gc removed nothing in read-only mode" 200 "$(code \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$URL/v2/sw/app/manifests/$m2")"
check "the session is still there" 204 "$(code "$URL$loc")"
if grep -q "gc skipped: read-only" "$BERTH_LOG"; then ok; else fail "gc skip logged"; fi
ops_stop
# the same from the file and from the environment
printf 'storage: {read_only: true}\n' >"$T/ro2.yaml"
ops_start http "$PORT" --config "$T/ro2.yaml"
check "read-only from the file" 405 "$(code -X POST "$URL/v2/sw/app/blobs/uploads/")"
ops_stop
BERTH_STORAGE_READ_ONLY=true ops_start http "$PORT"
check "read-only from the environment" 405 "$(code -X POST "$URL/v2/sw/app/blobs/uploads/")"
ops_stop

# ---- deletes off -------------------------------------------------------------------------
ops_start http "$PORT" --no-deletes
req DELETE /v2/sw/app/manifests/v1
expect_error "tag DELETE with deletes off" 405 UNSUPPORTED
req DELETE "/v2/sw/app/manifests/$m2"
expect_error "manifest DELETE with deletes off" 405 UNSUPPORTED
req DELETE "/v2/sw/app/blobs/$l2"
expect_error "blob DELETE with deletes off" 405 UNSUPPORTED
check "Allow has no DELETE" "GET, HEAD" "$(header Allow)"
check "the tag is still there" 200 "$(code -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "$URL/v2/sw/app/manifests/v1")"
check "pushes work" 201 "$(ops_push_image "" sw/app v3)"
check "cancelling one's upload works" 204 "$(code -X DELETE "$URL$loc")"
ops_stop
BERTH_STORAGE_DELETE_ENABLED=false ops_start http "$PORT"
check "deletes off from the environment" 405 "$(code -X DELETE "$URL/v2/sw/app/manifests/v1")"
ops_stop
printf 'storage: {delete_enabled: false}\n' >"$T/nodel.yaml"
ops_start http "$PORT" --config "$T/nodel.yaml"
check "deletes off from the file" 405 "$(code -X DELETE "$URL/v2/sw/app/manifests/v1")"
ops_stop
# and on by default
ops_start http "$PORT"
check "deletes on by default" 202 "$(code -X DELETE "$URL/v2/sw/app/manifests/v1")"
ops_stop

finish
