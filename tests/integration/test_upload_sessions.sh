#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Upload sessions are bounded and reaped: one file each; over limits.upload_sessions_per_client
# a POST gets 429 TOOMANYREQUESTS; sessions idle past limits.upload_idle_ttl are removed by the
# running server; berth du counts them. A session of an earlier run is hashed again without
# stalling the rest of the registry.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
ROOT=$T/root
PORT=$(free_port)
N=sess/app

new_session() {
    curl -s -o /dev/null -D - -X POST "$URL/v2/$1/blobs/uploads/" -w '%{http_code}' |
        tr -d '\r' | awk '/^[Ll]ocation:/ {print $2} /^[0-9][0-9][0-9]$/ {print}'
}

# ---- limits and reaping -----------------------------------------------------------------------
cat >"$T/limits.yaml" <<Y
limits:
  upload_sessions_per_client: 3
  upload_sessions_per_repository: 5
  upload_sessions: 100
  upload_idle_ttl: 2s
Y
ops_start http "$PORT" --config "$T/limits.yaml"
for i in 1 2 3; do
    req POST "/v2/$N/blobs/uploads/"
    check "session $i" 202 "$STATUS"
done
FIRST=$(header Location)
req POST "/v2/$N/blobs/uploads/"
expect_error "a 4th session of the same client" 429 TOOMANYREQUESTS
req POST "/v2/other/blobs/uploads/?digest=sha256:$(printf '%064d' 0)" --data-binary 'x'
expect_error "a monolithic upload counts too" 429 TOOMANYREQUESTS
files=$(find "$ROOT/_berth/uploads" -mindepth 1 | wc -l)
check "two files per session (its bytes and its record)" 6 "$files"
check "no directories" 0 "$(find "$ROOT/_berth/uploads" -mindepth 1 -type d | wc -l)"
# idle past 2 s: reaped by the running server (no gc configured)
sleep 4
req GET "$FIRST"
expect_error "an idle session is gone" 404 BLOB_UPLOAD_UNKNOWN
check "all reaped" 0 "$(find "$ROOT/_berth/uploads" -mindepth 1 | wc -l)"
if grep -q "idle upload sessions removed" "$BERTH_LOG"; then ok; else fail "reaping not logged"; fi
req POST "/v2/$N/blobs/uploads/"
check "room again" 202 "$STATUS"
LOC=$(header Location)
req PATCH "$LOC" --data-binary 'abc'
check "a chunk" 202 "$STATUS"
ops_stop
"$BERTH" du --root "$ROOT" >"$T/du.out" 2>&1
check "du" 0 "$?"
if grep -q "^1 upload sessions, 3 B$" "$T/du.out"; then ok; else
    fail "du reports the session: $(cat "$T/du.out")"
fi

# ---- bytes a crash left past what was acknowledged are not part of the session ----------------
ops_start http "$PORT"
ID=${LOC##*/}
ops_stop
f=$ROOT/_berth/uploads/$ID
truncate -s 1G "$f"
ops_start http "$PORT"
req GET "/v2/$N/blobs/uploads/$ID"
check "the session is what was acknowledged" "0-2" "$(header Range)"
req PUT "/v2/$N/blobs/uploads/$ID?digest=sha256:$(printf abc | sha256sum | cut -c1-64)"
check "and commits as such" 201 "$STATUS"
ops_stop
finish
