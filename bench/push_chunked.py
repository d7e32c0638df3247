#!/usr/bin/env python3
"""Push one blob in PATCHes over one keep-alive connection, as registry clients do.

usage: push_chunked.py BASE REPO DIGEST FILE CHUNK_MIB
Prints the seconds from the POST to the PUT's 201. Each chunk is read before its PATCH starts,
so the time is the registry's and the connection's, not the disk's or a process start's.
"""
import http.client
import sys
import time
import urllib.parse


def main():
    base, repo, digest, path, chunk_mib = sys.argv[1:6]
    chunk = int(chunk_mib) << 20
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80)
    chunks = []
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            chunks.append(b)

    def request(method, url, body=None, headers=None):
        conn.request(method, url, body=body, headers=headers or {})
        r = conn.getresponse()
        r.read()
        if r.status not in (201, 202):
            sys.exit(f"{method} {url}: {r.status}")
        loc = r.getheader("Location")
        if loc and loc.startswith("http"):
            s = urllib.parse.urlsplit(loc)
            loc = s.path + ("?" + s.query if s.query else "")
        return loc

    t0 = time.monotonic()
    loc = request("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    off = 0
    for b in chunks:
        loc = request("PATCH", loc, body=b, headers={
            "Content-Type": "application/octet-stream",
            "Content-Range": f"{off}-{off + len(b) - 1}",
            "Content-Length": str(len(b))})
        off += len(b)
    sep = "&" if "?" in loc else "?"
    request("PUT", f"{loc}{sep}digest={urllib.parse.quote(digest)}",
            headers={"Content-Length": "0"})
    print(f"{time.monotonic() - t0:.6f}")


if __name__ == "__main__":
    main()
