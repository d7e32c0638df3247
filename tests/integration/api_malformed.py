#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Write malformed and hostile HTTP straight to the socket of a berth server; every exchange
# must end (answer or close) without the server dying. Usage: api_malformed.py HOST PORT
import socket
import sys

host, port = sys.argv[1], int(sys.argv[2])

CASES = [
    b"\r\n\r\n",
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/9.9\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\n\r\n",  # no Host
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
    b"GET /v2/" + b"a/" * 5000 + b"manifests/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/a/manifests/" + b"x" * 70000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/a/manifests/%zz%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/a/../../etc/passwd/manifests/x HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/a/blobs/sha256:" + b"0" * 64 + b" HTTP/1.1\r\nHost: x\r\nRange: bytes=9-1,,\r\n\r\n",
    b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{",
    b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"PATCH /v2/a/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Range: 5-1\r\nContent-Length: 1\r\n\r\nx",
    b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc",  # short body
    b"BREW /v2/ HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"y" * 200000 + b"\r\n\r\n",
    bytes(range(256)) * 4,
]

for i, payload in enumerate(CASES):
    s = socket.create_connection((host, port), timeout=5)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while True:
            data = s.recv(65536)
            if not data:
                break
    except OSError:  # reset, broken pipe, not connected, timeout: all fine
        pass
    finally:
        s.close()

# an endless chunked manifest is cut off, not drained forever
s = socket.create_connection((host, port), timeout=20)
s.sendall(b"PUT /v2/a/manifests/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
chunk = b"x" * 65536
sent = 0
try:
    while sent < 256 * 1024 * 1024:
        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
        sent += len(chunk)
    print("a 256 MiB chunked manifest was read to the end")
    sys.exit(1)
except OSError:
    pass
finally:
    s.close()

# the server still answers
s = socket.create_connection((host, port), timeout=5)
s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
resp = b""
while True:
    data = s.recv(65536)
    if not data:
        break
    resp += data
s.close()
if not resp.startswith(b"HTTP/1.1 200"):
    print("server did not answer after malformed input: %r" % resp[:100])
    sys.exit(1)
print("ok")
