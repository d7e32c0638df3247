#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/engines/swift.sh: an OpenStack Swift with its S3 API (the s3api middleware) on loopback
# for the tests that say "engines: swift": the second, weaker S3 target (no conditional PUT).
# One proxy (s3api + tempauth), one account, one container and one object server (Debian 12's
# swift 2.30), one replica, rings built into DIR, the device a directory under DIR
# (mount_check off), a memcached for tempauth (which requires one). Every process on 127.0.0.1,
# in the foreground (workers = 0: one process each), recorded in DIR/run/*.pid.
#
#   swift.sh up DIR     start (stopping first what an earlier `up` left in DIR), create the
#                       bucket, write DIR/env (the KEY=VALUE names tests/engines/rgw.sh writes)
#                       and DIR/stats
#   swift.sh down DIR   stop exactly the processes `up` recorded in DIR/run/*.pid
#
# S3 credentials as tempauth gives them to s3api: access key "account:user", secret = the
# user's password. Limits raised to S3's: 10,000 parts per multipart upload (s3api and SLO
# default to 1,000). Objects live on DIR's filesystem, which must support user xattrs (checked).
# Ports: a base P in 16200..16690 (steps of 10, starting from one picked by the PID) with
# P..P+4 all free: proxy P, account P+1, container P+2, object P+3, memcached P+4.
# Fails with the tail of the logs when the S3 API does not answer within 120 s.
set -euo pipefail

cmd=${1:?usage: swift.sh up|down DIR}
D=${2:?usage: swift.sh up|down DIR}
BUCKET=berth-test
REGION=us-east-1
WAIT=120
SERVERS="proxy account container object"

# The PID recorded in DIR/run/$1.pid if it still runs the program we started there (a PID may
# have been reused since), else nothing; the file is removed.
recorded_pid() {
  local f=$D/run/$1.pid pid cmdline
  pid=$(cat "$f" 2>/dev/null || true)
  rm -f "$f"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  cmdline=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true)
  case "$1" in
    memcached) [[ $cmdline == "memcached -l 127.0.0.1 "* ]] || return 0 ;;
    *) [[ $cmdline == *"swift-$1-server $D/etc/$1-server.conf"* ]] || return 0 ;;
  esac
  echo "$pid"
}

