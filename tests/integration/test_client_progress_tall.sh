#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# berth copy's progress on a 24-row terminal, for an image whose first layer is big and the
# next forty small: the small ones finish while the big one is in flight. The block the
# redraw goes back over holds the blobs in flight and the total line, not every blob after the
# first unfinished one: before, it grew to 40 rows, the cursor could not go back over more
# than the screen, and each redraw left copies of the rows behind (211 "done" rows for 42
# blobs in tmux). Now every blob's "done" row is written once.
. "$(dirname "$0")/client_lib.sh"

if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT
python3 - "$WORK/l" <<'PY'
import hashlib, json, os, sys
d = sys.argv[1]
os.makedirs(d + "/blobs/sha256", exist_ok=True)
def put(b):
    h = hashlib.sha256(b).hexdigest()
    open(f"{d}/blobs/sha256/{h}", "wb").write(b)
    return {"digest": "sha256:" + h, "size": len(b),
            "mediaType": "application/vnd.oci.image.layer.v1.tar"}
layers = [put(os.urandom(100 << 20))] + [put(os.urandom(20000 + i)) for i in range(40)]
cfg = put(json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers",
          "diff_ids": [l["digest"] for l in layers]}}).encode())
cfg["mediaType"] = "application/vnd.oci.image.config.v1+json"
m = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": cfg, "layers": layers}).encode())
m["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
m["annotations"] = {"org.opencontainers.image.ref.name": "v1"}
json.dump({"imageLayoutVersion": "1.0.0"}, open(d + "/oci-layout", "w"))
json.dump({"schemaVersion": 2, "manifests": [m]}, open(d + "/index.json", "w"))
PY
# on_tty DST [copy options]: the copy on a 24x80 pty, its output in $WORK/tty
on_tty() {
python3 - "$BERTH" "oci:$WORK/l:v1" "$@" >"$WORK/tty" <<'PY'
import fcntl, os, pty, struct, sys, termios
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    os.environ["TERM"] = "xterm"
    os.execv(sys.argv[1], [sys.argv[1], "copy"] + sys.argv[2:])
out = b""
while True:
    try:
        chunk = os.read(fd, 65536)
    except OSError:
        break
    if not chunk:
        break
    out += chunk
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode("utf-8", "replace"))
sys.exit(os.WEXITSTATUS(status))
PY
}
# check_tty WHAT: the block never taller than the screen, each blob done once
check_tty() {
up=$(grep -o $'\033\\[[0-9]*A' "$WORK/tty" | tr -dc '0-9\n' | sort -n | tail -n 1)
[ -n "$up" ] || fail "no redraw at all: $(head -c 2000 "$WORK/tty" | cat -A)"
[ "$up" -le 23 ] || fail "$1: the redraw went back over $up rows on a 24-row terminal"
tr '\r' '\n' <"$WORK/tty" | sed 's/\x1b\[[0-9]*[AK]//g' >"$WORK/tty.txt"
expect_eq "$(grep -c ' done$' "$WORK/tty.txt")" 42 "$1: one done row per blob"
grep '^total ' "$WORK/tty.txt" | tail -n 1 | grep -q '^total  42/42 blobs' ||
    fail "$1: the last total line: $(grep '^total ' "$WORK/tty.txt" | tail -n 1)"
}
on_tty "$B/tall/app:v1"
check_tty "4 jobs"
# more jobs than rows: the blobs in flight beyond the screen are counted in one row
on_tty "$B/tall/jobs:v1" --jobs 40
check_tty "40 jobs"
echo "ok"
