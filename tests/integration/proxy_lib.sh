# SPDX-License-Identifier: Apache-2.0
# Helpers of the pull-through cache tests (test_proxy_*.sh), sourced after lib.sh: an upstream
# `berth serve` (or Distribution), the fault proxy in front of it (proxy_fault.py), images pushed
# to the upstream with curl, and the cache itself started with a proxy.upstreams configuration.
# Everything started here is stopped by PID on exit.

PROXY_PIDS=()
proxy_cleanup() {
    local pid
    for pid in "${PROXY_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    cleanup
}
trap proxy_cleanup EXIT

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# BERTH_TEST_PORTS=LOW-HIGH: take the servers' ports from that range (a free one, at random)
# instead of the system's ephemeral ones
if [ -n "${BERTH_TEST_PORTS:-}" ]; then
    free_port() {
        python3 - "${BERTH_TEST_PORTS%-*}" "${BERTH_TEST_PORTS#*-}" <<'PY'
import random, socket, sys
lo, hi = int(sys.argv[1]), int(sys.argv[2])
ports = list(range(lo, hi + 1))
random.shuffle(ports)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
PY
    }
fi

wait_http() { # URL: wait until something answers
    local i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "$1"; then
            return 0
        fi
        sleep 0.05
    done
    return 1
}

# start_upstream NAME: a second berth serve (fs); sets ${NAME}_PORT, ${NAME}_PID
start_upstream() {
    local name=$1 port pid
    port=$(free_port)
    mkdir -p "$BERTH_TMP/$name"
    # always on its own root, also when the cache runs over S3 + PostgreSQL (the scale variant)
    env -u BERTH_DATABASE_URL -u BERTH_STORAGE_S3_BUCKET -u BERTH_STORAGE_S3_ENDPOINT \
        "$BERTH" serve --listen "127.0.0.1:$port" --root "$BERTH_TMP/$name/root" \
        2>"$BERTH_TMP/$name/log" &
    pid=$!
    PROXY_PIDS+=("$pid")
    eval "${name}_PORT=$port ${name}_PID=$pid"
    wait_http "http://127.0.0.1:$port/v2/" || { echo "upstream $name did not start" >&2; exit 1; }
}

# start_distribution_upstream NAME: Distribution 2.8 (Debian docker-registry)
start_distribution_upstream() {
    local name=$1 port pid dir=$BERTH_TMP/$1
    port=$(free_port)
    mkdir -p "$dir/data"
    {
        echo "version: 0.1"
        echo "log: {level: error, accesslog: {disabled: true}}"
        echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
        echo "http: {addr: 127.0.0.1:$port}"
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    pid=$!
    PROXY_PIDS+=("$pid")
    eval "${name}_PORT=$port ${name}_PID=$pid"
    wait_http "http://127.0.0.1:$port/v2/" || { echo "distribution did not start" >&2; exit 1; }
}

# start_fault TARGET_PORT: the fault proxy in front of 127.0.0.1:TARGET_PORT; sets FAULT_PORT,
# FAULT_PID, FAULT_MODE (the file to write a mode to) and FAULT_LOG (one line per request)
start_fault() {
    FAULT_PORT=$(free_port)
    FAULT_MODE=$BERTH_TMP/fault.mode
    FAULT_LOG=$BERTH_TMP/fault.log
    : >"$FAULT_LOG"
    echo pass >"$FAULT_MODE"
    python3 "$HERE/proxy_fault.py" "$FAULT_PORT" "127.0.0.1:$1" "$FAULT_MODE" "$FAULT_LOG" &
    FAULT_PID=$!
    PROXY_PIDS+=("$FAULT_PID")
    wait_http "http://127.0.0.1:$FAULT_PORT/v2/" || { echo "fault proxy did not start" >&2; exit 1; }
    : >"$FAULT_LOG"
}

fault_mode() { # MODE...: what the fault proxy does from now on
    echo "$*" >"$FAULT_MODE"
}

# upstream_requests PATTERN: how many requests the fault proxy saw whose line matches PATTERN
upstream_requests() {
    grep -c -- "$1" "$FAULT_LOG" || true
}

# put_blob URL NAME FILE: POST then PUT (Distribution ignores a monolithic POST's body); echoes
# the digest. PUSH_AUTH (user:password), when set, is sent with every request of a push.
put_blob() {
    local url=$1 d loc
    d=$(sha256_file "$3")
    loc=$(curl -s ${PUSH_AUTH:+-u "$PUSH_AUTH"} -o /dev/null -D - -X POST "$url/v2/$2/blobs/uploads/" |
        awk 'tolower($1) == "location:" { print $2 }' | tr -d '\r')
    case $loc in http*) ;; *) loc=$url$loc ;; esac
    case $loc in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
    curl -sf ${PUSH_AUTH:+-u "$PUSH_AUTH"} -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary "@$3" "$loc" || { echo "blob upload to $url failed" >&2; exit 1; }
    echo "$d"
}

