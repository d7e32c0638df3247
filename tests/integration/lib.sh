# SPDX-License-Identifier: Apache-2.0
# Shared harness of the integration tests: start `berth serve` on a free loopback port with a
# fresh root (or use BERTH_TEST_URL), stop it by PID on exit, count checks.
#
# Sourced by tests/integration/test_*.sh. Needs: BERTH (the berth binary) unless BERTH_TEST_URL
# is set; curl; python3. With BERTH_TEST_URL the suite expects an empty registry (the catalog
# and tag listings are compared exactly) and skips the checks that need its own process.

set -u

PASSED=0
FAILED=0
BERTH_TMP=$(mktemp -d "${TMPDIR:-/tmp}/berth-it.XXXXXX")
BERTH_PID=""

cleanup() {
    if [ -n "$BERTH_PID" ]; then
        kill "$BERTH_PID" 2>/dev/null
        wait "$BERTH_PID" 2>/dev/null
    fi
    rm -rf "$BERTH_TMP"
}
trap cleanup EXIT

# BERTH_TEST_STORAGE=s3pg (set by CTest for the "scale" variant of a test that says
# `storage: any`): the server runs over S3 + PostgreSQL (storage_lib.sh).
. "$(dirname "${BASH_SOURCE[0]}")/storage_lib.sh"
if [ "${BERTH_TEST_STORAGE:-}" = s3pg ]; then
    scale_storage_env || { echo "cannot prepare S3 + PostgreSQL storage" >&2; exit 1; }
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start_server [extra serve options...]: sets URL, HOSTPORT, BERTH_PID, BERTH_LOG
start_server() {
    if [ -n "${BERTH_TEST_URL:-}" ]; then
        URL=$BERTH_TEST_URL
        HOSTPORT=${URL#http://}
        return 0
    fi
    : "${BERTH:?BERTH must name the berth binary}"
    local port i
    BERTH_LOG=$BERTH_TMP/server.log
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        "$BERTH" serve --listen "127.0.0.1:$port" --root "$BERTH_TMP/root" "$@" \
            2>"$BERTH_LOG" &
        BERTH_PID=$!
        for i in $(seq 1 100); do
            if curl -s -o /dev/null "http://127.0.0.1:$port/v2/"; then
                URL=http://127.0.0.1:$port
                HOSTPORT=127.0.0.1:$port
                return 0
            fi
            if ! kill -0 "$BERTH_PID" 2>/dev/null; then
                break
            fi
            sleep 0.05
        done
        kill "$BERTH_PID" 2>/dev/null
        wait "$BERTH_PID" 2>/dev/null
        BERTH_PID=""
    done
    echo "could not start berth serve:" >&2
    cat "$BERTH_LOG" >&2
    exit 1
}

server_alive() {
    [ -n "${BERTH_TEST_URL:-}" ] || kill -0 "$BERTH_PID" 2>/dev/null
}

ok() {
    PASSED=$((PASSED + 1))
}

fail() {
    FAILED=$((FAILED + 1))
    echo "FAIL: $*" >&2
}

# check DESCRIPTION EXPECTED ACTUAL
check() {
    if [ "$2" = "$3" ]; then
        ok
    else
        fail "$1: expected '$2', got '$3'"
    fi
}

# req METHOD PATH [curl args...]: performs the request; sets STATUS, BODY (file), HDRS (file)
BODY=$BERTH_TMP/body
HDRS=$BERTH_TMP/headers
req() {
    local method=$1 path=$2
    shift 2
    STATUS=$(curl -s -o "$BODY" -D "$HDRS" -w '%{http_code}' -X "$method" "$@" "$URL$path")
}

# head_req PATH: a HEAD request (curl -I), same outputs
head_req() {
    STATUS=$(curl -s -I -o "$BODY" -D "$HDRS" -w '%{http_code}' "$URL$1")
}

# header NAME: value of a response header of the last request ("" when absent)
header() {
    grep -i "^$1:" "$HDRS" | tail -n 1 | cut -d: -f2- | sed 's/^ *//' | tr -d '\r'
}

# error_code: the first error code of the JSON body of the last request
error_code() {
    python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"][0]["code"])' \
        "$BODY" 2>/dev/null || echo "<not an error document>"
}

# expect_error DESCRIPTION STATUS CODE: the last request failed with that status and code
expect_error() {
    check "$1 status" "$2" "$STATUS"
    check "$1 code" "$3" "$(error_code)"
    check "$1 api version header" "registry/2.0" "$(header Docker-Distribution-API-Version)"
}

# json EXPR: evaluate a python expression over the JSON body `j` of the last request
json() {
    python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($1)" "$BODY" 2>/dev/null ||
        echo "<bad json>"
}

sha256_file() {
    echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"
}

# push_blob NAME FILE: monolithic upload; echoes the digest
push_blob() {
    local d
    d=$(sha256_file "$2")
    curl -s -o /dev/null -X POST --data-binary "@$2" -H 'Content-Type: application/octet-stream' \
        "$URL/v2/$1/blobs/uploads/?digest=$d"
    echo "$d"
}

# make_manifest CONFIG_FILE LAYER_FILE OUT [SUBJECT_DIGEST SUBJECT_SIZE ARTIFACT_TYPE]
make_manifest() {
    python3 - "$@" <<'PY'
import hashlib, json, os, sys
def desc(mt, path):
    data = open(path, 'rb').read()
    return {"mediaType": mt, "digest": "sha256:" + hashlib.sha256(data).hexdigest(),
            "size": len(data)}
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": desc("application/vnd.oci.image.config.v1+json", sys.argv[1]),
     "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", sys.argv[2])]}
if len(sys.argv) > 4:
    m["subject"] = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": sys.argv[4], "size": int(sys.argv[5])}
    m["artifactType"] = sys.argv[6]
    m["annotations"] = {"org.example.kind": sys.argv[6]}
open(sys.argv[3], 'wb').write(json.dumps(m, separators=(',', ':')).encode())
PY
}

finish() {
    echo "$PASSED passed, $FAILED failed"
    if [ "$FAILED" -ne 0 ]; then
        if [ -n "${BERTH_LOG:-}" ] && [ -f "$BERTH_LOG" ]; then
            echo "--- server log (tail) ---" >&2
            tail -n 40 "$BERTH_LOG" >&2
        fi
        exit 1
    fi
    exit 0
}
