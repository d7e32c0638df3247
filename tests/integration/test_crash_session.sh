#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An upload session acknowledged by a 202 survives kill -9, also before it holds a byte: its
# record is durable at the POST's 202, its (empty) file need not be, and is made again when a
# crash lost it. Bytes acknowledged by a PATCH's 202 survive kill -9 and are the bytes committed.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ] || [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
    echo "skip: needs its own server on the filesystem"
    exit 77
fi
N=crash/session

crash() {
    kill -9 "$BERTH_PID"
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
    start_server
}

location() {
    tr -d '\r' <"$HDRS" | awk 'tolower($1) == "location:" {print $2}'
}

head -c 70000 /dev/urandom >"$BERTH_TMP/a"
head -c 30000 /dev/urandom >"$BERTH_TMP/b"
cat "$BERTH_TMP/a" "$BERTH_TMP/b" >"$BERTH_TMP/ab"
DIGEST=sha256:$(sha256sum "$BERTH_TMP/ab" | cut -d' ' -f1)

start_server
# a session of no bytes, its file lost by the crash (the POST does not sync it)
req POST "/v2/$N/blobs/uploads/"
check "POST" 202 "$STATUS"
LOC=$(location)
ID=${LOC##*/}
ID=${ID%%\?*}
crash
check "the empty session's file is on disk" yes "$([ -f "$BERTH_TMP/root/_berth/uploads/$ID" ] && echo yes)"
rm -f "$BERTH_TMP/root/_berth/uploads/$ID"
req GET "$LOC"
check "status of the empty session after kill -9" 204 "$STATUS"
req PATCH "$LOC" -H 'Content-Type: application/octet-stream' -H "Content-Range: 0-69999" \
    --data-binary @"$BERTH_TMP/a"
check "PATCH of the empty session after kill -9" 202 "$STATUS"
LOC=$(location)
crash
req GET "$LOC"
check "status after kill -9 following the PATCH's 202" "204 0-69999" \
    "$STATUS $(tr -d '\r' <"$HDRS" | awk 'tolower($1) == "range:" {print $2}')"
req PATCH "$LOC" -H 'Content-Type: application/octet-stream' -H "Content-Range: 70000-99999" \
    --data-binary @"$BERTH_TMP/b"
check "second PATCH" 202 "$STATUS"
LOC=$(location)
crash
case $LOC in *\?*) sep='&' ;; *) sep='?' ;; esac
req PUT "$LOC${sep}digest=$DIGEST"
check "PUT after kill -9" 201 "$STATUS"
crash
req GET "/v2/$N/blobs/$DIGEST"
check "the committed blob after kill -9" "200 $DIGEST" \
    "$STATUS sha256:$(sha256sum "$BERTH_TMP/body" | cut -d' ' -f1)"

# a session of no bytes whose file the crash kept: finished by a PUT with the whole body
req POST "/v2/$N/blobs/uploads/"
check "POST" 202 "$STATUS"
LOC=$(location)
crash
case $LOC in *\?*) sep='&' ;; *) sep='?' ;; esac
req PUT "$LOC${sep}digest=$DIGEST" -H 'Content-Type: application/octet-stream' \
    --data-binary @"$BERTH_TMP/ab"
check "PUT with the body after kill -9" 201 "$STATUS"
crash
req GET "/v2/$N/blobs/$DIGEST"
check "the blob after kill -9" "200 $DIGEST" \
    "$STATUS sha256:$(sha256sum "$BERTH_TMP/body" | cut -d' ' -f1)"
finish
