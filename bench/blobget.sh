#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Blob GET against nginx (issue 14, target 2): the same 4 KiB and 256 MiB files served by berth
# (sendfile from its pool) and by nginx (sendfile, access log off, 2 workers as berth has 2
# worker threads here), both on loopback, interleaved round by round: 4 KiB with wrk -t2 -c64
# (req/s, p99, server CPU per request), 256 MiB with one curl (MB/s). Prints a markdown table.
#
#   bench/blobget.sh [ROUNDS]     (default 3; medians), from the project's root, after the build
# Env: BERTH (default build/berth), BENCH_PORT (default 5830; uses it and the next one),
# BENCH_SECONDS (default 8). Needs nginx (nginx-light), wrk, curl, openssl.
set -euo pipefail
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5830}
secs=${BENCH_SECONDS:-8}
work=$(mktemp -d /var/tmp/berth-blobget-XXXX)
chmod 755 "$work"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
            [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

mkdir -p "$work/www"
openssl enc -aes-128-ctr -nosalt -pass pass:small -pbkdf2 </dev/zero 2>/dev/null | head -c 4096 >"$work/www/small" || true
openssl enc -aes-128-ctr -nosalt -pass pass:big -pbkdf2 </dev/zero 2>/dev/null | head -c $((256 << 20)) >"$work/www/big" || true
chmod 644 "$work/www/"*
cat >"$work/nginx.conf" <<CONF
worker_processes 2; pid $work/nginx.pid; error_log $work/nginx.err;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on;
  server { listen 127.0.0.1:$((port + 1)); root $work/www; } }
CONF
nginx -c "$work/nginx.conf"
"$berth" serve --quiet --listen "127.0.0.1:$port" --root "$work/root" >"$work/berth.log" 2>&1 &
pids+=($!); bpid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done
push() { # file -> digest
    local d loc
    d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
    loc=$(curl -si -X POST "http://127.0.0.1:$port/v2/bench/app/blobs/uploads/" | tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    curl -sf -o /dev/null -X PUT --data-binary "@$1" -H 'Content-Type: application/octet-stream' \
        "http://127.0.0.1:$port$loc?digest=$d"
    echo "$d"
}
small=$(push "$work/www/small")
big=$(push "$work/www/big")
npid=$(cat "$work/nginx.pid")
python3 - "$rounds" "$secs" "http://127.0.0.1:$port/v2/bench/app/blobs/$small" \
    "http://127.0.0.1:$port/v2/bench/app/blobs/$big" "$bpid" \
    "http://127.0.0.1:$((port + 1))/small" "http://127.0.0.1:$((port + 1))/big" "$npid" <<'PY'
import os, re, statistics, subprocess, sys
rounds, secs = int(sys.argv[1]), sys.argv[2]
targets = {"berth": (sys.argv[3], sys.argv[4], [int(sys.argv[5])]),
           "nginx": (sys.argv[6], sys.argv[7], None)}
npid = int(sys.argv[8])
def kids(p):
    out = subprocess.run(["pgrep", "-P", str(p)], capture_output=True, text=True).stdout.split()
    return [p] + [int(x) for x in out]
def cpu(pids):
    t = 0
    for p in pids:
        f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
        t += int(f[11]) + int(f[12])
    return t / os.sysconf("SC_CLK_TCK")
res = {n: {"rps": [], "p99": [], "cpu": [], "mbs": []} for n in targets}
for i in range(rounds):
    for name, (small, big, pids) in targets.items():
        pids = pids or kids(npid)
        c0 = cpu(pids)
        out = subprocess.run(["wrk", "-t2", "-c64", f"-d{secs}s", "--latency", small],
                             capture_output=True, text=True, check=True).stdout
        c = cpu(pids) - c0
        assert "Non-2xx" not in out, out
        n = int(re.search(r"(\d+) requests in", out).group(1))
        res[name]["rps"].append(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))
        m = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
        res[name]["p99"].append(float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1e3}[m.group(2)])
        res[name]["cpu"].append(c * 1e6 / n)
        out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{speed_download}", big],
                             capture_output=True, text=True, check=True).stdout.split()
        assert out[0] == "200", out
        res[name]["mbs"].append(float(out[1]) / 1e6)
med = {n: {k: statistics.median(v) for k, v in r.items()} for n, r in res.items()}
b, x = med["berth"], med["nginx"]
print("| figure | berth | nginx | berth/nginx |\n|---|---|---|---|")
print(f"| 4 KiB blob GET, wrk -t2 -c64 (req/s) | {b['rps']:,.0f} | {x['rps']:,.0f} | {b['rps'] / x['rps']:.2f} |")
print(f"| 4 KiB blob GET p99 (ms) | {b['p99']:.2f} | {x['p99']:.2f} | {b['p99'] / x['p99']:.2f} |")
print(f"| 4 KiB blob GET, server CPU per request (us) | {b['cpu']:.1f} | {x['cpu']:.1f} | {b['cpu'] / x['cpu']:.2f} |")
print(f"| 256 MiB blob GET, curl (MB/s) | {b['mbs']:,.0f} | {x['mbs']:,.0f} | {b['mbs'] / x['mbs']:.2f} |")
print("rounds: " + "; ".join(f"{n} {k} " + ", ".join(f"{v:,.1f}" for v in vs)
                             for n, r in res.items() for k, vs in r.items()), file=sys.stderr)
PY
