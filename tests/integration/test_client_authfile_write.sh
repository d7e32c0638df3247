#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# berth login/logout at once on one auth file (a CI job logging in to several registries in
# parallel): each reads, changes and replaces the file, so without a lock one undoes another.
# 20 logouts of 20 registries at once leave none of them; the file stays mode 0600. An auth file
# that is a symbolic link (dotfiles) stays one: the file it points to is changed, as docker does.
# logout docker.io removes docker's https://index.docker.io/v1/ entry too; a logout says when
# berth still finds credentials for the host in another file (docker's), as podman does.
. "$(dirname "$0")/client_lib.sh"

F=$WORK/auth/auth.json
mkdir -p "$WORK/auth"
for round in 1 2 3; do
    python3 -c 'import json, sys
print(json.dumps({"auths": {"h%d.example:5000" % i: {"auth": "dTpw"} for i in range(20)},
                  "credHelpers": {"other.example": "x"}}))' >"$F"
    pids=()
    for i in $(seq 0 19); do
        "$BERTH" logout --authfile "$F" "h$i.example:5000" >/dev/null 2>>"$WORK/err" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do
        wait "$p" || fail "a logout failed: $(cat "$WORK/err")"
    done
    left=$(python3 -c 'import json, sys; d = json.load(open(sys.argv[1]))
print(len(d["auths"]), "credHelpers" in d)' "$F")
    expect_eq "$left" "0 True" "round $round: entries left after 20 parallel logouts, other members kept"
done
expect_eq "$(stat -c %a "$F")" 600 "mode of the auth file"
mkdir -p "$WORK/dotfiles" "$WORK/cfg"
echo '{"auths": {"a.example": {"auth": "dTpw"}, "b.example": {"auth": "dTpw"}}}' >"$WORK/dotfiles/auth.json"
ln -s "$WORK/dotfiles/auth.json" "$WORK/cfg/auth.json"
"$BERTH" logout --authfile "$WORK/cfg/auth.json" a.example >/dev/null || fail "logout through a link"
[ -L "$WORK/cfg/auth.json" ] || fail "the symbolic link was replaced by a file"
left=$(python3 -c 'import json, sys; print(sorted(json.load(open(sys.argv[1]))["auths"]))' \
    "$WORK/dotfiles/auth.json")
expect_eq "$left" "['b.example']" "the linked file after logout"
# Docker Hub as docker login names it: berth logout docker.io removes it (berth reads it for
# docker.io, so leaving it kept the user logged in)
echo '{"auths": {"https://index.docker.io/v1/": {"auth": "dTpw"}, "quay.io": {"auth": "dTpw"}}}' \
    >"$WORK/hub.json"
"$BERTH" logout --authfile "$WORK/hub.json" docker.io >/dev/null 2>"$WORK/err" ||
    fail "logout docker.io of docker's entry: $(cat "$WORK/err")"
left=$(python3 -c 'import json, sys; print(sorted(json.load(open(sys.argv[1]))["auths"]))' \
    "$WORK/hub.json")
expect_eq "$left" "['quay.io']" "entries after logout docker.io"

# credentials of the host that remain in another file berth reads: logout says so
mkdir -p "$WORK/h/.docker"
echo '{"auths": {"quay.io": {"auth": "dTpw"}}}' >"$WORK/h/.docker/config.json"
set +e
(export HOME=$WORK/h && unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_CONFIG_HOME XDG_RUNTIME_DIR &&
    "$BERTH" logout quay.io) >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "logout of a host only docker's file knows"
grep -q "credentials for quay.io remain in $WORK/h/.docker/config.json" "$WORK/err" ||
    fail "logout does not say where the credentials remain: $(cat "$WORK/err")"
echo PASS
