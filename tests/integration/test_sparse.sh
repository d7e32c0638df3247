#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Sparse manifests (an index whose children, or an image whose layers, were deliberately not
# pushed) are refused by default and accepted in the repositories that sparse_manifests names;
# their absent content answers 404, never as if whole; gc keeps what is present; fsck does
# not report what was accepted absent, before or after a restart.
. "$(dirname "$0")/lib.sh"
T=$BERTH_TMP
ROOT=$T/root
printf 'sparse_manifests: "mirror/*,part"\n' >"$T/cfg.yaml"
start_server --config "$T/cfg.yaml"

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
head -c 5000 /dev/urandom >"$T/layer"
make_manifest "$T/config" "$T/layer" "$T/img"
IMG=$(sha256_file "$T/img")
LAYER=$(sha256_file "$T/layer")
python3 - "$IMG" "$(stat -c %s "$T/img")" >"$T/idx" <<'PY'
import json, sys
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                 "digest": sys.argv[1], "size": int(sys.argv[2]),
                                 "platform": {"architecture": "amd64", "os": "linux"}}]}), end="")
PY
IDX=$(sha256_file "$T/idx")

# by default: refused
req PUT /v2/other/manifests/v1 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/idx"
expect_error "index with absent children elsewhere" 400 MANIFEST_BLOB_UNKNOWN
push_blob other "$T/config" >/dev/null
req PUT /v2/other/manifests/v1 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/img"
expect_error "image with an absent layer elsewhere" 400 MANIFEST_BLOB_UNKNOWN

# in a sparse repository: accepted; absent content answers 404
req PUT /v2/mirror/a/manifests/v1 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/idx"
check "sparse index accepted in mirror/a" 201 "$STATUS"
req GET /v2/mirror/a/manifests/v1
check "the sparse index is served" 200 "$STATUS"
req GET "/v2/mirror/a/manifests/$IMG"
expect_error "its absent child" 404 MANIFEST_UNKNOWN
push_blob part "$T/config" >/dev/null
req PUT /v2/part/manifests/img -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/img"
check "sparse image accepted in part" 201 "$STATUS"
req GET "/v2/part/blobs/$LAYER"
expect_error "its absent layer" 404 BLOB_UNKNOWN
req GET "/v2/part/blobs/$(sha256_file "$T/config")"
check "its present config" 200 "$STATUS"
req DELETE "/v2/part/blobs/$(sha256_file "$T/config")"
expect_error "its present config cannot be deleted" 409 DENIED

if [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
    # fsck works on a root directory; gc collects what the configuration names
    kill "$BERTH_PID"
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
    : >"$T/empty.yaml"
    "$BERTH" gc --config "$T/empty.yaml" --grace 0s >"$T/gc.out" 2>&1
    check "offline gc" 0 "$?"
    grep -q " part[@:]" "$T/gc.out" && fail "gc removed content of a sparse image: $(cat "$T/gc.out")" ||
        ok
else
    "$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
    check "fsck does not report accepted absences" 0 "$?"
    kill "$BERTH_PID"
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
    "$BERTH" gc --root "$ROOT" >"$T/gc.out" 2>&1
    check "offline gc" 0 "$?"
    test -f "$ROOT/part/blobs/sha256/$(sha256sum "$T/config" | cut -d' ' -f1)" && ok ||
        fail "gc removed the present config of a sparse image: $(cat "$T/gc.out")"
    "$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
    check "fsck after gc, without the server's configuration" 0 "$?"
fi
start_server --config "$T/cfg.yaml"
req GET /v2/part/manifests/img
check "the sparse image is served after a restart" 200 "$STATUS"
req GET "/v2/part/blobs/$LAYER"
check "its layer is still absent" 404 "$STATUS"
# the absent content may arrive later
push_blob part "$T/layer" >/dev/null
req GET "/v2/part/blobs/$LAYER"
check "the layer, once pushed" 200 "$STATUS"
finish
