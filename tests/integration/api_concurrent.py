#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Open N connections to a berth server at once, send a request on each, and check that every
# one is answered with 200. Usage: api_concurrent.py HOST PORT PATH N
import socket
import sys
import threading

host, port, path, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
results = []
lock = threading.Lock()
socks = []
for _ in range(n):
    socks.append(socket.create_connection((host, port), timeout=30))


def run(s):
    status = b""
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        buf = b""
        while True:
            data = s.recv(65536)
            if not data:
                break
            buf += data
        status = buf[:12]
    except OSError as e:
        status = str(e).encode()
    finally:
        s.close()
    with lock:
        results.append(status)


threads = [threading.Thread(target=run, args=(s,)) for s in socks]
for t in threads:
    t.start()
for t in threads:
    t.join()
good = sum(1 for r in results if r == b"HTTP/1.1 200")
print("%d/%d answered 200" % (good, n))
sys.exit(0 if good == n else 1)
