#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# A development aid only (make check does not use it: the browser tests run against a real
# `berth serve`): serves ui/ and a fake /ui/api/v1/ with made-up data, following
# /work/notes/UI-API.md, so the front end can be worked on without the server side.
#   python3 tests/browser/mock_api.py [PORT] [--auth]   (--auth: user alice / password secret)
import base64, json, os, sys, time
from datetime import datetime, timezone, timedelta
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
from urllib.parse import urlsplit, parse_qs

UI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ui")
PORT = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5790
AUTH = "--auth" in sys.argv
now = datetime.now(timezone.utc)
iso = lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")
D = lambda i: "sha256:%064x" % (i * 7919 + 12345)

REPOS = {}
for i in range(230):
    ns = ["", "team", "team/backend", "library", "<b>evil</b>"][i % 5]
    name = (ns + "/" if ns else "") + "app%03d" % i
    REPOS[name] = [{"name": "v%d" % t, "digest": D(i * 100 + t),
                    "media_type": "application/vnd.oci.image.manifest.v1+json",
                    "artifact_type": None, "size": 1000 * (i + 1) * (t + 1),
                    "pushed": iso(now - timedelta(hours=t * 5 + i)),
                    "platforms": [{"os": "linux", "architecture": "amd64", "variant": None}]}
                   for t in range(3 + i % 4)]
REPOS["library/many"] = [{"name": "t%04d" % t, "digest": D(t), "media_type": "application/vnd.oci.image.manifest.v1+json",
                          "artifact_type": None, "size": 5000 + t, "pushed": iso(now - timedelta(minutes=t)),
                          "platforms": []} for t in range(1000)]
