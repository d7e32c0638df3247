#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: rgw pg
# berth fsck and berth du over S3 + PostgreSQL (--config FILE), beside a running server: fsck
# reads every object through its digest (a 12 MiB layer included) and checks every
# repository's links and manifests: a sound store has no problems; an object whose bytes
# changed is corrupt, one deleted from the bucket is missing (exit 1); --repair is for fs
# stores (exit 2). du reports each repository's exclusive and shared bytes from the database.
. "$(dirname "$0")/lib.sh"
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP
[ "${BERTH_TEST_STORAGE:-}" = s3pg ] ||
    scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }
MT=application/vnd.oci.image.manifest.v1+json

cat >"$T/c.yaml" <<Y
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
s3() {
    local m=$1 k=$2
    shift 2
    curl -s -o "$T/s3.out" -w '%{http_code}' -m 60 -X "$m" \
        --aws-sigv4 "aws:amz:$BERTH_STORAGE_S3_REGION:s3" \
        --user "$AWS_ACCESS_KEY_ID:$AWS_SECRET_ACCESS_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@" \
        "$BERTH_STORAGE_S3_ENDPOINT/$BERTH_STORAGE_S3_BUCKET/$k"
}
key() { echo "${BERTH_STORAGE_S3_PREFIX}blobs/sha256/${1#sha256:}"; }

start_server
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/cfg"
head -c $((12 * 1024 * 1024 + 5)) /dev/urandom >"$T/big"
head -c 30000 /dev/urandom >"$T/small"
head -c 20000 /dev/urandom >"$T/third"
CFG=$(push_blob app "$T/cfg")
BIG=$(push_blob app "$T/big")
SMALL=$(push_blob app "$T/small")
make_manifest "$T/cfg" "$T/big" "$T/m1"
req PUT /v2/app/manifests/v1 -H "Content-Type: $MT" --data-binary "@$T/m1"
check "push v1" 201 "$STATUS"
make_manifest "$T/cfg" "$T/small" "$T/m2"
req PUT /v2/app/manifests/v2 -H "Content-Type: $MT" --data-binary "@$T/m2"
check "push v2" 201 "$STATUS"
req POST "/v2/other/blobs/uploads/?mount=$BIG&from=app"
check "mount the big layer into other" 201 "$STATUS"
push_blob other "$T/third" >/dev/null

"$BERTH" fsck --config "$T/c.yaml" >"$T/fsck.out" 2>&1
check "fsck of a sound store" 0 "$?"
grep -q "checked 4 blobs ($((12 * 1024 * 1024 + 5 + 30000 + 20000 + $(stat -c %s "$T/cfg"))) bytes), 2 manifests: 0 problems" \
    "$T/fsck.out" && ok || fail "fsck output: $(cat "$T/fsck.out")"

"$BERTH" du --config "$T/c.yaml" >"$T/du.out" 2>&1
check "du" 0 "$?"
# other: 20000 bytes alone (19.5 KiB), the 12 MiB layer shared; 2 blobs
grep -qE "^ +19\.5 KiB +12\.0 MiB +2  other$" "$T/du.out" && ok || fail "du other: $(cat "$T/du.out")"
grep -qE "^ +[0-9.]+ KiB +12\.0 MiB +[0-9]+  app$" "$T/du.out" && ok || fail "du app: $(cat "$T/du.out")"
grep -q "^total 12\.0 MiB$" "$T/du.out" && ok || fail "du total: $(cat "$T/du.out")"

# damage: the small layer's object gets other bytes, the config's object goes
head -c 30000 /dev/urandom >"$T/other-bytes"
check "overwrite an object" 200 "$(s3 PUT "$(key "$SMALL")" --data-binary "@$T/other-bytes")"
check "delete an object" 204 "$(s3 DELETE "$(key "$CFG")")"
"$BERTH" fsck --config "$T/c.yaml" >"$T/fsck.out" 2>&1
check "fsck finds the damage" 1 "$?"
grep -q "^corrupt .*$SMALL: its bytes (30000) have digest" "$T/fsck.out" && ok ||
    fail "the corrupt object: $(cat "$T/fsck.out")"
grep -q "^missing *app@$CFG: linked, but its bytes are not in the blob backend" "$T/fsck.out" && ok ||
    fail "the missing object: $(cat "$T/fsck.out")"
grep -q "^missing *app@$CFG: manifest .* references config $CFG, which is missing" "$T/fsck.out" && ok ||
    fail "the manifests that need it: $(cat "$T/fsck.out")"
grep -q "^missing *app@$SMALL: manifest .* references layer $SMALL, which is corrupt" "$T/fsck.out" && ok ||
    fail "the manifest that needs the corrupt one: $(cat "$T/fsck.out")"
if grep -q "$BIG" "$T/fsck.out"; then fail "the sound layer reported: $(cat "$T/fsck.out")"; else ok; fi
"$BERTH" fsck --config "$T/c.yaml" --repair >"$T/out" 2>&1
check "fsck --repair over S3 is refused" 2 "$?"
grep -q "fs store only" "$T/out" && ok || fail "--repair says: $(cat "$T/out")"
if server_alive; then ok; else fail "the server died"; fi
finish
