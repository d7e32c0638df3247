#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# engines: rgw pg
# berth import: a stopped fs root (two repositories sharing a layer, a tagged index with two
# child manifests, a referrer with a subject, an untagged manifest, one pushed by a sha512
# digest, a sparse image) is loaded into S3 + PostgreSQL; a server over those answers every
# tag, manifest (bytes, digest, media type), blob, tag list, referrers listing and the catalog
# as the fs server did. The sparse image is reported (exit 1) while the target does not accept
# sparse manifests, and copied once it does; a further run copies nothing new. A target that
# is the source root is refused (2).
. "$(dirname "$0")/lib.sh"
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP
ROOT=$T/root
MT=application/vnd.oci.image.manifest.v1+json
IT=application/vnd.oci.image.index.v1+json

printf 'sparse_manifests: "part"\n' >"$T/src.yaml"
start_server --config "$T/src.yaml"

# put_manifest REPO REF FILE MEDIA_TYPE
put_manifest() {
    req PUT "/v2/$1/manifests/$2" -H "Content-Type: $4" --data-binary "@$3"
    check "PUT $1:$2" 201 "$STATUS"
}
# image NAME REPO: config + layer files $T/NAME.{config,layer} (the layer may exist) pushed,
# manifest $T/NAME.json
image() {
    printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},"n":"%s"}' \
        "$1" >"$T/$1.config"
    [ -f "$T/$1.layer" ] || head -c 70000 /dev/urandom >"$T/$1.layer"
    push_blob "$2" "$T/$1.config" >/dev/null
    push_blob "$2" "$T/$1.layer" >/dev/null
    make_manifest "$T/$1.config" "$T/$1.layer" "$T/$1.json"
}
head -c $((12 * 1024 * 1024 + 12345)) /dev/urandom >"$T/shared.layer" # S3 multipart
cp "$T/shared.layer" "$T/one.layer"
cp "$T/shared.layer" "$T/two.layer"
image one team/app                      # team/app:v1
put_manifest team/app v1 "$T/one.json" $MT
image two base                          # base:latest, sharing one's layer
put_manifest base latest "$T/two.json" $MT
image arm team/app                      # child of the index, by digest only
ONE=$(sha256_file "$T/one.json")
ARM=$(sha256_file "$T/arm.json")
put_manifest team/app "$ARM" "$T/arm.json" $MT
python3 - "$ONE" "$(stat -c %s "$T/one.json")" "$ARM" "$(stat -c %s "$T/arm.json")" \
    >"$T/idx.json" <<'PY'
import json, sys
m = lambda d, s, a: {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d,
                     "size": int(s), "platform": {"architecture": a, "os": "linux"}}
print(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                  "manifests": [m(sys.argv[1], sys.argv[2], "amd64"),
                                m(sys.argv[3], sys.argv[4], "arm64")]}), end="")
PY
IDX=$(sha256_file "$T/idx.json")
put_manifest team/app multi "$T/idx.json" $IT
printf '{}' >"$T/sig.config"
head -c 500 /dev/urandom >"$T/sig.layer"
push_blob team/app "$T/sig.config" >/dev/null
push_blob team/app "$T/sig.layer" >/dev/null
make_manifest "$T/sig.config" "$T/sig.layer" "$T/sig.json" "$ONE" "$(stat -c %s "$T/one.json")" \
    application/vnd.example.sig
SIG=$(sha256_file "$T/sig.json")
put_manifest team/app "$SIG" "$T/sig.json" $MT
image loose base                        # untagged
LOOSE=$(sha256_file "$T/loose.json")
put_manifest base "$LOOSE" "$T/loose.json" $MT
# the same image bytes with an annotation, pushed by a sha512 digest: keeps that digest
sed 's/}$/,"annotations":{"by":"sha512"}}/' "$T/loose.json" >"$T/loose512.json"
L512="sha512:$(sha512sum "$T/loose512.json" | cut -d' ' -f1)"
put_manifest base "$L512" "$T/loose512.json" $MT
image gap part                          # sparse: its layer is never pushed
head -c 1000 /dev/urandom >"$T/gap.layer.absent"
make_manifest "$T/gap.config" "$T/gap.layer.absent" "$T/gap.json"
GAP=$(sha256_file "$T/gap.json")
put_manifest part s1 "$T/gap.json" $MT

# snapshot: everything a client sees, one line per answer
cat >"$T/refs" <<EOF
team/app v1
team/app multi
team/app $ONE
team/app $ARM
team/app $IDX
team/app $SIG
base latest
base $(sha256_file "$T/two.json")
base $LOOSE
base $L512
part s1
part $GAP
EOF
for f in one two arm sig loose; do
    for k in config layer; do
        case $f in two | loose) r=base ;; *) r=team/app ;; esac
        echo "$r $(sha256_file "$T/$f.$k")" >>"$T/blobs"
    done
