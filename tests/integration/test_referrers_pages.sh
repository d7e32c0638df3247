#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Referrers are paginated as the distribution spec describes: a page holds at most n
# descriptors (100 by default) and about 1 MiB, and a Link rel="next" header leads on (keeping
# an artifactType filter); the berth client follows it, so berth copy --referrers copies all.
. "$(dirname "$0")/lib.sh"
start_server
T=$BERTH_TMP

python3 - "$URL" >"$T/out" 2>&1 <<'PY'
import hashlib, http.client, json, sys, urllib.parse
url = sys.argv[1]
u = urllib.parse.urlparse(url)
c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
IDX = "application/vnd.oci.image.index.v1+json"
fails = []
def req(method, path, body=None, headers=None):
    c.request(method, path, body, headers or {})
    r = c.getresponse()
    return r.status, r.getheader("Link"), r.read()
subject = json.dumps({"schemaVersion": 2, "mediaType": IDX, "manifests": []}).encode()
sd = "sha256:" + hashlib.sha256(subject).hexdigest()
st, _, _ = req("PUT", "/v2/src/manifests/s", subject, {"Content-Type": IDX})
assert st == 201, st
want = {}
for i in range(250):
    at = "application/x-a+json" if i % 2 else "application/x-b"
    body = json.dumps({"schemaVersion": 2, "mediaType": IDX, "manifests": [], "artifactType": at,
                       "subject": {"mediaType": IDX, "digest": sd, "size": len(subject)},
                       "annotations": {"i": str(i), "pad": "p" * 5000}}).encode()
    d = "sha256:" + hashlib.sha256(body).hexdigest()
    st, _, _ = req("PUT", "/v2/src/manifests/" + d, body, {"Content-Type": IDX})
    assert st == 201, st
    want[d] = at

def walk(path):
    got, pages, biggest = [], 0, 0
    while path:
        st, link, body = req("GET", path)
        if st != 200:
            fails.append("GET %s: %d" % (path, st))
            break
        doc = json.loads(body)
        got += [m["digest"] for m in doc["manifests"]]
        biggest = max(biggest, len(body))
        pages += 1
        path = link[link.index("<") + 1:link.index(">")] if link else None
        if link and 'rel="next"' not in link:
            fails.append("Link without rel=next: %r" % link)
    return got, pages, biggest

st, link, body = req("GET", "/v2/src/referrers/" + sd)
first = json.loads(body)["manifests"]
print("first page: %d descriptors, %d bytes, Link %r" % (len(first), len(body), link))
if not link or len(first) > 100 or len(body) > (1 << 20) + 8000:
    fails.append("first page not bounded: %d descriptors, %d bytes" % (len(first), len(body)))
got, pages, biggest = walk("/v2/src/referrers/" + sd)
print("all pages: %d descriptors in %d pages, largest %d bytes" % (len(got), pages, biggest))
if got != sorted(want):
    fails.append("pages give %d descriptors (%d distinct), want %d in digest order" %
                 (len(got), len(set(got)), len(want)))
st, link, body = req("GET", "/v2/src/referrers/%s?n=7" % sd)
if len(json.loads(body)["manifests"]) != 7 or not link or "n=7" not in link:
    fails.append("n=7: %d descriptors, Link %r" % (len(json.loads(body)["manifests"]), link))
got, pages, _ = walk("/v2/src/referrers/%s?n=40&artifactType=application/x-a%%2Bjson" % sd)
wa = sorted(d for d, at in want.items() if at == "application/x-a+json")
if got != wa or pages < 3:
    fails.append("filtered pages: %d descriptors in %d pages, want %d" % (len(got), pages, len(wa)))
print(json.dumps(sd))
print("FAILS:", fails)
sys.exit(1 if fails else 0)
PY
check "referrers pages" 0 "$?"
cat "$T/out"
SD=$(sed -n 's/^"\(sha256:[0-9a-f]*\)"$/\1/p' "$T/out")

"$BERTH" copy --quiet --referrers "$HOSTPORT/src:s" "$HOSTPORT/dst:s" >"$T/copy.out" 2>&1
check "berth copy --referrers" 0 "$?"
python3 - "$URL/v2/dst/referrers/$SD?n=1000" <<'PY' >"$T/count"
import json, sys, urllib.request, urllib.parse
url, n = sys.argv[1], 0
while url:
    r = urllib.request.urlopen(url)
    n += len(json.load(r)["manifests"])
    link = r.headers.get("Link")
    url = urllib.parse.urljoin(url, link[link.index("<") + 1:link.index(">")]) if link else None
print(n)
PY
check "every referrer copied, past the first page" 250 "$(cat "$T/count")"
finish
