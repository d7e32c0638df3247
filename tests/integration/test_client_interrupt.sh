#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A registry killed in the middle of a copy: the copy fails with a message naming what failed,
# exits 1, and leaves no tag at the destination (registry or OCI layout) and no upload session
# open; a destination restarted mid-upload is resumed from the session's Range.
. "$(dirname "$0")/client_lib.sh"

BIG_LAYER=$((300 * 1024)) make_layout "$WORK/l1" v1 >/dev/null
start_distribution DST
D=127.0.0.1:$DST_PORT

# 1. the source dies while a layer streams (the fake serves 4 KiB every 50 ms)
start_fake SRC "$WORK/l1" --slow
S=127.0.0.1:$SRC_PORT
"$BERTH" copy "$S/src/app:v1" "$D/dst/app:v1" >"$WORK/out" 2>"$WORK/err" &
cp=$!
sleep 1
kill "$SRC_PID"
set +e
wait "$cp"
rc=$?
set -e
echo "source died: $(cat "$WORK/err")"
expect_eq "$rc" 1 "exit status when the source dies"
grep -q "blob sha256:" "$WORK/err" || fail "message does not name the blob: $(cat "$WORK/err")"
grep -q "$S" "$WORK/err" || fail "message does not name the source: $(cat "$WORK/err")"
expect_eq "$(manifest_code "$D" dst/app v1)" 404 \
    "tag at the destination after a failed copy"

# the same into a layout: no tag in index.json
start_fake SRC2 "$WORK/l1" --slow
S=127.0.0.1:$SRC2_PORT
"$BERTH" copy "$S/src/app:v1" "oci:$WORK/lay-out:v1" >/dev/null 2>"$WORK/err" &
cp=$!
sleep 1
kill "$SRC2_PID"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 1 "exit status when the source dies (layout)"
! grep -q '"v1"' "$WORK/lay-out/index.json" || fail "tag in the layout after a failed copy"

# 2. the destination dies while a layer is being fetched
start_fake SRC3 "$WORK/l1" --slow
S=127.0.0.1:$SRC3_PORT
"$BERTH" copy "$S/src/app:v1" "$D/dst/app:v1" >/dev/null 2>"$WORK/err" &
cp=$!
sleep 1
kill "$DST_PID"
set +e
wait "$cp"
rc=$?
set -e
echo "destination died: $(cat "$WORK/err")"
expect_eq "$rc" 1 "exit status when the destination dies"
grep -q "127.0.0.1:$DST_PORT" "$WORK/err" || fail "message does not name the destination: $(cat "$WORK/err")"
# restart a registry on the same storage: still no tag
docker-registry serve "$WORK/DST/config.yml" >>"$WORK/DST/log" 2>&1 &
PIDS+=($!)
wait_port "$DST_PORT"
expect_eq "$(manifest_code "$D" dst/app v1)" 404 \
    "tag after the destination died"
# and a copy after the restart completes
start_fake SRC4 "$WORK/l1"
"$BERTH" copy --quiet "127.0.0.1:$SRC4_PORT/src/app:v1" "$D/dst/app:v1"
expect_eq "$(manifest_code "$D" dst/app v1)" 200 \
    "copy after the restart"

# 3. a registry that is not up yet when the copy starts: connection errors are retried with
#    backoff (200, 400, 800, 1600 ms), so a registry that comes up within that window is reached
port=$(free_port)
"$BERTH" copy --verbose "oci:$WORK/l1:v1" "127.0.0.1:$port/late/app:v1" >/dev/null 2>"$WORK/late.log" &
cp=$!
sleep 0.3
FIXED_PORT=$port start_distribution LATE
set +e
wait "$cp"
rc=$?
set -e
grep -q 'retrying in' "$WORK/late.log" || fail "no retry: $(cat "$WORK/late.log")"
expect_eq "$rc" 0 "copy to a registry that came up late"
expect_eq "$(manifest_code "127.0.0.1:$port" late/app v1)" 200 "late copy tag"

