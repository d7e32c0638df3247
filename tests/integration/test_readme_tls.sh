#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The README's "TLS and passwords with the berth client alone" block, run as a new user would
# (its own HOME, nothing installed system-wide): the commands are taken from README.md, with
# the binary's path, a free port instead of 5443, and the password given on stdin instead of
# the terminal.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
README=$(dirname "$0")/../../README.md
T=$BERTH_TMP/readme
mkdir -p "$T/home"
port=$(free_port)
# the block: from the section's first ```sh to its closing ```
awk '/^### TLS and passwords with the berth client alone/ {s=1} s && /^```sh/ {b=1; next}
     b && /^```/ {exit} b {print}' "$README" >"$T/block.sh"
check "README has the block" yes "$(grep -q 'berth login' "$T/block.sh" && echo yes)"
sed -i -e 's|[[:space:]][[:space:]]*# .*$||' -e "s|build/berth|\"$BERTH\"|g" -e "s|5443|$port|g" \
    -e 's|login -u alice \(.*\)$|login -u alice --password-stdin \1 <<<"a long password"|' \
    -e 's|^\(.*serve .*\) &$|\1 >serve.log 2>\&1 \& echo $! >serve.pid; sleep 1|' "$T/block.sh"
# an OCI layout `my-layout` with one image tagged v1, as the block expects
python3 - "$T/my-layout" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
os.makedirs(d + "/blobs/sha256")
def put(b, mt):
    h = hashlib.sha256(b).hexdigest()
    open(d + "/blobs/sha256/" + h, "wb").write(b)
    return {"mediaType": mt, "digest": "sha256:" + h, "size": len(b)}
layer = put(os.urandom(1000), "application/vnd.oci.image.layer.v1.tar")
cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
          "diff_ids": [layer["digest"]]}}).encode(), "application/vnd.oci.image.config.v1+json")
m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": cfg, "layers": [layer]}).encode(), "application/vnd.oci.image.manifest.v1+json")
m["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
json.dump({"schemaVersion": 2, "manifests": [m]}, open(d + "/index.json", "w"))
open(d + "/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
out=$(cd "$T" && HOME=$T/home XDG_RUNTIME_DIR= XDG_CONFIG_HOME= REGISTRY_AUTH_FILE= \
    DOCKER_CONFIG= bash -e "$T/block.sh" 2>"$T/err")
rc=$?
BERTH_PID=$(cat "$T/serve.pid" 2>/dev/null)
check "the README's block runs" 0 "$rc"
[ "$rc" = 0 ] || cat "$T/err" >&2
check "the block's tags command lists v1" yes "$(grep -qx v1 <<<"$out" && echo yes)"
check "login wrote podman's auth file, then logout emptied it" '{}' \
    "$(python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1])).get("auths")))' \
        "$T/home/.config/containers/auth.json" 2>/dev/null)"
check "without the CA the registry is refused" 1 \
    "$(cd "$T" && HOME=$T/home/none "$BERTH" tags --user alice --password 'a long password' \
        "127.0.0.1:$port/my/app" >/dev/null 2>&1; echo $?)"
finish
