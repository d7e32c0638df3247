#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# A scheme berth does not know ("DOCKER://", "https://") is refused by name, in every client
# command, before any request: before, "DOCKER://HOST:PORT/NAME" was read as a host "DOCKER"
# and answered "registry: invalid port", and "https://HOST/NAME" the same.
. "$(dirname "$0")/client_lib.sh"

for cmd in tags inspect delete; do
    for ref in "DOCKER://127.0.0.1:9/x" "Docker://127.0.0.1:9/x:v1" "https://127.0.0.1:9/x"; do
        if "$BERTH" "$cmd" "$ref" >"$WORK/out" 2>"$WORK/err"; then
            fail "$cmd $ref accepted"
        fi
        grep -q "unknown transport '${ref%%://*}://'" "$WORK/err" ||
            fail "$cmd $ref: $(cat "$WORK/err")"
    done
done
if "$BERTH" copy "HTTPS://127.0.0.1:9/x:v1" "oci:$WORK/l:v1" >"$WORK/out" 2>"$WORK/err"; then
    fail "copy HTTPS:// accepted"
fi
grep -q "unknown transport 'HTTPS://'" "$WORK/err" || fail "copy HTTPS://: $(cat "$WORK/err")"
[ ! -e "$WORK/l" ] || fail "copy HTTPS:// created the destination"
# the lowercase docker:// and a host with a port still parse (no server: a connection error)
"$BERTH" tags "docker://127.0.0.1:9/x" >"$WORK/out" 2>"$WORK/err" && fail "nothing listens on 9"
grep -q "transport" "$WORK/err" && fail "docker:// refused: $(cat "$WORK/err")"
# berth catalog HOST/ (a trailing slash, as copied from a URL) is the registry; HOST/NAME is
# said to be a repository (before: both printed the usage text)
"$BERTH" catalog "127.0.0.1:9/" >"$WORK/out" 2>"$WORK/err" && fail "nothing listens on 9"
grep -Eq "GET https?://127.0.0.1:9/v2/" "$WORK/err" || fail "catalog HOST/: $(cat "$WORK/err")"
"$BERTH" catalog "docker://127.0.0.1:9/team/app" >"$WORK/out" 2>"$WORK/err" && fail "HOST/NAME"
grep -q "names a repository" "$WORK/err" || fail "catalog HOST/NAME: $(cat "$WORK/err")"
echo "ok"
