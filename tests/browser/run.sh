#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The web UI in a real browser: starts three `berth serve` (one open, one with htpasswd and access
# rules, one where anonymous users may pull some repositories and nobody may delete), fills them (skopeo pushes a multi-platform index and an image; fill.py adds a signature
# and an SBOM as referrers, 1,000 tags in one repository and 2,000 repositories through the
# registry API), then ui.test.mjs drives Debian's chromium through playwright-core over every page.
# Screenshots go to $BERTH_UI_SHOTS (CTest: <build>/ui-screenshots). Needs: BERTH, chromium,
# node + npm (setup.sh --check installs them), skopeo, htpasswd. A missing tool is a failure:
# make check installs them all, so a skip here would hide a broken setup.
# shellcheck disable=SC2154 # start() sets open_URL, auth_URL and pub_URL (printf -v)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
: "${BERTH:?BERTH must name the berth binary}"
SHOTS=${BERTH_UI_SHOTS:-$PWD/ui-screenshots}
CHROMIUM=${BERTH_CHROMIUM:-/usr/bin/chromium}
for tool in "$CHROMIUM" node npm skopeo htpasswd curl python3; do
    if ! command -v "$tool" >/dev/null; then
        echo "FAIL: $tool is missing (scripts/setup.sh --check installs it)" >&2
        echo "0 passed, 1 failed"
        exit 1
    fi
done

# the store lives in memory when it can: 7,000 small writes, each one fsynced, take a minute on
# a disk and five seconds on tmpfs
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    T=$(mktemp -d /dev/shm/berth-ui.XXXXXX)
else
    T=$(mktemp -d "${TMPDIR:-/tmp}/berth-ui.XXXXXX")
fi
PIDS=()
# shellcheck disable=SC2317 # (called by the trap)
cleanup() {
    local p
    for p in "${PIDS[@]}"; do
        kill "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    rm -rf "$T"
}
trap cleanup EXIT

die() {
    echo "FAIL: $*" >&2
    echo "0 passed, 1 failed"
    exit 1
}

# playwright-core from the lockfile
sh "$HERE/install.sh" >"$T/npm.log" 2>&1 || die "npm ci in tests/browser: $(tail -n 5 "$T/npm.log")"

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start NAME [serve options...]: sets NAME_URL (open_URL, auth_URL, pub_URL below)
start() {
    local name=$1 port pid
    shift
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "$BERTH" serve --listen "127.0.0.1:$port" --root "$T/$name" "$@" 2>"$T/$name.log" &
        pid=$!
        for _ in $(seq 1 100); do
            if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
                PIDS+=("$pid")
                printf -v "${name}_URL" '%s' "http://127.0.0.1:$port"
                return 0
            fi
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    die "could not start berth serve: $(cat "$T/$name.log")"
}

# the open registry: no auth, deletes allowed
start open
HOST=${open_URL#http://}
# a berth without the UI fails here at once, not after every page's wait
for path in /ui/ /ui/api/v1/session; do
    code=$(curl -s -o /dev/null -w '%{http_code}' "$open_URL$path")
    [ "$code" = 200 ] || die "GET $path: $code (berth serve does not serve the web UI)"
done
python3 "$HERE/fill.py" layouts "$T/layouts" || die "writing the OCI layouts"
SK="skopeo --insecure-policy"
$SK copy -q --all --dest-tls-verify=false "oci:$T/layouts/multi:1.0" "docker://$HOST/library/multi:1.0" \
    >"$T/skopeo.log" 2>&1 || die "skopeo push of the index: $(tail -n 5 "$T/skopeo.log")"
$SK copy -q --dest-tls-verify=false "oci:$T/layouts/web:1.0" "docker://$HOST/team/web:1.0" \
    >"$T/skopeo.log" 2>&1 || die "skopeo push of the image: $(tail -n 5 "$T/skopeo.log")"
$SK copy -q --dest-tls-verify=false "oci:$T/layouts/web:1.0" "docker://$HOST/team/deleteme:a" \
    >"$T/skopeo.log" 2>&1 || die "skopeo push: $(tail -n 5 "$T/skopeo.log")"
$SK copy -q --dest-tls-verify=false "oci:$T/layouts/web:1.0" "docker://$HOST/team/deleteme:b" \
    >"$T/skopeo.log" 2>&1 || die "skopeo push: $(tail -n 5 "$T/skopeo.log")"
read -r WEB_DIGEST SIG_DIGEST SBOM_DIGEST < <(python3 "$HERE/fill.py" referrers "$open_URL" team/web 1.0) ||
    die "pushing the referrers"
python3 "$HERE/fill.py" bulk "$open_URL" || die "the bulk fill"

# the registry with auth: alice may do everything, bob may pull team/* only
htpasswd -Bbn alice alicepw | head -n 1 >"$T/htpasswd"
htpasswd -Bbn bob bobpw | head -n 1 >>"$T/htpasswd"
cat >"$T/auth.yaml" <<Y
auth: {htpasswd: $T/htpasswd}
access:
  - repositories: "*"
    users: [alice]
    actions: ["*"]
  - repositories: "team/*"
    users: [bob]
    actions: [pull]
Y
start auth --config "$T/auth.yaml"
python3 "$HERE/fill.py" small "$auth_URL" alice:alicepw || die "filling the registry with auth"

# a registry where anonymous users may pull public/*, nobody may delete, and gc runs every second
# (for the storage page's "last GC"; the default grace of an hour keeps everything)
cat >"$T/pub.yaml" <<Y
auth: {htpasswd: $T/htpasswd}
access:
  - repositories: "*"
    users: [alice]
    actions: ["*"]
  - repositories: "public/*"
    anonymous: true
Y
start pub --config "$T/pub.yaml" --no-deletes --gc-interval 1s
python3 "$HERE/fill.py" small "$pub_URL" alice:alicepw public/app=1.0,2.0 private/app=1.0 ||
    die "filling the registry with anonymous access"

mkdir -p "$SHOTS"
export PUB_URL=$pub_URL OPEN_URL=$open_URL AUTH_URL=$auth_URL WEB_DIGEST SIG_DIGEST SBOM_DIGEST SHOTS CHROMIUM
node "$HERE/ui.test.mjs"
rc=$?
if [ "$rc" -ne 0 ]; then
    for n in open auth pub; do
        echo "--- $n server log (tail) ---" >&2
        tail -n 20 "$T/$n.log" >&2
    done
fi
exit "$rc"
