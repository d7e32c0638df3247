#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The web UI's server side attacked (docs/ui.md): the security headers of every /ui/ answer
# (a Content-Security-Policy of this origin only, no framing, nosniff, no CORS: another origin
# can neither frame the delete button nor read the JSON); no answer tells a private
# repository from a missing one more than /v2/ does, for the anonymous (with anonymous rules)
# and for a user; a referrer or a manifest of another repository never shows; odd paths and
# parameters are the spec's JSON errors with no server path and no crash; the storage walk is
# shared between callers (its figures carry the time they were computed) and many callers at
# once get answers, not a stalled server; the cache of repository figures stays within
# BERTH_UI_CACHE_ENTRIES (the berth_ui_cache_entries gauge), also when one repository alone
# is bigger than the bound.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
API=/ui/api/v1

# image REPO TAG SALT [CURL_AUTH...]: push a one-layer image; sets IMG_DIGEST, IMG_MSIZE
image() {
    local repo=$1 tag=$2 salt=$3
    shift 3
    local d=$T/img-$salt
    mkdir -p "$d"
    printf '{"architecture":"amd64","os":"linux","config":{"Env":["S=%s"]},"rootfs":{"type":"layers","diff_ids":[]}}' \
        "$salt" >"$d/config"
    head -c 500 /dev/urandom >"$d/layer"
    for f in config layer; do
        curl -s -o /dev/null "$@" -X POST --data-binary "@$d/$f" \
            -H 'Content-Type: application/octet-stream' \
            "$URL/v2/$repo/blobs/uploads/?digest=$(sha256_file "$d/$f")"
    done
    make_manifest "$d/config" "$d/layer" "$d/manifest" "${SUBJECT[@]}"
    curl -s -o /dev/null "$@" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$d/manifest" "$URL/v2/$repo/manifests/$tag"
    IMG_DIGEST=$(sha256_file "$d/manifest")
    IMG_MSIZE=$(stat -c %s "$d/manifest")
}
SUBJECT=()

# headers_ok WHAT: the last answer carries the UI's security headers and no CORS grant
headers_ok() {
    local csp
    csp=$(header Content-Security-Policy)
    case "$csp" in
    *"default-src 'none'"*"script-src 'self'"*"frame-ancestors 'none'"*) ok ;;
    *) fail "$1: Content-Security-Policy is '$csp'" ;;
    esac
    case "$csp" in
    *unsafe-inline* | *unsafe-eval* | *"*"*) fail "$1: the policy allows inline code or any origin: $csp" ;;
    *) ok ;;
    esac
    check "$1: nosniff" nosniff "$(header X-Content-Type-Options)"
    check "$1: X-Frame-Options" DENY "$(header X-Frame-Options)"
    check "$1: Referrer-Policy" same-origin "$(header Referrer-Policy)"
    check "$1: Cross-Origin-Resource-Policy" same-origin "$(header Cross-Origin-Resource-Policy)"
    check "$1: no CORS grant" "" "$(header Access-Control-Allow-Origin)$(header Access-Control-Allow-Credentials)"
}

# no_path WHAT: the body of the last answer names no server path
no_path() {
    if grep -q "$T" "$BODY"; then fail "$1: the answer names a server path"; else ok; fi
}

# ---- access rules with anonymous pull on open/* ----------------------------------------------

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
  - repositories: "pub/*"
    users: [bob]
    actions: [pull]
  - repositories: "open/*"
    anonymous: true
    actions: [pull]
