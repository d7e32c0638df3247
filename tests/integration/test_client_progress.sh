#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# berth copy's progress. Not on a terminal: nothing redrawn, one plain line per blob as it
# finishes (digest, size, time, rate) and a summary, all on stderr, stdout keeping only the
# digest; --quiet: nothing. On a terminal (a pty): a line per blob with byte progress, for a
# push too (the upload goes through a proxy that slows it, so progress is seen mid-blob), and
# a total line. No row is wider than the terminal less one column (80 columns: every row
# shown whole; a row that wrapped onto a second one left the cursor-up redraw behind, and an
# 80-column terminal filled with torn rows).
. "$(dirname "$0")/client_lib.sh"

if ! start_berth BS; then
    echo "skip: berth serve does not run"
    exit 77
fi
B=127.0.0.1:$BS_PORT
want=$(make_layout "$WORK/l" v1)

# not a terminal: plain lines
"$BERTH" copy "oci:$WORK/l:v1" "$B/plain/app:v1" >"$WORK/out" 2>"$WORK/err"
expect_eq "$(cat "$WORK/out")" "$want" "stdout is the digest alone"
! grep -q $'\033' "$WORK/err" || fail "escape sequences in non-terminal output"
expect_eq "$(grep -cE '^blob sha256:[0-9a-f]{64}  [0-9.]+ (B|KiB|MiB)  copied in [0-9.]+ s \([0-9.]+ (B|KiB|MiB|GiB)/s\)$' "$WORK/err")" 3 \
    "one line per blob copied"
grep -qE '^copied 3 blobs, [0-9.]+ (B|KiB) in [0-9.]+ s \([0-9.]+ (B|KiB|MiB|GiB)/s\); 0 already at the destination$' \
    "$WORK/err" || fail "summary line: $(cat "$WORK/err")"
expect_eq "$(wc -l <"$WORK/err")" 4 "nothing else on stderr"
"$BERTH" copy "oci:$WORK/l:v1" "$B/plain/app:v1" >/dev/null 2>"$WORK/err"
expect_eq "$(grep -c '  already at the destination$' "$WORK/err")" 3 "present blobs said so"
grep -q '^copied 0 blobs, 0 B in .*; 3 already at the destination$' "$WORK/err" ||
    fail "summary of a copy with nothing to do: $(cat "$WORK/err")"
"$BERTH" copy --quiet "oci:$WORK/l:v1" "$B/quiet/app:v1" >"$WORK/out" 2>"$WORK/err"
[ ! -s "$WORK/out" ] && [ ! -s "$WORK/err" ] || fail "--quiet printed something"

# on a terminal: byte progress of an upload, through a proxy that sends 2 MiB/s
BIG_LAYER=$((6 * 1024 * 1024)) make_layout "$WORK/big" b >/dev/null
big=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"][7:]; m=json.load(open(sys.argv[1]+"/blobs/sha256/"+d)); print(max(m["layers"], key=lambda l: l["size"])["digest"][7:19])' "$WORK/big")
PPORT=$(free_port)
python3 - "$PPORT" "$BS_PORT" >"$WORK/proxy.log" 2>&1 <<'PY' &
import socket, sys, threading, time
lport, uport = int(sys.argv[1]), int(sys.argv[2])
RATE = 2 * 1024 * 1024
def pump(a, b, slow):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
            if slow:
                time.sleep(len(data) / RATE)
    except OSError:
        pass
    finally:
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", lport))
srv.listen(16)
while True:
    c, _ = srv.accept()
    u = socket.create_connection(("127.0.0.1", uport))
    for s in (c, u):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    threading.Thread(target=pump, args=(c, u, True), daemon=True).start()
    threading.Thread(target=pump, args=(u, c, False), daemon=True).start()
PY
PIDS+=($!)
wait_port "$PPORT"
python3 - "$BERTH" "oci:$WORK/big:b" "127.0.0.1:$PPORT/big/app:b" >"$WORK/tty" <<'PY'
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
tr '\r' '\n' <"$WORK/tty" | sed 's/\x1b\[[0-9]*[AK]//g' >"$WORK/tty.txt"
long=$(awk 'length($0) > 79' "$WORK/tty.txt")
[ -z "$long" ] || fail "rows wider than 79 columns on an 80-column terminal: $long"
grep -qE "^$big \[#*\.+\] +[0-9.]+ (KiB|MiB) / 6\.0 MiB " "$WORK/tty.txt" ||
    fail "no byte progress of the upload mid-blob: $(cat "$WORK/tty.txt")"
grep -qE "^$big \[#{20}\] +6\.0 MiB / 6\.0 MiB .* done$" "$WORK/tty.txt" ||
    fail "the upload's last line: $(cat "$WORK/tty.txt")"
grep -qE '^total  3/3 blobs  ' "$WORK/tty.txt" || fail "no total line: $(cat "$WORK/tty.txt")"
expect_eq "$(manifest_digest "$B" big/app b)" "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]+"/index.json"))["manifests"][0]["digest"])' "$WORK/big")" \
    "pushed through the proxy"
echo "ok"
