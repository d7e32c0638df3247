#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/engines/rgw.sh: a Ceph object gateway (S3 API) on loopback for the tests that say
# "engines: rgw". One monitor, one OSD on memstore (the objects live in the OSD's memory; the
# only files are the monitor's small store and the logs under DIR) and one radosgw.
#
#   rgw.sh up DIR     start (stopping first what an earlier `up` left in DIR), create an S3 user
#                     and a bucket, write DIR/env (KEY=VALUE lines) and DIR/stats
#   rgw.sh down DIR   stop exactly the processes `up` recorded in DIR/run/*.pid
#   rgw.sh start-gateway DIR
#                     start the gateway of the cluster `up` made in DIR again (after a test
#                     stopped or killed it: outage tests), on its port, and wait until it answers;
#                     the monitor and the OSD (and so the objects) are left as they are
#
# BERTH_RGW_MEMSTORE_BYTES: the OSD's memory store (default 1 GiB; the objects of deleted and
# overwritten objects are freed by the gateway's garbage collector within about a minute).
#
# Ports: a base P in 7480..7970 (steps of 10, starting from one picked by the PID) with
# P..P+7 all free; the gateway
# listens on P, the monitor on P+1, the OSD within P+2..P+7. Runs as root (Ceph's daemons are
# started without --setuser). Fails with the tail of the logs when the gateway does not answer
# within 90 s.
set -euo pipefail

cmd=${1:?usage: rgw.sh up|down DIR}
D=${2:?usage: rgw.sh up|down DIR}
BUCKET=berth-test
REGION=us-east-1
WAIT=90
MEMSTORE_BYTES=${BERTH_RGW_MEMSTORE_BYTES:-1073741824}

# Stop one recorded daemon: only if the PID still runs the program we started (a PID may have
# been reused since), TERM first, KILL after 10 s.
stop_one() {
  local f=$1 prog pid
  prog=$(basename "$f" .pid)
  pid=$(cat "$f" 2>/dev/null || true)
  rm -f "$f"
  [[ $pid =~ ^[0-9]+$ ]] || return 0
  local exe
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null || true)
  case "$prog:$exe" in
    mon:*/ceph-mon | osd:*/ceph-osd | rgw:*/radosgw) ;;
    *) return 0 ;;
  esac
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
}

down() {
  local f
  for f in "$D/run/rgw.pid" "$D/run/osd.pid" "$D/run/mon.pid"; do
    [ -f "$f" ] && stop_one "$f"
  done
  return 0
}

# shellcheck source=tests/engines/lib.sh
. "$(dirname "$0")/lib.sh"
fail() { engine_fail rgw.sh "$@"; }

if [ "$cmd" = down ]; then
  [ -d "$D" ] && down
  exit 0
fi
if [ "$cmd" = start-gateway ]; then
  D=$(cd "$D" && pwd)
  cd "$D"
  P=$(sed -n 's|^BERTH_TEST_S3_ENDPOINT=http://127.0.0.1:||p' env 2>/dev/null || true)
  [ -n "$P" ] && [ -f ceph.conf ] || { echo "rgw.sh: no cluster in $D (rgw.sh up first)" >&2; exit 1; }
  [ -f run/rgw.pid ] && stop_one run/rgw.pid
  setsid radosgw -c ceph.conf -n client.rgw.a -f >>log/rgw.out 2>&1 </dev/null &
  echo $! >run/rgw.pid
  for _ in $(seq $((WAIT * 2))); do
    curl -sf -m 2 -o /dev/null "http://127.0.0.1:$P/" && exit 0
    kill -0 "$(cat run/rgw.pid)" 2>/dev/null || { echo "rgw.sh: the gateway exited" >&2; exit 1; }
    sleep 0.5
  done
  echo "rgw.sh: the gateway did not answer within $WAIT s" >&2
  exit 1
fi
[ "$cmd" = up ] || { echo "usage: rgw.sh up|down|start-gateway DIR" >&2; exit 2; }

