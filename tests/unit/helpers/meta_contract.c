/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The metadata backend contract suite (meta_contract.h). Each test names its repositories
 * "<prefix>/<test>..." under a per-run random prefix and makes blobs and manifests whose bytes
 * hold the prefix, so that it runs against a backend that others use too; it checks what it
 * made and nothing else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers/meta_contract.h"

#include <berth/errors.h>

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MT_IMAGE "application/vnd.oci.image.manifest.v1+json"
#define MT_INDEX "application/vnd.oci.image.index.v1+json"

static struct {
    int (*open)(berth_meta_backend **out, void *payload);
    void *payload;
    char prefix[16]; /* "ct" and 8 hex digits: repositories */
    char hex[16];    /* 8 hex digits: upload ids */
    unsigned seq;
    pthread_mutex_t seq_lock;
} g = {.seq_lock = PTHREAD_MUTEX_INITIALIZER};

static unsigned next_seq(void)
{
    pthread_mutex_lock(&g.seq_lock);
    unsigned n = ++g.seq;
    pthread_mutex_unlock(&g.seq_lock);
    return n;
}

static int setup(void **state)
{
    berth_meta_backend *b = NULL;
    int rc = g.open(&b, g.payload);
    if (rc != 0 || !b) {
        fprintf(stderr, "meta_contract: open failed: %d %s\n", rc, berth_error_last());
        return -1;
    }
    assert_int_equal(b->version, BERTH_META_BACKEND_VERSION);
    assert_non_null(b->name);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    berth_meta_backend *b = *state;
    if (b) {
        b->free(b);
    }
    return 0;
}

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

/* "<prefix>/<name>" */
static void repo_name(char out[256], const char *name)
{
    snprintf(out, 256, "%s/%s", g.prefix, name);
}

static void upload_id(char out[65])
{
    snprintf(out, 65, "%s-%08x", g.hex, next_seq());
}

/* A digest no one else has: of the run's prefix and a counter. */
static berth_digest new_digest(void)
{
    char text[64];
    berth_digest d;
    int n = snprintf(text, sizeof(text), "blob %s %u", g.prefix, next_seq());
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, (size_t)n), 0);
    return d;
}

/* A blob touched and linked in `repo`. */
static berth_digest new_blob(berth_meta_backend *b, const char *repo, uint64_t size)
{
    berth_digest d = new_digest();
    assert_int_equal(b->blob_touch(b, &d, size), 0);
    if (repo) {
        assert_int_equal(b->blob_link(b, repo, &d, size), 0);
    }
    return d;
}

/* A manifest under construction: the test owns every byte and array of it. */
typedef struct man {
    berth_meta_manifest m;
    char data[512];
    berth_digest blobs[4];
    berth_digest children[4];
} man;

static void man_init(man *x, const char *media_type, const char *artifact_type)
{
    memset(x, 0, sizeof(*x));
    int n = snprintf(x->data, sizeof(x->data), "{\"mediaType\":\"%s\",\"contract\":\"%s-%u\"}",
                     media_type, g.prefix, next_seq());
    assert_int_equal(berth_digest_buffer(&x->m.digest, BERTH_DIGEST_SHA256, x->data, (size_t)n), 0);
    x->m.media_type = media_type;
    x->m.artifact_type = artifact_type;
    x->m.size = (uint64_t)n;
    x->m.data = x->data;
    x->m.pushed = now();
}

static void man_image(man *x, const berth_digest *config, const berth_digest *layer)
{
    man_init(x, MT_IMAGE, NULL);
    if (config) {
        x->blobs[x->m.nblobs++] = *config;
    }
    if (layer) {
        x->blobs[x->m.nblobs++] = *layer;
    }
}

static void man_index(man *x, const berth_digest *c1, const berth_digest *c2)
{
    man_init(x, MT_INDEX, NULL);
    if (c1) {
        x->children[x->m.nchildren++] = *c1;
    }
    if (c2) {
        x->children[x->m.nchildren++] = *c2;
    }
}

static void man_subject(man *x, const berth_digest *subject, const char *artifact_type)
{
    x->m.has_subject = true;
    x->m.subject = *subject;
    x->m.artifact_type = artifact_type;
}

static int put(berth_meta_backend *b, const char *repo, man *x, const char *const *tags,
               size_t ntags, berth_digest *missing)
{
    berth_digest ignored;
    x->m.blobs = x->m.nblobs ? x->blobs : NULL;
    x->m.children = x->m.nchildren ? x->children : NULL;
    x->m.data = x->data;
    return b->manifest_put(b, repo, &x->m, tags, ntags, missing ? missing : &ignored);
}

static void put_ok(berth_meta_backend *b, const char *repo, man *x, const char *const *tags,
                   size_t ntags)
{
    int rc = put(b, repo, x, tags, ntags, NULL);
    if (rc != 0) {
        fprintf(stderr, "manifest_put: %d %s\n", rc, berth_error_last());
    }
    assert_int_equal(rc, 0);
}

static void assert_tag(berth_meta_backend *b, const char *repo, const char *tag,
                       const berth_digest *want)
{
    berth_digest d;
    if (!want) {
        assert_int_equal(b->tag_get(b, repo, tag, &d), BERTH_ENOTFOUND);
        return;
    }
    assert_int_equal(b->tag_get(b, repo, tag, &d), 0);
    assert_string_equal(d.str, want->str);
}

/* The optional manifest_lend() of `x` (NULL when the backend has none), checked. */
static berth_meta_loan *lend(berth_meta_backend *b, const char *repo, const man *x)
{
    berth_meta_loan *loan = NULL;
    if (!b->manifest_lend) {
        return NULL;
    }
    assert_int_equal(b->manifest_lend(b, repo, &x->m.digest, &loan), 0);
    assert_non_null(loan);
    assert_int_equal(loan->len, x->m.size);
    assert_memory_equal(loan->data, x->data, loan->len);
    assert_int_equal(loan->data[loan->len], '\0');
    assert_string_equal(loan->media_type, x->m.media_type);
    return loan;
}

static void assert_manifest(berth_meta_backend *b, const char *repo, const man *x)
{
    berth_meta_blob_doc doc = {NULL, 0, NULL};
    berth_meta_loan *loan;
    assert_int_equal(b->manifest_get(b, repo, &x->m.digest, &doc), 0);
    assert_int_equal(doc.len, x->m.size);
    assert_memory_equal(doc.data, x->data, doc.len);
    assert_string_equal(doc.media_type, x->m.media_type);
    free(doc.data);
    free(doc.media_type);
    if ((loan = lend(b, repo, x))) {
        loan->release(loan);
    }
}

static void assert_no_manifest(berth_meta_backend *b, const char *repo, const berth_digest *d)
{
    berth_meta_blob_doc doc = {NULL, 0, NULL};
    berth_meta_loan *loan = NULL;
    assert_int_equal(b->manifest_get(b, repo, d, &doc), BERTH_ENOTFOUND);
    if (b->manifest_lend) {
        assert_int_equal(b->manifest_lend(b, repo, d, &loan), BERTH_ENOTFOUND);
    }
}

/* The error message names `d` (by its hex part at least). */
static void assert_error_names(const berth_digest *d)
{
    const char *msg = berth_error_last();
    if (!strstr(msg, berth_digest_hex(d))) {
        fprintf(stderr, "message \"%s\" does not name %s\n", msg, d->str);
        fail();
    }
}

/* ---- collecting callbacks --------------------------------------------------------------- */

#define MAXN 64

typedef struct names {
    char *v[MAXN];
    size_t n;
    size_t calls;
    int stop_after; /* > 0: return -77 on that call */
} names;

static int names_cb(const char *name, void *payload)
{
    names *s = payload;
    s->calls++;
    if (s->n < MAXN) {
        s->v[s->n++] = strdup(name);
    }
    return s->stop_after && (int)s->calls == s->stop_after ? -77 : 0;
}

static void names_clear(names *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i]);
    }
    memset(s, 0, sizeof(*s));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Ten tags in no order, for the paging tests (byte order: '-' < '.' < '1' < 'B' < '_' < 'a'). */
static const char *const paging_tags[10] = {"ab",  "a_b", "aB", "a1", "a.b",
                                            "a-b", "a",   "_x", "B",  "latest"};

/*
 * In `r`: a new image `m1` tagged with the first five paging_tags, a new image `m2` with the
 * other five; `sorted` receives the ten in byte order.
 */
static void put_paging_tags(berth_meta_backend *b, const char *r, man *m1, man *m2,
                            const char *sorted[10])
{
    man_image(m1, NULL, NULL);
    man_image(m2, NULL, NULL);
    put_ok(b, r, m1, paging_tags, 5);
    put_ok(b, r, m2, paging_tags + 5, 5);
    memcpy(sorted, paging_tags, sizeof(paging_tags));
    qsort(sorted, 10, sizeof(sorted[0]), cmp_str);
}

typedef struct tagrow {
    char tag[129];
    berth_digest digest;
    int64_t pushed;
} tagrow;

typedef struct tagrows {
    tagrow v[MAXN];
    size_t n;
    int stop_after;
} tagrows;

static int tags_cb(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    tagrows *s = payload;
    assert_true(s->n < MAXN);
    snprintf(s->v[s->n].tag, sizeof(s->v[s->n].tag), "%s", tag);
    s->v[s->n].digest = *digest;
    s->v[s->n].pushed = pushed;
    s->n++;
    return s->stop_after && (int)s->n == s->stop_after ? -77 : 0;
}

typedef struct refrow {
    berth_digest digest;
    char media_type[128];
    char artifact_type[128];
    bool has_artifact_type;
    uint64_t size;
} refrow;

typedef struct refrows {
    refrow v[MAXN];
    size_t n;
} refrows;

static int refs_cb(const berth_meta_referrer *r, void *payload)
{
    refrows *s = payload;
    assert_true(s->n < MAXN);
    refrow *row = &s->v[s->n++];
    row->digest = r->digest;
    assert_non_null(r->media_type);
    snprintf(row->media_type, sizeof(row->media_type), "%s", r->media_type);
    row->has_artifact_type = r->artifact_type != NULL;
    snprintf(row->artifact_type, sizeof(row->artifact_type), "%s",
             r->artifact_type ? r->artifact_type : "");
    row->size = r->size;
    return 0;
}

/* ---- repositories ----------------------------------------------------------------------- */

