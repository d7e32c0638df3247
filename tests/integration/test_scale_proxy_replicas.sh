#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: rgw pg
# The pull-through cache over S3 + PostgreSQL with three replicas sharing one bucket prefix and
# one database, the same proxy.upstreams (issue 12: "replicas share one fetch per object"): an
# upstream berth serve (fs) behind the tests' fault proxy, which counts what reaches it and
# slows the fetches down so that they meet.
# - 9 concurrent pulls of one cold 16 MiB blob, 3 on each replica: exactly one upstream GET of
#   the blob, every client gets the right bytes.
# - 6 concurrent pulls of one cold tag, 2 on each replica: one HEAD and one GET of the manifest
#   at the upstream, every client gets the manifest.
# - the replica fetching a blob is killed (-9) in the middle of it: the replica waiting for it
#   (which fetched nothing meanwhile) takes over, and its client gets the right bytes.
# - the replica fetching a blob is frozen (SIGSTOP: its database session, and lock, stay): the
#   waiting replica waits no longer than the upstream's timeout (5 s), then fetches it itself.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/proxy_lib.sh"

scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }

T=$BERTH_TMP
MIB=$((1024 * 1024))
. "$(dirname "$0")/replicas_lib.sh"
cleanup_replicas() {
    kill_replicas
    proxy_cleanup
}
trap cleanup_replicas EXIT

start_upstream up
start_fault "$up_PORT"
UP=http://127.0.0.1:$up_PORT
write_proxy_config "$T/cache.yaml" up.example "http://127.0.0.1:$FAULT_PORT"
echo "      timeout: 5s" >>"$T/cache.yaml"
for i in 0 1 2; do
    start_replica "$i" --config "$T/cache.yaml"
done
# shellcheck disable=SC2034 # lib.sh's finish prints its tail on a failure
BERTH_LOG=${RLOG[0]}

# pull_bg I TAG PATH: a GET of PATH on replica I in the background (its PID in PULL_PIDS); its
# curl exit code, status and the SHA-256 of the body go to $T/TAG.{rc,status,sum}
PULL_PIDS=()
pull_bg() {
    (
        curl -s --max-time 60 -w '%{http_code}' -o "$T/$2.body" "$(rurl "$1")$3" >"$T/$2.status"
        echo $? >"$T/$2.rc"
        sha256sum "$T/$2.body" | cut -d' ' -f1 >"$T/$2.sum"
        rm -f "$T/$2.body"
    ) &
    LAST_PULL=$!
    PULL_PIDS+=("$LAST_PULL")
}
pulls_wait() {
    wait "${PULL_PIDS[@]}"
    PULL_PIDS=()
}
# good TAG DIGEST: 1 when that pull got a complete 200 with the bytes of DIGEST, else 0
good() {
    if [ "$(cat "$T/$1.rc")" = 0 ] && [ "$(cat "$T/$1.status")" = 200 ] &&
        [ "$(cat "$T/$1.sum")" = "${2#sha256:}" ]; then
        echo 1
    else
        echo 0
    fi
}

# ---- 1. 9 concurrent pulls of one cold 16 MiB blob over 3 replicas: one upstream GET ----------
push_image "$UP" lib/big v1 $((16 * MIB))
BIG=$IMG_LAYER_DIGEST
fault_mode stall 2 # half the body, 2 s, the rest: the fetch takes a while
: >"$FAULT_LOG"
for k in 1 2 3; do
    for i in 0 1 2; do
        pull_bg "$i" "cold.$i.$k" "/v2/up.example/lib/big/blobs/$BIG"
    done
done
pulls_wait
n=0
for k in 1 2 3; do
    for i in 0 1 2; do
        n=$((n + $(good "cold.$i.$k" "$BIG")))
    done
done
check "9 concurrent pulls of a cold 16 MiB blob over 3 replicas: all got its bytes" 9 "$n"
check "9 concurrent pulls over 3 replicas: exactly one upstream GET of the blob" 1 \
    "$(upstream_requests "GET /v2/lib/big/blobs/$BIG")"
fault_mode pass
for i in 0 1 2; do
    pull_bg "$i" "warm.$i" "/v2/up.example/lib/big/blobs/$BIG"
done
pulls_wait
check "warm pulls on each replica" 3 \
    "$(($(good warm.0 "$BIG") + $(good warm.1 "$BIG") + $(good warm.2 "$BIG")))"
