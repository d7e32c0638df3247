#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Docker credential helpers that misbehave: a credsStore naming a path ("../../x") is refused
# and not run; a helper that answers endlessly, or not at all, is killed (64 KiB, 30 s) and the
# command fails with a message naming the helper instead of hanging.
. "$(dirname "$0")/client_lib.sh"

export HOME="$WORK/home"
unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_CONFIG_HOME XDG_RUNTIME_DIR
mkdir -p "$HOME/.docker" "$WORK/bin" "$WORK/cwd/docker-credential-..x/.."
make_layout "$WORK/l1" v1 >/dev/null
start_fake SRC "$WORK/l1" --token --basic u:p
S=127.0.0.1:$SRC_PORT

# 1. a helper named by a path: a program there exists (relative to the working directory, as
#    posix_spawnp takes a name with '/'), and it is not run
cat >"$WORK/cwd/x" <<SH
#!/bin/sh
touch "$WORK/ran"
echo '{"Username":"u","Secret":"p"}'
SH
chmod +x "$WORK/cwd/x"
echo '{"credsStore": "..x/../x"}' >"$HOME/.docker/config.json"
set +e
(cd "$WORK/cwd" && timeout 60 "$BERTH" tags "$S/src/app" >/dev/null 2>"$WORK/err")
set -e
echo "path helper: $(cat "$WORK/err")"
[ ! -e "$WORK/ran" ] || fail "a credsStore naming a path ran that program"
grep -q "not a path" "$WORK/err" || fail "no message for a helper named by a path: $(cat "$WORK/err")"

# 2. a helper that writes without end (exit 0): refused, no hang
cat >"$WORK/bin/docker-credential-flood" <<'SH'
#!/bin/sh
cat >/dev/null
exec yes '{"Username":"u","Secret":"p"}'
SH
chmod +x "$WORK/bin/docker-credential-flood"
echo '{"credsStore": "flood"}' >"$HOME/.docker/config.json"
set +e
PATH="$WORK/bin:$PATH" timeout 60 "$BERTH" tags "$S/src/app" >/dev/null 2>"$WORK/err"
rc=$?
set -e
echo "flooding helper: rc $rc: $(cat "$WORK/err")"
[ "$rc" != 124 ] || fail "berth hangs on a helper that writes without end"
grep -q "docker-credential-flood answered more than 64 KiB" "$WORK/err" ||
    fail "no message for a flooding helper: $(cat "$WORK/err")"

# 3. a helper that never answers: killed after 30 s
cat >"$WORK/bin/docker-credential-hang" <<'SH'
#!/bin/sh
exec sleep 1000
SH
chmod +x "$WORK/bin/docker-credential-hang"
echo '{"credsStore": "hang"}' >"$HOME/.docker/config.json"
set +e
PATH="$WORK/bin:$PATH" timeout 90 "$BERTH" tags "$S/src/app" >/dev/null 2>"$WORK/err"
rc=$?
set -e
echo "silent helper: rc $rc: $(cat "$WORK/err")"
[ "$rc" != 124 ] || fail "berth hangs on a helper that never answers"
grep -q "docker-credential-hang gave no answer within 30 s" "$WORK/err" ||
    fail "no message for a silent helper: $(cat "$WORK/err")"

# and a well-behaved helper still works
cat >"$WORK/bin/docker-credential-good" <<'SH'
#!/bin/sh
read -r server
echo '{"ServerURL":"'"$server"'","Username":"u","Secret":"p"}'
SH
chmod +x "$WORK/bin/docker-credential-good"
echo '{"credsStore": "good"}' >"$HOME/.docker/config.json"
PATH="$WORK/bin:$PATH" timeout 60 "$BERTH" tags "$S/src/app" | grep -qx v1 ||
    fail "a good helper no longer works"
echo PASS