static void test_meta__repo_exists(void **state)
{
    berth_meta_backend *b = *state;
    char r1[256], r2[256], sub[256];
    repo_name(r1, "exists/a");
    repo_name(r2, "exists/b");
    repo_name(sub, "exists/a/sub");
    assert_int_equal(b->repo_exists(b, r1), 0);
    berth_digest d = new_blob(b, r1, 10);
    assert_int_equal(b->repo_exists(b, r1), 1);
    /* neither a name inside it nor the path above it */
    assert_int_equal(b->repo_exists(b, sub), 0);
    assert_int_equal(b->repo_exists(b, g.prefix), 0);

    /* a manifest alone makes one */
    man x;
    man_image(&x, NULL, NULL);
    assert_int_equal(b->repo_exists(b, r2), 0);
    put_ok(b, r2, &x, NULL, 0);
    assert_int_equal(b->repo_exists(b, r2), 1);

    /* holding nothing any more, it is gone, from the catalog too */
    assert_int_equal(b->blob_unlink(b, r1, &d, 0), 0);
    assert_int_equal(b->repo_exists(b, r1), 0);
    assert_int_equal(b->manifest_delete(b, r2, &x.m.digest, 0), 0);
    assert_int_equal(b->repo_exists(b, r2), 0);
    names s;
    bool more;
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->catalog(b, g.prefix, 0, names_cb, &s, &more), 0);
    for (size_t i = 0; i < s.n; i++) {
        assert_string_not_equal(s.v[i], r1);
        assert_string_not_equal(s.v[i], r2);
    }
    names_clear(&s);
}

static void test_meta__catalog(void **state)
{
    berth_meta_backend *b = *state;
    /* byte order, not a locale's: '-' < '.' < '/' < '_' < 'a' */
    const char *leaf[] = {"cat/ab", "cat/a_b", "cat/b", "cat/a-b", "cat/a/b", "cat/a.b"};
    char mine[6][256], start[256], up[256];
    const char *sorted[6];
    names s;
    bool more = false;
    memset(&s, 0, sizeof(s));
    for (int i = 0; i < 6; i++) {
        repo_name(mine[i], leaf[i]);
        new_blob(b, mine[i], 1);
        sorted[i] = mine[i];
    }
    qsort(sorted, 6, sizeof(sorted[0]), cmp_str);
    assert_true(strcmp(sorted[0], mine[3]) == 0); /* cat/a-b */
    repo_name(start, "cat");

    assert_int_equal(b->catalog(b, start, 2, names_cb, &s, &more), 0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0], sorted[0]);
    assert_string_equal(s.v[1], sorted[1]);
    assert_true(more);
    names_clear(&s);
    more = false;
    assert_int_equal(b->catalog(b, sorted[1], 3, names_cb, &s, &more), 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < 3; i++) {
        assert_string_equal(s.v[i], sorted[2 + i]);
    }
    assert_true(more);
    names_clear(&s);
    more = true;
    assert_int_equal(b->catalog(b, sorted[4], 1, names_cb, &s, &more), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0], sorted[5]);
    bool more_after_last = more;
    names_clear(&s);
    more = true;
    assert_int_equal(b->catalog(b, sorted[5], 0, names_cb, &s, &more), 0);
    assert_false(more);
    /* `more` said whether anything follows */
    assert_true(more_after_last == (s.n > 0));
    for (size_t i = 0; i < s.n; i++) {
        assert_true(strcmp(s.v[i], sorted[5]) > 0);
        assert_true(strncmp(s.v[i], start, strlen(start)) != 0 || s.v[i][strlen(start)] != '/');
    }
    names_clear(&s);

    /* everything from the first: strictly increasing, ours in it */
    int found = 0;
    char *prev = NULL;
    more = true;
    /* more names than MAXN may exist in a shared engine: walk in pages */
    const char *last = NULL;
    char lastbuf[256] = "";
    for (;;) {
        assert_int_equal(b->catalog(b, last, 16, names_cb, &s, &more), 0);
        for (size_t i = 0; i < s.n; i++) {
            if (prev) {
                assert_true(strcmp(prev, s.v[i]) < 0);
            }
            free(prev);
            prev = strdup(s.v[i]);
            for (int k = 0; k < 6; k++) {
                found += strcmp(s.v[i], mine[k]) == 0;
            }
        }
        if (!more) {
            names_clear(&s);
            break;
        }
        assert_int_equal(s.n, 16);
        snprintf(lastbuf, sizeof(lastbuf), "%s", s.v[s.n - 1]);
        last = lastbuf;
        names_clear(&s);
    }
    free(prev);
    assert_int_equal(found, 6);

    /* the callback's non-zero return stops the walk */
    s.stop_after = 1;
    assert_int_equal(b->catalog(b, start, 0, names_cb, &s, &more), -77);
    assert_int_equal(s.calls, 1);
    names_clear(&s);

    /* an upload session alone makes no repository */
    berth_meta_upload u;
    memset(&u, 0, sizeof(u));
    upload_id(u.id);
    repo_name(up, "catu");
    u.repo = up;
    u.owner = "";
    u.hash_state = "";
    u.created = u.updated = now();
    berth_meta_upload_limits nolimits = {0, 0, 0};
    assert_int_equal(b->upload_create(b, &u, &nolimits), 0);
    assert_int_equal(b->repo_exists(b, up), 0);
    assert_int_equal(b->catalog(b, sorted[5], 1, names_cb, &s, &more), 0);
    for (size_t i = 0; i < s.n; i++) {
        assert_string_not_equal(s.v[i], up);
    }
    names_clear(&s);
    assert_int_equal(b->upload_delete(b, u.id), 0);
}

/* ---- blobs of a repository -------------------------------------------------------------- */

/*
 * The optional blob_open_fd() agrees with blob_stat() of `repo`: the same answer, and a
 * descriptor of `size` bytes. A backend without it (NULL) falls back in the store; then the
 * check is blob_stat()'s own, made by the caller.
 */
static void assert_open_fd(berth_meta_backend *b, const char *repo, const berth_digest *d, int want,
                           uint64_t want_size)
{
    uint64_t size = 0, total = 0;
    char buf[4096];
    ssize_t n;
    int fd = -1;

    if (!b->blob_open_fd) {
        return;
    }
    assert_int_equal(b->blob_open_fd(b, repo, d, &fd, &size), want);
    if (want != 0) {
        assert_int_equal(fd, -1); /* untouched on failure */
        return;
    }
    assert_true(fd >= 0);
    assert_int_equal(size, want_size);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        total += (uint64_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(total, want_size);
    close(fd);
}

static void test_meta__blob_touch_link_stat(void **state)
{
    berth_meta_backend *b = *state;
    char r1[256], r2[256], r3[256];
    uint64_t size = 0;
    repo_name(r1, "links/a");
    repo_name(r2, "links/b");
    repo_name(r3, "links/c");
    berth_digest d = new_digest();

    /* unknown */
    assert_int_equal(b->blob_link(b, r1, &d, 5), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, NULL, &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(b->repo_exists(b, r1), 0);

    /* touched: known, but in no repository */
    assert_int_equal(b->blob_touch(b, &d, 5), 0);
    assert_int_equal(b->blob_stat(b, NULL, &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, r1, &d, &size), BERTH_ENOTFOUND);
    assert_open_fd(b, r1, &d, BERTH_ENOTFOUND, 0);
    assert_int_equal(b->blob_touch(b, &d, 5), 0); /* again */

    assert_int_equal(b->blob_link(b, r1, &d, 5), 0);
    assert_int_equal(b->blob_link(b, r1, &d, 5), 0); /* again */
    assert_int_equal(b->blob_stat(b, r1, &d, &size), 0);
    assert_int_equal(size, 5);
    assert_open_fd(b, r1, &d, 0, 5);
    size = 0;
    assert_int_equal(b->blob_stat(b, NULL, &d, &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(b->blob_stat(b, r2, &d, &size), BERTH_ENOTFOUND);
    assert_open_fd(b, r2, &d, BERTH_ENOTFOUND, 0); /* in another repository only */

    /* a mount: a known blob keeps its size */
    assert_int_equal(b->blob_link(b, r2, &d, 999), 0);
    assert_int_equal(b->blob_stat(b, r2, &d, &size), 0);
    assert_int_equal(size, 5);
    assert_int_equal(b->repo_exists(b, r2), 1);
    assert_int_equal(b->blob_stat(b, r3, &d, &size), BERTH_ENOTFOUND);

    /* unlinked from one, still in the other */
    assert_int_equal(b->blob_unlink(b, r1, &d, 0), 0);
    assert_int_equal(b->blob_stat(b, r1, &d, &size), BERTH_ENOTFOUND);
    assert_open_fd(b, r1, &d, BERTH_ENOTFOUND, 0);
    assert_open_fd(b, r2, &d, 0, 5);
    assert_int_equal(b->blob_stat(b, NULL, &d, &size), 0);
    assert_int_equal(b->blob_unlink(b, r2, &d, 0), 0);
    assert_int_equal(b->blob_stat(b, NULL, &d, &size), BERTH_ENOTFOUND);
    /* still known: linked again without a touch */
    assert_int_equal(b->blob_link(b, r3, &d, 5), 0);
    assert_int_equal(b->blob_stat(b, r3, &d, &size), 0);
}

typedef struct linkrows {
    berth_digest d[MAXN];
    uint64_t size[MAXN];
    int64_t linked[MAXN];
    size_t n;
    int stop_after;
} linkrows;

static int links_cb(const berth_digest *digest, uint64_t size, int64_t linked, void *payload)
{
    linkrows *s = payload;
    assert_true(s->n < MAXN);
    s->d[s->n] = *digest;
    s->size[s->n] = size;
    s->linked[s->n] = linked;
    s->n++;
    return s->stop_after && (int)s->n == s->stop_after ? -77 : 0;
}

static void test_meta__links(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256], none[256];
    linkrows s;
    int64_t t0 = now();
    repo_name(r, "linklist");
    repo_name(r2, "linklist2");
    repo_name(none, "linklist-none");
    berth_digest d[3] = {new_blob(b, r, 1), new_blob(b, r, 22), new_blob(b, r, 333)};
    new_blob(b, r2, 4444);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->links(b, r, links_cb, &s), 0);
    assert_int_equal(s.n, 3);
    for (int k = 0; k < 3; k++) {
        int hits = 0;
        for (size_t i = 0; i < s.n; i++) {
            if (berth_digest_equal(&s.d[i], &d[k])) {
                hits++;
                assert_int_equal(s.size[i], k == 0 ? 1 : k == 1 ? 22 : 333);
                assert_true(s.linked[i] >= t0 - 600 && s.linked[i] <= now() + 600);
            }
        }
        assert_int_equal(hits, 1);
    }
    assert_int_equal(b->blob_unlink(b, r, &d[1], 0), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->links(b, r, links_cb, &s), 0);
    assert_int_equal(s.n, 2);
    assert_false(berth_digest_equal(&s.d[0], &d[1]) || berth_digest_equal(&s.d[1], &d[1]));

    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    assert_int_equal(b->links(b, r, links_cb, &s), -77);
    assert_int_equal(s.n, 1);

    /* a repository that does not exist holds nothing */
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->links(b, none, links_cb, &s), 0);
    assert_int_equal(s.n, 0);
}

static void test_meta__blob_unlink(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256];
    uint64_t size;
    repo_name(r, "unlink/a");
    repo_name(r2, "unlink/b");
    berth_digest c = new_blob(b, r, 10), l = new_blob(b, r, 20);
    assert_int_equal(b->blob_link(b, r2, &l, 20), 0);
    man m, m2;
    man_image(&m, &c, &l);
    put_ok(b, r, &m, NULL, 0);

    /* referenced by a manifest of the repository: refused, naming it */
    assert_int_equal(b->blob_unlink(b, r, &l, 0), BERTH_EINUSE);
    assert_error_names(&m.m.digest);
    assert_int_equal(b->blob_unlink(b, r, &c, 0), BERTH_EINUSE);
    assert_int_equal(b->blob_stat(b, r, &l, &size), 0);
    /* the same blob in another repository, where nothing references it */
    assert_int_equal(b->blob_unlink(b, r2, &l, 0), 0);
    assert_int_equal(b->blob_stat(b, r2, &l, &size), BERTH_ENOTFOUND);
    /* a manifest is not a blob */
    assert_int_equal(b->blob_unlink(b, r, &m.m.digest, 0), BERTH_ENOTFOUND);
    assert_manifest(b, r, &m);

    /* a second manifest also references it: refused until both are gone */
    man_image(&m2, &c, NULL);
    put_ok(b, r, &m2, NULL, 0);
    assert_int_equal(b->manifest_delete(b, r, &m.m.digest, 0), 0);
    assert_int_equal(b->blob_unlink(b, r, &l, 0), 0);
    assert_int_equal(b->blob_unlink(b, r, &c, 0), BERTH_EINUSE);
    assert_error_names(&m2.m.digest);
    assert_int_equal(b->manifest_delete(b, r, &m2.m.digest, 0), 0);
    assert_int_equal(b->blob_unlink(b, r, &c, 0), 0);
    assert_int_equal(b->blob_unlink(b, r, &c, 0), BERTH_ENOTFOUND);
    berth_digest unknown = new_digest();
    assert_int_equal(b->blob_unlink(b, r, &unknown, 0), BERTH_ENOTFOUND);

    /* older_than: a link made after it stays (EBUSY) */
    berth_digest x = new_blob(b, r, 30);
    assert_int_equal(b->blob_unlink(b, r, &x, now() - 3600), BERTH_EBUSY);
    assert_int_equal(b->blob_stat(b, r, &x, &size), 0);
    assert_int_equal(b->blob_unlink(b, r, &x, now() + 3600), 0);
    assert_int_equal(b->blob_stat(b, r, &x, &size), BERTH_ENOTFOUND);

    /* a blob that a (sparse) index names as a child is referenced too */
    berth_digest y = new_blob(b, r, 40);
    man idx;
    man_index(&idx, &y, NULL);
    idx.m.sparse = true;
    put_ok(b, r, &idx, NULL, 0);
    assert_int_equal(b->blob_unlink(b, r, &y, 0), BERTH_EINUSE);
    assert_error_names(&idx.m.digest);
}