REPOS["library/multi"] = [{"name": "latest", "digest": D(99999), "media_type": "application/vnd.oci.image.index.v1+json",
                           "artifact_type": None, "size": 9_000_000, "pushed": iso(now),
                           "platforms": [{"os": "linux", "architecture": "amd64", "variant": None},
                                         {"os": "linux", "architecture": "arm64", "variant": "v8"}]}]


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def send(self, status, body, ctype="application/json"):
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("X-Berth-Login", "basic")
        self.end_headers()
        self.wfile.write(body)

    def user(self):
        a = self.headers.get("Authorization", "")
        if a.startswith("Basic ") and base64.b64decode(a[6:]).decode() == "alice:secret":
            return "alice"
        return None

    def err(self, status, code, msg):
        self.send(status, {"errors": [{"code": code, "message": msg, "detail": None}]})

    def do_DELETE(self):
        p = urlsplit(self.path).path
        if AUTH and not self.user():
            return self.err(401, "UNAUTHORIZED", "authentication required")
        name, _, ref = p[len("/v2/"):].rpartition("/manifests/")
        tags = REPOS.get(name, [])
        REPOS[name] = [t for t in tags if t["name"] != ref and t["digest"] != ref]
        self.send(202, b"", "text/plain")

    def do_GET(self):
        u = urlsplit(self.path)
        p, q = u.path, {k: v[0] for k, v in parse_qs(u.query).items()}
        if p.startswith("/ui/assets/"):
            f = os.path.join(UI, "assets", os.path.basename(p))
            if not os.path.isfile(f):
                return self.err(404, "NOT_FOUND", "no such asset")
            ct = {"js": "text/javascript", "css": "text/css", "svg": "image/svg+xml"}[f.rsplit(".", 1)[1]]
            return self.send(200, open(f, "rb").read(), ct)
        if not p.startswith("/ui/api/"):
            return self.send(200, open(os.path.join(UI, "index.html"), "rb").read(), "text/html; charset=utf-8")
        api = p[len("/ui/api/v1"):]
        user = self.user()
        if api == "/session":
            return self.send(200, {"user": user, "auth": "basic" if AUTH else "none",
                                   "login_required": AUTH and not user, "host": self.headers.get("Host"),
                                   "read_only": False, "deletes": True, "version": "0.0.0-mock"})
        if AUTH and not user:
            return self.err(401, "UNAUTHORIZED", "authentication required")
        if api == "/repositories":
            n, last, text = int(q.get("n", 50)), q.get("last", ""), q.get("q", "").lower()
            names = sorted(k for k in REPOS if text in k.lower())
            rest = [k for k in names if k > last]
            page = rest[:n]
            return self.send(200, {"repositories": [{"name": k, "namespace": k.rpartition("/")[0],
                                                      "tag_count": len(REPOS[k]),
                                                      "size": sum(t["size"] for t in REPOS[k]),
                                                      "last_push": max((t["pushed"] for t in REPOS[k]), default=None)}
                                                     for k in page],
                                   "next": page[-1] if len(rest) > n else None, "total": len(names)})
        if api == "/storage":
            return self.send(200, {"repositories": [{"name": k, "exclusive": 1000 * len(k), "shared": 77 * len(k)} for k in sorted(REPOS)[:40]],
                                   "uploads": {"open": 2, "bytes": 123456},
                                   "gc": {"last_run": iso(now - timedelta(days=1)), "freed_bytes": 99999999,
                                          "blobs_deleted": 12, "manifests_deleted": 3}})
        if api.startswith("/repositories/"):
            rest = api[len("/repositories/"):]
            if rest.endswith("/tags"):
                name = rest[:-5]
                if name not in REPOS:
                    return self.err(404, "NAME_UNKNOWN", "repository name not known to registry")
                tags = list(REPOS[name])
                key = q.get("sort", "pushed")
                tags.sort(key=lambda t: t[key], reverse=q.get("order", "desc" if key == "pushed" else "asc") == "desc")
                start = int(q.get("last", "0") or 0)
                n = int(q.get("n", 50))
                page = tags[start:start + n]
                return self.send(200, {"tags": page, "next": str(start + n) if start + n < len(tags) else None,
                                       "can_delete": True})
            name, _, ref = rest.rpartition("/manifests/")
            tags = REPOS.get(name, [])
            t = next((t for t in tags if ref in (t["name"], t["digest"])), None)
            if not t and not ref.startswith("sha256:"):
                return self.err(404, "MANIFEST_UNKNOWN", "manifest unknown")
            digest = t["digest"] if t else ref
            if t and t["media_type"].endswith("index.v1+json"):
                children = [{"digest": D(5000 + i), "media_type": "application/vnd.oci.image.manifest.v1+json",
                             "size": 800, "platform": p} for i, p in enumerate(t["platforms"])]
                return self.send(200, {"digest": digest, "media_type": t["media_type"], "artifact_type": None,
                                       "size": 600, "tags": [t["name"]],
                                       "manifest": {"schemaVersion": 2, "mediaType": t["media_type"],
                                                    "manifests": [{"mediaType": c["media_type"], "digest": c["digest"],
                                                                   "size": 800, "platform": c["platform"]} for c in children]},
                                       "children": children, "config": None, "layers": None, "total_size": 9_000_000,
                                       "referrers": [], "subject": None, "can_delete": True})
            layers = [{"digest": D(700 + i), "media_type": "application/vnd.oci.image.layer.v1.tar+gzip",
                       "size": 3_000_000 // (i + 1), "annotations": {}} for i in range(3)]
            config = {"created": iso(now - timedelta(days=2)), "author": "Alice <alice@example.org>",
                      "architecture": "amd64", "os": "linux",
                      "config": {"Entrypoint": ["/usr/bin/app"], "Cmd": ["--serve"], "Env": ["PATH=/usr/bin", "APP=<script>x</script>"],
                                 "ExposedPorts": {"8080/tcp": {}}, "Labels": {"org.opencontainers.image.source": "https://example.org/app"},
                                 "WorkingDir": "/srv", "User": "1000:1000"},
                      "history": [{"created": iso(now - timedelta(days=3)), "created_by": "/bin/sh -c #(nop) ADD file:abc in / "},
                                  {"created": iso(now - timedelta(days=2)), "created_by": "RUN apk add curl"},
                                  {"created": iso(now - timedelta(days=2)), "created_by": "CMD [\"--serve\"]", "empty_layer": True}]}
            referrers = [{"digest": D(8000), "media_type": "application/vnd.oci.image.manifest.v1+json",
                          "artifact_type": "application/vnd.dev.cosign.artifact.sig.v1+json", "size": 500,
                          "annotations": {"org.opencontainers.image.created": iso(now)}},
                         {"digest": D(8001), "media_type": "application/vnd.oci.image.manifest.v1+json",
                          "artifact_type": "application/spdx+json", "size": 900, "annotations": {}}]
            return self.send(200, {"digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json",
                                   "artifact_type": None, "size": 700, "tags": [t["name"]] if t else [],
                                   "manifest": {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                                                "config": {"digest": D(1), "size": 1500}, "layers": layers,
                                                "annotations": {"org.opencontainers.image.title": "app"}},
                                   "config": config, "layers": layers, "total_size": 5_501_500,
                                   "referrers": referrers, "subject": None, "can_delete": True})
        return self.err(404, "NOT_FOUND", "unknown")


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
