#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Many clients (issue 14, target 3): manifest GET by tag with wrk -t2 at -c64 and at -c10000
# keep-alive connections, against one berth with its default limits (the slow-client
# protections on: header and read timeouts, per-address limits as configured by default).
# Prints req/s and p99 of both, the ratio, the server's peak RSS (VmHWM) and wrk's socket
# errors (connect errors = refused). Raises the file limit of this shell (and so of berth and
# wrk) to 65536 first.
#
#   bench/many.sh [SECONDS]    (default 10), from the project's root, after the build
# Env: BERTH (default build/berth), BENCH_PORT (default 5840), BENCH_SERVE_ARGS (more options of
# berth serve, e.g. "--max-connections 10100": the default limit is half the file limit, 9,968
# with a hard limit of 20,000, and past it connections rotate: closed after 100 requests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/seed.sh"
secs=${1:-10}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5840}
ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /var/tmp/berth-many-XXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
"$berth" serve --quiet --listen "127.0.0.1:$port" --root "$work/root" ${BENCH_SERVE_ARGS:-} >"$work/berth.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
url=http://127.0.0.1:$port
seed_image "$url" bench/app latest
echo 'wrk.headers["Accept"] = "application/vnd.oci.image.manifest.v1+json"' >"$work/req.lua"
idle=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
run() { # CONNS -> "rps p99_ms errors"
    wrk -t2 -c"$1" -d"${secs}s" --timeout 5s --latency -s "$work/req.lua" "$url/v2/bench/app/manifests/latest" >"$work/wrk.$1" 2>&1 || true
    python3 - "$work/wrk.$1" <<'PY'
import re, sys
out = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)]
e = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
print(f"{rps:.0f} {p99:.2f} {e.group(1) if e else 0}/{e.group(2) if e else 0}/{e.group(3) if e else 0}/{e.group(4) if e else 0} {non2xx.group(1) if non2xx else 0}")
PY
}
read -r r64 p64 e64 n64 <<<"$(run 64)"
read -r r10k p10k e10k n10k <<<"$(run 10000)"
hwm=$(awk '/VmHWM/{print $2}' /proc/$pid/status)
echo "| figure | -c64 | -c10000 | bound | met |"
echo "|---|---|---|---|---|"
echo "| manifest GET by tag (req/s) | $r64 | $r10k | >= 80% of -c64: $(python3 -c "print(f'{$r10k/$r64:.2f}')") | $(python3 -c "print('yes' if $r10k >= 0.8*$r64 else 'no')") |"
echo "| p99 (ms) | $p64 | $p10k | <= 50 | $(python3 -c "print('yes' if $p10k <= 50 else 'no')") |"
echo "| socket errors connect/read/write/timeout | $e64 | $e10k | no connect error | $(case $e10k in 0/*) echo yes;; *) echo no;; esac) |"
echo "| non-2xx responses | $n64 | $n10k | 0 | $([ "$n10k" = 0 ] && echo yes || echo no) |"
echo "| server RSS peak, VmHWM (MiB) | | $((hwm / 1024)) | <= 64 | $([ $((hwm / 1024)) -le 64 ] && echo yes || echo no) |"
echo "| server RSS idle (MiB) | $((idle / 1024)) | | <= 8 | $([ $((idle / 1024)) -le 8 ] && echo yes || echo no) |"
