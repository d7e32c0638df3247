#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any
# A manifest pushed again is as young as its last push. A client that pushes an image again
# (the children of an index by digest, then the index by tag) after its tag was deleted finds
# the untagged manifests still stored; before, the PUT did not renew their push time, so an
# online gc pass between the children's PUT and the index's collected them as old untagged
# manifests (grace and untagged_delay counted from the first push) and the index PUT failed.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
MT=application/vnd.oci.image.manifest.v1+json
stop() {
    kill "$BERTH_PID"
    wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
}

# an untagged manifest, pushed with gc off
start_server --gc-interval 0
head -c 3000 /dev/urandom >"$T/layer"
echo '{"architecture":"amd64","os":"linux"}' >"$T/config"
push_blob re/app "$T/layer" >/dev/null
push_blob re/app "$T/config" >/dev/null
make_manifest "$T/config" "$T/layer" "$T/m"
m=$(sha256_file "$T/m")
check "first push" 201 "$(code -X PUT --data-binary "@$T/m" -H "Content-Type: $MT" \
    "$URL/v2/re/app/manifests/$m")"
sleep 4.5
check "pushed again" 201 "$(code -X PUT --data-binary "@$T/m" -H "Content-Type: $MT" \
    "$URL/v2/re/app/manifests/$m")"
stop

# gc every second, untagged manifests kept 3 s, grace 3 s
printf 'gc: {interval: 1s, grace: 3s, untagged_delay: 3s}\n' >"$T/gc.yaml"
start_server --config "$T/gc.yaml"
sleep 1.5
check "pushed again 2 s ago: kept" 200 "$(code -H "Accept: $MT" "$URL/v2/re/app/manifests/$m")"
sleep 4
check "untagged and old: collected" 404 "$(code -H "Accept: $MT" "$URL/v2/re/app/manifests/$m")"
finish
