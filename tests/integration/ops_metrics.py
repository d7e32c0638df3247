# SPDX-License-Identifier: Apache-2.0
# Helpers of test_ops_metrics.sh: parse Prometheus text and print one sample or a delta.
#   ops_metrics.py value FILE 'name{labels}'          -> the value (0 when absent)
#   ops_metrics.py delta BEFORE AFTER 'name{labels}'  -> after - before
import re
import sys

LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$')


def load(path):
    samples = {}
    for line in open(path):
        line = line.strip()
        if not line or line.startswith('#'):
            continue
        m = LINE.match(line)
        if not m:
            raise SystemExit('unparsable line: %r' % line)
        labels = m.group(2) or ''
        if labels:
            pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
            labels = '{' + ','.join('%s="%s"' % p for p in pairs) + '}'
        samples[m.group(1) + labels] = float(m.group(3))
    return samples


def norm(key):
    m = re.match(r'^([^{]+)(\{.*\})?$', key)
    labels = m.group(2) or ''
    if labels:
        pairs = sorted(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', labels))
        labels = '{' + ','.join('%s="%s"' % p for p in pairs) + '}'
    return m.group(1) + labels


def fmt(v):
    return str(int(v)) if v == int(v) else repr(v)


if sys.argv[1] == 'value':
    print(fmt(load(sys.argv[2]).get(norm(sys.argv[3]), 0.0)))
elif sys.argv[1] == 'delta':
    k = norm(sys.argv[4])
    print(fmt(load(sys.argv[3]).get(k, 0.0) - load(sys.argv[2]).get(k, 0.0)))
