/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the PostgreSQL metadata backend, against a real server.
 * engines: pg
 *
 * The cluster is the CTest fixture (tests/engines/pg.sh); each test makes its own database.
 * Schema migrations (created in an empty database once, even by replicas starting together;
 * an older or newer schema refused), the interface's basics, an unreachable or silent server
 * (BERTH_ENETWORK in seconds), and the race of a manifest PUT against blob unlink and gc.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>

#include "backend/postgres/pg.h"
#include "backend/postgres/pg_internal.h"
#include "helpers/meta_contract.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- the engine and a fresh database per test ------------------------------------------- */

static char base_url[1024];

static void load_env(void)
{
    if (base_url[0]) {
        return;
    }
    const char *dir = getenv("BERTH_ENGINES_DIR");
    if (!dir) {
        fail_msg("BERTH_ENGINES_DIR is not set: run through ctest (engine fixture pg)");
    }
    char path[512], line[1000];
    snprintf(path, sizeof(path), "%s/pg/env", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fail_msg("no %s: the pg engine did not start", path);
    }
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "BERTH_TEST_DATABASE_URL=", 24) == 0) {
            snprintf(base_url, sizeof(base_url), "%s", line + 24);
        }
    }
    fclose(f);
    if (!base_url[0]) {
        fail_msg("no BERTH_TEST_DATABASE_URL in %s", path);
    }
}

static void quiet(void *arg, const char *message)
{
}

static PGconn *admin(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fail_msg("cannot connect to the test cluster: %s", PQerrorMessage(c));
    }
    PQsetNoticeProcessor(c, quiet, NULL); /* "does not exist, skipping" */
    return c;
}

static void sql(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
        fail_msg("%s: %s", q, PQerrorMessage(c));
    }
    PQclear(r);
}

static long long sql_int(PGconn *c, const char *q)
{
    PGresult *r = PQexec(c, q);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        fail_msg("%s: %s", q, PQerrorMessage(c));
    }
    long long v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* An empty database `name` (a fixed identifier of this file); its URL in `url`. */
static void fresh_db(char *url, size_t cap, const char *name)
{
    load_env();
    PGconn *c = admin(base_url);
    char q[256];
    snprintf(q, sizeof(q), "DROP DATABASE IF EXISTS %s WITH (FORCE)", name);
    sql(c, q);
    snprintf(q, sizeof(q), "CREATE DATABASE %s", name);
    sql(c, q);
    PQfinish(c);
    const char *slash = strrchr(base_url, '/');
    assert_non_null(slash);
    snprintf(url, cap, "%.*s/%s", (int)(slash - base_url), base_url, name);
}

static berth_meta_backend *open_ok(const char *url)
{
    berth_pg_options o = {.conninfo = url};
    berth_meta_backend *b = NULL;
    int rc = berth_pg_meta_backend_new(&b, &o);
    if (rc != 0) {
        fail_msg("open: %s: %s", berth_error_name(rc), berth_error_last());
    }
    return b;
}

static berth_digest dg(const char *seed)
{
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, seed, strlen(seed)), 0);
    return d;
}

/* ---- migrations ------------------------------------------------------------------------- */

static void test_pg__empty_database_gets_the_schema(void **state)
{
    char url[1100];
    int v = -1;
    fresh_db(url, sizeof(url), "berth_t_empty");
    assert_int_equal(berth_db_schema_version(&v, url), 0);
    assert_int_equal(v, 0);
    berth_meta_backend *b = open_ok(url);
    assert_string_equal(b->name, "postgres");
    assert_int_equal(b->version, BERTH_META_BACKEND_VERSION);
    b->free(b);
    assert_int_equal(berth_db_schema_version(&v, url), 0);
    assert_int_equal(v, berth_db_schema_latest());
    /* opened again: the schema is there and current */
    b = open_ok(url);
    b->free(b);
}

static void test_pg__older_schema_is_refused_until_upgraded(void **state)
{
    char url[1100];
    int from = -1, to = -1;
    fresh_db(url, sizeof(url), "berth_t_older");
    assert_true(berth_db_schema_latest() >= 2);
    assert_int_equal(berth__pg_migrate_to(url, 1, &from, &to), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, 1);

    berth_pg_options o = {.conninfo = url};
    berth_meta_backend *b = NULL;
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), BERTH_EUNSUPPORTED);
    assert_null(b);
    assert_non_null(strstr(berth_error_last(), "berth db upgrade --config FILE"));
    assert_null(strstr(berth_error_last(), url)); /* no connection string in messages */

    assert_int_equal(berth_db_migrate(&from, &to, url), 0);
    assert_int_equal(from, 1);
    assert_int_equal(to, berth_db_schema_latest());
    b = open_ok(url);
    b->free(b);
    /* current already: nothing to do */
    assert_int_equal(berth_db_migrate(&from, &to, url), 0);
    assert_int_equal(from, to);
}

static void test_pg__newer_schema_is_refused(void **state)
{
    char url[1100], q[128];
    fresh_db(url, sizeof(url), "berth_t_newer");
    berth_meta_backend *b = open_ok(url);
    b->free(b);
    PGconn *c = admin(url);
    snprintf(q, sizeof(q), "INSERT INTO berth_schema_migrations VALUES (%d, 0)",
             berth_db_schema_latest() + 1);
    sql(c, q);
    PQfinish(c);
    berth_pg_options o = {.conninfo = url};
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), BERTH_EUNSUPPORTED);
    assert_non_null(strstr(berth_error_last(), "older than the database"));
    int from, to;
    assert_int_equal(berth_db_migrate(&from, &to, url), BERTH_EUNSUPPORTED);
}

#define NOPEN 6

typedef struct opener {
    const char *url;
    pthread_barrier_t *go;
    int rc;
    char msg[256];
} opener;