check "warm pulls ask the upstream nothing" 1 "$(upstream_requests "/v2/lib/big/blobs/$BIG")"

# ---- 2. a cold tag pulled on 3 replicas at once: one HEAD, one manifest GET -----------------
push_image "$UP" lib/tagged v1
TAGGED=$IMG_DIGEST
fault_mode hang 1 # every upstream request answered after 1 s
: >"$FAULT_LOG"
for k in 1 2; do
    for i in 0 1 2; do
        pull_bg "$i" "tag.$i.$k" /v2/up.example/lib/tagged/manifests/v1
    done
done
pulls_wait
n=0
for k in 1 2; do
    for i in 0 1 2; do
        n=$((n + $(good "tag.$i.$k" "$TAGGED")))
    done
done
check "6 concurrent pulls of a cold tag over 3 replicas: all got the manifest" 6 "$n"
check "a cold tag over 3 replicas: one HEAD upstream" 1 \
    "$(upstream_requests "HEAD /v2/lib/tagged/manifests/")"
check "a cold tag over 3 replicas: one manifest GET upstream" 1 \
    "$(upstream_requests "GET /v2/lib/tagged/manifests/")"
fault_mode pass

# ---- 3. the fetching replica killed (-9): the waiting one takes over ------------------------
push_image "$UP" lib/big v2 $((16 * MIB))
KILLED=$IMG_LAYER_DIGEST
fault_mode stall 3
: >"$FAULT_LOG"
pull_bg 0 kill.0 "/v2/up.example/lib/big/blobs/$KILLED"
for _ in $(seq 1 100); do # replica 0 fetches
    [ "$(upstream_requests "GET /v2/lib/big/blobs/$KILLED")" -ge 1 ] && break
    sleep 0.05
done
pull_bg 1 kill.1 "/v2/up.example/lib/big/blobs/$KILLED"
sleep 1
check "while replica 0 fetches, replica 1 waits (one upstream GET)" 1 \
    "$(upstream_requests "GET /v2/lib/big/blobs/$KILLED")"
kill -9 "${RPID[0]}"
wait "${RPID[0]}" 2>/dev/null
RPID[0]=""
pulls_wait
check "replica 0 killed mid-fetch: replica 1's client got the blob" 1 "$(good kill.1 "$KILLED")"
check "replica 1 took over: a second upstream GET" 2 \
    "$(upstream_requests "GET /v2/lib/big/blobs/$KILLED")"
fault_mode pass
pull_bg 2 kill.2 "/v2/up.example/lib/big/blobs/$KILLED"
pulls_wait
check "then replica 2 serves it from the store" 1 "$(good kill.2 "$KILLED")"
check "without asking the upstream" 2 "$(upstream_requests "GET /v2/lib/big/blobs/$KILLED")"

# ---- 4. the fetching replica frozen: the waiting one gives up after the upstream's timeout ----
push_image "$UP" lib/big v3 $((16 * MIB))
FROZEN=$IMG_LAYER_DIGEST
fault_mode stall 3
: >"$FAULT_LOG"
pull_bg 1 frozen.1 "/v2/up.example/lib/big/blobs/$FROZEN"
FROZEN_PULL=$LAST_PULL
for _ in $(seq 1 100); do # replica 1 fetches
    [ "$(upstream_requests "GET /v2/lib/big/blobs/$FROZEN")" -ge 1 ] && break
    sleep 0.05
done
kill -STOP "${RPID[1]}"
t0=$(date +%s.%N)
pull_bg 2 frozen.2 "/v2/up.example/lib/big/blobs/$FROZEN"
wait "$LAST_PULL"
took=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
check "a frozen holder: the waiting replica's client got the blob" 1 "$(good frozen.2 "$FROZEN")"
check "it waited about the upstream's timeout (5 s), not for ever (took ${took}s)" 1 \
    "$(awk -v t="$took" 'BEGIN { print (t >= 4.5 && t < 15) ? 1 : 0 }')"
check "then fetched it itself" 2 "$(upstream_requests "GET /v2/lib/big/blobs/$FROZEN")"
kill -CONT "${RPID[1]}"
wait "$FROZEN_PULL"
if [ "$(cat "$T/frozen.1.rc")" = 0 ] && [ "$(cat "$T/frozen.1.status")" = 200 ] &&
    [ "$(good frozen.1 "$FROZEN")" = 0 ]; then
    fail "the thawed replica served wrong bytes as a complete response"
else
    ok
fi
PULL_PIDS=()
finish
