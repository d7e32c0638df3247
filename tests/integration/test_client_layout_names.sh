#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# `berth tags oci:DIR` lists the names of a layout that someone else wrote: a name no
# reference can take (an escape sequence and a newline in org.opencontainers.image.ref.name)
# is not printed (before, it reached the terminal raw and forged a line "fake"), and a name
# that index.json lists twice is listed once. Needs no server.
. "$(dirname "$0")/client_lib.sh"

make_layout "$WORK/l" app >/dev/null
python3 - "$WORK/l/index.json" <<'PY'
import json, sys
p = sys.argv[1]
j = json.load(open(p))
m = j["manifests"][0]
evil = json.loads(json.dumps(m))
evil["annotations"]["org.opencontainers.image.ref.name"] = "evil\x1b]0;owned\x07\nfake"
dup = json.loads(json.dumps(m))
other = json.loads(json.dumps(m))
other["annotations"]["org.opencontainers.image.ref.name"] = "example.com/app:v2"
j["manifests"] += [evil, dup, other]
json.dump(j, open(p, "w"))
PY
"$BERTH" tags "oci:$WORK/l" >"$WORK/out" 2>"$WORK/err" || fail "tags: $(cat "$WORK/err")"
expect_eq "$(tr '\n' ' ' <"$WORK/out")" "app example.com/app:v2 " "names listed"
! grep -q $'\033' "$WORK/out" || fail "an escape sequence printed"
# the listed names are the ones copy takes
"$BERTH" copy --quiet "oci:$WORK/l:example.com/app:v2" "oci:$WORK/out2:v2" >/dev/null ||
    fail "copy of a listed name"
echo "ok"
