/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/conn.c: connections to PostgreSQL. A pool of `size` connections serves
 * requests (taken per statement or transaction); dedicated connections, outside that count,
 * are held for the life of an upload session's request or a gc claim. A connection that
 * breaks is closed and replaced; a statement on a connection that broke before it could have
 * changed anything is run again once. A statement the server does not answer within its
 * statement_timeout and a margin (a frozen server: its kernel still acknowledges, so neither
 * keepalives nor tcp_user_timeout notice) is given up on and its connection closed.
 */
#include "backend/postgres/pg_internal.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include "base/log.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* How long a statement may go unanswered, milliseconds: the server's statement_timeout (it
 * cancels the statement itself) plus a margin. One per process: the pools of one process share
 * their settings. */
#define CLIENT_MARGIN_MS 5000
static atomic_uint client_deadline_ms = 15000 + CLIENT_MARGIN_MS;

static int prepare_on(berth__pg_pool *p, PGconn *c);

int berth__pg_pool_init(berth__pg_pool *p, const berth_pg_options *opts)
{
    memset(p, 0, sizeof(*p));
    p->size = opts->pool_size ? opts->pool_size : 8;
    p->connect_timeout = opts->connect_timeout ? opts->connect_timeout : 5;
    p->statement_timeout_ms = opts->statement_timeout_ms ? opts->statement_timeout_ms : 15000;
    atomic_store(&client_deadline_ms, p->statement_timeout_ms < UINT_MAX - CLIENT_MARGIN_MS
                                          ? p->statement_timeout_ms + CLIENT_MARGIN_MS
                                          : UINT_MAX);
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
    free(p->prepare);
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

/* The reason of a failed connection (reason()) without the password of `conninfo`: libpq quotes
 * pieces of a connection string it cannot parse (a bad percent-encoding, a whole URI), the
 * password among them. When the string does not parse, or the reason holds its password, the
 * reason is libpq's first line up to its first quote: "invalid percent-encoded token". */
static void safe_reason(char *why, size_t cap, const char *msg, const char *conninfo)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo, &err);
    bool strip = opts == NULL;

    reason(why, cap, msg);
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (strcmp(o->keyword, "password") == 0 && o->val && o->val[0] && strstr(why, o->val)) {
            strip = true;
        }
    }
    PQconninfoFree(opts);
    PQfreemem(err);
    if (strip && strchr(msg, '"')) {
        size_t n = strcspn(msg, "\"\n");
        while (n > 0 && (msg[n - 1] == ' ' || msg[n - 1] == ':')) {
            n--;
        }
        snprintf(why, cap,
                 "%.*s (the rest of libpq's message, which quotes database.url, is left "
                 "out)",
                 (int)n, msg);
    }
}

