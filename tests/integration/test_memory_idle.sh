#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# A plain `berth serve` (a root directory, no S3, no PostgreSQL, no proxy upstreams) maps
# neither libcurl nor libpq: the code over them is berth-remote.so, loaded only when a command
# or the configuration needs it. Its resident memory at rest, after start-up and a first
# request, is at most 8 MiB (issue 14's target: ../shared/bench/compare.sh reads VmRSS the same
# way). The client commands load the module and work; a server configured with a proxy
# upstream loads it; a program without the module still serves a root directory, and its client
# commands say what is missing.
. "$(dirname "$0")/lib.sh"
T=$BERTH_TMP

# maps_has PATTERN: whether the server maps a file whose name matches
maps_has() {
    grep -qE "$1" "/proc/$BERTH_PID/maps" && echo yes || echo no
}

start_server
check "an idle plain server maps libcurl" no "$(maps_has 'libcurl')"
check "an idle plain server maps libpq" no "$(maps_has 'libpq')"
check "an idle plain server maps berth-remote.so" no "$(maps_has 'berth-remote')"
rss=$(awk '/^VmRSS:/ {print $2}' "/proc/$BERTH_PID/status")
echo "VmRSS at rest: $rss KiB"
if grep -qa __asan_init "$BERTH"; then
    echo "SKIP: RSS bound not checked under AddressSanitizer (shadow memory)"
else
    test "$rss" -le 8192 && ok || fail "VmRSS at rest is $rss KiB, over 8 MiB"
fi

# the client loads the module: a push and a listing through the server
mkdir -p "$T/blob"
head -c 1000 /dev/urandom >"$T/blob/layer"
d=$(push_blob idle/app "$T/blob/layer")
check "a blob pushed" "sha256:$(sha256sum "$T/blob/layer" | cut -d' ' -f1)" "$d"
cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
printf '%s' "$cfg" >"$T/blob/config"
c=$(push_blob idle/app "$T/blob/config")
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":1000}]}' \
    "$c" "${#cfg}" "$d" >"$T/manifest"
req PUT /v2/idle/app/manifests/v1 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/manifest"
check "manifest PUT" 201 "$STATUS"
check "berth copy to another repository" 0 \
    "$("$BERTH" copy --quiet "$HOSTPORT/idle/app:v1" "$HOSTPORT/idle/copy:v1" >/dev/null; echo $?)"
check "berth tags of the copy" v1 "$("$BERTH" tags "$HOSTPORT/idle/copy")"
check "the server still maps no libcurl after serving the client" no "$(maps_has 'libcurl')"
"$BERTH" version >"$T/version.out" 2>&1
check "berth version" 0 "$?"
grep -q "libcurl [0-9]" "$T/version.out" && ok || fail "berth version names no libcurl: $(cat "$T/version.out")"

# serve_other NAME [serve options...]: one more server, on its own root; sets NAME_PID, NAME_URL
EXTRA_PIDS=()
trap 'for p in "${EXTRA_PIDS[@]}"; do kill "$p" 2>/dev/null; done; cleanup' EXIT
serve_other() {
    local name=$1 bin=$2 port pid
    shift 2
    port=$(free_port)
    "$bin" serve --listen "127.0.0.1:$port" --root "$T/root-$name" "$@" 2>"$T/$name.log" &
    pid=$!
    EXTRA_PIDS+=("$pid")
    for _ in $(seq 1 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
        sleep 0.05
    done
    printf -v "${name}_PID" '%s' "$pid"
    printf -v "${name}_URL" '%s' "http://127.0.0.1:$port"
}

# a proxy upstream in the configuration: the server loads the module at start-up
cat >"$T/proxy.yaml" <<YAML
proxy:
  upstreams:
    - prefix: cache
      url: http://$HOSTPORT
YAML
serve_other proxy "$BERTH" --config "$T/proxy.yaml"
check "a server with a proxy upstream maps berth-remote.so" yes \
    "$(grep -q berth-remote "/proc/$proxy_PID/maps" && echo yes || echo no)"
check "... and libcurl" yes "$(grep -q libcurl "/proc/$proxy_PID/maps" && echo yes || echo no)"
check "pull through the cache" 200 "$(curl -s -o /dev/null -w '%{http_code}' \
    -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$proxy_URL/v2/cache/idle/app/manifests/v1")"

# the program without its module: serving a root directory works, the client says why not
mkdir -p "$T/alone"
cp "$BERTH" "$T/alone/berth"
"$T/alone/berth" version >"$T/alone.out" 2>&1
check "berth version without the module" 1 "$?"
grep -q "berth-remote.so" "$T/alone.out" && ok || fail "no word of the module: $(cat "$T/alone.out")"
"$T/alone/berth" tags "$HOSTPORT/idle/app" >"$T/alone.out" 2>&1
check "berth tags without the module fails" 1 "$?"
grep -q "berth-remote.so" "$T/alone.out" && ok || fail "no word of the module: $(cat "$T/alone.out")"
serve_other alone "$T/alone/berth"
check "berth serve without the module" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$alone_URL/v2/")"
finish
