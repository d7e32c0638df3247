#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: fs
# Secrets of the configuration are not printed: `berth serve --print-config` shows the password
# of database.url (URL user information, ?password=, libpq's password keyword) and of a URL
# (the S3 endpoint) as ****, the printed file still loads; a database.url libpq cannot parse
# (it quotes the string in its message) does not put the password into serve's error.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs the berth binary"
    exit 77
fi
T=$BERTH_TMP
export AWS_ACCESS_KEY_ID=test-key AWS_SECRET_ACCESS_KEY=test-secret

cat >"$T/url.yaml" <<'Y'
database:
  url: "postgres://app:SECRETPW1@127.0.0.1:1/db?password=SECRETPW2&sslmode=disable"
storage:
  s3: {bucket: b, endpoint: "http://key:SECRETPW3@127.0.0.1:1"}
Y
"$BERTH" serve --config "$T/url.yaml" --print-config >"$T/printed.yaml" 2>"$T/err"
check "print-config exit status" 0 "$?"
check "no password printed" 0 "$(grep -c SECRETPW "$T/printed.yaml" "$T/err" | awk -F: '{s+=$2} END {print s}')"
check "database.url masked" \
    '  url: "postgres://app:****@127.0.0.1:1/db?password=****&sslmode=disable"' \
    "$(grep '^  url:' "$T/printed.yaml")"
check "S3 endpoint masked" '    endpoint: "http://key:****@127.0.0.1:1"' \
    "$(grep '^    endpoint:' "$T/printed.yaml")"
# the printed file stays a valid configuration; only the secrets differ
"$BERTH" serve --config "$T/printed.yaml" --print-config >"$T/again.yaml" 2>"$T/err"
check "printed file loads" 0 "$?"
check "printed file prints the same" "" "$(diff "$T/printed.yaml" "$T/again.yaml")"

cat >"$T/kw.yaml" <<'Y'
database:
  url: "host=127.0.0.1 port=1 password = 'SECRET PW4' dbname=x"
storage:
  s3: {bucket: b, endpoint: "http://127.0.0.1:1"}
Y
check "keyword password masked" "  url: \"host=127.0.0.1 port=1 password = **** dbname=x\"" \
    "$("$BERTH" serve --config "$T/kw.yaml" --print-config | grep '^  url:')"

# libpq quotes what it cannot parse: "invalid percent-encoded token: \"SECRET%zzPW5\""
cat >"$T/bad.yaml" <<'Y'
database:
  url: "postgres://app:SECRET%zzPW5@127.0.0.1:1/db"
storage:
  s3: {bucket: b, endpoint: "http://127.0.0.1:1"}
Y
timeout 60 "$BERTH" serve --config "$T/bad.yaml" --listen 127.0.0.1:0 >"$T/out" 2>"$T/err"
check "unparsable database.url: serve fails" 1 "$?"
check "unparsable database.url: says why" 1 "$(grep -c 'invalid percent-encoded token' "$T/err")"
check "unparsable database.url: no password" 0 "$(grep -c 'SECRET' "$T/err" "$T/out" | awk -F: '{s+=$2} END {print s}')"
finish