static void *open_thread(void *arg)
{
    opener *o = arg;
    berth_pg_options opts = {.conninfo = o->url};
    berth_meta_backend *b = NULL;
    pthread_barrier_wait(o->go);
    o->rc = berth_pg_meta_backend_new(&b, &opts);
    snprintf(o->msg, sizeof(o->msg), "%s", berth_error_last());
    if (b) {
        b->free(b);
    }
    return NULL;
}

static void test_pg__replicas_starting_together_create_the_schema_once(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_together");
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, NOPEN);
    opener o[NOPEN];
    pthread_t t[NOPEN];
    for (int i = 0; i < NOPEN; i++) {
        o[i] = (opener){.url = url, .go = &go};
        assert_int_equal(pthread_create(&t[i], NULL, open_thread, &o[i]), 0);
    }
    for (int i = 0; i < NOPEN; i++) {
        pthread_join(t[i], NULL);
    }
    pthread_barrier_destroy(&go);
    for (int i = 0; i < NOPEN; i++) {
        if (o[i].rc != 0) {
            fail_msg("opener %d: %s: %s", i, berth_error_name(o[i].rc), o[i].msg);
        }
    }
    PGconn *c = admin(url);
    assert_int_equal(sql_int(c, "SELECT count(*) FROM berth_schema_migrations"),
                     berth_db_schema_latest());
    PQfinish(c);
}

/* ---- the interface's basics ------------------------------------------------------------- */

typedef struct names {
    char v[300][220];
    size_t n;
} names;

static int name_cb(const char *name, void *payload)
{
    names *ns = payload;
    snprintf(ns->v[ns->n++], sizeof(ns->v[0]), "%s", name);
    return 0;
}

static int tag_cb(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    return name_cb(tag, payload);
}

static int ref_cb(const berth_meta_referrer *r, void *payload)
{
    return name_cb(r->digest.str, payload);
}

static int manifest_cb(const berth_meta_manifest *m, void *payload)
{
    names *ns = payload;
    snprintf(ns->v[ns->n++], sizeof(ns->v[0]), "%s %zu %zu %u", m->digest.str, m->nblobs,
             m->nchildren, m->ntags);
    return 0;
}

