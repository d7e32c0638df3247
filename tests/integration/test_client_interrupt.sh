#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A registry killed in the middle of a copy: the copy fails with a message naming what failed,
# exits 1, and leaves no tag at the destination (registry or OCI layout).
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
echo "ok"