done
echo "part $(sha256_file "$T/gap.config")" >>"$T/blobs"
echo "part $(sha256_file "$T/gap.layer")" >>"$T/blobs"
snapshot() {
    python3 - "$URL" "$T/refs" "$T/blobs" "$ONE" <<'PY'
import hashlib, json, sys, urllib.request, urllib.error
url, refs, blobs, one = sys.argv[1:5]
ACCEPT = ("application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json,"
          "application/vnd.docker.distribution.manifest.v2+json")
def get(path, accept=None):
    r = urllib.request.Request(url + path, headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(r) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
st, _, body = get("/v2/_catalog")
cat = json.loads(body)["repositories"]
print("catalog", st, cat)
for repo in cat:
    st, _, body = get("/v2/%s/tags/list" % repo)
    print("tags", repo, st, json.loads(body).get("tags"))
for line in open(refs):
    repo, ref = line.split()
    st, h, body = get("/v2/%s/manifests/%s" % (repo, ref), ACCEPT)
    print("manifest", repo, ref, st, h.get("Docker-Content-Digest"), h.get("Content-Type"),
          hashlib.sha256(body).hexdigest() if st == 200 else "")
for line in open(blobs):
    repo, d = line.split()
    st, h, body = get("/v2/%s/blobs/%s" % (repo, d))
    print("blob", repo, d, st, "sha256:" + hashlib.sha256(body).hexdigest() if st == 200 else "")
st, h, body = get("/v2/team/app/referrers/" + one)
print("referrers", st, h.get("Content-Type"), json.dumps(json.loads(body), sort_keys=True))
PY
}
snapshot >"$T/fs.snap"
check "fs snapshot: 12 manifests answered" 12 "$(grep -c '^manifest .* 200 sha' "$T/fs.snap")"
grep -q "^manifest base $L512 200 $L512 " "$T/fs.snap" && ok || fail "fs: the sha512 manifest"
check "fs snapshot: 12 blobs answered" 12 "$(grep -c '^blob .* 200 sha256:' "$T/fs.snap")"
grep -q "^referrers 200 .*$SIG" "$T/fs.snap" && ok || fail "fs referrers: $(grep referrers "$T/fs.snap")"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

# a target that is the source root itself: refused
printf 'root: "%s"\n' "$ROOT" >"$T/same.yaml"
"$BERTH" import --root "$ROOT" --config "$T/same.yaml" >"$T/same.out" 2>&1
check "a target that is the source root is refused" 2 "$?"
"$BERTH" import --root "$ROOT" >/dev/null 2>&1
check "no --config is a usage error" 2 "$?"
"$BERTH" import --help | grep -q "usage: berth import --root DIR --config FILE" && ok ||
    fail "import --help"

scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }
: >"$T/cfg.yaml"
# 1: the target does not accept sparse manifests: the sparse image is reported, the rest copied
start=$(date +%s.%N)
"$BERTH" import --root "$ROOT" --config "$T/cfg.yaml" >"$T/import1.out" 2>"$T/import1.err"
check "import without sparse_manifests exits 1" 1 "$?"
end=$(date +%s.%N)
echo "first import took $(python3 -c "print(round($end - $start, 2))") s: $(cat "$T/import1.out")"
grep -q "part: manifest $GAP not imported" "$T/import1.err" && ok ||
    fail "the sparse manifest is reported: $(cat "$T/import1.err")"
grep -q "part: tag s1 not imported" "$T/import1.err" && ok ||
    fail "its tag is reported: $(cat "$T/import1.err")"
grep -q "^berth import: \[1/3\] base: 4 blobs (4 copied, .*), 3 manifests (3 new), 1 tags (1 set)$" "$T/import1.err" && ok ||
    fail "progress per repository: $(cat "$T/import1.err")"
# the shared layer is stored once: base copied it, team/app mounted it
grep -q "team/app: 6 blobs (5 copied, .*; 1 mounted), 4 manifests (4 new), 2 tags (2 set)" \
    "$T/import1.err" && ok || fail "team/app: $(cat "$T/import1.err")"
grep -q "^imported 3 repositories in .*: 12 blobs (11 copied, .*; 1 mounted; 0 there already), 8 manifests (7 new), 4 tags (3 set); 2 problems$" \
    "$T/import1.out" && ok || fail "summary 1: $(cat "$T/import1.out")"

# 2: accepted once sparse_manifests names the repository: only the sparse image is new
BERTH_SPARSE_MANIFESTS=part "$BERTH" import --root "$ROOT" --config "$T/cfg.yaml" \
    >"$T/import2.out" 2>"$T/import2.err"
check "import with sparse_manifests exits 0" 0 "$?"
grep -q "12 blobs (0 copied, 0 B; 0 mounted; 12 there already), 8 manifests (1 new), 4 tags (1 set); 0 problems$" \
    "$T/import2.out" && ok || fail "summary 2: $(cat "$T/import2.out") $(cat "$T/import2.err")"

# 3: nothing new
start=$(date +%s.%N)
BERTH_SPARSE_MANIFESTS=part "$BERTH" import --root "$ROOT" --config "$T/cfg.yaml" \
    >"$T/import3.out" 2>"$T/import3.err"
check "import again exits 0" 0 "$?"
end=$(date +%s.%N)
echo "import again took $(python3 -c "print(round($end - $start, 2))") s"
grep -q "12 blobs (0 copied, 0 B; 0 mounted; 12 there already), 8 manifests (0 new), 4 tags (0 set); 0 problems$" \
    "$T/import3.out" && ok || fail "summary 3: $(cat "$T/import3.out")"

# the server over S3 + PostgreSQL answers as the fs server did
mv "$ROOT" "$T/root.imported" # so that nothing can come from the fs root
start_server --config "$T/src.yaml"
snapshot >"$T/s3pg.snap"
if diff -u "$T/fs.snap" "$T/s3pg.snap" >"$T/snap.diff"; then
    ok
else
    fail "the S3 + PostgreSQL server answers differently: $(cat "$T/snap.diff")"
fi
finish
