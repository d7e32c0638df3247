#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant, where the sessions are
# counted in PostgreSQL)
# The upload-session limit does what its name says: with limits.concurrent_uploads: 3 (the old
# name of limits.upload_sessions), three POSTs open sessions and the fourth is refused with 429
# TOOMANYREQUESTS and Retry-After while berth_upload_sessions_open says 3; a cancelled, a
# committed and an expired session each give their slot back.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
M() { python3 "$(dirname "$0")/ops_metrics.py" "$@"; }
T=$BERTH_TMP
cat >"$T/cfg.yaml" <<Y
limits:
  concurrent_uploads: 3
  upload_idle_ttl: 6s
Y
start_server --config "$T/cfg.yaml"

post() {
    req POST /v2/s/app/blobs/uploads/
    LOC=$(header Location)
}
post
check "first POST" 202 "$STATUS"
first=$LOC
post
check "second POST" 202 "$STATUS"
second=$LOC
post
check "third POST" 202 "$STATUS"
third=$LOC
post
expect_error "fourth POST over the limit of 3" 429 TOOMANYREQUESTS
check "Retry-After" 1 "$(header Retry-After)"
curl -s "$URL/metrics" -o "$T/m1"
check "three sessions open" 3 "$(M value "$T/m1" berth_upload_sessions_open)"
check "no request streaming" 0 "$(M value "$T/m1" berth_upload_requests_in_flight)"

# cancelled: the slot is free again
req DELETE "$first"
check "cancel" 204 "$STATUS"
post
check "POST after a cancel" 202 "$STATUS"
post
check "full again" 429 "$STATUS"

# committed: its slot is free again
head -c 1000 /dev/urandom >"$T/b"
d=$(sha256_file "$T/b")
sep='?'
case $second in *\?*) sep='&' ;; esac
req PUT "$second${sep}digest=$d" --data-binary "@$T/b" -H 'Content-Type: application/octet-stream'
check "commit" 201 "$STATUS"
curl -s "$URL/metrics" -o "$T/m2"
check "two sessions open after the commit" 2 "$(M value "$T/m2" berth_upload_sessions_open)"
post
check "POST after a commit" 202 "$STATUS"

# expired: idle past limits.upload_idle_ttl (6s), reaped by the server (every ttl/2)
sleep 9.5
curl -s "$URL/metrics" -o "$T/m3"
check "expired sessions reaped" 0 "$(M value "$T/m3" berth_upload_sessions_open)"
post
check "POST after expiry" 202 "$STATUS"
req GET "$third"
check "an expired session is gone" 404 "$STATUS"

finish
