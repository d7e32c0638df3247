#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A small blob (at most 16 KiB) is served from memory: its headers and body go out in one
# send, not a send of the headers and a sendfile(2) of the body (issue 14, blob GET); a larger
# one still goes out with sendfile. Whole and ranged GETs give the stored bytes. Needs strace
# (attached to the server by PID, to see which calls send the bodies).
. "$(dirname "$0")/lib.sh"
command -v strace >/dev/null || { echo "strace is needed" >&2; exit 1; }
start_server --quiet
T=$BERTH_TMP
N=small/app
head -c 4096 /dev/urandom >"$T/small"
head -c 65536 /dev/urandom >"$T/large"
DS=$(push_blob "$N" "$T/small")
DL=$(push_blob "$N" "$T/large")

# trace the server while one GET of each runs
trace() { # OUT CMD...
    local out=$1 spid
    shift
    strace -f -qq -e trace=sendfile,sendto,sendmsg,writev,write -o "$out" -p "$BERTH_PID" &
    spid=$!
    sleep 0.5
    "$@"
    sleep 0.2
    kill "$spid"
    wait "$spid" 2>/dev/null
}
trace "$T/small.trace" curl -s -o "$T/got_small" "$URL/v2/$N/blobs/$DS"
check "small blob: bytes" "$DS" "$(sha256_file "$T/got_small")"
check "small blob: no sendfile" 0 "$(grep -c '^[0-9]* *sendfile' "$T/small.trace")"
check "small blob: sent at all" 1 "$(grep -cE 'send(to|msg)|writev' "$T/small.trace" | awk '{print ($1 > 0)}')"
trace "$T/large.trace" curl -s -o "$T/got_large" "$URL/v2/$N/blobs/$DL"
check "large blob: bytes" "$DL" "$(sha256_file "$T/got_large")"
check "large blob: sendfile" 1 "$(grep -c 'sendfile' "$T/large.trace" | awk '{print ($1 > 0)}')"

# ranges of a small blob
code=$(curl -s -o "$T/part" -w '%{http_code}' -H 'Range: bytes=100-1123' "$URL/v2/$N/blobs/$DS")
check "small blob range: 206" 206 "$code"
check "small blob range: bytes" "$(tail -c +101 "$T/small" | head -c 1024 | sha256sum)" \
    "$(sha256sum <"$T/part")"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Range: bytes=5000-' "$URL/v2/$N/blobs/$DS")
check "small blob range past the end: 416" 416 "$code"
code=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -I "$URL/v2/$N/blobs/$DS")
check "small blob HEAD" "200 0" "$code"
finish
