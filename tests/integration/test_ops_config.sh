#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# berth serve's configuration: --print-config round-trips, precedence defaults < file <
# environment < flags, an invalid file refused with file:line:col: key: reason and status 2,
# and a server started from a file serves with the file's settings.
. "$(dirname "$0")/lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
: "${BERTH:?BERTH must name the berth binary}"
T=$BERTH_TMP

# defaults printed, exit 0
out=$("$BERTH" serve --print-config)
check "print-config status" 0 $?
check "default listen" 'listen: "127.0.0.1:5000"' "$(grep '^listen:' <<<"$out")"
check "default threads (one per core)" 'threads: 0' "$(grep '^threads:' <<<"$out")"

# the printed configuration is accepted back unchanged
printf '%s\n' "$out" >"$T/printed.yaml"
check "round trip" "$out" "$("$BERTH" serve --config "$T/printed.yaml" --print-config)"

# file < environment < flags
cat >"$T/a.yaml" <<'Y'
listen: 127.0.0.1:6001
root: /tmp/from-file
threads: 3
limits:
  body_size: 1MiB
  requests_per_second: 7
gc:
  interval: 12h
  grace: 30m
Y
out=$("$BERTH" serve --config "$T/a.yaml" --print-config)
check "file listen" 'listen: "127.0.0.1:6001"' "$(grep '^listen:' <<<"$out")"
check "file threads" 'threads: 3' "$(grep '^threads:' <<<"$out")"
check "file body_size" 'body_size: 1MiB' "$(grep 'body_size:' <<<"$out" | sed 's/^ *//')"
check "file gc interval" 'interval: 12h' "$(grep 'interval:' <<<"$out" | sed 's/^ *//')"
out=$(BERTH_THREADS=5 BERTH_LIMITS_BODY_SIZE=2MiB BERTH_LOG_FORMAT=json \
    "$BERTH" serve --config "$T/a.yaml" --print-config)
check "env threads over file" 'threads: 5' "$(grep '^threads:' <<<"$out")"
check "env body_size over file" 'body_size: 2MiB' "$(grep 'body_size:' <<<"$out" | sed 's/^ *//')"
check "env log format" 'format: json' "$(grep 'format:' <<<"$out" | sed 's/^ *//')"
check "file value kept" 'requests_per_second: 7' \
    "$(grep 'requests_per_second:' <<<"$out" | sed 's/^ *//')"
out=$(BERTH_THREADS=5 BERTH_ROOT=/tmp/from-env "$BERTH" serve --config "$T/a.yaml" \
    --threads 6 --listen 127.0.0.1:6002 --max-connections 9 --timeout 11 --gc-interval 5m \
    --print-config)
check "flag threads over env" 'threads: 6' "$(grep '^threads:' <<<"$out")"
check "env root over file" 'root: "/tmp/from-env"' "$(grep '^root:' <<<"$out")"
check "flag listen" 'listen: "127.0.0.1:6002"' "$(grep '^listen:' <<<"$out")"
check "flag max connections" 'max_connections: 9' "$(grep '^max_connections:' <<<"$out")"
check "flag timeout -> timeouts.idle" 'idle: 11s' "$(grep 'idle:' <<<"$out" | sed 's/^ *//')"
check "flag gc interval" 'interval: 5m' "$(grep 'interval:' <<<"$out" | sed 's/^ *//')"
# options before --config still win over the file
out=$("$BERTH" serve --threads 8 --config "$T/a.yaml" --print-config)
check "flag before --config" 'threads: 8' "$(grep '^threads:' <<<"$out")"

# invalid file: exit 2, the message names file:line:col and the key
cat >"$T/bad.yaml" <<'Y'
listen: 127.0.0.1:6001
limits:
  body_size: 4 MiB
Y
"$BERTH" serve --config "$T/bad.yaml" >"$T/out" 2>"$T/err"
check "invalid file status" 2 $?
if grep -q "$T/bad.yaml:3:[0-9]*: limits.body_size: " "$T/err"; then ok; else
    fail "invalid file message: $(cat "$T/err")"