Y
    start_server --config "$T/auth.yaml"
    A=(-u alice:alicepw) B=(-u bob:bobpw)
    image pub/a v1 pa1 "${A[@]}"
    PA=$IMG_DIGEST PA_SIZE=$IMG_MSIZE
    image secret/x v1 sx1 "${A[@]}"
    SX=$IMG_DIGEST SX_SIZE=$IMG_MSIZE
    image open/o v1 oo1 "${A[@]}"
    # a signature of pub/a's image that lives in secret/x, and one in pub/a naming secret/x's
    SUBJECT=("$PA" "$PA_SIZE" application/vnd.example.secret)
    image secret/x sig sxsig "${A[@]}"
    SUBJECT=("$SX" "$SX_SIZE" application/vnd.example.public)
    image pub/a sig pasig "${A[@]}"
    SUBJECT=()

    # --- security headers, on files, JSON, errors; another origin is granted nothing
    for path in /ui/ /ui/r/pub/a:v1 /ui/assets/app.js $API/session $API/repositories \
        $API/repositories/secret/x/tags /ui/assets/nope.js; do
        req GET "$path" -H 'Origin: http://evil.example'
        headers_ok "$path"
    done
    req OPTIONS $API/repositories -H 'Origin: http://evil.example' \
        -H 'Access-Control-Request-Method: GET' -H 'Access-Control-Request-Headers: authorization'
    check "preflight refused" 405 "$STATUS"
    headers_ok "preflight"
    req DELETE /ui/api/v1/repositories/pub/a/manifests/v1 "${A[@]}"
    check "DELETE under /ui" "405 UNSUPPORTED" "$STATUS $(error_code)"
    req POST /ui/api/v1/repositories/pub/a/manifests/v1 "${A[@]}" --data 'x=1'
    check "a form POST under /ui" "405 UNSUPPORTED" "$STATUS $(error_code)"
    # the page itself: no inline script or style (the policy would block it)
    req GET /ui/
    if grep -Eiq '<script( [^>]*)?>[^<]|<script>| on[a-z]+=| style=' "$BODY"; then
        fail "index.html holds inline script or style"
    else
        ok
    fi

    # --- the existence of a private repository: as /v2/ tells it, no more
    # (UI path, /v2/ path, the caller)
    while read -r ui v2 who; do
        args=()
        [ "$who" = bob ] && args=("${B[@]}")
        req GET "$API/$ui" "${args[@]}"
        got="$STATUS $(error_code)"
        req GET "/v2/$v2" "${args[@]}"
        check "$who: $ui answers as /v2/$v2" "$STATUS $(error_code)" "$got"
    done <<'L'
repositories/secret/x/tags secret/x/tags/list anonymous
repositories/nope/x/tags nope/x/tags/list anonymous
repositories/secret/x/manifests/v1 secret/x/manifests/v1 anonymous
repositories/nope/x/manifests/v1 nope/x/manifests/v1 anonymous
repositories/pub/a/tags pub/a/tags/list anonymous
repositories/pub/nope/tags pub/nope/tags/list anonymous
repositories/open/nope/tags open/nope/tags/list anonymous
repositories/secret/x/tags secret/x/tags/list bob
repositories/nope/x/tags nope/x/tags/list bob
repositories/secret/x/manifests/sig secret/x/manifests/sig bob
repositories/open/o/tags open/o/tags/list bob
repositories/pub/nope/tags pub/nope/tags/list bob
L
    for who in anonymous bob; do
        args=()
        [ "$who" = bob ] && args=("${B[@]}")
        req GET "$API/repositories/secret/x/tags" "${args[@]}"
        a="$STATUS $(cat "$BODY")"
        req GET "$API/repositories/nope/x/tags" "${args[@]}"
        check "$who: a private repository reads as a missing one" "$a" "$STATUS $(cat "$BODY")"
    done

    # --- listings are filtered; q and paging never reach what may not be pulled
    req GET "$API/repositories?q=secret"
    check "anonymous q=secret" "[] 0" "$(json 'j["repositories"], j["total"]')"
    req GET "$API/repositories?q=x&n=1" "${B[@]}"
    check "bob q=x" "[] None 0" "$(json 'j["repositories"], j["next"], j["total"]')"
    req GET "$API/repositories?last=pub" "${B[@]}"
    check "bob after pub" "pub/a" "$(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET "$API/repositories?last=open/o&n=1"
    check "anonymous after open/o" "[] None" "$(json 'j["repositories"], j["next"]')"
    req GET $API/repositories
    check "anonymous sees open/o only" "open/o" "$(json '" ".join(r["name"] for r in j["repositories"])')"
    req GET $API/storage
    check "anonymous storage" "open/o None None" \
        "$(json '" ".join(r["name"] for r in j["repositories"]), j["uploads"], j["gc"]')"
    req GET $API/storage "${B[@]}"
    check "bob's storage" "pub/a" "$(json '" ".join(r["name"] for r in j["repositories"])')"

    # --- a manifest of pub/a: its referrers are pub/a's only; secret/x's by digest is unknown
    req GET "$API/repositories/pub/a/manifests/v1" "${B[@]}"
    check "bob: referrers of pub/a:v1" "200 []" "$STATUS $(json 'j["referrers"]')"
    if grep -q "vnd.example.secret" "$BODY"; then fail "a referrer of secret/x shows"; else ok; fi
    for ref in "$SX" "sha256%3A${SX#sha256:}"; do
        req GET "$API/repositories/pub/a/manifests/$ref" "${B[@]}"
        check "bob: secret/x's manifest through pub/a" "404 MANIFEST_UNKNOWN" "$STATUS $(error_code)"
    done
    req GET "$API/repositories/pub/a/manifests/sig" "${B[@]}"
    check "bob: pub/a:sig (its subject is only a descriptor)" "200 digest media_type size" \
        "$STATUS $(json '" ".join(sorted(j["subject"]))')"

    # --- odd names and parameters: clear errors, no server path, no crash
    long=$(python3 -c 'print("a/" * 400 + "x")')
    while read -r path status code; do
        req GET "$API/$path" "${A[@]}" --path-as-is
        check "$path" "$status $code" "$STATUS $(error_code)"
        no_path "$path"
    done <<L
