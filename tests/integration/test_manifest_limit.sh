#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# limits.manifest_size reaches every layer that enforces it: a 5 MiB manifest is stored under
# a 16 MiB limit (the store once kept its own 4 MiB default), refused with 413 over the limit,
# and stays readable after a restart with a lower limit.
. "$(dirname "$0")/lib.sh"
T=$BERTH_TMP
python3 - "$T/big" <<'PY'
import json, sys
doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
       "manifests": [], "annotations": {"org.example.blob": "x" * (5 << 20)}}
open(sys.argv[1], "w").write(json.dumps(doc))
PY
printf 'limits:\n  manifest_size: 16MiB\n' >"$T/big.yaml"
printf 'limits:\n  manifest_size: 1MiB\n' >"$T/small.yaml"

start_server --config "$T/big.yaml"
req PUT /v2/big/manifests/v1 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/big"
check "5 MiB manifest under a 16 MiB limit" 201 "$STATUS"
grep -q 4194304 "$BODY" && fail "a 4 MiB default still applies: $(cat "$BODY")" || ok
req GET /v2/big/manifests/v1
check "and it is served" 200 "$STATUS"
cmp -s "$BODY" "$T/big" && ok || fail "served bytes differ"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

start_server --config "$T/small.yaml"
req PUT /v2/big/manifests/v2 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/big"
expect_error "5 MiB manifest over a 1 MiB limit" 413 SIZE_INVALID
req GET /v2/big/manifests/v1
check "a manifest stored under a larger limit stays readable" 200 "$STATUS"
cmp -s "$BODY" "$T/big" && ok || fail "served bytes differ after the restart"
finish
