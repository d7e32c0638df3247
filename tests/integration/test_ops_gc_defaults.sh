#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Deletes free space by default, as zot's defaults do: online gc runs (gc.interval 1h) and an
# untagged manifest that nothing references is collected once older than gc.untagged_delay
# (1d), then its blobs once nothing references them (gc.grace 1h). Here the periods are set
# short; everything else is the default. After `berth delete HOST/REPO:TAG` the image's
# manifest and blobs go, bytes included; a tagged image and an index's untagged children stay.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
out=$("$BERTH" serve --print-config)
check "online gc on by default" 'interval: 1h' "$(grep 'interval:' <<<"$out" | sed 's/^ *//')"
check "grace 1h by default" 'grace: 1h' "$(grep ' grace:' <<<"$out" | sed 's/^ *//')"
check "untagged manifests collected after a day by default" 'untagged_delay: 1d' \
    "$(grep 'untagged_delay:' <<<"$out" | sed 's/^ *//')"

check "delete --help says what happens to the space" yes \
    "$("$BERTH" delete --help | grep -q 'gc.untagged_delay (1d)' && echo yes)"

# The images are pushed under the defaults (the first online gc an hour away), so no gc pass
# can meet a blob between its upload and its manifest however slow the machine is; the server
# is then restarted on the same root with the periods set short.
start_server
code() { curl -s -o /dev/null -w '%{http_code}' "$@"; }
MT=application/vnd.oci.image.manifest.v1+json
# push_image X [TAG]: an image of its own config and layer in gc/app, its manifest in $T/m.X,
# put under TAG (else by digest); prints the digests of manifest, config and layer
push_image() {
    local m
    head -c 2000 /dev/urandom >"$T/l.$1"
    echo "{\"n\":\"$1\"}" >"$T/c.$1"
    push_blob gc/app "$T/l.$1" >/dev/null
    push_blob gc/app "$T/c.$1" >/dev/null
    make_manifest "$T/c.$1" "$T/l.$1" "$T/m.$1"
    m=$(sha256_file "$T/m.$1")
    curl -s -o /dev/null -X PUT --data-binary "@$T/m.$1" -H "Content-Type: $MT" \
        "$URL/v2/gc/app/manifests/${2:-$m}"
    echo "$m $(sha256_file "$T/c.$1") $(sha256_file "$T/l.$1")"
}
read -r ma ca la <<<"$(push_image a v1)"
read -r mb cb lb <<<"$(push_image b b1)"
# an index, tagged, over two children pushed by digest (untagged)
read -r m1 _ _ <<<"$(push_image x)"
read -r m2 _ ly <<<"$(push_image y)"
check "child 1 by digest" 200 "$(code -I -H "Accept: $MT" "$URL/v2/gc/app/manifests/$m1")"
python3 - "$T/m.x" "$T/m.y" "$T/index" <<'PY'
import hashlib, json, sys
def d(p, arch):
    b = open(p, 'rb').read()
    return {"mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b),
            "platform": {"architecture": arch, "os": "linux"}}
i = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
     "manifests": [d(sys.argv[1], "amd64"), d(sys.argv[2], "arm64")]}
open(sys.argv[3], 'w').write(json.dumps(i))
PY
check "index tagged" 201 "$(code -X PUT --data-binary "@$T/index" \
    -H 'Content-Type: application/vnd.oci.image.index.v1+json' "$URL/v2/gc/app/manifests/multi")"

# delete b's tag with the berth client: its manifest is now untagged and referenced by nothing
if "$BERTH" delete --quiet "$HOSTPORT/gc/app:b1" 2>"$T/err"; then ok; else
    fail "berth delete: $(cat "$T/err")"
fi
pool() { [ -f "$BERTH_TMP/root/_berth/blobs/sha256/${1#sha256:}" ] && echo present || echo gone; }
check "b's layer in the pool before gc" present "$(pool "$lb")"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
sleep 3 # older than the short periods below
BERTH_GC_INTERVAL=1s BERTH_GC_GRACE=2s BERTH_GC_UNTAGGED_DELAY=3s start_server
for _ in $(seq 1 100); do
    [ "$(pool "$lb")" = gone ] && break
    sleep 0.1
done
check "untagged manifest collected" 404 "$(code -H "Accept: $MT" "$URL/v2/gc/app/manifests/$mb")"
check "its config unlinked" 404 "$(code "$URL/v2/gc/app/blobs/$cb")"
check "its layer unlinked" 404 "$(code "$URL/v2/gc/app/blobs/$lb")"
check "its layer's bytes freed" gone "$(pool "$lb")"
check "its config's bytes freed" gone "$(pool "$cb")"
check "its manifest's bytes freed" gone "$(pool "$mb")"
check "tagged image stays" 200 "$(code -H "Accept: $MT" "$URL/v2/gc/app/manifests/v1")"
check "tagged image's layer stays" 200 "$(code "$URL/v2/gc/app/blobs/$la")"
check "index stays" 200 "$(code -H 'Accept: application/vnd.oci.image.index.v1+json' \
    "$URL/v2/gc/app/manifests/multi")"
check "index child 1 stays" 200 "$(code -H "Accept: $MT" "$URL/v2/gc/app/manifests/$m1")"
check "index child 2 stays" 200 "$(code -H "Accept: $MT" "$URL/v2/gc/app/manifests/$m2")"
check "child's layer stays" 200 "$(code "$URL/v2/gc/app/blobs/$ly")"
if grep -q 'berth serve: gc: [0-9]* tags, [1-9][0-9]* manifests' "$BERTH_LOG"; then ok; else
    fail "gc summary names the removed manifest"
fi

# Offline gc follows the same default: an untagged manifest nothing needs goes once older than
# --untagged-delay (default 1d, as the server's), without --max-untagged-age.
check "gc --help names the untagged delay" yes \
    "$("$BERTH" gc --help | grep -q -- '--untagged-delay (default 1d' && echo yes)"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
start_server # the defaults again: no online gc pass during what follows
read -r mc _ lc <<<"$(push_image c c1)"
curl -s -o /dev/null -X DELETE "$URL/v2/gc/app/manifests/c1"
check "c untagged, still there" 200 "$(code -H "Accept: $MT" "$URL/v2/gc/app/manifests/$mc")"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=
"$BERTH" gc --root "$BERTH_TMP/root" >"$T/gc1" 2>&1
check "offline gc keeps an untagged manifest younger than the default delay" present \
    "$(pool "$mc")"
sleep 2
"$BERTH" gc --root "$BERTH_TMP/root" --untagged-delay 1s >"$T/gc2" 2>&1
check "offline gc --untagged-delay 1s removes it" gone "$(pool "$mc")"
check "and its layer's bytes" gone "$(pool "$lc")"
check "the tagged image stays" present "$(pool "$la")"
check "the index's child stays" present "$(pool "$m1")"

finish
