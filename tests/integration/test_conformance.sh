#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# The OCI distribution-spec conformance suite as conformance.py replays it (the newest suite
# with every optional test on, and v1.1.1): no check may fail. Run twice: with defaults (sparse
# manifests refused, which the suite counts as skipped) and with sparse_manifests: "*" (where
# the sparse checks must pass too).
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    python3 "$(dirname "$0")/conformance.py" "$BERTH_TEST_URL" && ok || fail "conformance"
    finish
fi
DIR=$(dirname "$0")
T=$BERTH_TMP

run() { # NAME [serve options...]
    local name=$1
    shift
    start_server "$@" --quiet
    if python3 "$DIR/conformance.py" "$URL" >"$T/$name.out" 2>&1; then ok; else
        fail "$name: $(grep -E '^FAIL|Traceback|Error' "$T/$name.out" | head -20)"
    fi
    tail -1 "$T/$name.out"
    kill "$BERTH_PID" 2>/dev/null
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
    rm -rf "$T/root"
}

run defaults
skipped=$(awk '/passed, .* failed, .* skipped/ {print $5}' "$T/defaults.out")
printf 'sparse_manifests: "*"\n' >"$T/sparse.yaml"
run sparse --config "$T/sparse.yaml"
if grep -q '^skip - sparse' "$T/sparse.out"; then
    fail "sparse checks skipped with sparse_manifests on: $(grep '^skip - sparse' "$T/sparse.out" | head -3)"
else
    ok
fi
grep -q '^ok - .*sparse' "$T/sparse.out" && ok || fail "no sparse check ran"
echo "skipped with defaults: $skipped"
finish