static void test_pg__manifests_tags_links_and_paging(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_basics");
    berth_meta_backend *b = open_ok(url);
    berth_digest config = dg("config"), layer = dg("layer"), missing;
    berth_digest blobs[] = {config, layer};

    assert_int_equal(b->repo_exists(b, "a/b"), 0);
    /* a blob must be known before it is linked */
    assert_int_equal(b->blob_link(b, "a/b", &config, 6), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_touch(b, &config, 6), 0);
    assert_int_equal(b->blob_touch(b, &layer, 5), 0);
    assert_int_equal(b->blob_link(b, "a/b", &config, 6), 0);
    assert_int_equal(b->repo_exists(b, "a/b"), 1);

    /* a manifest whose layer is not linked is refused, naming it, and changes nothing */
    const char bytes[] = "{\"x\":1}\0binary";
    berth_meta_manifest m = {.media_type = "application/vnd.oci.image.manifest.v1+json",
                             .artifact_type = NULL,
                             .size = sizeof(bytes),
                             .data = bytes,
                             .blobs = blobs,
                             .nblobs = 2,
                             .pushed = 100};
    assert_int_equal(berth_digest_buffer(&m.digest, BERTH_DIGEST_SHA256, bytes, sizeof(bytes)), 0);
    const char *tags[] = {"v1", "latest", "v1"};
    assert_int_equal(b->manifest_put(b, "a/b", &m, tags, 3, &missing), BERTH_ENOTFOUND);
    assert_string_equal(missing.str, layer.str);
    berth_digest got;
    assert_int_equal(b->tag_get(b, "a/b", "v1", &got), BERTH_ENOTFOUND);

    assert_int_equal(b->blob_link(b, "a/b", &layer, 5), 0);
    assert_int_equal(b->manifest_put(b, "a/b", &m, tags, 3, &missing), 0);
    assert_int_equal(b->tag_get(b, "a/b", "latest", &got), 0);
    assert_string_equal(got.str, m.digest.str);
    berth_meta_blob_doc doc = {0};
    assert_int_equal(b->manifest_get(b, "a/b", &m.digest, &doc), 0);
    assert_int_equal(doc.len, sizeof(bytes));
    assert_memory_equal(doc.data, bytes, sizeof(bytes)); /* bytes, NUL and all */
    assert_string_equal(doc.media_type, m.media_type);
    free(doc.data);
    free(doc.media_type);

    uint64_t size = 0;
    assert_int_equal(b->blob_stat(b, "a/b", &layer, &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(b->blob_stat(b, NULL, &layer, &size), 0);
    assert_int_equal(b->blob_stat(b, "other", &layer, &size), BERTH_ENOTFOUND);

    /* a referenced blob stays; a manifest digest is not a blob */
    assert_int_equal(b->blob_unlink(b, "a/b", &layer, 0), BERTH_EINUSE);
    assert_non_null(strstr(berth_error_last(), m.digest.str));
    assert_int_equal(b->blob_unlink(b, "a/b", &m.digest, 0), BERTH_ENOTFOUND);

    names *ns = calloc(1, sizeof(*ns));
    assert_int_equal(b->manifests(b, "a/b", manifest_cb, ns), 0);
    assert_int_equal(ns->n, 1);
    char want[200];
    snprintf(want, sizeof(want), "%s 2 0 2", m.digest.str);
    assert_string_equal(ns->v[0], want);

    /* an index over it, and a referrer of it */
    berth_meta_manifest idx = {.media_type = "application/vnd.oci.image.index.v1+json",
                               .size = 2,
                               .data = "{}",
                               .children = &m.digest,
                               .nchildren = 1,
                               .pushed = 101};
    idx.digest = dg("index");
    assert_int_equal(b->manifest_put(b, "a/b", &idx, NULL, 0, NULL), 0);
    assert_int_equal(b->manifest_delete(b, "a/b", &m.digest, 0), BERTH_EINUSE);
    berth_meta_manifest sig = {.media_type = "application/vnd.oci.image.manifest.v1+json",
                               .artifact_type = "application/example.sig",
                               .has_subject = true,
                               .subject = m.digest,
                               .size = 3,
                               .data = "sig",
                               .pushed = 102};
    sig.digest = dg("sig");
    assert_int_equal(b->manifest_put(b, "a/b", &sig, NULL, 0, NULL), 0);
    ns->n = 0;
    bool more = true;
    assert_int_equal(b->referrers(b, "a/b", &m.digest, NULL, NULL, 0, ref_cb, ns, &more), 0);
    assert_int_equal(ns->n, 1);
    assert_false(more);
    ns->n = 0;
    assert_int_equal(
        b->referrers(b, "a/b", &m.digest, "application/other", NULL, 0, ref_cb, ns, &more), 0);
    assert_int_equal(ns->n, 0);

    /* tags: byte order, keyset pages */
    const char *many[] = {"B", "a", "b", "c", "d", "e", "f", "g", "h", "i"};
    assert_int_equal(b->manifest_put(b, "a/b", &m, many, 10, NULL), 0);
    ns->n = 0;
    assert_int_equal(b->tags(b, "a/b", NULL, 3, tag_cb, ns, &more), 0);
    assert_int_equal(ns->n, 3);
    assert_true(more);
    assert_string_equal(ns->v[0], "B"); /* byte order: upper case first */
    assert_string_equal(ns->v[1], "a");
    assert_string_equal(ns->v[2], "b");
    ns->n = 0;
    assert_int_equal(b->tags(b, "a/b", "h", 3, tag_cb, ns, &more), 0);
    assert_int_equal(ns->n, 3);
    assert_string_equal(ns->v[0], "i");
    assert_string_equal(ns->v[1], "latest");
    assert_string_equal(ns->v[2], "v1");
    assert_false(more);
    assert_int_equal(b->tags(b, "nope", NULL, 0, tag_cb, ns, &more), BERTH_ENOTFOUND);

    /* catalog: only repositories holding something */
    assert_int_equal(b->blob_link(b, "a/a", &layer, 5), 0);
    assert_int_equal(b->blob_link(b, "z", &layer, 5), 0);
    ns->n = 0;
    assert_int_equal(b->catalog(b, NULL, 2, name_cb, ns, &more), 0);
    assert_int_equal(ns->n, 2);
    assert_true(more);
    assert_string_equal(ns->v[0], "a/a");
    assert_string_equal(ns->v[1], "a/b");
    ns->n = 0;
    assert_int_equal(b->catalog(b, "a/b", 2, name_cb, ns, &more), 0);
    assert_int_equal(ns->n, 1);
    assert_false(more);
    assert_int_equal(b->blob_unlink(b, "z", &layer, 0), 0);
    ns->n = 0;
    assert_int_equal(b->catalog(b, NULL, 0, name_cb, ns, &more), 0);
    assert_int_equal(ns->n, 2);

    /* tag delete, conditional */
    berth_digest other = dg("other");
    assert_int_equal(b->tag_delete(b, "a/b", "a", &other), BERTH_EBUSY);
    assert_int_equal(b->tag_delete(b, "a/b", "a", &m.digest), 0);
    assert_int_equal(b->tag_delete(b, "a/b", "a", NULL), BERTH_ENOTFOUND);

    /* manifest delete: gc's re-check, then for real; its blobs can go after */
    assert_int_equal(b->manifest_delete(b, "a/b", &idx.digest, 0), 0);
    assert_int_equal(b->manifest_delete(b, "a/b", &m.digest, 1000), BERTH_EBUSY); /* tagged */
    assert_int_equal(b->manifest_delete(b, "a/b", &m.digest, 0), 0);
    assert_int_equal(b->tag_get(b, "a/b", "latest", &got), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_unlink(b, "a/b", &layer, 1), BERTH_EBUSY); /* linked after 1 */
    assert_int_equal(b->blob_unlink(b, "a/b", &layer, 0), 0);
    assert_int_equal(b->blob_unlink(b, "a/b", &layer, 0), BERTH_ENOTFOUND);
    free(ns);
    b->free(b);
}

static int upload_cb(const berth_meta_upload *u, void *payload)
{
    (*(int *)payload)++;
    return 0;
}

static void test_pg__upload_sessions(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_uploads");
    berth_meta_backend *a = open_ok(url), *b = open_ok(url); /* two replicas */
    berth_meta_upload_limits lim = {.total = 3, .per_repo = 2, .per_owner = 0};
    berth_meta_upload u = {.id = "0a-1", .repo = "r", .owner = "alice", .created = 50};
    assert_int_equal(a->upload_create(a, &u, &lim), 0);
    assert_int_equal(b->upload_create(b, &u, &lim), BERTH_EEXISTS);
    snprintf(u.id, sizeof(u.id), "0a-2");
    assert_int_equal(b->upload_create(b, &u, &lim), 0);
    snprintf(u.id, sizeof(u.id), "0a-3");
    assert_int_equal(a->upload_create(a, &u, &lim), BERTH_EBUSY); /* 2 in r */
    u.repo = "s";
    assert_int_equal(a->upload_create(a, &u, &lim), 0);
    snprintf(u.id, sizeof(u.id), "0a-4");
    assert_int_equal(a->upload_create(a, &u, &lim), BERTH_EBUSY); /* 3 in all */

    berth_meta_upload got;
    assert_int_equal(a->upload_get(a, "s", "0a-1", &got), BERTH_ENOTFOUND); /* not in s */
    assert_int_equal(a->upload_acquire(a, "r", "0a-1", &got), 0);
    assert_string_equal(got.owner, "alice");
    assert_null(got.backend_state);
    berth_meta_upload other;
    assert_int_equal(b->upload_acquire(b, "r", "0a-1", &other), BERTH_EBUSY);
    assert_int_equal(a->upload_acquire(a, "r", "0a-1", &other), BERTH_EBUSY); /* one request */
    got.size = 1234;
    free(got.backend_state);
    got.backend_state = strdup("part=1;etag=\"x\"");
    got.updated = 60;
    assert_int_equal(a->upload_update(a, &got), 0);
    a->upload_release(a, "0a-1");
    berth_meta_upload_dispose(&got);

    assert_int_equal(b->upload_acquire(b, "r", "0a-1", &other), 0);
    assert_int_equal(other.size, 1234);
    assert_string_equal(other.backend_state, "part=1;etag=\"x\"");
    assert_int_equal(other.created, 50);
    assert_int_equal(other.updated, 60);
    /* the holder dies (its connections close): the session is free at once */
    b->free(b);
    b = open_ok(url);
    int rc = BERTH_EBUSY;
    for (int i = 0; i < 100 && rc == BERTH_EBUSY; i++) { /* the server ends the session */
        rc = a->upload_acquire(a, "r", "0a-1", &got);
        if (rc == BERTH_EBUSY) {
            nanosleep(&(struct timespec){0, 10000000}, NULL);
        }
    }
    assert_int_equal(rc, 0);
    assert_int_equal(a->upload_delete(a, "0a-1"), 0);
    a->upload_release(a, "0a-1");
    berth_meta_upload_dispose(&got);
    berth_meta_upload_dispose(&other);
    assert_int_equal(a->upload_delete(a, "0a-1"), BERTH_ENOTFOUND);
    int n = 0;
    assert_int_equal(b->uploads(b, upload_cb, &n), 0);
    assert_int_equal(n, 2);
    a->free(a);
    b->free(b);
}

/* A replica killed with -9 while it holds a session loses it at once (its socket closes). */
static void test_pg__a_killed_holder_loses_the_session_at_once(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_kill");
    berth_meta_backend *a = open_ok(url);
    berth_meta_upload u = {.id = "0c", .repo = "r", .owner = ""}, got;
    assert_int_equal(a->upload_create(a, &u, NULL), 0);
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        berth_meta_backend *b = NULL;
        berth_pg_options o = {.conninfo = url};
        berth_meta_upload mine;
        char ok =
            berth_pg_meta_backend_new(&b, &o) == 0 && b->upload_acquire(b, "r", "0c", &mine) == 0
                ? 'y'
                : 'n';
        if (write(fds[1], &ok, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    assert_int_equal(a->upload_acquire(a, "r", "0c", &got), BERTH_EBUSY);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = BERTH_EBUSY;
    while (rc == BERTH_EBUSY) {
        rc = a->upload_acquire(a, "r", "0c", &got);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (rc == BERTH_EBUSY && t1.tv_sec - t0.tv_sec >= 2) {
            fail_msg("the session is still held 2 s after its holder was killed");
        }
    }
    assert_int_equal(rc, 0);
    a->upload_release(a, "0c");
    berth_meta_upload_dispose(&got);
    close(fds[0]);
    close(fds[1]);
    a->free(a);
}

/* ---- named locks (lock_acquire: the pull-through cache's one fetch across replicas) ----- */

static double since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

typedef struct lock_waiter {
    berth_meta_backend *b;
    unsigned wait_ms;
    int rc;
    berth_meta_lock *lock;
    struct timespec done;
} lock_waiter;

static void *lock_wait_thread(void *arg)
{
    lock_waiter *w = arg;
    w->rc = w->b->lock_acquire(w->b, "proxy b up/x@sha256:1", w->wait_ms, &w->lock);
    clock_gettime(CLOCK_MONOTONIC, &w->done);
    return NULL;
}

/* One holder across replicas (and threads); a waiter wakes when it is released, gives up after
 * its wait (also a wait longer than statement_timeout: no ENETWORK), and takes the lock at once
 * from a holder killed with -9. */
static void test_pg__named_locks(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_locks");
    berth_meta_backend *a = open_ok(url), *b = open_ok(url);
    berth_meta_lock *la = NULL, *lb = NULL;
    const char *key = "proxy b up/x@sha256:1";
    struct timespec t0;

    assert_int_equal(a->lock_acquire(a, key, 0, &la), 0);
    assert_int_equal(b->lock_acquire(b, key, 0, &lb), BERTH_EBUSY);
    assert_int_equal(a->lock_acquire(a, key, 0, &lb), BERTH_EBUSY); /* another thread's */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(b->lock_acquire(b, key, 300, &lb), BERTH_EBUSY);
    assert_true(since(&t0) >= 0.29 && since(&t0) < 2.0);
    assert_int_equal(b->lock_acquire(b, "proxy b up/x@sha256:2", 0, &lb), 0); /* another name */
    b->lock_release(b, lb);

    /* a waiter is woken by the release, not by its deadline */
    lock_waiter w = {.b = b, .wait_ms = 10000};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, lock_wait_thread, &w), 0);
    nanosleep(&(struct timespec){0, 300000000}, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    a->lock_release(a, la);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    assert_true(since(&t0) < 1.0);
    assert_int_equal(a->lock_acquire(a, key, 0, &la), BERTH_EBUSY);
    b->lock_release(b, w.lock);
    assert_int_equal(a->lock_acquire(a, key, 0, &la), 0);

    /* a wait longer than statement_timeout is waited in slices: EBUSY, not a timeout */
    berth_pg_options o = {.conninfo = url, .statement_timeout_ms = 1000};
    berth_meta_backend *c = NULL;
    assert_int_equal(berth_pg_meta_backend_new(&c, &o), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(c->lock_acquire(c, key, 2500, &lb), BERTH_EBUSY);
    assert_true(since(&t0) >= 2.4 && since(&t0) < 5.0);
    c->free(c);
    a->lock_release(a, la);

    /* a holder killed with -9: its lock goes with its connection */
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        berth_meta_backend *k = NULL;
        berth_meta_lock *lk = NULL;
        berth_pg_options ko = {.conninfo = url};
        char ok = berth_pg_meta_backend_new(&k, &ko) == 0 && k->lock_acquire(k, key, 0, &lk) == 0
                      ? 'y'
                      : 'n';
        if (write(fds[1], &ok, 1) != 1) {
            _exit(1);
        }
        for (;;) {
            pause();
        }
    }
    char ok = 0;
    assert_int_equal(read(fds[0], &ok, 1), 1);
    assert_int_equal(ok, 'y');
    assert_int_equal(a->lock_acquire(a, key, 0, &la), BERTH_EBUSY);
    w = (lock_waiter){.b = a, .wait_ms = 10000};
    assert_int_equal(pthread_create(&t, NULL, lock_wait_thread, &w), 0);
    nanosleep(&(struct timespec){0, 200000000}, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    assert_true(since(&t0) < 2.0);
    a->lock_release(a, w.lock);
    close(fds[0]);
    close(fds[1]);
    (void)state;
    a->free(a);
    b->free(b);
}

/* ---- gc claims -------------------------------------------------------------------------- */

static void test_pg__gc_claim_holds_off_touch_and_link(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_gc");
    berth_meta_backend *a = open_ok(url);
    berth_pg_options o = {.conninfo = url, .statement_timeout_ms = 700};
    berth_meta_backend *b = NULL;
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), 0);
    berth_digest d1 = dg("one"), d2 = dg("two"), got;
    const berth_digest *lo = strcmp(d1.str, d2.str) < 0 ? &d1 : &d2;
    const berth_digest *hi = lo == &d1 ? &d2 : &d1;
    assert_int_equal(a->blob_touch(a, &d1, 1), 0);
    assert_int_equal(a->blob_touch(a, &d2, 2), 0);
    assert_int_equal(a->blob_link(a, "r", &d2, 2), 0);
    int64_t later = (int64_t)time(NULL) + 100;

    /* touched now: not before `now - 1` */
    berth_meta_claim *c1 = NULL, *c2 = NULL;
    uint64_t size;
    assert_int_equal(a->gc_blob_claim(a, NULL, (int64_t)time(NULL) - 1, &got, &size, &c1),
                     BERTH_ENOTFOUND);
    /* d2 is linked: only d1 */
    assert_int_equal(a->gc_blob_claim(a, NULL, later, &got, &size, &c1), 0);
    assert_string_equal(got.str, d1.str);
    /* another collector skips the claimed blob */
    assert_int_equal(b->gc_blob_claim(b, NULL, later, &got, &size, &c2), BERTH_ENOTFOUND);
    /* touch and link wait for the claim (here: until the statement times out) */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(b->blob_touch(b, &d1, 1), BERTH_ENETWORK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 5);
    assert_int_equal(b->blob_link(b, "r", &d1, 1), BERTH_ENETWORK);
    /* deleted: forgotten; a link now finds it unknown */
    assert_int_equal(a->gc_blob_release(a, c1, true), 0);
    assert_int_equal(b->blob_link(b, "r", &d1, 1), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, NULL, &d1, &size), BERTH_ENOTFOUND);

    /* released without deleting: stays; `after` skips */
    assert_int_equal(a->blob_unlink(a, "r", &d2, 0), 0);
    assert_int_equal(a->blob_touch(a, &d1, 1), 0);
    assert_int_equal(a->gc_blob_claim(a, NULL, later, &got, &size, &c1), 0);
    assert_string_equal(got.str, lo->str);
    assert_int_equal(a->gc_blob_claim(a, lo->str, later, &got, &size, &c2), 0);
    assert_string_equal(got.str, hi->str);
    assert_int_equal(a->gc_blob_release(a, c1, false), 0);
    assert_int_equal(a->gc_blob_release(a, c2, false), 0);
    assert_int_equal(b->blob_link(b, "r", lo, 1), 0);
    a->free(a);
    b->free(b);
}

/* ---- an engine that cannot be reached --------------------------------------------------- */

static void test_pg__unreachable_server_is_enetwork_in_seconds(void **state)
{
    /* a closed port: refused at once */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &alen), 0);
    char url[128];
    snprintf(url, sizeof(url), "postgresql://postgres@127.0.0.1:%u/berth", ntohs(a.sin_port));
    berth_pg_options o = {.conninfo = url, .connect_timeout = 2};
    berth_meta_backend *b = NULL;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), BERTH_ENETWORK);
    assert_null(strstr(berth_error_last(), "127.0.0.1"));

    /* a server that accepts and never answers: the connect timeout ends it */
    assert_int_equal(listen(s, 4), 0);
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), BERTH_ENETWORK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec <= 5);
    close(s);
}

