#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A/B of the pull-through cache's cold path (issue 12) on a shared, noisy machine: one upstream
# (a berth serve), two caches in front of it (binary A and binary B), and per round three fresh
# images of 4 x 16 MiB layers pulled with skopeo: directly from the upstream, through cache A and
# through cache B, in an order that rotates each round. Each round gives the ratios
# cache/direct; medians over the rounds. Also each cache's CPU (utime + stime) per cold pull.
#   bench/proxy_ab.sh BERTH_A BERTH_B [ROUNDS]     (default 10 rounds)
# Env: BERTH_TEST_PORTS (e.g. 5600-5699: ports to use).
set -uo pipefail
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-10}
BERTH=$A
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
write_proxy_config "$T/cache.yaml" up.example "$UP"
# cache_start NAME BINARY: sets ${NAME}_PORT, ${NAME}_PID
cache_start() {
    local port
    port=$(free_port)
    mkdir -p "$T/$1"
    "$2" serve --listen "127.0.0.1:$port" --root "$T/$1/root" --config "$T/cache.yaml" --quiet \
        2>"$T/$1/log" &
    PROXY_PIDS+=("$!")
    eval "$1_PORT=$port $1_PID=$!"
    wait_http "http://127.0.0.1:$port/v2/" || { echo "cache $1 did not start" >&2; exit 1; }
}
cache_start ca "$A"
cache_start cb "$B"

push_layers() { # NAME TAG: 4 random layers of 16 MiB, a config, a manifest (bench/proxy.sh's)
    local dir i
    dir=$(mktemp -d "$T/img.XXXXXX")
    for i in 1 2 3 4; do
        head -c $((16 * MIB)) /dev/urandom >"$dir/l$i"
        put_blob "$UP" "$1" "$dir/l$i" >/dev/null
    done
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/c"
    put_blob "$UP" "$1" "$dir/c" >/dev/null
    python3 - "$dir" >"$dir/m" <<'PY'
import hashlib, json, sys
d = sys.argv[1]
def desc(mt, p):
    b = open(p, "rb").read()
    return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(b).hexdigest(), "size": len(b)}
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "config": desc("application/vnd.oci.image.config.v1+json", d + "/c"),
                  "layers": [desc("application/vnd.oci.image.layer.v1.tar", "%s/l%d" % (d, i))
                             for i in range(1, 5)]}), end="")
PY
    curl -sf -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$dir/m" "$UP/v2/$1/manifests/$2" || { echo "push failed" >&2; exit 1; }
    rm -rf "$dir"
}

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# pull WHO REF: skopeo copy to a fresh dir:, seconds to stdout
pull() {
    local s e out=$T/pulled
    rm -rf "$out"
    s=$(date +%s.%N)
    $SK copy -q --src-tls-verify=false "docker://$2" "dir:$out" >/dev/null 2>"$T/sk.err" ||
        { echo "skopeo copy $2 failed: $(tail -n 2 "$T/sk.err")" >&2; exit 1; }
    e=$(date +%s.%N)
    rm -rf "$out"
    echo "$e - $s" | bc
}

echo "| round | direct (s) | A (s) | B (s) | A/direct | B/direct | A CPU (ticks) | B CPU (ticks) |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
    for w in d a b; do push_layers lib/img "$w$r"; done
    declare -A t=() c=()
    case $((r % 3)) in 0) order="d a b" ;; 1) order="a b d" ;; *) order="b d a" ;; esac
    for w in $order; do
        case $w in
        d) t[d]=$(pull d "127.0.0.1:$up_PORT/lib/img:d$r") ;;
        a) c0=$(ticks "$ca_PID"); t[a]=$(pull a "127.0.0.1:$ca_PORT/up.example/lib/img:a$r")
           sleep 0.2; c[a]=$(($(ticks "$ca_PID") - c0)) ;;
        b) c0=$(ticks "$cb_PID"); t[b]=$(pull b "127.0.0.1:$cb_PORT/up.example/lib/img:b$r")
           sleep 0.2; c[b]=$(($(ticks "$cb_PID") - c0)) ;;
        esac
    done
    echo "| $r | ${t[d]} | ${t[a]} | ${t[b]} | $(echo "scale=3; ${t[a]} / ${t[d]}" | bc) |" \
        "$(echo "scale=3; ${t[b]} / ${t[d]}" | bc) | ${c[a]} | ${c[b]} |"
done | tee "$T/rows"
med() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
col() { awk -F'|' -v c="$1" '{ gsub(/ /, "", $c); print $c }' "$T/rows" | med; }
echo "| median | $(col 3) | $(col 4) | $(col 5) | $(col 6) | $(col 7) | $(col 8) | $(col 9) |"
