#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# No sequence of API calls leaves a tag that cannot be pulled or a manifest naming absent
# content: the blob endpoint does not delete manifests (404 BLOB_UNKNOWN) nor blobs a manifest
# references (409), and a manifest an index names is not deleted (409). Then random sequences
# (seeded; BERTH_TEST_SEED replays one), after which fsck is clean and every tag pulls whole,
# also after a restart.
. "$(dirname "$0")/lib.sh"
start_server
ROOT=$BERTH_TMP/root
T=$BERTH_TMP
HERE=$(dirname "$0")

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
head -c 3000 /dev/urandom >"$T/layer"
CFG=$(push_blob app "$T/config")
LAYER=$(push_blob app "$T/layer")
make_manifest "$T/config" "$T/layer" "$T/m1"
M1=$(sha256_file "$T/m1")
req PUT /v2/app/manifests/v1 -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
    --data-binary "@$T/m1"
check "push v1" 201 "$STATUS"
python3 - "$M1" "$(stat -c %s "$T/m1")" >"$T/idx" <<'PY'
import json, sys
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                 "digest": sys.argv[1], "size": int(sys.argv[2])}]}), end="")
PY
req PUT /v2/app/manifests/multi -H "Content-Type: application/vnd.oci.image.index.v1+json" \
    --data-binary "@$T/idx"
check "push index" 201 "$STATUS"

req DELETE "/v2/app/blobs/$M1"
expect_error "blob DELETE of a manifest digest" 404 BLOB_UNKNOWN
req DELETE "/v2/app/blobs/$CFG"
expect_error "blob DELETE of a referenced config" 409 DENIED
grep -q "referenced by manifest $M1" "$BODY" && ok || fail "409 names the manifest: $(cat "$BODY")"
req DELETE "/v2/app/blobs/$LAYER"
expect_error "blob DELETE of a referenced layer" 409 DENIED
req DELETE "/v2/app/manifests/$M1"
expect_error "manifest DELETE of an index's child" 409 DENIED
test -f "$ROOT/app/blobs/sha256/${M1#sha256:}" && ok || fail "the manifest file went"

# once the index is gone, the image may go; once the image is gone, its blobs may go
req DELETE "/v2/app/manifests/$(sha256_file "$T/idx")"
check "index delete" 202 "$STATUS"
req DELETE "/v2/app/blobs/$CFG"
expect_error "config still referenced by the tagged image" 409 DENIED
req DELETE "/v2/app/manifests/$M1"
check "image delete once no index names it" 202 "$STATUS"
req DELETE "/v2/app/blobs/$CFG"
check "config delete once no manifest names it" 202 "$STATUS"

# random sequences; fsck runs beside the live server (read-only)
SEED0=${BERTH_TEST_SEED:-$(date +%s)}
for k in 0 1 2; do
    seed=$((SEED0 + k))
    python3 "$HERE/integrity_random.py" "$URL" "$seed" 1.5 600 >"$T/drive.out" 2>&1
    check "random sequence (seed $seed)" 0 "$?"
    cat "$T/drive.out"
    "$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
    check "fsck after seed $seed" 0 "$?"
    grep -q " 0 problems" "$T/fsck.out" && ok || fail "fsck after seed $seed: $(cat "$T/fsck.out")"
    python3 "$HERE/integrity_random.py" --verify "$URL" >"$T/verify.out" 2>&1
    check "every tag pulls whole (seed $seed)" 0 "$?"
    cat "$T/verify.out"
done

# after a restart the store answers from disk alone
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
start_server
python3 "$HERE/integrity_random.py" --verify "$URL" >"$T/verify.out" 2>&1
check "every tag pulls whole after a restart" 0 "$?"
cat "$T/verify.out"
finish