/* Connections the server ended (a restart, a failover, an idle timeout) are replaced: the
 * next request runs on a fresh one, and a held upload session is reported lost, not used. */
static void test_pg__broken_connections_are_replaced(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_reset");
    berth_pg_options o = {.conninfo = url, .pool_size = 2};
    berth_meta_backend *b = NULL;
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), 0);
    berth_digest d = dg("blob");
    assert_int_equal(b->blob_touch(b, &d, 4), 0);
    assert_int_equal(b->blob_link(b, "r", &d, 4), 0);
    berth_meta_upload u = {.id = "0b", .repo = "r", .owner = ""}, got;
    assert_int_equal(b->upload_create(b, &u, NULL), 0);
    assert_int_equal(b->upload_acquire(b, "r", "0b", &got), 0);

    PGconn *c = admin(base_url);
    assert_true(sql_int(c, "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM "
                           "pg_stat_activity WHERE datname = 'berth_t_reset') t") >= 2);
    PQfinish(c);
    uint64_t size = 0;
    assert_int_equal(b->blob_stat(b, "r", &d, &size), 0); /* a read, retried */
    assert_int_equal(size, 4);
    assert_int_equal(b->blob_unlink(b, "r", &d, 0), 0); /* a transaction, retried */
    /* the session's lock went with its connection: an update must not pretend to hold it */
    got.size = 10;
    assert_int_equal(b->upload_update(b, &got), BERTH_ENETWORK);
    b->upload_release(b, "0b");
    berth_meta_upload_dispose(&got);
    assert_int_equal(b->upload_acquire(b, "r", "0b", &got), 0);
    assert_int_equal(got.size, 0);
    b->upload_release(b, "0b");
    berth_meta_upload_dispose(&got);
    b->free(b);
}

