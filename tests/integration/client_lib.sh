#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Helpers of the client integration tests: free loopback ports, a Distribution registry, a
# `berth serve`, OCI layouts built by hand, and cleanup of everything they started.
set -euo pipefail

: "${BERTH:?BERTH must name the berth binary}"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/berth-client-test.XXXXXX")
. "$(dirname "${BASH_SOURCE[0]}")/storage_lib.sh"
PIDS=()

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # PORT
    local i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$1/v2/"; then
            return 0
        fi
        sleep 0.1
    done
    fail "nothing listens on port $1"
}

# start_distribution NAME [AUTH_YAML]: sets ${NAME}_PORT, ${NAME}_PID (port: $FIXED_PORT or a
# free one)
start_distribution() {
    local name=$1 auth=${2:-} port dir
    port=${FIXED_PORT:-$(free_port)}
    dir="$WORK/$name"
    mkdir -p "$dir/data"
    {
        echo "version: 0.1"
        echo "log: {level: error, accesslog: {disabled: true}}"
        echo "storage: {filesystem: {rootdirectory: $dir/data}, delete: {enabled: true}}"
        echo "http: {addr: 127.0.0.1:$port}"
        if [ -n "$auth" ]; then echo "$auth"; fi
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 &
    PIDS+=($!)
    eval "${name}_PID=$!"
    eval "${name}_PORT=$port"
    local i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
            return 0
        fi
        sleep 0.1
    done
    cat "$dir/log" >&2
    fail "distribution did not start"
}

# start_berth NAME: sets ${NAME}_PORT, ${NAME}_PID; returns 1 when berth serve cannot run
start_berth() {
    local name=$1 port dir
    port=$(free_port)
    dir="$WORK/$name"
    mkdir -p "$dir/root"
    if [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
        # each server its own S3 + PostgreSQL storage (storage_lib.sh)
        (scale_storage_env && exec "$BERTH" serve --listen "127.0.0.1:$port" \
            --root "$dir/root") >"$dir/log" 2>&1 &
    else
        "$BERTH" serve --listen "127.0.0.1:$port" --root "$dir/root" >"$dir/log" 2>&1 &
    fi
    local pid=$!
    PIDS+=($pid)
    eval "${name}_PID=$pid"
    eval "${name}_PORT=$port"
    local i
    for i in $(seq 1 50); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# make_layout DIR TAG [PLATFORMS...]: an OCI layout with random layers; with platforms
# ("linux/amd64" "linux/arm/v7"), an index of one image per platform.
make_layout() {
    python3 - "$@" <<'PY'
import hashlib, json, os, sys
d, tag, plats = sys.argv[1], sys.argv[2], sys.argv[3:]
os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    with open(f"{d}/blobs/sha256/{h}", "wb") as f:
        f.write(b)
    return "sha256:" + h, len(b)
def image(os_, arch, variant, nlayers=2, big=0):
    layers = []
    for i in range(nlayers):
        size = big if (big and i == 0) else 1000 + i * 37
        dg, n = put(os.urandom(size))
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": dg, "size": n})
    p = {"architecture": arch, "os": os_}
    if variant: p["variant"] = variant
    cfg = dict(p, rootfs={"type": "layers", "diff_ids": [l["digest"] for l in layers]},
               config={"Env": ["A=" + os.urandom(4).hex()]})
    cd, cn = put(json.dumps(cfg).encode())
    m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
         "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": cn},
         "layers": layers}
    md, mn = put(json.dumps(m).encode())
    desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": mn}
    return desc, p
big = int(os.environ.get("BIG_LAYER", "0"))
if not plats:
    top, _ = image("linux", "amd64", None, big=big)
else:
    ms = []
    for pl in plats:
        parts = pl.split("/")
        desc, p = image(parts[0], parts[1], parts[2] if len(parts) > 2 else None, big=big)
        desc["platform"] = p
        ms.append(desc)
    idx = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": ms}
    dg, n = put(json.dumps(idx).encode())
    top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": dg, "size": n}
top["annotations"] = {"org.opencontainers.image.ref.name": tag}
with open(d + "/oci-layout", "w") as f:
    json.dump({"imageLayoutVersion": "1.0.0"}, f)
with open(d + "/index.json", "w") as f:
    json.dump({"schemaVersion": 2, "manifests": [top]}, f)
print(top["digest"])
PY
}

# manifest_digest HOST:PORT REPO REF: the digest a registry serves for a reference
manifest_digest() {
    curl -sfI -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
        "http://$1/v2/$2/manifests/$3" | tr -d '\r' | awk -F': ' 'tolower($1)=="docker-content-digest"{print $2}'
}

expect_eq() { # GOT WANT WHAT
    [ "$1" = "$2" ] || fail "$3: got '$1', want '$2'"
}

# start_fake NAME LAYOUT_DIR [ARGS]: a small read-only registry in python3 serving the layout,
# with the Docker token flow (--token; tokens that expire after --ttl S, counted in /stats
# "expired" when used later), Basic checked by the token endpoint (--basic U:P),
# paginated tag lists (--page N, tags from --tags a,b,c) and slow blobs (--slow).
# Sets ${NAME}_PORT and ${NAME}_PID. GET /stats (no auth) reports token requests.
start_fake() {
    local name=$1 layout=$2 port
    shift 2
    port=$(free_port)
    cat >"$WORK/fake.py" <<'PY'
import base64, json, os, re, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import argparse
ap = argparse.ArgumentParser()
ap.add_argument("port", type=int); ap.add_argument("layout")
ap.add_argument("--token", action="store_true"); ap.add_argument("--basic")
ap.add_argument("--page", type=int, default=0); ap.add_argument("--tags", default="")
ap.add_argument("--slow", action="store_true")
ap.add_argument("--ttl", type=float, default=0)
a = ap.parse_args()
stats = {"token_requests": 0, "token_basic": [], "scopes": [], "expired": 0, "blob_streams": 0}
index = json.load(open(a.layout + "/index.json"))
tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
extra = [t for t in a.tags.split(",") if t]
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def send(self, code, body=b"", headers=None):
        self.send_response(code)
        for k, v in (headers or {}).items(): self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD": self.wfile.write(body)
    def authorized(self, scope):
        if not a.token: return True
        want = "Bearer tok-" + scope
        got = self.headers.get("Authorization", "")
        if a.ttl and got.startswith(want + "@"):
            if time.time() - float(got.split("@")[1]) <= a.ttl: return True
            stats["expired"] += 1
        elif got == want: return True
        realm = "http://127.0.0.1:%d/token" % a.port
        self.send(401, b'{"errors":[{"code":"UNAUTHORIZED","message":"token needed"}]}',
                  {"WWW-Authenticate": 'Bearer realm="%s",service="fake",scope="%s"' % (realm, scope),
                   "Content-Type": "application/json"})
        return False
    def do_HEAD(self): self.do_GET()
    def do_GET(self):
        p = self.path
        if p == "/stats": return self.send(200, json.dumps(stats).encode())
        if p.startswith("/token"):
            q = dict(x.split("=", 1) for x in p.split("?", 1)[1].split("&"))
            from urllib.parse import unquote
            scope = unquote(q.get("scope", ""))
            stats["token_requests"] += 1; stats["scopes"].append(scope)
            auth = self.headers.get("Authorization", "")
            if a.basic:
                if auth != "Basic " + base64.b64encode(a.basic.encode()).decode():
                    return self.send(401, b"{}")
                stats["token_basic"].append(auth)
            if a.ttl:
                now = time.time()
                iat = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % int(now % 1 * 1000)
                return self.send(200, json.dumps({"token": "tok-%s@%f" % (scope, now),
                                                  "expires_in": int(a.ttl), "issued_at": iat}).encode())
            return self.send(200, json.dumps({"access_token": "tok-" + scope, "expires_in": 300}).encode())
        if p == "/v2/" or p == "/v2":
            if not self.authorized(""): return
            return self.send(200, b"{}")
        m = re.match(r"^/v2/(.+)/(manifests|blobs|tags)/([^?]+)(\?.*)?$", p)
        if not m: return self.send(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"x"}]}')
        repo, kind, ref, query = m.group(1), m.group(2), m.group(3), m.group(4) or ""
        if not self.authorized("repository:%s:pull" % repo): return
        if kind == "tags":
            allt = sorted(set(list(tags) + extra))
            last = re.search(r"last=([^&]+)", query)
            if last: allt = [t for t in allt if t > last.group(1)]
            hdr = {"Content-Type": "application/json"}
            if a.page and len(allt) > a.page:
                allt = allt[:a.page]
                hdr["Link"] = '</v2/%s/tags/list?n=%d&last=%s>; rel="next"' % (repo, a.page, allt[-1])
            return self.send(200, json.dumps({"name": repo, "tags": allt}).encode(), hdr)
        if kind == "manifests":
            d = ref if ref.startswith("sha256:") else tags.get(ref, {}).get("digest")
            path = a.layout + "/blobs/sha256/" + (d or "x:x").split(":")[1]
            if not d or not os.path.exists(path): return self.send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"x"}]}')
            body = open(path, "rb").read()
            mt = json.loads(body).get("mediaType", "application/vnd.oci.image.manifest.v1+json")
            return self.send(200, body, {"Content-Type": mt, "Docker-Content-Digest": d})
        path = a.layout + "/blobs/sha256/" + ref.split(":")[1]
        if not os.path.exists(path): return self.send(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"x"}]}')
        body = open(path, "rb").read()
        if not a.slow or self.command == "HEAD": return self.send(200, body)
        stats["blob_streams"] += 1
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        for i in range(0, len(body), 4096):
            self.wfile.write(body[i:i + 4096]); self.wfile.flush(); time.sleep(0.05)
ThreadingHTTPServer(("127.0.0.1", a.port), H).serve_forever()
PY
    python3 "$WORK/fake.py" "$port" "$layout" "$@" >"$WORK/fake-$name.log" 2>&1 &
    PIDS+=($!)
    eval "${name}_PID=$!"
    eval "${name}_PORT=$port"
    local i
    for i in $(seq 1 100); do
        if curl -s -o /dev/null "http://127.0.0.1:$port/stats"; then
            return 0
        fi
        sleep 0.1
    done
    fail "fake registry did not start"
}

# wait_stream NAME: wait until the --slow fake NAME streams a blob, then half a second more
wait_stream() {
    local port i
    port=$(eval "echo \$${1}_PORT")
    for i in $(seq 1 100); do
        if curl -s "http://127.0.0.1:$port/stats" | grep -q '"blob_streams": [1-9]'; then
            sleep 0.5
            return 0
        fi
        sleep 0.1
    done
    fail "fake registry $1 streamed no blob"
}

# manifest_code HOST:PORT REPO REF: the HTTP status of a manifest GET with the Accept list
manifest_code() {
    curl -s -o /dev/null -w '%{http_code}' -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json' \
        "http://$1/v2/$2/manifests/$3"
}
