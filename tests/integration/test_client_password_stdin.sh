#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# --password-stdin takes all of standard input less one trailing newline, as docker and
# podman do: a registry token of several KiB (cloud registries hand out such passwords) is not
# cut at 4 KiB; berth login stores it whole. Over 64 KiB is refused.
. "$(dirname "$0")/client_lib.sh"

export HOME="$WORK/home"
unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_CONFIG_HOME XDG_RUNTIME_DIR
mkdir -p "$HOME"
LONG=$(python3 -c 'import base64, os; print(base64.b64encode(os.urandom(4500)).decode())')
make_layout "$WORK/l1" v1 >/dev/null
start_fake SRC "$WORK/l1" --token --basic "u:$LONG"
S=127.0.0.1:$SRC_PORT

printf '%s\n' "$LONG" | "$BERTH" tags --user u --password-stdin "$S/src/app" >"$WORK/out" 2>"$WORK/err" ||
    fail "tags with a 6 KiB password on stdin: $(cat "$WORK/err")"
grep -qx v1 "$WORK/out" || fail "tags: $(cat "$WORK/out")"

printf '%s\r\n' "$LONG" | "$BERTH" login --authfile "$WORK/auth.json" -u u --password-stdin "$S" \
    >/dev/null 2>"$WORK/err" || fail "login with a 6 KiB password on stdin: $(cat "$WORK/err")"
got=$(python3 -c 'import base64, json, sys
a = json.load(open(sys.argv[1]))["auths"][sys.argv[2]]["auth"]
print(base64.b64decode(a).decode().split(":", 1)[1])' "$WORK/auth.json" "$S")
[ "$got" = "$LONG" ] || fail "login stored a password of ${#got} characters, not ${#LONG}"

set +e
head -c 70000 /dev/zero | tr '\0' a | "$BERTH" tags --user u --password-stdin "$S/src/app" \
    >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "exit status with a password over 64 KiB"
grep -q "over 64 KiB" "$WORK/err" || fail "no message for a password over 64 KiB: $(cat "$WORK/err")"
echo PASS
