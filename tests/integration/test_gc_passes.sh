#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Garbage collection frees in one pass what its dry run announced: an image mounted into three
# repositories and deleted in all three is freed by one run (removing one link changes the
# inode's ctime, which must not restart the grace period of the other links). An offline gc (it holds the store's lock: no push is in flight) frees deleted
# content at once, without waiting for the grace period. (The server's online gc runs the same
# berth_store_gc(), so the one-pass property holds there too.)
. "$(dirname "$0")/lib.sh"
ROOT=$BERTH_TMP/root
T=$BERTH_TMP

printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$T/config"
head -c 200000 /dev/urandom >"$T/layer"
make_manifest "$T/config" "$T/layer" "$T/m"
M=$(sha256_file "$T/m")
L=$(sha256_file "$T/layer")

# push the image into `one`, mount it into two and three, then delete it everywhere
push_shared() {
    push_blob one "$T/config" >/dev/null
    push_blob one "$T/layer" >/dev/null
    for r in one two three; do
        if [ "$r" != one ]; then
            for d in $(sha256_file "$T/config") "$L"; do
                curl -s -o /dev/null -X POST "$URL/v2/$r/blobs/uploads/?mount=$d&from=one"
            done
        fi
        req PUT "/v2/$r/manifests/v1" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
            --data-binary "@$T/m"
        check "push into $r" 201 "$STATUS"
    done
    for r in one two three; do
        req DELETE "/v2/$r/manifests/$M"
        check "delete in $r" 202 "$STATUS"
    done
}

# freed BYTES from a gc summary line
freed() {
    sed -n 's/.*pool blobs (\([^)]*\)).*/\1/p' "$1"
}

start_server
push_shared
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
sleep 2.2 # older than a grace of 2s

"$BERTH" gc --root "$ROOT" --grace 2s --dry-run >"$T/dry.out" 2>&1
check "dry run" 0 "$?"
DRY=$(freed "$T/dry.out")
"$BERTH" gc --root "$ROOT" --grace 2s >"$T/gc1.out" 2>&1
check "gc" 0 "$?"
check "one pass frees what the dry run announced" "$DRY" "$(freed "$T/gc1.out")"
test ! -e "$ROOT/_berth/blobs/sha256/${L#sha256:}" && ok ||
    fail "the shared layer is still in the pool after one pass: $(cat "$T/gc1.out")"
"$BERTH" gc --root "$ROOT" --grace 2s >"$T/gc2.out" 2>&1
check "a second pass finds nothing" "0 B" "$(freed "$T/gc2.out")"

# offline, no grace needed: deleted content goes at once
start_server
push_shared
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
"$BERTH" gc --root "$ROOT" >"$T/gc3.out" 2>&1
check "offline gc right after the delete" 0 "$?"
test ! -e "$ROOT/_berth/blobs/sha256/${L#sha256:}" && ok ||
    fail "offline gc kept deleted content: $(cat "$T/gc3.out")"

finish
