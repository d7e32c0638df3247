#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The store when the disk fails, and beside maintenance commands:
# - a repository whose creation fails (here: a file stands where its directory would go) is
#   not in the catalog and has no tag list, whichever path tried to create it (mount, upload
#   commit, manifest PUT): memory follows disk;
# - berth du and berth fsck (without --repair) write nothing, so a live server's staging files
#   survive them and concurrent manifest PUTs all succeed;
# - an I/O failure on manifest PUT is a 5xx, never a 4xx that blames the client.
. "$(dirname "$0")/lib.sh"
start_server
ROOT=$BERTH_TMP/root
T=$BERTH_TMP

head -c 1000 /dev/urandom >"$T/blob"
D=$(push_blob app "$T/blob")
printf 'not a directory' >"$ROOT/ro"

catalog_has() {
    curl -s "$URL/v2/_catalog" | python3 -c 'import json,sys; print(sys.argv[1] in json.load(sys.stdin)["repositories"])' "$1"
}

req POST "/v2/ro/new/blobs/uploads/?mount=$D&from=app"
check "mount into a repository that cannot be created" 500 "$STATUS"
grep -q "$BERTH_TMP" "$BODY" && fail "the 500 names a server path: $(cat "$BODY")" || ok
check "no phantom repository after a failed mount" False "$(catalog_has ro/new)"
req GET /v2/ro/new/tags/list
expect_error "tag list of the failed repository" 404 NAME_UNKNOWN

req POST "/v2/ro/up/blobs/uploads/?digest=$D" --data-binary "@$T/blob" \
    -H 'Content-Type: application/octet-stream'
check "upload into a repository that cannot be created" 500 "$STATUS"
check "no phantom repository after a failed upload" False "$(catalog_has ro/up)"
req GET /v2/ro/up/tags/list
expect_error "tag list after the failed upload" 404 NAME_UNKNOWN

EMPTY='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
req PUT /v2/ro/idx/manifests/v1 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "$EMPTY"
check "manifest PUT into a repository that cannot be created" 500 "$STATUS"
check "no phantom repository after a failed manifest PUT" False "$(catalog_has ro/idx)"
req GET /v2/ro/idx/tags/list
expect_error "tag list after the failed manifest PUT" 404 NAME_UNKNOWN
req GET /v2/ro/idx/manifests/v1
check "manifest of the failed repository" 404 "$STATUS"
req PUT /v2/fine/manifests/v1 -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "$EMPTY"
check "other repositories are still created" 201 "$STATUS"

# read-only maintenance beside a live server
printf 'in flight' >"$ROOT/_berth/tmp/write.inflight"
"$BERTH" du --root "$ROOT" >"$T/du.out" 2>&1
check "du beside a live server" 0 "$?"
"$BERTH" fsck --root "$ROOT" >"$T/fsck.out" 2>&1
check "fsck beside a live server" 0 "$?"
test -f "$ROOT/_berth/tmp/write.inflight" && ok || fail "du/fsck removed the server's staging files"
rm -f "$ROOT/_berth/tmp/write.inflight"
"$BERTH" du --root "$T/nothing" >/dev/null 2>&1
check "du of a missing root fails (not a berth store: 2)" 2 "$?"
test ! -e "$T/nothing" && ok || fail "du created a store"

python3 - "$URL" "$BERTH" "$ROOT" >"$T/conc.out" 2>&1 <<'PY'
import http.client, json, subprocess, sys, threading, urllib.parse
url, berth, root = sys.argv[1:4]
u = urllib.parse.urlparse(url)
bad = []
stop = False
def maint():
    while not stop:
        for cmd in ("du", "fsck"):
            subprocess.run([berth, cmd, "--root", root], capture_output=True)
def pusher(k):
    c = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    for i in range(50):
        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [], "annotations": {"n": "%d-%d" % (k, i)}})
        c.request("PUT", "/v2/conc/manifests/t%d-%d" % (k, i), body,
                  {"Content-Type": "application/vnd.oci.image.index.v1+json"})
        r = c.getresponse()
        data = r.read()
        if r.status != 201:
            bad.append((r.status, data[:200]))
m = threading.Thread(target=maint)
m.start()
ts = [threading.Thread(target=pusher, args=(k,)) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
stop = True
m.join()
print("failed PUTs:", len(bad), bad[:3])
sys.exit(1 if bad else 0)
PY
check "200 manifest PUTs beside du and fsck loops" 0 "$?"
cat "$T/conc.out"

# an I/O failure of the store is the server's fault
rm -rf "$ROOT/_berth/tmp"
req PUT /v2/app/manifests/io -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "$EMPTY"
check "manifest PUT with the staging directory gone" 500 "$STATUS"
check "... answered as UNKNOWN" UNKNOWN "$(error_code)"
mkdir -p "$ROOT/_berth/tmp"
req PUT /v2/app/manifests/io -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
    --data-binary "$EMPTY"
check "manifest PUT once the disk is back" 201 "$STATUS"
finish
