/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/meta.c: the metadata backend over PostgreSQL.
 *
 * Every statement is parameterised (PQexecParams, or prepared on each connection for the reads:
 * stmts[]); nothing a client sent is ever spliced into SQL. The checks the interface demands are
 * made inside the transaction that changes things, under row locks that exclude the change that
 * would invalidate them:
 * - manifest_put takes FOR SHARE on the links and child manifests it needs; blob_unlink takes
 *   FOR UPDATE on the link before it looks for references, and manifest_delete FOR UPDATE on
 *   the manifest before it looks for parents and tags: whichever comes second sees what the
 *   first committed (READ COMMITTED gives each statement a fresh snapshot).
 * - gc_blob_claim locks the blob's row FOR UPDATE SKIP LOCKED in a transaction kept open on a
 *   dedicated connection until gc_blob_release; blob_touch (an upsert of that row) and
 *   blob_link (an update of it, and the link's foreign key) wait for it.
 * - upload_acquire takes a session-level advisory lock on a dedicated connection kept for the
 *   request: a process that dies closes its connection and the lock goes with it.
 * - upload_create checks its limits under a transaction-level advisory lock.
 * - lock_acquire (the pull-through cache's one fetch per object across replicas) takes a
 *   session-level advisory lock on a dedicated connection kept until lock_release: waited for
 *   in slices under lock_timeout, so that no statement outlives statement_timeout.
 */
#include "backend/postgres/pg_internal.h"

#include <berth/buf.h>
#include <berth/reference.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Advisory lock key serialising upload creation while limits are checked. */
#define UPLOAD_LIMIT_LOCK "7310594371126116402"
#define UPLOAD_LOCK_KEY   "hashtextextended('berth.upload.' || $1, 0)"
#define NAMED_LOCK_KEY    "hashtextextended('berth.lock.' || $1, 0)"

typedef struct hold {
    char id[65];
    PGconn *c;
    pthread_t owner; /* the thread that took it: the only one that uses `c` */
    struct hold *next;
} hold;

typedef struct pg_backend {
    berth_meta_backend base;
    berth__pg_pool pool;
    pthread_mutex_t hmu;
    hold *holds; /* upload sessions this process holds */
} pg_backend;

struct berth_meta_claim {
    PGconn *c; /* in the transaction holding the blob's row lock */
    berth_digest digest;
};

#define PB(b) ((pg_backend *)(b))

typedef struct num {
    char s[24];
} num;

static num i64(int64_t v)
{
    num n;
    snprintf(n.s, sizeof(n.s), "%lld", (long long)v);
    return n;
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* A text[] literal of `n` strings, each quoted: a parameter value, never SQL. */
typedef const char *(*item_fn)(const void *items, size_t i);

static const char *item_str(const void *items, size_t i)
{
    return ((const char *const *)items)[i];
}

static const char *item_digest(const void *items, size_t i)
{
    return ((const berth_digest *)items)[i].str;
}

static int text_array(berth_buf *out, const void *items, size_t n, item_fn get)
{
    int rc = berth_buf_puts(out, "{");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *s = get(items, i);
        rc = berth_buf_puts(out, i ? ",\"" : "\"");
        for (; rc == 0 && *s; s++) {
            if (*s == '"' || *s == '\\') {
                rc = berth_buf_put(out, "\\", 1);
            }
            if (rc == 0) {
                rc = berth_buf_put(out, s, 1);
            }
        }
        if (rc == 0) {
            rc = berth_buf_puts(out, "\"");
        }
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "}");
    }
    return rc;
}

/* A code from a statement run outside berth__pg_run(), as the backend returns it. */
static int outward(int rc)
{
    return rc == BERTH__PG_RETRY ? BERTH_EBUSY : rc;
}

static int parse_digest(berth_digest *out, const char *s)
{
    if (berth_digest_parse_str(out, s) < 0) {
        return berth_error_set(BERTH_EIO, "the metadata database holds a bad digest");
    }
    return 0;
}

/* Repository r holds a manifest or a blob. One EXISTS over a UNION ALL, not two under an OR,
 * which the planner answers with hashes of whole tables: probed per row, it keeps the catalog's
 * keyset paging in the size of the page. */
#define SQL_HOLDS_SOMETHING                                                                        \
    "EXISTS (SELECT 1 FROM manifests m WHERE m.repository_id = r.id UNION ALL "                    \
    "SELECT 1 FROM repository_blobs l WHERE l.repository_id = r.id)"

#define SQL_REPO_LIVE "SELECT r.id FROM repositories r WHERE r.name = $1 AND " SQL_HOLDS_SOMETHING

#define UPLOAD_COLUMNS "id, repository, owner, size, hash_state, backend_state, created, updated"

/* The id of a repository by name, as a scalar subquery (NULL when there is none). */
#define SQL_REPO_ID "(SELECT id FROM repositories WHERE name = $1)"

/*
 * The statements of reads (and of the writes made outside a transaction), prepared on every
 * connection: each is parsed once per connection, and planned once its generic plan serves,
 * not anew on every call.
 */
enum {
    S_REPO_LIVE,
    S_CATALOG,
    S_CATALOG_ROWS,
    S_BLOB_TOUCH,
    S_BLOB_STAT_IN,
    S_BLOB_STAT_ANY,
    S_LINKS,
    S_TAG_GET,
    S_MANIFEST_GET,
    S_TAG_MANIFEST_GET,
    S_TAGS,
    S_TAG_NAMES,
    S_TAG_NAMES_ROWS,
    S_REFERRERS,
    S_MANIFESTS,
    S_UPLOAD_GET,
    S_UPLOADS,
    NSTMTS
};

static const berth__pg_stmt stmts[NSTMTS] = {
    [S_REPO_LIVE] = {"berth_repo_live", SQL_REPO_LIVE},
    /* catalog and tag names: a page as one text, "\n" between the names (no name holds one),
       in the order of the page: one value to send and read instead of a row each, about a
       third less work in the server and far less in libpq; each has a row-by-row twin for a
       page that cannot be split (names_page) */
    [S_CATALOG] = {"berth_catalog",
                   "SELECT string_agg(name, E'\\n') FROM (SELECT r.name FROM repositories r "
                   "WHERE r.name > $1 AND " SQL_HOLDS_SOMETHING " ORDER BY r.name "
                   "LIMIT $2::bigint) page"},
    [S_CATALOG_ROWS] = {"berth_catalog_rows",
                        "SELECT r.name FROM repositories r WHERE r.name > $1 "
                        "AND " SQL_HOLDS_SOMETHING " ORDER BY r.name LIMIT $2::bigint"},
    [S_BLOB_TOUCH] = {"berth_blob_touch",
                      "INSERT INTO blobs (digest, size, touched) VALUES ($1, $2::bigint, "
                      "$3::bigint) ON CONFLICT (digest) DO UPDATE SET touched = "
                      "GREATEST(blobs.touched, EXCLUDED.touched)"},
    [S_BLOB_STAT_IN] = {"berth_blob_stat_in",
                        "SELECT b.size FROM repository_blobs l JOIN blobs b ON b.digest = l.digest "
                        "WHERE l.repository_id = " SQL_REPO_ID " AND l.digest = $2"},
    [S_BLOB_STAT_ANY] = {"berth_blob_stat_any",
                         "SELECT size FROM blobs WHERE digest = $1 AND nlinks > 0"},
    [S_LINKS] = {"berth_links", "SELECT l.digest, b.size, l.linked FROM repository_blobs l "
                                "JOIN blobs b ON b.digest = l.digest "
                                "WHERE l.repository_id = " SQL_REPO_ID},
    [S_TAG_GET] = {"berth_tag_get", "SELECT m.digest FROM tags t JOIN manifests m "
                                    "ON m.id = t.manifest_id WHERE t.repository_id = " SQL_REPO_ID
                                    " AND t.name = $2"},
    [S_MANIFEST_GET] = {"berth_manifest_get",
                        "SELECT data, media_type FROM manifests WHERE repository_id = " SQL_REPO_ID
                        " AND digest = $2"},
    [S_TAG_MANIFEST_GET] = {"berth_tag_manifest_get",
                            "SELECT m.data, m.media_type, m.digest FROM tags t JOIN manifests m "
                            "ON m.id = t.manifest_id WHERE t.repository_id = " SQL_REPO_ID
                            " AND t.name = $2"},
    /* keyset pages on tags' primary key (repository_id, name): an index walk in name order */
    [S_TAGS] = {"berth_tags", "SELECT t.name, m.digest, t.pushed FROM tags t JOIN manifests m "
                              "ON m.id = t.manifest_id WHERE t.repository_id = " SQL_REPO_ID
                              " AND t.name > $2 ORDER BY t.name LIMIT $3::bigint"},
    [S_TAG_NAMES] = {"berth_tag_names",
                     "SELECT string_agg(name, E'\\n') FROM (SELECT name FROM tags "
                     "WHERE repository_id = " SQL_REPO_ID " AND name > $2 ORDER BY name "
                     "LIMIT $3::bigint) page"},
    [S_TAG_NAMES_ROWS] = {"berth_tag_names_rows",
                          "SELECT name FROM tags WHERE repository_id = " SQL_REPO_ID
                          " AND name > $2 ORDER BY name LIMIT $3::bigint"},
    [S_REFERRERS] = {"berth_referrers",
                     "SELECT digest, media_type, artifact_type, size FROM manifests "
                     "WHERE repository_id = " SQL_REPO_ID " AND subject = $2 AND digest > $3 "
                     "AND ($4::text IS NULL OR artifact_type = $4) ORDER BY digest "
                     "LIMIT $5::bigint"},
    [S_MANIFESTS] = {"berth_manifests",
                     "SELECT m.digest, m.media_type, m.artifact_type, m.subject, m.size, m.pushed, "
                     "(SELECT count(*) FROM tags t WHERE t.manifest_id = m.id), "
                     "(SELECT coalesce(string_agg(digest, ',' ORDER BY position), '') "
                     "FROM manifest_blobs WHERE manifest_id = m.id), "
                     "(SELECT coalesce(string_agg(child_digest, ',' ORDER BY position), '') "
                     "FROM manifest_references WHERE parent_id = m.id) "
                     "FROM manifests m WHERE m.repository_id = $1::bigint ORDER BY m.digest"},
    [S_UPLOAD_GET] = {"berth_upload_get",
                      "SELECT " UPLOAD_COLUMNS " FROM uploads WHERE id = $1 AND repository = $2"},
    [S_UPLOADS] = {"berth_uploads", "SELECT " UPLOAD_COLUMNS " FROM uploads"},
};

/* ---- one statement, retried on a fresh connection when the first one had broken ---------- */

typedef struct qctx {
    const berth__pg_stmt *st;
    int n;
    const char *const *params;
    int binary;
    PGresult *res;
} qctx;

static int q_fn(PGconn *c, void *ctx)
{
    qctx *q = ctx;
    PQclear(q->res);
    q->res = NULL;
    return berth__pg_exec_stmt(&q->res, c, q->st, q->n, q->params, NULL, NULL, q->binary);
}

/* A read, or a write that is the same when done twice: prepared statement `st` (S_...). */
static int query(pg_backend *b, PGresult **out, int st, int n, const char *const *params,
                 int binary)
{
    qctx q = {&stmts[st], n, params, binary, NULL};
    int rc = berth__pg_run(&b->pool, false, q_fn, &q);
    if (rc < 0) {
        PQclear(q.res);
        return rc;
    }
    *out = q.res;
    return 0;
}

/*
 * query() for a statement that gives at most one row: 1 with the row in *out (PQclear it), 0
 * when there is none (nothing to clear), or an error.
 */
static int query_row(pg_backend *b, PGresult **out, int st, int n, const char *const *params,
                     int binary)
{
    int rc = query(b, out, st, n, params, binary);
    if (rc == 0 && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* berth__pg_exec() of a statement that gives at most one row, as query_row() gives it. */
static int exec_row(PGconn *c, PGresult **out, const char *sql, int n, const char *const *params)
{
    int rc = berth__pg_exec(out, c, sql, n, params, 0);
    if (rc == 0 && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* A malloc()ed copy of value (i, j) of `r`, NUL-terminated, its length in `len_out`. */
static char *copy_value(const PGresult *r, int i, int j, size_t *len_out)
{
    size_t len = (size_t)PQgetlength(r, i, j);
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, PQgetvalue(r, i, j), len);
        s[len] = '\0';
    }
    if (len_out) {
        *len_out = len;
    }
    return s;
}

/* The id of `repo` when it holds a manifest or a blob. @return 0, BERTH_ENOTFOUND, ... */
static int repo_live(pg_backend *b, const char *repo, num *id_out)
{
    PGresult *r = NULL;
    const char *p[] = {repo};
    int rc = query_row(b, &r, S_REPO_LIVE, 1, p, 0);
    if (rc <= 0) {
        return rc < 0 ? rc : berth_error_set(BERTH_ENOTFOUND, "repository %s is not known", repo);
    }
    snprintf(id_out->s, sizeof(id_out->s), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

/* ---- repositories ------------------------------------------------------------------------- */

static int pg_repo_exists(berth_meta_backend *mb, const char *repo)
{
    num id;
    int rc = repo_live(PB(mb), repo, &id);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        return 0;
    }
    return rc < 0 ? rc : 1;
}

/* LIMIT n + 1 (NULL: all) and whether a page was cut. */
static const char *limit_of(num *buf, size_t n)
{
    if (n == 0) {
        return NULL;
    }
    *buf = i64((int64_t)n + 1);
    return buf->s;
}

static int page_rows(const PGresult *r, size_t n, bool *more_out)
{
    int rows = PQntuples(r);
    if (more_out) {
        *more_out = n > 0 && (size_t)rows > n;
    }
    return (n > 0 && (size_t)rows > n) ? (int)n : rows;
}

/* Is "a\nb\n..." (`len` bytes) in strictly ascending byte order, each name 1 to `max` bytes? */
static bool names_in_order(const char *s, size_t len, size_t max)
{
    const char *prev = NULL, *end = s + len;
    size_t plen = 0;
    while (s < end) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n == 0 || n > max) {
            return false;
        }
        if (prev) {
            int c = memcmp(prev, s, plen < n ? plen : n);
            if (c > 0 || (c == 0 && plen >= n)) {
                return false;
            }
        }
        prev = s;
        plen = n;
        s += n + 1;
    }
    return true;
}

/*
 * A page of names from statement `st` (string_agg of at most n + 1 ordered names; 0: all) to
 * `cb`, or, when the text cannot be split (not in order, or a name longer than `max`, which
 * the names berth stores never are), from its row-by-row twin `rows_st` (same parameters).
 * @return 1 for an empty page (nothing called), 0, the callback's code, or an error
 */
static int names_page(pg_backend *b, int st, int rows_st, const char *const *params, int nparams,
                      size_t n, size_t max, berth_meta_name_cb cb, void *payload, bool *more_out)
{
    PGresult *r = NULL;
    if (more_out) {
        *more_out = false;
    }
    int rc = query(b, &r, st, nparams, params, 0);
    if (rc < 0) {
        return rc;
    }
    if (PQgetisnull(r, 0, 0)) {
        PQclear(r);
        return 1;
    }
    const char *s = PQgetvalue(r, 0, 0), *end = s + PQgetlength(r, 0, 0);
    if (!names_in_order(s, (size_t)(end - s), max)) { /* (never seen) */
        PQclear(r);
        rc = query(b, &r, rows_st, nparams, params, 0);
        if (rc < 0) {
            return rc;
        }
        int rows = page_rows(r, n, more_out);
        for (int i = 0; rc == 0 && i < rows; i++) {
            rc = cb(PQgetvalue(r, i, 0), payload);
        }
        PQclear(r);
        return rows == 0 && rc == 0 ? 1 : rc;
    }
    char name[BERTH_NAME_MAX + 1];
    for (size_t count = 0; rc == 0 && s < end; count++) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        size_t k = nl ? (size_t)(nl - s) : (size_t)(end - s);
        if (n > 0 && count == n) {
            if (more_out) {
                *more_out = true; /* the page's n + 1st */
            }
            break;
        }
        memcpy(name, s, k);
        name[k] = '\0';
        rc = cb(name, payload);
        s += k + 1;
    }
    PQclear(r);
    return rc;
}

static int pg_catalog(berth_meta_backend *mb, const char *last, size_t n, berth_meta_name_cb cb,
                      void *payload, bool *more_out)
{
    num lim;
    const char *p[] = {last ? last : "", limit_of(&lim, n)};
    int rc = names_page(PB(mb), S_CATALOG, S_CATALOG_ROWS, p, 2, n, BERTH_NAME_MAX, cb, payload,
                        more_out);
    return rc == 1 ? 0 : rc;
}

/* ---- blobs of a repository ---------------------------------------------------------------- */

static int pg_blob_touch(berth_meta_backend *mb, const berth_digest *digest, uint64_t size)
{
    num sz = i64((int64_t)size), t = i64(now());
    const char *p[] = {digest->str, sz.s, t.s};
    PGresult *r = NULL;
    int rc = query(PB(mb), &r, S_BLOB_TOUCH, 3, p, 0);
    PQclear(r);
    return rc;
}

typedef struct link_ctx {
    const char *repo;
    const berth_digest *digest;
    int64_t now;
} link_ctx;

static int link_fn(PGconn *c, void *ctx)
{
    link_ctx *l = ctx;
    num t = i64(l->now);
    const char *p1[] = {l->digest->str, t.s};
    PGresult *r = NULL;
    /* the row lock: waits while gc holds a claim on the blob */
    int rc = berth__pg_exec(&r, c,
                            "UPDATE blobs SET touched = GREATEST(touched, $2::bigint) "
                            "WHERE digest = $1 RETURNING size",
                            2, p1, 0);
    if (rc < 0) {
        return rc;
    }
    int rows = PQntuples(r);
    PQclear(r);
    if (rows == 0) {
        return berth_error_set(BERTH_ENOTFOUND, "blob %s is not known", l->digest->str);
    }
    const char *p2[] = {l->repo, l->digest->str, t.s};
    return berth__pg_exec(NULL, c,
                          "INSERT INTO repository_blobs (repository_id, digest, linked) "
                          "VALUES (berth_repository_id($1, $3::bigint), $2, $3::bigint) "
                          "ON CONFLICT (repository_id, digest) DO UPDATE SET linked = "
                          "EXCLUDED.linked",
                          3, p2, 0);
}

static int pg_blob_link(berth_meta_backend *mb, const char *repo, const berth_digest *digest,
                        uint64_t size)
{
    link_ctx l = {repo, digest, now()};
    return berth__pg_run(&PB(mb)->pool, true, link_fn, &l);
}

static int pg_blob_stat(berth_meta_backend *mb, const char *repo, const berth_digest *digest,
                        uint64_t *size_out)
{
    PGresult *r = NULL;
    const char *p[] = {repo ? repo : digest->str, digest->str};
    int rc = repo ? query_row(PB(mb), &r, S_BLOB_STAT_IN, 2, p, 0)
                  : query_row(PB(mb), &r, S_BLOB_STAT_ANY, 1, p, 0);
    if (rc <= 0) {
        return rc < 0 ? rc : berth_error_set(BERTH_ENOTFOUND, "blob %s is not known", digest->str);
    }
    if (size_out) {
        *size_out = (uint64_t)berth__pg_int(r, 0, 0);
    }
    PQclear(r);
    return 0;
}

typedef struct unlink_ctx {
    const char *repo;
    const berth_digest *digest;
    int64_t older_than;
} unlink_ctx;

static int unlink_fn(PGconn *c, void *ctx)
{
    unlink_ctx *u = ctx;
    PGresult *r = NULL;
    const char *p1[] = {u->repo, u->digest->str};
    int rc = berth__pg_exec(&r, c,
                            "SELECT r.id, EXISTS (SELECT 1 FROM manifests m WHERE "
                            "m.repository_id = r.id AND m.digest = $2) "
                            "FROM repositories r WHERE r.name = $1",
                            2, p1, 0);
    if (rc < 0) {
        return rc;
    }
    if (PQntuples(r) == 0 || PQgetvalue(r, 0, 1)[0] == 't') {
        PQclear(r);
        return berth_error_set(BERTH_ENOTFOUND, "blob %s is not in repository %s", u->digest->str,
                               u->repo);
    }
    num id;
    snprintf(id.s, sizeof(id.s), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    const char *p2[] = {id.s, u->digest->str};
    /* the blob's row first, as blob_link takes it (and the trigger will): one lock order */
    const char *p3[] = {u->digest->str};
    rc = berth__pg_exec(NULL, c, "SELECT 1 FROM blobs WHERE digest = $1 FOR NO KEY UPDATE", 1, p3,
                        0);
    if (rc < 0) {
        return rc;
    }
    /* the lock manifest_put's FOR SHARE conflicts with */
    rc = exec_row(c, &r,
                  "SELECT linked FROM repository_blobs WHERE repository_id = $1::bigint "
                  "AND digest = $2 FOR UPDATE",
                  2, p2);
    if (rc <= 0) {
        return rc < 0 ? rc
                      : berth_error_set(BERTH_ENOTFOUND, "blob %s is not in repository %s",
                                        u->digest->str, u->repo);
    }
    int64_t linked = berth__pg_int(r, 0, 0);
    PQclear(r);
    rc = berth__pg_exec(&r, c,
                        "(SELECT m.digest FROM manifest_blobs mb JOIN manifests m "
                        "ON m.id = mb.manifest_id WHERE mb.repository_id = $1::bigint AND "
                        "mb.digest = $2 LIMIT 1) UNION ALL "
                        "(SELECT m.digest FROM manifest_references mr JOIN manifests m "
                        "ON m.id = mr.parent_id WHERE mr.repository_id = $1::bigint AND "
                        "mr.child_digest = $2 LIMIT 1) LIMIT 1",
                        2, p2, 0);
    if (rc < 0) {
        return rc;
    }
    if (PQntuples(r) > 0) {
        rc = berth_error_set(BERTH_EINUSE, "blob %s is referenced by manifest %s", u->digest->str,
                             PQgetvalue(r, 0, 0));
        PQclear(r);
        return rc;
    }
    PQclear(r);
    if (u->older_than > 0 && linked >= u->older_than) {
        return berth_error_set(BERTH_EBUSY, "blob %s was linked again", u->digest->str);
    }
    return berth__pg_exec(NULL, c,
                          "DELETE FROM repository_blobs WHERE repository_id = $1::bigint AND "
                          "digest = $2",
                          2, p2, 0);
}

static int pg_blob_unlink(berth_meta_backend *mb, const char *repo, const berth_digest *digest,
                          int64_t older_than)
{
    unlink_ctx u = {repo, digest, older_than};
    return berth__pg_run(&PB(mb)->pool, true, unlink_fn, &u);
}

static int pg_links(berth_meta_backend *mb, const char *repo, berth_meta_link_cb cb, void *payload)
{
    PGresult *r = NULL;
    const char *p[] = {repo};
    int rc = query(PB(mb), &r, S_LINKS, 1, p, 0);
    if (rc < 0) {
        return rc;
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        berth_digest d;
        rc = parse_digest(&d, PQgetvalue(r, i, 0));
        if (rc == 0) {
            rc = cb(&d, (uint64_t)berth__pg_int(r, i, 1), berth__pg_int(r, i, 2), payload);
        }
    }
    PQclear(r);
    return rc;
}

/* ---- manifests and tags ------------------------------------------------------------------- */

typedef struct put_ctx {
    const char *repo;
    const berth_meta_manifest *m;
    const char **tags; /* sorted, without repeats */
    size_t ntags;
    berth_digest *missing_out;
    int64_t now;
} put_ctx;

static bool in_result(const PGresult *r, const char *s)
{
    for (int i = 0; i < PQntuples(r); i++) {
        if (strcmp(PQgetvalue(r, i, 0), s) == 0) {
            return true;
        }
    }
    return false;
}

/* Lock the rows `sql` selects FOR SHARE and name the first of `want` not among them. */
static int need_all(PGconn *c, put_ctx *x, const char *sql, const char *rid,
                    const berth_digest *want, size_t n, const char *what)
{
    berth_buf arr = BERTH_BUF_INIT;
    PGresult *r = NULL;
    int rc = text_array(&arr, want, n, item_digest);
    if (rc == 0) {
        const char *p[] = {rid, arr.ptr};
        rc = berth__pg_exec(&r, c, sql, 2, p, 0);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (!in_result(r, want[i].str)) {
            if (x->missing_out) {
                *x->missing_out = want[i];
            }
            rc = berth_error_set(BERTH_ENOTFOUND, "%s %s is not in repository %s", what,
                                 want[i].str, x->repo);
        }
    }
    PQclear(r);
    berth_buf_dispose(&arr);
    return rc;
}

static int put_refs(PGconn *c, const char *sql, const char *mid, const char *rid,
                    const berth_digest *items, size_t n)
{
    if (n == 0) {
        return 0;
    }
    berth_buf arr = BERTH_BUF_INIT;
    int rc = text_array(&arr, items, n, item_digest);
    if (rc == 0) {
        const char *p[] = {mid, rid, arr.ptr};
        rc = berth__pg_exec(NULL, c, sql, 3, p, 0);
    }
    berth_buf_dispose(&arr);
    return rc;
}

static int put_fn(PGconn *c, void *ctx)
{
    put_ctx *x = ctx;
    const berth_meta_manifest *m = x->m;
    PGresult *r = NULL;
    num t = i64(x->now), rid, mid;
    const char *p1[] = {x->repo, t.s};
    int rc = berth__pg_exec(&r, c, "SELECT berth_repository_id($1, $2::bigint)", 2, p1, 0);
    if (rc < 0) {
        return rc;
    }
    snprintf(rid.s, sizeof(rid.s), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (!m->sparse && m->nblobs > 0) {
        rc = need_all(c, x,
                      "SELECT digest FROM repository_blobs WHERE repository_id = $1::bigint "
                      "AND digest = ANY ($2::text[]) FOR SHARE",
                      rid.s, m->blobs, m->nblobs, "blob");
    }
    if (rc == 0 && !m->sparse && m->nchildren > 0) {
        rc = need_all(c, x,
                      "SELECT digest FROM manifests WHERE repository_id = $1::bigint "
                      "AND digest = ANY ($2::text[]) FOR SHARE",
                      rid.s, m->children, m->nchildren, "manifest");
    }
    if (rc < 0) {
        return rc;
    }

    num size = i64((int64_t)m->size);
    const char *p2[] = {rid.s,
                        m->digest.str,
                        m->media_type,
                        m->artifact_type,
                        m->has_subject ? m->subject.str : NULL,
                        size.s,
                        m->data ? (const char *)m->data : "",
                        t.s};
    int lens[8] = {0, 0, 0, 0, 0, 0, m->data ? (int)m->size : 0, 0};
    int fmts[8] = {0, 0, 0, 0, 0, 0, 1, 0}; /* the bytes as they are (binary bytea) */
    bool timed_out;
    r = berth__pg_exec_params(c,
                              "INSERT INTO manifests (repository_id, digest, media_type, "
                              "artifact_type, subject, size, data, pushed) VALUES ($1::bigint, "
                              "$2, $3, $4, $5, $6::bigint, $7::bytea, $8::bigint) "
                              "ON CONFLICT (repository_id, digest) DO NOTHING RETURNING id",
                              8, p2, lens, fmts, 0, &timed_out);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = berth__pg_error(c, r);
        PQclear(r);
        return rc;
    }
    bool inserted = PQntuples(r) == 1;
    if (inserted) {
        snprintf(mid.s, sizeof(mid.s), "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    if (!inserted) {
        /* stored already: it keeps its bytes, is as young as this push (gc's grace and its
           re-check), and is locked against a concurrent delete */
        const char *p3[] = {rid.s, m->digest.str, t.s};
        rc = exec_row(c, &r,
                      "UPDATE manifests SET pushed = GREATEST(pushed, $3::bigint) "
                      "WHERE repository_id = $1::bigint AND digest = $2 RETURNING id",
                      3, p3);
        if (rc <= 0) {
            return rc < 0 ? rc : BERTH__PG_RETRY; /* deleted meanwhile: insert it afresh */
        }
        snprintf(mid.s, sizeof(mid.s), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        rc = 0;
    } else {
        rc = put_refs(c,
                      "INSERT INTO manifest_blobs (manifest_id, position, repository_id, digest) "
                      "SELECT $1::bigint, o, $2::bigint, d FROM unnest($3::text[]) "
                      "WITH ORDINALITY AS t (d, o)",
                      mid.s, rid.s, m->blobs, m->nblobs);
        if (rc == 0) {
            rc = put_refs(c,
                          "INSERT INTO manifest_references (parent_id, position, repository_id, "
                          "child_digest) SELECT $1::bigint, o, $2::bigint, d FROM "
                          "unnest($3::text[]) WITH ORDINALITY AS t (d, o)",
                          mid.s, rid.s, m->children, m->nchildren);
        }
        if (rc < 0) {
            return rc;
        }
    }
    if (x->ntags > 0) {
        berth_buf arr = BERTH_BUF_INIT;
        rc = text_array(&arr, x->tags, x->ntags, item_str);
        if (rc == 0) {
            const char *p4[] = {rid.s, mid.s, t.s, arr.ptr};
            rc = berth__pg_exec(NULL, c,
                                "INSERT INTO tags (repository_id, name, manifest_id, pushed) "
                                "SELECT $1::bigint, n, $2::bigint, $3::bigint FROM "
                                "unnest($4::text[]) AS t (n) ON CONFLICT (repository_id, name) "
                                "DO UPDATE SET manifest_id = EXCLUDED.manifest_id, "
                                "pushed = EXCLUDED.pushed",
                                4, p4, 0);
        }
        berth_buf_dispose(&arr);
    }
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int pg_manifest_put(berth_meta_backend *mb, const char *repo, const berth_meta_manifest *m,
                           const char *const *tags, size_t ntags, berth_digest *missing_out)
{
    /* tags in one order in every transaction (no deadlock between two puts), once each */
    const char **sorted = NULL;
    size_t n = 0;
    if (ntags > 0) {
        sorted = malloc(ntags * sizeof(*sorted));
        if (!sorted) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        memcpy(sorted, tags, ntags * sizeof(*sorted));
        qsort(sorted, ntags, sizeof(*sorted), cmp_str);
        for (size_t i = 0; i < ntags; i++) {
            if (n == 0 || strcmp(sorted[n - 1], sorted[i]) != 0) {
                sorted[n++] = sorted[i];
            }
        }
    }
    put_ctx x = {repo, m, sorted, n, missing_out, m->pushed > 0 ? m->pushed : now()};
    int rc = berth__pg_run(&PB(mb)->pool, true, put_fn, &x);
    free(sorted);
    return rc;
}

static int pg_tag_get(berth_meta_backend *mb, const char *repo, const char *tag,
                      berth_digest *digest_out)
{
    PGresult *r = NULL;
    const char *p[] = {repo, tag};
    int rc = query_row(PB(mb), &r, S_TAG_GET, 2, p, 0);
    if (rc <= 0) {
        return rc < 0 ? rc
                      : berth_error_set(BERTH_ENOTFOUND, "tag %s is not known in repository %s",
                                        tag, repo);
    }
    rc = parse_digest(digest_out, PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

/* Row 0 of `r` (data, media_type as binary text) into `out`. */
static int fill_doc(berth_meta_blob_doc *out, const PGresult *r)
{
    out->data = copy_value(r, 0, 0, &out->len);
    out->media_type = copy_value(r, 0, 1, NULL);
    if (!out->data || !out->media_type) {
        free(out->data);
        free(out->media_type);
        out->data = out->media_type = NULL;
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return 0;
}

static int pg_manifest_get(berth_meta_backend *mb, const char *repo, const berth_digest *digest,
                           berth_meta_blob_doc *out)
{
    PGresult *r = NULL;
    const char *p[] = {repo, digest->str};
    int rc = query_row(PB(mb), &r, S_MANIFEST_GET, 2, p, 1);
    if (rc <= 0) {
        return rc < 0 ? rc
                      : berth_error_set(BERTH_ENOTFOUND, "manifest %s is not in repository %s",
                                        digest->str, repo);
    }
    rc = fill_doc(out, r);
    PQclear(r);
    return rc;
}

/* One statement: the tag's manifest as it is now (never cached: tags move). */
static int pg_tag_manifest_get(berth_meta_backend *mb, const char *repo, const char *tag,
                               berth_digest *digest_out, berth_meta_blob_doc *out)
{
    PGresult *r = NULL;
    const char *p[] = {repo, tag};
    int rc = query_row(PB(mb), &r, S_TAG_MANIFEST_GET, 2, p, 1);
    if (rc <= 0) {
        return rc < 0 ? rc
                      : berth_error_set(BERTH_ENOTFOUND, "tag %s is not known in repository %s",
                                        tag, repo);
    }
    rc = parse_digest(digest_out, PQgetvalue(r, 0, 2)); /* binary text: the bytes, NUL-ended */
    if (rc == 0) {
        rc = fill_doc(out, r);
    }
    PQclear(r);
    return rc;
}

typedef struct mdel_ctx {
    const char *repo;
    const berth_digest *digest;
    int64_t older_than;
} mdel_ctx;

static int mdel_fn(PGconn *c, void *ctx)
{
    mdel_ctx *d = ctx;
    PGresult *r = NULL;
    const char *p1[] = {d->repo, d->digest->str};
    int rc = exec_row(c, &r,
                      "SELECT m.id, m.pushed, r.id FROM repositories r JOIN manifests m "
                      "ON m.repository_id = r.id WHERE r.name = $1 AND m.digest = $2 "
                      "FOR UPDATE OF m",
                      2, p1);
    if (rc <= 0) {
        return rc < 0 ? rc
                      : berth_error_set(BERTH_ENOTFOUND, "manifest %s is not in repository %s",
                                        d->digest->str, d->repo);
    }
    num mid, rid;
    snprintf(mid.s, sizeof(mid.s), "%s", PQgetvalue(r, 0, 0));
    int64_t pushed = berth__pg_int(r, 0, 1);
    snprintf(rid.s, sizeof(rid.s), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    const char *p2[] = {rid.s, d->digest->str, mid.s};
    rc = berth__pg_exec(&r, c,
                        "SELECT p.digest FROM manifest_references mr JOIN manifests p "
                        "ON p.id = mr.parent_id WHERE mr.repository_id = $1::bigint AND "
                        "mr.child_digest = $2 AND mr.parent_id <> $3::bigint LIMIT 1",
                        3, p2, 0);
    if (rc < 0) {
        return rc;
    }
    if (PQntuples(r) > 0) {
        rc = berth_error_set(BERTH_EINUSE, "manifest %s is referenced by index %s", d->digest->str,
                             PQgetvalue(r, 0, 0));
        PQclear(r);
        return rc;
    }
    PQclear(r);
    if (d->older_than > 0) {
        if (pushed >= d->older_than) {
            return berth_error_set(BERTH_EBUSY, "manifest %s was pushed again", d->digest->str);
        }
        const char *p3[] = {mid.s};
        rc = berth__pg_exec(&r, c,
                            "SELECT EXISTS (SELECT 1 FROM tags WHERE manifest_id = "
                            "$1::bigint)",
                            1, p3, 0);
        if (rc < 0) {
            return rc;
        }
        bool tagged = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (tagged) {
            return berth_error_set(BERTH_EBUSY, "manifest %s is tagged", d->digest->str);
        }
    }
    const char *p4[] = {mid.s};
    return berth__pg_exec(NULL, c, "DELETE FROM manifests WHERE id = $1::bigint", 1, p4, 0);
}

static int pg_manifest_delete(berth_meta_backend *mb, const char *repo, const berth_digest *digest,
                              int64_t older_than)
{
    mdel_ctx d = {repo, digest, older_than};
    return berth__pg_run(&PB(mb)->pool, true, mdel_fn, &d);
}

typedef struct tdel_ctx {
    const char *repo, *tag;
    const berth_digest *digest;
} tdel_ctx;

static int tdel_fn(PGconn *c, void *ctx)
{
    tdel_ctx *d = ctx;
    PGresult *r = NULL;
    const char *p[] = {d->repo, d->tag, d->digest ? d->digest->str : NULL};
    int rc = berth__pg_exec(&r, c,
                            "DELETE FROM tags t USING repositories r, manifests m "
                            "WHERE r.name = $1 AND t.repository_id = r.id AND t.name = $2 "
                            "AND m.id = t.manifest_id AND ($3::text IS NULL OR m.digest = $3) "
                            "RETURNING 1",
                            3, p, 0);
    if (rc < 0) {
        return rc;
    }
    int rows = PQntuples(r);
    PQclear(r);
    if (rows > 0) {
        return 0;
    }
    if (d->digest) {
        rc = berth__pg_exec(&r, c,
                            "SELECT 1 FROM repositories r JOIN tags t ON t.repository_id = r.id "
                            "WHERE r.name = $1 AND t.name = $2",
                            2, p, 0);
        if (rc < 0) {
            return rc;
        }
        rows = PQntuples(r);
        PQclear(r);
        if (rows > 0) {
            return berth_error_set(BERTH_EBUSY, "tag %s points at another manifest now", d->tag);
        }
    }
    return berth_error_set(BERTH_ENOTFOUND, "tag %s is not known in repository %s", d->tag,
                           d->repo);
}

static int pg_tag_delete(berth_meta_backend *mb, const char *repo, const char *tag,
                         const berth_digest *digest)
{
    tdel_ctx d = {repo, tag, digest};
    return berth__pg_run(&PB(mb)->pool, true, tdel_fn, &d);
}

/* 0 when `repo` holds a manifest or a blob, else BERTH_ENOTFOUND (or an error). */
static int repo_there(pg_backend *b, const char *repo)
{
    int rc = pg_repo_exists(&b->base, repo);
    return rc < 0    ? rc
           : rc == 0 ? berth_error_set(BERTH_ENOTFOUND, "repository %s is not known", repo)
                     : 0;
}

/*
 * A page of a repository's things by statement `st` (its $1 the repository's name), one round
 * trip. Only an empty page asks whether the repository is there: a row proves it (a tag or a
 * referrer is a manifest's). `*out` is NULL after an empty page.
 */
static int repo_page(pg_backend *b, PGresult **out, int st, const char *const *params, int nparams,
                     bool *more_out)
{
    if (more_out) {
        *more_out = false;
    }
    int rc = query(b, out, st, nparams, params, 0);
    if (rc == 0 && PQntuples(*out) == 0) {
        PQclear(*out);
        *out = NULL;
        return repo_there(b, params[0]);
    }
    return rc;
}

static int pg_tags(berth_meta_backend *mb, const char *repo, const char *last, size_t n,
                   berth_meta_tag_cb cb, void *payload, bool *more_out)
{
    PGresult *r = NULL;
    num lim;
    const char *p[] = {repo, last ? last : "", limit_of(&lim, n)};
    int rc = repo_page(PB(mb), &r, S_TAGS, p, 3, more_out);
    if (rc < 0 || !r) {
        return rc;
    }
    int rows = page_rows(r, n, more_out);
    for (int i = 0; rc == 0 && i < rows; i++) {
        berth_digest d;
        rc = parse_digest(&d, PQgetvalue(r, i, 1));
        if (rc == 0) {
            rc = cb(PQgetvalue(r, i, 0), &d, berth__pg_int(r, i, 2), payload);
        }
    }
    PQclear(r);
    return rc;
}

/* The names alone: one walk of tags' primary key, no join, the page as one value. */
static int pg_tag_names(berth_meta_backend *mb, const char *repo, const char *last, size_t n,
                        berth_meta_name_cb cb, void *payload, bool *more_out)
{
    num lim;
    const char *p[] = {repo, last ? last : "", limit_of(&lim, n)};
    int rc = names_page(PB(mb), S_TAG_NAMES, S_TAG_NAMES_ROWS, p, 3, n, BERTH_TAG_MAX, cb, payload,
                        more_out);
    return rc == 1 ? repo_there(PB(mb), repo) : rc; /* an empty page: is the repository there? */
}

static int pg_referrers(berth_meta_backend *mb, const char *repo, const berth_digest *subject,
                        const char *artifact_type, const char *last, size_t n,
                        berth_meta_referrer_cb cb, void *payload, bool *more_out)
{
    num lim;
    PGresult *r = NULL;
    const char *p[] = {repo, subject->str, last ? last : "", artifact_type, limit_of(&lim, n)};
    int rc = repo_page(PB(mb), &r, S_REFERRERS, p, 5, more_out);
    if (rc < 0 || !r) {
        return rc;
    }
    int rows = page_rows(r, n, more_out);
    for (int i = 0; rc == 0 && i < rows; i++) {
        berth_meta_referrer ref = {0};
        rc = parse_digest(&ref.digest, PQgetvalue(r, i, 0));
        ref.media_type = PQgetvalue(r, i, 1);
        ref.artifact_type = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
        ref.size = (uint64_t)berth__pg_int(r, i, 3);
        if (rc == 0) {
            rc = cb(&ref, payload);
        }
    }
    PQclear(r);
    return rc;
}

/* "d1,d2,..." (string_agg) into a malloc()ed array. */
static int digest_list(berth_digest **out, size_t *n_out, const char *s)
{
    *out = NULL;
    *n_out = 0;
    if (!s[0]) {
        return 0;
    }
    size_t n = 1;
    for (const char *p = s; *p; p++) {
        n += *p == ',';
    }
    berth_digest *d = calloc(n, sizeof(*d));
    if (!d) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = strcspn(s, ",");
        if (berth_digest_parse(&d[i], s, len) < 0) {
            free(d);
            return berth_error_set(BERTH_EIO, "the metadata database holds a bad digest");
        }
        s += len + (s[len] == ',');
    }
    *out = d;
    *n_out = n;
    return 0;
}

static int pg_manifests(berth_meta_backend *mb, const char *repo, berth_meta_manifest_cb cb,
                        void *payload)
{
    num rid;
    PGresult *r = NULL;
    int rc = repo_live(PB(mb), repo, &rid);
    if (rc < 0) {
        return rc;
    }
    const char *p[] = {rid.s};
    rc = query(PB(mb), &r, S_MANIFESTS, 1, p, 0);
    if (rc < 0) {
        return rc;
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        berth_meta_manifest m = {0};
        berth_digest *blobs = NULL, *children = NULL;
        rc = parse_digest(&m.digest, PQgetvalue(r, i, 0));
        m.media_type = PQgetvalue(r, i, 1);
        m.artifact_type = PQgetisnull(r, i, 2) ? NULL : PQgetvalue(r, i, 2);
        if (rc == 0 && !PQgetisnull(r, i, 3)) {
            m.has_subject = true;
            rc = parse_digest(&m.subject, PQgetvalue(r, i, 3));
        }
        m.size = (uint64_t)berth__pg_int(r, i, 4);
        m.pushed = berth__pg_int(r, i, 5);
        m.ntags = (unsigned)berth__pg_int(r, i, 6);
        if (rc == 0) {
            rc = digest_list(&blobs, &m.nblobs, PQgetvalue(r, i, 7));
        }
        if (rc == 0) {
            rc = digest_list(&children, &m.nchildren, PQgetvalue(r, i, 8));
        }
        m.blobs = blobs;
        m.children = children;
        if (rc == 0) {
            rc = cb(&m, payload);
        }
        free(blobs);
        free(children);
    }
    PQclear(r);
    return rc;
}

/* ---- upload sessions ---------------------------------------------------------------------- */

typedef struct ucreate_ctx {
    const berth_meta_upload *u;
    const berth_meta_upload_limits *limits;
} ucreate_ctx;

static int ucreate_fn(PGconn *c, void *ctx)
{
    ucreate_ctx *x = ctx;
    const berth_meta_upload *u = x->u;
    const berth_meta_upload_limits *l = x->limits;
    const char *owner = u->owner ? u->owner : "";
    PGresult *r = NULL;
    int rc = 0;
    if (l && (l->total || l->per_repo || l->per_owner)) {
        rc = berth__pg_exec(NULL, c, "SELECT pg_advisory_xact_lock(" UPLOAD_LIMIT_LOCK ")", 0, NULL,
                            0);
        const char *p[] = {u->repo, owner};
        if (rc == 0) {
            rc = berth__pg_exec(&r, c,
                                "SELECT count(*), count(*) FILTER (WHERE repository = $1), "
                                "count(*) FILTER (WHERE owner = $2) FROM uploads",
                                2, p, 0);
        }
        if (rc < 0) {
            return rc;
        }
        uint64_t total = (uint64_t)berth__pg_int(r, 0, 0);
        uint64_t repo = (uint64_t)berth__pg_int(r, 0, 1);
        uint64_t mine = (uint64_t)berth__pg_int(r, 0, 2);
        PQclear(r);
        if (l->total && total >= l->total) {
            return berth_error_set(BERTH_EBUSY, "too many upload sessions (%zu)", l->total);
        }
        if (l->per_repo && repo >= l->per_repo) {
            return berth_error_set(BERTH_EBUSY, "too many upload sessions in repository %s (%zu)",
                                   u->repo, l->per_repo);
        }
        if (l->per_owner && mine >= l->per_owner) {
            return berth_error_set(BERTH_EBUSY, "too many upload sessions of one client (%zu)",
                                   l->per_owner);
        }
    }
    num created = i64(u->created ? u->created : now());
    const char *p[] = {
        u->id, u->repo, owner, u->hash_state ? u->hash_state : "", u->backend_state, created.s};
    rc = berth__pg_exec(NULL, c,
                        "INSERT INTO uploads (id, repository, owner, size, hash_state, "
                        "backend_state, created, updated) VALUES ($1, $2, $3, 0, $4, $5, "
                        "$6::bigint, $6::bigint)",
                        6, p, 0);
    if (rc == BERTH_EEXISTS) {
        rc = berth_error_set(BERTH_EEXISTS, "upload session %s exists already", u->id);
    }
    return rc;
}

static int pg_upload_create(berth_meta_backend *mb, const berth_meta_upload *u,
                            const berth_meta_upload_limits *limits)
{
    ucreate_ctx x = {u, limits};
    return berth__pg_run(&PB(mb)->pool, true, ucreate_fn, &x);
}

static int fill_upload(berth_meta_upload *out, const PGresult *r, int i)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->id, sizeof(out->id), "%s", PQgetvalue(r, i, 0));
    out->repo = strdup(PQgetvalue(r, i, 1));
    out->owner = strdup(PQgetvalue(r, i, 2));
    out->size = (uint64_t)berth__pg_int(r, i, 3);
    out->hash_state = strdup(PQgetvalue(r, i, 4));
    out->backend_state = PQgetisnull(r, i, 5) ? NULL : strdup(PQgetvalue(r, i, 5));
    out->created = berth__pg_int(r, i, 6);
    out->updated = berth__pg_int(r, i, 7);
    if (!out->repo || !out->owner || !out->hash_state ||
        (!PQgetisnull(r, i, 5) && !out->backend_state)) {
        berth_meta_upload_dispose(out);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return 0;
}

static int pg_upload_get(berth_meta_backend *mb, const char *repo, const char *id,
                         berth_meta_upload *out)
{
    PGresult *r = NULL;
    const char *p[] = {id, repo};
    int rc = query_row(PB(mb), &r, S_UPLOAD_GET, 2, p, 0);
    if (rc <= 0) {
        return rc < 0 ? rc : berth_error_set(BERTH_ENOTFOUND, "upload session %s is not known", id);
    }
    rc = fill_upload(out, r, 0);
    PQclear(r);
    return rc;
}

/*
 * The connection holding session `id`, when this thread took it (NULL otherwise: another
 * thread, a reaper say, uses a pool connection, as a libpq connection serves one thread).
 */
static PGconn *held(pg_backend *b, const char *id)
{
    PGconn *c = NULL;
    pthread_mutex_lock(&b->hmu);
    for (hold *h = b->holds; h; h = h->next) {
        if (strcmp(h->id, id) == 0 && pthread_equal(h->owner, pthread_self())) {
            c = h->c;
            break;
        }
    }
    pthread_mutex_unlock(&b->hmu);
    return c;
}

static int acquire_on(PGconn *c, const char *repo, const char *id, berth_meta_upload *out)
{
    PGresult *r = NULL;
    const char *p1[] = {id};
    int rc = berth__pg_exec(&r, c, "SELECT pg_try_advisory_lock(" UPLOAD_LOCK_KEY ")", 1, p1, 0);
    if (rc < 0) {
        return rc;
    }
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    if (!got) {
        return berth_error_set(BERTH_EBUSY, "upload session %s is in use by another request", id);
    }
    const char *p2[] = {id, repo};
    rc = berth__pg_exec_stmt(&r, c, &stmts[S_UPLOAD_GET], 2, p2, NULL, NULL, 0);
    if (rc == 0 && PQntuples(r) == 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload session %s is not known", id);
    } else if (rc == 0) {
        rc = fill_upload(out, r, 0);
    }
    PQclear(r);
    if (rc < 0 && PQstatus(c) == CONNECTION_OK) {
        bool timed_out;
        PGresult *u = berth__pg_exec_params(c, "SELECT pg_advisory_unlock(" UPLOAD_LOCK_KEY ")", 1,
                                            p1, NULL, NULL, 0, &timed_out);
        PQclear(u);
    }
    return rc;
}

static int pg_upload_acquire(berth_meta_backend *mb, const char *repo, const char *id,
                             berth_meta_upload *out)
{
    pg_backend *b = PB(mb);
    hold *h = calloc(1, sizeof(*h));
    if (!h) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    snprintf(h->id, sizeof(h->id), "%s", id);
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = berth__pg_dedicated_get(&b->pool, &h->c);
        if (rc < 0) {
            break;
        }
        rc = acquire_on(h->c, repo, id, out);
        if (rc == 0) {
            break;
        }
        bool broken = PQstatus(h->c) != CONNECTION_OK;
        berth__pg_dedicated_put(&b->pool, h->c);
        h->c = NULL;
        if (!broken) {
            break; /* a kept connection that had died: try once on a new one */
        }
    }
    if (rc < 0) {
        free(h);
        return outward(rc);
    }
    h->owner = pthread_self();
    pthread_mutex_lock(&b->hmu);
    h->next = b->holds;
    b->holds = h;
    pthread_mutex_unlock(&b->hmu);
    return 0;
}

typedef struct uupd_ctx {
    const berth_meta_upload *u;
} uupd_ctx;

static int uupd_fn(PGconn *c, void *ctx)
{
    const berth_meta_upload *u = ((uupd_ctx *)ctx)->u;
    num size = i64((int64_t)u->size), updated = i64(u->updated ? u->updated : now());
    const char *p[] = {u->id, size.s, u->hash_state ? u->hash_state : "", u->backend_state,
                       updated.s};
    PGresult *r = NULL;
    int rc = berth__pg_exec(&r, c,
                            "UPDATE uploads SET size = $2::bigint, hash_state = $3, "
                            "backend_state = $4, updated = $5::bigint WHERE id = $1",
                            5, p, 0);
    if (rc == 0 && PQcmdTuples(r)[0] == '0') {
        rc = berth_error_set(BERTH_EIO, "upload session %s is no longer recorded", u->id);
    }
    PQclear(r);
    return rc;
}

static int pg_upload_update(berth_meta_backend *mb, const berth_meta_upload *u)
{
    uupd_ctx x = {u};
    PGconn *c = held(PB(mb), u->id);
    if (c) {
        /* on the connection holding the session: if it died, so did the hold */
        return outward(uupd_fn(c, &x));
    }
    return berth__pg_run(&PB(mb)->pool, true, uupd_fn, &x);
}

static void pg_upload_release(berth_meta_backend *mb, const char *id)
{
    pg_backend *b = PB(mb);
    hold *h = NULL;
    pthread_mutex_lock(&b->hmu);
    for (hold **pp = &b->holds; *pp; pp = &(*pp)->next) {
        if (strcmp((*pp)->id, id) == 0) {
            h = *pp;
            *pp = h->next;
            break;
        }
    }
    pthread_mutex_unlock(&b->hmu);
    if (!h) {
        return;
    }
    const char *p[] = {id};
    if (PQstatus(h->c) == CONNECTION_OK) {
        bool timed_out;
        PGresult *r = berth__pg_exec_params(h->c, "SELECT pg_advisory_unlock(" UPLOAD_LOCK_KEY ")",
                                            1, p, NULL, NULL, 0, &timed_out);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            PQfinish(h->c); /* closing it releases the lock as surely */
            h->c = NULL;
        }
    }
    berth__pg_dedicated_put(&b->pool, h->c);
    free(h);
}

typedef struct udel_ctx {
    const char *id;
} udel_ctx;

static int udel_fn(PGconn *c, void *ctx)
{
    const char *p[] = {((udel_ctx *)ctx)->id};
    PGresult *r = NULL;
    int rc = berth__pg_exec(&r, c, "DELETE FROM uploads WHERE id = $1", 1, p, 0);
    if (rc == 0 && PQcmdTuples(r)[0] == '0') {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload session %s is not known", p[0]);
    }
    PQclear(r);
    return rc;
}

static int pg_upload_delete(berth_meta_backend *mb, const char *id)
{
    udel_ctx x = {id};
    PGconn *c = held(PB(mb), id);
    if (c) {
        return outward(udel_fn(c, &x));
    }
    return berth__pg_run(&PB(mb)->pool, true, udel_fn, &x);
}

static int pg_uploads(berth_meta_backend *mb, berth_meta_upload_cb cb, void *payload)
{
    PGresult *r = NULL;
    int rc = query(PB(mb), &r, S_UPLOADS, 0, NULL, 0);
    if (rc < 0) {
        return rc;
    }
    for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
        berth_meta_upload u;
        rc = fill_upload(&u, r, i);
        if (rc == 0) {
            rc = cb(&u, payload);
            berth_meta_upload_dispose(&u);
        }
    }
    PQclear(r);
    return rc;
}

/* ---- garbage collection of blobs ---------------------------------------------------------- */

/* In a transaction on `c`: lock the first candidate after `after`; 1 when one is held. */
static int claim_on(PGconn *c, const char *after, int64_t older_than, berth_digest *digest_out,
                    uint64_t *size_out)
{
    num ot = i64(older_than);
    berth_digest last;
    snprintf(last.str, sizeof(last.str), "%s", after ? after : "");
    for (;;) {
        PGresult *r = NULL;
        int rc = berth__pg_exec(NULL, c, "BEGIN", 0, NULL, 0);
        const char *p1[] = {last.str, ot.s};
        if (rc == 0) {
            rc = berth__pg_exec(&r, c,
                                "SELECT digest, size FROM blobs WHERE nlinks = 0 AND "
                                "touched < $2::bigint AND digest > $1 ORDER BY digest LIMIT 1 "
                                "FOR UPDATE SKIP LOCKED",
                                2, p1, 0);
        }
        if (rc < 0) {
            return rc;
        }
        if (PQntuples(r) == 0) {
            PQclear(r);
            return 0;
        }
        snprintf(last.str, sizeof(last.str), "%s", PQgetvalue(r, 0, 0));
        uint64_t size = (uint64_t)berth__pg_int(r, 0, 1);
        PQclear(r);
        /* the re-check, in a fresh snapshot, now that nothing can link it behind our back */
        const char *p2[] = {last.str, ot.s};
        rc = berth__pg_exec(&r, c,
                            "SELECT NOT EXISTS (SELECT 1 FROM repository_blobs WHERE digest = $1) "
                            "AND (SELECT touched < $2::bigint FROM blobs WHERE digest = $1)",
                            2, p2, 0);
        if (rc < 0) {
            return rc;
        }
        bool still = PQgetvalue(r, 0, 0)[0] == 't';
        PQclear(r);
        if (still) {
            rc = parse_digest(digest_out, last.str);
            if (rc < 0) {
                return rc;
            }
            if (size_out) {
                *size_out = size;
            }
            return 1;
        }
        rc = berth__pg_exec(NULL, c, "ROLLBACK", 0, NULL, 0);
        if (rc < 0) {
            return rc;
        }
    }
}

static int pg_gc_blob_claim(berth_meta_backend *mb, const char *after, int64_t older_than,
                            berth_digest *digest_out, uint64_t *size_out,
                            berth_meta_claim **claim_out)
{
    pg_backend *b = PB(mb);
    berth_meta_claim *cl = calloc(1, sizeof(*cl));
    if (!cl) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = berth__pg_dedicated_get(&b->pool, &cl->c);
        if (rc < 0) {
            break;
        }
        rc = claim_on(cl->c, after, older_than, digest_out, size_out);
        if (rc == 1) {
            break;
        }
        if (PQstatus(cl->c) == CONNECTION_OK && PQtransactionStatus(cl->c) != PQTRANS_IDLE) {
            bool timed_out;
            PGresult *r =
                berth__pg_exec_params(cl->c, "ROLLBACK", 0, NULL, NULL, NULL, 0, &timed_out);
            PQclear(r);
        }
        bool broken = PQstatus(cl->c) != CONNECTION_OK;
        berth__pg_dedicated_put(&b->pool, cl->c);
        cl->c = NULL;
        if (!broken || rc == 0) {
            break;
        }
    }
    if (rc != 1) {
        free(cl);
        return rc < 0 ? outward(rc) : berth_error_set(BERTH_ENOTFOUND, "no blob to collect");
    }
    cl->digest = *digest_out;
    *claim_out = cl;
    return 0;
}

static int pg_gc_blob_release(berth_meta_backend *mb, berth_meta_claim *claim, bool deleted)
{
    pg_backend *b = PB(mb);
    if (!claim) {
        return 0;
    }
    int rc = 0;
    if (deleted) {
        const char *p[] = {claim->digest.str};
        rc = berth__pg_exec(NULL, claim->c, "DELETE FROM blobs WHERE digest = $1", 1, p, 0);
    }
    if (rc == 0 && deleted) {
        rc = berth__pg_exec(NULL, claim->c, "COMMIT", 0, NULL, 0);
    } else if (PQstatus(claim->c) == CONNECTION_OK) {
        bool timed_out;
        PGresult *r =
            berth__pg_exec_params(claim->c, "ROLLBACK", 0, NULL, NULL, NULL, 0, &timed_out);
        PQclear(r);
    }
    if (rc < 0) {
        rc = berth_error_set(BERTH_EIO, "the claim on blob %s was lost: %s", claim->digest.str,
                             berth_error_last());
    }
    berth__pg_dedicated_put(&b->pool, claim->c);
    free(claim);
    return rc;
}

/* ---- named locks (lock_acquire) ----------------------------------------------------------- */

struct berth_meta_lock {
    PGconn *c; /* the session holding the advisory lock */
    char key[];
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Did the statement end because its lock wait (or the statement) ran out of time? */
static bool lock_timed_out(const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    return state && (strcmp(state, "55P03") == 0 || strcmp(state, "57014") == 0);
}

/* Wait on `c` up to `ms` for the lock: 1 taken, 0 not in time, or an error. */
static int lock_wait_on(PGconn *c, const char *key, unsigned statement_ms, int64_t ms)
{
    const char *p[] = {key};
    char t[24];
    bool timed_out = false;
    /* each wait is one statement, shorter than statement_timeout (and the client's deadline) */
    int64_t slice_max = statement_ms > 2000 ? statement_ms - 1000 : statement_ms / 2;
    int64_t slice = ms < slice_max ? ms : slice_max;
    snprintf(t, sizeof(t), "%lld", (long long)(slice > 0 ? slice : 1));
    const char *pt[] = {t};
    int rc = berth__pg_exec(NULL, c, "SELECT set_config('lock_timeout', $1, false)", 1, pt, 0);
    if (rc < 0) {
        return rc;
    }
    PGresult *r = berth__pg_exec_params(c, "SELECT pg_advisory_lock(" NAMED_LOCK_KEY ")", 1, p,
                                        NULL, NULL, 0, &timed_out);
    if (!timed_out && PQresultStatus(r) == PGRES_TUPLES_OK) {
        rc = 1;
    } else if (!timed_out && lock_timed_out(r) && PQstatus(c) == CONNECTION_OK) {
        rc = 0;
    } else {
        rc = timed_out
                 ? berth_error_set(BERTH_ENETWORK, "the metadata database did not answer in time")
                 : berth__pg_error(c, r);
    }
    PQclear(r);
    if (PQstatus(c) == CONNECTION_OK) {
        /* the connection goes back to the spares as it came */
        r = berth__pg_exec_params(c, "SELECT set_config('lock_timeout', '0', false)", 0, NULL, NULL,
                                  NULL, 0, &timed_out);
        if (PQresultStatus(r) != PGRES_TUPLES_OK && rc >= 0) {
            rc = berth__pg_error(c, r);
        }
        PQclear(r);
    }
    return rc;
}

static int lock_on(PGconn *c, const char *key, unsigned wait_ms, unsigned statement_ms)
{
    PGresult *r = NULL;
    const char *p[] = {key};
    int rc = berth__pg_exec(&r, c, "SELECT pg_try_advisory_lock(" NAMED_LOCK_KEY ")", 1, p, 0);
    if (rc < 0) {
        return rc;
    }
    bool got = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    int64_t deadline = mono_ms() + wait_ms;
    while (!got) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            return berth_error_set(BERTH_EBUSY, "held by another process");
        }
        if ((rc = lock_wait_on(c, key, statement_ms, left)) < 0) {
            return rc;
        }
        got = rc == 1;
    }
    return 0;
}

static int pg_lock_acquire(berth_meta_backend *mb, const char *key, unsigned wait_ms,
                           berth_meta_lock **out)
{
    pg_backend *b = PB(mb);
    size_t len = strlen(key);
    berth_meta_lock *l = malloc(sizeof(*l) + len + 1);
    int rc = 0;
    if (!l) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    memcpy(l->key, key, len + 1);
    for (int attempt = 0; attempt < 2; attempt++) {
        if ((rc = berth__pg_dedicated_get(&b->pool, &l->c)) < 0) {
            break;
        }
        rc = lock_on(l->c, key, wait_ms, b->pool.statement_timeout_ms);
        if (rc == 0) {
            break;
        }
        bool broken = PQstatus(l->c) != CONNECTION_OK;
        berth__pg_dedicated_put(&b->pool, l->c);
        l->c = NULL;
        if (!broken || rc == BERTH_EBUSY) {
            break; /* a kept connection that had died: try once on a new one */
        }
    }
    if (rc < 0) {
        free(l);
        return outward(rc);
    }
    *out = l;
    return 0;
}

static void pg_lock_release(berth_meta_backend *mb, berth_meta_lock *l)
{
    if (!l) {
        return;
    }
    if (PQstatus(l->c) == CONNECTION_OK) {
        const char *p[] = {l->key};
        bool timed_out;
        PGresult *r = berth__pg_exec_params(l->c, "SELECT pg_advisory_unlock(" NAMED_LOCK_KEY ")",
                                            1, p, NULL, NULL, 0, &timed_out);
        bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        PQclear(r);
        if (!ok) {
            PQfinish(l->c); /* closing it releases the lock as surely */
            l->c = NULL;
        }
    }
    berth__pg_dedicated_put(&PB(mb)->pool, l->c);
    free(l);
}

/* ---- life ------------------------------------------------------------------------------- */

static void pg_free(berth_meta_backend *mb)
{
    pg_backend *b = PB(mb);
    if (!b) {
        return;
    }
    while (b->holds) {
        hold *h = b->holds;
        b->holds = h->next;
        PQfinish(h->c);
        free(h);
    }
    berth__pg_pool_dispose(&b->pool);
    pthread_mutex_destroy(&b->hmu);
    free(b);
}

int berth_pg_meta_backend_new(berth_meta_backend **out, const berth_pg_options *opts)
{
    berth_error_clear();
    if (!out || !opts || !opts->conninfo || !opts->conninfo[0]) {
        return berth_error_set(BERTH_EINVALID, "no database connection string");
    }
    pg_backend *b = calloc(1, sizeof(*b));
    if (!b) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    int rc = berth__pg_pool_init(&b->pool, opts);
    if (rc < 0) {
        free(b);
        return rc;
    }
    pthread_mutex_init(&b->hmu, NULL);
    b->base = (berth_meta_backend){
        .version = BERTH_META_BACKEND_VERSION,
        .name = "postgres",
        .repo_exists = pg_repo_exists,
        .catalog = pg_catalog,
        .blob_touch = pg_blob_touch,
        .blob_link = pg_blob_link,
        .blob_stat = pg_blob_stat,
        .blob_unlink = pg_blob_unlink,
        .links = pg_links,
        .manifest_put = pg_manifest_put,
        .tag_get = pg_tag_get,
        .manifest_get = pg_manifest_get,
        .manifest_delete = pg_manifest_delete,
        .tag_delete = pg_tag_delete,
        .tags = pg_tags,
        .tag_names = pg_tag_names,
        .referrers = pg_referrers,
        .manifests = pg_manifests,
        .upload_create = pg_upload_create,
        .upload_get = pg_upload_get,
        .upload_acquire = pg_upload_acquire,
        .upload_update = pg_upload_update,
        .upload_release = pg_upload_release,
        .upload_delete = pg_upload_delete,
        .uploads = pg_uploads,
        .gc_blob_claim = pg_gc_blob_claim,
        .gc_blob_release = pg_gc_blob_release,
        .free = pg_free,
        .tag_manifest_get = pg_tag_manifest_get,
        .lock_acquire = pg_lock_acquire,
        .lock_release = pg_lock_release,
    };
    PGconn *c = NULL;
    rc = berth__pg_pool_get(&b->pool, &c);
    if (rc == 0) {
        rc = berth__pg_schema_open(c);
        if (rc == 0) {
            rc = berth__pg_pool_prepare(&b->pool, c, stmts, NSTMTS);
        }
        berth__pg_pool_put(&b->pool, c);
    }
    if (rc < 0) {
        pg_free(&b->base);
        return rc;
    }
    *out = &b->base;
    return 0;
}
