#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Credentials of the berth client as podman and skopeo keep them: skopeo login writes the auth
# file and berth reads it; berth login writes it (podman's format, mode 0600) and skopeo reads
# it; berth logout; the order of the files (REGISTRY_AUTH_FILE alone, else
# $XDG_RUNTIME_DIR/containers/auth.json, ~/.config/containers/auth.json, $DOCKER_CONFIG or
# ~/.docker); docker credential helpers (credHelpers, credsStore) run from PATH; and a bearer
# token renewed before it expires (a python registry whose tokens live 2 s, during a copy of
# several seconds).
. "$(dirname "$0")/client_lib.sh"

command -v htpasswd >/dev/null || { echo "skip: htpasswd (apache2-utils) missing"; exit 77; }
command -v skopeo >/dev/null || { echo "skip: skopeo missing"; exit 77; }
export HOME="$WORK/home" XDG_RUNTIME_DIR="$WORK/run"
unset REGISTRY_AUTH_FILE DOCKER_CONFIG XDG_CONFIG_HOME
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$WORK/bin"
RUNFILE=$XDG_RUNTIME_DIR/containers/auth.json
CFGFILE=$HOME/.config/containers/auth.json
DOCKERFILE=$HOME/.docker/config.json

htpasswd -Bbn alice s3cret >"$WORK/htpasswd"
port=$(free_port)
mkdir -p "$WORK/srv"
"$BERTH" serve --listen "127.0.0.1:$port" --root "$WORK/srv/root" \
    --config <(echo "auth: {htpasswd: $WORK/htpasswd}") >"$WORK/srv/log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/v2/" && break
    sleep 0.1
done
H=127.0.0.1:$port
make_layout "$WORK/l1" v1 >/dev/null
"$BERTH" copy --quiet --user alice --password s3cret "oci:$WORK/l1:v1" "$H/sec/app:v1" ||
    fail "push with --user"

# tags_ok [berth options...]: `berth tags` of sec/app lists v1
tags_ok() {
    grep -qx v1 <<<"$("$BERTH" tags "$@" "$H/sec/app" 2>"$WORK/tags.err")"
}
auth_b64() { printf '%s' "$1" | base64 | tr -d '\n'; }
write_auth() { # FILE USER:PASSWORD
    mkdir -p "$(dirname "$1")"
    printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$H" "$(auth_b64 "$2")" >"$1"
}

# 1. skopeo login writes $XDG_RUNTIME_DIR/containers/auth.json; berth reads it
tags_ok && fail "anonymous tags worked"
grep -q 'asks for credentials' "$WORK/tags.err" || fail "anonymous message: $(cat "$WORK/tags.err")"
skopeo login --tls-verify=false -u alice -p s3cret "$H" >/dev/null 2>"$WORK/sk.err" ||
    fail "skopeo login: $(cat "$WORK/sk.err")"
[ -f "$RUNFILE" ] || fail "skopeo login wrote no $RUNFILE"
tags_ok || fail "berth after skopeo login: $(cat "$WORK/tags.err")"
skopeo logout "$H" >/dev/null 2>&1
tags_ok && fail "berth still logged in after skopeo logout"

# 2. berth login writes the same file, podman's format, mode 0600; skopeo reads it
out=$(echo s3cret | "$BERTH" login --username alice --password-stdin "$H") ||
    fail "berth login: $out"
expect_eq "$out" "Login Succeeded!" "berth login output"
expect_eq "$(stat -c %a "$RUNFILE")" 600 "auth file mode"
expect_eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["auths"][sys.argv[2]]["auth"])' "$RUNFILE" "$H")" \
    "$(auth_b64 alice:s3cret)" "auth file entry"
grep -q '"v1"' <<<"$(skopeo list-tags --tls-verify=false "docker://$H/sec/app" 2>"$WORK/sk.err")" ||
    fail "skopeo after berth login: $(cat "$WORK/sk.err")"
tags_ok || fail "berth after berth login: $(cat "$WORK/tags.err")"

