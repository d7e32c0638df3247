/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/conn.c: connections to PostgreSQL. A pool of `size` connections serves
 * requests (taken per statement or transaction); dedicated connections, outside that count,
 * are held for the life of an upload session's request or a gc claim. A connection that
 * breaks is closed and replaced; a statement on a connection that broke before it could have
 * changed anything is run again once.
 */
#include "backend/postgres/pg_internal.h"

#include <berth/errors.h>

#include "base/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int berth__pg_pool_init(berth__pg_pool *p, const berth_pg_options *opts)
{
    memset(p, 0, sizeof(*p));
    p->size = opts->pool_size ? opts->pool_size : 8;
    p->connect_timeout = opts->connect_timeout ? opts->connect_timeout : 5;
    p->statement_timeout_ms = opts->statement_timeout_ms ? opts->statement_timeout_ms : 15000;
    p->conninfo = strdup(opts->conninfo);
    p->idle = calloc(p->size, sizeof(PGconn *));
    p->spare = calloc(p->size, sizeof(PGconn *));
    if (!p->conninfo || !p->idle || !p->spare) {
        free(p->conninfo);
        free(p->idle);
        free(p->spare);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return 0;
}

void berth__pg_pool_dispose(berth__pg_pool *p)
{
    for (unsigned i = 0; i < p->nidle; i++) {
        PQfinish(p->idle[i]);
    }
    for (unsigned i = 0; i < p->nspare; i++) {
        PQfinish(p->spare[i]);
    }
    free(p->idle);
    free(p->spare);
    free(p->conninfo);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    memset(p, 0, sizeof(*p));
}

/* The reason of a failed connection, without host, port, user or database: the text after
 * libpq's last ": " on the first line ("Connection refused", "timeout expired"). */
static void reason(char *out, size_t cap, const char *msg)
{
    size_t n = strcspn(msg, "\n");
    const char *start = msg;
    for (size_t i = 0; i + 1 < n; i++) {
        if (msg[i] == ':' && msg[i + 1] == ' ') {
            start = msg + i + 2;
        }
    }
    n = strcspn(start, "\n");
    while (n > 0 && (start[n - 1] == ' ' || start[n - 1] == '\r')) {
        n--;
    }
    snprintf(out, cap, "%.*s", (int)n, start);
}

int berth__pg_connect(PGconn **out, const char *conninfo, unsigned connect_timeout,
                      unsigned statement_timeout_ms)
{
    char ct[16], st[64], why[160];
    snprintf(ct, sizeof(ct), "%u", connect_timeout ? connect_timeout : 5);
    /* defaults first: what the connection string says overrides them (expand_dbname). A server
     * that vanishes is noticed by TCP: keepalives after 5 s idle (3 probes 2 s apart), and
     * bytes it does not acknowledge within 5 s (tcp_user_timeout) end the connection;
     * statement_timeout bounds what a live server takes (lock waits included). */
    const char *const keys[] = {"connect_timeout",     "keepalives",       "keepalives_idle",
                                "keepalives_interval", "keepalives_count", "tcp_user_timeout",
                                "application_name",    "dbname",           NULL};
    const char *const vals[] = {ct, "1", "5", "2", "3", "5000", "berth", conninfo, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    if (!c) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (PQstatus(c) != CONNECTION_OK) {
        reason(why, sizeof(why), PQerrorMessage(c));
        PQfinish(c);
        return berth_error_set(BERTH_ENETWORK, "the metadata database cannot be reached: %s", why);
    }
    snprintf(st, sizeof(st), "SET statement_timeout = %u", statement_timeout_ms);
    PGresult *r = PQexec(c, st);
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok) {
        reason(why, sizeof(why), PQerrorMessage(c));
        PQfinish(c);
        return berth_error_set(BERTH_ENETWORK, "the metadata database failed a new session: %s",
                               why);
    }
    *out = c;
    return 0;
}

int berth__pg_pool_get(berth__pg_pool *p, PGconn **out)
{
    pthread_mutex_lock(&p->mu);
    while (p->nidle == 0 && p->nopen >= p->size) {
        pthread_cond_wait(&p->cv, &p->mu);
    }
    if (p->nidle > 0) {
        *out = p->idle[--p->nidle];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    p->nopen++;
    pthread_mutex_unlock(&p->mu);
    int rc = berth__pg_connect(out, p->conninfo, p->connect_timeout, p->statement_timeout_ms);
    if (rc < 0) {
        pthread_mutex_lock(&p->mu);
        p->nopen--;
        pthread_cond_signal(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    return rc;
}

static bool healthy(PGconn *c)
{
    return PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE;
}

void berth__pg_pool_put(berth__pg_pool *p, PGconn *c)
{
    bool keep = healthy(c);
    if (!keep) {
        PQfinish(c);
    }
    pthread_mutex_lock(&p->mu);
    if (keep) {
        p->idle[p->nidle++] = c;
    } else {
        p->nopen--;
    }
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

int berth__pg_dedicated_get(berth__pg_pool *p, PGconn **out)
{
    pthread_mutex_lock(&p->mu);
    if (p->nspare > 0) {
        *out = p->spare[--p->nspare];
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    pthread_mutex_unlock(&p->mu);
    return berth__pg_connect(out, p->conninfo, p->connect_timeout, p->statement_timeout_ms);
}

void berth__pg_dedicated_put(berth__pg_pool *p, PGconn *c)
{
    if (!c) {
        return;
    }
    if (healthy(c)) {
        pthread_mutex_lock(&p->mu);
        if (p->nspare < p->size) {
            p->spare[p->nspare++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&p->mu);
    }
    PQfinish(c);
}

int berth__pg_error(PGconn *c, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (PQstatus(c) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0 ||
        strcmp(state, "57P01") == 0 || strcmp(state, "57P02") == 0 || strcmp(state, "57P03") == 0) {
        char why[160];
        reason(why, sizeof(why), PQerrorMessage(c));
        return berth_error_set(BERTH_ENETWORK, "lost the connection to the metadata database%s%s",
                               why[0] ? ": " : "", why);
    }
    if (strcmp(state, "57014") == 0) {
        return berth_error_set(BERTH_ENETWORK, "the metadata database did not answer in time");
    }
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0) {
        berth_error_set(BERTH_EBUSY, "the metadata database aborted a transaction (%s)", state);
        return BERTH__PG_RETRY;
    }
    if (strcmp(state, "53100") == 0) {
        return berth_error_set(BERTH_ENOSPACE, "the metadata database is out of disk space");
    }
    if (strcmp(state, "23505") == 0) {
        return berth_error_set(BERTH_EEXISTS, "it exists already");
    }
    if (strcmp(state, "23503") == 0) {
        return berth_error_set(BERTH_ENOTFOUND, "it refers to what is no longer there");
    }
    return berth_error_set(BERTH_EIO, "the metadata database failed (SQLSTATE %s): %s", state,
                           primary ? primary : "");
}

int berth__pg_exec(PGresult **res_out, PGconn *c, const char *sql, int nparams,
                   const char *const *params, int binary)
{
    if (res_out) {
        *res_out = NULL;
    }
    PGresult *r = PQexecParams(c, sql, nparams, NULL, params, NULL, NULL, binary);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        int rc = berth__pg_error(c, r);
        PQclear(r);
        return rc;
    }
    if (res_out) {
        *res_out = r;
    } else {
        PQclear(r);
    }
    return 0;
}

int berth__pg_run(berth__pg_pool *p, bool txn, berth__pg_txn_fn fn, void *ctx)
{
    int rc = 0;
    bool reconnected = false;
    for (int attempt = 0; attempt < 8; attempt++) {
        PGconn *c = NULL;
        bool committing = false;
        rc = berth__pg_pool_get(p, &c);
        if (rc < 0) {
            return rc;
        }
        if (txn) {
            rc = berth__pg_exec(NULL, c, "BEGIN", 0, NULL, 0);
        }
        if (rc == 0) {
            rc = fn(c, ctx);
        }
        if (txn && PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
            if (rc == 0) {
                committing = true;
                rc = berth__pg_exec(NULL, c, "COMMIT", 0, NULL, 0);
            } else {
                PGresult *r = PQexec(c, "ROLLBACK");
                PQclear(r);
            }
        }
        bool broken = PQstatus(c) != CONNECTION_OK;
        berth__pg_pool_put(p, c);
        if (rc == BERTH__PG_RETRY) {
            continue;
        }
        if (broken && rc == BERTH_ENETWORK && !committing && !reconnected) {
            /* nothing was committed: the server rolls back what a lost session did */
            reconnected = true;
            berth__log(BERTH_LOG_WARN, "postgres: a connection broke; retrying on a new one");
            continue;
        }
        return rc;
    }
    return rc == BERTH__PG_RETRY ? BERTH_EBUSY : rc;
}
