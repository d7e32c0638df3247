#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# `berth inspect --config` of a hostile image (its config holds raw ESC, BEL, CR and a C1 CSI)
# shows the control bytes as \u00XX on a terminal (the screen cannot be retitled or cleared;
# JSON stays JSON), and keeps the bytes exact off a terminal (scripts pipe them), with --raw
# and without.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs the berth binary"
    exit 77
fi
T=$BERTH_TMP
# two layouts: a config that is not JSON, and a JSON config with the bytes inside a string
python3 - "$T" <<'PY'
import hashlib, json, os, sys
t = sys.argv[1]
def layout(d, cfg):
    os.makedirs(d + "/blobs/sha256", exist_ok=True)
    def put(b):
        h = hashlib.sha256(b).hexdigest()
        open(f"{d}/blobs/sha256/{h}", "wb").write(b)
        return {"digest": "sha256:" + h, "size": len(b)}
    layer = put(b"layer")
    layer["mediaType"] = "application/vnd.oci.image.layer.v1.tar"
    c = put(cfg)
    c["mediaType"] = "application/vnd.oci.image.config.v1+json"
    m = put(json.dumps({"schemaVersion": 2,
                        "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": c, "layers": [layer]}).encode())
    m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
    m["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
    json.dump({"imageLayoutVersion": "1.0.0"}, open(d + "/oci-layout", "w"))
    json.dump({"schemaVersion": 2, "manifests": [m]}, open(d + "/index.json", "w"))
raw = b"\x1b]0;owned\x07not json\r\x1b[2J\xc2\x9b31m end"
open(t + "/raw.bin", "wb").write(raw)
layout(t + "/bad", raw)
js = b'{"Labels":{"x":"\x1b[2J\xc2\x9bred\x07 ok"}}'
open(t + "/js.bin", "wb").write(js)
layout(t + "/js", js)
PY
# on_tty OUT ARGS...: run berth with its stdout on a pseudo-terminal, the bytes into OUT
on_tty() {
    python3 - "$@" <<'PY'
import os, pty, subprocess, sys
out, args = sys.argv[1], sys.argv[2:]
master, slave = pty.openpty()
p = subprocess.Popen([os.environ["BERTH"]] + args, stdout=slave, stderr=subprocess.DEVNULL)
os.close(slave)
data = b""
while True:
    try:
        chunk = os.read(master, 65536)
    except OSError:
        break
    if not chunk:
        break
    data += chunk
p.wait()
open(out, "wb").write(data.replace(b"\r\n", b"\n"))  # the terminal's ONLCR
sys.exit(p.returncode)
PY
}
export BERTH
ctl() { python3 -c 'import re,sys; d=open(sys.argv[1],"rb").read(); print(len(re.findall(rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]", d)))' "$1"; }

for mode in "" --raw; do
    on_tty "$T/tty" inspect "oci:$T/bad:v1" --config $mode
    check "not JSON, $mode on a terminal: exit" 0 "$?"
    check "not JSON, $mode on a terminal: no control byte" 0 "$(ctl "$T/tty")"
    check "not JSON, $mode on a terminal: shown escaped" 1 \
        "$(grep -c -F '\u001b]0;owned\u0007not json\u000d\u001b[2J\u009b31m end' "$T/tty")"
    "$BERTH" inspect "oci:$T/bad:v1" --config $mode >"$T/pipe"
    head -c "$(stat -c %s "$T/raw.bin")" "$T/pipe" >"$T/pipe.head"
    check "not JSON, $mode piped: exact bytes" "" "$(cmp "$T/pipe.head" "$T/raw.bin")"
done
on_tty "$T/tty" inspect "oci:$T/js:v1" --config
check "JSON on a terminal: no control byte" 0 "$(ctl "$T/tty")"
check "JSON on a terminal: still JSON with the same string" '\x1b[2J\xc2\x9bred\x07 ok' \
    "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(repr(d["Labels"]["x"].encode())[2:-1])' "$T/tty")"
"$BERTH" inspect "oci:$T/js:v1" --config --raw >"$T/pipe"
check "JSON --raw piped: exact bytes" "" "$(cmp "$T/pipe" "$T/js.bin")"
finish
