#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A small fault-injecting HTTP proxy of the tests' own, put in front of an upstream registry.

    proxy_fault.py PORT TARGET_HOSTPORT MODE_FILE LOG_FILE

Every request is written to LOG_FILE as "METHOD PATH" (one line, flushed) before it is answered,
so a test counts what reached the upstream. MODE_FILE is read at every request (absent or empty:
pass through); its first line is one of:

    pass            forward the request
    503             answer 503 with an error document
    429 SECONDS     answer 429 with Retry-After: SECONDS
    close [SECONDS] forward, but for a blob GET send the headers and half the body, then close
    corrupt [SECONDS]
                    forward, but for a blob GET flip one byte of the body (the middle one),
                    after waiting SECONDS when given (so that concurrent pulls meet)
    corrupt_last [SECONDS]
                    the same, flipping the last byte of the body
    stall SECONDS [corrupt_last]
                    forward, but for a blob GET send the headers and half the body, wait
                    SECONDS, then send the rest (with its last byte flipped if asked)
    slow SECONDS    forward, but wait SECONDS before answering a blob GET
    hang SECONDS    wait SECONDS before answering anything (then forward)
"""
import http.client
import http.server
import socketserver
import sys
import threading
import time

PORT, TARGET, MODE_FILE, LOG_FILE = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
LOG_LOCK = threading.Lock()
HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
       "proxy-authorization", "proxy-authenticate", "host"}


def mode():
    try:
        with open(MODE_FILE) as f:
            words = f.readline().split()
    except OSError:
        words = []
    return words or ["pass"]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def log_request_line(self):
        with LOG_LOCK, open(LOG_FILE, "a") as f:
            f.write("%s %s\n" % (self.command, self.path))
            f.flush()

    def error(self, status, code, extra=None):
        body = ('{"errors":[{"code":"%s","message":"injected","detail":{}}]}' % code).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def handle_any(self):
        self.log_request_line()
        m = mode()
        is_blob_get = self.command == "GET" and "/blobs/sha256:" in self.path
        if m[0] == "503":
            return self.error(503, "UNAVAILABLE")
        if m[0] == "429":
            return self.error(429, "TOOMANYREQUESTS", {"Retry-After": m[1] if len(m) > 1 else "1"})
        if (m[0] == "slow" and is_blob_get) or m[0] == "hang":
            time.sleep(float(m[1]))
        if m[0] in ("corrupt", "corrupt_last", "close") and is_blob_get and len(m) > 1:
            time.sleep(float(m[1]))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        conn = http.client.HTTPConnection(TARGET, timeout=60)
        headers = {}
        for k, v in self.headers.items():  # repeated headers (Accept) joined, not dropped
            if k.lower() not in HOP:
                headers[k] = headers[k] + ", " + v if k in headers else v
        conn.request(self.command, self.path, body=body, headers=headers)
        resp = conn.getresponse()
        streamed = is_blob_get and resp.status == 200 and m[0] in ("pass", "slow", "stall")
        data = resp.read() if self.command != "HEAD" and not streamed else b""
        if m[0] == "corrupt" and is_blob_get and resp.status == 200 and data:
            i = len(data) // 2
            data = data[:i] + bytes([data[i] ^ 0xFF]) + data[i + 1:]
        if m[0] == "corrupt_last" and is_blob_get and resp.status == 200 and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                self.send_header(k, v)
        self.end_headers()
        if streamed:
            # the body as it comes (a blob GET): stall once half of it went, when asked
            total = int(resp.getheader("Content-Length") or 0)
            sent, stalled = 0, m[0] != "stall"
            flip = m[0] == "stall" and "corrupt_last" in m[2:]
            try:
                while True:
                    chunk = resp.read(65536)
                    if not chunk:
                        break
                    if not stalled and sent + len(chunk) >= total // 2:
                        i = total // 2 - sent
                        self.wfile.write(chunk[:i])
                        self.wfile.flush()
                        time.sleep(float(m[1]))
                        stalled = True
                        chunk, sent = chunk[i:], sent + i
                    if flip and sent + len(chunk) == total and chunk:
                        chunk = chunk[:-1] + bytes([chunk[-1] ^ 0xFF])
                    self.wfile.write(chunk)
                    sent += len(chunk)
            except OSError:
                self.close_connection = True
            conn.close()
            return
        if m[0] == "close" and is_blob_get and resp.status == 200 and len(data) > 1:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        if data:
            self.wfile.write(data)
        conn.close()

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


Server(("127.0.0.1", PORT), Handler).serve_forever()
