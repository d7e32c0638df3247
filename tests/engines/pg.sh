#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# tests/engines/pg.sh: a throwaway PostgreSQL cluster on loopback for the tests (Debian's
# `postgresql` package, version 15 or newer).
#
#   pg.sh up   DIR   initdb a cluster in DIR/data, start it on 127.0.0.1 on a free port, create
#                    database `berth`, write DIR/env:
#                      BERTH_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:PORT/berth
#                      BERTH_TEST_PG_PORT=PORT
#   pg.sh down DIR   stop that cluster (only that one: pg_ctl -D DIR/data) and leave DIR
#   pg.sh start DIR  start a cluster `down` stopped again, on its port, with its data (outage
#                    tests: the engine goes away and comes back)
#
# PostgreSQL refuses to run as root: when run as root the cluster belongs to the `postgres`
# system user that the package creates. Settings are for speed, not durability (fsync off):
# a test cluster is thrown away. Fails loudly, with the tail of the server log.
set -euo pipefail
cmd=${1:?usage: pg.sh up|down|start DIR}
D=${2:?usage: pg.sh up|down|start DIR}

BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
  echo "pg.sh: PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)" >&2
  exit 1
fi
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
fail() {
  echo "pg.sh: $*" >&2
  if [ -f "$D/log" ]; then echo "--- tail of $D/log:" >&2; tail -n 30 "$D/log" >&2; fi
  exit 1
}

server_opts() {
  echo "-k $D -h 127.0.0.1 -p $1 -c fsync=off -c synchronous_commit=off \
        -c full_page_writes=off -c max_connections=200 -c shared_buffers=64MB \
        -c max_locks_per_transaction=256"
}

if [ "$cmd" = start ]; then
  port=$(sed -n 's/^BERTH_TEST_PG_PORT=//p' "$D/env" 2>/dev/null || true)
  [ -n "$port" ] && [ -d "$D/data" ] || fail "no cluster in $D (pg.sh up first)"
  as_pg "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 60 -o "$(server_opts "$port")" start \
    >/dev/null 2>&1 || fail "the server did not start again on 127.0.0.1:$port"
  exit 0
fi
if [ "$cmd" = down ]; then
  [ -d "$D/data" ] || exit 0
  if as_pg "$BIN/pg_ctl" -D "$D/data" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$D/data" -m fast -w -t 30 stop >/dev/null || fail "pg_ctl stop failed"
  fi
  exit 0
fi
[ "$cmd" = up ] || { echo "pg.sh: unknown command '$cmd' (up|down|start)" >&2; exit 2; }

t0=$(date +%s.%N)
mkdir -p "$D"
D=$(cd "$D" && pwd)
# a cluster left by an earlier run: stop it (it is ours: it lives in DIR), then start afresh
if [ -d "$D/data" ]; then
  as_pg "$BIN/pg_ctl" -D "$D/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  rm -rf "$D/data"
fi
rm -f "$D/env" "$D/log"
if [ "$(id -u)" = 0 ]; then
  chown postgres "$D"
  # the postgres user must reach DIR: temporary directories are often mode 0700
  p=$(dirname "$D")
  while [ "$p" != / ]; do [ -x "$p" ] && chmod o+x "$p"; p=$(dirname "$p"); done
fi
as_pg "$BIN/initdb" -D "$D/data" -U postgres -A trust --no-sync -E UTF8 --locale=C \
  >"$D/initdb.log" 2>&1 || { cat "$D/initdb.log" >&2; fail "initdb failed"; }

# a free loopback port below the ephemeral range, not listening now (an earlier failed run may
# still hold one); a port taken between the check and the start gets another try
listening=$(ss -Hltn 2>/dev/null | awk '{print $4}' | sed 's/.*://' | sort -u)
port=
for attempt in 1 2 3; do
  port=
  for try in $(seq 1 200); do
    p=$((20000 + (RANDOM * 32768 + RANDOM + $$) % 12000))
    if ! grep -qx "$p" <<<"$listening"; then port=$p; break; fi
  done
  [ -n "$port" ] || fail "no free port found"
  if as_pg "$BIN/pg_ctl" -D "$D/data" -l "$D/log" -w -t 60 -o "$(server_opts "$port")" \
    start >/dev/null 2>&1; then
    break
  fi
  grep -q "could not bind" "$D/log" 2>/dev/null || fail "the server did not start on 127.0.0.1:$port"
  listening="$listening"$'\n'"$port"
  [ "$attempt" = 3 ] && fail "the server did not start: no port could be bound"
done
as_pg "$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres berth || fail "createdb berth failed"

cat >"$D/env" <<ENV
BERTH_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:$port/berth
BERTH_TEST_PG_PORT=$port
ENV
t1=$(date +%s.%N)
echo "pg.sh: PostgreSQL $("$BIN/postgres" --version | awk '{print $3}') up on 127.0.0.1:$port in $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")s"