# Stop the recorded daemons: TERM to all (each takes about 2 s to finish), KILL after 10 s.
down() {
  local f pid pids=() left
  for f in proxy object container account memcached; do
    [ -f "$D/run/$f.pid" ] || continue
    pid=$(recorded_pid "$f")
    [ -n "$pid" ] && pids+=("$pid")
  done
  [ ${#pids[@]} = 0 ] && return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 100); do
    left=0
    for f in "${pids[@]}"; do
      kill -0 "$f" 2>/dev/null && left=1
    done
    [ $left = 0 ] && return 0
    sleep 0.1
  done
  kill -KILL "${pids[@]}" 2>/dev/null || true
  return 0
}

# shellcheck source=tests/engines/lib.sh
. "$(dirname "$0")/lib.sh"
fail() { engine_fail swift.sh "$@"; }

if [ "$cmd" = down ]; then
  [ -d "$D" ] && down
  exit 0
fi
[ "$cmd" = up ] || { echo "usage: swift.sh up|down DIR" >&2; exit 2; }

mkdir -p "$D"
D=$(cd "$D" && pwd)
down
rm -rf "${D:?}/run" "${D:?}/log" "${D:?}/etc" "${D:?}/srv" "${D:?}/env" "${D:?}/stats"
mkdir -p "$D/run" "$D/log" "$D/etc" "$D/srv/node/d1" "$D/srv/cache"
cd "$D"
t0=$(date +%s.%N)

for b in swift-ring-builder swift-proxy-server swift-account-server swift-container-server \
  swift-object-server memcached; do
  command -v "$b" >/dev/null || fail "$b is not installed (scripts/setup.sh --check installs it)"
done
# The servers read /etc/swift/swift.conf (the hash path suffix, storage policy 0) whatever
# swift_dir says; the swift package installs it.
[ -r /etc/swift/swift.conf ] || fail "no /etc/swift/swift.conf (reinstall the swift package)"
# Object metadata is kept in user xattrs (in pieces of at most 254 bytes).
/usr/bin/python3 - "$D/srv/node/d1" <<'PY' || fail "user xattrs do not work on the filesystem of $D"
import os, sys, xattr
p = os.path.join(sys.argv[1], ".xattr-probe")
open(p, "w").close()
try:
    for i in range(4):
        xattr.setxattr(p, "user.swift.metadata%d" % i, b"x" * 254)
    assert xattr.getxattr(p, "user.swift.metadata3") == b"x" * 254
finally:
    os.unlink(p)
PY

# start_servers: rings, configurations and the five processes on ports P..P+4, then wait until
# they all answer; 1 when one of them found its port taken (the caller tries another range)
start_servers() {
rm -f etc/*.builder etc/*.ring.gz
rm -rf etc/backups

# Rings: one device, one replica, 2^6 partitions (building is instant).
for r in account:$((P + 1)) container:$((P + 2)) object:$((P + 3)); do
  name=${r%%:*}
  port=${r##*:}
  {
    swift-ring-builder "etc/$name.builder" create 6 1 1 &&
      swift-ring-builder "etc/$name.builder" add "r1z1-127.0.0.1:$port/d1" 100 &&
      swift-ring-builder "etc/$name.builder" rebalance
  } >>log/ring.out 2>&1 || fail "swift-ring-builder $name failed"
done

common() { # the [DEFAULT] section of server $1 on port $2
  cat <<CONF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $2
workers = 0
user = $USER_NAME
swift_dir = $D/etc
devices = $D/srv/node
mount_check = false
log_facility = LOG_LOCAL0
log_level = INFO
log_name = $1
eventlet_debug = false
CONF
}

{
  common account-server $((P + 1))
  cat <<CONF
[pipeline:main]
pipeline = account-server
[app:account-server]
use = egg:swift#account
CONF
} >etc/account-server.conf
{
  common container-server $((P + 2))
  cat <<CONF
[pipeline:main]
pipeline = container-server
[app:container-server]
use = egg:swift#container
CONF
} >etc/container-server.conf
{
  common object-server $((P + 3))
  cat <<CONF
[pipeline:main]
pipeline = object-server
[app:object-server]
use = egg:swift#object
[object-updater]
[object-auditor]
CONF
} >etc/object-server.conf
{
  common proxy-server "$P"
  cat <<CONF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
allow_account_management = true
node_timeout = 30
conn_timeout = 2
recoverable_node_timeout = 30
# one storage node of each kind: never shun it for long after an error
error_suppression_interval = 1
error_suppression_limit = 100
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$((P + 4))
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:s3api]
use = egg:swift#s3api
location = $REGION
max_upload_part_num = 10000
# virtual-host style: bucket.localhost (as rgw.sh's "rgw dns name")
storage_domain = localhost
[filter:tempauth]
use = egg:swift#tempauth
user_berth_tester = $SK .admin
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
max_manifest_segments = 10000
max_manifest_size = 16777216
[filter:dlo]
use = egg:swift#dlo
CONF
} >etc/proxy-server.conf
chmod 600 etc/proxy-server.conf

# memcached: on loopback only, no UDP, 64 MiB, as the current user.
setsid memcached -l 127.0.0.1 -p $((P + 4)) -U 0 -m 64 -u "$USER_NAME" >log/memcached.out 2>&1 \
  </dev/null &
echo $! >run/memcached.pid
for s in account container object proxy; do
  setsid "swift-$s-server" "$D/etc/$s-server.conf" -v >"log/$s.out" 2>&1 </dev/null &
  echo $! >"run/$s.pid"
done

up=0
for _ in $(seq $((WAIT * 5))); do
  # the proxy's health check, and an HTTP answer (any status) from each storage server: a
  # request through the proxy before they listen would get their node error-limited
  n=0
  curl -sf -m 2 -o /dev/null "http://127.0.0.1:$P/healthcheck" && n=$((n + 1))
  for q in 1 2 3; do
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$((P + q))/" || true)
    [ "$code" != 000 ] && n=$((n + 1))
  done
  if [ $n = 4 ]; then up=1; break; fi
  for f in memcached $SERVERS; do
    kill -0 "$(cat "run/$f.pid")" 2>/dev/null && continue
    # a port taken since pick_base looked: another range
    grep -qi "address already in use" "log/$f.out" && return 1
    fail "$f exited during start-up"
  done
  sleep 0.2
done
return 0
}

USER_NAME=$(id -un)
AK="berth:tester"
SK=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
up=0
for attempt in 1 2 3; do
  P=$(pick_base 16200 5) || fail "no free port range in 16200..16699"
  start_servers && break
  echo "swift.sh: a port of $P..$((P + 4)) was taken meanwhile; another range" >&2
  down
  [ "$attempt" = 3 ] && fail "no port range could be bound"
done
[ $up = 1 ] || fail "the servers did not answer within $WAIT s"
t_up=$(date +%s.%N)

# The bucket, as a container through Swift's own API (curl's SigV4 cannot take an access key
# with a colon): a tempauth token, then a container PUT; retried while the account and
# container servers come up.
made=0
code=none
for _ in $(seq 100); do
  code=$(curl -s -o log/bucket.out -D log/auth.hdr -w '%{http_code}' -m 10 \
    -H "X-Auth-User: $AK" -H "X-Auth-Key: $SK" "http://127.0.0.1:$P/auth/v1.0") || true
  if [ "$code" = 200 ]; then
    TOKEN=$(awk -F': ' 'tolower($1) == "x-auth-token" {print $2}' log/auth.hdr | tr -d '\r')
    URL=$(awk -F': ' 'tolower($1) == "x-storage-url" {print $2}' log/auth.hdr | tr -d '\r')
    code=$(curl -s -o log/bucket.out -w '%{http_code}' -m 10 -X PUT \
      -H "X-Auth-Token: $TOKEN" "$URL/$BUCKET") || true
    if [ "$code" = 201 ] || [ "$code" = 202 ]; then made=1; break; fi
  fi
  for f in memcached $SERVERS; do
    kill -0 "$(cat "run/$f.pid")" 2>/dev/null || fail "$f exited during start-up"
  done
  sleep 0.2
done
rm -f log/auth.hdr
[ $made = 1 ] || fail "bucket create failed (last status $code: $(head -c 300 log/bucket.out))"
t_end=$(date +%s.%N)

cat >env.tmp <<ENV
BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:$P
BERTH_TEST_S3_BUCKET=$BUCKET
BERTH_TEST_S3_REGION=$REGION
AWS_ACCESS_KEY_ID=$AK
AWS_SECRET_ACCESS_KEY=$SK
ENV
mv env.tmp env

rss=0
for f in memcached $SERVERS; do
  r=$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat "run/$f.pid")/status" 2>/dev/null || echo 0)
  rss=$((rss + r))
done
{
  printf 'start_seconds=%.1f\n' "$(echo "$t_end - $t0" | bc)"
  printf 'proxy_seconds=%.1f\n' "$(echo "$t_up - $t0" | bc)"
  echo "rss_kib=$rss"
} >stats
echo "swift up on 127.0.0.1:$P: $(tr '\n' ' ' <stats)"
