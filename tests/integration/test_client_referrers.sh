#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# berth copy --referrers: an artifact whose subject is an image follows the image to another
# repository (read back through the referrers API) and into an OCI layout; without the flag
# it stays behind. To Distribution 2.8, which has no referrers API, the copy keeps the
# referrers tag schema's fallback tag sha256-<hex> (fetched, added to, pushed back, never
# duplicated), and a copy back from there finds the artifact through that tag.
. "$(dirname "$0")/client_lib.sh"

if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT
img=$(make_layout "$WORK/img" v1)
"$BERTH" copy --quiet "oci:$WORK/img:v1" "$B/app/img:v1"

# an artifact (a "signature") whose subject is the image, pushed by digest
art=$(python3 - "$WORK/art" "$img" "$WORK/img" <<'PY'
import hashlib, json, os, sys
d, subject, src = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return "sha256:" + h, len(b)
cd, cn = put(b"{}")
ld, ln = put(b"signature of " + subject.encode())
size = os.path.getsize(src + "/blobs/sha256/" + subject[7:])
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "artifactType": "application/vnd.example.sig",
     "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": cd, "size": cn},
     "layers": [{"mediaType": "application/vnd.example.sig.v1", "digest": ld, "size": ln}],
     "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": size}}
md, mn = put(json.dumps(m).encode())
json.dump({"imageLayoutVersion": "1.0.0"}, open(d + "/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": m["mediaType"], "digest": md, "size": mn,
           "annotations": {"org.opencontainers.image.ref.name": "sig"}}]}, open(d + "/index.json", "w"))
print(md)
PY
)
"$BERTH" copy --quiet "oci:$WORK/art:sig" "$B/app/img@$art"
curl -sf "http://$B/v2/app/img/referrers/$img" | grep -q "$art" ||
    fail "the artifact is not a referrer at the source"

# without --referrers the artifact stays behind
"$BERTH" copy --quiet "$B/app/img:v1" "$B/plain/img:v1"
! curl -sf "http://$B/v2/plain/img/referrers/$img" | grep -q "$art" ||
    fail "referrer copied without --referrers"

# with --referrers it follows, to a registry and to a layout
"$BERTH" copy --quiet --referrers "$B/app/img:v1" "$B/mirror/img:v1"
curl -sf "http://$B/v2/mirror/img/referrers/$img" | grep -q "$art" ||
    fail "referrer not copied to the registry"
expect_eq "$(manifest_digest "$B" mirror/img v1)" "$img" "subject digest"
"$BERTH" copy --quiet --referrers "$B/app/img:v1" "oci:$WORK/out:v1"
[ -f "$WORK/out/blobs/sha256/${art#sha256:}" ] || fail "referrer not copied to the layout"
grep -q "$art" "$WORK/out/index.json" || fail "referrer not listed in the layout's index.json"

# to a registry without the referrers API: the fallback tag lists the artifact
start_distribution DIST
D=127.0.0.1:$DIST_PORT
fallback() { # HOST REPO DIGEST: the fallback index, one "digest artifactType" a line
    curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$1/v2/$2/manifests/sha256-${3#sha256:}" |
        python3 -c 'import json,sys
for m in json.load(sys.stdin)["manifests"]: print(m["digest"], m.get("artifactType"))'
}
# an entry someone else put there first stays (Distribution wants what an index lists present:
# the image itself stands in for another referrer)
"$BERTH" copy --quiet "$B/app/img:v1" "$D/dist/img:v1"
other=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"%s","size":%s,"artifactType":"application/x-other"}]}' \
    "$img" "$(stat -c %s "$WORK/img/blobs/sha256/${img#sha256:}")")
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' --data-binary "$other" \
    "http://$D/v2/dist/img/manifests/sha256-${img#sha256:}" >/dev/null || fail "seeding the fallback tag"
"$BERTH" copy --verbose --referrers "$B/app/img:v1" "$D/dist/img:v1" >/dev/null 2>"$WORK/dist.log" ||
    fail "copy to distribution: $(cat "$WORK/dist.log")"
grep -q "listed in tag sha256-${img#sha256:}" "$WORK/dist.log" || fail "the copy did not say so"
fallback "$D" dist/img "$img" >"$WORK/fb"
grep -qx "$art application/vnd.example.sig" "$WORK/fb" || fail "fallback tag lacks the artifact: $(cat "$WORK/fb")"
grep -q "application/x-other" "$WORK/fb" || fail "the entry already in the fallback tag was lost"
# again: nothing is added twice
"$BERTH" copy --quiet --referrers "$B/app/img:v1" "$D/dist/img:v1"
expect_eq "$(fallback "$D" dist/img "$img" | grep -c "$art")" 1 "artifact listed once"
# back from Distribution: the artifact is found through the fallback tag
"$BERTH" copy --quiet --referrers "$D/dist/img:v1" "$B/back/img:v1"
curl -sf "http://$B/v2/back/img/referrers/$img" | grep -q "$art" ||
    fail "copy back from distribution did not find the artifact"
"$BERTH" copy --quiet --referrers "$D/dist/img:v1" "oci:$WORK/back:v1"
grep -q "$art" "$WORK/back/index.json" || fail "copy back into a layout did not find the artifact"
echo "ok"
