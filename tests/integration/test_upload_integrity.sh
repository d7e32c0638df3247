#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Upload sessions under failure: a short write on a full disk (a 512 KiB tmpfs root) must not
# leave bytes the session did not count, so a resumed upload can never commit a blob whose
# stored bytes differ from its digest; a full disk is 507 (not the client's fault), drops what
# the refused request wrote, and pulls and manifest pushes keep working. A refused PATCH (Content-Range and body disagree) leaves the
# session where it was. Error messages name no server path.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
ROOT=$T/root
mkdir -p "$ROOT"
MOUNTED=""
if mount -t tmpfs -o size=512k tmpfs "$ROOT" 2>/dev/null; then
    MOUNTED=1
fi
teardown() {
    if [ -n "$BERTH_PID" ]; then
        kill "$BERTH_PID" 2>/dev/null
        wait "$BERTH_PID" 2>/dev/null
        BERTH_PID=""
    fi
    if [ -n "$MOUNTED" ]; then
        umount "$ROOT"
    fi
    cleanup
}
trap teardown EXIT

if [ -z "$MOUNTED" ]; then
    echo "cannot mount a tmpfs (needs root): this test cannot fill a disk" >&2
    exit 77
fi
start_server

N=int/app
# a small image first, to pull and retag while the disk is full
printf '{"architecture":"amd64","os":"linux"}' >"$T/config"
head -c 3000 /dev/urandom >"$T/layer"
CD=$(push_blob $N "$T/config")
LD=$(push_blob $N "$T/layer")
make_manifest "$T/config" "$T/layer" "$T/manifest"
req PUT "/v2/$N/manifests/v1" --data-binary "@$T/manifest" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json'
check "manifest pushed" 201 "$STATUS"

# ---- a refused PATCH changes nothing --------------------------------------------------------
req POST "/v2/$N/blobs/uploads/"
LOC=$(header Location)
req PATCH "$LOC" --data-binary '12345' -H 'Content-Range: 0-9'
check "short body for its Content-Range" 416 "$STATUS"
check "refused chunk: Range unchanged" "0-0" "$(header Range)"
req GET "$LOC"
check "session still empty" "0-0" "$(header Range)"
req PATCH "$LOC" --data-binary '0123456789' -H 'Content-Range: 0-9'
check "first 10 bytes" 202 "$STATUS"
req PATCH "$LOC" --data-binary 'abcdefghij' -H 'Content-Range: 10-999'
check "10 bytes for 990" 416 "$STATUS"
req GET "$LOC"
check "session still at 10 bytes" "0-9" "$(header Range)"
req PATCH "$LOC" --data-binary 'abcdefghij-and-more' -H 'Content-Range: 10-19'
check "body longer than its Content-Range" 416 "$STATUS"
req GET "$LOC"
check "session still at 10 bytes after a long body" "0-9" "$(header Range)"
printf '0123456789klmnopqrst' >"$T/twenty"
req PUT "$LOC?digest=sha256:$(printf '%064d' 0)" --data-binary 'klmnopqrst'
expect_error "PUT with a wrong digest" 400 DIGEST_INVALID
req GET "$LOC"
check "wrong digest: session unchanged" "0-9" "$(header Range)"
D20=$(sha256_file "$T/twenty")
req PUT "$LOC?digest=$D20" --data-binary 'klmnopqrst'
check "then closed with the right bytes" 201 "$STATUS"
curl -s -o "$T/got20" "$URL/v2/$N/blobs/$D20"
check "stored bytes" "$D20" "$(sha256_file "$T/got20")"

