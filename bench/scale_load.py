#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Helpers of bench/scale.sh, over the distribution API only (works against berth and Distribution).

  scale_load.py image BASE REPO            push a one-blob image (config only), print its manifest
  scale_load.py tags BASE REPO N [THREADS] put that manifest under tags t00000..t{N-1}
  scale_load.py repos BASE FROM PREFIX N [THREADS]
                                           repositories PREFIX00000..: mount the config from
                                           repository FROM and put the manifest under tag "v1"
  scale_load.py lat URL ROUNDS             median seconds of ROUNDS GETs (one keep-alive
                                           connection), and the body size; fails on a non-200
"""
import hashlib, http.client, json, statistics, sys, threading, time, urllib.parse

MT = "application/vnd.oci.image.manifest.v1+json"
CONFIG = b'{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'


def conn(base):
    u = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=600)


def req(c, method, path, body=None, headers=None, ok=(200, 201, 202, 204)):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    if r.status not in ok:
        raise SystemExit(f"{method} {path}: {r.status} {data[:300]!r}")
    return r, data


def manifest():
    d = "sha256:" + hashlib.sha256(CONFIG).hexdigest()
    m = {"schemaVersion": 2, "mediaType": MT,
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": len(CONFIG)},
         "layers": []}
    return d, json.dumps(m, separators=(",", ":")).encode()


def image(base, repo):
    c = conn(base)
    d, m = manifest()
    r, _ = req(c, "POST", f"/v2/{repo}/blobs/uploads/")
    loc = urllib.parse.urlsplit(r.getheader("Location"))
    q = (loc.query + "&" if loc.query else "") + "digest=" + d
    req(c, "PUT", loc.path + "?" + q, CONFIG, {"Content-Type": "application/octet-stream"})
    req(c, "PUT", f"/v2/{repo}/manifests/latest", m, {"Content-Type": MT})
    print(hashlib.sha256(m).hexdigest())


def parallel(base, n, threads, work):
    nxt = [0]
    lock = threading.Lock()
    errors = []

    def run():
        c = conn(base)
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= n or errors:
                return
            try:
                work(c, i)
            except BaseException as e:  # noqa: BLE001 -- reported below
                errors.append(e)
                return

    ts = [threading.Thread(target=run) for _ in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit(f"load failed: {errors[0]}")
    print(f"{time.monotonic() - t0:.1f}")


def tags(base, repo, n, threads):
    _, m = manifest()
    parallel(base, n, threads,
             lambda c, i: req(c, "PUT", f"/v2/{repo}/manifests/t{i:05d}", m, {"Content-Type": MT}))


def repos(base, frm, prefix, n, threads):
    d, m = manifest()

    def one(c, i):
        repo = f"{prefix}{i:05d}"
        req(c, "POST", f"/v2/{repo}/blobs/uploads/?mount={d}&from={frm}", ok=(201,))
        req(c, "PUT", f"/v2/{repo}/manifests/v1", m, {"Content-Type": MT})
    parallel(base, n, threads, one)


def lat(url, rounds):
    u = urllib.parse.urlsplit(url)
    c = conn(f"{u.scheme}://{u.netloc}")
    path = u.path + ("?" + u.query if u.query else "")
    times, size = [], 0
    for _ in range(rounds):
        t0 = time.monotonic()
        _, data = req(c, "GET", path, ok=(200,))
        times.append(time.monotonic() - t0)
        size = len(data)
    print(f"{statistics.median(times):.6f} {size}")


def main():
    a = sys.argv[1:]
    if a[:1] == ["image"]:
        image(a[1], a[2])
    elif a[:1] == ["tags"]:
        tags(a[1], a[2], int(a[3]), int(a[4]) if len(a) > 4 else 8)
    elif a[:1] == ["repos"]:
        repos(a[1], a[2], a[3], int(a[4]), int(a[5]) if len(a) > 5 else 8)
    elif a[:1] == ["lat"]:
        lat(a[1], int(a[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
