#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache streams a cold blob to the first and every waiting client while it is
# fetched, written and verified (the tests' fault proxy sends half a 64 MiB blob, then stalls):
# the clients have bytes before the upstream has sent the rest; all end with the right bytes
# from one upstream request. When the bytes fail their digest (the last byte flipped), the
# clients got bytes but never a complete response (the connection closes before the last byte)
# and nothing is stored.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

T=$BERTH_TMP
MIB=$((1024 * 1024))
start_upstream up
start_fault "$up_PORT"
UP=http://127.0.0.1:$up_PORT
write_proxy_config "$T/cache.yaml" up.example "http://127.0.0.1:$FAULT_PORT"
echo "      timeout: 10s" >>"$T/cache.yaml"
start_server --config "$T/cache.yaml"

# pull_bg TAG PATH: a GET in the background into $T/TAG.body, its curl exit code to $T/TAG.rc
pull_bg() {
    (
        curl -s -o "$T/$1.body" -w '%{http_code}' "$URL$2" >"$T/$1.status"
        echo $? >"$T/$1.rc"
    ) &
    PULL_PID=$!
}
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

# ---- a good blob: bytes flow while the upstream stalls, two clients, one upstream request ----
push_image "$UP" lib/big v1 $((64 * MIB))
BIG=$IMG_LAYER_DIGEST
fault_mode stall 4
: >"$FAULT_LOG"
pull_bg first "/v2/up.example/lib/big/blobs/$BIG"
p1=$PULL_PID
sleep 1
pull_bg second "/v2/up.example/lib/big/blobs/$BIG"
p2=$PULL_PID
sleep 1.5
# the upstream has sent half the blob and waits: the clients must have some of it already
a=$(size_of "$T/first.body") b=$(size_of "$T/second.body")
[ "$a" -gt 0 ] && [ "$a" -lt $((64 * MIB)) ] && ok ||
    fail "the first client had $a bytes while the upstream stalled halfway"
[ "$b" -gt 0 ] && [ "$b" -lt $((64 * MIB)) ] && ok ||
    fail "a client that joined had $b bytes while the upstream stalled halfway"
wait "$p1" "$p2"
check "first client: 200" "0 200" "$(cat "$T/first.rc") $(cat "$T/first.status")"
check "first client: the blob's bytes" "$BIG" "$(sha256_file "$T/first.body")"
check "joining client: 200" "0 200" "$(cat "$T/second.rc") $(cat "$T/second.status")"
check "joining client: the blob's bytes" "$BIG" "$(sha256_file "$T/second.body")"
check "one upstream request" 1 "$(upstream_requests "/v2/lib/big/blobs/$BIG")"
req GET "/v2/up.example/lib/big/blobs/$BIG"
check "then served from the store" "$BIG" "$(sha256_file "$BODY")"
check "without asking the upstream" 1 "$(upstream_requests "/v2/lib/big/blobs/$BIG")"
rm -f "$T/first.body" "$T/second.body" "$BODY"

# ---- bytes that fail their digest: streamed, but never a complete response; not stored ----
push_image "$UP" lib/big bad $((64 * MIB))
BAD=$IMG_LAYER_DIGEST
fault_mode stall 3 corrupt_last
pull_bg bad1 "/v2/up.example/lib/big/blobs/$BAD"
p1=$PULL_PID
sleep 1
pull_bg bad2 "/v2/up.example/lib/big/blobs/$BAD"
p2=$PULL_PID
sleep 1
a=$(size_of "$T/bad1.body")
[ "$a" -gt 0 ] && ok || fail "the client had no bytes while the upstream stalled"
wait "$p1" "$p2"
for c in bad1 bad2; do
    rc=$(cat "$T/$c.rc") st=$(cat "$T/$c.status") n=$(size_of "$T/$c.body")
    # a complete success is curl exit 0 with a 200: never for these bytes
    { [ "$rc" != 0 ] || [ "$st" != 200 ]; } && [ "$n" -lt $((64 * MIB)) ] && ok ||
        fail "$c: a corrupted blob ended as curl exit $rc, status $st, $n of $((64 * MIB)) bytes"
done
fault_mode 503
head_req "/v2/up.example/lib/big/blobs/$BAD"
check "the corrupted blob was not stored" 503 "$STATUS"
if [ "${BERTH_TEST_STORAGE:-}" != s3pg ] &&
    find "$T/root" -type f -name "${BAD#sha256:}" | grep -q .; then
    fail "the corrupted blob is on disk"
else
    ok
fi
fault_mode pass
req GET "/v2/up.example/lib/big/blobs/$BAD"
check "a good upstream then serves it" "$BAD" "$(sha256_file "$BODY")"
rm -f "$T/bad1.body" "$T/bad2.body" "$BODY"

# ---- a cold blob's bytes are written once: the clients read the upload session's own file ----
# (before: also a spool file, so the cache wrote every fetched byte twice). wchar counts what
# the process passed to write()/pwrite() (not what it sends to sockets).
wchar() { awk '$1 == "wchar:" { print $2 }' "/proc/$BERTH_PID/io"; }
push_image "$UP" lib/big once $((64 * MIB))
ONCE=$IMG_LAYER_DIGEST
w0=$(wchar)
pull_bg once1 "/v2/up.example/lib/big/blobs/$ONCE"
p1=$PULL_PID
pull_bg once2 "/v2/up.example/lib/big/blobs/$ONCE"
p2=$PULL_PID
wait "$p1" "$p2"
w1=$(wchar)
check "written once: both clients: 200" "0 200 0 200" \
    "$(cat "$T/once1.rc") $(cat "$T/once1.status") $(cat "$T/once2.rc") $(cat "$T/once2.status")"
check "written once: the blob's bytes" "$ONCE $ONCE" \
    "$(sha256_file "$T/once1.body") $(sha256_file "$T/once2.body")"
written=$((w1 - w0))
[ "$written" -ge $((64 * MIB)) ] && ok ||
    fail "the cache wrote $written bytes for a 64 MiB blob it stored (wchar does not count?)"
[ "$written" -lt $((64 * MIB * 3 / 2)) ] && ok ||
    fail "the cache wrote $written bytes to files for a cold 64 MiB blob (more than once)"
finish
