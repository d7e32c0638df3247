#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: rgw pg
# Orphaned bytes over S3 + PostgreSQL: an object put into the bucket under a blob key that no
# metadata recorded (as a replica killed between its commit and its record leaves) is found by
# `berth gc --config` once older than the grace period, recorded, and removed by a collection
# after the grace period; bytes younger than the grace period stay, and so does every image.
. "$(dirname "$0")/lib.sh"
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP
[ "${BERTH_TEST_STORAGE:-}" = s3pg ] ||
    scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }
MT=application/vnd.oci.image.manifest.v1+json

cat >"$T/gc.yaml" <<Y
storage:
  s3:
    endpoint: $BERTH_STORAGE_S3_ENDPOINT
    bucket: $BERTH_STORAGE_S3_BUCKET
    region: $BERTH_STORAGE_S3_REGION
    prefix: $BERTH_STORAGE_S3_PREFIX
    path_style: true
database:
  url: $BERTH_DATABASE_URL
Y

# s3 METHOD KEY [curl args]: one request to the bucket, signed by curl; echoes the status
s3() {
    local m=$1 k=$2
    shift 2
    curl -s -o "$T/s3.out" -w '%{http_code}' -m 20 -X "$m" \
        --aws-sigv4 "aws:amz:$BERTH_STORAGE_S3_REGION:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" \
        "$BERTH_STORAGE_S3_ENDPOINT/$BERTH_STORAGE_S3_BUCKET/$k"
}
# orphan NAME: random bytes put straight into the bucket under their blob key; echoes the digest
orphan() {
    local d
    head -c 70000 /dev/urandom >"$T/$1"
    d=$(sha256_file "$T/$1")
    check "put $1 into the bucket" 200 \
        "$(s3 PUT "${BERTH_STORAGE_S3_PREFIX}blobs/sha256/${d#sha256:}" --data-binary "@$T/$1")"
    echo "$d"
}
in_bucket() { s3 HEAD "${BERTH_STORAGE_S3_PREFIX}blobs/sha256/${1#sha256:}" -I; }
gc() { "$BERTH" gc --config "$T/gc.yaml" --grace 3s >"$T/gc.out" 2>&1; }

start_server
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
head -c 50000 /dev/urandom >"$T/layer"
push_blob app "$T/cfg" >/dev/null
lay=$(push_blob app "$T/layer")
make_manifest "$T/cfg" "$T/layer" "$T/m.json"
req PUT /v2/app/manifests/v1 -H "Content-Type: $MT" --data-binary "@$T/m.json"
check "push an image" 201 "$STATUS"

O=$(orphan old)
check "the orphan is in the bucket" 200 "$(in_bucket "$O")"
sleep 4 # older than the grace period
gc
check "gc runs" 0 $?
if grep -q "recorded orphan   $O" "$T/gc.out"; then ok; else fail "gc records the orphan"; cat "$T/gc.out" >&2; fi
check "a recorded orphan stays for the grace period" 200 "$(in_bucket "$O")"
Y=$(orphan young)
gc
check "gc runs again" 0 $?
if grep -q "orphan" "$T/gc.out"; then fail "an orphan recorded twice, or a young one taken"; cat "$T/gc.out" >&2; else ok; fi
check "still there within the grace period" 200 "$(in_bucket "$O")"
sleep 4
"$BERTH" gc --config "$T/gc.yaml" --grace 3s --dry-run >"$T/dry.out" 2>&1
if grep -q "would remove pool     $O" "$T/dry.out"; then ok; else fail "a dry run names the orphan"; cat "$T/dry.out" >&2; fi
check "a dry run leaves it" 200 "$(in_bucket "$O")"
gc
check "gc runs a third time" 0 $?
if grep -q "removed pool     $O" "$T/gc.out"; then ok; else fail "gc removes the orphan"; cat "$T/gc.out" >&2; fi
check "the orphan is gone from the bucket" 404 "$(in_bucket "$O")"
if grep -q "recorded orphan   $Y" "$T/gc.out"; then ok; else fail "gc records the second orphan once it is old"; cat "$T/gc.out" >&2; fi
check "the second orphan waits its grace period" 200 "$(in_bucket "$Y")"
req GET "/v2/app/blobs/$lay"
check "the image's layer pulls" 200 "$STATUS"
check "the image's layer is whole" "$lay" "$(sha256_file "$BODY")"
req GET /v2/app/manifests/v1 -H "Accept: $MT"
check "the image's manifest" 200 "$STATUS"
finish
