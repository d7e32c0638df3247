#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: pg
# An object store outage (issue 15, section 3): berth serve over its own Ceph RGW (started here,
# not the shared fixture, which other tests use) and a database of the shared PostgreSQL. The
# gateway is (a) frozen (SIGSTOP: the kernel still accepts connections, nothing answers) and
# (b) killed (connections refused) while clients push and pull. Every request answers within a
# bounded time, either as it would anyway (a manifest by tag needs only PostgreSQL) or with 503
# UNAVAILABLE (the spec's JSON) and Retry-After, never with a 200 whose body breaks off; /readyz
# answers 503; the server stays up. Once the gateway runs again the server serves again by itself,
# and every blob and manifest acknowledged before, during or after the outage pulls whole.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${BERTH_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}
T=$BERTH_TMP
RGW=$T/rgw
RGWPID=""

cleanup_outage() {
    [ -n "$RGWPID" ] && kill -CONT "$RGWPID" 2>/dev/null
    bash "$SRC/tests/engines/rgw.sh" down "$RGW" >/dev/null 2>&1
    cleanup
}
trap cleanup_outage EXIT

if ! bash "$SRC/tests/engines/rgw.sh" up "$RGW" >"$T/rgw.out" 2>&1; then
    cat "$T/rgw.out" >&2
    echo "cannot start a private RGW" >&2
    exit 1
fi
rgw_env() { sed -n "s/^$1=//p" "$RGW/env"; }
ENDPOINT=$(rgw_env BERTH_TEST_S3_ENDPOINT)
db="t_$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
url=$(engine_env pg BERTH_TEST_DATABASE_URL)
psql -q "$url" -c "CREATE DATABASE $db" >/dev/null || { echo "cannot create a database" >&2; exit 1; }
export BERTH_DATABASE_URL="${url%/*}/$db"
export BERTH_STORAGE_S3_ENDPOINT=$ENDPOINT
BERTH_STORAGE_S3_BUCKET=$(rgw_env BERTH_TEST_S3_BUCKET)
BERTH_STORAGE_S3_REGION=$(rgw_env BERTH_TEST_S3_REGION)
AWS_ACCESS_KEY_ID=$(rgw_env AWS_ACCESS_KEY_ID)
AWS_SECRET_ACCESS_KEY=$(rgw_env AWS_SECRET_ACCESS_KEY)
export BERTH_STORAGE_S3_BUCKET BERTH_STORAGE_S3_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY
export BERTH_STORAGE_S3_PREFIX=outage/
RGWPID=$(cat "$RGW/run/rgw.pid")

# more threads than clients at once: a request waiting for a stalled one's thread would meet
# the header deadline (timeouts.header, 20 s) and be closed unanswered
start_server --threads 8
MT=application/vnd.oci.image.manifest.v1+json
readyz() { curl -s -o /dev/null -w '%{http_code}' --max-time "${1:-10}" "$URL/readyz"; }
alive() { if server_alive; then ok; else fail "$1: the server died"; fi; }

# ACKED: "KIND DIGEST PATH" per blob or manifest the server acknowledged (201)
ACKED=$T/acked
: >"$ACKED"
# new_blob NAME SIZE: random bytes in $T/NAME; echoes the digest
new_blob() {
    head -c "$2" /dev/urandom >"$T/$1"
    sha256_file "$T/$1"
}

# ---- before: an image, a blob, an upload session with one acknowledged chunk -----------------
check "readyz before" 200 "$(readyz)"
CFG=$T/cfg
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$CFG"
cfg=$(push_blob app "$CFG")
lay=$(new_blob layer $((6 * 1024 * 1024 + 1000)))
req POST "/v2/app/blobs/uploads/?digest=$lay" --data-binary "@$T/layer" \
    -H 'Content-Type: application/octet-stream'
check "push a 6 MiB layer before" 201 "$STATUS"
echo "blob $cfg /v2/app/blobs/$cfg" >>"$ACKED"
echo "blob $lay /v2/app/blobs/$lay" >>"$ACKED"
make_manifest "$CFG" "$T/layer" "$T/m1.json"
m1=$(sha256_file "$T/m1.json")
req PUT /v2/app/manifests/v1 -H "Content-Type: $MT" --data-binary "@$T/m1.json"
check "push the manifest before" 201 "$STATUS"
echo "manifest $m1 /v2/app/manifests/v1" >>"$ACKED"
echo "manifest $m1 /v2/app/manifests/$m1" >>"$ACKED"
# a chunked upload: its first chunk acknowledged before the outage, finished after it
sess=$(new_blob sess $((3 * 1024 * 1024)))
head -c $((1024 * 1024)) "$T/sess" >"$T/sess.1"
req POST /v2/app/blobs/uploads/
check "open a session before" 202 "$STATUS"
SLOC=$(header Location)
req PATCH "$SLOC" --data-binary "@$T/sess.1" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 0-$((1024 * 1024 - 1))"
check "first chunk before" 202 "$STATUS"
SLOC=$(header Location)

