#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any
# The online gc (on by default: gc.interval 1h, gc.grace 1h) and a push that takes longer than
# the grace: the layers a client uploaded first are referenced by nothing until its manifest
# PUT, hours later over a slow link. Before, gc collected them once older than gc.grace and the
# manifest PUT failed with MANIFEST_BLOB_UNKNOWN. While a repository has an open upload
# session (a push in progress; idle ones are reaped after limits.upload_idle_ttl), gc keeps
# its unreferenced blobs; once the push ended, they go as before. Short durations here.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
printf 'gc: {interval: 1s, grace: 2s}\n' >"$T/gc.yaml"
start_server --config "$T/gc.yaml"

head -c 5000 /dev/urandom >"$T/layer"
echo '{"architecture":"amd64","os":"linux"}' >"$T/config"
make_manifest "$T/config" "$T/layer" "$T/m"
# the first layer, committed; then the session of the slow one, open
layer=$(push_blob slow/app "$T/layer")
check "first layer" 200 "$(code -I "$URL/v2/slow/app/blobs/$layer")"
loc=$(curl -s -o /dev/null -D - -X POST "$URL/v2/slow/app/blobs/uploads/" |
    grep -i '^location:' | cut -d' ' -f2 | tr -d '\r')
check "PATCH of the slow layer" 202 "$(code -X PATCH --data-binary "@$T/config" \
    -H 'Content-Type: application/octet-stream' "$URL$loc")"
sleep 4.5 # two grace periods, four gc passes
check "PUT of the slow layer" 201 "$(code -X PUT "$URL$loc?digest=$(sha256_file "$T/config")")"
check "the first layer is still there" 200 "$(code -I "$URL/v2/slow/app/blobs/$layer")"
check "the manifest PUT" 201 "$(code -X PUT --data-binary "@$T/m" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$URL/v2/slow/app/manifests/v1")"

# no session open: an unreferenced blob goes after the grace, as before
head -c 700 /dev/urandom >"$T/orphan"
orphan=$(push_blob slow/app "$T/orphan")
sleep 4.5
check "an unreferenced blob without a push in progress is collected" 404 \
    "$(code -I "$URL/v2/slow/app/blobs/$orphan")"
check "the image stays" 200 "$(code -I "$URL/v2/slow/app/blobs/$layer")"
finish