mkdir -p "$D"
D=$(cd "$D" && pwd)
down
rm -rf "$D/run" "$D/log" "$D/mon" "$D/osd" "$D"/*.keyring "$D/ceph.conf" "$D/monmap" "$D/env" "$D/stats"
mkdir -p "$D/run" "$D/log" "$D/mon/ceph-a" "$D/osd"
cd "$D"
t0=$(date +%s.%N)

P=$(pick_base 7480 8) || fail "no free port range in 7480..7979"
FSID=$(cat /proc/sys/kernel/random/uuid)
cat >ceph.conf <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:$((P + 1))
mon initial members = a
ms bind msgr1 = false
public addr = 127.0.0.1
ms bind port min = $((P + 2))
ms bind port max = $((P + 7))
keyring = $D/\$name.keyring
run dir = $D/run
admin socket = $D/run/\$name.asok
log file = $D/log/\$name.log
auth allow insecure global id reclaim = false
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon warn on pool no redundancy = false
osd crush chooseleaf type = 0
mon data = $D/mon/\$cluster-\$id
osd data = $D/osd/\$cluster-\$id
osd objectstore = memstore
memstore device bytes = $MEMSTORE_BYTES
client mount timeout = 30
rados mon op timeout = 30
[osd]
keyring = $D/osd/\$cluster-\$id/keyring
osd op num threads per shard = 1
osd op num shards = 2
[client.rgw.a]
rgw frontends = beast endpoint=127.0.0.1:$P
rgw thread pool size = 64
rgw dns name = localhost
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw gc processor max time = 30
CONF

C=(-c "$D/ceph.conf" --connect-timeout 30)
ceph-authtool --create-keyring mon.a.keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
ceph-authtool --create-keyring client.admin.keyring --gen-key -n client.admin \
  --cap mon 'allow *' --cap osd 'allow *' --cap mgr 'allow *' >/dev/null
ceph-authtool mon.a.keyring --import-keyring client.admin.keyring >/dev/null
monmaptool --create --addv a "[v2:127.0.0.1:$((P + 1))]" --fsid "$FSID" monmap >/dev/null
ceph-mon -c ceph.conf --mkfs -i a --monmap monmap --keyring mon.a.keyring >log/mkfs.out 2>&1 ||
  fail "ceph-mon --mkfs failed"
setsid ceph-mon -c ceph.conf -i a -f >log/mon.out 2>&1 </dev/null &
echo $! >run/mon.pid

OSD_UUID=$(cat /proc/sys/kernel/random/uuid)
OSD_ID=$(ceph "${C[@]}" osd new "$OSD_UUID" 2>>log/ceph-cli.out) || fail "the monitor did not answer"
mkdir -p "osd/ceph-$OSD_ID"
ceph-osd -c ceph.conf -i "$OSD_ID" --mkfs --osd-uuid "$OSD_UUID" --mkkey --no-mon-config \
  >>log/mkfs.out 2>&1 || fail "ceph-osd --mkfs failed"
ceph "${C[@]}" auth add "osd.$OSD_ID" osd 'allow *' mon 'allow profile osd' \
  -i "osd/ceph-$OSD_ID/keyring" >>log/ceph-cli.out 2>&1 || fail "auth add osd failed"
ceph "${C[@]}" osd crush add-bucket localhost host >>log/ceph-cli.out 2>&1
ceph "${C[@]}" osd crush move localhost root=default >>log/ceph-cli.out 2>&1
ceph "${C[@]}" osd crush add "osd.$OSD_ID" 1.0 host=localhost >>log/ceph-cli.out 2>&1 ||
  fail "crush add failed"
setsid ceph-osd -c ceph.conf -i "$OSD_ID" -f >log/osd.out 2>&1 </dev/null &
echo $! >run/osd.pid

ceph "${C[@]}" auth get-or-create client.rgw.a mon 'allow rw' osd 'allow rwx' \
  -o client.rgw.a.keyring >>log/ceph-cli.out 2>&1 || fail "auth for the gateway failed"
setsid radosgw -c ceph.conf -n client.rgw.a -f >log/rgw.out 2>&1 </dev/null &
echo $! >run/rgw.pid

up=0
for _ in $(seq $((WAIT * 2))); do
  if curl -sf -m 2 -o /dev/null "http://127.0.0.1:$P/"; then up=1; break; fi
  for f in mon osd rgw; do
    kill -0 "$(cat run/$f.pid)" 2>/dev/null || fail "$f exited during start-up"
  done
  sleep 0.5
done
[ $up = 1 ] || fail "the gateway did not answer within $WAIT s"
t_up=$(date +%s.%N)

AK=BERTH$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
SK=$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')
radosgw-admin -c ceph.conf -n client.admin user create --uid=berth-test --display-name=berth-test \
  --access-key="$AK" --secret-key="$SK" >>log/ceph-cli.out 2>&1 || fail "user create failed"

# The bucket, with curl's own SigV4 (enough for a bodiless PUT); retried while the user
# propagates to the gateway.
made=0
for _ in $(seq 20); do
  code=$(curl -s -o log/bucket.out -w '%{http_code}' -m 10 -X PUT \
    --aws-sigv4 "aws:amz:$REGION:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" \
    "http://127.0.0.1:$P/$BUCKET") || true
  if [ "$code" = 200 ]; then made=1; break; fi
  sleep 0.5
done
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
for f in mon osd rgw; do
  r=$(awk '/^VmRSS:/ {print $2}' "/proc/$(cat run/$f.pid)/status" 2>/dev/null || echo 0)
  rss=$((rss + r))
done
{
  printf 'start_seconds=%.1f\n' "$(echo "$t_end - $t0" | bc)"
  printf 'gateway_seconds=%.1f\n' "$(echo "$t_up - $t0" | bc)"
  echo "rss_kib=$rss"
} >stats
echo "rgw up on 127.0.0.1:$P: $(tr '\n' ' ' <stats)"