# ---- a short write on a full disk ---------------------------------------------------------
head -c 8192 /dev/urandom >"$T/first"
head -c 204800 /dev/urandom >"$T/rest"
cat "$T/first" "$T/rest" >"$T/whole"
WD=$(sha256_file "$T/whole")
req POST "/v2/$N/blobs/uploads/"
LOC=$(header Location)
req PATCH "$LOC" --data-binary "@$T/first" -H 'Content-Range: 0-8191'
check "first 8 KiB" 202 "$STATUS"
# fill the disk, then leave 40 KiB free
dd if=/dev/zero of="$ROOT/filler" bs=4096 2>/dev/null
truncate -s -40960 "$ROOT/filler"
req PATCH "$LOC" --data-binary "@$T/rest" -H "Content-Range: 8192-$((8192 + 204800 - 1))"
expect_error "chunk on a full disk" 507 UNKNOWN
range=$(header Range)
check "full disk: the session keeps what it had" "0-8191" "$range"
if grep -q "$T" "$BODY"; then fail "error names a server path: $(cat "$BODY")"; else ok; fi
# pulls and a manifest-only push (a retag) work while the disk is still full
check "pull manifest on a full disk" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/$N/manifests/v1")"
check "pull blob on a full disk" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/$N/blobs/$LD")"
req PUT "/v2/$N/manifests/retag" --data-binary "@$T/manifest" \
    -H 'Content-Type: application/vnd.oci.image.manifest.v1+json'
check "retag on a full disk" 201 "$STATUS"
# the client resumes where the server said it stands, and closes
rm -f "$ROOT/filler"
end=${range#0-}
tail -c +$((end + 2)) "$T/whole" >"$T/resume"
size=$(stat -c %s "$T/whole")
req PATCH "$LOC" --data-binary "@$T/resume" -H "Content-Range: $((end + 1))-$((size - 1))"
check "resumed chunk" 202 "$STATUS"
req PUT "$LOC?digest=$WD"
if [ "$STATUS" = 201 ]; then
    curl -s -o "$T/got" "$URL/v2/$N/blobs/$WD"
    check "an acknowledged blob holds the bytes of its digest" "$WD" "$(sha256_file "$T/got")"
    check "and its length" "$size" "$(stat -c %s "$T/got")"
else
    fail "resumed upload not committed: $STATUS $(cat "$BODY")"
fi
# a monolithic POST that does not fit: 507, nothing left behind
dd if=/dev/zero of="$ROOT/filler" bs=4096 2>/dev/null
truncate -s -40960 "$ROOT/filler"
free_before=$(df -k --output=avail "$ROOT" | tail -n 1)
sessions_before=$(find "$ROOT/_berth/uploads" -mindepth 1 | wc -l)
req POST "/v2/$N/blobs/uploads/?digest=$WD" --data-binary "@$T/rest"
expect_error "monolithic POST on a full disk" 507 UNKNOWN
check "no session to resume" "" "$(header Location)"
check "no session left" "$sessions_before" "$(find "$ROOT/_berth/uploads" -mindepth 1 | wc -l)"
free_after=$(df -k --output=avail "$ROOT" | tail -n 1)
check "the refused POST left no bytes" "$free_before" "$free_after"
rm -f "$ROOT/filler"

# ---- no server paths in errors ----------------------------------------------------------------
# a blob link and an index.json the server cannot open (a symbolic link to itself: root reads
# any file whatever its mode); the answers must not name a server path
B=$ROOT/int/app/blobs/sha256/${LD#sha256:}
mv "$B" "$T/saved-blob"
ln -s "$B" "$B"
req GET "/v2/$N/blobs/$LD"
check "unopenable blob status" 500 "$STATUS"
check "unopenable blob code" UNKNOWN "$(error_code)"
if grep -q "$T\|_berth\|/blobs/" "$BODY"; then fail "blob error names a path: $(cat "$BODY")"; else ok; fi
head_req "/v2/$N/blobs/$LD"
check "unstattable blob (HEAD)" 500 "$STATUS"
rm -f "$B"
mv "$T/saved-blob" "$B"
push_blob int/other "$T/config" >/dev/null
I=$ROOT/int/other/index.json
rm -f "$I"
ln -s "$I" "$I"
# the server reads a repository's index.json when it first uses it after a start
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
start_server
req GET "/v2/int/other/tags/list"
check "unreadable index.json" 500 "$STATUS"
if grep -q "$T\|_berth\|index.json" "$BODY"; then fail "index error names a path: $(cat "$BODY")"; else ok; fi
if grep -q "$ROOT" "$BERTH_LOG"; then ok; else fail "the log keeps the path"; fi
req GET "/v2/$N/blobs/sha256:$(printf '%064d' 7)"
expect_error "unknown blob" 404 BLOB_UNKNOWN
finish
