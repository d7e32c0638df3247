#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# An htpasswd line with a space before the user name (a paste) or after the hash: the user is
# read as written, as Apache's htpasswd reads it, so logging in as typed fails; before, with
# nothing in the log (issue 11's "silent configuration problems"). Now a warning names the
# line. A well-formed user beside them works, and gets no warning.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
command -v htpasswd >/dev/null || { echo "skip: no htpasswd"; exit 77; }
T=$BERTH_TMP
htpasswd -Bbn alice alicepw | head -n 1 >"$T/htpasswd"
printf ' %s\n' "$(htpasswd -Bbn carol carolpw | head -n 1)" >>"$T/htpasswd"
printf '%s  \n' "$(htpasswd -Bbn dave davepw | head -n 1)" >>"$T/htpasswd"
printf 'auth: {htpasswd: %s}\n' "$T/htpasswd" >"$T/c.yaml"
start_server --config "$T/c.yaml"
check "alice" 200 "$(curl -s -o /dev/null -w '%{http_code}' -u alice:alicepw "$URL/v2/")"
check "carol as typed" 401 "$(curl -s -o /dev/null -w '%{http_code}' -u carol:carolpw "$URL/v2/")"
if grep -q "htpasswd $T/htpasswd:2: user ' carol': spaces around" "$BERTH_LOG"; then ok; else
    fail "no warning for line 2: $(grep htpasswd "$BERTH_LOG")"
fi
if grep -q "htpasswd $T/htpasswd:3: user 'dave': spaces around" "$BERTH_LOG"; then ok; else
    fail "no warning for line 3: $(grep htpasswd "$BERTH_LOG")"
fi
check "no warning for alice" 0 "$(grep -c "htpasswd.*:1:" "$BERTH_LOG")"
finish
