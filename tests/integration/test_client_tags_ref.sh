#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `berth tags` lists a repository: a reference with a tag or a digest is a usage error (exit 2)
# that says so, instead of a listing that silently ignores the tag (skopeo list-tags refuses it
# too); `HOST:PORT` alone (docker reads it as Docker Hub's library/HOST, tag PORT) points to
# `berth catalog`. A reference without a tag still lists.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
start_server
MT=application/vnd.oci.image.manifest.v1+json
echo '{}' >"$T/c"
echo layer >"$T/l"
push_blob t/app "$T/c" >/dev/null
push_blob t/app "$T/l" >/dev/null
make_manifest "$T/c" "$T/l" "$T/m"
curl -s -o /dev/null -X PUT --data-binary "@$T/m" -H "Content-Type: $MT" "$URL/v2/t/app/manifests/v1"
d=$(sha256_file "$T/m")

"$BERTH" tags "$HOSTPORT/t/app" >"$T/out" 2>"$T/err"
check "tags of the repository" "0 v1" "$? $(cat "$T/out")"

"$BERTH" tags "$HOSTPORT/t/app:v1" >"$T/out" 2>"$T/err"
check "a tagged reference: usage error" 2 "$?"
check "nothing listed" "" "$(cat "$T/out")"
check "says why" "berth tags: $HOSTPORT/t/app:v1: names a tag; tags lists a repository: berth tags $HOSTPORT/t/app" \
    "$(cat "$T/err")"

"$BERTH" tags "docker://$HOSTPORT/t/app@$d" >"$T/out" 2>"$T/err"
check "a reference by digest: usage error" 2 "$?"
check "says a digest" 1 "$(grep -c 'names a digest; tags lists a repository' "$T/err")"

"$BERTH" tags "$HOSTPORT" >"$T/out" 2>"$T/err"
check "HOST:PORT alone: usage error" 2 "$?"
check "points to catalog" 1 "$(grep -c "berth catalog $HOSTPORT)" "$T/err")"
finish