repositories/../secret/x/tags 400 NAME_INVALID
repositories/pub/%2e%2e/secret/x/tags 400 NAME_INVALID
repositories/pub%2Fa/tags 400 NAME_INVALID
repositories/pub//a/tags 400 NAME_INVALID
repositories/pub/a%00/tags 400 NAME_INVALID
repositories/pub/%C3%A9/tags 400 NAME_INVALID
repositories/$long/tags 400 NAME_INVALID
repositories/pub/a/manifests/$long 400 NAME_INVALID
repositories/pub/a/manifests/v1%00 404 MANIFEST_UNKNOWN
repositories/pub/a/manifests/sha256%3Azz 404 MANIFEST_UNKNOWN
repositories/pub/a/tags?n=0 400 UNSUPPORTED
repositories/pub/a/tags?n=-1 400 UNSUPPORTED
repositories/pub/a/tags?n=99999999999999999999 400 UNSUPPORTED
repositories/pub/a/tags?sort= 400 UNSUPPORTED
repositories/pub/a/tags?order=up 400 UNSUPPORTED
repositories/pub/a/tags?last=%%% 400 UNSUPPORTED
repositories/pub/a/tags?last=cC01OnYx 400 UNSUPPORTED
repositories/pub/a/tags?last=bjp2MQB4 400 UNSUPPORTED
repositories?n=1001 400 UNSUPPORTED
repositories?last= 400 UNSUPPORTED
L
    req GET "$API/repositories?q=$(python3 -c 'print("a" * 256)')" "${A[@]}"
    check "q too long" "400 UNSUPPORTED" "$STATUS $(error_code)"
    head_req $API/repositories/open/o/tags
    check "HEAD of tags" "200 application/json" "$STATUS $(header Content-Type)"
    for inm in '*' '""' 'W/"x"' ',,,' "$(head -c 4000 /dev/zero | tr '\0' x)"; do
        req GET /ui/assets/app.js -H "If-None-Match: $inm"
        case "$STATUS" in 200 | 304) ok ;; *) fail "If-None-Match '$inm': $STATUS" ;; esac
    done
    req GET /ui/assets/app.js -H 'Range: bytes=5-10'
    check "Range on an asset: the whole file" "200 $(header Content-Length)" "$STATUS $(stat -c %s "$BODY")"
    server_alive && ok || fail "the server died"

    # --- the storage walk is shared: the figures say when they were computed
    req GET $API/storage "${A[@]}"
    first=$(json 'j["computed"]')
    case "$first" in 20*Z) ok ;; *) fail "storage: computed is '$first'" ;; esac
    sleep 1.1
    req GET $API/storage "${B[@]}"
    check "storage: a second caller shares the walk" "$first" "$(json 'j["computed"]')"
    image pub/b v1 pb1 "${A[@]}"
    sleep 1.1
    req GET $API/storage "${B[@]}"
    check "storage: a push is seen" "pub/a pub/b" "$(json '" ".join(r["name"] for r in j["repositories"])')"
    [ "$(json 'j["computed"]')" != "$first" ] && ok || fail "storage: not walked again after a push"
    # many callers at once: answers (200, or 429 while the first walk runs), the server lives
    pids=()
    for i in $(seq 1 30); do
        curl -s -o /dev/null -w '%{http_code}\n' "$URL$API/storage" >"$T/code.$i" &
        pids+=($!)
    done
    wait "${pids[@]}"
    cat "$T"/code.* >"$T/codes"
    check "30 storage calls at once" "" "$(grep -v -e '^200$' -e '^429$' "$T/codes" | sort -u | tr '\n' ' ')"
    server_alive && ok || fail "the server died"
    kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
    BERTH_PID=""
else
    echo "note: htpasswd (apache2-utils) missing: the access part is not run" >&2
