#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Names for a `perf record -g` of a stripped Go program (Debian's skopeo), from the binary's own
# .gopclntab (Go 1.18+ layout), and the self and inclusive shares of the samples:
#
#   perf record -g -o skopeo.perf -- skopeo copy ...
#   perf script -i skopeo.perf -F ip,sym,dso | bench/go_perf_symbols.py [/usr/bin/skopeo]
#
# perf prints the program's addresses relative to its first mapping (0x400000 for a non-PIE
# Go binary), which is added back here.
import bisect, collections, struct, sys

binary = sys.argv[1] if len(sys.argv) > 1 else "/usr/bin/skopeo"
BASE = 0x400000


def load(path):
    data = open(path, "rb").read()
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
    stro = secs[shstrndx][4]
    name = lambda n: data[stro + n:data.index(b"\0", stro + n)].decode()
    sec = {name(s[0]): s for s in secs}[".gopclntab"]
    p = data[sec[4]:sec[4] + sec[5]]
    nfunc, _, text, names, _, _, _, functab = struct.unpack_from("<QQQQQQQQ", p, 8)
    out = []
    for i in range(nfunc):
        entry, off = struct.unpack_from("<II", p, functab + 8 * i)
        s = names + struct.unpack_from("<i", p, functab + off + 4)[0]
        out.append((text + entry, p[s:p.index(b"\0", s)].decode(errors="replace")))
    out.sort()
    return [a for a, _ in out], [n for _, n in out]


addrs, names = load(binary)
prog = "(" + binary + ")"


def sym(a):
    i = bisect.bisect_right(addrs, a) - 1
    return names[i] if i >= 0 else "?"


selfc, incl, total, stack = collections.Counter(), collections.Counter(), 0, []


def flush():
    global total
    if stack:
        total += 1
        selfc[stack[0]] += 1
        for f in set(stack):
            incl[f] += 1


for line in sys.stdin:
    if not line.strip():
        flush()
        stack = []
        continue
    parts = line.split()
    try:
        a = int(parts[0], 16)
    except (ValueError, IndexError):
        continue
    if prog in line:
        stack.append(sym(a + BASE))
    elif "[kernel" in line:
        stack.append("[k] " + parts[1].split("+")[0])
    else:
        stack.append(parts[1].split("+")[0] + " " + parts[-1])
flush()
print(f"samples: {total}")
print("--- self")
for f, c in selfc.most_common(20):
    print(f"{c * 100 / total:5.1f}% {f}")
print("--- inclusive")
for f, c in incl.most_common(40):
    print(f"{c * 100 / total:5.1f}% {f}")
