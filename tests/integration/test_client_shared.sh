#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any
# berth copy meets one digest more than once: an artifact whose config and layer are both the
# empty descriptor ({}), a layer two platforms of an index share, a referrer (an SBOM) whose
# layer is a layer of its subject. Each digest is looked up, fetched and pushed once per copy
# (parallel jobs wait for each other instead of racing on one staging file), in every
# direction: layout -> Distribution 2.8 -> berth serve -> Distribution -> layout, and
# layout -> berth serve. Distribution has no referrers API: the copy keeps the referrers
# fallback tag there and reads the referrers back through it.
. "$(dirname "$0")/client_lib.sh"

start_distribution DIST
D=127.0.0.1:$DIST_PORT
if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT

# the layout: index "app" (amd64 and arm64 sharing a layer), artifact "art" (config = layer =
# the empty descriptor, subject: the index), SBOM "sbom" (its layer is the shared layer of the
# images, subject: the amd64 image)
python3 - "$WORK/src" >"$WORK/digests" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
OCI = "application/vnd.oci.image."
shared = dict(put(os.urandom(300000)), mediaType=OCI + "layer.v1.tar")
children = []
for arch in ("amd64", "arm64"):
    own = dict(put(os.urandom(5000)), mediaType=OCI + "layer.v1.tar")
    cfg = dict(put(json.dumps({"architecture": arch, "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [shared["digest"], own["digest"]]}}).encode()),
        mediaType=OCI + "config.v1+json")
    m = put(json.dumps({"schemaVersion": 2, "mediaType": OCI + "manifest.v1+json",
                        "config": cfg, "layers": [shared, own]}).encode())
    children.append(dict(m, mediaType=OCI + "manifest.v1+json",
                         platform={"architecture": arch, "os": "linux"}))
idx = dict(put(json.dumps({"schemaVersion": 2, "mediaType": OCI + "index.v1+json",
                           "manifests": children}).encode()), mediaType=OCI + "index.v1+json")
empty = dict(put(b"{}"), mediaType="application/vnd.oci.empty.v1+json")
assert empty["digest"] == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
art = dict(put(json.dumps({"schemaVersion": 2, "mediaType": OCI + "manifest.v1+json",
    "artifactType": "application/vnd.example.empty", "config": empty, "layers": [empty],
    "subject": {k: idx[k] for k in ("mediaType", "digest", "size")},
    "annotations": {"org.example.kind": "empty"}}).encode()), mediaType=OCI + "manifest.v1+json")
sbom = dict(put(json.dumps({"schemaVersion": 2, "mediaType": OCI + "manifest.v1+json",
    "artifactType": "application/spdx+json", "config": empty,
    "layers": [dict(shared, mediaType="application/spdx+json")],
    "subject": {k: children[0][k] for k in ("mediaType", "digest", "size")}}).encode()),
    mediaType=OCI + "manifest.v1+json")
def named(desc, name):
    e = {k: desc[k] for k in ("mediaType", "digest", "size")}
    e["annotations"] = {"org.opencontainers.image.ref.name": name}
    return e
json.dump({"imageLayoutVersion": "1.0.0"}, open(d + "/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [named(idx, "app"), named(art, "art"),
           named(sbom, "sbom")]}, open(d + "/index.json", "w"))
print(idx["digest"], children[0]["digest"], children[1]["digest"], art["digest"],
      sbom["digest"], shared["digest"], empty["digest"])
PY
read -r IDX AMD ARM ART SBOM SHARED EMPTY <"$WORK/digests"

# once_each LOG: no blob digest is looked up at the destination twice in one copy
once_each() {
    local dup
    dup=$(grep -o 'HEAD [^ ]*/blobs/sha256:[0-9a-f]*' "$1" | sort | uniq -d || true)
    [ -z "$dup" ] || fail "$2: a blob looked up more than once: $dup"
    dup=$(grep -o 'GET [^ ]*/blobs/sha256:[0-9a-f]*' "$1" | sort | uniq -d || true)
    [ -z "$dup" ] || fail "$2: a blob fetched more than once: $dup"
}

# referrers_of HOST REPO DIGEST: the digests the referrers API lists
referrers_of() {
    curl -sf "http://$1/v2/$2/referrers/$3" |
        python3 -c 'import json,sys; print(" ".join(sorted(m["digest"] for m in json.load(sys.stdin)["manifests"])))'
}
# fallback_of HOST REPO DIGEST: the digests the fallback tag <alg>-<hex> lists
fallback_of() {
    curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json' \
        "http://$1/v2/$2/manifests/sha256-${3#sha256:}" |
        python3 -c 'import json,sys; print(" ".join(sorted(m["digest"] for m in json.load(sys.stdin)["manifests"])))'
}

# the artifact alone (config = layer), layout -> both registries, then registry -> registry
for dst in "$D" "$B"; do
    "$BERTH" copy --verbose "oci:$WORK/src:art" "$dst/solo/art:a" >"$WORK/out" 2>"$WORK/log" ||
        fail "layout -> $dst: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
    expect_eq "$(cat "$WORK/out")" "$ART" "layout -> $dst artifact digest"
    once_each "$WORK/log" "layout -> $dst artifact"
done
for pair in "$B $D" "$D $B"; do
    set -- $pair
    for i in 1 2 3; do
        "$BERTH" copy --verbose "$1/solo/art:a" "$2/solo$i/art:a" >"$WORK/out" 2>"$WORK/log" ||
            fail "$1 -> $2 artifact: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
        once_each "$WORK/log" "$1 -> $2 artifact"
        expect_eq "$(manifest_digest "$2" "solo$i/art" a)" "$ART" "$1 -> $2 artifact digest"
    done
done

# the index with its referrers: layout -> Distribution (fallback tags written)
"$BERTH" copy --verbose --referrers "oci:$WORK/src:app" "$D/team/app:v1" >/dev/null \
    2>"$WORK/log" || fail "layout -> distribution: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
once_each "$WORK/log" "layout -> distribution"
expect_eq "$(manifest_digest "$D" team/app v1)" "$IDX" "layout -> distribution index"
expect_eq "$(fallback_of "$D" team/app "$IDX")" "$ART" "fallback tag of the index"
expect_eq "$(fallback_of "$D" team/app "$AMD")" "$SBOM" "fallback tag of the amd64 image"

# Distribution -> berth serve: referrers read through the fallback tags, a streamed copy
"$BERTH" copy --verbose --referrers "$D/team/app:v1" "$B/team/app:v1" >/dev/null \
    2>"$WORK/log" || fail "distribution -> berth: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
once_each "$WORK/log" "distribution -> berth"
expect_eq "$(manifest_digest "$B" team/app v1)" "$IDX" "distribution -> berth index"
expect_eq "$(referrers_of "$B" team/app "$IDX")" "$ART" "berth referrers of the index"
expect_eq "$(referrers_of "$B" team/app "$AMD")" "$SBOM" "berth referrers of amd64"
expect_eq "$(manifest_code "$B" team/app "sha256-${IDX#sha256:}")" 404 \
    "no fallback tag where the referrers API is"

# berth serve -> Distribution (another repository), then Distribution -> layout
"$BERTH" copy --verbose --referrers "$B/team/app:v1" "$D/back/app:v1" >/dev/null \
    2>"$WORK/log" || fail "berth -> distribution: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
once_each "$WORK/log" "berth -> distribution"
expect_eq "$(fallback_of "$D" back/app "$IDX")" "$ART" "berth -> distribution fallback tag"
"$BERTH" copy --verbose --referrers "$D/back/app:v1" "oci:$WORK/outl:v1" >/dev/null \
    2>"$WORK/log" || fail "distribution -> layout: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
once_each "$WORK/log" "distribution -> layout"
for d in "$IDX" "$AMD" "$ARM" "$ART" "$SBOM" "$SHARED" "$EMPTY"; do
    f="$WORK/outl/blobs/sha256/${d#sha256:}"
    [ -f "$f" ] || fail "distribution -> layout: $d missing"
    expect_eq "sha256:$(sha256sum "$f" | cut -d' ' -f1)" "$d" "layout blob"
done
grep -q "$ART" "$WORK/outl/index.json" || fail "referrer not listed in the layout"

# layout -> berth serve with referrers (a layout has no referrers API: index.json is read)
"$BERTH" copy --verbose --referrers "oci:$WORK/src:app" "$B/fromlayout/app:v1" >/dev/null \
    2>"$WORK/log" || fail "layout -> berth: $(grep -v '^berth: [A-Z]* http' "$WORK/log")"
once_each "$WORK/log" "layout -> berth"
expect_eq "$(referrers_of "$B" fromlayout/app "$AMD")" "$SBOM" "layout -> berth referrers"
echo "ok"
