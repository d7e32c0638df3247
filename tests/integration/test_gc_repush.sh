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
sleep 7 # older than the delay below when the second server's gc looks
check "pushed again" 201 "$(code -X PUT --data-binary "@$T/m" -H "Content-Type: $MT" \
    "$URL/v2/re/app/manifests/$m")"
stop

# gc every second, untagged manifests kept 6 s, grace 6 s (margins for a loaded machine, where
# stopping one server and starting the next can take seconds)
printf 'gc: {interval: 1s, grace: 6s, untagged_delay: 6s}\n' >"$T/gc.yaml"
start_server --config "$T/gc.yaml"
sleep 1.5
check "pushed again moments ago: kept" 200 "$(code -H "Accept: $MT" "$URL/v2/re/app/manifests/$m")"
sleep 6.5
check "untagged and old: collected" 404 "$(code -H "Accept: $MT" "$URL/v2/re/app/manifests/$m")"
finish