/* An outage of the engine (a private cluster, stopped and started again): every request fails
 * with BERTH_ENETWORK in seconds, none hangs, and service resumes by itself when it is back. */
static void engine(const char *verb, const char *dir)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "bash '%s/../engines/pg.sh' %s '%s' >/dev/null", BERTH_TEST_DATA,
             verb, dir);
    if (system(cmd) != 0) {
        fail_msg("pg.sh %s failed", verb);
    }
}

static void test_pg__an_outage_is_enetwork_and_service_resumes(void **state)
{
    char dir[] = "/tmp/berth-pg-outage.XXXXXX", path[256], line[1000], url[1000] = "";
    assert_non_null(mkdtemp(dir));
    engine("up", dir);
    snprintf(path, sizeof(path), "%s/env", dir);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (strncmp(line, "BERTH_TEST_DATABASE_URL=", 24) == 0) {
            snprintf(url, sizeof(url), "%s", line + 24);
        }
    }
    fclose(f);
    berth_pg_options o = {.conninfo = url, .connect_timeout = 2, .pool_size = 2};
    berth_meta_backend *b = NULL;
    assert_int_equal(berth_pg_meta_backend_new(&b, &o), 0);
    berth_digest d = dg("outage");
    assert_int_equal(b->blob_touch(b, &d, 6), 0);
    assert_int_equal(b->blob_link(b, "r", &d, 6), 0);

    engine("down", dir);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    uint64_t size = 0;
    berth_meta_upload u;
    assert_int_equal(b->blob_stat(b, "r", &d, &size), BERTH_ENETWORK);
    assert_int_equal(b->blob_link(b, "r", &d, 6), BERTH_ENETWORK);
    assert_int_equal(b->upload_acquire(b, "r", "0d", &u), BERTH_ENETWORK);
    assert_int_equal(b->repo_exists(b, "r"), BERTH_ENETWORK);
    assert_true(since(&t0) < 10);

    engine("start", dir);
    assert_int_equal(b->blob_stat(b, "r", &d, &size), 0);
    assert_int_equal(size, 6);
    assert_int_equal(b->repo_exists(b, "r"), 1);
    b->free(b);
    engine("down", dir);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the race: manifest PUT against unlink and gc --------------------------------------- */

