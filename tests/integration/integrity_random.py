# SPDX-License-Identifier: Apache-2.0
"""Random push / tag / delete sequences against a live berth serve.

usage: integrity_random.py URL SEED SECONDS OPS   (run by test_integrity.sh)
       integrity_random.py --verify URL

The first form drives blobs, images, indexes, referrers, mounts, tag deletes, manifest deletes
and blob deletes (of layers, configs and manifest digests) at random over three repositories,
for at most SECONDS or OPS operations. No answer may be a 5xx. The second form checks that every
tag listed (following Link) pulls whole: its manifest, every config and layer, every child of
an index, recursively, each verified against its digest.
"""
import hashlib
import http.client
import json
import random
import sys
import time
import urllib.parse

IMG = "application/vnd.oci.image.manifest.v1+json"
IDX = "application/vnd.oci.image.index.v1+json"
CFG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REPOS = ["a", "b", "c/d"]


class Client:
    def __init__(self, url):
        u = urllib.parse.urlparse(url)
        self.host, self.port = u.hostname, u.port
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def req(self, method, path, body=None, headers=None):
        for attempt in range(2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data
            except (http.client.HTTPException, ConnectionError):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                if attempt:
                    raise
        raise AssertionError("unreachable")


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def desc(mt, data):
    return {"mediaType": mt, "digest": sha(data), "size": len(data)}


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def drive(url, seed, seconds, max_ops):
    rnd = random.Random(seed)
    c = Client(url)
    blobs = {r: {} for r in REPOS}      # repo -> digest -> bytes (what we pushed there)
    manifests = {r: {} for r in REPOS}  # repo -> digest -> (media type, bytes)
    tags = {r: set() for r in REPOS}
    counts = {}
    deadline = time.time() + seconds

    def check(what, status, allowed):
        counts[what] = counts.get(what, 0) + 1
        if status >= 500 or status not in allowed:
            fail("%s answered %d (seed %d)" % (what, status, seed))
        return status

    def push_blob(repo, data):
        d = sha(data)
        st, _, _ = c.req("POST", "/v2/%s/blobs/uploads/?digest=%s" % (repo, d), data,
                         {"Content-Type": "application/octet-stream"})
        check("push blob", st, (201,))
        blobs[repo][d] = data
        return d

    def put_manifest(repo, ref, mt, data):
        st, _, _ = c.req("PUT", "/v2/%s/manifests/%s" % (repo, ref), data, {"Content-Type": mt})
        # 400: a blob or child was deleted meanwhile (refused, nothing changed)
        check("put manifest", st, (201, 400))
        if st == 201:
            manifests[repo][sha(data)] = (mt, data)
            if ":" not in ref:
                tags[repo].add(ref)
        return st

    def some_blob(repo):
        pool = list(blobs[repo].values())
        if pool and rnd.random() < 0.5:
            return rnd.choice(pool)
        return rnd.randbytes(rnd.randint(1, 300))

    def op_image(repo):
        config = json.dumps({"architecture": "amd64", "os": "linux",
                             "n": rnd.randint(0, 5)}).encode()
        layers = [some_blob(repo) for _ in range(rnd.randint(1, 2))]
        for data in [config] + layers:
            push_blob(repo, data)
        m = {"schemaVersion": 2, "mediaType": IMG, "config": desc(CFG, config),
             "layers": [desc(LAYER, data) for data in layers]}
        if rnd.random() < 0.15 and manifests[repo]:
            d, (mt, data) = rnd.choice(sorted(manifests[repo].items()))
            m["subject"] = desc(mt, data)
            m["artifactType"] = "application/x-test"
        body = json.dumps(m).encode()
        ref = "t%d" % rnd.randint(0, 6) if rnd.random() < 0.7 else sha(body)
        put_manifest(repo, ref, IMG, body)

    def op_index(repo):
        images = [(d, v) for d, v in sorted(manifests[repo].items()) if v[0] == IMG]
        if not images:
            return op_image(repo)
        children = rnd.sample(images, min(len(images), rnd.randint(1, 3)))
        body = json.dumps({"schemaVersion": 2, "mediaType": IDX,
                           "manifests": [desc(mt, data) for _, (mt, data) in children]}).encode()
        ref = "i%d" % rnd.randint(0, 3) if rnd.random() < 0.7 else sha(body)
        put_manifest(repo, ref, IDX, body)

    def op_retag(repo):
        if manifests[repo]:
            d, (mt, data) = rnd.choice(sorted(manifests[repo].items()))
            put_manifest(repo, "t%d" % rnd.randint(0, 6), mt, data)

    def op_delete_tag(repo):
        if tags[repo]:
            t = rnd.choice(sorted(tags[repo]))
            st, _, _ = c.req("DELETE", "/v2/%s/manifests/%s" % (repo, t))
            check("delete tag", st, (202, 404))
            tags[repo].discard(t)

    def op_delete_manifest(repo):
        if manifests[repo]:
            d = rnd.choice(sorted(manifests[repo]))
            st, _, _ = c.req("DELETE", "/v2/%s/manifests/%s" % (repo, d))
            # 409: an index of the repository still names it
            check("delete manifest", st, (202, 404, 409))
            if st in (202, 404):
                manifests[repo].pop(d, None)

    def op_delete_blob(repo):
        pool = sorted(set(blobs[repo]) | set(manifests[repo]))
        if pool:
            d = rnd.choice(pool)
            st, _, _ = c.req("DELETE", "/v2/%s/blobs/%s" % (repo, d))
            # 404: not there, or a manifest (the blob endpoint knows none); 409: referenced
            check("delete blob", st, (202, 404, 409))
            if st == 202:
                blobs[repo].pop(d, None)

    def op_mount(repo):
        src = rnd.choice([r for r in REPOS if r != repo])
        pool = sorted(set(blobs[src]) | set(manifests[src]))
        if pool:
            d = rnd.choice(pool)
            st, _, _ = c.req("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (repo, d, src))
            check("mount", st, (201, 202))
            if st == 201:
                data = blobs[src].get(d) or manifests[src][d][1]
                blobs[repo][d] = data

    ops = [(op_image, 5), (op_index, 3), (op_retag, 2), (op_delete_tag, 2),
           (op_delete_manifest, 3), (op_delete_blob, 4), (op_mount, 2)]
    weighted = [f for f, w in ops for _ in range(w)]
    n = 0
    while n < max_ops and time.time() < deadline:
        rnd.choice(weighted)(rnd.choice(REPOS))
        n += 1
    print("seed %d: %d operations %s" % (seed, n, json.dumps(counts, sort_keys=True)))


def pages(c, path, key):
    out = []
    while path:
        st, h, body = c.req("GET", path)
        if st != 200:
            fail("GET %s answered %d" % (path, st))
        out += json.loads(body)[key] or []
        link = h.get("link")
        path = link[link.index("<") + 1:link.index(">")] if link else None
    return out


def verify(url):
    c = Client(url)
    pulled = 0

    def pull(repo, ref, what):
        st, h, body = c.req("GET", "/v2/%s/manifests/%s" % (repo, ref),
                            headers={"Accept": IMG + ", " + IDX})
        if st != 200:
            fail("%s: GET manifest %s:%s answered %d" % (what, repo, ref, st))
        if ":" in ref and sha(body) != ref:
            fail("%s: manifest %s:%s has digest %s" % (what, repo, ref, sha(body)))
        doc = json.loads(body)
        if doc.get("mediaType") == IDX or "manifests" in doc:
            for child in doc["manifests"]:
                pull(repo, child["digest"], what + " > " + child["digest"][:19])
            return
        for d in [doc["config"]] + doc["layers"]:
            st, _, data = c.req("GET", "/v2/%s/blobs/%s" % (repo, d["digest"]))
            if st != 200 or sha(data) != d["digest"] or len(data) != d["size"]:
                fail("%s: blob %s of %s:%s answered %d" % (what, d["digest"], repo, ref, st))

    for repo in pages(c, "/v2/_catalog?n=2", "repositories"):
        for tag in pages(c, "/v2/%s/tags/list?n=3" % repo, "tags"):
            pull(repo, tag, "%s:%s" % (repo, tag))
            pulled += 1
    print("%d tags pull whole" % pulled)
    if pulled == 0:
        fail("no tag left to pull: the sequence tested nothing")


if __name__ == "__main__":
    if sys.argv[1] == "--verify":
        verify(sys.argv[2])
    else:
        drive(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]))
