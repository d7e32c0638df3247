#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Operations on (issue 14, target 4): manifest GET by tag (wrk -t2 -c64) with everything off
# (no auth, no access log: --quiet) against token auth (berth's own /token endpoint, the client
# sends a Bearer token for pull), the JSON access log (log.format: json, one line a request,
# to a file) and metrics (always counted); the same root, the two servers run one after the
# other, ROUNDS times interleaved. Prints req/s and server CPU per request, and the ratio.
#
#   bench/opson.sh [ROUNDS]    (default 3; medians), from the project's root, after the build
# Env: BERTH (default build/berth), BENCH_PORT (default 5850), BENCH_SECONDS (default 8).
# Needs: wrk, curl, htpasswd (apache2-utils), openssl, python3.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/seed.sh"
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5850}
secs=${BENCH_SECONDS:-8}
work=$(mktemp -d /var/tmp/berth-opson-XXXX)
pid=
stop() { [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null; pid=; }
cleanup() { stop; rm -rf "$work"; }
trap cleanup EXIT
url=http://127.0.0.1:$port
htpasswd -Bbn bench benchpw | head -n 1 >"$work/htpasswd"
openssl ecparam -genkey -name prime256v1 -noout -out "$work/token.pem" 2>/dev/null
cat >"$work/on.yaml" <<Y
log: {format: json}
access:
  - repositories: "*"
    users: [bench]
    actions: [pull, push]
auth:
  htpasswd: $work/htpasswd
  token:
    realm: $url/token
    service: bench
    private_key: $work/token.pem
Y
start() { # off|on
    if [ "$1" = off ]; then
        "$berth" serve --quiet --listen "127.0.0.1:$port" --root "$work/root" >"$work/off.log" 2>&1 &
    else
        "$berth" serve --config "$work/on.yaml" --listen "127.0.0.1:$port" --root "$work/root" >"$work/on.log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 100); do curl -s -o /dev/null "$url/v2/" && return 0; sleep 0.1; done
    echo "berth did not start" >&2; exit 1
}
start off
seed_image "$url" bench/app latest
stop
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
measure() { # off|on -> "rps cpu_us"
    local lua=$work/$1.lua c0 n c token
    echo 'wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"' >"$lua"
    start "$1"
    if [ "$1" = on ]; then
        token=$(curl -sf -u bench:benchpw "$url/token?service=bench&scope=repository:bench/app:pull" |
            python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("token") or d["access_token"])')
        echo "wrk.headers[\"Authorization\"] = \"Bearer $token\"" >>"$lua"
    fi
    c0=$(cpu)
    wrk -t2 -c64 -d"${secs}s" -s "$lua" "$url/v2/bench/app/manifests/latest" >"$work/wrk.$1"
    c=$(($(cpu) - c0))
    stop
    if grep -q Non-2xx "$work/wrk.$1"; then echo "errors with $1:" >&2; cat "$work/wrk.$1" >&2; exit 1; fi
    n=$(awk '/requests in/{print $1}' "$work/wrk.$1")
    echo "$(awk '/Requests\/sec/{print $2}' "$work/wrk.$1") $(python3 -c "print($c * 1e6 / $(getconf CLK_TCK) / $n)")"
}
off=(); on=()
for i in $(seq "$rounds"); do
    echo "round $i/$rounds" >&2
    off+=("$(measure off)")
    on+=("$(measure on)")
done
python3 - "${off[@]}" -- "${on[@]}" <<'PY'
import statistics, sys
a = sys.argv[1:]
k = a.index("--")
off = [tuple(map(float, x.split())) for x in a[:k]]
on = [tuple(map(float, x.split())) for x in a[k + 1:]]
med = lambda rows, i: statistics.median(r[i] for r in rows)
print("| figure | all off | auth + JSON log + metrics | on/off |\n|---|---|---|---|")
print(f"| manifest GET by tag, wrk -t2 -c64 (req/s) | {med(off, 0):,.0f} | {med(on, 0):,.0f} | {med(on, 0) / med(off, 0):.2f} |")
print(f"| server CPU per request (us) | {med(off, 1):.1f} | {med(on, 1):.1f} | {med(on, 1) / med(off, 1):.2f} |")
print("rounds: off " + ", ".join(f"{r[0]:,.0f}" for r in off) + "; on " + ", ".join(f"{r[0]:,.0f}" for r in on), file=sys.stderr)
PY
