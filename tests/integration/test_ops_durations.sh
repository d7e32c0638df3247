#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Durations too long for time arithmetic: a gc interval (or any other duration) beyond
# BERTH_DURATION_MAX (2^32-1 s, 136 years) is a configuration error (exit 2), not a value
# that wraps. Before, --gc-interval 9223372036854775807s was accepted and the next pass
# time overflowed into the past: the server ran gc in a loop (tens of thousands of passes
# a second, each one logged). The longest accepted interval means "practically never".
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP

for v in 9223372036854775807s 18446744073709551615 213503982334601d 49711d; do
    "$BERTH" serve --gc-interval "$v" --print-config >/dev/null 2>"$T/err"
    check "--gc-interval $v refused" 2 $?
    if grep -q -- "--gc-interval: duration '$v' is too large" "$T/err"; then ok; else
        fail "--gc-interval $v message: $(cat "$T/err")"
    fi
done
BERTH_AUTH_TOKEN_LIFETIME=9223372036854775807s "$BERTH" serve --print-config >/dev/null 2>"$T/err"
check "BERTH_AUTH_TOKEN_LIFETIME too large refused" 2 $?
printf 'gc:\n  untagged_delay: 18446744073709551615s\n' >"$T/gc.yaml"
"$BERTH" serve --config "$T/gc.yaml" --print-config >/dev/null 2>"$T/err"
check "gc.untagged_delay too large refused" 2 $?
if grep -q "$T/gc.yaml:2:19: gc.untagged_delay" "$T/err"; then ok; else
    fail "gc.untagged_delay message: $(cat "$T/err")"
fi

# berth gc says why a duration is refused (before: "bad option or value" alone)
mkdir -p "$T/gcroot"
for v in 49711d 5x; do
    "$BERTH" gc --root "$T/gcroot" --grace "$v" --dry-run >/dev/null 2>"$T/err"
    check "gc --grace $v refused" 2 $?
    if grep -q -- "--grace $v: .*duration '$v'" "$T/err"; then ok; else
        fail "gc --grace $v message: $(cat "$T/err")"
    fi
done

# the longest accepted interval: no gc pass at all while the server runs
start_server --gc-interval 49710d
sleep 1.5
check "server alive" yes "$(server_alive && echo yes)"
check "no gc pass with a 49710d interval" 0 "$(grep -c 'gc: ' "$BERTH_LOG")"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""
# what the overflow did: the old binary would have logged a pass per wake-up here
check "--gc-interval 4294967295 accepted" 'interval: 4294967295s' \
    "$("$BERTH" serve --gc-interval 4294967295 --print-config | grep 'interval:' | sed 's/^ *//')"
finish
