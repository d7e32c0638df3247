#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The pull-through cache (issue 12), on loopback: a second berth serve is the upstream, the
# cache (proxy.upstreams, prefix up.example) is asked in front of it. Per round, medians:
#   - a cold 64 MiB blob through the cache (nothing cached; one fetch) against the same kind of
#     blob GET directly from the upstream: time to first byte and total (curl);
#   - a cold image pull through the cache against a pull directly from the upstream (skopeo
#     copy to dir:, 4 layers of 16 MiB, a fresh image each round);
#   - a warm image pull through the cache against a pull of the same image pushed to the
#     cache server under a local name (same run, same bytes).
# Prints a markdown table.
#   bench/proxy.sh [ROUNDS]      (from the project's root, after `make`; default 5 rounds)
# Env: BERTH (default build/berth), BERTH_TEST_PORTS (e.g. 5900-5999: ports to use),
# VIA_PROXY=1: the upstream is reached (directly and by the cache alike) through the tests'
# fault proxy (tests/integration/proxy_fault.py, pass mode), a stand-in for an upstream slower
# than loopback.
set -uo pipefail
ROUNDS=${1:-5}
BERTH=$(realpath "${BERTH:-build/berth}")
export BERTH
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../tests/integration/lib.sh"
. "$HERE/../tests/integration/proxy_lib.sh"
command -v skopeo >/dev/null || { echo "skopeo missing" >&2; exit 1; }
T=$BERTH_TMP
MIB=$((1024 * 1024))
SK="skopeo --insecure-policy"

start_upstream up
UP=http://127.0.0.1:$up_PORT
PUSH=$UP
if [ -n "${VIA_PROXY:-}" ]; then
    start_fault "$up_PORT"
    UP=http://127.0.0.1:$FAULT_PORT
fi
UPHOST=${UP#http://}
write_proxy_config "$T/cache.yaml" up.example "$UP"
start_server --config "$T/cache.yaml" --quiet

# push_layers URL NAME TAG N BYTES: an image of N random layers pushed with curl
push_layers() {
    local url=$1 name=$2 tag=$3 n=$4 bytes=$5 dir i
    dir=$(mktemp -d "$T/img.XXXXXX")
    for i in $(seq 1 "$n"); do
        head -c "$bytes" /dev/urandom >"$dir/l$i"
        put_blob "$url" "$name" "$dir/l$i" >/dev/null
    done
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/c"
    put_blob "$url" "$name" "$dir/c" >/dev/null
    python3 - "$dir" "$n" >"$dir/m" <<'PY'
import hashlib, json, sys
d, n = sys.argv[1], int(sys.argv[2])
def desc(mt, p):
    b = open(p, "rb").read()
    return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": desc("application/vnd.oci.image.config.v1+json", d + "/c"),
                  "layers": [desc("application/vnd.oci.image.layer.v1.tar", "%s/l%d" % (d, i))
                             for i in range(1, n + 1)]}), end="")
PY
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/m" "$url/v2/$name/manifests/$tag" || { echo "push failed" >&2; exit 1; }
    rm -rf "$dir"
}

# pull SECONDS_FILE REF: skopeo copy REF to a fresh dir:, its wall time appended to the file
pull() {
    local out=$T/pulled s e
    rm -rf "$out"
    s=$(date +%s.%N)
    $SK copy -q --src-tls-verify=false "docker://$2" "dir:$out" >/dev/null 2>"$T/sk.err" ||
        { echo "skopeo copy $2 failed: $(tail -n 2 "$T/sk.err")" >&2; exit 1; }
    e=$(date +%s.%N)
    echo "$e - $s" | bc >>"$1"
    rm -rf "$out"
}

# blob_get FILE URL: curl's time to first byte and total, appended to FILE
blob_get() {
    curl -sf -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "$2" >>"$1" ||
        { echo "GET $2 failed" >&2; exit 1; }
}

median() { # FILE [COLUMN]
    sort -g -k"${2:-1},${2:-1}" "$1" | awk -v c="${2:-1}" '{ v[NR] = $c } END {
        if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

for r in $(seq 1 "$ROUNDS"); do
    # ---- one cold 64 MiB blob, directly then through the cache (each its own blob) ----
    push_image "$PUSH" lib/blob "d$r" $((64 * MIB))
    blob_get "$T/blob.direct" "$UP/v2/lib/blob/blobs/$IMG_LAYER_DIGEST"
    push_image "$PUSH" lib/blob "c$r" $((64 * MIB))
    blob_get "$T/blob.cold" "$URL/v2/up.example/lib/blob/blobs/$IMG_LAYER_DIGEST"
    blob_get "$T/blob.warm" "$URL/v2/up.example/lib/blob/blobs/$IMG_LAYER_DIGEST"
    # ---- a cold image pull, directly and through the cache (a fresh image each) ----
    push_layers "$PUSH" lib/img "d$r" 4 $((16 * MIB))
    pull "$T/pull.direct" "$UPHOST/lib/img:d$r"
    push_layers "$PUSH" lib/img "c$r" 4 $((16 * MIB))
    pull "$T/pull.cold" "$HOSTPORT/up.example/lib/img:c$r"
    # ---- warm through the cache against the same image pushed to the cache server ----
    $SK copy -q --src-tls-verify=false --dest-tls-verify=false "docker://127.0.0.1:$up_PORT/lib/img:c$r" \
        "docker://$HOSTPORT/local/img:c$r" >/dev/null 2>&1 || { echo "push to the cache server failed" >&2; exit 1; }
    pull "$T/pull.warm" "$HOSTPORT/up.example/lib/img:c$r"
    pull "$T/pull.pushed" "$HOSTPORT/local/img:c$r"
done

ratio() { echo "scale=2; $1 / $2" | bc; }
bd1=$(median "$T/blob.direct" 1) bd2=$(median "$T/blob.direct" 2)
bc1=$(median "$T/blob.cold" 1) bc2=$(median "$T/blob.cold" 2)
bw1=$(median "$T/blob.warm" 1) bw2=$(median "$T/blob.warm" 2)
pd=$(median "$T/pull.direct") pc=$(median "$T/pull.cold")
pw=$(median "$T/pull.warm") pp=$(median "$T/pull.pushed")
echo "| figure ($ROUNDS rounds, medians, seconds) | reference | through the cache | cache/reference |"
echo "|---|---|---|---|"
echo "| 64 MiB blob GET, time to first byte: cold cache vs upstream direct | $bd1 | $bc1 | $(ratio "$bc1" "$bd1") |"
echo "| 64 MiB blob GET, total: cold cache vs upstream direct | $bd2 | $bc2 | $(ratio "$bc2" "$bd2") |"
echo "| 64 MiB blob GET, total: warm cache vs upstream direct | $bd2 | $bw2 | $(ratio "$bw2" "$bd2") |"
echo "| skopeo pull 4 x 16 MiB: cold cache vs upstream direct | $pd | $pc | $(ratio "$pc" "$pd") |"
echo "| skopeo pull 4 x 16 MiB: warm cache vs pushed content, same server | $pp | $pw | $(ratio "$pw" "$pp") |"