typedef struct race {
    berth_meta_backend *b;
    const char *url;
    berth_digest blob;
    atomic_bool stop;
    atomic_long puts, put_refused, unlinks, collected, violations;
} race;

static void *pusher(void *arg)
{
    race *r = arg;
    berth_meta_backend *b = r->b;
    char data[64];
    for (unsigned i = 0; !atomic_load(&r->stop); i++) {
        if (b->blob_touch(b, &r->blob, 4) != 0 || b->blob_link(b, "race", &r->blob, 4) != 0) {
            continue; /* collected meanwhile: push it again */
        }
        int len = snprintf(data, sizeof(data), "{\"n\":%u}", i);
        berth_meta_manifest m = {.media_type = "application/vnd.oci.image.manifest.v1+json",
                                 .size = (uint64_t)len,
                                 .data = data,
                                 .blobs = &r->blob,
                                 .nblobs = 1,
                                 .pushed = (int64_t)time(NULL)};
        berth_digest_buffer(&m.digest, BERTH_DIGEST_SHA256, data, (size_t)len);
        int rc = b->manifest_put(b, "race", &m, NULL, 0, NULL);
        if (rc == 0) {
            atomic_fetch_add(&r->puts, 1);
            /* untagged and gone again: the deleter's unlink and gc get their turn */
            b->manifest_delete(b, "race", &m.digest, 0);
        } else if (rc == BERTH_ENOTFOUND) {
            atomic_fetch_add(&r->put_refused, 1);
        } else {
            fail_msg("manifest_put: %s: %s", berth_error_name(rc), berth_error_last());
        }
    }
    return NULL;
}

static int delete_all(const berth_meta_manifest *m, void *payload)
{
    berth_meta_backend *b = payload;
    b->manifest_delete(b, "race", &m->digest, 0);
    return 0;
}

static void *deleter(void *arg)
{
    race *r = arg;
    berth_meta_backend *b = r->b;
    int64_t later = (int64_t)time(NULL) + 3600;
    while (!atomic_load(&r->stop)) {
        b->manifests(b, "race", delete_all, b);
        if (b->blob_unlink(b, "race", &r->blob, 0) == 0) {
            atomic_fetch_add(&r->unlinks, 1);
        }
        berth_digest d;
        uint64_t size;
        berth_meta_claim *c = NULL;
        if (b->gc_blob_claim(b, NULL, later, &d, &size, &c) == 0) {
            atomic_fetch_add(&r->collected, 1);
            b->gc_blob_release(b, c, true);
        }
    }
    return NULL;
}

/* A manifest whose blob is not linked in its repository, seen in one snapshot. */
static void *checker(void *arg)
{
    race *r = arg;
    PGconn *c = admin(r->url);
    while (!atomic_load(&r->stop)) {
        long long bad = sql_int(c, "SELECT count(*) FROM manifest_blobs mb WHERE NOT EXISTS "
                                   "(SELECT 1 FROM repository_blobs l WHERE l.repository_id = "
                                   "mb.repository_id AND l.digest = mb.digest)");
        atomic_fetch_add(&r->violations, bad);
    }
    PQfinish(c);
    return NULL;
}

