#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Fills a live `berth serve` for the browser tests, fast: real-looking images are written as OCI
# layouts here and pushed by skopeo (a multi-platform index, an image with its config, history and
# labels); the bulk (1,000 tags in one repository, 2,000 repositories) goes through the registry
# API over a few keep-alive connections (cross-repository mounts: no blob is sent twice).
#
#   fill.py layouts DIR [clean]    write the OCI layouts skopeo pushes (DIR/multi, DIR/web, ...)
#   fill.py bulk URL [USER:PASS]   1,000 tags in library/many, 2,000 repositories under bulk/
#   fill.py referrers URL NAME TAG [USER:PASS]   a signature and an SBOM whose subject is NAME:TAG
#   fill.py small URL USER:PASS [NAME=TAG,TAG...]   a few repositories for the servers with auth
import base64, gzip, hashlib, http.client, io, json, os, random, sys, tarfile, threading, time
from urllib.parse import urlsplit

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SIG_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
SBOM_TYPE = "application/spdx+json"
# text the UI must show as text, never as markup (the test checks window.__pwned stays unset)
EVIL = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script>'


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def tar_gz(files):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
        for path, data in files:
            info = tarfile.TarInfo(path)
            info.size, info.mtime, info.mode = len(data), 1700000000, 0o755
            t.addfile(info, io.BytesIO(data))
    plain = raw.getvalue()
    gz = io.BytesIO()
    with gzip.GzipFile(fileobj=gz, mode="wb", mtime=0) as g:
        g.write(plain)
    return gz.getvalue(), sha(plain)


def image(arch, variant, name, seed, clean=False):
    """(config bytes, [layer bytes]) of a small but real-looking image (clean: without EVIL)."""
    rnd = random.Random(seed + arch)  # incompressible but repeatable bytes: layers of real sizes
    base, base_diff = tar_gz([("etc/os-release", b'NAME="Berthix"\nVERSION_ID=1.0\n'),
                              ("bin/busybox", rnd.randbytes(700_000))])
    app, app_diff = tar_gz([("srv/app/" + name, ("#!/bin/sh\necho %s %s\n" % (name, arch)).encode() * 900),
                            ("srv/app/data.bin", rnd.randbytes(180_000))])
    cfg = {
        "created": "2026-11-20T10:15:00Z", "author": "Berth Tests <tests@berth.example>",
        "architecture": arch, "os": "linux",
        "config": {
            "User": "1000:1000", "WorkingDir": "/srv/app",
            "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "APP_NAME=" + name] + ([] if clean else ["NOTE=" + EVIL]),
            "Entrypoint": ["/srv/app/" + name], "Cmd": ["--listen", ":8080"],
            "ExposedPorts": {"8080/tcp": {}, "9090/tcp": {}},
            "Labels": {"org.opencontainers.image.source": "https://git.example/" + name,
                       "org.opencontainers.image.version": "1.0"},
        },
        "rootfs": {"type": "layers", "diff_ids": [base_diff, app_diff]},
        "history": [
            {"created": "2026-11-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:base in / "},
            {"created": "2026-11-20T10:14:00Z", "created_by": "COPY app /srv/app # buildkit", "comment": "buildkit.dockerfile.v0"},
            {"created": "2026-11-20T10:15:00Z", "created_by": "ENTRYPOINT [\"/srv/app/%s\"]" % name, "empty_layer": True},
        ],
    }
    if not clean:
        cfg["config"]["Labels"]["evil"] = EVIL
    if variant:
        cfg["variant"] = variant
    return json.dumps(cfg, indent=1).encode(), [base, app]


class Layout:
    def __init__(self, d):
        self.d = d
        os.makedirs(d + "/blobs/sha256", exist_ok=True)
        self.refs = []

    def put(self, b):
        h = sha(b)
        with open(self.d + "/blobs/sha256/" + h[7:], "wb") as f:
            f.write(b)
        return h, len(b)

    def image_manifest(self, arch, variant, name, seed, clean=False):
        cfg, layers = image(arch, variant, name, seed, clean)
        cd, cn = self.put(cfg)
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
             "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cn},
             "layers": [dict(zip(("mediaType", "digest", "size"), (OCI_LAYER,) + self.put(l))) for l in layers],
             "annotations": {"org.opencontainers.image.title": name, "org.opencontainers.image.created": "2026-11-20T10:15:00Z"}}
        return self.put(json.dumps(m).encode())

    def ref(self, tag, digest, size, mt):
        self.refs.append({"mediaType": mt, "digest": digest, "size": size,
                          "annotations": {"org.opencontainers.image.ref.name": tag}})

    def close(self):
        json.dump({"imageLayoutVersion": "1.0.0"}, open(self.d + "/oci-layout", "w"))
        json.dump({"schemaVersion": 2, "manifests": self.refs}, open(self.d + "/index.json", "w"))


def layouts(d, clean=""):
    """clean: images without the markup test strings (for the README's screenshots)"""
    multi = Layout(d + "/multi")
    kids = []
    for arch, variant in (("amd64", None), ("arm64", "v8"), ("arm", "v7")):
        md, mn = multi.image_manifest(arch, variant, "multi", "multi")
        p = {"os": "linux", "architecture": arch}
        if variant:
            p["variant"] = variant
        kids.append({"mediaType": OCI_MANIFEST, "digest": md, "size": mn, "platform": p})
    idx = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": kids,
           "annotations": {"org.opencontainers.image.description": "three platforms"}}
    multi.ref("1.0", *multi.put(json.dumps(idx).encode()), OCI_INDEX)
    multi.close()
    web = Layout(d + "/web")
    web.ref("1.0", *web.image_manifest("amd64", None, "web", "web", bool(clean)), OCI_MANIFEST)
    web.close()