# push_image UPSTREAM_URL NAME TAG [LAYER_BYTES]: a random layer and a config pushed with curl,
# then an OCI manifest; sets IMG_MANIFEST (file), IMG_DIGEST, IMG_LAYER (file), IMG_LAYER_DIGEST,
# IMG_CONFIG_DIGEST
push_image() {
    local url=$1 name=$2 tag=$3 bytes=${4:-4096} dir
    dir=$(mktemp -d "$BERTH_TMP/img.XXXXXX")
    head -c "$bytes" /dev/urandom >"$dir/layer"
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":"%s"}' \
        "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$dir/config"
    IMG_LAYER=$dir/layer
    IMG_LAYER_DIGEST=$(put_blob "$url" "$name" "$dir/layer")
    IMG_CONFIG_DIGEST=$(put_blob "$url" "$name" "$dir/config")
    make_manifest "$dir/config" "$dir/layer" "$dir/manifest"
    IMG_MANIFEST=$dir/manifest
    IMG_DIGEST=$(sha256_file "$dir/manifest")
    curl -sf ${PUSH_AUTH:+-u "$PUSH_AUTH"} -o /dev/null -X PUT \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/manifest" "$url/v2/$name/manifests/$tag" ||
        { echo "push of $name:$tag failed" >&2; exit 1; }
}

# write_proxy_config FILE PREFIX URL [TTL [IMMUTABLE]]: a configuration with one upstream
write_proxy_config() {
    {
        echo "proxy:"
        echo "  upstreams:"
        echo "    - prefix: $2"
        echo "      url: $3"
        echo "      ttl: ${4:-5m}"
        if [ -n "${5:-}" ]; then echo "      immutable_tags: [\"$5\"]"; fi
    } >"$1"
}

# metric NAME UPSTREAM: the value of a per-upstream counter of the cache ("" when absent)
metric() {
    curl -s "$URL/metrics" | awk -v n="$1{upstream=\"$2\"}" '$1 == n { print $2 }'
}

# push_real_image UPSTREAM_URL NAME TAG: an image real clients can unpack (one gzipped tar layer
# holding etc/hello, its diff_id in the config, the host's architecture) pushed with curl; sets
# REAL_DIGEST (manifest), REAL_LAYER_DIGEST, REAL_CONFIG_DIGEST
push_real_image() {
    local url=$1 name=$2 tag=$3 dir arch
    dir=$(mktemp -d "$BERTH_TMP/real.XXXXXX")
    mkdir -p "$dir/rootfs/etc"
    # the name and tag in the file: two images pushed in one second must differ (tar keeps
    # mtimes in seconds, so equal files gave equal digests and containerd skipped a GET)
    echo "hello through berth: $name:$tag" >"$dir/rootfs/etc/hello"
    tar -C "$dir/rootfs" -cf "$dir/layer.tar" etc
    gzip -n -c "$dir/layer.tar" >"$dir/layer.tar.gz"
    arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
    printf '{"architecture":"%s","os":"linux","rootfs":{"type":"layers","diff_ids":["%s"]},"config":{}}' \
        "$arch" "$(sha256_file "$dir/layer.tar")" >"$dir/config"
    REAL_LAYER_DIGEST=$(put_blob "$url" "$name" "$dir/layer.tar.gz")
    REAL_CONFIG_DIGEST=$(put_blob "$url" "$name" "$dir/config")
    make_manifest "$dir/config" "$dir/layer.tar.gz" "$dir/manifest"
    REAL_DIGEST=$(sha256_file "$dir/manifest")
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/manifest" "$url/v2/$name/manifests/$tag" ||
        { echo "push of $name:$tag failed" >&2; exit 1; }
}
