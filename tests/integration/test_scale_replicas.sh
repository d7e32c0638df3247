#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: rgw pg
# The guarantees of three stateless replicas over one S3 prefix + one PostgreSQL database
# (issue 15, section 3): an upload moves between replicas; a replica killed with -9 in the middle
# of a PATCH loses nothing acknowledged; reads see writes at once on every replica; online gc
# on one replica races no push on the others; an engine outage (PostgreSQL stopped, or frozen)
# is a clean 503 that heals itself.
# The replicas are started here (not by lib.sh's start_server), all with the same environment.
. "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=${BERTH_SOURCE_DIR:-$(cd "$HERE/../.." && pwd)}

scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }

. "$HERE/replicas_lib.sh"
PG2=""
FROZEN=""
cleanup_replicas() {
    kill_replicas
    # shellcheck disable=SC2086
    [ -n "$FROZEN" ] && kill -CONT $FROZEN 2>/dev/null
    [ -n "$PG2" ] && bash "$SRC/tests/engines/pg.sh" down "$PG2" >/dev/null 2>&1
    cleanup
}
trap cleanup_replicas EXIT

# the third replica collects garbage every second, with a grace period of two seconds
cat >"$BERTH_TMP/gc.yaml" <<'Y'
gc:
  interval: 1s
  grace: 2s
Y
start_replica 0
start_replica 1
start_replica 2 --config "$BERTH_TMP/gc.yaml"
# lib.sh's finish prints the tail of BERTH_LOG on a failure: the collecting replica's
# shellcheck disable=SC2034
BERTH_LOG=${RLOG[2]}
A=$(rurl 0)
B=$(rurl 1)
C=$(rurl 2)

# session_path URL: the Location of a new upload session (POST) on that replica
session_path() {
    curl -s -D - -o /dev/null -X POST "$1/v2/$2/blobs/uploads/" | sed -n 's/^[Ll]ocation: *//p' |
        tr -d '\r'
}
# patch_chunk URL PATH FILE START END: PATCH bytes START..END of FILE; echoes "status range"
patch_chunk() {
    local st
    st=$(dd if="$3" bs=1M iflag=skip_bytes,count_bytes skip="$4" count=$(($5 - $4 + 1)) \
        2>/dev/null | curl -s -o /dev/null -D "$BERTH_TMP/ph" -w '%{http_code}' -X PATCH \
        -H 'Content-Type: application/octet-stream' -H "Content-Range: $4-$5" \
        --data-binary @- "$1$2")
    echo "$st $(sed -n 's/^[Rr]ange: *//p' "$BERTH_TMP/ph" | tr -d '\r')"
}
# upload_range URL PATH: the Range of the session's status (GET) on that replica
upload_range() {
    curl -s -o /dev/null -D - --max-time 10 "$1$2" | sed -n 's/^[Rr]ange: *//p' | tr -d '\r'
}
remote_sha() {
    curl -s --max-time 60 "$1" | sha256sum | cut -d' ' -f1
}

# ---- 1. an upload started on A, continued on B (and C, A), closed on C ---------------------
# chunked_move NAME FILE CHUNK: POST on A, PATCH chunks round the replicas starting at B, the
# last chunk with the PUT on C; the blob is then read back from A
chunked_move() {
    local name=$1 file=$2 chunk=$3 size loc off end st rng i=1 d
    size=$(stat -c %s "$file")
    d=$(sha256_file "$file")
    loc=$(session_path "$A" repl/move)
    check "$name: session started on A" "/v2/repl/move/blobs/uploads/" "${loc%/*}/"
    off=0
    while [ $((off + chunk)) -lt "$size" ]; do
        end=$((off + chunk - 1))
        read -r st rng < <(patch_chunk "$(rurl $((i % 3)))" "$loc" "$file" "$off" "$end")
        check "$name: PATCH $off-$end on replica $((i % 3))" "202 0-$end" "$st $rng"
        off=$((end + 1))
        i=$((i + 1))
    done
    check "$name: status on C before the close" "0-$((off - 1))" "$(upload_range "$C" "$loc")"
    st=$(dd if="$file" bs=1M iflag=skip_bytes skip="$off" 2>/dev/null |
        curl -s -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
            -H "Content-Range: $off-$((size - 1))" --data-binary @- "$C$loc?digest=$d")
    check "$name: PUT with digest on C" 201 "$st"
    check "$name: blob read back from A" "${d#sha256:}" "$(remote_sha "$A/v2/repl/move/blobs/$d")"
    check "$name: blob read back from B" "${d#sha256:}" "$(remote_sha "$B/v2/repl/move/blobs/$d")"
}
head -c $((12 * 1024 * 1024 + 777)) /dev/urandom >"$BERTH_TMP/big"
chunked_move "12 MiB in 3 MiB chunks" "$BERTH_TMP/big" $((3 * 1024 * 1024))
head -c $((5 * 4096 + 123)) /dev/urandom >"$BERTH_TMP/small"
chunked_move "20 KiB in 4 KiB chunks" "$BERTH_TMP/small" 4096
# both kinds in one session: a small chunk, a part-sized one, small ones again
head -c $((11 * 1024 * 1024 + 5)) /dev/urandom >"$BERTH_TMP/mixed"
loc=$(session_path "$B" repl/move)
off=0
i=0
for n in 3000 $((6 * 1024 * 1024)) 5000 7 $((4 * 1024 * 1024)); do
    read -r st rng < <(patch_chunk "$(rurl $((i % 3)))" "$loc" "$BERTH_TMP/mixed" "$off" \
        $((off + n - 1)))
    check "mixed: PATCH of $n bytes on replica $((i % 3))" "202 0-$((off + n - 1))" "$st $rng"
    off=$((off + n))
    i=$((i + 1))