/* ---- manifests and tags ----------------------------------------------------------------- */

static void test_meta__manifest_put_checks_references(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256], r3[256];
    berth_digest missing;
    repo_name(r, "put/a");
    repo_name(r2, "put/b");
    repo_name(r3, "put/c");
    berth_digest c = new_blob(b, r, 10);
    berth_digest l = new_blob(b, r2, 20); /* linked elsewhere only */
    berth_digest l2 = new_digest();
    assert_int_equal(b->blob_touch(b, &l2, 30), 0); /* known, in no repository */
    const char *tags[] = {"t1", "t2"};

    man m;
    man_image(&m, &c, &l);
    memset(&missing, 0, sizeof(missing));
    assert_int_equal(put(b, r, &m, tags, 2, &missing), BERTH_ENOTFOUND);
    assert_string_equal(missing.str, l.str);
    assert_no_manifest(b, r, &m.m.digest);
    assert_tag(b, r, "t1", NULL);
    assert_tag(b, r, "t2", NULL);

    /* the first absent one, in the given order; a refused put creates no repository */
    man m3;
    man_image(&m3, &l2, &c);
    assert_int_equal(put(b, r3, &m3, tags, 1, &missing), BERTH_ENOTFOUND);
    assert_string_equal(missing.str, l2.str);
    assert_int_equal(b->repo_exists(b, r3), 0);

    assert_int_equal(b->blob_link(b, r, &l, 20), 0);
    put_ok(b, r, &m, tags, 2);
    assert_manifest(b, r, &m);
    assert_tag(b, r, "t1", &m.m.digest);
    assert_tag(b, r, "t2", &m.m.digest);
    assert_no_manifest(b, r2, &m.m.digest);
    assert_tag(b, r2, "t1", NULL);

    /* an index: every child a manifest of the repository */
    man other, idx;
    man_image(&other, NULL, NULL);
    put_ok(b, r2, &other, NULL, 0); /* in another repository */
    man_index(&idx, &m.m.digest, &other.m.digest);
    const char *itag[] = {"index"};
    assert_int_equal(put(b, r, &idx, itag, 1, &missing), BERTH_ENOTFOUND);
    assert_string_equal(missing.str, other.m.digest.str);
    assert_no_manifest(b, r, &idx.m.digest);
    assert_tag(b, r, "index", NULL);
    /* a child that is a blob of the repository is no manifest */
    man idx2;
    man_index(&idx2, &c, NULL);
    assert_int_equal(put(b, r, &idx2, NULL, 0, &missing), BERTH_ENOTFOUND);
    assert_string_equal(missing.str, c.str);

    /* sparse: absent blobs and children are accepted */
    idx.m.sparse = true;
    put_ok(b, r, &idx, itag, 1);
    assert_manifest(b, r, &idx);
    assert_tag(b, r, "index", &idx.m.digest);
    man_image(&m3, &l2, &c);
    m3.m.sparse = true;
    put_ok(b, r3, &m3, NULL, 0);
    assert_manifest(b, r3, &m3);
    assert_int_equal(b->repo_exists(b, r3), 1);

    /* non-sparse index whose children are all there */
    man idx3;
    man_index(&idx3, &m.m.digest, &idx.m.digest);
    put_ok(b, r, &idx3, NULL, 0);
    assert_manifest(b, r, &idx3);
}

static void test_meta__manifest_put_tags(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256];
    repo_name(r, "ptags/a");
    repo_name(r2, "ptags/b");
    man m1, m2;
    man_image(&m1, NULL, NULL);
    man_image(&m2, NULL, NULL);
    const char *ab[] = {"a", "b"}, *c[] = {"c"}, *a[] = {"a"};
    put_ok(b, r, &m1, ab, 2);
    put_ok(b, r2, &m2, a, 1);
    assert_tag(b, r, "a", &m1.m.digest);
    assert_tag(b, r, "b", &m1.m.digest);
    assert_tag(b, r2, "a", &m2.m.digest);

    /* the same digest again (here with other bytes): the bytes stay, the tags are set */
    man again = m1;
    memset(again.data, 0, sizeof(again.data));
    snprintf(again.data, sizeof(again.data), "%s", "{\"other\":\"bytes\"}");
    again.m.size = strlen(again.data);
    put_ok(b, r, &again, c, 1);
    assert_manifest(b, r, &m1);
    assert_tag(b, r, "a", &m1.m.digest);
    assert_tag(b, r, "c", &m1.m.digest);

    /* a tag that pointed elsewhere moves */
    put_ok(b, r, &m2, a, 1);
    assert_tag(b, r, "a", &m2.m.digest);
    assert_tag(b, r, "b", &m1.m.digest);
    assert_tag(b, r, "c", &m1.m.digest);
    assert_tag(b, r2, "a", &m2.m.digest);
    put_ok(b, r, &m1, a, 1);
    assert_tag(b, r, "a", &m1.m.digest);
    assert_manifest(b, r, &m2);

    /* the same tag twice in one put */
    const char *dup[] = {"d", "d"};
    put_ok(b, r, &m2, dup, 2);
    assert_tag(b, r, "d", &m2.m.digest);
}

static void test_meta__lookups_of_absent_things(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], none[256];
    berth_digest d = new_digest();
    repo_name(r, "absent/a");
    repo_name(none, "absent/none");
    man m;
    man_image(&m, NULL, NULL);
    const char *t[] = {"latest"};
    put_ok(b, r, &m, t, 1);
    assert_tag(b, none, "latest", NULL);
    assert_tag(b, r, "other", NULL);
    assert_tag(b, r, "LATEST", NULL);
    assert_no_manifest(b, r, &d);
    assert_no_manifest(b, none, &m.m.digest);
    assert_int_equal(b->manifest_delete(b, r, &d, 0), BERTH_ENOTFOUND);
    assert_int_equal(b->manifest_delete(b, none, &m.m.digest, 0), BERTH_ENOTFOUND);
    assert_int_equal(b->tag_delete(b, r, "other", NULL), BERTH_ENOTFOUND);
    assert_int_equal(b->tag_delete(b, none, "latest", NULL), BERTH_ENOTFOUND);
    assert_manifest(b, r, &m);
    assert_tag(b, r, "latest", &m.m.digest);
}

static void test_meta__manifest_delete(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256];
    uint64_t size;
    repo_name(r, "mdel/a");
    repo_name(r2, "mdel/b");
    berth_digest l = new_blob(b, r, 10);
    man m1, m2, idx, m3;
    man_image(&m1, NULL, &l);
    const char *xy[] = {"x", "y"}, *keep[] = {"keep"};
    put_ok(b, r, &m1, xy, 2);
    man_image(&m2, NULL, NULL);
    put_ok(b, r, &m2, keep, 1);

    /* with every tag pointing at it; its blobs stay linked; a loan outlives it */
    berth_meta_loan *loan = lend(b, r, &m1);
    assert_int_equal(b->manifest_delete(b, r, &m1.m.digest, 0), 0);
    assert_no_manifest(b, r, &m1.m.digest);
    if (loan) {
        assert_int_equal(loan->len, m1.m.size);
        assert_memory_equal(loan->data, m1.data, loan->len);
        assert_string_equal(loan->media_type, m1.m.media_type);
        loan->release(loan);
    }
    assert_tag(b, r, "x", NULL);
    assert_tag(b, r, "y", NULL);
    assert_tag(b, r, "keep", &m2.m.digest);
    assert_int_equal(b->manifest_delete(b, r, &m1.m.digest, 0), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, r, &l, &size), 0);
    tagrows t;
    memset(&t, 0, sizeof(t));
    bool more;
    assert_int_equal(b->tags(b, r, NULL, 0, tags_cb, &t, &more), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.v[0].tag, "keep");

    /* pushed again after its deletion */
    put_ok(b, r, &m1, xy, 1);
    assert_manifest(b, r, &m1);
    assert_tag(b, r, "x", &m1.m.digest);

    /* an index child: refused, naming the index */
    man_index(&idx, &m2.m.digest, NULL);
    put_ok(b, r, &idx, NULL, 0);
    assert_int_equal(b->manifest_delete(b, r, &m2.m.digest, 0), BERTH_EINUSE);
    assert_error_names(&idx.m.digest);
    assert_manifest(b, r, &m2);
    assert_tag(b, r, "keep", &m2.m.digest);
    assert_int_equal(b->manifest_delete(b, r, &idx.m.digest, 0), 0);
    assert_int_equal(b->manifest_delete(b, r, &m2.m.digest, 0), 0);

    /* garbage collection's re-check: tagged or young stays */
    man_image(&m3, NULL, NULL);
    const char *t3[] = {"t3"};
    put_ok(b, r, &m3, t3, 1);
    assert_int_equal(b->manifest_delete(b, r, &m3.m.digest, now() + 3600), BERTH_EBUSY);
    assert_manifest(b, r, &m3);
    assert_tag(b, r, "t3", &m3.m.digest);
    assert_int_equal(b->tag_delete(b, r, "t3", NULL), 0);
    assert_int_equal(b->manifest_delete(b, r, &m3.m.digest, now() - 3600), BERTH_EBUSY);
    assert_manifest(b, r, &m3);
    assert_int_equal(b->manifest_delete(b, r, &m3.m.digest, now() + 3600), 0);
    assert_no_manifest(b, r, &m3.m.digest);

    /* an index of another repository does not hold a manifest of this one */
    man m5, idx5;
    man_image(&m5, NULL, NULL);
    put_ok(b, r, &m5, NULL, 0);
    put_ok(b, r2, &m5, NULL, 0);
    man_index(&idx5, &m5.m.digest, NULL);
    put_ok(b, r2, &idx5, NULL, 0);
    assert_int_equal(b->manifest_delete(b, r, &m5.m.digest, 0), 0);
    assert_int_equal(b->manifest_delete(b, r2, &m5.m.digest, 0), BERTH_EINUSE);

    /* the same manifest in two repositories: one delete each */
    man m4;
    man_image(&m4, NULL, NULL);
    put_ok(b, r, &m4, NULL, 0);
    put_ok(b, r2, &m4, NULL, 0);
    assert_int_equal(b->manifest_delete(b, r, &m4.m.digest, 0), 0);
    assert_no_manifest(b, r, &m4.m.digest);
    assert_manifest(b, r2, &m4);
}

