#!/usr/bin/env python3
"""Crash safety: concurrent pushes to a live `berth serve`, `kill -9` in the middle, restart,
then every acknowledged blob and manifest must be intact and verify, and no blob may be served
partially. Also checks that an upload session survives the restart.

  crash.py BERTH_BINARY
"""
import hashlib, json, os, random, shutil, signal, socket, subprocess, sys, tempfile, threading, time
import urllib.error, urllib.request

BERTH = sys.argv[1]
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start(root, port):
    log = open(os.path.join(os.path.dirname(root), "server.log"), "ab")
    p = subprocess.Popen([BERTH, "serve", "--listen", f"127.0.0.1:{port}", "--root", root],
                         stdout=log, stderr=log)
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1).read()
            return p
        except Exception:
            time.sleep(0.05)
    p.kill()
    sys.exit("server did not start")


def req(method, url, data=None, headers=None):
    r = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(r, timeout=30) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def digest(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def push_blob(base, repo, data):
    st, hdr, _ = req("POST", f"{base}/v2/{repo}/blobs/uploads/")
    if st != 202:
        raise RuntimeError(f"POST {st}")
    loc = hdr["Location"]
    loc = loc if loc.startswith("http") else base + loc
    sep = "&" if "?" in loc else "?"
    st, _, _ = req("PUT", f"{loc}{sep}digest={digest(data)}", data,
                   {"Content-Type": "application/octet-stream"})
    if st != 201:
        raise RuntimeError(f"PUT blob {st}")
    return digest(data)


acked_blobs, acked_manifests, lock = [], [], threading.Lock()
stop = threading.Event()


def pusher(base, n):
    rnd = random.Random(n)
    i = 0
    while not stop.is_set():
        repo = f"crash/r{n}"
        try:
            layer = rnd.randbytes(rnd.choice([10, 5000, 300000, 2000000]))
            cfg = json.dumps({"architecture": "amd64", "os": "linux", "n": i}).encode()
            ld, cd = push_blob(base, repo, layer), push_blob(base, repo, cfg)
            with lock:
                acked_blobs.append((repo, ld, len(layer)))
                acked_blobs.append((repo, cd, len(cfg)))
            m = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                       "digest": cd, "size": len(cfg)},
                            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                        "digest": ld, "size": len(layer)}]}).encode()
            tag = f"t{i}"
            st, _, _ = req("PUT", f"{base}/v2/{repo}/manifests/{tag}", m,
                           {"Content-Type": OCI_MANIFEST})
            if st == 201:
                with lock:
                    acked_manifests.append((repo, tag, digest(m), m))
        except Exception:
            pass  # the server is being killed: unacknowledged work may be lost
        i += 1


def main():
    work = tempfile.mkdtemp(prefix="berth-crash-")
    root = os.path.join(work, "root")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    failures = 0
    try:
        server = start(root, port)
        # an upload session with acknowledged bytes, to resume after the crash
        st, hdr, _ = req("POST", f"{base}/v2/crash/session/blobs/uploads/")
        loc = hdr["Location"]
        loc = loc if loc.startswith("http") else base + loc
        part1, part2 = os.urandom(100000), os.urandom(50000)
        st, hdr, _ = req("PATCH", loc, part1, {"Content-Type": "application/octet-stream",
                                               "Content-Range": f"0-{len(part1) - 1}"})
        assert st == 202, f"PATCH answered {st}"
        loc = hdr["Location"]
        loc = loc if loc.startswith("http") else base + loc

        threads = [threading.Thread(target=pusher, args=(base, n)) for n in range(4)]
        for t in threads:
            t.start()
        time.sleep(3)
        server.send_signal(signal.SIGKILL)
        server.wait()
        stop.set()
        for t in threads:
            t.join()
        print(f"killed with {len(acked_blobs)} blobs and {len(acked_manifests)} manifests acknowledged")
        if len(acked_manifests) < 5:
            print("FAIL: too little traffic before the kill to mean anything")
            failures += 1

        server = start(root, port)
        for repo, d, size in acked_blobs:
            st, _, body = req("GET", f"{base}/v2/{repo}/blobs/{d}")
            if st != 200 or digest(body) != d or len(body) != size:
                print(f"FAIL: blob {repo}@{d}: status {st}, {len(body)} bytes")
                failures += 1
        for repo, tag, d, m in acked_manifests:
            for ref in (tag, d):
                st, hdr, body = req("GET", f"{base}/v2/{repo}/manifests/{ref}",
                                    headers={"Accept": OCI_MANIFEST})
                if st != 200 or body != m or hdr.get("Docker-Content-Digest") != d:
                    print(f"FAIL: manifest {repo}:{ref}: status {st}")
                    failures += 1
        # no partial blob anywhere: every blob file in every layout verifies
        for dirpath, _, files in os.walk(root):
            if "/blobs/sha256" not in dirpath:
                continue
            for f in files:
                with open(os.path.join(dirpath, f), "rb") as fh:
                    if hashlib.sha256(fh.read()).hexdigest() != f:
                        print(f"FAIL: {dirpath}/{f} does not match its name")
                        failures += 1
        # the session resumes where it was acknowledged
        st, hdr, _ = req("GET", loc)
        if st != 204 or hdr.get("Range") != f"0-{len(part1) - 1}":
            print(f"FAIL: upload status after restart: {st} {hdr.get('Range')}")
            failures += 1
        st, hdr, _ = req("PATCH", loc, part2, {"Content-Type": "application/octet-stream",
                                               "Content-Range": f"{len(part1)}-{len(part1) + len(part2) - 1}"})
        loc = hdr.get("Location", loc)
        loc = loc if loc.startswith("http") else base + loc
        sep = "&" if "?" in loc else "?"
        st, _, _ = req("PUT", f"{loc}{sep}digest={digest(part1 + part2)}")
        if st != 201:
            print(f"FAIL: finishing the resumed upload answered {st}")
            failures += 1
        server.terminate()
        server.wait()
        checks = len(acked_blobs) + 2 * len(acked_manifests) + 3
        print(f"{checks - failures} passed, {failures} failed")
        return 1 if failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
