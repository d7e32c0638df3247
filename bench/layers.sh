#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Many small layers (issue 14, target 5): skopeo copy of an image of 200 layers of 64 KiB of
# random bytes each (gzip-compressed, so skopeo pushes them as they are) from an OCI layout
# into an empty repository, berth against Distribution 2.8 (docker-registry, started as
# ../shared/bench/compare.sh does), a new repository each round, interleaved. Prints the median
# seconds and the ratio berth/Distribution.
#
#   bench/layers.sh [ROUNDS]    (default 3), from the project's root, after the build
# Env: BERTH (default build/berth), BERTH_ARGS (more options of berth serve), BENCH_PORT (default 5860; uses it and the next one),
# BENCH_LAYERS (default 200). Needs: docker-registry, skopeo, python3.
set -euo pipefail
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5860}
layers=${BENCH_LAYERS:-200}
work=$(mktemp -d /var/tmp/berth-layers-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
cat >"$work/distribution.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/distribution}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
YML
docker-registry serve "$work/distribution.yml" >"$work/distribution.log" 2>&1 & pids+=($!)
"$berth" serve --quiet --listen "127.0.0.1:$((port + 1))" --root "$work/berth" ${BERTH_ARGS:-} >"$work/berth.log" 2>&1 & pids+=($!)
for p in "$port" "$((port + 1))"; do
    for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$p/v2/" && break; sleep 0.1; done
done
python3 - "$work/layout" "$layers" <<'PY'
import gzip, hashlib, json, os, sys
lay, n = sys.argv[1], int(sys.argv[2])
blobs = os.path.join(lay, "blobs", "sha256")
os.makedirs(blobs)
def put(b):
    d = hashlib.sha256(b).hexdigest()
    open(os.path.join(blobs, d), "wb").write(b)
    return "sha256:" + d
layers, diff_ids = [], []
for i in range(n):
    raw = os.urandom(64 << 10)
    data = gzip.compress(raw, compresslevel=1, mtime=0)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(data), "size": len(data)})
    diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
cfg = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
m = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
                "layers": layers}).encode()
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": put(m), "size": len(m), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]},
          open(os.path.join(lay, "index.json"), "w"))
json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(lay, "oci-layout"), "w"))
PY
copy() { # PORT REPO -> seconds
    local t0 t1
    t0=$(date +%s.%N)
    skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://127.0.0.1:$1/$2:v1" >/dev/null
    t1=$(date +%s.%N)
    python3 -c "print($t1 - $t0)"
}
d=(); b=()
for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    d+=("$(copy "$port" "bench/layers$i")")
    b+=("$(copy "$((port + 1))" "bench/layers$i")")
done
python3 - "${d[@]}" -- "${b[@]}" <<PY
import statistics, sys
a = sys.argv[1:]
k = a.index("--")
d = statistics.median(map(float, a[:k])); b = statistics.median(map(float, a[k + 1:]))
print("| figure | distribution | berth | berth/distribution |\n|---|---|---|---|")
print(f"| skopeo copy, $layers x 64 KiB layers, empty repository (s) | {d:.2f} | {b:.2f} | {b / d:.2f} |")
print("rounds: distribution " + ", ".join(a[:k]) + "; berth " + ", ".join(a[k + 1:]), file=sys.stderr)
PY
