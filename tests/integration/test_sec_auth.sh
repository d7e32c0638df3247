#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# storage: any (also run over S3 + PostgreSQL: the "scale" variant)
# Logins of berth serve:
# - `Authorization: Basic Og==` (empty user and password, what podman and skopeo send without
#   credentials) is anonymous, on /v2/ and at /token;
# - failed-login throttling is keyed on the client address: guessing alice's password from one
#   address neither keeps alice out from another address (Basic and /token) nor, once it stops,
#   from that address; a flood of random names from many addresses does not refuse bob.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/ops_lib.sh"

if [ -n "${BERTH_TEST_URL:-}" ]; then
    echo "skip: needs its own server"
    exit 77
fi
command -v htpasswd >/dev/null || { echo "skip: htpasswd (apache2-utils) missing"; exit 77; }
sec_users_setup

# ---- 2. empty Basic credentials are anonymous ------------------------------------------------
ops_start http "$PORT" --config "$T/basic.yaml"
check "seed public/lib" 201 "$(ops_push_image carol:carolpw public/lib v1)"
check "seed team/app" 201 "$(ops_push_image alice:alicepw team/app v1)"
EMPTY=(-H 'Authorization: Basic Og==')
req GET /v2/public/lib/manifests/v1 "${EMPTY[@]}"
check "Basic Og== pulls what anonymous clients may" 200 "$STATUS"
req GET /v2/public/lib/tags/list "${EMPTY[@]}"
check "Basic Og== lists tags of public/lib" 200 "$STATUS"
req POST /v2/public/lib/blobs/uploads/ "${EMPTY[@]}"
expect_error "Basic Og== may not push" 401 UNAUTHORIZED
check "Basic Og== push: challenge" 'Basic realm="berth",charset="UTF-8"' "$(header WWW-Authenticate)"
req GET /v2/team/app/manifests/v1 "${EMPTY[@]}"
check "Basic Og== may not pull team/app" 401 "$STATUS"
req GET /v2/ "${EMPTY[@]}"
check "Basic Og== at the base: credentials wanted, as without a header" 401 "$STATUS"
# only an empty user with an empty password is anonymous
req GET /v2/public/lib/manifests/v1 -H "Authorization: Basic $(printf ':carolpw' | base64)"
check "empty user with a password is refused" 401 "$STATUS"
req GET /v2/public/lib/manifests/v1 -H "Authorization: Basic $(printf 'carol:' | base64)"
check "user with an empty password is refused" 401 "$STATUS"
# what podman and skopeo do with an auth file whose entry holds empty credentials
printf '{"auths":{"%s":{"auth":"Og=="}}}' "$HOSTPORT" >"$T/auth.json"
if skopeo inspect --tls-verify=false --authfile "$T/auth.json" \
    "docker://$HOSTPORT/public/lib:v1" >/dev/null 2>"$T/err"; then ok; else
    fail "skopeo with empty credentials: $(cat "$T/err")"
fi
ops_stop

ops_start http "$PORT" --config "$T/token.yaml"
req GET "/token?service=berth-test&scope=repository:public/lib:pull,push" "${EMPTY[@]}"
check "token endpoint: Basic Og== gets an anonymous token" 200 "$STATUS"
TOKEN=$(json 'j["token"]')
check "token endpoint: the anonymous token grants pull only" "'' [{'type': 'repository', 'name': 'public/lib', 'actions': ['pull']}]" \
    "$(python3 -c '
import base64, json, sys
p = sys.argv[1].split(".")[1]
c = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
print(repr(c["sub"]), c["access"])' "$TOKEN")"
req GET /v2/public/lib/manifests/v1 -H "Authorization: Bearer $TOKEN"
check "token: anonymous pull with it" 200 "$STATUS"
req GET "/token?service=berth-test&scope=repository:public/lib:pull" \
    -H "Authorization: Basic $(printf ':x' | base64)"
check "token endpoint: empty user with a password is refused" 401 "$STATUS"
if skopeo inspect --tls-verify=false --authfile "$T/auth.json" \
    "docker://$HOSTPORT/public/lib:v1" >/dev/null 2>"$T/err"; then ok; else
    fail "token: skopeo with empty credentials: $(cat "$T/err")"
fi
ops_stop

# ---- 3. failed-login throttling by client address ---------------------------------------------
# flush_cache: make the next login of everyone run bcrypt again (a changed file empties the
# credential cache; the file is looked at once a second)
flush_cache() {
    echo "# $RANDOM" >>"$T/htpasswd"
    sleep 1.1
}
# guess ADDRESS PATH OUT: guess alice's password from ADDRESS in a loop, statuses into OUT
guess() {
    while :; do
        curl -s -o /dev/null -w '%{http_code}\n' --interface "$1" -u "alice:guess$RANDOM" \
            "$URL$2"
    done >>"$3"
}
code_of() { # ADDRESS PATH USERPASS
    curl -s -o /dev/null -w '%{http_code}' --interface "$1" -u "$3" "$URL$2"
}

