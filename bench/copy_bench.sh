#!/usr/bin/env bash
# Registry-to-registry copy: `berth copy` against `skopeo copy` on the same pair of registries
# (berth serve as the source, Distribution as the destination), interleaved round by round.
# Images: "big" (one 256 MiB layer) and "many" (8 layers, 1 KiB .. 40 MiB, 76 MiB in all).
#   bench/copy_bench.sh [ROUNDS]        run from the project's root, after `make`
set -euo pipefail
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5120}
work=$(mktemp -d /tmp/berth-copybench-XXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
wait_up() { for _ in $(seq 100); do curl -sf -o /dev/null "$1/v2/" && return 0; sleep 0.1; done; return 1; }

cat >"$work/dist.yml" <<YML
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/dist}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$((port + 1))}
YML
"$berth" serve --quiet --listen "127.0.0.1:$port" --root "$work/src" 2>/dev/null & pids+=($!)
src=127.0.0.1:$port dst=127.0.0.1:$((port + 1))
wait_up "http://$src"
# every copy goes to an empty Distribution, and skopeo gets a fresh HOME (no blob-info cache),
# so that neither tool finds a blob already at the destination
dist_pid=
fresh_dest() {
    if [ -n "$dist_pid" ]; then kill "$dist_pid"; wait "$dist_pid" 2>/dev/null || true; fi
    rm -rf "$work/dist" "$work/home"
    mkdir -p "$work/home"
    docker-registry serve "$work/dist.yml" >/dev/null 2>&1 &
    dist_pid=$!
    pids+=("$dist_pid")
    wait_up "http://$dst"
}

python3 - "$work" <<'PY'
import gzip, hashlib, json, os, subprocess, sys
work = sys.argv[1]
def layout(name, sizes):
    lay = os.path.join(work, name); blobs = os.path.join(lay, "blobs", "sha256"); os.makedirs(blobs)
    def put(b):
        d = hashlib.sha256(b).hexdigest(); open(os.path.join(blobs, d), "wb").write(b); return "sha256:" + d, len(b)
    layers, diff_ids = [], []
    for i, size in enumerate(sizes):
        raw = subprocess.run(f"openssl enc -aes-128-ctr -nosalt -pass pass:{name}{i} -pbkdf2 </dev/zero 2>/dev/null | head -c {size}",
                             shell=True, check=True, capture_output=True).stdout
        data = gzip.compress(raw, compresslevel=1, mtime=0)
        d, s = put(data)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": s})
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
    cd, cs = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode())
    md, ms = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cs},
                             "layers": layers}).encode())
    json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md,
               "size": ms, "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}, open(os.path.join(lay, "index.json"), "w"))
    json.dump({"imageLayoutVersion": "1.0.0"}, open(os.path.join(lay, "oci-layout"), "w"))
layout("big", [256 << 20])
layout("many", [1 << 10, 64 << 10, 512 << 10, 1 << 20, 4 << 20, 10 << 20, 20 << 20, 40 << 20])
PY
for img in big many; do
    skopeo copy -q --insecure-policy --dest-tls-verify=false "oci:$work/$img:v1" "docker://$src/bench/$img:v1"
done

declare -A total
for r in $(seq "$rounds"); do
    for img in big many; do
        for tool in skopeo berth; do
            dest="docker://$dst/r$r/$tool/$img:v1"
            fresh_dest
            t0=$(date +%s.%N)
            if [ "$tool" = skopeo ]; then
                HOME=$work/home skopeo copy -q --insecure-policy --src-tls-verify=false \
                    --dest-tls-verify=false "docker://$src/bench/$img:v1" "$dest"
            else
                "$berth" copy --quiet "$src/bench/$img:v1" "$dst/r$r/$tool/$img:v1" >/dev/null
            fi
            t=$(echo "$(date +%s.%N) - $t0" | bc)
            echo "round $r $img $tool ${t}s" >&2
            total[$img,$tool]="${total[$img,$tool]:-} $t"
        done
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "| image | skopeo copy (s) | berth copy (s) | berth/skopeo |"
echo "|---|---|---|---|"
for img in big many; do
    s=$(echo "${total[$img,skopeo]}" | median); b=$(echo "${total[$img,berth]}" | median)
    printf '| %s | %.2f | %.2f | %.2f |\n' "$img" "$s" "$b" "$(echo "$b / $s" | bc -l)"
done
