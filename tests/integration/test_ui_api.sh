#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# The web UI's server side (docs/ui.md): its embedded files under /ui/ (index.html for deep
# links, assets with ETag and 304), and the JSON API under /ui/api/v1/ checked field by field
# against what was pushed (images, a multi-platform index, a referrer): repositories with
# keyset paging, the q filter, tag counts, sizes and last push; tags sorted by push time and by
# name, paged by cursor; a manifest with its config, layers, children, referrers and subject;
# storage as berth du counts it; 404s and bad parameters as the spec's JSON errors. Then with
# htpasswd and access rules: a user who may pull only a/* never sees b/*, cannot delete, gets
# 403 on b/*; the anonymous and a wrong password get 401 without a Basic challenge. Last,
# ui.enabled false: /ui/ is 404.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
SRC=${BERTH_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
API=/ui/api/v1

start_server
grep -q "web UI at $URL/ui/" "$BERTH_LOG" && ok || fail "the startup log does not give the UI's address"

# ---- fill the registry ---------------------------------------------------------------------

# image REPO TAG ARCH SALT [CURL_AUTH...]: push a one-layer image; sets IMG_DIGEST, IMG_SIZE
# (manifest + config + layer bytes), IMG_MANIFEST_SIZE
image() {
    local repo=$1 tag=$2 arch=$3 salt=$4
    shift 4
    local d=$T/img-$salt
    mkdir -p "$d"
    printf '{"architecture":"%s","os":"linux","config":{"Env":["SALT=%s"]},"rootfs":{"type":"layers","diff_ids":[]}}' \
        "$arch" "$salt" >"$d/config"
    head -c 3000 /dev/urandom >"$d/layer"
    for f in config layer; do
        curl -s -o /dev/null "$@" -X POST --data-binary "@$d/$f" \
            -H 'Content-Type: application/octet-stream' \
            "$URL/v2/$repo/blobs/uploads/?digest=$(sha256_file "$d/$f")"
    done
    make_manifest "$d/config" "$d/layer" "$d/manifest"
    curl -s -o /dev/null "$@" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$d/manifest" "$URL/v2/$repo/manifests/$tag"
    IMG_DIGEST=$(sha256_file "$d/manifest")
    IMG_MANIFEST_SIZE=$(stat -c %s "$d/manifest")
    IMG_SIZE=$(($(stat -c %s "$d/config") + $(stat -c %s "$d/layer") + IMG_MANIFEST_SIZE))
}

# app/one: v1, v2, v3 pushed a second apart (the pushed order), v1 on its own image
image app/one v1 amd64 one1
ONE_V1=$IMG_DIGEST ONE_V1_SIZE=$IMG_SIZE ONE_V1_MSIZE=$IMG_MANIFEST_SIZE
sleep 1.1
image app/one v2 arm64 one2
ONE_V2=$IMG_DIGEST ONE_V2_SIZE=$IMG_SIZE
sleep 1.1
image app/one v3 amd64 one3
ONE_V3=$IMG_DIGEST ONE_V3_SIZE=$IMG_SIZE

# app/multi:latest: an index of an amd64 and an arm64 image
image app/multi amd64-only amd64 m1
M1=$IMG_DIGEST M1_SIZE=$IMG_SIZE M1_MSIZE=$IMG_MANIFEST_SIZE
image app/multi arm64-only arm64 m2
M2=$IMG_DIGEST M2_SIZE=$IMG_SIZE M2_MSIZE=$IMG_MANIFEST_SIZE
python3 - "$M1" "$M1_MSIZE" "$M2" "$M2_MSIZE" "$T/index" <<'PY'
import json, sys
ix = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sys.argv[1],
     "size": int(sys.argv[2]), "platform": {"os": "linux", "architecture": "amd64"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sys.argv[3],
     "size": int(sys.argv[4]), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}}]}
open(sys.argv[5], "wb").write(json.dumps(ix).encode())
PY
req PUT /v2/app/multi/manifests/latest -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "@$T/index"
check "index pushed" 201 "$STATUS"
INDEX=$(sha256_file "$T/index")
INDEX_SIZE=$(($(stat -c %s "$T/index") + M1_SIZE + M2_SIZE))

