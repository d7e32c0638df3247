# SPDX-License-Identifier: Apache-2.0
# Helpers of the test_ops_*.sh tests, on top of lib.sh: start berth serve on a port chosen
# beforehand (token realms and certificates name it), over http or https, and make a small OCI
# image layout for skopeo and berth copy.

# ops_start SCHEME PORT [serve options...]: start the server, wait until it answers; sets URL,
# HOSTPORT, BERTH_PID, BERTH_LOG. Extra curl options for the probe in OPS_CURL (an array).
ops_start() {
    local scheme=$1 port=$2 i
    shift 2
    BERTH_LOG=$BERTH_TMP/server.log
    "$BERTH" serve --listen "127.0.0.1:$port" --root "$BERTH_TMP/root" "$@" 2>>"$BERTH_LOG" &
    BERTH_PID=$!
    URL=$scheme://127.0.0.1:$port
    HOSTPORT=127.0.0.1:$port
    for i in $(seq 1 100); do
        if curl -sk -o /dev/null "${OPS_CURL[@]}" "$URL/healthz"; then
            return 0
        fi
        if ! kill -0 "$BERTH_PID" 2>/dev/null; then
            break
        fi
        sleep 0.05
    done
    echo "could not start berth serve:" >&2
    cat "$BERTH_LOG" >&2
    exit 1
}
OPS_CURL=()

# ops_stop: stop the server started by ops_start (by its PID)
ops_stop() {
    if [ -n "$BERTH_PID" ]; then
        kill "$BERTH_PID" 2>/dev/null
        wait "$BERTH_PID" 2>/dev/null
        BERTH_PID=""
    fi
}

# ops_layout DIR TAG: an OCI image layout with one small image under TAG
ops_layout() {
    python3 - "$1" "$2" <<'PY'
import hashlib, json, os, sys
d, tag = sys.argv[1], sys.argv[2]
os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b)}
layer = dict(put(os.urandom(3000)), mediaType="application/vnd.oci.image.layer.v1.tar+gzip")
cfg = {"architecture": "amd64", "os": "linux",
       "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
config = dict(put(json.dumps(cfg).encode()), mediaType="application/vnd.oci.image.config.v1+json")
m = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
     "config": config, "layers": [layer]}
desc = dict(put(json.dumps(m).encode()), mediaType="application/vnd.oci.image.manifest.v1+json",
            annotations={"org.opencontainers.image.ref.name": tag})
open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
json.dump({"schemaVersion": 2, "manifests": [desc]}, open(d + "/index.json", "w"))
PY
}

# ops_push_image USERPASS REPO TAG: push a tiny image with curl (-u USERPASS unless empty)
ops_push_image() {
    local auth=() cfg layer d m
    [ -n "$1" ] && auth=(-u "$1")
    cfg=$BERTH_TMP/pi.cfg
    layer=$BERTH_TMP/pi.layer
    m=$BERTH_TMP/pi.manifest
    echo '{"architecture":"amd64","os":"linux"}' >"$cfg"
    head -c 500 /dev/urandom >"$layer"
    for f in "$cfg" "$layer"; do
        d=$(sha256_file "$f")
        curl -sk "${auth[@]}" -o /dev/null -X POST --data-binary "@$f" \
            -H 'Content-Type: application/octet-stream' "$URL/v2/$2/blobs/uploads/?digest=$d"
    done
    make_manifest "$cfg" "$layer" "$m"
    curl -sk "${auth[@]}" -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$m" \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$URL/v2/$2/manifests/$3"
}

# sec_users_setup: the users and rules of the security tests in $T (= $BERTH_TMP), and PORT:
# alice pull/push team/*, bob pull team/*, carol pull/push public/*, anonymous pull public/*,
# admin pull/push *. Writes htpasswd (password: <user>pw), rules.yaml, basic.yaml (Basic auth)
# and token.yaml (berth's own token endpoint on PORT).
sec_users_setup() {
    T=$BERTH_TMP
    : >"$T/htpasswd"
    for u in alice bob carol admin; do
        htpasswd -Bbn "$u" "${u}pw" | head -n 1 >>"$T/htpasswd"
    done
    PORT=$(free_port)
    cat >"$T/rules.yaml" <<'Y'
access:
  - repositories: "team/*"
    users: [alice]
    actions: [pull, push]
  - repositories: "team/*"
    users: [bob]
    actions: [pull]
  - repositories: "public/*"
    users: [carol]
    actions: [pull, push]
  - repositories: "public/*"
    anonymous: true
    actions: [pull]
  - repositories: "*"
    users: [admin]
    actions: [pull, push]
Y
    {
        cat "$T/rules.yaml"
        echo "auth: {htpasswd: $T/htpasswd}"
    } >"$T/basic.yaml"
    openssl ecparam -genkey -name prime256v1 -noout -out "$T/token.pem" 2>/dev/null
    {
        cat "$T/rules.yaml"
        cat <<Y
auth:
  htpasswd: $T/htpasswd
  token:
    realm: http://127.0.0.1:$PORT/token
    service: berth-test
    private_key: $T/token.pem
Y
    } >"$T/token.yaml"
}