/* One digest both a manifest of a repository and a blob another of its manifests references (a
 * manifest's bytes pushed as a layer too, which a client may do): deleting the manifest leaves
 * the blob, which the other manifest still needs (found by test_integrity's random sequences:
 * on fs the delete removed the one file both shared). */
static void test_meta__manifest_delete_keeps_a_referenced_blob(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    uint64_t size;
    berth_digest missing;
    repo_name(r, "mdel/dual");
    man m1, m2;
    man_image(&m1, NULL, NULL);
    assert_int_equal(b->blob_touch(b, &m1.m.digest, m1.m.size), 0);
    assert_int_equal(b->blob_link(b, r, &m1.m.digest, m1.m.size), 0);
    put_ok(b, r, &m1, NULL, 0);
    man_image(&m2, NULL, &m1.m.digest);
    const char *t[] = {"t"};
    put_ok(b, r, &m2, t, 1);
    assert_int_equal(b->manifest_delete(b, r, &m1.m.digest, 0), 0);
    assert_no_manifest(b, r, &m1.m.digest);
    assert_int_equal(b->blob_stat(b, r, &m1.m.digest, &size), 0);
    assert_int_equal(size, m1.m.size);
    assert_int_equal(b->blob_unlink(b, r, &m1.m.digest, 0), BERTH_EINUSE);
    /* the image still goes in again whole */
    assert_int_equal(put(b, r, &m2, t, 1, &missing), 0);
    assert_manifest(b, r, &m2);
}

static void test_meta__tag_delete(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    repo_name(r, "tdel");
    man m1, m2;
    man_image(&m1, NULL, NULL);
    man_image(&m2, NULL, NULL);
    const char *t[] = {"t", "u"};
    put_ok(b, r, &m1, t, 2);
    put_ok(b, r, &m2, NULL, 0);
    /* only while it points at the digest given */
    assert_int_equal(b->tag_delete(b, r, "t", &m2.m.digest), BERTH_EBUSY);
    assert_tag(b, r, "t", &m1.m.digest);
    assert_int_equal(b->tag_delete(b, r, "t", &m1.m.digest), 0);
    assert_tag(b, r, "t", NULL);
    assert_manifest(b, r, &m1);
    assert_int_equal(b->tag_delete(b, r, "t", &m1.m.digest), BERTH_ENOTFOUND);
    assert_int_equal(b->tag_delete(b, r, "u", NULL), 0);
    assert_tag(b, r, "u", NULL);
    assert_int_equal(b->tag_delete(b, r, "u", NULL), BERTH_ENOTFOUND);
    assert_manifest(b, r, &m1);
}

static void test_meta__tags_paging(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], blobs_only[256], none[256];
    const char *const *tags = paging_tags;
    const size_t n = 10;
    const char *sorted[10];
    tagrows s;
    bool more;
    int64_t t0 = now();
    repo_name(r, "tags");
    repo_name(blobs_only, "tags-blobs");
    repo_name(none, "tags-none");
    man m1, m2;
    put_paging_tags(b, r, &m1, &m2, sorted);

    /* all at once */
    memset(&s, 0, sizeof(s));
    more = true;
    assert_int_equal(b->tags(b, r, NULL, 0, tags_cb, &s, &more), 0);
    assert_false(more);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s.v[i].tag, sorted[i]);
        size_t k = 0;
        while (strcmp(tags[k], sorted[i]) != 0) {
            k++;
        }
        assert_string_equal(s.v[i].digest.str, k < 5 ? m1.m.digest.str : m2.m.digest.str);
        assert_true(s.v[i].pushed >= t0 - 600 && s.v[i].pushed <= now() + 600);
    }

    /* in pages of 3 */
    const char *last = NULL;
    char lastbuf[129];
    size_t seen = 0;
    for (;;) {
        memset(&s, 0, sizeof(s));
        more = !(seen + 3 < n); /* the opposite of what it must become */
        assert_int_equal(b->tags(b, r, last, 3, tags_cb, &s, &more), 0);
        for (size_t i = 0; i < s.n; i++) {
            assert_string_equal(s.v[i].tag, sorted[seen + i]);
        }
        seen += s.n;
        if (seen < n) {
            assert_int_equal(s.n, 3);
            assert_true(more);
        } else {
            assert_false(more);
            break;
        }
        snprintf(lastbuf, sizeof(lastbuf), "%s", s.v[s.n - 1].tag);
        last = lastbuf;
    }
    assert_int_equal(seen, n);
    /* exactly n names in pages of n: no more */
    memset(&s, 0, sizeof(s));
    more = true;
    assert_int_equal(b->tags(b, r, NULL, n, tags_cb, &s, &more), 0);
    assert_int_equal(s.n, n);
    assert_false(more);
    /* after a name that is not a tag */
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->tags(b, r, "a0", 0, tags_cb, &s, &more), 0);
    assert_string_equal(s.v[0].tag, "a1");
    memset(&s, 0, sizeof(s));
    more = true;
    assert_int_equal(b->tags(b, r, "zzz", 0, tags_cb, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_false(more);

    memset(&s, 0, sizeof(s));
    s.stop_after = 2;
    assert_int_equal(b->tags(b, r, NULL, 0, tags_cb, &s, &more), -77);
    assert_int_equal(s.n, 2);

    /* no repository; a repository without tags */
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->tags(b, none, NULL, 0, tags_cb, &s, &more), BERTH_ENOTFOUND);
    new_blob(b, blobs_only, 1);
    more = true;
    assert_int_equal(b->tags(b, blobs_only, NULL, 0, tags_cb, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_false(more);
}

static int cmp_digest(const void *a, const void *b)
{
    return strcmp(((const berth_digest *)a)->str, ((const berth_digest *)b)->str);
}

static void test_meta__referrers(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256], none[256];
    refrows s;
    bool more;
    repo_name(r, "refs/a");
    repo_name(r2, "refs/b");
    repo_name(none, "refs/none");
    man subj, refs[5], other, elsewhere, early;
    man_image(&subj, NULL, NULL);
    put_ok(b, r, &subj, NULL, 0);
    const char *types[5] = {"application/vnd.a", "application/vnd.b", "application/vnd.a", NULL,
                            "application/vnd.a"};
    berth_digest all[5], of_a[3];
    size_t na = 0;
    for (int i = 0; i < 5; i++) {
        man_image(&refs[i], NULL, NULL);
        man_subject(&refs[i], &subj.m.digest, types[i]);
        put_ok(b, r, &refs[i], NULL, 0);
        all[i] = refs[i].m.digest;
        if (types[i] && strcmp(types[i], "application/vnd.a") == 0) {
            of_a[na++] = refs[i].m.digest;
        }
    }
    qsort(all, 5, sizeof(all[0]), cmp_digest);
    qsort(of_a, na, sizeof(of_a[0]), cmp_digest);
    man_image(&other, NULL, NULL);
    man_subject(&other, &refs[0].m.digest, "application/vnd.a"); /* another subject */
    put_ok(b, r, &other, NULL, 0);
    man_image(&elsewhere, NULL, NULL);
    man_subject(&elsewhere, &subj.m.digest, "application/vnd.a"); /* another repository */
    put_ok(b, r2, &elsewhere, NULL, 0);

    memset(&s, 0, sizeof(s));
    more = true;
    assert_int_equal(b->referrers(b, r, &subj.m.digest, NULL, NULL, 0, refs_cb, &s, &more), 0);
    assert_false(more);
    assert_int_equal(s.n, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(s.v[i].digest.str, all[i].str);
        int k = 0;
        while (!berth_digest_equal(&refs[k].m.digest, &all[i])) {
            k++;
        }
        assert_string_equal(s.v[i].media_type, MT_IMAGE);
        assert_int_equal(s.v[i].size, refs[k].m.size);
        assert_true(s.v[i].has_artifact_type == (types[k] != NULL));
        if (types[k]) {
            assert_string_equal(s.v[i].artifact_type, types[k]);
        }
    }

    /* pages of 2 */
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &subj.m.digest, NULL, NULL, 2, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 2);
    assert_true(more);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &subj.m.digest, NULL, all[1].str, 2, refs_cb, &s, &more),
                     0);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.v[0].digest.str, all[2].str);
    assert_string_equal(s.v[1].digest.str, all[3].str);
    assert_true(more);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &subj.m.digest, NULL, all[3].str, 2, refs_cb, &s, &more),
                     0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].digest.str, all[4].str);
    assert_false(more);

    /* filtered by artifact type, and paged */
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        b->referrers(b, r, &subj.m.digest, "application/vnd.a", NULL, 0, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, na);
    for (size_t i = 0; i < na; i++) {
        assert_string_equal(s.v[i].digest.str, of_a[i].str);
    }
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        b->referrers(b, r, &subj.m.digest, "application/vnd.a", NULL, 2, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 2);
    assert_true(more);
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        b->referrers(b, r, &subj.m.digest, "application/vnd.a", of_a[1].str, 2, refs_cb, &s, &more),
        0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].digest.str, of_a[2].str);
    assert_false(more);
    memset(&s, 0, sizeof(s));
    assert_int_equal(
        b->referrers(b, r, &subj.m.digest, "application/vnd.none", NULL, 0, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_false(more);

    /* an unknown subject has none; no repository is ENOTFOUND */
    berth_digest unknown = new_digest();
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &unknown, NULL, NULL, 0, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_int_equal(b->referrers(b, none, &subj.m.digest, NULL, NULL, 0, refs_cb, &s, &more),
                     BERTH_ENOTFOUND);

    /* a referrer pushed before its subject */
    berth_digest later = new_digest();
    man_image(&early, NULL, NULL);
    man_subject(&early, &later, NULL);
    put_ok(b, r, &early, NULL, 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &later, NULL, NULL, 0, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0].digest.str, early.m.digest.str);
    assert_false(s.v[0].has_artifact_type);

    /* a deleted referrer is gone */
    assert_int_equal(b->manifest_delete(b, r, &all[0], 0), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->referrers(b, r, &subj.m.digest, NULL, NULL, 0, refs_cb, &s, &more), 0);
    assert_int_equal(s.n, 4);
    assert_string_equal(s.v[0].digest.str, all[1].str);
}