# ---- clients: each one request, its outcome judged ------------------------------------------
# client NAME EXPECT_SHA METHOD PATH [curl args...]: one request into $T/res/NAME.{body,hdr,out};
# the .out line: STATUS CURL_EXIT MILLISECONDS
mkdir -p "$T/res"
client() {
    local name=$1 expect=$2 method=$3 path=$4 st rc t0 t1
    shift 4
    t0=$(date +%s%N)
    if [ "$method" = HEAD ]; then
        st=$(curl -s -I -o "$T/res/$name.body" -D "$T/res/$name.hdr" -w '%{http_code}' \
            --max-time 120 "$URL$path")
    else
        st=$(curl -s -o "$T/res/$name.body" -D "$T/res/$name.hdr" -w '%{http_code}' \
            --max-time 120 -X "$method" "$@" "$URL$path")
    fi
    rc=$?
    t1=$(date +%s%N)
    echo "$st $rc $(((t1 - t0) / 1000000)) $expect" >"$T/res/$name.out"
}

# judge PHASE MAX_MS NAME...: every client answered in time, with a success or a clean 503;
# a 2xx GET gave the whole blob; acknowledged pushes go to $ACKED
judge() {
    local phase=$1 max=$2 name st rc ms expect got code
    shift 2
    for name in "$@"; do
        read -r st rc ms expect <"$T/res/$name.out"
        echo "$phase: $name -> $st in $ms ms (curl $rc)"
        check "$phase: $name completes (curl exit)" 0 "$rc"
        if [ "$ms" -le "$max" ]; then ok; else fail "$phase: $name took $ms ms (bound $max)"; fi
        case "$st" in
        503)
            BODY=$T/res/$name.body HDRS=$T/res/$name.hdr
            case "$name" in head*) ;; *) check "$phase: $name error code" UNAVAILABLE "$(error_code)" ;; esac
            if [ -n "$(header Retry-After)" ]; then ok; else fail "$phase: $name: no Retry-After"; fi
            if grep -q -e "$ENDPOINT" -e "$AWS_ACCESS_KEY_ID" -e "$T" "$BODY"; then
                fail "$phase: $name: the error names the endpoint, a key or a path"
            else
                ok
            fi
            ;;
        200 | 201 | 202)
            if [ "$expect" != - ]; then
                got=$(sha256_file "$T/res/$name.body")
                check "$phase: $name body is whole" "$expect" "$got"
            fi
            ;;
        *) fail "$phase: $name: status $st (a success or 503 expected)" ;;
        esac
    done
}

# during PHASE: a round of clients at once: pushes (monolithic, a manifest), pulls (blob,
# ranged blob, manifest by tag and digest, HEAD)
during() {
    local phase=$1 i d st
    local -a pids names
    for i in 1 2; do
        d=$(new_blob "$phase.push$i" $((100000 + i)))
        client "$phase.push$i" - POST "/v2/app/blobs/uploads/?digest=$d" \
            --data-binary "@$T/$phase.push$i" -H 'Content-Type: application/octet-stream' &
        pids+=($!)
        names+=("$phase.push$i")
        echo "$d" >"$T/res/$phase.push$i.digest"
    done
    client "$phase.pull" "$lay" GET "/v2/app/blobs/$lay" &
    pids+=($!)
    client "$phase.pullcfg" "$cfg" GET "/v2/app/blobs/$cfg" &
    pids+=($!)
    client "$phase.tag" "$m1" GET /v2/app/manifests/v1 -H "Accept: $MT" &
    pids+=($!)
    client "$phase.head" - HEAD "/v2/app/blobs/$lay" &
    pids+=($!)
    names+=("$phase.pull" "$phase.pullcfg" "$phase.tag" "$phase.head")
    wait "${pids[@]}"
    judge "$phase" "$PHASE_MAX" "${names[@]}"
    for i in 1 2; do
        read -r st _ <"$T/res/$phase.push$i.out"
        d=$(cat "$T/res/$phase.push$i.digest")
        [ "$st" = 201 ] && echo "blob $d /v2/app/blobs/$d" >>"$ACKED"
    done
    # a manifest PUT during the outage (its blobs were stored before)
    make_manifest "$CFG" "$T/layer" "$T/$phase.m.json"
    sed -i "s/}\$/,\"annotations\":{\"phase\":\"$phase\"}}/" "$T/$phase.m.json"
    client "$phase.mput" - PUT "/v2/app/manifests/$phase" -H "Content-Type: $MT" \
        --data-binary "@$T/$phase.m.json"
    judge "$phase" "$PHASE_MAX" "$phase.mput"
    read -r st _ <"$T/res/$phase.mput.out"
    d=$(sha256_file "$T/$phase.m.json")
    [ "$st" = 201 ] && echo "manifest $d /v2/app/manifests/$phase" >>"$ACKED"
    # a chunk of the session opened before
    client "$phase.patch" - PATCH "$SLOC" --data-binary "@$T/sess.1" \
        -H 'Content-Type: application/octet-stream'
    judge "$phase" "$PHASE_MAX" "$phase.patch"
}