fi

# ---- the cache of repository figures is bounded ----------------------------------------------

BERTH_UI_CACHE_ENTRIES=30 start_server
gauge() {
    curl -s "$URL/metrics" | awk -v n="$1" '$1 == n {print $2}'
}
# five repositories of 1 image and 6 tags: 1 + 6 tags + 1 manifest + 2 blobs = 10 entries each
for r in 1 2 3 4 5; do
    image "bound/r$r" t1 "b$r"
    for t in 2 3 4 5 6; do
        curl -s -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
            --data-binary "@$T/img-b$r/manifest" "$URL/v2/bound/r$r/manifests/t$t"
    done
done
for r in 1 2 3 4 5; do
    req GET "$API/repositories/bound/r$r/tags"
    check "bound/r$r tags" "200 6" "$STATUS $(json 'len(j["tags"])')"
    e=$(gauge berth_ui_cache_entries)
    [ -n "$e" ] && [ "$e" -le 30 ] && [ "$e" -gt 0 ] && ok ||
        fail "after bound/r$r: berth_ui_cache_entries is '$e' (bound 30)"
done
req GET "$API/repositories?n=5"
check "the listing over the bound" "6 6 6 6 6" "$(json '" ".join(str(r["tag_count"]) for r in j["repositories"])')"
e=$(gauge berth_ui_cache_entries)
[ -n "$e" ] && [ "$e" -le 30 ] && ok || fail "after the listing: berth_ui_cache_entries is '$e'"
# one repository bigger than the whole bound: answered, not kept
image bound/big t0 big
for t in $(seq 1 40); do
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$T/img-big/manifest" "$URL/v2/bound/big/manifests/t$t"
done
req GET "$API/repositories/bound/big/tags?n=1000"
check "bound/big tags" "200 41" "$STATUS $(json 'len(j["tags"])')"
e=$(gauge berth_ui_cache_entries)
[ -n "$e" ] && [ "$e" -le 30 ] && ok || fail "after bound/big: berth_ui_cache_entries is '$e'"
kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

# ---- pushes to other repositories do not keep a repository's figures from being kept -----------

start_server
# puts REPO MANIFEST FIRST COUNT: tag it tFIRST.. over one connection (COUNT < 0: until killed)
cat >"$T/puts.py" <<'PY'
import http.client, sys
host, port = sys.argv[1].split(":")
repo, body, first, count = sys.argv[2], open(sys.argv[3], "rb").read(), int(sys.argv[4]), int(sys.argv[5])
c = http.client.HTTPConnection(host, int(port))
i = first
while count < 0 or i < first + count:
    c.request("PUT", "/v2/%s/manifests/t%d" % (repo, i), body,
              {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    r = c.getresponse()
    r.read()
    if r.status != 201:
        sys.exit("PUT: %d" % r.status)
    i += 1
PY
image busy/big t0 busy
python3 "$T/puts.py" "$HOSTPORT" busy/big "$T/img-busy/manifest" 1 1000
pushers=()
for p in 1 2 3 4 5; do
    image "busy/other$p" t0 "other$p"
    python3 "$T/puts.py" "$HOSTPORT" "busy/other$p" "$T/img-other$p/manifest" 1 -1 &
    pushers+=($!)
done
kept=0
for i in $(seq 1 30); do
    curl -s -o /dev/null -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "@$T/img-busy/manifest" "$URL/v2/busy/big/manifests/again$i"
    req GET "$API/repositories/busy/big/tags?n=1"
    [ "$STATUS" = 200 ] || fail "busy/big tags: $STATUS"
    [ "$(gauge berth_ui_cache_repositories)" = 1 ] && kept=$((kept + 1))
done
kill "${pushers[@]}" 2>/dev/null
wait "${pushers[@]}" 2>/dev/null
check "busy/big's figures kept while other repositories are pushed to (of 30)" 30 "$kept"
kill "$BERTH_PID" && wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

# (a bad value is refused at start, with the variable's name)
BERTH_UI_CACHE_ENTRIES=lots "$BERTH" serve --listen 127.0.0.1:0 --root "$T/root3" >"$T/bad.log" 2>&1 &
pid=$!
for _ in $(seq 1 40); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
done
if kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null
    fail "BERTH_UI_CACHE_ENTRIES=lots: the server started"
else
    grep -q BERTH_UI_CACHE_ENTRIES "$T/bad.log" && ok || fail "BERTH_UI_CACHE_ENTRIES=lots: $(cat "$T/bad.log")"
fi

finish