typedef struct manrow {
    berth_digest digest;
    char media_type[128];
    char artifact_type[128];
    bool has_artifact_type, has_subject, data_null;
    berth_digest subject;
    uint64_t size;
    berth_digest blobs[4];
    size_t nblobs;
    berth_digest children[4];
    size_t nchildren;
    int64_t pushed;
    unsigned ntags;
} manrow;

typedef struct manrows {
    manrow v[MAXN];
    size_t n;
    int stop_after;
} manrows;

static int mans_cb(const berth_meta_manifest *m, void *payload)
{
    manrows *s = payload;
    assert_true(s->n < MAXN);
    manrow *row = &s->v[s->n++];
    row->digest = m->digest;
    snprintf(row->media_type, sizeof(row->media_type), "%s", m->media_type);
    row->has_artifact_type = m->artifact_type != NULL;
    snprintf(row->artifact_type, sizeof(row->artifact_type), "%s",
             m->artifact_type ? m->artifact_type : "");
    row->has_subject = m->has_subject;
    row->subject = m->subject;
    row->size = m->size;
    row->data_null = m->data == NULL;
    assert_true(m->nblobs <= 4 && m->nchildren <= 4);
    for (size_t i = 0; i < m->nblobs; i++) {
        row->blobs[i] = m->blobs[i];
    }
    row->nblobs = m->nblobs;
    for (size_t i = 0; i < m->nchildren; i++) {
        row->children[i] = m->children[i];
    }
    row->nchildren = m->nchildren;
    row->pushed = m->pushed;
    row->ntags = m->ntags;
    return s->stop_after && (int)s->n == s->stop_after ? -77 : 0;
}

/* The same digests, in any order. */
static bool same_set(const berth_digest *a, size_t na, const berth_digest *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        bool found = false;
        for (size_t k = 0; k < nb; k++) {
            found = found || berth_digest_equal(&a[i], &b[k]);
        }
        if (!found) {
            return false;
        }
    }
    return true;
}

static void test_meta__manifests_listing(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], none[256], blobs_only[256];
    manrows s;
    int64_t t0 = now();
    repo_name(r, "mlist");
    repo_name(none, "mlist-none");
    repo_name(blobs_only, "mlist-blobs");
    berth_digest c = new_blob(b, r, 10), l = new_blob(b, r, 20);
    man img, idx, sig;
    man_image(&img, &c, &l);
    put_ok(b, r, &img, NULL, 0);
    man_index(&idx, &img.m.digest, NULL);
    const char *t[] = {"one", "two"};
    put_ok(b, r, &idx, t, 2);
    man_image(&sig, &c, NULL);
    man_subject(&sig, &img.m.digest, "application/vnd.sig");
    const char *t1[] = {"sig"};
    put_ok(b, r, &sig, t1, 1);

    memset(&s, 0, sizeof(s));
    assert_int_equal(b->manifests(b, r, mans_cb, &s), 0);
    assert_int_equal(s.n, 3);
    man *want[3] = {&img, &idx, &sig};
    unsigned ntags[3] = {0, 2, 1};
    for (int k = 0; k < 3; k++) {
        manrow *row = NULL;
        for (size_t i = 0; i < s.n; i++) {
            if (berth_digest_equal(&s.v[i].digest, &want[k]->m.digest)) {
                assert_null(row);
                row = &s.v[i];
            }
        }
        assert_non_null(row);
        assert_string_equal(row->media_type, want[k]->m.media_type);
        assert_int_equal(row->size, want[k]->m.size);
        assert_true(row->data_null);
        assert_true(row->has_artifact_type == (want[k]->m.artifact_type != NULL));
        if (row->has_artifact_type) {
            assert_string_equal(row->artifact_type, want[k]->m.artifact_type);
        }
        assert_true(row->has_subject == want[k]->m.has_subject);
        if (row->has_subject) {
            assert_string_equal(row->subject.str, want[k]->m.subject.str);
        }
        assert_true(same_set(row->blobs, row->nblobs, want[k]->blobs, want[k]->m.nblobs));
        assert_true(
            same_set(row->children, row->nchildren, want[k]->children, want[k]->m.nchildren));
        assert_true(row->pushed >= t0 - 600 && row->pushed <= now() + 600);
        assert_int_equal(row->ntags, ntags[k]);
    }

    /* ntags follows the tags */
    assert_int_equal(b->tag_delete(b, r, "one", NULL), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->manifests(b, r, mans_cb, &s), 0);
    for (size_t i = 0; i < s.n; i++) {
        if (berth_digest_equal(&s.v[i].digest, &idx.m.digest)) {
            assert_int_equal(s.v[i].ntags, 1);
        }
    }

    /* a deleted one is gone from the list */
    assert_int_equal(b->manifest_delete(b, r, &sig.m.digest, 0), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->manifests(b, r, mans_cb, &s), 0);
    assert_int_equal(s.n, 2);
    for (size_t i = 0; i < s.n; i++) {
        assert_false(berth_digest_equal(&s.v[i].digest, &sig.m.digest));
    }

    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    assert_int_equal(b->manifests(b, r, mans_cb, &s), -77);
    assert_int_equal(s.n, 1);
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->manifests(b, none, mans_cb, &s), BERTH_ENOTFOUND);
    new_blob(b, blobs_only, 3);
    assert_int_equal(b->manifests(b, blobs_only, mans_cb, &s), 0);
    assert_int_equal(s.n, 0);
}

/* ---- upload sessions -------------------------------------------------------------------- */

static void upload_init(berth_meta_upload *u, char *repo, char *owner)
{
    memset(u, 0, sizeof(*u));
    upload_id(u->id);
    u->repo = repo;
    u->owner = owner;
    u->hash_state = "";
    u->created = u->updated = now() - 5;
}

typedef struct acquire_ctx {
    berth_meta_backend *b;
    const char *repo, *id;
    int rc;
} acquire_ctx;

static void *acquire_main(void *arg)
{
    acquire_ctx *a = arg;
    berth_meta_upload out;
    memset(&out, 0, sizeof(out));
    a->rc = a->b->upload_acquire(a->b, a->repo, a->id, &out);
    if (a->rc == 0) {
        berth_meta_upload_dispose(&out);
        a->b->upload_release(a->b, a->id);
    }
    return NULL;
}

static void test_meta__uploads(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256], owner[64];
    berth_meta_upload u, out, u2;
    berth_meta_upload_limits none = {0, 0, 0};
    repo_name(r, "up/a");
    repo_name(r2, "up/b");
    snprintf(owner, sizeof(owner), "alice-%s", g.prefix);
    upload_init(&u, r, owner);
    assert_int_equal(b->upload_create(b, &u, &none), 0);
    /* the id is taken, in any repository */
    upload_init(&u2, r2, owner);
    memcpy(u2.id, u.id, sizeof(u.id));
    assert_int_equal(b->upload_create(b, &u2, &none), BERTH_EEXISTS);
    assert_int_equal(b->upload_get(b, r2, u.id, &out), BERTH_ENOTFOUND);

    memset(&out, 0, sizeof(out));
    assert_int_equal(b->upload_get(b, r, u.id, &out), 0);
    assert_string_equal(out.id, u.id);
    assert_string_equal(out.repo, r);
    assert_string_equal(out.owner, owner);
    assert_int_equal(out.size, 0);
    assert_null(out.backend_state);
    assert_int_equal(out.created, u.created);
    berth_meta_upload_dispose(&out);
    char unknown[65];
    upload_id(unknown);
    assert_int_equal(b->upload_get(b, r, unknown, &out), BERTH_ENOTFOUND);
    assert_int_equal(b->upload_acquire(b, r, unknown, &out), BERTH_ENOTFOUND);

    /* one holder at a time */
    memset(&out, 0, sizeof(out));
    assert_int_equal(b->upload_acquire(b, r2, u.id, &out), BERTH_ENOTFOUND);
    assert_int_equal(b->upload_acquire(b, r, u.id, &out), 0);
    assert_string_equal(out.id, u.id);
    assert_string_equal(out.repo, r);
    assert_int_equal(out.size, 0);
    berth_meta_upload_dispose(&out);
    assert_int_equal(b->upload_acquire(b, r, u.id, &out), BERTH_EBUSY);
    acquire_ctx a = {b, r, u.id, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, acquire_main, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, BERTH_EBUSY);
    /* a get does not need the session */
    assert_int_equal(b->upload_get(b, r, u.id, &out), 0);
    berth_meta_upload_dispose(&out);

    /* update persists */
    berth_meta_upload upd = u;
    upd.size = 123456789012ull;
    upd.hash_state = "hash-state-1";
    upd.backend_state = "backend-state-1";
    upd.updated = now();
    assert_int_equal(b->upload_update(b, &upd), 0);
    b->upload_release(b, u.id);
    memset(&out, 0, sizeof(out));
    assert_int_equal(b->upload_get(b, r, u.id, &out), 0);
    assert_int_equal(out.size, 123456789012ull);
    assert_string_equal(out.hash_state, "hash-state-1");
    assert_string_equal(out.backend_state, "backend-state-1");
    assert_int_equal(out.updated, upd.updated);
    assert_int_equal(out.created, u.created);
    assert_string_equal(out.repo, r);
    assert_string_equal(out.owner, owner);
    berth_meta_upload_dispose(&out);

    /* released: another thread takes it */
    a.rc = 1;
    assert_int_equal(pthread_create(&t, NULL, acquire_main, &a), 0);
    pthread_join(t, NULL);
    assert_int_equal(a.rc, 0);

    /* taken again, updated again, and deleted by its holder */
    memset(&out, 0, sizeof(out));
    assert_int_equal(b->upload_acquire(b, r, u.id, &out), 0);
    assert_string_equal(out.backend_state, "backend-state-1");
    assert_int_equal(out.size, 123456789012ull);
    berth_meta_upload_dispose(&out);
    upd.size = 7;
    upd.hash_state = "hash-state-2";
    upd.backend_state = "backend-state-2";
    assert_int_equal(b->upload_update(b, &upd), 0);
    assert_int_equal(b->upload_get(b, r, u.id, &out), 0);
    assert_int_equal(out.size, 7);
    assert_string_equal(out.backend_state, "backend-state-2");
    berth_meta_upload_dispose(&out);
    assert_int_equal(b->upload_delete(b, u.id), 0);
    b->upload_release(b, u.id);
    assert_int_equal(b->upload_get(b, r, u.id, &out), BERTH_ENOTFOUND);
    assert_int_equal(b->upload_acquire(b, r, u.id, &out), BERTH_ENOTFOUND);
    assert_int_equal(b->upload_delete(b, u.id), BERTH_ENOTFOUND);
}