# ---- (a) the gateway frozen ----------------------------------------------------------------
kill -STOP "$RGWPID"
# a transfer stalled for 30 s is given up (storage.s3: the low-speed limit); then a margin
PHASE_MAX=45000
during frozen
t0=$(date +%s%N)
check "frozen: /readyz" 503 "$(readyz 40)"
t1=$(date +%s%N)
echo "frozen: /readyz answered in $(((t1 - t0) / 1000000)) ms"
alive frozen
kill -CONT "$RGWPID"
healed=0
for _ in $(seq 1 100); do
    [ "$(readyz 5)" = 200 ] && { healed=1; break; }
    sleep 0.2
done
check "thawed: /readyz answers 200 again" 1 "$healed"

# ---- (b) the gateway killed: connections refused --------------------------------------------
kill -9 "$RGWPID"
wait_gone=0
for _ in $(seq 1 50); do
    kill -0 "$RGWPID" 2>/dev/null || { wait_gone=1; break; }
    sleep 0.1
done
check "the gateway is gone" 1 "$wait_gone"
PHASE_MAX=10000
during killed
check "killed: /readyz" 503 "$(readyz 10)"
alive killed
bash "$SRC/tests/engines/rgw.sh" start-gateway "$RGW" >"$T/rgw2.out" 2>&1 ||
    { cat "$T/rgw2.out" >&2; fail "the gateway starts again"; }
RGWPID=$(cat "$RGW/run/rgw.pid")
healed=0
for _ in $(seq 1 150); do
    [ "$(readyz 5)" = 200 ] && { healed=1; break; }
    sleep 0.2
done
check "back: /readyz answers 200 again, berth not restarted" 1 "$healed"
alive back

# ---- after: the session resumes, new pushes work, everything acknowledged is whole ----------
req GET "$SLOC"
check "back: the session's status" 204 "$STATUS"
range=$(header Range)
off=$((${range#0-} + 1))
echo "back: the session resumes at $off"
if [ "$off" -ge $((1024 * 1024)) ] && [ $((off % (1024 * 1024))) = 0 ]; then
    ok
else
    fail "back: the session lost an acknowledged chunk (offset $off)"
fi
SLOC=$(header Location)
tail -c +$((off + 1)) "$T/sess" >"$T/sess.rest"
case "$SLOC" in *\?*) sep='&' ;; *) sep='?' ;; esac
req PUT "$SLOC${sep}digest=$sess" --data-binary "@$T/sess.rest" \
    -H 'Content-Type: application/octet-stream'
check "back: the session closes" 201 "$STATUS"
echo "blob $sess /v2/app/blobs/$sess" >>"$ACKED"
d=$(new_blob after $((5 * 1024 * 1024 + 7)))
req POST "/v2/app/blobs/uploads/?digest=$d" --data-binary "@$T/after" \
    -H 'Content-Type: application/octet-stream'
check "back: a push" 201 "$STATUS"
echo "blob $d /v2/app/blobs/$d" >>"$ACKED"
n=0
while read -r kind digest path; do
    n=$((n + 1))
    if [ "$kind" = manifest ]; then
        req GET "$path" -H "Accept: $MT"
    else
        req GET "$path"
    fi
    check "back: $kind $path status" 200 "$STATUS"
    check "back: $kind $path is whole" "$digest" "$(sha256_file "$BODY")"
done <"$ACKED"
echo "back: $n acknowledged blobs and manifests checked"
alive after
finish