done
d=$(sha256_file "$BERTH_TMP/mixed")
st=$(dd if="$BERTH_TMP/mixed" bs=1M iflag=skip_bytes skip="$off" 2>/dev/null |
    curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- \
        -H 'Content-Type: application/octet-stream' "$C$loc?digest=$d")
check "mixed: PUT with the rest on C" 201 "$st"
check "mixed: blob read back from A" "${d#sha256:}" "$(remote_sha "$A/v2/repl/move/blobs/$d")"

# ---- 2. kill -9 in the middle of a PATCH -----------------------------------------------------
head -c $((40 * 1024 * 1024)) /dev/urandom >"$BERTH_TMP/kill"
d=$(sha256_file "$BERTH_TMP/kill")
loc=$(session_path "$A" repl/kill)
# acknowledged before the kill: a part-sized chunk on B and a small one on A (staged)
read -r st rng < <(patch_chunk "$B" "$loc" "$BERTH_TMP/kill" 0 $((6 * 1024 * 1024 - 1)))
check "kill: first PATCH on B" "202 0-$((6 * 1024 * 1024 - 1))" "$st $rng"
acked=$((6 * 1024 * 1024 + 1000))
read -r st rng < <(patch_chunk "$A" "$loc" "$BERTH_TMP/kill" $((6 * 1024 * 1024)) $((acked - 1)))
check "kill: second PATCH on A" "202 0-$((acked - 1))" "$st $rng"
# the third PATCH streams 20 MiB slowly to A, which is killed with -9 half-way
dd if="$BERTH_TMP/kill" bs=1M iflag=skip_bytes,count_bytes skip="$acked" \
    count=$((20 * 1024 * 1024)) 2>/dev/null >"$BERTH_TMP/slow"
curl -s -o /dev/null -w '%{http_code}' --limit-rate 4M -X PATCH \
    -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: $acked-$((acked + 20 * 1024 * 1024 - 1))" \
    --data-binary @"$BERTH_TMP/slow" "$A$loc" >"$BERTH_TMP/slow.status" 2>/dev/null &
