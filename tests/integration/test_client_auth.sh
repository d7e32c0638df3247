#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Authentication of the client: HTTP Basic against Distribution with an htpasswd file (from
# --user/--password, --password-stdin and ~/.docker/config.json), the Docker token flow against
# a python3 registry that issues Bearer challenges and checks the token (with and without
# Basic credentials at the token endpoint, tokens cached per scope), and Link pagination.
. "$(dirname "$0")/client_lib.sh"

command -v htpasswd >/dev/null || { echo "skip: htpasswd (apache2-utils) missing"; exit 77; }
htpasswd -Bbn alice s3cret >"$WORK/htpasswd"
start_distribution AUTH "auth: {htpasswd: {realm: berth-test, path: $WORK/htpasswd}}"
A=127.0.0.1:$AUTH_PORT
want=$(make_layout "$WORK/l1" v1)
export HOME="$WORK/home" # no stray docker config of the machine
mkdir -p "$HOME"

# anonymous: refused with a clear message and status 1
set +e
"$BERTH" copy "oci:$WORK/l1:v1" "$A/sec/app:v1" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "anonymous push exit status"
grep -q 'asks for credentials' "$WORK/err" || fail "anonymous message: $(cat "$WORK/err")"

# wrong password
set +e
"$BERTH" copy --user alice --password wrong "oci:$WORK/l1:v1" "$A/sec/app:v1" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "wrong password exit status"
grep -q 'HTTP 401' "$WORK/err" || fail "wrong password message: $(cat "$WORK/err")"

# --user/--password
got=$("$BERTH" copy --user alice --password s3cret "oci:$WORK/l1:v1" "$A/sec/app:v1")
expect_eq "$got" "$want" "basic auth copy"
# --password-stdin
echo s3cret | "$BERTH" tags --user alice --password-stdin "$A/sec/app" | grep -qx v1 ||
    fail "--password-stdin"
# docker config.json
mkdir -p "$HOME/.docker"
printf '{"auths":{"%s":{"auth":"%s"}}}' "$A" "$(printf alice:s3cret | base64)" \
    >"$HOME/.docker/config.json"
"$BERTH" copy --quiet "$A/sec/app:v1" "oci:$WORK/out:v1"
expect_eq "$(skopeo inspect --raw "oci:$WORK/out:v1" | sha256sum | cut -d' ' -f1)" \
    "${want#sha256:}" "copy with docker config credentials"
"$BERTH" catalog "$A" | grep -qx 'sec/app' || fail "catalog with docker config credentials"
rm -f "$HOME/.docker/config.json"

# the token flow, anonymous token endpoint
start_fake TOK "$WORK/l1" --token --page 2 --tags a,b,c,d
T=127.0.0.1:$TOK_PORT
got=$("$BERTH" copy "$T/some/repo:v1" "oci:$WORK/tok:v1")
expect_eq "$got" "$want" "copy through the token flow"
n=$(curl -s "http://$T/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_requests"])')
expect_eq "$n" 1 "one token for one scope (cached)"
# Link pagination: five tags in pages of two
expect_eq "$("$BERTH" tags "$T/some/repo" | tr '\n' ' ')" "a b c d v1 " "paginated tags"
kill "$TOK_PID"

# the token flow with Basic credentials at the token endpoint
start_fake TOKB "$WORK/l1" --token --basic bob:pw
T=127.0.0.1:$TOKB_PORT
set +e
"$BERTH" inspect "$T/some/repo:v1" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "token refused without credentials"
grep -qi 'token' "$WORK/err" || fail "token refusal message: $(cat "$WORK/err")"
"$BERTH" inspect --user bob --password pw "$T/some/repo:v1" | grep -q "^Digest: *$want" ||
    fail "token flow with Basic credentials"
curl -s "http://$T/stats" | grep -q "Basic $(printf bob:pw | base64)" ||
    fail "the token endpoint did not get the Basic credentials"
echo "ok"
