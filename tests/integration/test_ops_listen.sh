#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An invalid listen address from the file or the environment is a configuration error with
# its place, found by --print-config too. Before, `listen: "127.0.0.1:99999"` passed
# --print-config (exit 0), and serving said "listen wants ADDR:PORT" without saying where.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP
printf 'listen: "127.0.0.1:99999"\n' >"$T/c.yaml"
"$BERTH" serve --config "$T/c.yaml" --print-config >/dev/null 2>"$T/err"
check "--print-config of listen 127.0.0.1:99999" 2 $?
if grep -q "$T/c.yaml:1:9: listen: wants ADDR:PORT" "$T/err"; then ok; else
    fail "file message: $(cat "$T/err")"
fi
BERTH_LISTEN=nohost "$BERTH" serve --root "$T/r" 2>"$T/err"
check "BERTH_LISTEN=nohost" 2 $?
if grep -q "BERTH_LISTEN: listen: wants ADDR:PORT" "$T/err"; then ok; else
    fail "environment message: $(cat "$T/err")"
fi
out=$(BERTH_LISTEN='[::1]:5999' "$BERTH" serve --print-config)
check "an IPv6 address passes" 'listen: "[::1]:5999"' "$(grep '^listen:' <<<"$out")"
finish