typedef struct upl_seen {
    char ids[8][65];
    int hits[8];
    size_t nids;
    char repo[8][256];
    uint64_t size[8];
    int calls;
    int stop_after;
} upl_seen;

static int uploads_cb(const berth_meta_upload *u, void *payload)
{
    upl_seen *s = payload;
    s->calls++;
    for (size_t i = 0; i < s->nids; i++) {
        if (strcmp(u->id, s->ids[i]) == 0) {
            s->hits[i]++;
            snprintf(s->repo[i], sizeof(s->repo[i]), "%s", u->repo ? u->repo : "");
            s->size[i] = u->size;
        }
    }
    return s->stop_after && s->calls == s->stop_after ? -77 : 0;
}

static size_t count_uploads(berth_meta_backend *b)
{
    upl_seen s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(b->uploads(b, uploads_cb, &s), 0);
    return (size_t)s.calls;
}

static void test_meta__upload_limits(void **state)
{
    berth_meta_backend *b = *state;
    char ra[256], rb[256], o1[64], o2[64];
    berth_meta_upload u, out;
    char made[16][65];
    size_t nmade = 0;
    repo_name(ra, "lim/a");
    repo_name(rb, "lim/b");
    snprintf(o1, sizeof(o1), "o1-%s", g.prefix);
    snprintf(o2, sizeof(o2), "o2-%s", g.prefix);

    /* per repository */
    berth_meta_upload_limits per_repo = {0, 2, 0};
    for (int i = 0; i < 2; i++) {
        upload_init(&u, ra, o1);
        assert_int_equal(b->upload_create(b, &u, &per_repo), 0);
        memcpy(made[nmade++], u.id, 65);
    }
    upload_init(&u, ra, o2);
    assert_int_equal(b->upload_create(b, &u, &per_repo), BERTH_EBUSY);
    assert_int_equal(b->upload_get(b, ra, u.id, &out), BERTH_ENOTFOUND);
    upload_init(&u, rb, o2);
    assert_int_equal(b->upload_create(b, &u, &per_repo), 0);
    memcpy(made[nmade++], u.id, 65);

    /* per owner: o1 has 2 */
    berth_meta_upload_limits per_owner = {0, 0, 2};
    upload_init(&u, rb, o1);
    assert_int_equal(b->upload_create(b, &u, &per_owner), BERTH_EBUSY);
    assert_int_equal(b->upload_get(b, rb, u.id, &out), BERTH_ENOTFOUND);
    upload_init(&u, rb, o2);
    assert_int_equal(b->upload_create(b, &u, &per_owner), 0);
    memcpy(made[nmade++], u.id, 65);
    /* a deleted session counts no more */
    assert_int_equal(b->upload_delete(b, made[0]), 0);
    upload_init(&u, rb, o1);
    assert_int_equal(b->upload_create(b, &u, &per_owner), 0);
    memcpy(made[0], u.id, 65);

    /* in all: relative to what is there */
    size_t there = count_uploads(b);
    berth_meta_upload_limits total = {there + 1, 0, 0};
    upload_init(&u, ra, o2);
    assert_int_equal(b->upload_create(b, &u, &total), 0);
    memcpy(made[nmade++], u.id, 65);
    upload_init(&u, rb, o2);
    assert_int_equal(b->upload_create(b, &u, &total), BERTH_EBUSY);
    assert_int_equal(b->upload_get(b, rb, u.id, &out), BERTH_ENOTFOUND);
    /* without limits */
    berth_meta_upload_limits none = {0, 0, 0};
    assert_int_equal(b->upload_create(b, &u, &none), 0);
    memcpy(made[nmade++], u.id, 65);

    for (size_t i = 0; i < nmade; i++) {
        assert_int_equal(b->upload_delete(b, made[i]), 0);
    }
}

static void test_meta__uploads_listing(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256];
    berth_meta_upload u[3], out;
    berth_meta_upload_limits none = {0, 0, 0};
    upl_seen s;
    repo_name(r, "ulist/a");
    repo_name(r2, "ulist/b");
    memset(&s, 0, sizeof(s));
    for (int i = 0; i < 3; i++) {
        upload_init(&u[i], i == 2 ? r2 : r, "");
        assert_int_equal(b->upload_create(b, &u[i], &none), 0);
        memcpy(s.ids[i], u[i].id, 65);
    }
    s.nids = 3;
    assert_int_equal(b->upload_acquire(b, r, u[1].id, &out), 0);
    berth_meta_upload_dispose(&out);
    berth_meta_upload upd = u[1];
    upd.size = 42;
    upd.backend_state = "x";
    assert_int_equal(b->upload_update(b, &upd), 0);
    b->upload_release(b, u[1].id);
    assert_int_equal(b->upload_delete(b, u[0].id), 0);

    assert_int_equal(b->uploads(b, uploads_cb, &s), 0);
    assert_int_equal(s.hits[0], 0);
    assert_int_equal(s.hits[1], 1);
    assert_int_equal(s.hits[2], 1);
    assert_string_equal(s.repo[1], r);
    assert_string_equal(s.repo[2], r2);
    assert_int_equal(s.size[1], 42);
    assert_int_equal(s.size[2], 0);

    memset(&s, 0, sizeof(s));
    s.stop_after = 1;
    assert_int_equal(b->uploads(b, uploads_cb, &s), -77);
    assert_int_equal(s.calls, 1);
    assert_int_equal(b->upload_delete(b, u[1].id), 0);
    assert_int_equal(b->upload_delete(b, u[2].id), 0);
}

/* ---- garbage collection of blobs -------------------------------------------------------- */

static int index_of(const berth_digest *d, const berth_digest *set, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (berth_digest_equal(d, &set[i])) {
            return (int)i;
        }
    }
    return -1;
}

/*
 * Walk every claimable blob (older_than), releasing each with deleted = false; mark those of
 * `set` in `found` (counts), checking digest-string order and the `after` cursor.
 */
static void claim_walk(berth_meta_backend *b, const char *after, int64_t older_than,
                       const berth_digest *set, size_t n, int *found)
{
    char cursor[BERTH_DIGEST_MAXLEN + 1] = "";
    const char *at = after;
    memset(found, 0, n * sizeof(*found));
    for (;;) {
        berth_digest d;
        uint64_t size = 0;
        berth_meta_claim *c = NULL;
        int rc = b->gc_blob_claim(b, at, older_than, &d, &size, &c);
        if (rc == BERTH_ENOTFOUND) {
            break;
        }
        assert_int_equal(rc, 0);
        assert_non_null(c);
        if (at) {
            assert_true(strcmp(d.str, at) > 0);
        }
        int i = index_of(&d, set, n);
        if (i >= 0) {
            found[i]++;
        }
        assert_int_equal(b->gc_blob_release(b, c, false), 0);
        snprintf(cursor, sizeof(cursor), "%s", d.str);
        at = cursor;
    }
}

/* Claim `want` (walking past and releasing others); NULL when it is not claimable. */
static berth_meta_claim *claim_digest(berth_meta_backend *b, int64_t older_than,
                                      const berth_digest *want, uint64_t *size_out)
{
    char cursor[BERTH_DIGEST_MAXLEN + 1] = "";
    const char *at = NULL;
    for (;;) {
        berth_digest d;
        berth_meta_claim *c = NULL;
        int rc = b->gc_blob_claim(b, at, older_than, &d, size_out, &c);
        if (rc == BERTH_ENOTFOUND) {
            return NULL;
        }
        assert_int_equal(rc, 0);
        if (berth_digest_equal(&d, want)) {
            return c;
        }
        assert_int_equal(b->gc_blob_release(b, c, false), 0);
        if (strcmp(d.str, want->str) > 0) {
            return NULL; /* passed it */
        }
        snprintf(cursor, sizeof(cursor), "%s", d.str);
        at = cursor;
    }
}

static void test_meta__gc_claims(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    int found[4];
    uint64_t size = 0;
    repo_name(r, "gc/a");
    berth_digest set[4];
    set[0] = new_blob(b, NULL, 11); /* touched only */
    set[1] = new_blob(b, r, 22);    /* linked */
    set[2] = new_blob(b, r, 33);    /* linked, then unlinked */
    assert_int_equal(b->blob_unlink(b, r, &set[2], 0), 0);
    set[3] = new_blob(b, NULL, 44); /* touched only */
    man m;
    man_image(&m, NULL, NULL);
    put_ok(b, r, &m, NULL, 0); /* a manifest is no blob */

    char r2[256];
    repo_name(r2, "gc/b");
    assert_int_equal(b->blob_link(b, r2, &set[1], 22), 0);
    assert_int_equal(b->blob_unlink(b, r2, &set[1], 0), 0); /* still linked in r */
    /* young: none of them */
    claim_walk(b, NULL, now() - 3600, set, 4, found);
    assert_int_equal(found[0] + found[1] + found[2] + found[3], 0);
    /* old enough: each unlinked one once, in digest order (checked by the walk) */
    claim_walk(b, NULL, now() + 3600, set, 4, found);
    assert_int_equal(found[0], 1);
    assert_int_equal(found[1], 0);
    assert_int_equal(found[2], 1);
    assert_int_equal(found[3], 1);
    berth_digest mset[1] = {m.m.digest};
    int mfound[1];
    claim_walk(b, NULL, now() + 3600, mset, 1, mfound);
    assert_int_equal(mfound[0], 0);

    /* after a cursor: only those above it */
    const berth_digest *lo = strcmp(set[0].str, set[3].str) < 0 ? &set[0] : &set[3];
    const berth_digest *hi = lo == &set[0] ? &set[3] : &set[0];
    claim_walk(b, lo->str, now() + 3600, set, 4, found);
    assert_int_equal(found[lo == &set[0] ? 0 : 3], 0);
    assert_int_equal(found[hi == &set[0] ? 0 : 3], 1);
    assert_int_equal(found[2], strcmp(set[2].str, lo->str) > 0);

    /* a claim held is skipped by the next ones */
    berth_meta_claim *c = claim_digest(b, now() + 3600, &set[0], &size);
    assert_non_null(c);
    assert_int_equal(size, 11);
    claim_walk(b, NULL, now() + 3600, set, 4, found);
    assert_int_equal(found[0], 0);
    assert_int_equal(found[3], 1);
    /* released without deleting: it stays, and is claimable again */
    assert_int_equal(b->gc_blob_release(b, c, false), 0);
    claim_walk(b, NULL, now() + 3600, set, 4, found);
    assert_int_equal(found[0], 1);
    assert_int_equal(b->blob_link(b, r, &set[0], 11), 0);
    claim_walk(b, NULL, now() + 3600, set, 4, found);
    assert_int_equal(found[0], 0); /* linked now */
    assert_int_equal(b->blob_unlink(b, r, &set[0], 0), 0);

    /* released as deleted: forgotten */
    c = claim_digest(b, now() + 3600, &set[3], &size);
    assert_non_null(c);
    assert_int_equal(size, 44);
    assert_int_equal(b->gc_blob_release(b, c, true), 0);
    assert_int_equal(b->blob_link(b, r, &set[3], 44), BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, NULL, &set[3], &size), BERTH_ENOTFOUND);
    claim_walk(b, NULL, now() + 3600, set, 4, found);
    assert_int_equal(found[3], 0);
    /* and known again once touched */
    assert_int_equal(b->blob_touch(b, &set[3], 45), 0);
    assert_int_equal(b->blob_link(b, r, &set[3], 45), 0);
    assert_int_equal(b->blob_stat(b, r, &set[3], &size), 0);
    assert_int_equal(size, 45);

    /* a touch keeps it from garbage collection until older_than passes it */
    assert_null(claim_digest(b, now() - 3600, &set[2], &size));
    sleep(2);
    c = claim_digest(b, now() - 1, &set[2], &size);
    assert_non_null(c);
    assert_int_equal(b->gc_blob_release(b, c, false), 0);
    assert_int_equal(b->blob_touch(b, &set[2], 33), 0);
    assert_null(claim_digest(b, now() - 1, &set[2], &size));
    c = claim_digest(b, now() + 3600, &set[2], &size);
    assert_non_null(c);
    assert_int_equal(b->gc_blob_release(b, c, false), 0);
}