# a wrong password: exit 1, the file unchanged
before=$(sha256sum "$RUNFILE")
set +e
echo wrong | "$BERTH" login -u alice --password-stdin "$H" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "login with a wrong password: exit status"
grep -q 'refused the credentials' "$WORK/err" || fail "wrong password message: $(cat "$WORK/err")"
expect_eq "$(sha256sum "$RUNFILE")" "$before" "auth file after a refused login"
# no password and no terminal: a usage error
set +e
"$BERTH" login -u alice "$H" </dev/null >/dev/null 2>&1
rc=$?
set -e
expect_eq "$rc" 2 "login without a password and without a terminal"

# the file's other members stay; login to a second registry adds an entry
python3 - "$RUNFILE" <<'PY'
import json, sys
j = json.load(open(sys.argv[1])); j["auths"]["other.example"] = {"auth": "eDp5"}; j["credHelpers"] = {"x.example": "none"}
json.dump(j, open(sys.argv[1], "w"))
PY
echo s3cret | "$BERTH" login -u alice --password-stdin "$H" >/dev/null || fail "second login"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert "other.example" in j["auths"] and j["credHelpers"]=={"x.example":"none"}' \
    "$RUNFILE" || fail "login dropped other members: $(cat "$RUNFILE")"

# 3. logout
expect_eq "$("$BERTH" logout "$H")" "Removed login credentials for $H" "logout output"
tags_ok && fail "tags after logout worked"
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert "other.example" in j["auths"]' \
    "$RUNFILE" || fail "logout removed other entries"
set +e
"$BERTH" logout "$H" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "logout when not logged in"
"$BERTH" logout --all >/dev/null || fail "logout --all"
expect_eq "$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["auths"]))' "$RUNFILE")" 0 \
    "entries after logout --all"

# 4. --authfile and REGISTRY_AUTH_FILE
echo s3cret | "$BERTH" login -u alice --password-stdin --authfile "$WORK/af.json" "$H" >/dev/null ||
    fail "login --authfile"
tags_ok --authfile "$WORK/af.json" || fail "tags --authfile: $(cat "$WORK/tags.err")"
REGISTRY_AUTH_FILE=$WORK/af.json tags_ok || fail "REGISTRY_AUTH_FILE: $(cat "$WORK/tags.err")"
REGISTRY_AUTH_FILE=$WORK/af.json skopeo list-tags --tls-verify=false "docker://$H/sec/app" \
    >/dev/null 2>&1 || fail "skopeo with berth's --authfile file"

# 5. the order of the files: the first file that knows the registry answers
rm -f "$RUNFILE"
write_auth "$CFGFILE" alice:s3cret
write_auth "$DOCKERFILE" alice:wrong
tags_ok || fail "~/.config/containers/auth.json before ~/.docker/config.json: $(cat "$WORK/tags.err")"
write_auth "$RUNFILE" alice:wrong
tags_ok && fail "\$XDG_RUNTIME_DIR/containers/auth.json did not come first"
rm -f "$RUNFILE" "$CFGFILE"
tags_ok && fail "~/.docker/config.json (wrong) was not used"
write_auth "$WORK/dc/config.json" alice:s3cret
DOCKER_CONFIG=$WORK/dc tags_ok || fail "DOCKER_CONFIG replaces ~/.docker: $(cat "$WORK/tags.err")"
# REGISTRY_AUTH_FILE is read alone
write_auth "$RUNFILE" alice:s3cret
echo '{"auths":{}}' >"$WORK/empty.json"
REGISTRY_AUTH_FILE=$WORK/empty.json tags_ok && fail "REGISTRY_AUTH_FILE was not read alone"
REGISTRY_AUTH_FILE=$WORK/af.json tags_ok || fail "REGISTRY_AUTH_FILE before the rest"
# --user beats every file
write_auth "$RUNFILE" alice:wrong
tags_ok --user alice --password s3cret || fail "--user did not win over the files"
rm -f "$RUNFILE" "$DOCKERFILE"

# 6. docker credential helpers from PATH: credHelpers, then credsStore
cat >"$WORK/bin/docker-credential-berthtest" <<SH
#!/bin/sh
[ "\$1" = get ] || exit 1
read -r server
echo "get \$server" >>"$WORK/helper.log"
if [ "\$server" = "$H" ]; then
    printf '{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}\n' "\$server"
