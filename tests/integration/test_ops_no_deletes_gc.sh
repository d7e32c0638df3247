#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# Deletes switched off (--no-deletes, storage.delete_enabled: false) also keep the online gc
# from removing images: an untagged manifest older than gc.untagged_delay, the tags a retention
# rule drops, and a referrer whose subject is absent all stay. gc still runs: a blob that no
# manifest references goes after the grace period, its bytes freed.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
MT=application/vnd.oci.image.manifest.v1+json
# push_image X [TAG]: as test_ops_gc_defaults.sh; prints the digests of manifest and layer
push_image() {
    local m
    head -c 2000 /dev/urandom >"$T/l.$1"
    echo "{\"n\":\"$1\"}" >"$T/c.$1"
    push_blob keep/app "$T/l.$1" >/dev/null
    push_blob keep/app "$T/c.$1" >/dev/null
    make_manifest "$T/c.$1" "$T/l.$1" "$T/m.$1"
    m=$(sha256_file "$T/m.$1")
    curl -s -o /dev/null -X PUT --data-binary "@$T/m.$1" -H "Content-Type: $MT" \
        "$URL/v2/keep/app/manifests/${2:-$m}"
    echo "$m $(sha256_file "$T/l.$1")"
}
pool() { [ -f "$BERTH_TMP/root/_berth/blobs/sha256/${1#sha256:}" ] && echo present || echo gone; }

# pushed under the defaults (no gc pass for an hour), then restarted with short periods
start_server
read -r ma la <<<"$(push_image a v1)"
read -r mb _ <<<"$(push_image b v1)" # a loses its tag
read -r _ _ <<<"$(push_image p1 pr-1)"
read -r _ _ <<<"$(push_image p2 pr-2)"
# a referrer whose subject was never pushed
python3 - "$T/m.a" "$T/ref" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["subject"] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": "sha256:" + "5" * 64, "size": 10}
m["artifactType"] = "application/vnd.example.sig"
open(sys.argv[2], "w").write(json.dumps(m))
PY
mr=$(sha256_file "$T/ref")
check "referrer pushed" 201 "$(code -X PUT --data-binary "@$T/ref" -H "Content-Type: $MT" \
    "$URL/v2/keep/app/manifests/$mr")"
head -c 3000 /dev/urandom >"$T/loose"
lz=$(push_blob keep/app "$T/loose")
check "a is untagged" 200 "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/$ma")"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
sleep 3 # older than the short periods below
cat >"$T/cfg.yaml" <<'Y'
gc:
  interval: 1s
  grace: 2s
  untagged_delay: 2s
  retention:
    - tags: "pr-*"
      keep_last: 1
Y
start_server --config "$T/cfg.yaml" --no-deletes
for _ in $(seq 1 100); do
    [ "$(pool "$lz")" = gone ] && break
    sleep 0.1
done
check "gc ran: the unreferenced blob's bytes freed" gone "$(pool "$lz")"
sleep 1.5 # one more pass
check "untagged manifest stays" 200 "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/$ma")"
check "its layer stays" 200 "$(code "$URL/v2/keep/app/blobs/$la")"
check "its layer's bytes stay" present "$(pool "$la")"
check "retention keeps pr-1" 200 "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/pr-1")"
check "retention keeps pr-2" 200 "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/pr-2")"
check "referrer without subject stays" 200 \
    "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/$mr")"
check "tagged image stays" 200 "$(code -H "Accept: $MT" "$URL/v2/keep/app/manifests/v1")"
check "DELETE refused" 405 "$(code -X DELETE "$URL/v2/keep/app/manifests/$mb")"
if grep -q 'berth serve: gc: 0 tags, 0 manifests' "$BERTH_LOG"; then ok; else
    fail "gc summary: 0 tags, 0 manifests removed"
fi
check "serve --help says gc keeps images with --no-deletes" yes \
    "$("$BERTH" serve --help | grep -A2 -- '--no-deletes' | grep -q 'gc removes no' && echo yes)"
finish
