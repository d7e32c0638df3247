#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# berth copy --referrers: an artifact whose subject is an image follows the image to another
# repository (read back through the referrers API) and into an OCI layout; without the flag
# it stays behind.
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
echo "ok"