class Client:
    """One keep-alive connection to the registry."""

    def __init__(self, url, creds=None):
        u = urlsplit(url)
        self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        self.auth = {"Authorization": "Basic " + base64.b64encode(creds.encode()).decode()} if creds else {}

    def req(self, method, path, body=None, headers=None, ok=(200, 201, 202)):
        h = dict(self.auth)
        h.update(headers or {})
        self.conn.request(method, path, body=body, headers=h)
        r = self.conn.getresponse()
        data = r.read()
        if r.status not in ok:
            raise SystemExit("%s %s -> %d %s" % (method, path, r.status, data[:300]))
        return r, data

    def blob(self, name, data, mount_from=None):
        d = sha(data)
        if mount_from:
            r, _ = self.req("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (name, d, mount_from), b"",
                            ok=(201, 202))
            if r.status == 201:
                return d, len(data)
            self.req("DELETE", r.getheader("Location"), ok=(204, 404))
        self.req("POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, d), data,
                 {"Content-Type": "application/octet-stream"}, ok=(201,))
        return d, len(data)

    def manifest(self, name, ref, m):
        b = json.dumps(m).encode()
        self.req("PUT", "/v2/%s/manifests/%s" % (name, ref), b, {"Content-Type": m["mediaType"]}, ok=(201,))
        return sha(b), len(b)


def small_image(c, name, arch, seed, mount_from=None):
    cfg = json.dumps({"architecture": arch, "os": "linux", "created": "2026-11-2%dT08:00:00Z" % (seed % 10),
                      "config": {"Cmd": ["/app"]}, "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = hashlib.sha256(b"layer").digest() * 2048  # one 64 KiB layer shared by all
    cd, cn = c.blob(name, cfg)
    ld, ln = c.blob(name, layer, mount_from)
    return {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": cd, "size": cn},
            "layers": [{"mediaType": OCI_LAYER, "digest": ld, "size": ln}]}


def bulk(url, creds=None):
    c = Client(url, creds)
    m = small_image(c, "library/many", "amd64", 1)
    for i in range(999):
        m["annotations"] = {"org.example.build": str(i)}
        c.manifest("library/many", "t%04d" % i, m)
    # bulk/nsNN/repoNNNN: 2,000 repositories in 20 namespaces, on 4 connections
    errors = []

    def work(k):
        try:
            cc = Client(url, creds)
            for i in range(k, 2000, 4):
                name = "bulk/ns%02d/repo%04d" % (i % 20, i)
                cc.manifest(name, "v1", small_image(cc, name, "amd64", i, "library/many"))
        except BaseException as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errors:
        raise SystemExit("bulk fill: %s" % errors[0])
    # the newest tag last, a second later, so that "pushed, newest first" has one clear winner
    time.sleep(1.1)
    m["annotations"] = {"org.example.build": "newest"}
    c.manifest("library/many", "newest", m)


def referrers(url, name, tag, creds=None):
    c = Client(url, creds)
    r, body = c.req("GET", "/v2/%s/manifests/%s" % (name, tag), headers={"Accept": OCI_MANIFEST})
    subject = {"mediaType": OCI_MANIFEST, "digest": sha(body), "size": len(body)}
    empty = c.blob(name, b"{}")
    out = []
    for at, mt, payload, ann in (
            (SIG_TYPE, "application/vnd.dev.cosign.simplesigning.v1+json",
             json.dumps({"critical": {"image": {"docker-manifest-digest": subject["digest"]},
                                      "type": "cosign container image signature"}}).encode(),
             {"dev.cosignproject.cosign/signature": "MEUCIQDfakesignature=="}),
            (SBOM_TYPE, SBOM_TYPE,
             json.dumps({"spdxVersion": "SPDX-2.3", "name": name, "packages": [{"name": "busybox", "versionInfo": "1.36"}]}).encode(),
             {"org.opencontainers.image.created": "2026-11-20T10:20:00Z"})):
        ld, ln = c.blob(name, payload)
        m = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": at,
             "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty[0], "size": empty[1]},
             "layers": [{"mediaType": mt, "digest": ld, "size": ln}],
             "subject": subject, "annotations": ann}
        b = json.dumps(m).encode()
        out.append(c.manifest(name, sha(b), m)[0])
    print(subject["digest"], *out)


def small(url, creds, *repos):
    """repos: NAME=TAG,TAG... (default: team/web, team/api, secret/vault)"""
    c = Client(url, creds)
    todo = [(r.split("=")[0], r.split("=")[1].split(",")) for r in repos] or \
        [("team/web", ["1.0", "1.1", "old"]), ("team/api", ["v1"]), ("secret/vault", ["v1"])]
    for name, tags in todo:
        for i, t in enumerate(tags):
            c.manifest(name, t, small_image(c, name, "amd64", i))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"layouts": layouts, "bulk": bulk, "referrers": referrers, "small": small}[cmd](*args)