static void test_pg__manifest_put_races_unlink_and_gc(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_race");
    race r = {.url = url, .blob = dg("the layer")};
    r.b = open_ok(url);
    pthread_t t[4];
    assert_int_equal(pthread_create(&t[0], NULL, pusher, &r), 0);
    assert_int_equal(pthread_create(&t[1], NULL, pusher, &r), 0);
    assert_int_equal(pthread_create(&t[2], NULL, deleter, &r), 0);
    assert_int_equal(pthread_create(&t[3], NULL, checker, &r), 0);
    sleep(6);
    atomic_store(&r.stop, true);
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    print_message("puts %ld, refused %ld, unlinks %ld, collected %ld\n", atomic_load(&r.puts),
                  atomic_load(&r.put_refused), atomic_load(&r.unlinks), atomic_load(&r.collected));
    /* the race was run, from both sides */
    assert_true(atomic_load(&r.puts) > 20);
    assert_true(atomic_load(&r.unlinks) > 5);
    assert_true(atomic_load(&r.collected) > 5);
    assert_int_equal(atomic_load(&r.violations), 0);
    r.b->free(r.b);
}

/* ---- prepared statements (conn.c) ------------------------------------------------------- */

static bool is_prepared(PGconn *c, const char *name)
{
    PGresult *r = NULL;
    const char *p[] = {name};
    assert_int_equal(berth__pg_exec(&r, c,
                                    "SELECT count(*) FROM pg_prepared_statements WHERE name = $1",
                                    1, p, 0),
                     0);
    bool yes = berth__pg_int(r, 0, 0) == 1;
    PQclear(r);
    return yes;
}

static void assert_runs(PGconn *c, const berth__pg_stmt *st)
{
    PGresult *r = NULL;
    const char *p[] = {"41"};
    assert_int_equal(berth__pg_exec_stmt(&r, c, st, 1, p, NULL, NULL, 0), 0);
    assert_string_equal(PQgetvalue(r, 0, 0), "42");
    PQclear(r);
}

/* Statements are prepared on the connection given and on every one the pool makes after;
 * a connection made outside the pool runs them unprepared. */
static void test_pg__statements_are_prepared_on_every_connection(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_prepared");
    berth_pg_options o = {.conninfo = url, .pool_size = 4};
    berth__pg_pool pool;
    const berth__pg_stmt st[] = {{"berth_t_plus", "SELECT $1::integer + 1"},
                                 {"berth_t_minus", "SELECT $1::integer - 1"}};
    PGconn *c1 = NULL, *c2 = NULL, *c3 = NULL;
    assert_int_equal(berth__pg_pool_init(&pool, &o), 0);
    assert_int_equal(berth__pg_pool_get(&pool, &c1), 0);
    assert_false(is_prepared(c1, "berth_t_plus"));
    assert_int_equal(berth__pg_pool_prepare(&pool, c1, st, 2), 0);
    assert_true(is_prepared(c1, "berth_t_plus"));
    assert_true(is_prepared(c1, "berth_t_minus"));
    assert_runs(c1, &st[0]);
    /* c1 is in use: the pool makes c2, and prepares it */
    assert_int_equal(berth__pg_pool_get(&pool, &c2), 0);
    assert_true(c2 != c1);
    assert_true(is_prepared(c2, "berth_t_plus"));
    assert_runs(c2, &st[0]);
    berth__pg_pool_put(&pool, c2);
    /* dedicated connections too */
    assert_int_equal(berth__pg_dedicated_get(&pool, &c2), 0);
    assert_true(is_prepared(c2, "berth_t_minus"));
    berth__pg_dedicated_put(&pool, c2);
    berth__pg_pool_put(&pool, c1);
    /* outside a pool: unprepared, the statement runs as it is (outside a transaction) */
    assert_int_equal(berth__pg_connect(&c3, url, 5, 15000), 0);
    assert_false(is_prepared(c3, "berth_t_plus"));
    assert_runs(c3, &st[0]);
    PQfinish(c3);
    berth__pg_pool_dispose(&pool);
}

/* ---- replicas: a tag moved on one is seen on the other at once -------------------------- */

static int names_cat(const char *name, void *payload)
{
    strcat(payload, name);
    strcat(payload, ",");
    return 0;
}

static void put_tagged(berth_meta_backend *b, const char *body, const char *tag, berth_digest *d)
{
    berth_meta_manifest m = {.media_type = "application/vnd.oci.image.manifest.v1+json",
                             .size = strlen(body),
                             .data = body,
                             .pushed = (int64_t)time(NULL)};
    berth_digest_buffer(&m.digest, BERTH_DIGEST_SHA256, body, m.size);
    const char *tags[] = {tag};
    assert_int_equal(b->manifest_put(b, "rep", &m, tags, 1, NULL), 0);
    *d = m.digest;
}

static void assert_sees(berth_meta_backend *b, const char *tag, const char *body,
                        const berth_digest *want)
{
    berth_digest d;
    berth_meta_blob_doc doc = {0};
    assert_non_null(b->tag_manifest_get);
    assert_int_equal(b->tag_manifest_get(b, "rep", tag, &d, &doc), 0);
    assert_string_equal(d.str, want->str);
    assert_int_equal(doc.len, strlen(body));
    assert_memory_equal(doc.data, body, doc.len);
    assert_string_equal(doc.media_type, "application/vnd.oci.image.manifest.v1+json");
    free(doc.data);
    free(doc.media_type);
    assert_int_equal(b->tag_get(b, "rep", tag, &d), 0);
    assert_string_equal(d.str, want->str);
}

/* Two backends on one database are two replicas (two pools, prepared statements on each
 * connection): what one acknowledges, the other answers at its next call, every time. */
