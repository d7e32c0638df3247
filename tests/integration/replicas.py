# SPDX-License-Identifier: Apache-2.0
"""The multi-replica guarantees of tests/integration/test_scale_replicas.sh that need many
requests: read-your-writes across replicas (`ryw`) and online GC under concurrent pushes and
deletes (`gc`). Each prints its counts as `key=value` lines and every violation as a line
starting with `VIOLATION`; the shell test checks the counts.

    python3 replicas.py ryw PORT_A PORT_B PORT_C ROUNDS
    python3 replicas.py gc  PUSH_PORT_1 PUSH_PORT_2 GC_PORT SECONDS GC_LOG
"""
import hashlib
import http.client
import json
import os
import random
import re
import sys
import threading
import time

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Replica:
    """One keep-alive connection to one replica (one per thread)."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def req(self, method, path, body=None, headers=None):
        for attempt in range(2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                hdrs = {k.lower(): v for k, v in r.getheaders()}
                if hdrs.get("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, hdrs, data
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                # only a request that never reached the server is sent again: a connection
                # the server closed while idle fails at once, before any response
                if attempt:
                    raise


def error_code(data):
    try:
        return json.loads(data)["errors"][0]["code"]
    except (ValueError, KeyError, IndexError, TypeError):
        return "<no error document>"


def manifest_bytes(config, layers, extra=None, subject=None):
    m = {
        "schemaVersion": 2,
        "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": digest(b), "size": len(b)} for b in layers],
    }
    if subject is not None:
        m["subject"] = {"mediaType": MT_MANIFEST, "digest": subject[0], "size": subject[1]}
        m["artifactType"] = "application/vnd.example.sig"
    if extra:
        m["annotations"] = extra
    return json.dumps(m, separators=(",", ":")).encode()


def upload(rep, repo, blob):
    st, _, data = rep.req(
        "POST",
        f"/v2/{repo}/blobs/uploads/?digest={digest(blob)}",
        body=blob,
        headers={"Content-Type": "application/octet-stream"},
    )
    return st


def put_manifest(rep, repo, ref, body):
    return rep.req("PUT", f"/v2/{repo}/manifests/{ref}", body=body,
                   headers={"Content-Type": MT_MANIFEST})


# ---- read your writes ---------------------------------------------------------------------


def ryw(ports, rounds):
    reps = [Replica(p) for p in ports]
    counts = {"rounds": 0, "reads": 0, "violations": 0}
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(2048)

    def bad(msg):
        counts["violations"] += 1
        print("VIOLATION", msg, flush=True)

    def expect(rep, path, want, what, accept=None):
        st, hdrs, data = rep.req("GET", path, headers=accept or {})
        counts["reads"] += 1
        if st != want:
            bad(f"{what}: GET {path} on :{rep.port} answered {st}, expected {want}")
            return None
        return hdrs, data

    def listing(rep, path, key, what):
        r = expect(rep, path, 200, what)
        if r is None:
            return []
        try:
            return json.loads(r[1]).get(key) or []
        except ValueError:
            bad(f"{what}: GET {path} on :{rep.port}: not JSON")
            return []

    for i in range(rounds):
        w = reps[i % 3]
        others = [reps[(i + 1) % 3], reps[(i + 2) % 3]]
        # a new repository every round: the catalog must show it at once everywhere
        repo = f"ryw/r{i}"
        tag = f"t{i}"
        for blob in (config, layer):
            st = upload(w, repo, blob)
            if st != 201:
                bad(f"round {i}: blob upload on :{w.port} answered {st}")
        man = manifest_bytes(config, [layer], {"round": str(i)})
        md = digest(man)
        st, hdrs, data = put_manifest(w, repo, tag, man)
        if st != 201:
            bad(f"round {i}: manifest PUT on :{w.port} answered {st} {data[:200]!r}")
            continue
        # a referrer of it, pushed on the next replica
        sig = manifest_bytes(config, [layer], {"sig": str(i)}, subject=(md, len(man)))
        sd = digest(sig)
        st, _, data = put_manifest(others[0], repo, sd, sig)
        if st != 201:
            bad(f"round {i}: referrer PUT on :{others[0].port} answered {st} {data[:200]!r}")
        readers = [r for r in reps if r is not others[0]]
        # the next request to each other replica sees the writes
        for rep in others:
            r = expect(rep, f"/v2/{repo}/manifests/{tag}", 200, f"round {i}: manifest by tag",
                       {"Accept": MT_MANIFEST})
            if r is not None and (r[0].get("docker-content-digest") != md or digest(r[1]) != md):
                bad(f"round {i}: manifest by tag on :{rep.port} is not the one pushed")
            if tag not in listing(rep, f"/v2/{repo}/tags/list", "tags", f"round {i}: tags"):
                bad(f"round {i}: tags list on :{rep.port} lacks {tag}")
            if repo not in listing(rep, "/v2/_catalog?n=10000", "repositories",
                                   f"round {i}: catalog"):
                bad(f"round {i}: catalog on :{rep.port} lacks {repo}")
        for rep in readers:
            ms = listing(rep, f"/v2/{repo}/referrers/{md}", "manifests", f"round {i}: referrers")
            if sd not in [m.get("digest") for m in ms]:
                bad(f"round {i}: referrers on :{rep.port} lack {sd}")
        # DELETE the tag on one replica: every replica answers 404 for it at once
        d = others[1]
        st, _, _ = d.req("DELETE", f"/v2/{repo}/manifests/{tag}")
        if st != 202:
            bad(f"round {i}: tag DELETE on :{d.port} answered {st}")
        for rep in reps:
            expect(rep, f"/v2/{repo}/manifests/{tag}", 404, f"round {i}: deleted tag")
            if tag in listing(rep, f"/v2/{repo}/tags/list", "tags", f"round {i}: tags"):
                bad(f"round {i}: tags list on :{rep.port} still has deleted {tag}")
        # DELETE the manifest (by digest) on another: 404 everywhere at once, by digest too
        d = reps[(i + 1) % 3]
        st, _, _ = d.req("DELETE", f"/v2/{repo}/manifests/{md}")
        if st != 202:
            bad(f"round {i}: manifest DELETE on :{d.port} answered {st}")
        for rep in reps:
            expect(rep, f"/v2/{repo}/manifests/{md}", 404, f"round {i}: deleted manifest")
        counts["rounds"] += 1
    for k, v in counts.items():
        print(f"{k}={v}")


# ---- online gc under load -----------------------------------------------------------------


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.acked = []  # [repo, manifest digest, tag, manifest bytes, [blob bytes...]]
        self.deleted = set()  # manifest digests deleted (or being deleted) by the test
        self.tag_deleted = set()  # (repo, tag) deleted by the test
        self.n = {"pushes": 0, "push_refused": 0, "push_errors": 0, "mounts": 0,
                  "deletes": 0, "tag_deletes": 0, "delete_errors": 0, "head_hits": 0,
                  "race_pushes": 0, "race_refused": 0}

    def count(self, key, by=1):
        with self.lock:
            self.n[key] += by


def pusher(st, port, who, stop, pool):
    rep = Replica(port)
    rnd = random.Random(who)
    n = 0
    while not stop.is_set():
        n += 1
        repo = f"gc/r{n % 3}"
        config = json.dumps({"who": who, "n": n}).encode()
        layers = []
        if rnd.random() < 0.7:
            layers.append(rnd.choice(pool))  # shared: deleted images leave it to the collector
        if rnd.random() < 0.6 or not layers:
            layers.append(os.urandom(rnd.randint(100, 4000)))
        try:
            ok = True
            for blob in [config] + layers:
                d = digest(blob)
                s, _, _ = rep.req("HEAD", f"/v2/{repo}/blobs/{d}")
                if s == 200:
                    st.count("head_hits")  # a real client skips the upload: the race with gc
                    continue
                if blob is not config and rnd.random() < 0.3:
                    src = f"gc/r{(n + 1) % 3}"
                    s, _, _ = rep.req("POST", f"/v2/{repo}/blobs/uploads/?mount={d}&from={src}")
                    if s == 201:
                        st.count("mounts")
                        continue
                    if s == 202:
                        pass  # not mountable: the session stays for the reaper; upload instead
                s = upload(rep, repo, blob)
                if s != 201:
                    ok = False
                    print(f"push error: blob upload on :{port} answered {s}", flush=True)
            if not ok:
                st.count("push_errors")
                continue
            if rnd.random() < 0.3:
                time.sleep(rnd.uniform(1.0, 3.0))  # the blobs age past gc.grace unreferenced
            man = manifest_bytes(config, layers)
            md = digest(man)
            tag = f"w{who}-{n}" if rnd.random() < 0.6 else None
            s, _, data = put_manifest(rep, repo, tag or md, man)
            if s == 201:
                with st.lock:
                    st.acked.append([repo, md, tag, man, [config] + layers])
                    st.n["pushes"] += 1
            elif s == 400 and error_code(data) == "MANIFEST_BLOB_UNKNOWN":
                st.count("push_refused")  # gc took a blob first: refused, so nothing is lost
            else:
                st.count("push_errors")
                print(f"push error: manifest PUT on :{port} answered {s} {data[:200]!r}",
                      flush=True)
        except (OSError, http.client.HTTPException) as e:
            st.count("push_errors")
            print(f"push error on :{port}: {e}", flush=True)


def racer(st, ports, stop, grace):
    """Manifest PUTs timed into the collector's window: blobs uploaded and left unreferenced
    until just after their links leave the grace period, then referenced by a burst of manifest
    PUTs from two replicas at once, while a collector may be deciding on (and removing) the old
    unreferenced links of the repository. Each PUT must either be refused or keep its blobs."""
    repo = "gc/race"
    cycle = 0

    def burst(port, items):
        rep = Replica(port)
        for b, config in items:
            man = manifest_bytes(config, [b])
            try:
                s, _, data = put_manifest(rep, repo, digest(man), man)
            except (OSError, http.client.HTTPException) as e:
                s, data = 0, str(e).encode()
            if s == 201:
                with st.lock:
                    st.acked.append([repo, digest(man), None, man, [config, b]])
                    st.n["pushes"] += 1
                    st.n["race_pushes"] += 1
            elif s == 400 and error_code(data) == "MANIFEST_BLOB_UNKNOWN":
                st.count("push_refused")
                st.count("race_refused")
            else:
                st.count("push_errors")
                print(f"push error: racer PUT answered {s} {data[:200]!r}", flush=True)

    while not stop.is_set():
        cycle += 1
        rep = Replica(ports[cycle % len(ports)])
        blobs = [os.urandom(200 + i) for i in range(40)]
        try:
            for b in blobs:
                if upload(rep, repo, b) != 201:
                    st.count("push_errors")
        except (OSError, http.client.HTTPException) as e:
            st.count("push_errors")
            print(f"push error (racer): {e}", flush=True)
            continue
        # links are stamped in whole seconds: all of them are past the grace period from this
        # second on; the burst starts just after it
        start = int(time.time()) + grace + random.uniform(0.0, 0.3)
        time.sleep(max(0.0, start - time.time()))
        # a fresh config (a young link) shared by the burst: only the layers are in the race
        config = json.dumps({"racer": cycle}).encode()
        items = [(b, config) for b in blobs]
        workers = [threading.Thread(target=burst, args=(p, items[k::len(ports)]))
                   for k, p in enumerate(ports)]
        try:
            if upload(rep, repo, config) != 201:
                st.count("push_errors")
        except (OSError, http.client.HTTPException) as e:
            st.count("push_errors")
            print(f"push error (racer): {e}", flush=True)
            continue
        for w in workers:
            w.start()
        for w in workers:
            w.join()


def deleter(st, ports, stop):
    reps = [Replica(p) for p in ports]
    rnd = random.Random(99)
    while not stop.is_set():
        time.sleep(0.15)
        with st.lock:
            live = [a for a in st.acked if a[1] not in st.deleted]
            # about a third of the pushed images are deleted (or lose their tag)
            if not live or len(st.deleted) + len(st.tag_deleted) > 0.4 * len(st.acked):
                continue
            a = rnd.choice(live)
            by_tag = a[2] is not None and (a[0], a[2]) not in st.tag_deleted and rnd.random() < 0.5
            if by_tag:
                st.tag_deleted.add((a[0], a[2]))
            else:
                st.deleted.add(a[1])
        rep = rnd.choice(reps)
        ref = a[2] if by_tag else a[1]
        try:
            s, _, data = rep.req("DELETE", f"/v2/{a[0]}/manifests/{ref}")
        except (OSError, http.client.HTTPException) as e:
            s, data = 0, str(e).encode()
        if s == 202:
            st.count("tag_deletes" if by_tag else "deletes")
        else:
            st.count("delete_errors")
            print(f"delete error: DELETE {a[0]}:{ref} on :{rep.port} answered {s} {data[:200]!r}",
                  flush=True)


def gc_runs(log):
    runs = removed = failed = 0
    try:
        with open(log, errors="replace") as f:
            for line in f:
                m = re.search(r"gc: \d+ tags, \d+ manifests, \d+ links, (\d+) blobs", line)
                if m:
                    runs += 1
                    removed += int(m.group(1))
                elif "gc failed" in line:
                    failed += 1
    except OSError:
        pass
    return runs, removed, failed


def gc(push_ports, all_ports, seconds, gc_log, grace):
    st = State()
    stop = threading.Event()
    pool = [os.urandom(random.randint(500, 3000)) for _ in range(6)]
    runs0, _, _ = gc_runs(gc_log)
    threads = [threading.Thread(target=pusher, args=(st, p, i, stop, pool))
               for i, p in enumerate(push_ports + push_ports)]
    threads.append(threading.Thread(target=deleter, args=(st, all_ports, stop)))
    threads.append(threading.Thread(target=racer, args=(st, push_ports, stop, grace)))
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    # let the collector run past the grace period of everything the load left behind
    time.sleep(grace + 2.5)
    runs, removed, failed = gc_runs(gc_log)

    # every acknowledged image the test did not delete pulls whole from every replica
    violations = 0
    checked = 0
    reps = [Replica(p) for p in all_ports]
    for repo, md, tag, man, blobs in st.acked:
        if md in st.deleted:
            continue
        checked += 1
        for rep in reps:
            s, h, data = rep.req("GET", f"/v2/{repo}/manifests/{md}", headers={"Accept": MT_MANIFEST})
            if s != 200 or digest(data) != md:
                violations += 1
                print(f"VIOLATION {repo}@{md} on :{rep.port}: manifest {s}", flush=True)
                continue
            if tag is not None and (repo, tag) not in st.tag_deleted:
                s, h, data = rep.req("GET", f"/v2/{repo}/manifests/{tag}",
                                     headers={"Accept": MT_MANIFEST})
                if s != 200 or digest(data) != md:
                    violations += 1
                    print(f"VIOLATION {repo}:{tag} on :{rep.port}: tag answered {s}", flush=True)
            for b in blobs:
                d = digest(b)
                s, h, data = rep.req("GET", f"/v2/{repo}/blobs/{d}")
                if s != 200 or digest(data) != d:
                    violations += 1
                    print(f"VIOLATION {repo}@{md}: blob {d} on :{rep.port} answered {s}"
                          f" ({len(data)} bytes)", flush=True)
    n = st.n
    for k in ("pushes", "push_refused", "push_errors", "mounts", "head_hits", "race_pushes",
              "race_refused", "deletes", "tag_deletes", "delete_errors"):
        print(f"{k}={n[k]}")
    print(f"checked={checked}")
    print(f"gc_runs={runs - runs0}")
    print(f"gc_failed={failed}")
    print(f"gc_blobs_removed={removed}")
    print(f"violations={violations}")


if __name__ == "__main__":
    if sys.argv[1] == "ryw":
        ryw([int(p) for p in sys.argv[2:5]], int(sys.argv[5]))
    elif sys.argv[1] == "gc":
        ports = [int(p) for p in sys.argv[2:5]]
        gc(ports[:2], ports, float(sys.argv[5]), sys.argv[6], float(sys.argv[7]))
    else:
        sys.exit("usage: replicas.py ryw|gc ...")