slow=$!
sleep 2.5
kill -9 "${RPID[0]}"
wait "${RPID[0]}" 2>/dev/null
RPID[0]=""
wait "$slow"
case $(cat "$BERTH_TMP/slow.status") in
2*) fail "kill: the interrupted PATCH was acknowledged ($(cat "$BERTH_TMP/slow.status"))" ;;
*) ok ;;
esac
rng=$(upload_range "$C" "$loc")
end=${rng#0-}
echo "kill: acknowledged 0-$((acked - 1)), status on C after the kill: ${rng:-<none>}"
if [ -n "$rng" ] && [ "${rng%%-*}" = 0 ] && [ "$end" -ge $((acked - 1)) ] 2>/dev/null &&
    [ "$end" -lt $((acked + 20 * 1024 * 1024 - 1)) ]; then
    ok
else
    fail "kill: the status on C should cover the acknowledged 0-$((acked - 1)), got '$rng'"
    end=$((acked - 1))
fi
check "kill: status on B agrees" "$rng" "$(upload_range "$B" "$loc")"
# the client resumes where the status says, on B, and closes on C
off=$((end + 1))
read -r st rng < <(patch_chunk "$B" "$loc" "$BERTH_TMP/kill" "$off" $((30 * 1024 * 1024 - 1)))
check "kill: resumed PATCH on B" "202 0-$((30 * 1024 * 1024 - 1))" "$st $rng"
st=$(dd if="$BERTH_TMP/kill" bs=1M iflag=skip_bytes skip=$((30 * 1024 * 1024)) 2>/dev/null |
    curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary @- \
        -H 'Content-Type: application/octet-stream' "$C$loc?digest=$d")
check "kill: PUT with digest on C" 201 "$st"
check "kill: blob read back from B" "${d#sha256:}" "$(remote_sha "$B/v2/repl/kill/blobs/$d")"
start_replica 0
A=$(rurl 0)
check "kill: the restarted replica serves the blob" "${d#sha256:}" \
    "$(remote_sha "$A/v2/repl/kill/blobs/$d")"

# ---- 3. read your writes across replicas -----------------------------------------------------
python3 "$HERE/replicas.py" ryw "${RPORT[0]}" "${RPORT[1]}" "${RPORT[2]}" 36 \
    >"$BERTH_TMP/ryw.out" 2>&1
cat "$BERTH_TMP/ryw.out"
check "read your writes: rounds completed" 36 "$(sed -n 's/^rounds=//p' "$BERTH_TMP/ryw.out")"
check "read your writes: violations" 0 "$(sed -n 's/^violations=//p' "$BERTH_TMP/ryw.out")"

# ---- 4. online gc with no race -----------------------------------------------------------
# beside the collector in replica C, a second one: `berth gc --config` in a loop, same storage
gc_loop() {
    while [ ! -f "$BERTH_TMP/gc.stop" ]; do
        if "$BERTH" gc --config "$BERTH_TMP/gc.yaml" --grace 2s >>"$BERTH_TMP/gccli.log" 2>&1; then
            echo ok >>"$BERTH_TMP/gccli.runs"
        else
            echo failed >>"$BERTH_TMP/gccli.runs"
        fi
        sleep 0.5
    done
}
gc_loop &
gcloop=$!
python3 "$HERE/replicas.py" gc "${RPORT[0]}" "${RPORT[1]}" "${RPORT[2]}" 30 "${RLOG[2]}" 2 \
    >"$BERTH_TMP/gc.out" 2>&1
touch "$BERTH_TMP/gc.stop"
wait "$gcloop"
cli_ok=$(grep -c '^ok' "$BERTH_TMP/gccli.runs")
cli_failed=$(grep -c '^failed' "$BERTH_TMP/gccli.runs")
echo "berth gc --config runs: $cli_ok ok, $cli_failed failed"
check "gc: failed berth gc --config runs" 0 "$cli_failed"
if [ "$cli_ok" -gt 0 ]; then ok; else fail "gc: berth gc --config never ran"; fi
[ "$cli_failed" = 0 ] || tail -n 20 "$BERTH_TMP/gccli.log" >&2
grep -v '^VIOLATION' "$BERTH_TMP/gc.out"
grep '^VIOLATION' "$BERTH_TMP/gc.out" | head -n 20
gcv() { sed -n "s/^$1=//p" "$BERTH_TMP/gc.out"; }
check "gc: violations (acknowledged images that do not pull whole)" 0 "$(gcv violations)"
check "gc: failed gc runs" 0 "$(gcv gc_failed)"
check "gc: push errors other than a refusal" 0 "$(gcv push_errors)"
check "gc: delete errors" 0 "$(gcv delete_errors)"
for k in pushes deletes tag_deletes gc_runs gc_blobs_removed checked head_hits; do
    if [ "$(gcv $k)" -gt 0 ] 2>/dev/null; then ok; else fail "gc: $k should be > 0, got '$(gcv $k)'"; fi
done

# ---- 5. engine outage: PostgreSQL stops and comes back ---------------------------------------
PG2=$BERTH_TMP/pg2
if bash "$SRC/tests/engines/pg.sh" up "$PG2" >"$BERTH_TMP/pg2.out" 2>&1; then
    ok
else
    fail "a private PostgreSQL cluster starts"
    cat "$BERTH_TMP/pg2.out" >&2
fi
url2=$(sed -n 's/^BERTH_TEST_DATABASE_URL=//p' "$PG2/env")
BERTH_DATABASE_URL=$url2 BERTH_STORAGE_S3_PREFIX="${BERTH_STORAGE_S3_PREFIX%/}-pg2/" start_replica 3
D=$(rurl 3)
check "outage: /readyz before" 200 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$D/readyz")"
head -c 3000 /dev/urandom >"$BERTH_TMP/ob"
ob=$(sha256_file "$BERTH_TMP/ob")
st=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST --data-binary @"$BERTH_TMP/ob" \
    -H 'Content-Type: application/octet-stream' "$D/v2/out/r/blobs/uploads/?digest=$ob")
