#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant, where the sessions are
# counted in PostgreSQL)
# The upload-session limit does what its name says: with limits.concurrent_uploads: 3 (the old
# name of limits.upload_sessions), three POSTs open sessions and the fourth is refused with 429
# TOOMANYREQUESTS and a Retry-After until the oldest session expires and is reaped, while
# berth_upload_sessions_open says 3; a cancelled, a committed and an expired session each give
# their slot back, the expired one by the time the Retry-After said.
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
# a slot frees when the oldest session has been idle for limits.upload_idle_ttl (6s) and the
# reaper (every ttl/2: 3s) has run: Retry-After says so, not "1"
ra=$(header Retry-After)
if [ "$ra" -ge 4 ] 2>/dev/null && [ "$ra" -le 9 ]; then ok; else
    fail "Retry-After: expected 4..9 (until the oldest session expires, plus a reaper period), got '$ra'"
fi
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

# full again; after the Retry-After it gives, the oldest session (third) is reaped: a slot
post
check "full again after the commit" 429 "$STATUS"
ra=$(header Retry-After)
if [ "$ra" -ge 1 ] && [ "$ra" -le 9 ]; then ok; else fail "second Retry-After: got '$ra'"; fi
sleep "$ra"
post
# (a reaper pass that waited behind a busy disk's syncs: the client is told to wait again; on a
# quiet machine the first wait is enough)
for _ in 1 2 3; do
    [ "$STATUS" = 429 ] || break
    sleep "$(header Retry-After)"
    post
done
check "POST after waiting the Retry-After" 202 "$STATUS"
req GET "$third"
check "the oldest session was reaped" 404 "$STATUS"

# expired: idle past limits.upload_idle_ttl (6s), reaped by the server (every ttl/2): 9 s on
# a quiet machine; polled up to 40 s, since the reaper's pass waits behind the storage walk and
# the syncs of a machine that runs four tests at once
sleep 6
for _ in $(seq 68); do
    curl -s "$URL/metrics" -o "$T/m3"
    [ "$(M value "$T/m3" berth_upload_sessions_open)" = 0 ] && break
    sleep 0.5
done
check "expired sessions reaped" 0 "$(M value "$T/m3" berth_upload_sessions_open)"
post
check "POST after expiry" 202 "$STATUS"

finish
