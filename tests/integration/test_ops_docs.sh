#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# What a new user reads matches what berth does: the README opens with `make serve` and `make
# check` and says LISTEN/ROOT exist; no document points outside the repository; `make serve`
# installs only the build packages and builds only the berth binary; every configuration key
# and every metric is documented in docs/operations.md; docs/coming-from.md maps Distribution's
# and zot's commands.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$BERTH_TMP

check "README opens with the two commands" "$(printf '```\nmake serve\nmake check\n```')" \
    "$(head -n 4 "$SRC/README.md" | sed 's/ *#.*$//')"
if grep -q 'make serve LISTEN=.* ROOT=' "$SRC/README.md"; then ok; else fail "README: LISTEN/ROOT"; fi
if grep -n '\.\./shared' "$SRC/README.md" "$SRC"/docs/*.md; then
    fail "documents point outside the repository"
else
    ok
fi

# make serve: setup --serve, the berth target only, no tests
out=$(make -s -n -C "$SRC" serve BUILD="$T/b" LISTEN=127.0.0.1:1 ROOT="$T/r")
if grep -q 'setup.sh --serve' <<<"$out"; then ok; else fail "make serve runs setup --serve: $out"; fi
if grep -q -- '--target berth' <<<"$out"; then ok; else fail "make serve builds berth only: $out"; fi
if grep -q 'BERTH_TESTS=OFF' <<<"$out"; then ok; else fail "make serve configures no tests: $out"; fi
if grep -q 'ctest' <<<"$out"; then fail "make serve runs tests"; else ok; fi
# the packages setup --serve would install (a fake dpkg-query: nothing installed; not root)
mkdir -p "$T/bin"
printf '#!/bin/sh\nexit 1\n' >"$T/bin/dpkg-query"
printf '#!/bin/sh\necho 1000\n' >"$T/bin/id"
chmod +x "$T/bin/dpkg-query" "$T/bin/id"
pkgs=$(PATH="$T/bin:$PATH" sh "$SRC/scripts/setup.sh" --serve 2>&1)
if grep -q 'libmicrohttpd-dev' <<<"$pkgs"; then ok; else fail "serve packages: $pkgs"; fi
for p in skopeo umoci docker-registry libcmocka-dev clang radosgw postgresql wrk; do
    if grep -qw -- "$p" <<<"$pkgs"; then fail "make serve installs $p"; else ok; fi
done
pkgs=$(PATH="$T/bin:$PATH" sh "$SRC/scripts/setup.sh" --check 2>&1)
if grep -qw 'skopeo' <<<"$pkgs" && grep -qw 'postgresql' <<<"$pkgs"; then ok; else
    fail "check packages: $pkgs"
fi

# every key of the configuration in the reference
"$BERTH" serve --print-config | python3 - "$SRC/docs/operations.md" <<'PY' && ok || fail "keys documented"
import re, sys
doc = open(sys.argv[1]).read()
path, missing = [], []
for line in sys.stdin:
    m = re.match(r'^( *)([a-z_]+):', line)
    if not m or line.lstrip().startswith('-'):
        continue
    depth = len(m.group(1)) // 2
    path = path[:depth] + [m.group(2)]
    key = '.'.join(path)
    if line.rstrip().endswith(':'):
        continue
    if '`%s`' % key not in doc:
        missing.append(key)
if missing:
    sys.exit('not in docs/operations.md: %s' % missing)
PY

# every metric in the reference
start_server
curl -s "$URL/metrics" -o "$T/m"
python3 - "$T/m" "$SRC/docs/operations.md" <<'PY' && ok || fail "metrics documented"
import re, sys
names = set(re.findall(r'^# TYPE (\S+) ', open(sys.argv[1]).read(), re.M))
doc = open(sys.argv[2]).read()
missing = sorted(n for n in names if '`%s`' % n not in doc)
assert names and not missing, missing
PY

# coming from Distribution and zot
C=$SRC/docs/coming-from.md
for w in 'registry garbage-collect' 'berth gc --root' 'storage.maintenance.readonly' \
    'storage.read_only' 'storage.delete.enabled' 'storage.gcDelay' 'gc.grace' \
    'storage.retention.delay' 'gc.untagged_delay' 'zot verify'; do
    if grep -qF -- "$w" "$C"; then ok; else fail "coming-from.md lacks $w"; fi
done

finish
