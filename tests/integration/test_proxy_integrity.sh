#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache's integrity and single flight, with large blobs (the tests' fault proxy
# in front of a second berth serve, counting what reaches the upstream): 20 concurrent pulls of
# one cold 64 MiB blob make exactly one upstream request and all get the right bytes; a blob
# the upstream corrupts (a byte in the middle, the very last byte) or cuts short never reaches
# a client as a successful response (a non-2xx, or a body cut before its Content-Length), also
# for concurrent pulls, and is never stored; a later good upstream serves it fine.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

T=$BERTH_TMP
MIB=$((1024 * 1024))
start_upstream up
start_fault "$up_PORT"
UP=http://127.0.0.1:$up_PORT
write_proxy_config "$T/cache.yaml" up.example "http://127.0.0.1:$FAULT_PORT"
echo "      timeout: 5s" >>"$T/cache.yaml"
start_server --config "$T/cache.yaml"

# pull_many N TAG PATH: N concurrent GETs of PATH; each's curl exit code, status and the SHA-256
# of what it received go to $T/TAG.I.{rc,status,sum} (bodies are not kept: 20 x 64 MiB)
pull_many() {
    local n=$1 tag=$2 path=$3 i pids=()
    for i in $(seq 1 "$n"); do
        (
            curl -s -w '%{http_code}' -o >(sha256sum | cut -d' ' -f1 >"$T/$tag.$i.sum") \
                "$URL$path" >"$T/$tag.$i.status"
            echo $? >"$T/$tag.$i.rc"
        ) &
        pids+=($!)
    done
    wait "${pids[@]}"
    sleep 0.2 # the process substitutions write their sums
}

# successes N TAG DIGEST: how many pulls got a complete 200 with the bytes of DIGEST
successes() {
    local n=$1 tag=$2 d=${3#sha256:} i good=0
    for i in $(seq 1 "$n"); do
        if [ "$(cat "$T/$tag.$i.rc")" = 0 ] && [ "$(cat "$T/$tag.$i.status")" = 200 ] &&
            [ "$(cat "$T/$tag.$i.sum")" = "$d" ]; then
            good=$((good + 1))
        fi
    done
    echo "$good"
}

# completed N TAG: how many pulls ended as a complete 2xx response (curl exit 0, status 2xx)
completed() {
    local n=$1 tag=$2 i c=0
    for i in $(seq 1 "$n"); do
        if [ "$(cat "$T/$tag.$i.rc")" = 0 ] && case $(cat "$T/$tag.$i.status") in 2*) true ;; *) false ;; esac; then
            c=$((c + 1))
        fi
    done
    echo "$c"
}

# not_stored DIGEST: the blob is nowhere in the cache (asked with the upstream answering 503)
not_stored() {
    local what=$1 d=$2
    fault_mode 503
    head_req "/v2/up.example/lib/big/blobs/$d"
    check "$what: not stored (HEAD with the upstream down)" 503 "$STATUS"
    if [ "${BERTH_TEST_STORAGE:-}" != s3pg ] &&
        find "$T/root" -type f -name "${d#sha256:}" | grep -q .; then
        fail "$what: the blob is on disk"
    else
        ok
    fi
}

# ---- 20 concurrent pulls of one cold 64 MiB blob: one upstream request, all correct ----
push_image "$UP" lib/big v1 $((64 * MIB))
BIG=$IMG_LAYER_DIGEST
: >"$FAULT_LOG"
N=20
pull_many $N cold "/v2/up.example/lib/big/blobs/$BIG"
check "every one of $N concurrent pulls got the 64 MiB blob" $N "$(successes $N cold "$BIG")"
check "$N concurrent pulls of a cold 64 MiB blob: exactly one upstream request" 1 \
    "$(upstream_requests "/v2/lib/big/blobs/$BIG")"
pull_many 3 warm "/v2/up.example/lib/big/blobs/$BIG"
check "warm pulls served" 3 "$(successes 3 warm "$BIG")"
check "warm pulls ask the upstream nothing" 1 "$(upstream_requests "/v2/lib/big/blobs/$BIG")"

# ---- corrupted upstream bytes: never a successful response, never stored ----
for mode in corrupt corrupt_last close; do
    push_image "$UP" lib/big "$mode" $((64 * MIB))
    BAD=$IMG_LAYER_DIGEST
    fault_mode "$mode" 1 # answered after 1 s: the pulls meet
    : >"$FAULT_LOG"
    pull_many 5 "$mode" "/v2/up.example/lib/big/blobs/$BAD"
    check "$mode: no client got a complete successful response" 0 "$(completed 5 "$mode")"
    not_stored "$mode" "$BAD"
    fault_mode pass
    pull_many 1 "$mode.good" "/v2/up.example/lib/big/blobs/$BAD"
    check "$mode: a later good upstream serves the blob" 1 "$(successes 1 "$mode.good" "$BAD")"
    asked=$(upstream_requests "/v2/lib/big/blobs/$BAD")
    req GET "/v2/up.example/lib/big/blobs/$BAD" -r 0-9
    check "$mode: then it is stored (a range of it)" 206 "$STATUS"
    check "$mode: served without asking the upstream" "$asked" \
        "$(upstream_requests "/v2/lib/big/blobs/$BAD")"
done

# ---- a small corrupted blob (one read's worth): the same ----
push_image "$UP" lib/big small 1000
SMALL=$IMG_LAYER_DIGEST
fault_mode corrupt_last
pull_many 3 small "/v2/up.example/lib/big/blobs/$SMALL"
check "a small corrupted blob: no complete successful response" 0 "$(completed 3 small)"
not_stored "small corrupt" "$SMALL"
fault_mode pass
pull_many 1 small.good "/v2/up.example/lib/big/blobs/$SMALL"
check "the small blob from a good upstream" 1 "$(successes 1 small.good "$SMALL")"
finish
