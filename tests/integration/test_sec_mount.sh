#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Cross-repository mount under access rules: every (user, source, target, from / no from /
# `&from` / `from=`) with Basic and with tokens mounts (201) only when the caller may pull the
# source and push the target, and otherwise falls back to a new session (202) that looks exactly
# like the one for a digest that exists nowhere, with nothing mounted; an automatic mount (no
# from) takes the blob only from a repository the caller may pull; storage.automatic_mount:
# false turns automatic mount off.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
command -v htpasswd >/dev/null || { echo "skip: htpasswd (apache2-utils) missing"; exit 77; }
sec_users_setup

may() { # USER REPO ACTION -> 0 when the rules allow it
    case "$1 $2 $3" in
    "admin "*) return 0 ;;
    "alice team/"*) return 0 ;;
    "bob team/"*" pull") return 0 ;;
    "carol public/"*) return 0 ;;
    "anon public/"*" pull") return 0 ;;
    esac
    return 1
}
owner() { case $1 in team/*) echo alice ;; *) echo carol ;; esac; }

# OWNER_OPTS: the credentials of REPO's owner, Basic or (MODE=token) a token for REPO
MODE=basic
owner_opts() {
    local o
    o=$(owner "$1")
    if [ "$MODE" = token ]; then
        OWNER_OPTS=(-H "Authorization: Bearer $(curl -s -u "$o:${o}pw" -G "$URL/token" \
            --data-urlencode service=berth-test --data-urlencode "scope=repository:$1:pull,push" |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')")
    else
        OWNER_OPTS=(-u "$o:${o}pw")
    fi
}
# a new blob in REPO, pushed by its owner; echoes the digest
fresh_blob() {
    head -c 300 /dev/urandom >"$T/blob"
    local d
    d=$(sha256_file "$T/blob")
    owner_opts "$1"
    curl -s -o /dev/null "${OWNER_OPTS[@]}" -X POST --data-binary "@$T/blob" \
        -H 'Content-Type: application/octet-stream' "$URL/v2/$1/blobs/uploads/?digest=$d"
    echo "$d"
}
# AUTH_OPTS for USER with Basic credentials ("" for anon)
basic_for() {
    if [ "$1" = anon ]; then AUTH_OPTS=(); else AUTH_OPTS=(-u "$1:${1}pw"); fi
}
# AUTH_OPTS for a token of USER with the given scopes
token_for() { # USER SCOPE...
    local u=$1 a=() s=()
    shift
    [ "$u" != anon ] && a=(-u "$u:${u}pw")
    for x in "$@"; do s+=(--data-urlencode "scope=$x"); done
    TOKEN=$(curl -s "${a[@]}" -G "$URL/token" --data-urlencode service=berth-test "${s[@]}" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
    AUTH_OPTS=(-H "Authorization: Bearer $TOKEN")
}
# the query of a mount of DIGEST from SRC in the given VARIANT
mount_query() { # VARIANT DIGEST SRC
    case $1 in
    from) echo "?mount=$2&from=$3" ;;
    none) echo "?mount=$2" ;;
    novalue) echo "?mount=$2&from" ;;
    empty) echo "?mount=$2&from=" ;;
    esac
}
# the status and header names of a POST, which is all a caller sees of a 202 besides ids
post_shape() { # TARGET QUERY
    curl -s -o /dev/null -D "$T/h" -w '%{http_code}' "${AUTH_OPTS[@]}" -X POST \
        "$URL/v2/$1/blobs/uploads/$2"
    echo " $(grep -io '^[a-z-]*:' "$T/h" | tr 'A-Z' 'a-z' | grep -v '^date:' | sort | tr -d '\n')"
}
NOWHERE=sha256:$(printf 'nowhere' | sha256sum | cut -d' ' -f1)

# every (user, source, target, variant) with AUTH_OPTS set by `$1 USER SRC TGT`
mount_matrix() { # LABEL AUTHFN [automatic mount on: 1|0] [target-only token: 1|0]
    local label=$1 authfn=$2 auto=${3:-1} narrow=${4:-0} u s t v d q want got oracle
    for u in alice bob carol admin anon; do
        for s in team/src public/src; do
            for t in team/dst public/dst; do
                "$authfn" "$u" "$s" "$t"
                for v in from none novalue empty; do
                    d=$(fresh_blob "$s")
                    q=$(mount_query "$v" "$d" "$s")
                    if ! may "$u" "$t" push; then
                        if [ "$u" = anon ]; then want=401; else want=403; fi
                    elif may "$u" "$s" pull && [ "$narrow" = 0 ] &&
                        { [ "$v" = from ] || [ "$auto" = 1 ]; }; then
                        want=201
                    else
                        want=202
                    fi
                    got=$(post_shape "$t" "$q")
                    check "$label: $u mounts $s -> $t ($v)" "$want" "${got%% *}"
                    if [ "$want" = 202 ]; then
                        # no existence oracle: the same answer as for a digest that is nowhere
                        oracle=$(post_shape "$t" "$(mount_query "$v" "$NOWHERE" "$s")")
                        check "$label: $u $s -> $t ($v) answers as for no blob" "$oracle" "$got"
                        # and nothing was mounted: the target's owner does not see the blob
                        owner_opts "$t"
                        check "$label: $u $s -> $t ($v) nothing mounted" 404 \
                            "$(curl -s -o /dev/null -w '%{http_code}' -I "${OWNER_OPTS[@]}" \
                                "$URL/v2/$t/blobs/$d")"
                    fi
                done
            done
        done
    done
}
basic_auth() { basic_for "$1"; }
token_auth() { token_for "$1" "repository:$3:pull,push" "repository:$2:pull"; }
token_target_only() { token_for "$1" "repository:$3:pull,push"; }

# ---- 1. mounts, Basic -------------------------------------------------------------------------
ops_start http "$PORT" --config "$T/basic.yaml"
# the issue's case: carol may not read team/x, but mounted alice's blob without from
D=$(fresh_blob team/x)
req GET "/v2/team/x/blobs/$D" -u carol:carolpw
check "carol cannot read team/x" 403 "$STATUS"
req POST "/v2/public/y/blobs/uploads/?mount=$D" -u carol:carolpw
check "carol's automatic mount of a team/x blob falls back" 202 "$STATUS"
req POST "/v2/public/y/blobs/uploads/?mount=$D&from" -u carol:carolpw
check "carol's mount with a valueless from falls back" 202 "$STATUS"
req GET "/v2/public/y/blobs/$D"
check "anyone reading alice's bytes from public/y" 404 "$STATUS"
# bob may pull team/* but push nowhere: refused before any mount
req POST "/v2/team/y/blobs/uploads/?mount=$D" -u bob:bobpw
expect_error "bob may not push" 403 DENIED
mount_matrix basic basic_auth
ops_stop

# ---- 1. mounts, tokens -----------------------------------------------------------------------
ops_start http "$PORT" --config "$T/token.yaml"
MODE=token
D=$(fresh_blob team/x)
token_for carol "repository:public/y:pull,push"
req POST "/v2/public/y/blobs/uploads/?mount=$D" "${AUTH_OPTS[@]}"
check "token: carol's automatic mount falls back" 202 "$STATUS"
req GET "/v2/public/y/blobs/$D" -H "Authorization: Bearer $TOKEN"
check "token: alice's bytes not in public/y" 404 "$STATUS"
mount_matrix token token_auth
# a token that names only the target: nothing to mount from, whatever the rules say
mount_matrix "token for the target only" token_target_only 1 1
ops_stop
MODE=basic

# ---- 1. storage.automatic_mount: false --------------------------------------------------------
{
    cat "$T/basic.yaml"
    echo "storage: {automatic_mount: false}"
} >"$T/nomount.yaml"
ops_start http "$PORT" --config "$T/nomount.yaml"
mount_matrix "automatic mount off" basic_auth 0
ops_stop
# and on an open server (no authentication): automatic mount searches every repository
ops_start http "$PORT"
head -c 300 /dev/urandom >"$T/blob"
D=$(push_blob a/src "$T/blob")
req POST "/v2/b/dst/blobs/uploads/?mount=$D&from="
check "open server: automatic mount with an empty from" 201 "$STATUS"
req GET "/v2/b/dst/blobs/$D"
check "open server: mounted" 200 "$STATUS"
ops_stop
export BERTH_STORAGE_AUTOMATIC_MOUNT=false
ops_start http "$PORT"
unset BERTH_STORAGE_AUTOMATIC_MOUNT
req POST "/v2/c/dst/blobs/uploads/?mount=$D"
check "open server, BERTH_STORAGE_AUTOMATIC_MOUNT=false" 202 "$STATUS"
req POST "/v2/c/dst/blobs/uploads/?mount=$D&from=a/src"
check "open server, mount with from still works" 201 "$STATUS"
ops_stop

finish
