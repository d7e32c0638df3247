#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Limits of berth serve: requests per client address (429 TOOMANYREQUESTS with Retry-After,
# then served again once the bucket refills), the body size limit (413, announced by
# Content-Length or found while streaming, across the chunks of one session), and the number
# of uploads streaming at once.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
T=$BERTH_TMP
PORT=$(free_port)

# ---- rate limit: 1 per second, burst 5 -------------------------------------------------------
cat >"$T/rate.yaml" <<Y
limits:
  requests_per_second: 1
  burst: 5
Y
ops_start http "$PORT" --config "$T/rate.yaml" # (its probe, /healthz, is not limited)
codes=""
for _ in $(seq 1 8); do
    codes="$codes $(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/")"
done
check "burst then refused" " 200 200 200 200 200 429 429 429" "$codes"
req GET /v2/
expect_error "rate limited" 429 TOOMANYREQUESTS
ra=$(header Retry-After)
case $ra in [1-9] | [1-9][0-9]) ok ;; *) fail "Retry-After: '$ra'" ;; esac
check "health is never limited" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz")"
sleep "$ra"
check "served again after Retry-After" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/")"
curl -s "$URL/metrics" -o /dev/null # may itself be limited; the counter is what matters
sleep 1
curl -s "$URL/metrics" -o "$T/m"
if grep -q 'berth_http_requests_total{method="GET",route="base",code="429"}' "$T/m"; then ok; else
    fail "429 counted in the metrics"
fi
ops_stop

# ---- body size: 64 KiB -----------------------------------------------------------------------
cat >"$T/size.yaml" <<Y
limits:
  body_size: 64KiB
  upload_requests: 1
Y
ops_start http "$PORT" --config "$T/size.yaml"
head -c 65536 /dev/urandom >"$T/fits"
head -c 65537 /dev/urandom >"$T/big"
d=$(sha256_file "$T/fits")
req POST "/v2/lim/app/blobs/uploads/?digest=$d" --data-binary "@$T/fits" \
    -H 'Content-Type: application/octet-stream'
check "body at the limit" 201 "$STATUS"
d=$(sha256_file "$T/big")
req POST "/v2/lim/app/blobs/uploads/?digest=$d" --data-binary "@$T/big" \
    -H 'Content-Type: application/octet-stream'
expect_error "body over the limit (Content-Length)" 413 SIZE_INVALID
# chunked: no length announced, refused while streaming
req POST "/v2/lim/app/blobs/uploads/?digest=$d" --data-binary "@$T/big" \
    -H 'Content-Type: application/octet-stream' -H 'Transfer-Encoding: chunked'
check "body over the limit (chunked)" 413 "$STATUS"
# two chunks of one session that together pass the limit
loc=$(curl -s -o /dev/null -D - -X POST "$URL/v2/lim/app/blobs/uploads/" | grep -i '^location:' |
    cut -d' ' -f2 | tr -d '\r')
head -c 40000 "$T/big" >"$T/c1"
tail -c +40001 "$T/big" >"$T/c2"
req PATCH "$loc" --data-binary "@$T/c1" -H 'Content-Type: application/octet-stream' \
    -H 'Content-Range: 0-39999'
check "first chunk" 202 "$STATUS"
req PATCH "$loc" --data-binary "@$T/c2" -H 'Content-Type: application/octet-stream' \
    -H "Content-Range: 40000-65536"
check "second chunk over the limit" 413 "$STATUS"
check "manifests are not blobs" 404 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/lim/app/manifests/v1")"

# ---- upload requests: 1 ------------------------------------------------------------------------
head -c 60000 /dev/urandom >"$T/slow"
loc=$(curl -s -o /dev/null -D - -X POST "$URL/v2/lim/app/blobs/uploads/" | grep -i '^location:' |
    cut -d' ' -f2 | tr -d '\r')
curl -s -o /dev/null -X PATCH --limit-rate 20k -H 'Content-Type: application/octet-stream' \
    --data-binary "@$T/slow" "$URL$loc" &
slow=$!
sleep 1
req POST /v2/lim/app/blobs/uploads/
expect_error "second upload while one streams" 429 TOOMANYREQUESTS
check "Retry-After on the upload limit" 1 "$(header Retry-After)"
check "downloads are not uploads" 200 \
    "$(curl -s -o /dev/null -w '%{http_code}' "$URL/v2/lim/app/blobs/$(sha256_file "$T/fits")")"
wait $slow
req POST /v2/lim/app/blobs/uploads/
check "upload once the other finished" 202 "$STATUS"
ops_stop

finish