fi
cat >"$T/bad2.yaml" <<'Y'
threads: 4
no_such_key: 1
Y
"$BERTH" serve --config "$T/bad2.yaml" --print-config >"$T/out" 2>"$T/err"
check "unknown key status" 2 $?
if grep -q "$T/bad2.yaml:2:[0-9]*: no_such_key" "$T/err"; then ok; else
    fail "unknown key message: $(cat "$T/err")"
fi
check "nothing printed for an invalid file" "" "$(cat "$T/out")"
"$BERTH" serve --config "$T/missing.yaml" 2>"$T/err"
check "missing file status" 2 $?
BERTH_THREADS=lots "$BERTH" serve --print-config >/dev/null 2>"$T/err"
check "bad env status" 2 $?
if grep -q "BERTH_THREADS" "$T/err"; then ok; else fail "bad env message: $(cat "$T/err")"; fi
"$BERTH" serve --threads 2000 --print-config >/dev/null 2>&1
check "bad flag status" 2 $?
# validation across keys: tls.cert without tls.key
printf 'tls:\n  cert: /nonexistent.pem\n' >"$T/tls.yaml"
"$BERTH" serve --config "$T/tls.yaml" 2>"$T/err"
check "cert without key status" 2 $?
if grep -q "tls" "$T/err"; then ok; else fail "cert without key message: $(cat "$T/err")"; fi

# one duration grammar everywhere: flags take what the file and the environment take
out=$("$BERTH" serve --timeout 2m --gc-interval 0 --print-config)
check "--timeout 2m" 'idle: 2m' "$(grep 'idle:' <<<"$out" | sed 's/^ *//')"
check "--gc-interval 0" 'interval: 0s' "$(grep 'interval:' <<<"$out" | sed 's/^ *//')"
"$BERTH" serve --timeout 0 --print-config >/dev/null 2>"$T/err"
check "--timeout 0 refused" 2 $?
if grep -q -- "--timeout" "$T/err"; then ok; else fail "--timeout message: $(cat "$T/err")"; fi
"$BERTH" serve --timeout soon --print-config >/dev/null 2>"$T/err"
check "--timeout soon refused" 2 $?
if grep -q "30s, 5m, 12h, 7d" "$T/err"; then ok; else fail "the grammar is named: $(cat "$T/err")"; fi
check "help says DURATION" yes "$("$BERTH" serve --help | grep -q -- '--timeout DURATION' && echo yes)"
check "help has no SECONDS" 0 "$("$BERTH" serve --help | grep -c 'SECONDS')"
mkdir -p "$T/gcroot0"
"$BERTH" gc --root "$T/gcroot0" --grace 0 --dry-run >/dev/null 2>"$T/err" ||
    "$BERTH" gc --root "$T/gcroot0" --grace 0 >/dev/null 2>>"$T/err"
if ! grep -q "bad option" "$T/err"; then ok; else fail "gc --grace 0: $(cat "$T/err")"; fi
out=$(BERTH_GC_GRACE=0 "$BERTH" serve --print-config)
check "BERTH_GC_GRACE=0" 'grace: 0s' "$(grep 'grace:' <<<"$out" | sed 's/^ *//')"

# every configuration error has its place, files it names included, and exits 2
printf 'auth:\n  htpasswd: %s/no-htpasswd\n' "$T" >"$T/nohtp.yaml"
"$BERTH" serve --config "$T/nohtp.yaml" --root "$T/r2" --listen 127.0.0.1:0 2>"$T/err"
check "missing htpasswd file status" 2 $?
if grep -q "$T/nohtp.yaml:2:13: auth.htpasswd: $T/no-htpasswd: No such file" "$T/err"; then ok; else
    fail "missing htpasswd message: $(cat "$T/err")"
fi
printf 'tls:\n  cert: %s/no-cert.pem\n  key: %s/no-key.pem\n' "$T" "$T" >"$T/nocert.yaml"
"$BERTH" serve --config "$T/nocert.yaml" --root "$T/r2" --listen 127.0.0.1:0 2>"$T/err"
check "missing certificate status" 2 $?
if grep -q "$T/nocert.yaml:2:9: tls.cert: $T/no-cert.pem: No such file" "$T/err"; then ok; else
    fail "missing certificate message: $(cat "$T/err")"