int berth__pg_connect(PGconn **out, const char *conninfo, unsigned connect_timeout,
                      unsigned statement_timeout_ms)
{
    char ct[16], st[64], why[256];
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
        safe_reason(why, sizeof(why), PQerrorMessage(c), conninfo);
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
    if (rc == 0) {
        rc = prepare_on(p, *out);
    }
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
    int rc = berth__pg_connect(out, p->conninfo, p->connect_timeout, p->statement_timeout_ms);
    return rc == 0 ? prepare_on(p, *out) : rc;
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* End a connection whose server does not answer: libpq then sees the end of the stream and
 * marks it broken (the pool closes it), and nothing waits on it again. */
static void abandon(PGconn *c)
{
    if (PQsocket(c) >= 0) {
        shutdown(PQsocket(c), SHUT_RDWR);
        PQconsumeInput(c);
    }
}

/* Collect the results of what was just sent on `c`, within the client-side deadline. */
static PGresult *collect(PGconn *c, bool *timed_out)
{
    PGresult *last = NULL, *r;
    int64_t deadline = now_ms() + atomic_load(&client_deadline_ms);

    for (;;) {
        while (PQisBusy(c)) {
            int64_t left = deadline - now_ms();
            struct pollfd pfd = {PQsocket(c), POLLIN, 0};
            int n;
            if (left <= 0) {
                *timed_out = true;
                abandon(c);
                PQclear(last);
                return NULL;
            }
            n = poll(&pfd, 1, left > INT_MAX ? INT_MAX : (int)left);
            if ((n < 0 && errno != EINTR) || (n > 0 && !PQconsumeInput(c))) {
                if (PQisBusy(c)) {
                    abandon(c); /* PQgetResult must not wait on it */
                }
                break;
            }
        }
        if (PQstatus(c) != CONNECTION_OK && PQisBusy(c)) {
            break;
        }
        if (!(r = PQgetResult(c))) {
            break;
        }
        if (last && PQresultStatus(last) != PGRES_COMMAND_OK &&
            PQresultStatus(last) != PGRES_TUPLES_OK) {
            PQclear(r); /* of several statements (a PREPARE list), the first failure counts */
            continue;
        }
        PQclear(last);
        last = r;
    }
    return last;
}

PGresult *berth__pg_exec_params(PGconn *c, const char *sql, int nparams, const char *const *params,
                                const int *lengths, const int *formats, int binary, bool *timed_out)
{
    *timed_out = false;
    if (!PQsendQueryParams(c, sql, nparams, NULL, params, lengths, formats, binary)) {
        return NULL;
    }
    return collect(c, timed_out);
}

/* The result of a finished statement as berth__pg_exec() gives it. */
static int outcome(PGresult **res_out, PGconn *c, PGresult *r, bool timed_out)
{
    if (timed_out) {
        return berth_error_set(BERTH_ENETWORK, "the metadata database did not answer in time");
    }
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

int berth__pg_exec_stmt(PGresult **res_out, PGconn *c, const berth__pg_stmt *st, int nparams,
                        const char *const *params, const int *lengths, const int *formats,
                        int binary)
{
    bool timed_out = false;
    PGresult *r = NULL;
    if (res_out) {
        *res_out = NULL;
    }
    if (PQsendQueryPrepared(c, st->name, nparams, params, lengths, formats, binary)) {
        r = collect(c, &timed_out);
    }
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "26000") == 0 && PQtransactionStatus(c) == PQTRANS_IDLE) {
        /* not prepared on this connection: as it is */
        PQclear(r);
        r = berth__pg_exec_params(c, st->sql, nparams, params, lengths, formats, binary,
                                  &timed_out);
    }
    return outcome(res_out, c, r, timed_out);
}

/* Run the pool's PREPARE list on a new connection `c`; on failure `c` is closed. */
static int prepare_on(berth__pg_pool *p, PGconn *c)
{
    bool timed_out = false;
    PGresult *r = NULL;
    if (!p->prepare) {
        return 0;
    }
    if (PQsendQuery(c, p->prepare)) {
        r = collect(c, &timed_out);
    }
    int rc = outcome(NULL, c, r, timed_out);
    if (rc < 0) {
        PQfinish(c);
    }
    return rc;
}

int berth__pg_pool_prepare(berth__pg_pool *p, PGconn *c, const berth__pg_stmt *stmts, size_t n)
{
    berth_buf sql = BERTH_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = berth_buf_printf(&sql, "PREPARE %s AS %s;\n", stmts[i].name, stmts[i].sql);
    }
    if (rc < 0) {
        berth_buf_dispose(&sql);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    bool timed_out = false;
    PGresult *r = NULL;
    if (PQsendQuery(c, sql.ptr)) {
        r = collect(c, &timed_out);
    }
    rc = outcome(NULL, c, r, timed_out);
    if (rc == 0) {
        p->prepare = berth_buf_detach(&sql);
    }
    berth_buf_dispose(&sql);
    return rc;
}

int berth__pg_exec(PGresult **res_out, PGconn *c, const char *sql, int nparams,
                   const char *const *params, int binary)
{
    bool timed_out;
    if (res_out) {
        *res_out = NULL;
    }
    PGresult *r = berth__pg_exec_params(c, sql, nparams, params, NULL, NULL, binary, &timed_out);
    return outcome(res_out, c, r, timed_out);
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
                bool timed_out;
                PGresult *r =
                    berth__pg_exec_params(c, "ROLLBACK", 0, NULL, NULL, NULL, 0, &timed_out);
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
