#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Real clients against `berth serve`: skopeo pushes an image built with umoci, inspects it,
# pulls it back, and the bytes round-trip.
. "$(dirname "$0")/lib.sh"
if ! command -v skopeo >/dev/null || ! command -v umoci >/dev/null; then
    # scripts/setup.sh installs both: their absence is a failure, not a skip
    echo "skopeo or umoci missing"
    echo "0 passed, 1 failed"
    exit 1
fi
start_server

T=$BERTH_TMP
mkdir -p "$T/rootfs/etc"
echo "hello from berth" >"$T/rootfs/etc/greeting"
head -c 200000 /dev/urandom >"$T/rootfs/etc/noise"
umoci init --layout "$T/src" >/dev/null 2>&1 && ok || fail "umoci init"
umoci new --image "$T/src:v1" >/dev/null 2>&1 && ok || fail "umoci new"
umoci insert --rootless --image "$T/src:v1" "$T/rootfs" / >/dev/null 2>&1 && ok || fail "umoci insert"

SK="skopeo --insecure-policy"
if $SK copy --dest-tls-verify=false "oci:$T/src:v1" "docker://$HOSTPORT/it/skopeo:v1" \
    >"$T/push.log" 2>&1; then
    ok
else
    fail "skopeo push: $(tail -n 5 "$T/push.log")"
fi
if $SK inspect --tls-verify=false --raw "docker://$HOSTPORT/it/skopeo:v1" >"$T/raw" 2>"$T/inspect.err"; then
    ok
else
    fail "skopeo inspect: $(cat "$T/inspect.err")"
fi
req GET /v2/it/skopeo/manifests/v1
check "manifest served as pushed" "$(sha256_file "$T/raw")" "$(sha256_file "$BODY")"
# a second push of the same image: every blob exists already
if $SK copy --dest-tls-verify=false "oci:$T/src:v1" "docker://$HOSTPORT/it/skopeo:v2" \
    >"$T/push2.log" 2>&1; then
    ok
else
    fail "skopeo second push: $(tail -n 5 "$T/push2.log")"
fi
# cross-repository: skopeo mounts or re-uploads, either way it must work
if $SK copy --src-tls-verify=false --dest-tls-verify=false "docker://$HOSTPORT/it/skopeo:v1" \
    "docker://$HOSTPORT/it/copied:v1" >"$T/copy.log" 2>&1; then
    ok
else
    fail "skopeo registry to registry: $(tail -n 5 "$T/copy.log")"
fi
if $SK copy --src-tls-verify=false "docker://$HOSTPORT/it/copied:v1" "oci:$T/dst:v1" \
    >"$T/pull.log" 2>&1; then
    ok
else
    fail "skopeo pull: $(tail -n 5 "$T/pull.log")"
fi
if umoci unpack --rootless --image "$T/dst:v1" "$T/bundle" >/dev/null 2>&1; then
    ok
else
    fail "umoci unpack of the pulled image"
fi
check "file round trip" "hello from berth" "$(cat "$T/bundle/rootfs/etc/greeting" 2>/dev/null)"
check "noise round trip" "$(sha256_file "$T/rootfs/etc/noise")" \
    "$(sha256_file "$T/bundle/rootfs/etc/noise" 2>/dev/null)"
TAGS=$($SK list-tags --tls-verify=false "docker://$HOSTPORT/it/skopeo" 2>/dev/null |
    python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)["Tags"]))')
check "skopeo list-tags" "v1 v2" "$TAGS"

server_alive && ok || fail "server died"
finish
