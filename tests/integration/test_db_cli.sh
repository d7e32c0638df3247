#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# berth db version / berth db upgrade against a real PostgreSQL (engines: pg): an empty
# database is created, an older schema upgraded (from and to printed), a newer one refused
# without change, an unreachable server reported (exit 1) with no connection string.
. "$(dirname "$0")/lib.sh"
: "${BERTH:?BERTH must name the berth binary}"

ENV_FILE=${BERTH_ENGINES_DIR:?run through ctest: the pg engine fixture}/pg/env
BASE=$(sed -n 's/^BERTH_TEST_DATABASE_URL=//p' "$ENV_FILE")
[ -n "$BASE" ] || { echo "no BERTH_TEST_DATABASE_URL in $ENV_FILE" >&2; exit 1; }
DB=${BASE%/*}/berth_it_dbcli
psql "$BASE" -qX -c 'DROP DATABASE IF EXISTS berth_it_dbcli WITH (FORCE)' \
    -c 'CREATE DATABASE berth_it_dbcli' 2>/dev/null || { echo "psql failed" >&2; exit 1; }
q() { psql "$DB" -qXAt -c "$1"; }

out=$("$BERTH" db version --database-url "$DB"); check "version of an empty database" 0 $?
case $out in *"version 0; this berth needs"*) ok ;; *) fail "empty: $out" ;; esac
latest=$(sed -n 's/.*needs \([0-9]*\).*/\1/p' <<<"$out")
[ -n "$latest" ] && [ "$latest" -ge 2 ] && ok || fail "latest version: '$latest'"

out=$("$BERTH" db upgrade --database-url "$DB"); check "upgrade of an empty database" 0 $?
check "upgrade prints from/to" "database schema upgraded from version 0 to $latest" "$out"
check "every migration recorded once" "$latest" "$(q 'SELECT count(*) FROM berth_schema_migrations')"

out=$(BERTH_DATABASE_URL=$DB "$BERTH" db upgrade); check "upgrade again" 0 $?
check "nothing to do" "database schema version $latest: up to date, nothing to do" "$out"

# an older schema (the last migration undone, as a database of an older berth): upgraded
q "DROP TABLE uploads; DELETE FROM berth_schema_migrations WHERE version = $latest" >/dev/null
out=$("$BERTH" db version --database-url "$DB")
case $out in *"version $((latest - 1)); this berth needs $latest (older: run \`berth db upgrade\`)"*) ok ;;
*) fail "older: $out" ;; esac
out=$("$BERTH" db upgrade --database-url "$DB"); check "upgrade of an older schema" 0 $?
check "older upgraded" "database schema upgraded from version $((latest - 1)) to $latest" "$out"
check "uploads back" "0" "$(q 'SELECT count(*) FROM uploads')"

# a newer schema: refused, unchanged
q "INSERT INTO berth_schema_migrations VALUES ($((latest + 1)), 0)" >/dev/null
err=$("$BERTH" db upgrade --database-url "$DB" 2>&1 >/dev/null); check "newer refused" 1 $?
case $err in *"older than the database"*) ok ;; *) fail "newer: $err" ;; esac
check "newer unchanged" "$((latest + 1))" "$(q 'SELECT max(version) FROM berth_schema_migrations')"

# unreachable: exit 1 in seconds, the message without the URL
port=$(free_port)
start=$(date +%s)
err=$("$BERTH" db version --database-url "postgresql://postgres:secret@127.0.0.1:$port/x" 2>&1)
check "unreachable exits 1" 1 $?
[ $(($(date +%s) - start)) -le 6 ] && ok || fail "unreachable took too long"
case $err in *"cannot be reached"*) ok ;; *) fail "unreachable: $err" ;; esac
case $err in *secret*|*"$port"*) fail "the message shows the URL: $err" ;; *) ok ;; esac

"$BERTH" db --database-url "$DB" >/dev/null 2>&1; check "no subcommand is a usage error" 2 $?
env -u BERTH_DATABASE_URL "$BERTH" db version >/dev/null 2>&1; check "no database is a usage error" 2 $?

psql "$BASE" -qX -c 'DROP DATABASE IF EXISTS berth_it_dbcli WITH (FORCE)' 2>/dev/null
finish
