/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/pg_internal.h: what the files of the PostgreSQL backend share: connections
 * (a pool for requests, dedicated ones for held sessions and gc claims), statements and the
 * mapping of PostgreSQL's errors to libberth's codes.
 */
#ifndef BERTH_BACKEND_POSTGRES_PG_INTERNAL_H
#define BERTH_BACKEND_POSTGRES_PG_INTERNAL_H

#include "backend/postgres/pg.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>

/**
 * A transaction that met a deadlock or a serialization failure: run it again. Negative, so that
 * `rc < 0` passes it up to berth__pg_run(); never returned from the backend (BERTH_EBUSY then).
 */
#define BERTH__PG_RETRY (-1000)

/**
 * A statement prepared on every connection of a pool (parsed once per connection, planned once
 * its generic plan serves): a name unique in the pool and SQL with $n parameters.
 */
typedef struct berth__pg_stmt {
    const char *name;
    const char *sql;
} berth__pg_stmt;

typedef struct berth__pg_pool {
    char *conninfo;
    char *prepare; /* "PREPARE ...; PREPARE ..." run on each new connection; NULL: none */
    unsigned size;
    unsigned connect_timeout;
    unsigned statement_timeout_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    PGconn **idle; /* pool connections free for a request; `size` slots */
    unsigned nidle;
    unsigned nopen; /* pool connections open (idle or in use) */
    PGconn **spare; /* dedicated connections given back, for reuse; `size` slots */
    unsigned nspare;
} berth__pg_pool;

/** Set up a pool (no connection is made yet). @return 0, BERTH_ENOMEM */
int berth__pg_pool_init(berth__pg_pool *p, const berth_pg_options *opts);

/**
 * Prepare `n` statements on `c` (open, idle) and on every connection the pool makes from now on
 * (pool and dedicated ones), so that berth__pg_exec_stmt() can run them. Call once, before the
 * pool is shared between threads and after the schema exists (PREPARE checks the tables).
 * @return 0, BERTH_ENOMEM, or the error of the PREPARE mapped (berth__pg_error)
 */
int berth__pg_pool_prepare(berth__pg_pool *p, PGconn *c, const berth__pg_stmt *stmts, size_t n);

/** Close every idle connection and free the pool (connections in use must be back). */
void berth__pg_pool_dispose(berth__pg_pool *p);

/** Connect with the pool's settings. @return 0, BERTH_ENETWORK, BERTH_ENOMEM */
int berth__pg_connect(PGconn **out, const char *conninfo, unsigned connect_timeout,
                      unsigned statement_timeout_ms);

/** Take a pool connection, waiting while all `size` are in use. @return 0, BERTH_ENETWORK */
int berth__pg_pool_get(berth__pg_pool *p, PGconn **out);

/** Give a pool connection back; a broken one (or one left in a transaction) is closed. */
void berth__pg_pool_put(berth__pg_pool *p, PGconn *c);

/** A dedicated connection, outside the pool's count (held sessions, gc claims). */
int berth__pg_dedicated_get(berth__pg_pool *p, PGconn **out);

/** Give a dedicated connection back (kept for reuse when healthy and idle, else closed). */
void berth__pg_dedicated_put(berth__pg_pool *p, PGconn *c);

/**
 * Run one parameterised statement (text parameters, NULL for SQL NULL).
 * @param res_out  receives the result of a successful statement (PQclear it); NULL to drop it
 * @param binary   results in binary format (bytea as raw bytes)
 * @return 0, or the error mapped (berth__pg_error) with the message set
 */
int berth__pg_exec(PGresult **res_out, PGconn *c, const char *sql, int nparams,
                   const char *const *params, int binary);

/**
 * Run a statement prepared on `c` (berth__pg_pool_prepare) with text parameters (`lengths` and
 * `formats` as PQexecPrepared's; NULL: all text), as berth__pg_exec() does. On a connection
 * where it is not prepared (made outside a pool), outside a transaction, it runs st->sql
 * unprepared instead.
 */
int berth__pg_exec_stmt(PGresult **res_out, PGconn *c, const berth__pg_stmt *st, int nparams,
                        const char *const *params, const int *lengths, const int *formats,
                        int binary);

/**
 * PQexecParams (no parameter types) with a client-side deadline (statement_timeout plus a margin):
 * a server that does not answer in time has its connection ended (PQstatus is then CONNECTION_BAD)
 * and
 * `*timed_out` set. @return the last result (PQclear it; NULL when the query could not be sent
 * or the connection broke or timed out: see PQerrorMessage and `*timed_out`)
 */
PGresult *berth__pg_exec_params(PGconn *c, const char *sql, int nparams, const char *const *params,
                                const int *lengths, const int *formats, int binary,
                                bool *timed_out);

/**
 * Map a failed result to a code and set the message: a lost connection, a timeout or a server
 * shutting down BERTH_ENETWORK; a deadlock or serialization failure BERTH__PG_RETRY; disk full
 * BERTH_ENOSPACE; a unique violation BERTH_EEXISTS; a foreign key violation BERTH_ENOTFOUND;
 * anything else BERTH_EIO.
 */
int berth__pg_error(PGconn *c, const PGresult *r);

/** The body of a transaction: statements on `c`; returns 0 or an error code. */
typedef int (*berth__pg_txn_fn)(PGconn *c, void *ctx);

/**
 * Run `fn` on a pool connection, in a transaction when `txn`, committed when it returns 0.
 * Run again after a deadlock or serialization failure (a few times), and once on a fresh
 * connection when the connection broke before COMMIT was sent (the server rolled it back).
 * `fn` must therefore be safe to run again from the start.
 */
int berth__pg_run(berth__pg_pool *p, bool txn, berth__pg_txn_fn fn, void *ctx);

/** A number the database formatted (bigint, integer, count) at row `i`, column `j`. */
static inline int64_t berth__pg_int(const PGresult *r, int i, int j)
{
    return strtoll(PQgetvalue(r, i, j), NULL, 10);
}

/* Schema (schema.c). */

/** Check the schema on `c`, creating it in an empty database. @return as backend_new() */
int berth__pg_schema_open(PGconn *c);

#endif