check "outage: a push before the outage" 201 "$st"
bash "$SRC/tests/engines/pg.sh" down "$PG2" || fail "outage: pg.sh down"
t0=$(date +%s%N)
for what in "GET /v2/out/r/tags/list" "GET /v2/_catalog" "HEAD /v2/out/r/blobs/$ob" \
    "POST /v2/out/r/blobs/uploads/" "GET /v2/out/r/manifests/latest"; do
    set -- $what
    if [ "$1" = HEAD ]; then
        st=$(curl -s -I -o "$BODY" -D "$HDRS" -w '%{http_code}' --max-time 5 "$D$2")
    else
        st=$(curl -s -o "$BODY" -D "$HDRS" -w '%{http_code}' --max-time 5 -X "$1" "$D$2")
    fi
    check "outage: $what status" 503 "$st"
    [ "$1" = HEAD ] || check "outage: $what error code" UNAVAILABLE "$(error_code)"
    if [ -n "$(header Retry-After)" ]; then ok; else fail "outage: $what has no Retry-After"; fi
    if grep -q "$BERTH_TMP" "$BODY"; then fail "outage: $what body names a path"; else ok; fi
done
t1=$(date +%s%N)
echo "outage: 5 requests answered in $(((t1 - t0) / 1000000)) ms"
if [ $(((t1 - t0) / 1000000)) -lt 15000 ]; then ok; else fail "outage: answers took too long"; fi
check "outage: /readyz during" 503 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$D/readyz")"
if kill -0 "${RPID[3]}" 2>/dev/null; then ok; else fail "outage: the replica died"; fi
bash "$SRC/tests/engines/pg.sh" start "$PG2" || fail "outage: pg.sh start"
healed=""
for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$D/readyz")" = 200 ]; then
        healed=1
        break
    fi
    sleep 0.1
done
check "outage: /readyz after the engine is back" 1 "${healed:-0}"
check "outage: the blob pushed before is still there" "${ob#sha256:}" \
    "$(remote_sha "$D/v2/out/r/blobs/$ob")"
check "outage: catalog after" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$D/v2/_catalog")"
head -c 3000 /dev/urandom >"$BERTH_TMP/ob2"
ob2=$(sha256_file "$BERTH_TMP/ob2")
check "outage: a push after" 201 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST \
    --data-binary @"$BERTH_TMP/ob2" -H 'Content-Type: application/octet-stream' \
    "$D/v2/out/r/blobs/uploads/?digest=$ob2")"
if kill -0 "${RPID[3]}" 2>/dev/null; then ok; else fail "outage: the replica died"; fi

# a frozen database (its processes stopped: the kernel still acknowledges, nothing answers,
# so TCP keepalives see nothing): the pooled connections' statements are given up on after the
# statement timeout (15 s) and a margin; a 503 then, not a hang
pm=$(head -n 1 "$PG2/data/postmaster.pid")
FROZEN="$pm $(ps -o pid= --ppid "$pm" | tr '\n' ' ')"
# shellcheck disable=SC2086
kill -STOP $FROZEN
rm -f "$BODY" "$HDRS"
t0=$(date +%s%N)
st=$(curl -s -o "$BODY" -D "$HDRS" -w '%{http_code}' --max-time 45 "$D/v2/_catalog")
t1=$(date +%s%N)
echo "frozen: catalog answered $st in $(((t1 - t0) / 1000000)) ms"
check "frozen: catalog status" 503 "$st"
check "frozen: catalog error code" UNAVAILABLE "$(error_code)"
if [ -n "$(header Retry-After)" ]; then ok; else fail "frozen: no Retry-After"; fi
check "frozen: /readyz" 503 "$(curl -s -o /dev/null -w '%{http_code}' --max-time 15 "$D/readyz")"
if kill -0 "${RPID[3]}" 2>/dev/null; then ok; else fail "frozen: the replica died"; fi
# shellcheck disable=SC2086
kill -CONT $FROZEN
FROZEN=""
healed=""
for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$D/v2/_catalog")" = 200 ]; then
        healed=1
        break
    fi
    sleep 0.1
done
check "frozen: the catalog answers again once the database runs" 1 "${healed:-0}"

for i in 0 1 2; do
    if kill -0 "${RPID[$i]}" 2>/dev/null; then ok; else fail "replica $i died"; fi
done
finish