else
    echo "credentials not found in native keychain"
    exit 1
fi
SH
chmod +x "$WORK/bin/docker-credential-berthtest"
export PATH="$WORK/bin:$PATH"
mkdir -p "$HOME/.docker"
printf '{"credHelpers":{"%s":"berthtest"}}\n' "$H" >"$DOCKERFILE"
: >"$WORK/helper.log"
"$BERTH" copy --quiet "$H/sec/app:v1" "oci:$WORK/out:v1" 2>"$WORK/err" ||
    fail "copy with credHelpers: $(cat "$WORK/err")"
expect_eq "$(cat "$WORK/helper.log")" "get $H" "the helper ran once, asked for the registry"
printf '{"auths":{"%s":{}},"credsStore":"berthtest"}\n' "$H" >"$DOCKERFILE"
tags_ok || fail "credsStore: $(cat "$WORK/tags.err")"
# a helper in auth.json (podman writes credHelpers there too) comes before ~/.docker
mkdir -p "$(dirname "$CFGFILE")"
printf '{"credHelpers":{"%s":"missing-helper"}}\n' "$H" >"$CFGFILE"
tags_ok && fail "credHelpers of ~/.config/containers/auth.json not used first"
grep -q 'docker-credential-missing-helper' "$WORK/tags.err" ||
    fail "missing helper message: $(cat "$WORK/tags.err")"
rm -f "$CFGFILE" "$DOCKERFILE"

# 7. a token that lives 2 s: renewed before it expires during a copy of about 4 s
BIG_LAYER=$((300 * 1024)) make_layout "$WORK/l2" v1 >/dev/null
start_fake TTL "$WORK/l2" --token --ttl 2 --slow
T=127.0.0.1:$TTL_PORT
"$BERTH" copy --quiet --jobs 1 "$T/some/repo:v1" "oci:$WORK/ttl:v1" 2>"$WORK/err" ||
    fail "copy with short tokens: $(cat "$WORK/err")"
stats=$(curl -s "http://$T/stats")
expect_eq "$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["expired"])')" 0 \
    "requests made with an expired token"
n=$(echo "$stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token_requests"])')
[ "$n" -ge 2 ] || fail "the token was not renewed ($n token requests)"

# 8. berth serve with its own token issuer (tokens of 2 s): berth login goes through the token
#    flow (a wrong password refused at /token), and a push of several seconds renews its token
#    (the server accepts a token up to 60 s past its end, so only the /token requests show it)
openssl ecparam -genkey -name prime256v1 -noout -out "$WORK/token.pem" 2>/dev/null
tport=$(free_port)
mkdir -p "$WORK/tsrv"
cat >"$WORK/tsrv/config.yaml" <<Y
auth:
  htpasswd: $WORK/htpasswd
  token:
    realm: http://127.0.0.1:$tport/token
    private_key: $WORK/token.pem
    lifetime: 2s
Y
"$BERTH" serve --listen "127.0.0.1:$tport" --root "$WORK/tsrv/root" \
    --config "$WORK/tsrv/config.yaml" >"$WORK/tsrv/log" 2>&1 &
PIDS+=($!)
wait_port "$tport"
TS=127.0.0.1:$tport
set +e
echo wrong | "$BERTH" login -u alice --password-stdin "$TS" >/dev/null 2>"$WORK/err"
rc=$?
set -e
expect_eq "$rc" 1 "login through the token flow with a wrong password"
echo s3cret | "$BERTH" login -u alice --password-stdin "$TS" >/dev/null ||
    fail "login through the token flow"
start_fake SLOW "$WORK/l2" --slow
: >"$WORK/tsrv/log"
"$BERTH" copy --quiet --jobs 1 "127.0.0.1:$SLOW_PORT/src/app:v1" "$TS/tok/app:v1" 2>"$WORK/err" ||
    fail "push to berth serve with 2 s tokens: $(cat "$WORK/err")"
n=$(grep -c 'GET /token?.*scope=repository%3Atok%2Fapp%3Apull%2Cpush' "$WORK/tsrv/log" || true)
[ "$n" -ge 2 ] || fail "no token renewal against berth serve ($n push tokens): $(grep /token "$WORK/tsrv/log")"
echo "ok"