typedef struct waiter {
    berth_meta_backend *b;
    const char *repo; /* NULL: blob_touch, else blob_link */
    berth_digest d;
    uint64_t size;
    atomic_int done;
    int rc;
} waiter;

static void *waiter_main(void *arg)
{
    waiter *w = arg;
    if (w->repo) {
        w->rc = w->b->blob_link(w->b, w->repo, &w->d, w->size);
    } else {
        w->rc = w->b->blob_touch(w->b, &w->d, w->size);
    }
    atomic_store(&w->done, 1);
    return NULL;
}

static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_meta__gc_claim_waits(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    uint64_t size;
    pthread_t t;
    repo_name(r, "gcwait");
    berth_digest x = new_blob(b, NULL, 7);
    berth_digest y = new_blob(b, NULL, 8);

    /* blob_touch waits for the claim; kept, it goes on */
    berth_meta_claim *c = claim_digest(b, now() + 3600, &x, &size);
    assert_non_null(c);
    waiter w1 = {b, NULL, x, 7, 0, 1};
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w1), 0);
    pause_ms(300);
    assert_int_equal(atomic_load(&w1.done), 0);
    assert_int_equal(b->gc_blob_release(b, c, false), 0);
    pthread_join(t, NULL);
    assert_int_equal(w1.rc, 0);
    assert_int_equal(b->blob_link(b, r, &x, 7), 0);

    /* blob_link waits for the claim; deleted, the link fails */
    c = claim_digest(b, now() + 3600, &y, &size);
    assert_non_null(c);
    waiter w2 = {b, r, y, 8, 0, 1};
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w2), 0);
    pause_ms(300);
    assert_int_equal(atomic_load(&w2.done), 0);
    assert_int_equal(b->gc_blob_release(b, c, true), 0);
    pthread_join(t, NULL);
    assert_int_equal(w2.rc, BERTH_ENOTFOUND);
    assert_int_equal(b->blob_stat(b, r, &y, &size), BERTH_ENOTFOUND);

    /* blob_touch of a blob deleted meanwhile records it anew */
    berth_digest z = new_blob(b, NULL, 9);
    c = claim_digest(b, now() + 3600, &z, &size);
    assert_non_null(c);
    waiter w3 = {b, NULL, z, 9, 0, 1};
    assert_int_equal(pthread_create(&t, NULL, waiter_main, &w3), 0);
    pause_ms(300);
    assert_int_equal(atomic_load(&w3.done), 0);
    assert_int_equal(b->gc_blob_release(b, c, true), 0);
    pthread_join(t, NULL);
    assert_int_equal(w3.rc, 0);
    assert_int_equal(b->blob_link(b, r, &z, 9), 0);
}

/* ---- races: each change is atomic with its check ---------------------------------------- */

typedef struct race {
    berth_meta_backend *b;
    const char *repo;
    pthread_barrier_t *start;
    man *m;              /* put */
    berth_digest target; /* unlink / delete / link */
    int rc;
} race;

static void *race_put(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = put(r->b, r->repo, r->m, NULL, 0, NULL);
    return NULL;
}

static void *race_unlink(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = r->b->blob_unlink(r->b, r->repo, &r->target, 0);
    return NULL;
}

static void *race_delete(void *arg)
{
    race *r = arg;
    pthread_barrier_wait(r->start);
    r->rc = r->b->manifest_delete(r->b, r->repo, &r->target, 0);
    return NULL;
}

static void run_pair(void *(*f1)(void *), race *a, void *(*f2)(void *), race *c)
{
    pthread_t t1, t2;
    pthread_barrier_t start;
    assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
    a->start = c->start = &start;
    assert_int_equal(pthread_create(&t1, NULL, f1, a), 0);
    assert_int_equal(pthread_create(&t2, NULL, f2, c), 0);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    pthread_barrier_destroy(&start);
}

/* A manifest put and an unlink of its layer, at once: never both. */
static void test_meta__race_put_and_unlink(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    uint64_t size;
    int puts = 0, unlinks = 0;
    repo_name(r, "race/unlink");
    for (int i = 0; i < 40; i++) {
        berth_digest l = new_blob(b, r, 100);
        man m;
        man_image(&m, NULL, &l);
        race a = {b, r, NULL, &m, {0}, 1}, c = {b, r, NULL, NULL, l, 1};
        run_pair(race_put, &a, race_unlink, &c);
        if (a.rc == 0) {
            /* the manifest is stored: its layer stayed */
            assert_int_equal(c.rc, BERTH_EINUSE);
            assert_int_equal(b->blob_stat(b, r, &l, &size), 0);
            assert_manifest(b, r, &m);
            puts++;
        } else {
            assert_int_equal(a.rc, BERTH_ENOTFOUND);
            assert_int_equal(c.rc, 0);
            assert_no_manifest(b, r, &m.m.digest);
            unlinks++;
        }
    }
    assert_int_equal(puts + unlinks, 40);
}

/* An index put and a delete of its child, at once: never both. */
static void test_meta__race_index_and_child_delete(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    repo_name(r, "race/child");
    for (int i = 0; i < 40; i++) {
        man child, idx;
        man_image(&child, NULL, NULL);
        put_ok(b, r, &child, NULL, 0);
        man_index(&idx, &child.m.digest, NULL);
        race a = {b, r, NULL, &idx, {0}, 1}, c = {b, r, NULL, NULL, child.m.digest, 1};
        run_pair(race_put, &a, race_delete, &c);
        if (a.rc == 0) {
            assert_int_equal(c.rc, BERTH_EINUSE);
            assert_manifest(b, r, &child);
            assert_manifest(b, r, &idx);
        } else {
            assert_int_equal(a.rc, BERTH_ENOTFOUND);
            assert_int_equal(c.rc, 0);
            assert_no_manifest(b, r, &child.m.digest);
            assert_no_manifest(b, r, &idx.m.digest);
        }
    }
}

typedef struct tag_reader {
    berth_meta_backend *b;
    const char *repo;
    atomic_int stop;
    atomic_int reads;
    int torn;
} tag_reader;

static void *tag_reader_main(void *arg)
{
    tag_reader *t = arg;
    while (!atomic_load(&t->stop)) {
        tagrows s;
        memset(&s, 0, sizeof(s));
        bool more;
        if (t->b->tags(t->b, t->repo, NULL, 0, tags_cb, &s, &more) != 0 || s.n != 3) {
            t->torn++;
            continue;
        }
        atomic_fetch_add(&t->reads, 1);
        if (!berth_digest_equal(&s.v[0].digest, &s.v[1].digest) ||
            !berth_digest_equal(&s.v[1].digest, &s.v[2].digest)) {
            t->torn++;
        }
    }
    return NULL;
}

/* The tags of one put are set together: a listing never shows some of them moved. */
static void test_meta__tags_move_together(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    pthread_t t;
    repo_name(r, "race/tags");
    const char *tags[] = {"p", "q", "r"};
    man m[2];
    man_image(&m[0], NULL, NULL);
    man_image(&m[1], NULL, NULL);
    put_ok(b, r, &m[0], tags, 3);
    tag_reader rd = {b, r, 0, 0, 0};
    assert_int_equal(pthread_create(&t, NULL, tag_reader_main, &rd), 0);
    /* at least 200 puts, and on until the reader has listed 50 times meanwhile */
    for (int i = 0; i < 200 || (atomic_load(&rd.reads) < 50 && i < 100000); i++) {
        put_ok(b, r, &m[(i + 1) % 2], tags, 3);
    }
    atomic_store(&rd.stop, 1);
    pthread_join(t, NULL);
    assert_int_equal(rd.torn, 0);
    assert_true(atomic_load(&rd.reads) >= 50);
}

typedef struct gc_racer {
    berth_meta_backend *b;
    const char *repo;
    pthread_barrier_t *start;
    berth_digest d;
    int rc;
    bool deleted;
} gc_racer;

static void *gc_racer_collect(void *arg)
{
    gc_racer *g2 = arg;
    uint64_t size;
    pthread_barrier_wait(g2->start);
    berth_meta_claim *c = claim_digest(g2->b, now() + 3600, &g2->d, &size);
    if (c) {
        g2->deleted = true;
        g2->rc = g2->b->gc_blob_release(g2->b, c, true);
    }
    return NULL;
}

static void *gc_racer_link(void *arg)
{
    gc_racer *g2 = arg;
    pthread_barrier_wait(g2->start);
    g2->rc = g2->b->blob_link(g2->b, g2->repo, &g2->d, 5);
    return NULL;
}

/* Garbage collection and a mount of the same blob, at once: never a link to a deleted blob. */
static void test_meta__race_gc_and_link(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    uint64_t size;
    repo_name(r, "race/gc");
    for (int i = 0; i < 20; i++) {
        berth_digest d = new_blob(b, NULL, 5);
        pthread_barrier_t start;
        pthread_t t1, t2;
        assert_int_equal(pthread_barrier_init(&start, NULL, 2), 0);
        gc_racer a = {b, r, &start, d, 0, false}, c = {b, r, &start, d, 1, false};
        assert_int_equal(pthread_create(&t1, NULL, gc_racer_collect, &a), 0);
        assert_int_equal(pthread_create(&t2, NULL, gc_racer_link, &c), 0);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_barrier_destroy(&start);
        if (a.deleted) {
            assert_int_equal(a.rc, 0);
            assert_int_equal(c.rc, BERTH_ENOTFOUND);
            assert_int_equal(b->blob_stat(b, NULL, &d, &size), BERTH_ENOTFOUND);
        } else {
            assert_int_equal(c.rc, 0);
            assert_int_equal(b->blob_stat(b, r, &d, &size), 0);
        }
    }
}

/* ---- the optional fast paths (tag_manifest_get, tag_names) -------------------------------- */