fi
echo "not a certificate" >"$T/junk.pem"
printf 'tls:\n  cert: %s/junk.pem\n  key: %s/junk.pem\n' "$T" "$T" >"$T/junk.yaml"
"$BERTH" serve --config "$T/junk.yaml" --root "$T/r2" --listen 127.0.0.1:0 2>"$T/err"
check "unusable certificate status" 2 $?
if grep -q "$T/junk.yaml:2:9: tls.cert: .*cannot be used" "$T/err"; then ok; else
    fail "unusable certificate message: $(cat "$T/err")"
fi
BERTH_AUTH_HTPASSWD=$T/no-htpasswd "$BERTH" serve --root "$T/r2" --listen 127.0.0.1:0 2>"$T/err"
check "missing htpasswd (environment) status" 2 $?
if grep -q "BERTH_AUTH_HTPASSWD: auth.htpasswd: $T/no-htpasswd: No such file" "$T/err"; then ok; else
    fail "missing htpasswd (environment) message: $(cat "$T/err")"
fi
cat >"$T/group.yaml" <<'Y'
groups: {devs: [alice]}
access:
  - repositories: "team/*"
    groups: [devs, ghosts]
Y
"$BERTH" serve --config "$T/group.yaml" --print-config >/dev/null 2>"$T/err"
check "unknown group status" 2 $?
if grep -q "$T/group.yaml:4:13: access\[0\].groups: unknown group 'ghosts'" "$T/err"; then ok; else
    fail "unknown group message: $(cat "$T/err")"
fi

# a server started from a file: the file's limits apply (manifest size 1KiB), flags still work
cat >"$T/run.yaml" <<Y
root: $T/root
limits:
  manifest_size: 1KiB
log:
  format: json
Y
start_server --config "$T/run.yaml"
python3 -c 'import json; print(json.dumps({"schemaVersion":2,"pad":"x"*2000}))' >"$T/big.json"
req PUT /v2/cfg/app/manifests/v1 -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "@$T/big.json"
check "manifest over the file's limit" 413 "$STATUS"
if python3 -c 'import json,sys
lines=[json.loads(l) for l in open(sys.argv[1])]
assert [l for l in lines if l.get("method")]' "$BERTH_LOG"; then ok; else
    fail "json log lines"
fi
check "store under the file's root" yes "$([ -d "$T/root" ] && echo yes)"
kill "$BERTH_PID"
wait "$BERTH_PID" 2>/dev/null
BERTH_PID=""

# the online gc applies the file's retention rules on its period
cat >"$T/gc.yaml" <<Y
root: $T/gcroot
gc:
  grace: 3s
  retention:
    - repositories: "gc/*"
      keep_last: 1
Y
start_server --config "$T/gc.yaml" --gc-interval 1s
push_tag() {
    head -c 100 /dev/urandom >"$T/l.$1"
    echo "{\"n\":\"$1\"}" >"$T/c.$1"
    push_blob gc/app "$T/l.$1" >/dev/null
    push_blob gc/app "$T/c.$1" >/dev/null
    make_manifest "$T/c.$1" "$T/l.$1" "$T/m.$1"
    curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$T/m.$1" \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' "$URL/v2/gc/app/manifests/$1"
}
# (the grace period keeps t2's blobs while it is being pushed)
check "push t1" 201 "$(push_tag t1)"
sleep 3.5
check "push t2" 201 "$(push_tag t2)"
for _ in $(seq 1 100); do
    req GET /v2/gc/app/tags/list
    [ "$(json 'j["tags"]')" = "['t2']" ] && break
    sleep 0.1
done
check "gc kept the newest tag only" "['t2']" "$(json 'j["tags"]')"
if grep -q 'berth serve: gc: [1-9][0-9]* tags' "$BERTH_LOG"; then ok; else
    fail "gc summary names the removed tag"
fi

finish
