#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A copy stopped by SIGINT (Ctrl-C) or SIGTERM while a layer streams: it exits 128 + the signal (130, 143), cancels
# (DELETE) the upload session it opened at the destination and leaves no staging directory.
. "$(dirname "$0")/client_lib.sh"

BIG_LAYER=$((300 * 1024)) make_layout "$WORK/l1" v1 >/dev/null
start_berth DST || fail "berth serve did not start"
D=127.0.0.1:$DST_PORT
sessions() { curl -s "http://$D/metrics" | awk '$1=="berth_upload_sessions_open"{print $2}'; }

n=0
for sig in INT TERM; do
    want=$((128 + $(kill -l "$sig")))
    n=$((n + 1))
    start_fake "SRC$n" "$WORK/l1" --slow
    port=$(eval "echo \$SRC${n}_PORT")
    mkdir -p "$WORK/tmp$n"
    # a background job of a script ignores SIGINT; the copy gets the default disposition back
    TMPDIR="$WORK/tmp$n" python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execv(sys.argv[1], sys.argv[1:])' "$BERTH" copy "127.0.0.1:$port/src/app:v1" "$D/dst/app:v1" \
        >/dev/null 2>"$WORK/err" &
    cp=$!
    wait_stream "SRC$n"
    for _ in $(seq 1 50); do
        [ "$(sessions)" = 1 ] && break
        sleep 0.1
    done
    expect_eq "$(sessions)" 1 "sessions open while the layer streams"
    kill -"$sig" "$cp"
    set +e
    wait "$cp"
    rc=$?
    set -e
    echo "SIG$sig: rc $rc: $(tail -1 "$WORK/err")"
    expect_eq "$rc" "$want" "exit status after SIG$sig"
    grep -q interrupted "$WORK/err" || fail "no 'interrupted' after SIG$sig: $(cat "$WORK/err")"
    expect_eq "$(sessions)" 0 "sessions open after SIG$sig"
    left=$(find "$WORK/tmp$n" -mindepth 1 | head -3)
    [ -z "$left" ] || fail "staging left behind after SIG$sig: $left"
    expect_eq "$(manifest_code "$D" dst/app v1)" 404 "tag after SIG$sig"
done
echo PASS