/*
 * What the store asks for a manifest GET by tag: the backend's tag_manifest_get when it has
 * one, else tag_get then manifest_get (the store's fallback). Either way the answer must be
 * the same.
 */
static int lookup(berth_meta_backend *b, const char *repo, const char *tag, berth_digest *d,
                  berth_meta_blob_doc *doc)
{
    memset(doc, 0, sizeof(*doc));
    if (b->tag_manifest_get) {
        return b->tag_manifest_get(b, repo, tag, d, doc);
    }
    int rc = b->tag_get(b, repo, tag, d);
    return rc < 0 ? rc : b->manifest_get(b, repo, d, doc);
}

/* lookup() gives `want` (NULL: not found), and so does tag_get (nothing moves meanwhile). */
static void assert_lookup(berth_meta_backend *b, const char *repo, const char *tag, const man *want)
{
    berth_digest d;
    berth_meta_blob_doc doc;
    assert_tag(b, repo, tag, want ? &want->m.digest : NULL);
    if (!want) {
        assert_int_equal(lookup(b, repo, tag, &d, &doc), BERTH_ENOTFOUND);
        assert_null(doc.data);
        return;
    }
    assert_int_equal(lookup(b, repo, tag, &d, &doc), 0);
    assert_string_equal(d.str, want->m.digest.str);
    assert_int_equal(doc.len, want->m.size);
    assert_memory_equal(doc.data, want->data, doc.len);
    assert_int_equal(doc.data[doc.len], '\0');
    assert_string_equal(doc.media_type, want->m.media_type);
    free(doc.data);
    free(doc.media_type);
}

static void test_meta__tag_manifest_get(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], r2[256], none[256];
    repo_name(r, "tmg/a");
    repo_name(r2, "tmg/b");
    repo_name(none, "tmg/none");
    man m1, m2, idx;
    man_image(&m1, NULL, NULL);
    man_image(&m2, NULL, NULL);
    const char *a[] = {"a"}, *ab[] = {"a", "b"};
    put_ok(b, r, &m1, ab, 2);
    put_ok(b, r2, &m2, a, 1);
    assert_lookup(b, r, "a", &m1);
    assert_lookup(b, r, "b", &m1);
    assert_lookup(b, r2, "a", &m2); /* the same tag name in another repository */
    assert_lookup(b, r, "c", NULL);
    assert_lookup(b, r, "A", NULL);
    assert_lookup(b, none, "a", NULL);
    /* an index by tag: its own media type and bytes */
    put_ok(b, r, &m2, NULL, 0);
    man_index(&idx, &m1.m.digest, &m2.m.digest);
    const char *i[] = {"i"};
    put_ok(b, r, &idx, i, 1);
    assert_lookup(b, r, "i", &idx);
    /* moved, deleted, its manifest deleted: seen at the next call */
    put_ok(b, r, &m2, a, 1);
    assert_lookup(b, r, "a", &m2);
    assert_lookup(b, r, "b", &m1);
    assert_int_equal(b->tag_delete(b, r, "b", NULL), 0);
    assert_lookup(b, r, "b", NULL);
    assert_int_equal(b->manifest_delete(b, r, &idx.m.digest, 0), 0);
    assert_lookup(b, r, "i", NULL);
    assert_lookup(b, r, "a", &m2);
}

/* What the store lists for a tags list: tag_names when the backend has it, else tags(). */
static int tag_to_names(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    (void)digest;
    (void)pushed;
    return names_cb(tag, payload);
}

static int list_names(berth_meta_backend *b, const char *repo, const char *last, size_t n, names *s,
                      bool *more)
{
    if (b->tag_names) {
        return b->tag_names(b, repo, last, n, names_cb, s, more);
    }
    return b->tags(b, repo, last, n, tag_to_names, s, more);
}

static void test_meta__tag_names(void **state)
{
    berth_meta_backend *b = *state;
    char r[256], blobs_only[256], none[256];
    const size_t n = 10;
    const char *sorted[10];
    names s;
    bool more;
    repo_name(r, "tnames");
    repo_name(blobs_only, "tnames-blobs");
    repo_name(none, "tnames-none");
    man m1, m2;
    put_paging_tags(b, r, &m1, &m2, sorted);

    memset(&s, 0, sizeof(s));
    more = true;
    assert_int_equal(list_names(b, r, NULL, 0, &s, &more), 0);
    assert_false(more);
    assert_int_equal(s.n, n);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(s.v[i], sorted[i]);
    }
    names_clear(&s);
    /* pages of 4, each after the last name of the one before */
    size_t seen = 0;
    char last[129] = "";
    for (;;) {
        more = seen + 4 >= n;
        assert_int_equal(list_names(b, r, seen ? last : NULL, 4, &s, &more), 0);
        for (size_t i = 0; i < s.n; i++) {
            assert_string_equal(s.v[i], sorted[seen + i]);
        }
        seen += s.n;
        assert_int_equal(more, seen < n);
        if (!more) {
            names_clear(&s);
            break;
        }
        assert_int_equal(s.n, 4);
        snprintf(last, sizeof(last), "%s", s.v[s.n - 1]);
        names_clear(&s);
    }
    assert_int_equal(seen, n);
    /* after a name that is not a tag; past the end */
    assert_int_equal(list_names(b, r, "a0", 1, &s, &more), 0);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.v[0], "a1");
    assert_true(more);
    names_clear(&s);
    more = true;
    assert_int_equal(list_names(b, r, "zzz", 0, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_false(more);
    /* the callback stops the walk */
    s.stop_after = 3;
    assert_int_equal(list_names(b, r, NULL, 0, &s, &more), -77);
    assert_int_equal(s.n, 3);
    names_clear(&s);
    /* a moved tag is still one name; a deleted one is gone */
    const char *a[] = {"a"};
    put_ok(b, r, &m2, a, 1);
    assert_int_equal(b->tag_delete(b, r, "latest", NULL), 0);
    assert_int_equal(list_names(b, r, NULL, 0, &s, &more), 0);
    assert_int_equal(s.n, n - 1);
    assert_string_equal(s.v[s.n - 1], "ab");
    names_clear(&s);
    /* no repository; a repository without tags */
    assert_int_equal(list_names(b, none, NULL, 0, &s, &more), BERTH_ENOTFOUND);
    new_blob(b, blobs_only, 1);
    more = true;
    assert_int_equal(list_names(b, blobs_only, NULL, 0, &s, &more), 0);
    assert_int_equal(s.n, 0);
    assert_false(more);
}

typedef struct tag_mover {
    berth_meta_backend *b;
    const char *repo;
    man *m;
    atomic_int published; /* the number of puts acknowledged so far */
    atomic_int stop;
    atomic_int lookups; /* the number of lookups the reader has finished */
} tag_mover;

static void *tag_mover_main(void *arg)
{
    tag_mover *t = arg;
    const char *tag[] = {"moving"};
    /* A fast backend could finish every put before the reader is scheduled (seen under ASan
     * on two cores): start once the reader has looked once, and keep moving the tag until it
     * has looked a hundred times. */
    while (atomic_load(&t->lookups) == 0) {
        sched_yield();
    }
    for (int i = 1; i <= 400 || (atomic_load(&t->lookups) < 100 && i < 1000000); i++) {
        put_ok(t->b, t->repo, &t->m[i % 3], tag, 1);
        atomic_store(&t->published, i);
    }
    atomic_store(&t->stop, 1);
    return NULL;
}

/*
 * A tag moved by one thread is seen by any other at once: after a put is acknowledged, every
 * lookup begun later gives that put's manifest or a later one's, never an earlier one (no
 * cache may answer for a tag). Put i moves the tag to m[i % 3]: a lookup begun after put k was
 * acknowledged, during which no other put was acknowledged, may give m[k % 3] or (put k + 1
 * in flight) m[(k + 1) % 3]; m[(k + 2) % 3], put k - 1's, is stale.
 */
static void test_meta__tag_lookup_is_never_stale(void **state)
{
    berth_meta_backend *b = *state;
    char r[256];
    pthread_t t;
    repo_name(r, "stale/tags");
    man m[3];
    for (int i = 0; i < 3; i++) {
        man_image(&m[i], NULL, NULL);
    }
    const char *tag[] = {"moving"};
    put_ok(b, r, &m[0], tag, 1);
    tag_mover mv = {b, r, m, 0, 0, 0};
    assert_int_equal(pthread_create(&t, NULL, tag_mover_main, &mv), 0);
    int lookups = 0, stale = 0;
    while (!atomic_load(&mv.stop)) {
        int k = atomic_load(&mv.published);
        berth_digest d;
        berth_meta_blob_doc doc;
        assert_int_equal(lookup(b, r, "moving", &d, &doc), 0);
        free(doc.data);
        free(doc.media_type);
        if (k > 0 && atomic_load(&mv.published) == k &&
            berth_digest_equal(&d, &m[(k + 2) % 3].m.digest)) {
            stale++;
        }
        lookups++;
        atomic_store(&mv.lookups, lookups);
    }
    pthread_join(t, NULL);
    assert_int_equal(stale, 0);
    assert_true(lookups >= 100);
    assert_lookup(b, r, "moving", &m[atomic_load(&mv.published) % 3]);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int meta_contract_run(const char *label, int (*open_fn)(berth_meta_backend **out, void *payload),
                      void *payload)
{
    const struct CMUnitTest tests[] = {
        T(test_meta__repo_exists),
        T(test_meta__catalog),
        T(test_meta__blob_touch_link_stat),
        T(test_meta__links),
        T(test_meta__blob_unlink),
        T(test_meta__manifest_put_checks_references),
        T(test_meta__manifest_put_tags),
        T(test_meta__lookups_of_absent_things),
        T(test_meta__manifest_delete),
        T(test_meta__manifest_delete_keeps_a_referenced_blob),
        T(test_meta__tag_delete),
        T(test_meta__tags_paging),
        T(test_meta__referrers),
        T(test_meta__manifests_listing),
        T(test_meta__uploads),
        T(test_meta__upload_limits),
        T(test_meta__uploads_listing),
        T(test_meta__gc_claims),
        T(test_meta__gc_claim_waits),
        T(test_meta__race_put_and_unlink),
        T(test_meta__race_index_and_child_delete),
        T(test_meta__tags_move_together),
        T(test_meta__race_gc_and_link),
        T(test_meta__tag_manifest_get),
        T(test_meta__tag_names),
        T(test_meta__tag_lookup_is_never_stale),
    };
    unsigned char rnd[4] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
            memset(rnd, 0, sizeof(rnd));
        }
        close(fd);
    }
    unsigned mix =
        ((unsigned)rnd[0] << 24 | (unsigned)rnd[1] << 16 | (unsigned)rnd[2] << 8 | rnd[3]) ^
        (unsigned)getpid() ^ (unsigned)time(NULL);
    snprintf(g.prefix, sizeof(g.prefix), "ct%08x", mix);
    snprintf(g.hex, sizeof(g.hex), "%08x", mix);
    g.open = open_fn;
    g.payload = payload;
    return cmocka_run_group_tests_name(label, tests, NULL, NULL);
}