# a referrer of app/one:v1 (an SBOM-like artifact)
mkdir -p "$T/sbom"
printf '{}' >"$T/sbom/config"
printf 'sbom' >"$T/sbom/layer"
for f in config layer; do push_blob app/one "$T/sbom/$f" >/dev/null; done
make_manifest "$T/sbom/config" "$T/sbom/layer" "$T/sbom/manifest" "$ONE_V1" "$ONE_V1_MSIZE" \
    application/example.sbom
SBOM=$(sha256_file "$T/sbom/manifest")
req PUT "/v2/app/one/manifests/$SBOM" -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/sbom/manifest"
check "referrer pushed" 201 "$STATUS"

# more repositories for paging: lib, page/r1 .. page/r4
image lib latest amd64 lib
LIB_SIZE=$IMG_SIZE
for i in 1 2 3 4; do
    image "page/r$i" latest amd64 "page$i"
done
ALL='app/multi app/one lib page/r1 page/r2 page/r3 page/r4'

# ---- files ---------------------------------------------------------------------------------

req GET /ui
check "/ui redirects" 301 "$STATUS"
check "/ui Location" /ui/ "$(header Location)"
req GET /ui/
check "/ui/ status" 200 "$STATUS"
check "/ui/ type" "text/html; charset=utf-8" "$(header Content-Type)"
check "/ui/ cache" no-cache "$(header Cache-Control)"
cmp -s "$BODY" "$SRC/ui/index.html" && ok || fail "/ui/ is not ui/index.html"
ETAG=$(header ETag)
case $ETAG in \"*\") ok ;; *) fail "/ui/ ETag: '$ETAG'" ;; esac
rm -f "$BODY"
req GET /ui/ -H "If-None-Match: $ETAG"
check "/ui/ revalidated" 304 "$STATUS"
check "/ui/ 304 is empty" 0 "$(stat -c %s "$BODY" 2>/dev/null || echo 0)"
head_req /ui/
check "HEAD /ui/" "200 $(stat -c %s "$SRC/ui/index.html")" "$STATUS $(header Content-Length)"
req GET /ui/r/app/one:v1
check "deep link by tag" 200 "$STATUS"
cmp -s "$BODY" "$SRC/ui/index.html" && ok || fail "deep link is not index.html"
req GET "/ui/r/app/one@$ONE_V1"
check "deep link by digest" 200 "$STATUS"
req GET /ui/storage
check "deep link storage" 200 "$STATUS"
for f in "$SRC"/ui/assets/*; do
    name=${f#"$SRC"/ui/}
    req GET "/ui/$name"
    check "$name status" 200 "$STATUS"
    cmp -s "$BODY" "$f" && ok || fail "$name differs from the source"
    [ -n "$(header ETag)" ] && ok || fail "$name has no ETag"
    case $name in
    *.js) check "$name type" "text/javascript; charset=utf-8" "$(header Content-Type)" ;;
    *.css) check "$name type" "text/css; charset=utf-8" "$(header Content-Type)" ;;
    esac
    req GET "/ui/$name" -H "If-None-Match: $(header ETag)"
    check "$name revalidated" 304 "$STATUS"
done
req GET /ui/assets/no-such-file.js
check "missing asset" 404 "$STATUS"
req POST /ui/ --data x
check "POST /ui/" 405 "$STATUS"
req GET /ui/api/v1/nothing
check "unknown API path" 404 "$STATUS"
req GET /ui/api/v2/session
check "unknown API version" 404 "$STATUS"
req GET /uix
check "/uix is not the UI" 404 "$STATUS"

# ---- session -------------------------------------------------------------------------------

req GET $API/session
check "session status" 200 "$STATUS"
check "session type" application/json "$(header Content-Type)"
check "session" "None none False $HOSTPORT False True" \
    "$(json 'j["user"], j["auth"], j["login_required"], j["host"], j["read_only"], j["deletes"]')"
[ "$(json 'j["version"]')" != "" ] && ok || fail "session has no version"

# ---- repositories ----------------------------------------------------------------------------

req GET $API/repositories
check "repositories status" 200 "$STATUS"
check "repositories names" "$ALL" "$(json '" ".join(r["name"] for r in j["repositories"])')"
check "repositories end" "None" "$(json 'j["next"]')"
check "app/one" "app 3 $((ONE_V1_SIZE + ONE_V2_SIZE + ONE_V3_SIZE))" \
    "$(json '" ".join(str(x) for r in j["repositories"] if r["name"]=="app/one" for x in (r["namespace"], r["tag_count"], r["size"]))')"
check "app/multi (index, two images, shared nothing)" "3 $INDEX_SIZE" \
    "$(json '" ".join(str(x) for r in j["repositories"] if r["name"]=="app/multi" for x in (r["tag_count"], r["size"]))')"
check "lib namespace" "" "$(json '[r["namespace"] for r in j["repositories"] if r["name"]=="lib"][0]')"
check "last_push is a UTC time" True \
    "$(json 'all(__import__("re").fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["last_push"]) is not None for r in j["repositories"])')"

# keyset paging with n=2
names="" last="" pages=0
while :; do
    req GET "$API/repositories?n=2${last:+&last=$last}"
    [ "$STATUS" = 200 ] || { fail "page status $STATUS"; break; }
    pages=$((pages + 1))
    check "page $pages size" True "$(json 'len(j["repositories"]) <= 2')"
    names="$names $(json '" ".join(r["name"] for r in j["repositories"])')"
    last=$(json 'j["next"] or ""')
    [ -n "$last" ] || break
    [ $pages -lt 10 ] || { fail "paging does not end"; break; }
done
check "pages of 2" 4 "$pages"
check "paged names" "$ALL" "$(echo $names)"

req GET "$API/repositories?q=MULTI"
check "q filter" "app/multi 1" "$(json '" ".join(r["name"] for r in j["repositories"]) + " " + str(j["total"])')"
req GET "$API/repositories?q=page&n=3"
check "q with a page" "page/r1 page/r2 page/r3 page/r3 4" \
    "$(json '" ".join(r["name"] for r in j["repositories"]) + " " + j["next"] + " " + str(j["total"])')"
req GET "$API/repositories?q=page&n=3&last=page/r3"
check "q second page" "page/r4 None" "$(json '" ".join(r["name"] for r in j["repositories"]) + " " + str(j["next"])')"

for bad in "n=0" "n=1001" "n=abc" "n=-1"; do
    req GET "$API/repositories?$bad"
    check "repositories?$bad status" 400 "$STATUS"
    check "repositories?$bad body" UNSUPPORTED "$(error_code)"
done

# ---- tags ------------------------------------------------------------------------------------

req GET $API/repositories/app/one/tags
check "tags status" 200 "$STATUS"
check "tags by push, newest first" "v3 v2 v1" "$(json '" ".join(t["name"] for t in j["tags"])')"
check "tags digests" "$ONE_V3 $ONE_V2 $ONE_V1" "$(json '" ".join(t["digest"] for t in j["tags"])')"
check "tags sizes" "$ONE_V3_SIZE $ONE_V2_SIZE $ONE_V1_SIZE" \
    "$(json '" ".join(str(t["size"]) for t in j["tags"])')"
check "tags platforms" "linux/amd64/None linux/arm64/None linux/amd64/None" \
    "$(json '" ".join("/".join(str(p[k]) for k in ("os","architecture","variant")) for t in j["tags"] for p in t["platforms"])')"
check "tags media type" "application/vnd.oci.image.manifest.v1+json None" \
    "$(json 'j["tags"][0]["media_type"] + " " + str(j["tags"][0]["artifact_type"])')"
check "tags pushed order" True "$(json 'j["tags"][0]["pushed"] > j["tags"][1]["pushed"] > j["tags"][2]["pushed"]')"
check "tags can_delete" True "$(json 'j["can_delete"]')"
check "tags next" None "$(json 'j["next"]')"
req GET "$API/repositories/app/one/tags?sort=pushed&order=asc"
check "tags by push, oldest first" "v1 v2 v3" "$(json '" ".join(t["name"] for t in j["tags"])')"
req GET "$API/repositories/app/one/tags?sort=name&order=desc"
check "tags by name desc" "v3 v2 v1" "$(json '" ".join(t["name"] for t in j["tags"])')"

# paging with n=2 in each order
for order in "sort=pushed&order=desc:v3 v2 v1" "sort=pushed&order=asc:v1 v2 v3" \
    "sort=name&order=asc:v1 v2 v3" "sort=name&order=desc:v3 v2 v1"; do
    q=${order%%:*} want=${order#*:} got="" cursor="" pages=0
    while :; do
        req GET "$API/repositories/app/one/tags?n=2&$q${cursor:+&last=$cursor}"
        [ "$STATUS" = 200 ] || { fail "tags page $q: $STATUS"; break; }
        pages=$((pages + 1))
        got="$got $(json '" ".join(t["name"] for t in j["tags"])')"
        cursor=$(json 'j["next"] or ""')
        [ -n "$cursor" ] || break
        [ $pages -lt 5 ] || break
    done
    check "tags paged $q" "$want" "$(echo $got)"
    check "tags pages $q" 2 "$pages"
done
req GET "$API/repositories/app/one/tags?n=2"
cursor=$(json 'j["next"]')
req GET "$API/repositories/app/one/tags?n=2&sort=name&last=$cursor"
check "a pushed cursor in the name order" 400 "$STATUS"

req GET $API/repositories/app/multi/tags?sort=name
check "index tag" "latest $INDEX $INDEX_SIZE application/vnd.oci.image.index.v1+json" \
    "$(json '" ".join(str(x) for t in j["tags"] if t["name"]=="latest" for x in (t["name"], t["digest"], t["size"], t["media_type"]))')"
check "index platforms" "linux/amd64/None linux/arm64/v8" \
    "$(json '" ".join("/".join(str(p[k]) for k in ("os","architecture","variant")) for t in j["tags"] if t["name"]=="latest" for p in t["platforms"])')"

for bad in "sort=size" "order=up" "n=0" "last=not-a-cursor" "last=bjp2MQ"; do
    req GET "$API/repositories/app/one/tags?$bad"
    check "tags?$bad status" 400 "$STATUS"
    check "tags?$bad body" UNSUPPORTED "$(error_code)"
done
req GET $API/repositories/no/such/tags
check "unknown repository" 404 "$STATUS"
check "unknown repository code" NAME_UNKNOWN "$(error_code)"
req GET $API/repositories/BAD/tags
check "bad name" 400 "$STATUS"
check "bad name code" NAME_INVALID "$(error_code)"

# ---- manifests -------------------------------------------------------------------------------

req GET $API/repositories/app/one/manifests/v1
check "manifest status" 200 "$STATUS"
check "manifest" "$ONE_V1 application/vnd.oci.image.manifest.v1+json None $ONE_V1_MSIZE $ONE_V1_SIZE" \
    "$(json '" ".join(str(j[k]) for k in ("digest","media_type","artifact_type","size","total_size"))')"
check "manifest tags" "v1" "$(json '" ".join(j["tags"])')"
check "manifest document" 2 "$(json 'j["manifest"]["schemaVersion"]')"
check "manifest config" "amd64 linux SALT=one1" \
    "$(json 'j["config"]["architecture"] + " " + j["config"]["os"] + " " + j["config"]["config"]["Env"][0]')"
check "manifest layers" "1 3000 application/vnd.oci.image.layer.v1.tar+gzip {}" \
    "$(json '" ".join(str(x) for x in (len(j["layers"]), j["layers"][0]["size"], j["layers"][0]["media_type"], j["layers"][0]["annotations"]))')"
check "manifest children" "[]" "$(json 'j["children"]')"
check "manifest referrers" "$SBOM application/example.sbom application/example.sbom" \
    "$(json '" ".join(str(x) for r in j["referrers"] for x in (r["digest"], r["artifact_type"], r["annotations"]["org.example.kind"]))')"
check "manifest subject" None "$(json 'j["subject"]')"
check "manifest can_delete" True "$(json 'j["can_delete"]')"
# by digest, with the ':' escaped as a browser's encodeURIComponent does
req GET "$API/repositories/app/one/manifests/${ONE_V1/:/%3A}"
check "manifest by escaped digest" "200 $ONE_V1" "$STATUS $(json 'j["digest"]')"
req GET "$API/repositories/app/one/manifests/$SBOM"
check "referrer's subject" "$ONE_V1 application/example.sbom" \
    "$(json 'j["subject"]["digest"] + " " + j["artifact_type"]')"
check "referrer has no tags" "[]" "$(json 'j["tags"]')"
req GET $API/repositories/app/multi/manifests/latest
check "index" "$INDEX None $INDEX_SIZE 2" \
    "$(json '" ".join(str(x) for x in (j["digest"], j["config"], j["total_size"], len(j["children"])))')"
check "index children" "$M1 linux/amd64 $M2 linux/arm64/v8" \
    "$(json '" ".join(c["digest"] + " " + "/".join(c["platform"][k] for k in ("os","architecture","variant") if k in c["platform"]) for c in j["children"])')"
req GET $API/repositories/app/one/manifests/nope
check "unknown tag" "404 MANIFEST_UNKNOWN" "$STATUS $(error_code)"
req GET "$API/repositories/app/one/manifests/sha256:$(printf '%064d' 0)"
check "unknown digest" "404 MANIFEST_UNKNOWN" "$STATUS $(error_code)"
req GET $API/repositories/no/such/manifests/v1
check "manifest of unknown repository" "404 NAME_UNKNOWN" "$STATUS $(error_code)"

# ---- storage ---------------------------------------------------------------------------------

req GET $API/storage
check "storage status" 200 "$STATUS"
check "storage repositories" "$ALL" "$(json '" ".join(r["name"] for r in j["repositories"])')"
# every blob and manifest of app/one and lib is theirs alone (random layers, distinct configs)
SBOM_BYTES=$((2 + 4 + $(stat -c %s "$T/sbom/manifest")))
check "storage of app/one" "$((ONE_V1_SIZE + ONE_V2_SIZE + ONE_V3_SIZE + SBOM_BYTES)) 0" \
    "$(json '" ".join(str(r["exclusive"]) + " " + str(r["shared"]) for r in j["repositories"] if r["name"]=="app/one")')"
check "storage of lib" "$LIB_SIZE 0" \
    "$(json '" ".join(str(r["exclusive"]) + " " + str(r["shared"]) for r in j["repositories"] if r["name"]=="lib")')"
check "storage uploads" "0 0" "$(json 'str(j["uploads"]["open"]) + " " + str(j["uploads"]["bytes"])')"
check "storage gc (none run)" None "$(json 'j["gc"]["last_run"]')"

# ---- the cache follows pushes and deletes ----------------------------------------------------

image app/one v4 amd64 one4
req GET "$API/repositories?q=app/one"
check "a push is seen at once" 4 "$(json 'j["repositories"][0]["tag_count"]')"
req DELETE /v2/app/one/manifests/v4
check "tag deleted" 202 "$STATUS"
req GET "$API/repositories?q=app/one"
check "a delete is seen at once" 3 "$(json 'j["repositories"][0]["tag_count"]')"

# a config over 1 MiB is not sent
mkdir -p "$T/big"
python3 -c 'import json; print(json.dumps({"architecture":"amd64","os":"linux","pad":"x"*1100000}))' \
    >"$T/big/config"
head -c 100 /dev/urandom >"$T/big/layer"
for f in config layer; do push_blob big/cfg "$T/big/$f" >/dev/null; done
make_manifest "$T/big/config" "$T/big/layer" "$T/big/manifest"
req PUT /v2/big/cfg/manifests/v1 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/big/manifest"
check "big config pushed" 201 "$STATUS"
req GET $API/repositories/big/cfg/manifests/v1
check "big config" "200 None True 1" \
    "$STATUS $(json 'j["config"], j["config_too_large"], len(j["layers"])')"
ALL="app/multi app/one big/cfg lib page/r1 page/r2 page/r3 page/r4"

kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

# ---- authentication and access rules ---------------------------------------------------------

if command -v htpasswd >/dev/null; then
    : >"$T/htpasswd"
    for u in alice bob; do
        htpasswd -Bbn "$u" "${u}pw" | head -n 1 >>"$T/htpasswd"
    done
    cat >"$T/auth.yaml" <<Y
auth: {htpasswd: $T/htpasswd}
access:
  - repositories: "*"
    users: [alice]
    actions: ["*"]
  - repositories: "page/*"
    users: [bob]
    actions: [pull]
Y
    start_server --config "$T/auth.yaml"
    A=(-u alice:alicepw) B=(-u bob:bobpw)

    req GET $API/session
    check "anonymous session" "200 None basic True" \
        "$STATUS $(json 'j["user"], j["auth"], j["login_required"]')"
    req GET $API/session "${B[@]}"
    check "bob's session" "bob False" "$(json 'j["user"], j["login_required"]')"
    req GET $API/session -u bob:wrong
    check "session with a wrong password" "200 None" "$STATUS $(json 'j["user"]')"

    for path in repositories storage repositories/page/r1/tags repositories/page/r1/manifests/latest; do
        req GET "$API/$path"
        check "anonymous $path" "401 UNAUTHORIZED" "$STATUS $(error_code)"
        check "anonymous $path: no challenge" "" "$(header WWW-Authenticate)"
        check "anonymous $path: X-Berth-Login" basic "$(header X-Berth-Login)"
    done
    # (failed logins are throttled per address: a few only)
    req GET $API/repositories -u bob:wrong
    check "wrong password" "401 UNAUTHORIZED" "$STATUS $(error_code)"
    check "wrong password: no challenge" "" "$(header WWW-Authenticate)"
    check "wrong password: X-Berth-Login" basic "$(header X-Berth-Login)"
    sleep 1.1
    req GET $API/repositories/page/r1/tags -u nobody:x
    check "unknown user" "401 UNAUTHORIZED" "$STATUS $(error_code)"
    check "unknown user: no challenge" "" "$(header WWW-Authenticate)"
    sleep 1.1
    grep -q "$T" "$BODY" && fail "an error names a server path" || ok

    req GET $API/repositories "${B[@]}"
    check "bob's repositories" "page/r1 page/r2 page/r3 page/r4" \
        "$(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET "$API/repositories?n=1&last=app" "${B[@]}"
    check "bob's first page after app" "page/r1 page/r1" \
        "$(json '" ".join(r["name"] for r in j["repositories"]) + " " + j["next"]')"
    req GET "$API/repositories?q=app" "${B[@]}"
    check "bob's q=app" "0" "$(json 'len(j["repositories"]) + j["total"]')"
    req GET $API/storage "${B[@]}"
    check "bob's storage" "page/r1 page/r2 page/r3 page/r4 None None" \
        "$(json '" ".join(r["name"] for r in j["repositories"]) + " " + str(j["uploads"]) + " " + str(j["gc"])')"
    req GET $API/repositories/page/r1/tags "${B[@]}"
    check "bob's tags" "200 latest False" "$STATUS $(json 'j["tags"][0]["name"], j["can_delete"]')"
    req GET $API/repositories/page/r1/manifests/latest "${B[@]}"
    check "bob's manifest" "200 False" "$STATUS $(json 'j["can_delete"]')"
    for path in repositories/app/one/tags repositories/app/one/manifests/v1 \
        repositories/no/such/tags; do
        req GET "$API/$path" "${B[@]}"
        check "bob on $path" "403 DENIED" "$STATUS $(error_code)"
    done
    req DELETE /v2/page/r1/manifests/latest "${B[@]}"
    check "bob cannot delete" 403 "$STATUS"

    req GET $API/repositories "${A[@]}"
    check "alice's repositories" "$ALL" "$(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET $API/repositories/app/one/tags "${A[@]}"
    check "alice may delete" "200 True" "$STATUS $(json 'j["can_delete"]')"
    req GET $API/storage "${A[@]}"
    check "alice's storage" "8 0" "$(json 'str(len(j["repositories"])) + " " + str(j["uploads"]["open"])')"

    kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""

    # berth's own token issuer: Basic still works; a bearer token's scopes decide
    openssl ecparam -genkey -name prime256v1 -noout -out "$T/token.pem" 2>/dev/null
    openssl ec -in "$T/token.pem" -pubout -out "$T/token.pub" 2>/dev/null
    {
        sed -n '/^access:/,$p' "$T/auth.yaml"
        printf 'auth:\n  htpasswd: %s\n  token:\n    realm: http://127.0.0.1:1/token\n' "$T/htpasswd"
        printf '    service: berth-test\n    private_key: %s\n' "$T/token.pem"
    } >"$T/token.yaml"
    start_server --config "$T/token.yaml"
    req GET $API/session "${B[@]}"
    check "token issuer: session" "bob basic" "$(json 'j["user"], j["auth"]')"
    req GET $API/repositories "${B[@]}"
    check "token issuer: Basic" "page/r1 page/r2 page/r3 page/r4" \
        "$(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET "/token?service=berth-test&scope=repository:page/r2:pull" "${B[@]}"
    TOKEN=$(json 'j["token"]')
    req GET $API/repositories -H "Authorization: Bearer $TOKEN"
    check "bearer: the token's scopes" "200 page/r2" \
        "$STATUS $(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET $API/repositories/page/r1/tags -H "Authorization: Bearer $TOKEN"
    check "bearer: outside the scopes" "403 DENIED" "$STATUS $(error_code)"
    req GET $API/repositories -H "Authorization: Bearer not.a.token"
    check "bearer: a bad token" "401 UNAUTHORIZED" "$STATUS $(error_code)"
    check "bearer: a bad token, no challenge" "" "$(header WWW-Authenticate)"
    kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""

    # an external issuer only: no Basic; tokens of that issuer are taken
    {
        sed -n '/^access:/,$p' "$T/auth.yaml"
        printf 'auth:\n  token:\n    realm: http://127.0.0.1:1/token\n'
        printf '    service: berth-test\n    public_key: %s\n' "$T/token.pub"
    } >"$T/verify.yaml"
    start_server --config "$T/verify.yaml"
    req GET $API/session
    check "external issuer: session" "None token True" "$(json 'j["user"], j["auth"], j["login_required"]')"
    req GET $API/repositories
    check "external issuer: anonymous" "401 bearer" "$STATUS $(header X-Berth-Login)"
    req GET $API/repositories -H "Authorization: Bearer $TOKEN"
    check "external issuer: bearer" "200 page/r2" \
        "$STATUS $(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET $API/repositories "${B[@]}"
    check "external issuer: Basic is not taken" 401 "$STATUS"
    kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
else
    echo "note: htpasswd (apache2-utils) missing: the authentication part is not run" >&2
fi

# ---- read-only, and ui.enabled false -----------------------------------------------------------

start_server --read-only
req GET $API/session
check "read-only session" "True False" "$(json 'j["read_only"], j["deletes"]')"
req GET $API/repositories/app/one/tags
check "read-only: no delete" False "$(json 'j["can_delete"]')"
kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

BERTH_UI_ENABLED=false start_server
for path in /ui /ui/ /ui/assets/app.js $API/session $API/repositories; do
    req GET "$path"
    check "ui off: $path" 404 "$STATUS"
done
req GET /v2/
check "ui off: the registry serves" 200 "$STATUS"
grep -q "web UI at" "$BERTH_LOG" && fail "ui off: the log gives a UI address" || ok

finish
