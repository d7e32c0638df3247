#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Routing errors, malformed HTTP written raw to the socket, 200 concurrent connections,
# Expect: 100-continue, the access log and a clean shutdown on SIGTERM.
. "$(dirname "$0")/lib.sh"
start_server

DIR=$(dirname "$0")
T=$BERTH_TMP
HOST=${HOSTPORT%:*}
PORT=${HOSTPORT##*:}

# --- routes and methods -------------------------------------------------------------------
req GET /nope
check "path outside /v2" 404 "$STATUS"
check "path outside /v2 code" UNSUPPORTED "$(error_code)"
req GET /v2/a/unknown/thing
expect_error "unknown endpoint" 404 UNSUPPORTED
req POST /v2/
expect_error "POST /v2/" 405 UNSUPPORTED
req PATCH /v2/a/manifests/v1
expect_error "PATCH manifest" 405 UNSUPPORTED
req PUT /v2/a/blobs/sha256:$(printf '%064d' 0) --data-binary x
expect_error "PUT blob" 405 UNSUPPORTED
req DELETE /v2/a/tags/list
expect_error "DELETE tags" 405 UNSUPPORTED
req BREW /v2/
expect_error "unknown method" 405 UNSUPPORTED
req GET "/v2/$(python3 -c 'print("a" * 300)')/tags/list"
expect_error "name over 255 characters" 400 NAME_INVALID
req GET "/v2/a/manifests/$(python3 -c 'print("t" * 200)')"
expect_error "GET of a tag over 128 characters (cannot exist)" 404 MANIFEST_UNKNOWN
req GET "/v2/a/manifests/$(python3 -c 'print("t" * 300)')"
expect_error "GET of a reference over 255 characters" 404 MANIFEST_UNKNOWN
req PUT "/v2/a/manifests/$(python3 -c 'print("t" * 200)')"
expect_error "PUT of a tag over 128 characters" 400 MANIFEST_INVALID
req GET "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e"
expect_error "unsupported digest algorithm" 400 DIGEST_INVALID
req GET /v2/a/blobs/uploads/
expect_error "GET on the uploads collection" 405 UNSUPPORTED
check "errors are JSON" "application/json" "$(header Content-Type)"
req GET /v2/a/blobs/uploads/some-unknown-id
expect_error "unknown upload session" 404 BLOB_UPLOAD_UNKNOWN

# --- keep-alive: body-less requests, answers and errors alike, keep the connection open --------
N=$(curl -sv -o /dev/null -o /dev/null -o /dev/null "$URL/v2/" "$URL/v2/a/manifests/none" \
    "$URL/v2/_catalog" 2>&1 | grep -c "Re-using existing connection")
check "connection reused for GETs" 2 "$N"

# --- Expect: 100-continue with a streamed blob -----------------------------------------------
head -c 3000000 /dev/urandom >"$T/big"
D=$(sha256_file "$T/big")
req POST "/v2/it/big/blobs/uploads/?digest=$D" --data-binary "@$T/big" -H 'Expect: 100-continue'
check "monolithic upload with 100-continue" 201 "$STATUS"
req GET "/v2/it/big/blobs/$D"
check "3 MB blob round trip" "$D" "$(sha256_file "$BODY")"

# --- malformed HTTP -----------------------------------------------------------------------
if python3 "$DIR/api_malformed.py" "$HOST" "$PORT" >"$T/malformed.out" 2>&1; then
    ok
else
    fail "malformed HTTP: $(tail -n 5 "$T/malformed.out")"
fi
server_alive && ok || fail "server died on malformed HTTP"

# --- 200 concurrent connections ---------------------------------------------------------------
if python3 "$DIR/api_concurrent.py" "$HOST" "$PORT" /v2/ 200 >"$T/conc.out" 2>&1; then
    ok
else
    fail "concurrent connections: $(cat "$T/conc.out")"
fi
server_alive && ok || fail "server died under 200 connections"

# --- access log and shutdown (only for a server this test started) ---------------------------
if [ -z "${BERTH_TEST_URL:-}" ]; then
    req GET /v2/it/big/tags/list?n=1
    sleep 0.2
    if grep -q "^GET /v2/it/big/tags/list?n=1 200 [0-9]* [0-9.]*ms$" "$BERTH_LOG"; then
        ok
    else
        fail "access log line missing: $(tail -n 3 "$BERTH_LOG")"
    fi
    kill -TERM "$BERTH_PID"
    for _ in $(seq 1 100); do
        kill -0 "$BERTH_PID" 2>/dev/null || break
        sleep 0.05
    done
    if kill -0 "$BERTH_PID" 2>/dev/null; then
        fail "server still running 5 s after SIGTERM"
    else
        wait "$BERTH_PID"
        check "exit status after SIGTERM" 0 "$?"
        BERTH_PID=""
    fi
    # restart on the same root: the blob is still there, and a second server on the root is refused
    start_server
    req GET "/v2/it/big/blobs/$D"
    check "blob survives a restart" 200 "$STATUS"
    # (over S3 + PostgreSQL any number of servers share the storage: that is the point)
    if [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
        ok
    elif "$BERTH" serve --listen 127.0.0.1:0 --root "$BERTH_TMP/root" 2>"$T/second.err"; then
        fail "a second server on the same root started"
    else
        ok
    fi
    if "$BERTH" serve --config x.toml 2>/dev/null; then
        fail "--config accepted"
    else
        ok
    fi
    "$BERTH" serve --help | grep -q -- "--listen" && ok || fail "serve --help"
fi

finish