# 4. the destination killed (-9) and restarted on the same storage while a layer streams into an
#    upload session: the client asks the session where it stands (GET: its Range), goes on from
#    there (or, when the registry dropped the session, starts it anew), and the copy completes.
#    Distribution keeps the bytes of the half-received PATCH (so a replay from 0 gets 416, or
#    400 when its session state no longer matches); berth serve rolls them back.
serve_on() { # PORT ROOT LOG: start berth serve, wait for it, set SERVE_PID
    "$BERTH" serve --listen "127.0.0.1:$1" --root "$2" >>"$3" 2>&1 &
    SERVE_PID=$!
    PIDS+=($SERVE_PID)
    wait_port "$1"
}
sessions() { # ROOT: upload sessions open in a berth store
    find "$1/_berth/uploads" -name '*.json' 2>/dev/null | wc -l
}
BIG_LAYER=$((600 * 1024)) make_layout "$WORK/l4" v1 >/dev/null
dport=$(free_port)
mkdir -p "$WORK/D4/data"
{
    echo "version: 0.1"
    echo "log: {level: error, accesslog: {disabled: true}}"
    echo "storage: {filesystem: {rootdirectory: $WORK/D4/data}, delete: {enabled: true}}"
    echo "http: {addr: 127.0.0.1:$dport, secret: berth-test-secret}"
} >"$WORK/D4/config.yml"
docker-registry serve "$WORK/D4/config.yml" >"$WORK/D4/log" 2>&1 &
D4_PID=$!
PIDS+=($D4_PID)
wait_port "$dport"
start_fake SRC5 "$WORK/l4" --slow
"$BERTH" copy --verbose "127.0.0.1:$SRC5_PORT/src/app:v1" "127.0.0.1:$dport/dst/app:v1" \
    >"$WORK/out" 2>"$WORK/restart.log" &
cp=$!
sleep 2
kill -9 "$D4_PID"
wait "$D4_PID" 2>/dev/null || true
docker-registry serve "$WORK/D4/config.yml" >>"$WORK/D4/log" 2>&1 &
PIDS+=($!)
wait_port "$dport"
set +e
wait "$cp"
rc=$?
set -e
grep -E 'resuming|restarting|416|asking' "$WORK/restart.log" | head -5 || true
expect_eq "$rc" 0 "copy through a Distribution restart: exit status ($(tail -n 1 "$WORK/restart.log"))"
grep -qE 'resuming blob|restarting blob' "$WORK/restart.log" ||
    fail "no resume: $(cat "$WORK/restart.log")"
expect_eq "$(manifest_digest "127.0.0.1:$dport" dst/app v1)" "$(cat "$WORK/out")" \
    "tag after the Distribution restart"

start_fake SRC7 "$WORK/l4" --slow
bport=$(free_port)
mkdir -p "$WORK/B"
serve_on "$bport" "$WORK/B/root" "$WORK/B/log"
B=127.0.0.1:$bport
"$BERTH" copy --verbose "127.0.0.1:$SRC7_PORT/src/app:v1" "$B/dst/app:v1" >"$WORK/out" \
    2>"$WORK/restart2.log" &
cp=$!
sleep 2
kill -9 "$SERVE_PID"
wait "$SERVE_PID" 2>/dev/null || true
serve_on "$bport" "$WORK/B/root" "$WORK/B/log"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 0 "copy through a berth serve restart: exit status ($(tail -n 1 "$WORK/restart2.log"))"
expect_eq "$(manifest_digest "$B" dst/app v1)" "$(cat "$WORK/out")" "tag after the restart"
expect_eq "$(sessions "$WORK/B/root")" 0 "sessions left after a copy through a restart"

# 5. a copy that fails (the source dies mid-layer) cancels the upload sessions it opened
start_fake SRC6 "$WORK/l4" --slow
"$BERTH" copy "127.0.0.1:$SRC6_PORT/src/app:v1" "$B/dst/gone:v1" >/dev/null 2>"$WORK/err" &
cp=$!
sleep 1.5
[ "$(sessions "$WORK/B/root")" -ge 1 ] || fail "no session open while the layer streams"
kill "$SRC6_PID"
set +e
wait "$cp"
rc=$?
set -e
expect_eq "$rc" 1 "exit status when the source dies (berth serve destination)"
expect_eq "$(sessions "$WORK/B/root")" 0 "sessions left after a failed copy"
# (the server counts a request once its answer is out: allow it a moment)
# (the server counts a request once its answer is out: allow it a moment; the text is read
# whole first, as grep -q ending a pipe early would fail curl under pipefail)
for _ in $(seq 1 20); do
    metrics=$(curl -s "http://$B/metrics")
    grep -q 'method="DELETE",route="uploads",code="204"' <<<"$metrics" && break
    sleep 0.1
done
grep -q 'method="DELETE",route="uploads",code="204"' <<<"$metrics" ||
    fail "no DELETE of the upload session in the metrics: $(grep DELETE <<<"$metrics")"
echo "ok"