for mode in basic token; do
    if [ "$mode" = basic ]; then
        ops_start http "$PORT" --config "$T/basic.yaml"
        P=/v2/team/app/manifests/v1
    else
        ops_start http "$PORT" --config "$T/token.yaml"
        P="/token?service=berth-test&scope=repository:team/app:pull"
    fi
    : >"$T/guesses"
    t0=$(date +%s%N)
    guess 127.0.0.2 "$P" "$T/guesses" &
    g1=$!
    guess 127.0.0.2 "$P" "$T/guesses" &
    g2=$!
    sleep 0.5
    for round in 1 2 3; do
        flush_cache
        check "$mode: alice's first login from another address during the guessing ($round)" 200 \
            "$(code_of 127.0.0.3 "$P" alice:alicepw)"
    done
    kill "$g1" "$g2"
    wait "$g1" "$g2" 2>/dev/null
    t1=$(date +%s%N)
    secs=$(((t1 - t0) / 1000000000 + 1))
    verified=$(grep -c '^401$' "$T/guesses")
    throttled=$(grep -c '^429$' "$T/guesses")
    echo "$mode: $verified guesses verified, $throttled refused unverified in ${secs}s"
    # guessing is slowed: at most 5 verified a second from the address (plus those already
    # being verified when the fifth failed: one per worker thread, one thread per core)
    if [ "$verified" -le $(((5 + $(nproc)) * (secs + 1))) ] && [ "$throttled" -gt 0 ]; then ok; else
        fail "$mode: $verified guesses verified and $throttled refused in ${secs}s"
    fi
    check "$mode: only 401 and 429 for the guesses" "" "$(grep -v '^401$\|^429$' "$T/guesses" | sort -u)"
    req GET /v2/ -u alice:wrong --interface 127.0.0.4
    check "$mode: no Retry-After for a verified wrong password" "" "$(header Retry-After)"
    # a refused guess says so: 429 TOOMANYREQUESTS with Retry-After
    for _ in $(seq 1 30); do
        req GET "$P" -u alice:nope --interface 127.0.0.5
        [ "$STATUS" = 429 ] && break
    done
    expect_error "$mode: guess past the limit" 429 TOOMANYREQUESTS
    check "$mode: Retry-After" 1 "$(header Retry-After)"
    # once the guessing stopped, alice gets in from the guessing address too
    flush_cache
    check "$mode: alice's login from the guessing address afterwards" 200 \
        "$(code_of 127.0.0.2 "$P" alice:alicepw)"
    ops_stop
done

# a flood of random user names from many addresses (past the global limit of 50 failures a
# second) does not refuse bob's first login from an address that is not failing
ops_start http "$PORT" --config "$T/basic.yaml"
cat >"$T/flood.py" <<'PY'
import base64, http.client, os, random, sys, threading
port, stop, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
counts = {}
lock = threading.Lock()
def run(i):
    c = None
    while not os.path.exists(stop):
        try:
            if c is None:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                               source_address=(f"127.0.1.{i + 1}", 0))
            cred = base64.b64encode(f"u{random.getrandbits(48)}:x".encode()).decode()
            c.request("GET", "/v2/", headers={"Authorization": "Basic " + cred})
            r = c.getresponse()
            r.read()
            with lock:
                counts[r.status] = counts.get(r.status, 0) + 1
        except OSError:
            c = None
ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
for t in ts:
    t.start()
for t in ts:
    t.join()
print(" ".join(f"{k}:{v}" for k, v in sorted(counts.items())))
PY
t0=$(date +%s%N)
python3 "$T/flood.py" "$PORT" "$T/stop" 60 >"$T/flood.out" &
flood=$!
sleep 1
for round in 1 2 3; do
    flush_cache
    check "bob's first login during a flood of random names ($round)" 200 \
        "$(code_of 127.0.0.1 /v2/team/app/manifests/v1 bob:bobpw)"
done
touch "$T/stop"
wait "$flood"
secs=$((($(date +%s%N) - t0) / 1000000000 + 1))
echo "flood: $(cat "$T/flood.out") in ${secs}s"
# the flood was big enough to pass the global limit (50 failures a second) many times over
attempts=$(tr ' ' '\n' <"$T/flood.out" | awk -F: '$1 == 401 || $1 == 429 { n += $2 } END { print n + 0 }')
if [ "${attempts:-0}" -gt $((200 * secs)) ]; then ok; else
    fail "the flood was too small: $(cat "$T/flood.out") in ${secs}s"
fi
ops_stop

finish
