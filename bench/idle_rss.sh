#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Idle RSS (issue 14, target 6): start `berth serve` on a fresh root as ../shared/bench/compare.sh
# does, wait for GET /v2/ to answer, and read VmRSS from /proc/PID/status; N starts, then the
# median. With --breakdown, the last start's resident memory from /proc/PID/smaps by mapping
# (each shared library, the program, the heap, the other anonymous memory, the stack), with
# the part of each that is private and dirty (relocated tables, written data).
#
#   bench/idle_rss.sh [--breakdown] [N]    (default 5), from the project's root, after the build
# Env: BERTH (default build/berth), BENCH_PORT (default 5860).
set -euo pipefail
breakdown=0
if [ "${1:-}" = --breakdown ]; then
    breakdown=1
    shift
fi
n=${1:-5}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5860}
work=$(mktemp -d /tmp/berth-idle-XXXX)
pid=""
cleanup() { if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

vals=()
for i in $(seq "$n"); do
    "$berth" serve --listen "127.0.0.1:$port" --root "$work/root$i" >"$work/berth.log" 2>&1 &
    pid=$!
    for _ in $(seq 100); do
        curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break
        sleep 0.1
    done
    sleep 1
    vals+=("$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")")
    if [ "$breakdown" = 1 ] && [ "$i" = "$n" ]; then
        python3 - "$pid" <<'PY'
import collections, re, sys
rows = collections.defaultdict(collections.Counter)
name = None
with open(f"/proc/{sys.argv[1]}/smaps") as f:
    for line in f:
        m = re.match(r"^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$", line)
        if m:
            name = m.group(1).strip().rsplit("/", 1)[-1] or "anonymous (thread stacks, arenas, mmap)"
            continue
        key = line.split(":")[0]
        if key in ("Rss", "Private_Dirty"):
            rows[name][key] += int(line.split()[1])
total = sum(r["Rss"] for r in rows.values())
print("| mapping | Rss (KiB) | of it private dirty (KiB) |")
print("|---|---|---|")
for name, r in sorted(rows.items(), key=lambda x: -x[1]["Rss"]):
    if r["Rss"]:
        print(f"| {name} | {r['Rss']:,} | {r['Private_Dirty']:,} |")
print(f"| total | {total:,} | {sum(r['Private_Dirty'] for r in rows.values()):,} |")
PY
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
done
printf 'VmRSS of %d starts (KiB): %s\n' "$n" "$(printf '%s\n' "${vals[@]}" | sort -n | tr '\n' ' ')"
printf '%s\n' "${vals[@]}" | sort -n |
    awk '{a[NR] = $1} END {m = a[int((NR + 1) / 2)]; printf "median: %d KiB (%.2f MiB)\n", m, m / 1024}'