static void test_pg__a_tag_moved_on_one_replica_is_seen_on_another(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_replicas");
    berth_meta_backend *r[2] = {open_ok(url), open_ok(url)};
    const char *bodies[2] = {"{\"schemaVersion\":2,\"n\":0}", "{\"schemaVersion\":2,\"n\":1}"};
    berth_digest d[2];
    put_tagged(r[0], bodies[0], "t", &d[0]);
    put_tagged(r[0], bodies[1], "other", &d[1]);
    assert_sees(r[1], "t", bodies[0], &d[0]);
    for (int i = 1; i <= 60; i++) {
        berth_meta_backend *w = r[i % 2], *rd = r[(i + 1) % 2];
        berth_digest dd;
        put_tagged(w, bodies[i % 2], "t", &dd);
        assert_sees(rd, "t", bodies[i % 2], &d[i % 2]);
        assert_sees(w, "t", bodies[i % 2], &d[i % 2]);
    }
    /* deleted on one: gone on the other; a new tag on one: listed by the other */
    assert_int_equal(r[0]->tag_delete(r[0], "rep", "t", NULL), 0);
    berth_digest x;
    berth_meta_blob_doc doc = {0};
    assert_int_equal(r[1]->tag_manifest_get(r[1], "rep", "t", &x, &doc), BERTH_ENOTFOUND);
    assert_null(doc.data);
    char listed[256] = "";
    bool more = true;
    assert_int_equal(r[0]->tag_names(r[0], "rep", NULL, 0, names_cat, listed, &more), 0);
    assert_string_equal(listed, "other,");
    put_tagged(r[1], bodies[0], "new", &x);
    listed[0] = '\0';
    assert_int_equal(r[0]->tag_names(r[0], "rep", NULL, 0, names_cat, listed, &more), 0);
    assert_string_equal(listed, "new,other,");
    assert_false(more);
    r[0]->free(r[0]);
    r[1]->free(r[1]);
}

#define ZEROS64 "0000000000000000000000000000000000000000000000000000000000000000"

/* tag_names and catalog send a page as one aggregated text; a page they cannot split (here a
 * name berth never stores, too long, written behind its back) is read row by row. */
static void test_pg__tag_names_falls_back_to_rows(void **state)
{
    char url[1100];
    fresh_db(url, sizeof(url), "berth_t_tagnames");
    berth_meta_backend *b = open_ok(url);
    berth_digest d;
    put_tagged(b, "{\"schemaVersion\":2}", "a", &d);
    put_tagged(b, "{\"schemaVersion\":2}", "z", &d);
    char listed[512] = "";
    bool more = true;
    assert_int_equal(b->tag_names(b, "rep", NULL, 0, names_cat, listed, &more), 0);
    assert_string_equal(listed, "a,z,");
    PGconn *c = admin(url);
    sql(c, "INSERT INTO tags (repository_id, name, manifest_id, pushed) SELECT repository_id, "
           "repeat('m', 129), id, 0 FROM manifests");
    PQfinish(c);
    char want[512];
    snprintf(want, sizeof(want), "a,%0129d,z,", 0);
    for (char *p = want + 2; *p == '0'; p++) {
        *p = 'm';
    }
    listed[0] = '\0';
    assert_int_equal(b->tag_names(b, "rep", NULL, 0, names_cat, listed, &more), 0);
    assert_string_equal(listed, want);
    assert_false(more);
    listed[0] = '\0';
    assert_int_equal(b->tag_names(b, "rep", NULL, 2, names_cat, listed, &more), 0);
    assert_true(more);
    /* the catalog likewise: a repository name longer than BERTH_NAME_MAX */
    c = admin(url);
    sql(c, "INSERT INTO repositories (name, created) VALUES (repeat('r', 256), 0)");
    sql(c, "INSERT INTO blobs (digest, size, touched) VALUES ('sha256:" ZEROS64 "', 1, 0)");
    sql(c,
        "INSERT INTO repository_blobs (repository_id, digest, linked) SELECT id, 'sha256:" ZEROS64
        "', 0 FROM repositories WHERE name = repeat('r', 256)");
    PQfinish(c);
    memset(want, 'r', 256);
    snprintf(want + 256, sizeof(want) - 256, ",");
    listed[0] = '\0';
    more = true;
    assert_int_equal(b->catalog(b, "rep", 0, names_cat, listed, &more), 0);
    assert_string_equal(listed, want);
    assert_false(more);
    b->free(b);
}

/* ---- the contract suite ------------------------------------------------------------------ */

static int open_contract(berth_meta_backend **out, void *payload)
{
    berth_pg_options o = {.conninfo = payload};
    int rc = berth_pg_meta_backend_new(out, &o);
    if (rc != 0) {
        print_error("open: %s: %s\n", berth_error_name(rc), berth_error_last());
    }
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg__empty_database_gets_the_schema),
        cmocka_unit_test(test_pg__older_schema_is_refused_until_upgraded),
        cmocka_unit_test(test_pg__newer_schema_is_refused),
        cmocka_unit_test(test_pg__replicas_starting_together_create_the_schema_once),
        cmocka_unit_test(test_pg__manifests_tags_links_and_paging),
        cmocka_unit_test(test_pg__upload_sessions),
        cmocka_unit_test(test_pg__a_killed_holder_loses_the_session_at_once),
        cmocka_unit_test(test_pg__named_locks),
        cmocka_unit_test(test_pg__gc_claim_holds_off_touch_and_link),
        cmocka_unit_test(test_pg__unreachable_server_is_enetwork_in_seconds),
        cmocka_unit_test(test_pg__broken_connections_are_replaced),
        cmocka_unit_test(test_pg__an_outage_is_enetwork_and_service_resumes),
        cmocka_unit_test(test_pg__manifest_put_races_unlink_and_gc),
        cmocka_unit_test(test_pg__a_tag_moved_on_one_replica_is_seen_on_another),
        cmocka_unit_test(test_pg__tag_names_falls_back_to_rows),
        cmocka_unit_test(test_pg__statements_are_prepared_on_every_connection),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);
    static char contract_url[1100];
    fresh_db(contract_url, sizeof(contract_url), "berth_t_contract");
    failed += meta_contract_run("meta_contract/postgres", open_contract, contract_url);
    return failed ? 1 : 0;
}
