#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Upload throughput (issue 14, target 1): a 256 MiB blob pushed monolithically (POST, then PUT
# ?digest= with the body, curl) and chunked (POST, 32 PATCHes of 8 MiB with Content-Range over
# one keep-alive connection, then PUT ?digest=), against this machine's bounds measured in the
# same run: SHA-256 on one core (`openssl speed -evp sha256 -bytes 8192`) and `dd bs=8M
# conv=fsync` of the same bytes into the same filesystem as the registry's root. Every round
# pushes new bytes. Prints a markdown table: figure, bound = min(SHA-256, dd), ratio.
#
#   bench/upload.sh [ROUNDS]      (default 3; medians), from the project's root, after the build
# Env: BERTH (default build/berth), BENCH_PORT (default 5800), BENCH_DIR (default a new
# directory under /var/tmp: the registry's root and dd's target, on the disk, not in tmpfs).
# The bytes pushed are made in /dev/shm (memory), so that writing them back costs no disk time.
set -euo pipefail
rounds=${1:-3}
berth=${BERTH:-build/berth}
port=${BENCH_PORT:-5800}
work=$(mktemp -d "${BENCH_DIR:-/var/tmp}/berth-upload-XXXX")
data=$(mktemp -d /dev/shm/berth-upload-XXXX)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work" "$data"; }
trap cleanup EXIT

"$berth" serve --quiet --listen "127.0.0.1:$port" --root "$work/root" >"$work/berth.log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$port/v2/" && break; sleep 0.1; done

python3 - "$rounds" "$port" "$work" "$pid" "$data" <<'PY'
import hashlib, http.client, os, re, statistics, subprocess, sys, time
rounds, port, work, pid, shm = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
SIZE, CHUNK = 256 << 20, 8 << 20
base = f"http://127.0.0.1:{port}"

def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def make(i):
    path = os.path.join(shm, f"data{i}")
    with open(path, "wb") as out:
        subprocess.run(f"openssl enc -aes-128-ctr -nosalt -pass pass:up{i}{time.time()} -pbkdf2 "
                       f"</dev/zero 2>/dev/null | head -c {SIZE}", shell=True, check=True, stdout=out)
    data = open(path, "rb").read()
    return path, data, "sha256:" + hashlib.sha256(data).hexdigest()

def post(conn, repo):
    conn.request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    r = conn.getresponse(); r.read()
    assert r.status == 202, r.status
    return r.getheader("Location")

def monolithic(path, digest, repo):
    c = http.client.HTTPConnection("127.0.0.1", port)
    loc = post(c, repo); c.close()
    loc = loc if loc.startswith("http") else base + loc
    url = loc + ("&" if "?" in loc else "?") + "digest=" + digest
    t = time.monotonic()
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                          "Content-Type: application/octet-stream", "--upload-file", path, url],
                         capture_output=True, check=True).stdout
    secs = time.monotonic() - t
    assert out.strip() == b"201", out
    return secs

def chunked(data, digest, repo):
    c = http.client.HTTPConnection("127.0.0.1", port)
    t = time.monotonic()
    loc = post(c, repo)
    view = memoryview(data)
    for off in range(0, SIZE, CHUNK):
        c.request("PATCH", loc, body=view[off:off + CHUNK], headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{off}-{off + CHUNK - 1}", "Content-Length": str(CHUNK)})
        r = c.getresponse(); r.read()
        assert r.status == 202, (r.status, off)
        loc = r.getheader("Location")
    c.request("PUT", loc + ("&" if "?" in loc else "?") + "digest=" + digest,
              headers={"Content-Length": "0"})
    r = c.getresponse(); r.read()
    assert r.status == 201, r.status
    secs = time.monotonic() - t
    c.close()
    return secs

def dd(path):
    t = time.monotonic()
    subprocess.run(["dd", f"if={path}", f"of={work}/dd.out", "bs=8M", "conv=fsync"],
                   check=True, capture_output=True)
    secs = time.monotonic() - t
    os.unlink(f"{work}/dd.out")
    return secs

def sha():
    out = subprocess.run(["openssl", "speed", "-evp", "sha256", "-bytes", "8192", "-seconds", "2"],
                         check=True, text=True, capture_output=True).stdout
    return float(re.search(r"sha256\s+([\d.]+)k", out).group(1)) * 1000 / 1e6

res = {k: [] for k in ("mono", "chunk", "dd", "sha", "cpu_mono", "cpu_chunk")}
for i in range(rounds):
    print(f"round {i + 1}/{rounds}", file=sys.stderr)
    path, data, digest = make(2 * i)
    res["dd"].append(SIZE / 1e6 / dd(path))
    c0 = cpu(); res["mono"].append(SIZE / 1e6 / monolithic(path, digest, f"bench/mono{i}"))
    res["cpu_mono"].append((cpu() - c0) * 1e6 / (SIZE >> 20))
    os.unlink(path)
    path, data, digest = make(2 * i + 1)
    c0 = cpu(); res["chunk"].append(SIZE / 1e6 / chunked(data, digest, f"bench/chunk{i}"))
    res["cpu_chunk"].append((cpu() - c0) * 1e6 / (SIZE >> 20))
    os.unlink(path)
    res["sha"].append(sha())
med = {k: statistics.median(v) for k, v in res.items()}
bound = min(med["sha"], med["dd"])
print("| figure | value | bound min(SHA-256, dd) | ratio |\n|---|---|---|---|")
print(f"| 256 MiB monolithic upload (MB/s) | {med['mono']:,.0f} | {bound:,.0f} | {med['mono'] / bound:.2f} |")
print(f"| 256 MiB in 8 MiB PATCHes (MB/s) | {med['chunk']:,.0f} | {bound:,.0f} | {med['chunk'] / bound:.2f} |")
print(f"| SHA-256, one core (MB/s) | {med['sha']:,.0f} | | |")
print(f"| dd bs=8M conv=fsync, 256 MiB (MB/s) | {med['dd']:,.0f} | | |")
print(f"| server CPU per MiB, monolithic (us) | {med['cpu_mono']:,.0f} | | |")
print(f"| server CPU per MiB, chunked (us) | {med['cpu_chunk']:,.0f} | | |")
print("rounds: " + "; ".join(f"{k} " + ", ".join(f"{x:,.0f}" for x in v) for k, v in res.items()),
      file=sys.stderr)
PY
