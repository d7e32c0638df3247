#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# The requests skopeo makes per small layer, on one keep-alive connection, for profiling the
# server (issue 14, target 5): N x (POST, PATCH of SIZE random bytes, PUT ?digest=), each
# answer checked; prints the median and mean milliseconds of each kind of request on stderr.
# STEPS picks how far each layer goes (post, patch, put), so that two runs under a profiler
# differ by one kind of request.
#
#   bench/layer_requests.py PORT N [STEPS] [SIZE]    (STEPS default put, SIZE default 65536)
import hashlib, http.client, os, statistics, sys, time

port, n = int(sys.argv[1]), int(sys.argv[2])
steps = sys.argv[3] if len(sys.argv) > 3 else "put"
size = int(sys.argv[4]) if len(sys.argv) > 4 else 65536
c = http.client.HTTPConnection("127.0.0.1", port)


times = {}


def req(method, url, body=None, headers=None, want=None):
    t0 = time.perf_counter()
    c.request(method, url, body=body, headers=headers or {})
    r = c.getresponse()
    r.read()
    times.setdefault(method, []).append(time.perf_counter() - t0)
    if r.status != want:
        sys.exit(f"{method} {url}: {r.status}, expected {want}")
    return r


for i in range(n):
    data = os.urandom(size)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    r = req("POST", "/v2/prof/r/blobs/uploads/", body=b"", want=202)
    loc = r.getheader("Location")
    if steps == "post":
        continue
    r = req("PATCH", loc, body=data,
            headers={"Content-Type": "application/octet-stream"}, want=202)
    loc = r.getheader("Location")
    if steps == "patch":
        continue
    sep = "&" if "?" in loc else "?"
    req("PUT", f"{loc}{sep}digest={digest}", body=b"", want=201)

for m, t in times.items():
    print(f"{m}: median {statistics.median(t) * 1e3:.3f} ms, mean {statistics.mean(t) * 1e3:.3f} ms"
          f" over {len(t)}", file=sys.stderr)
