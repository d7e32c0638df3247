/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the s3 backend against a real Ceph RGW (engines: rgw): the S3 client's calls,
 * then the blob backend (small and multipart blobs, sessions continued by another backend
 * from their state, refused checks, presigned URLs, reap), and an unreachable endpoint.
 * Every test works under a fresh random key prefix of the test bucket.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/s3/client.h"
#include "backend/s3/s3.h"
#include "helpers/blob_contract.h"

#include <berth/buf.h>
#include <berth/digest.h>
#include <berth/errors.h>

#include <curl/curl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

static char endpoint[256], bucket[128], region[64];
static char prefix[64];
static bool swift; /* the engine is OpenStack Swift's s3api (tests/engines/swift.sh) */

/* KEY=VALUE lines of $BERTH_ENGINES_DIR/<engine>/env into the environment and the globals; the
   engine is $BERTH_TEST_S3_ENGINE (ctest's swift/test_s3_blob sets "swift"), default rgw. */
static int load_env(void **state)
{
    const char *dir = getenv("BERTH_ENGINES_DIR");
    const char *engine = getenv("BERTH_TEST_S3_ENGINE");
    char path[1024], line[1024];
    FILE *f;
    (void)state;
    if (!engine || !*engine) {
        engine = "rgw";
    }
    swift = strcmp(engine, "swift") == 0;
    if (!dir) {
        print_error("BERTH_ENGINES_DIR is not set (run through ctest: the %s fixture)\n", engine);
        return -1;
    }
    snprintf(path, sizeof(path), "%s/%s/env", dir, engine);
    f = fopen(path, "r");
    if (!f) {
        print_error("no %s: the %s engine did not start\n", path, engine);
        return -1;
    }
    while (fgets(line, sizeof(line), f)) {
        char *eq = strchr(line, '=');
        line[strcspn(line, "\r\n")] = '\0';
        if (!eq) {
            continue;
        }
        *eq = '\0';
        setenv(line, eq + 1, 1);
    }
    fclose(f);
    snprintf(endpoint, sizeof(endpoint), "%s", getenv("BERTH_TEST_S3_ENDPOINT"));
    snprintf(bucket, sizeof(bucket), "%s", getenv("BERTH_TEST_S3_BUCKET"));
    snprintf(region, sizeof(region), "%s", getenv("BERTH_TEST_S3_REGION"));
    return 0;
}

/* Every prefix used, deleted at the end (the test engine's OSD keeps objects in memory). */
static char used[64][64];
static unsigned nused;

static void fresh_prefix(void)
{
    static unsigned n;
    snprintf(prefix, sizeof(prefix), "t%lx-%d-%u/", (unsigned long)time(NULL), (int)getpid(), ++n);
    if (nused < 64) {
        snprintf(used[nused++], sizeof(used[0]), "%s", prefix);
    }
}

static berth__s3 *client(unsigned list_page)
{
    berth__s3 *c = NULL;
    berth__s3_config cfg = {.endpoint = endpoint,
                            .bucket = bucket,
                            .region = region,
                            .path_style = true,
                            .retries = 2,
                            .list_page = list_page};
    assert_int_equal(berth__s3_new(&c, &cfg), 0);
    return c;
}

/* A backend with parts of `part_size` (0: the default) doubling every `growth` parts. */
static berth_blob_backend *backend_parts(bool redirect, size_t part_size, unsigned growth)
{
    berth_blob_backend *b = NULL;
    berth_s3_options o = {.endpoint = endpoint,
                          .bucket = bucket,
                          .region = region,
                          .prefix = prefix,
                          .path_style = true,
                          .redirect = redirect,
                          .part_size = part_size,
                          .part_growth = growth};
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), 0);
    return b;
}

/* The tests below count requests with parts of 16 MiB, as the backend made them at first. */
static berth_blob_backend *backend(bool redirect)
{
    return backend_parts(redirect, 16 * MIB, 0);
}

static unsigned char *bytes(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n ? n : 1);
    uint32_t x = seed * 2654435761u + 1;
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
    return p;
}

static int to_buf(const void *data, size_t len, void *p)
{
    return berth_buf_put(p, data, len);
}

static char *key(const char *name)
{
    static char k[4][256]; /* several at once in one call's arguments */
    static unsigned i;
    char *p = k[i++ % 4];
    snprintf(p, sizeof(k[0]), "%s%s", prefix, name);
    return p;
}

/* ---- the client ---------------------------------------------------------------------------- */

typedef struct listed {
    int n;
    uint64_t total;
} listed;

static int count_object(const char *k, uint64_t size, int64_t mtime, void *p)
{
    listed *l = p;
    (void)k;
    assert_true(mtime > 1700000000);
    l->n++;
    l->total += size;
    return 0;
}

static void test_s3_client__objects(void **state)
{
    berth__s3 *c = client(2);
    berth__s3_stat st;
    berth_buf got = BERTH_BUF_INIT;
    unsigned char *data = bytes(1000, 1);
    (void)state;
    fresh_prefix();

    assert_int_equal(berth__s3_head(c, key("a b+c"), &st), BERTH_ENOTFOUND);
    assert_null(strstr(berth_error_last(), prefix)); /* no key in messages */
    assert_int_equal(berth__s3_put(c, key("a b+c"), data, 1000, false), 0);
    assert_int_equal(berth__s3_head(c, key("a b+c"), &st), 0);
    assert_int_equal(st.size, 1000);
    assert_true(st.mtime > 1700000000 && st.mtime <= time(NULL) + 5);

    /* ranged and whole reads */
    assert_int_equal(berth__s3_get(c, key("a b+c"), 10, 20, to_buf, &got), 0);
    assert_int_equal(got.len, 20);
    assert_memory_equal(got.ptr, data + 10, 20);
    berth_buf_clear(&got);
    assert_int_equal(berth__s3_get(c, key("a b+c"), 990, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, 10);
    assert_memory_equal(got.ptr, data + 990, 10);
    berth_buf_clear(&got);
    assert_int_equal(berth__s3_get(c, key("a b+c"), 0, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, 1000);
    assert_memory_equal(got.ptr, data, 1000);
    assert_int_equal(berth__s3_get(c, key("a b+c"), 5000, 1, to_buf, &got), BERTH_ERANGE);
    assert_int_equal(berth__s3_get(c, key("nothing"), 0, UINT64_MAX, to_buf, &got),
                     BERTH_ENOTFOUND);

    /* atomic create */
    assert_int_equal(berth__s3_put(c, key("a b+c"), "x", 1, true), BERTH_EEXISTS);
    assert_int_equal(berth__s3_put(c, key("new"), "x", 1, true), 0);

    /* copy, and list with paging (2 keys a page) */
    assert_int_equal(berth__s3_copy(c, key("copy"), key("a b+c")), 0);
    assert_int_equal(berth__s3_copy(c, key("copy2"), key("missing")), BERTH_ENOTFOUND);
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof(name), "p/%d", i);
        assert_int_equal(berth__s3_put(c, key(name), data, 100, false), 0);
    }
    listed l = {0};
    assert_int_equal(berth__s3_list(c, prefix, count_object, &l), 0);
    assert_int_equal(l.n, 6);
    assert_int_equal(l.total, 1000 + 1 + 1000 + 300);

    /* delete (a missing key is fine) */
    assert_int_equal(berth__s3_delete(c, key("copy")), 0);
    assert_int_equal(berth__s3_delete(c, key("copy")), 0);
    assert_int_equal(berth__s3_head(c, key("copy"), &st), BERTH_ENOTFOUND);

    berth_buf_dispose(&got);
    free(data);
    berth__s3_free(c);
}

typedef struct uploads {
    int n;
    char id[256];
} uploads;

static int count_upload(const char *k, const char *id, int64_t initiated, void *p)
{
    uploads *u = p;
    (void)k;
    assert_true(initiated > 1700000000);
    snprintf(u->id, sizeof(u->id), "%s", id);
    u->n++;
    return 0;
}

static void test_s3_client__multipart(void **state)
{
    berth__s3 *c = client(1);
    size_t n = 11 * MIB + 123;
    unsigned char *data = bytes(n, 2);
    char *id = NULL, *id2 = NULL, *e[3] = {0}, *ec = NULL;
    berth_buf got = BERTH_BUF_INIT;
    (void)state;
    fresh_prefix();

    assert_int_equal(berth__s3_mpu_create(c, key("mp"), &id), 0);
    assert_int_equal(berth__s3_mpu_create(c, key("mp2"), &id2), 0);
    uploads u = {0};
    assert_int_equal(berth__s3_mpu_list(c, prefix, count_upload, &u), 0); /* 1 a page */
    assert_int_equal(u.n, 2);
    assert_int_equal(berth__s3_mpu_exists(c, key("mp"), id), 0);

    assert_int_equal(berth__s3_mpu_part(c, key("mp"), id, 1, data, 5 * MIB, &e[0]), 0);
    assert_int_equal(berth__s3_mpu_part(c, key("mp"), id, 2, data + 5 * MIB, 5 * MIB, &e[1]), 0);
    assert_int_equal(berth__s3_mpu_part(c, key("mp"), id, 3, data + 10 * MIB, n - 10 * MIB, &e[2]),
                     0);
    berth__s3_part ps[3] = {{1, e[0]}, {2, e[1]}, {3, e[2]}};
    /* a wrong ETag is refused */
    berth__s3_part bad[2] = {{1, e[0]}, {2, "\"0123\""}};
    assert_int_equal(berth__s3_mpu_complete(c, key("mp"), id, bad, 2), BERTH_EINVALID);
    assert_int_equal(berth__s3_mpu_complete(c, key("mp"), id, ps, 3), 0);
    /* Swift's s3api still answers for a completed upload while the object it completed carries
     * its id (so that a retried complete succeeds); s3.c never needs "gone" there */
    assert_int_equal(berth__s3_mpu_exists(c, key("mp"), id), swift ? 0 : BERTH_ENOTFOUND);
    assert_int_equal(berth__s3_get(c, key("mp"), 0, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, n);
    assert_memory_equal(got.ptr, data, n);

    /* ranged UploadPartCopy: the part's ETag is the copied bytes' */
    assert_int_equal(
        berth__s3_mpu_part_copy(c, key("mp2"), id2, 1, key("mp"), 5 * MIB, 5 * MIB, &ec), 0);
    assert_string_equal(ec, e[1]);
    assert_int_equal(berth__s3_mpu_abort(c, key("mp2"), id2), 0);
    assert_int_equal(berth__s3_mpu_abort(c, key("mp2"), id2), BERTH_ENOTFOUND);
    u.n = 0;
    assert_int_equal(berth__s3_mpu_list(c, prefix, count_upload, &u), 0);
    assert_int_equal(u.n, 0);

    for (int i = 0; i < 3; i++) {
        free(e[i]);
    }
    free(ec);
    free(id);
    free(id2);
    berth_buf_dispose(&got);
    free(data);
    berth__s3_free(c);
}

/* A server-side copy answers when it is done: Swift's s3api sends nothing meanwhile (RGW sends
 * whitespace as progress), so a copy must not meet the low-speed limit of 1 s given here.
 * Swift copies about 80 MiB/s on this machine: 256 MiB are seconds of silence. (32 MiB on RGW,
 * whose test OSD keeps the objects in memory.) */
static void test_s3_client__copies_may_be_silent(void **state)
{
    berth__s3 *c = NULL;
    size_t n = (swift ? 256 : 32) * MIB;
    unsigned char *data = bytes(n, 4);
    char *id = NULL, *e = NULL;
    berth__s3_stat st;
    berth__s3_config cfg = {.endpoint = endpoint,
                            .bucket = bucket,
                            .region = region,
                            .path_style = true,
                            .low_speed_time_s = 1};
    (void)state;
    fresh_prefix();
    assert_int_equal(berth__s3_new(&c, &cfg), 0);
    assert_int_equal(berth__s3_put(c, key("big"), data, n, false), 0);
    free(data);
    assert_int_equal(berth__s3_copy(c, key("big-copy"), key("big")), 0);
    assert_int_equal(berth__s3_head(c, key("big-copy"), &st), 0);
    assert_int_equal(st.size, n);
    assert_int_equal(berth__s3_mpu_create(c, key("mp"), &id), 0);
    assert_int_equal(berth__s3_mpu_part_copy(c, key("mp"), id, 1, key("big"), 0, n, &e), 0);
    assert_int_equal(berth__s3_mpu_abort(c, key("mp"), id), 0);
    assert_int_equal(berth__s3_delete(c, key("big")), 0);
    assert_int_equal(berth__s3_delete(c, key("big-copy")), 0);
    free(e);
    free(id);
    berth__s3_free(c);
}

/* ---- the backend ------------------------------------------------------------------------- */

typedef struct sha_check {
    berth_hasher *h;
    berth_digest want;
    int calls;
} sha_check;

static int check_update(const void *data, size_t len, void *p)
{
    sha_check *s = p;
    s->calls++;
    return berth_hasher_update(s->h, data, len);
}

static int check_final(void *p)
{
    sha_check *s = p;
    berth_digest got;
    assert_int_equal(berth_hasher_peek(&got, s->h), 0);
    return berth_digest_equal(&got, &s->want) ? 0 : BERTH_EMISMATCH;
}

static void check_init(sha_check *s, berth_blob_check *c, const void *data, size_t len)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(berth_hasher_new(&s->h, BERTH_DIGEST_SHA256), 0);
    assert_int_equal(berth_digest_buffer(&s->want, BERTH_DIGEST_SHA256, data, len), 0);
    *c = (berth_blob_check){check_update, check_final, s};
}

static void read_all(berth_blob_backend *b, const berth_digest *d, const void *want, size_t n)
{
    berth_buf got = BERTH_BUF_INIT;
    uint64_t size = 0;
    assert_int_equal(b->stat(b, d, &size), 0);
    assert_int_equal(size, n);
    assert_int_equal(b->read(b, d, 0, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, n);
    if (n) {
        assert_memory_equal(got.ptr, want, n);
    }
    berth_buf_dispose(&got);
}

static void test_s3_blob__small_blobs(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    berth_digest d, e;
    berth_buf got = BERTH_BUF_INIT;
    unsigned char *data = bytes(3000, 3);
    (void)state;
    fresh_prefix();
    b = backend(false);
    assert_string_equal(b->name, "s3");
    assert_int_equal(b->version, BERTH_BLOB_BACKEND_VERSION);

    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, 3000), 0);
    assert_int_equal(b->stat(b, &d, NULL), BERTH_ENOTFOUND);
    assert_int_equal(b->writer_open(&w, b, "0a-1", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 1000), 0);
    assert_int_equal(w->write(w, data + 1000, 2000), 0);
    assert_int_equal(w->size(w), 3000);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, 3000);

    /* ranges */
    assert_int_equal(b->read(b, &d, 2990, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, 10);
    assert_memory_equal(got.ptr, data + 2990, 10);
    berth_buf_clear(&got);
    assert_int_equal(b->read(b, &d, 3000, UINT64_MAX, to_buf, &got), 0);
    assert_int_equal(got.len, 0);
    assert_int_equal(b->read(b, &d, 3001, UINT64_MAX, to_buf, &got), BERTH_ERANGE);

    /* the empty blob */
    assert_int_equal(berth_digest_buffer(&e, BERTH_DIGEST_SHA256, "", 0), 0);
    assert_int_equal(b->writer_open(&w, b, "0a-2", NULL, 0), 0);
    assert_int_equal(w->commit(w, &e, NULL), 0);
    read_all(b, &e, "", 0);

    /* a blob already there is kept */
    assert_int_equal(b->writer_open(&w, b, "0a-3", NULL, 0), 0);
    assert_int_equal(w->write(w, "other", 5), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, 3000);

    /* a refused check publishes nothing */
    sha_check s;
    berth_blob_check ck;
    berth_digest f;
    check_init(&s, &ck, "right", 5);
    assert_int_equal(berth_digest_buffer(&f, BERTH_DIGEST_SHA256, "wrong", 5), 0);
    assert_int_equal(b->writer_open(&w, b, "0a-4", NULL, 0), 0);
    assert_int_equal(w->write(w, "wrong", 5), 0);
    assert_int_equal(w->commit(w, &f, &ck), BERTH_EMISMATCH);
    assert_int_equal(b->stat(b, &f, NULL), BERTH_ENOTFOUND);
    berth_hasher_free(s.h);

    /* remove */
    assert_int_equal(b->remove(b, &e), 0);
    assert_int_equal(b->remove(b, &e), BERTH_ENOTFOUND);
    assert_int_equal(b->stat(b, &e, NULL), BERTH_ENOTFOUND);

    /* url only when configured */
    char *url = NULL;
    assert_int_equal(b->url(b, &d, 60, &url), BERTH_EUNSUPPORTED);
    assert_null(url);

    berth_buf_dispose(&got);
    free(data);
    b->free(b);
}

static size_t body_to_buf(char *p, size_t s, size_t n, void *u)
{
    return berth_buf_put(u, p, s * n) == 0 ? s * n : 0;
}

typedef struct seen {
    int n;
    berth_digest d[4];
} seen;

static int each(const berth_digest *d, uint64_t size, int64_t mtime, void *p)
{
    seen *s = p;
    (void)size;
    assert_true(mtime > 1700000000);
    if (s->n < 4) {
        s->d[s->n] = *d;
    }
    s->n++;
    return 0;
}

/* A 12 MiB blob written in odd pieces across three processes' worth of writers. */
static void test_s3_blob__sessions(void **state)
{
    size_t n = 12 * MIB + 777;
    unsigned char *data = bytes(n, 4);
    berth_blob_backend *b1, *b2;
    berth_blob_writer *w = NULL;
    char *st1 = NULL, *st2 = NULL;
    berth_digest d;
    sha_check s;
    berth_blob_check ck;
    (void)state;
    fresh_prefix();
    b1 = backend(true);
    b2 = backend(true);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, n), 0);

    /* writer 1: 3 MiB + 1, synced (all staged), then 4 MiB more unsynced: dropped */
    assert_int_equal(b1->writer_open(&w, b1, "5e-1", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 3 * MIB + 1), 0);
    assert_int_equal(w->sync(w, &st1), 0);
    assert_true(strlen(st1) < 65536);
    assert_int_equal(w->write(w, "garbage garbage", 15), 0);
    assert_int_equal(w->write(w, data, 4 * MIB), 0);
    assert_int_equal(w->write(w, data, 9 * MIB), 0); /* fills a part: an upload past the state */
    w->close(w);

    /* writer 2, another backend: from the state, to 9 MiB + 5, sync twice (no change between) */
    assert_int_equal(b2->writer_open(&w, b2, "5e-1", st1, 3 * MIB + 2), BERTH_EINVALID);
    assert_int_equal(b2->writer_open(&w, b2, "5e-1", st1, 3 * MIB + 1), 0);
    assert_int_equal(w->size(w), 3 * MIB + 1);
    for (size_t off = 3 * MIB + 1; off < 9 * MIB + 5; off += 1000) {
        size_t k = 9 * MIB + 5 - off < 1000 ? 9 * MIB + 5 - off : 1000;
        assert_int_equal(w->write(w, data + off, k), 0);
    }
    assert_int_equal(w->sync(w, &st2), 0);
    free(st1);
    assert_int_equal(w->sync(w, &st1), 0);
    assert_string_equal(st1, st2);
    free(st2);
    st2 = NULL;
    w->close(w);

    /* writer 3: the rest, then a wrong check: refused, the session is as at its last sync */
    assert_int_equal(b1->writer_open(&w, b1, "5e-1", st1, 9 * MIB + 5), 0);
    assert_int_equal(w->write(w, data + 9 * MIB + 5, n - 9 * MIB - 5), 0);
    check_init(&s, &ck, "not these bytes", 15);
    assert_int_equal(w->commit(w, &d, &ck), BERTH_EMISMATCH);
    assert_true(s.calls > 0);
    berth_hasher_free(s.h);
    assert_int_equal(b1->stat(b1, &d, NULL), BERTH_ENOTFOUND);

    /* writer 4: from the same state, the right check */
    assert_int_equal(b2->writer_open(&w, b2, "5e-1", st1, 9 * MIB + 5), 0);
    assert_int_equal(w->write(w, data + 9 * MIB + 5, n - 9 * MIB - 5), 0);
    check_init(&s, &ck, data, n);
    int crc = w->commit(w, &d, &ck);
    if (crc)
        print_error("commit: %s\n", berth_error_last());
    assert_int_equal(crc, 0);
    berth_hasher_free(s.h);
    read_all(b1, &d, data, n);

    /* the session is gone; its objects too, but for the upload writer 1 started and never
     * recorded in a state: the commit does not list the session, reap() gets that one */
    assert_int_equal(b1->writer_open(&w, b1, "5e-1", st1, 9 * MIB + 5), BERTH_ENOTFOUND);
    berth__s3 *c = client(0);
    listed l = {0};
    char up[128];
    snprintf(up, sizeof(up), "%suploads/", prefix);
    assert_int_equal(berth__s3_list(c, up, count_object, &l), 0);
    assert_int_equal(l.n, 0);
    uploads u = {0};
    assert_int_equal(berth__s3_mpu_list(c, up, count_upload, &u), 0);
    assert_int_equal(u.n, 1);
    uint64_t removed = 0;
    sleep(2); /* Swift lists times rounded up to the next second */
    assert_int_equal(b1->reap(b1, NULL, 0, 0, &removed), 0);
    assert_int_equal(removed, 1);
    u = (uploads){0};
    assert_int_equal(berth__s3_mpu_list(c, up, count_upload, &u), 0);
    assert_int_equal(u.n, 0);

    /* ranged read across the part boundary */
    berth_buf got = BERTH_BUF_INIT;
    assert_int_equal(b2->read(b2, &d, 5 * MIB - 10, 20, to_buf, &got), 0);
    assert_int_equal(got.len, 20);
    assert_memory_equal(got.ptr, data + 5 * MIB - 10, 20);

    /* foreach */
    seen sn = {0};
    assert_int_equal(b2->foreach (b2, each, &sn), 0);
    assert_int_equal(sn.n, 1);
    assert_true(berth_digest_equal(&sn.d[0], &d));

    /* a presigned URL serves the blob to a plain GET */
    char *url = NULL;
    assert_int_equal(b1->url(b1, &d, 60, &url), 0);
    assert_null(strstr(url, getenv("AWS_SECRET_ACCESS_KEY")));
    CURL *h = curl_easy_init();
    berth_buf body = BERTH_BUF_INIT;
    long status = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_RANGE, "0-99");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_to_buf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 206);
    assert_int_equal(body.len, 100);
    assert_memory_equal(body.ptr, data, 100);
    curl_easy_cleanup(h);

    berth_buf_dispose(&body);
    berth_buf_dispose(&got);
    free(url);
    free(st1);
    berth__s3_free(c);
    free(data);
    b1->free(b1);
    b2->free(b2);
}

/* The state stays small however many parts, and a part replaced behind it is found. */
static void test_s3_blob__state_guards_parts(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    unsigned char *data = bytes(10 * MIB + 1, 6);
    char *st = NULL, *etag = NULL, upload[256] = "";
    berth_digest d;
    (void)state;
    fresh_prefix();
    b = backend(false);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, 10 * MIB + 1), 0);
    assert_int_equal(b->writer_open(&w, b, "c4a1", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 10 * MIB + 1), 0);
    assert_int_equal(w->sync(w, &st), 0);
    w->close(w);
    assert_true(strlen(st) < 400);

    /* part 1 (the sync made one part of the 10 MiB + 1) replaced behind the backend's back by
     * other bytes of the same size */
    const char *u = strstr(st, "\"u\":\"");
    assert_non_null(u);
    u += 5;
    memcpy(upload, u, (size_t)(strchr(u, '"') - u));
    berth__s3 *c = client(0);
    unsigned char *other = bytes(10 * MIB + 1, 7);
    assert_int_equal(
        berth__s3_mpu_part(c, key("uploads/c4a1/data"), upload, 1, other, 10 * MIB + 1, &etag), 0);
    free(other);
    assert_int_equal(b->writer_open(&w, b, "c4a1", st, 10 * MIB + 1), 0);
    assert_int_equal(w->commit(w, &d, NULL), BERTH_EIO);
    assert_int_equal(b->stat(b, &d, NULL), BERTH_ENOTFOUND);

    free(etag);
    free(st);
    free(data);
    berth__s3_free(c);
    b->free(b);
}

typedef struct got_parts {
    berth__s3_part p[8];
    uint64_t size[8];
    size_t n;
} got_parts;

static int collect_part(unsigned number, const char *etag, uint64_t size, void *p)
{
    got_parts *g = p;
    if (g->n < 8) {
        g->size[g->n] = size;
        g->p[g->n++] = (berth__s3_part){number, strdup(etag)};
    }
    return 0;
}

static char *upload_id_of(const char *state, char *out, size_t max)
{
    const char *u = strstr(state, "\"u\":\"");
    assert_non_null(u);
    u += 5;
    size_t n = (size_t)(strchr(u, '"') - u);
    assert_true(n < max);
    memcpy(out, u, n);
    out[n] = '\0';
    return out;
}

/*
 * Parts grow: with parts of 5 MiB doubling every 2 parts, 36 MiB written in 32 KiB pieces by
 * two writers (the second opened from the first's state) are parts of 5, 5, 10, 10 MiB and a
 * staged tail, then the commit's last part; the blob reads back whole. The default part size
 * is 8 MiB (a writer holds about two parts: issue 15's per-replica memory), and one outside
 * 5 MiB to 5 GiB is refused.
 */
static void test_s3_blob__parts_grow(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    size_t n = 36 * MIB, half = 12 * MIB, done = 0;
    unsigned char *data = bytes(n, 31);
    char *st = NULL, upload[256];
    berth_digest d;
    got_parts g = {0};
    berth_s3_options bad = {.endpoint = endpoint, .bucket = bucket, .part_size = 5 * MIB - 1};
    (void)state;
    assert_int_equal(berth_s3_blob_backend_new(&b, &bad), BERTH_EINVALID);
    bad.part_size = (size_t)6 << 30;
    assert_int_equal(berth_s3_blob_backend_new(&b, &bad), BERTH_EINVALID);

    fresh_prefix();
    b = backend_parts(false, 5 * MIB, 2);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, n), 0);
    assert_int_equal(b->writer_open(&w, b, "9a0-1", NULL, 0), 0);
    for (; done < half; done += 32768) {
        assert_int_equal(w->write(w, data + done, 32768), 0);
    }
    assert_int_equal(w->sync(w, &st), 0); /* 5 + 5 MiB parts, 2 MiB cut: staged */
    w->close(w);
    char *st2 = NULL;
    assert_int_equal(b->writer_open(&w, b, "9a0-1", st, done), 0);
    for (; done < 34 * MIB; done += 32768) {
        assert_int_equal(w->write(w, data + done, 32768), 0);
    }
    assert_int_equal(w->sync(w, &st2), 0); /* two parts of 10 MiB, 4 MiB staged */
    w->close(w);
    berth__s3 *c = client(0);
    assert_int_equal(berth__s3_mpu_parts(c, key("uploads/9a0-1/data"),
                                         upload_id_of(st2, upload, sizeof(upload)), collect_part,
                                         &g),
                     0);
    assert_int_equal(g.n, 4);
    assert_int_equal(g.size[0], 5 * MIB);
    assert_int_equal(g.size[1], 5 * MIB);
    assert_int_equal(g.size[2], 10 * MIB);
    assert_int_equal(g.size[3], 10 * MIB);
    assert_int_equal(b->writer_open(&w, b, "9a0-1", st2, done), 0);
    assert_int_equal(w->write(w, data + done, n - done), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, n);
    for (size_t i = 0; i < g.n; i++) {
        free((char *)(uintptr_t)g.p[i].etag);
    }
    berth__s3_free(c);
    free(st);
    free(st2);
    free(data);
    b->free(b);
}

/* A commit killed after it completed the upload (before the copy to the blob key): the next
 * writer rebuilds the session from the completed object. */
static void test_s3_blob__commit_killed_after_completing(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    size_t n = 22 * MIB; /* a part of 16 MiB (the buffer filled), one of 6 MiB (cut by sync) */
    unsigned char *data = bytes(n, 9);
    char *st = NULL, upload[256] = "";
    berth_digest d;
    sha_check s;
    berth_blob_check ck;
    (void)state;
    fresh_prefix();
    b = backend(false);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, n), 0);
    assert_int_equal(b->writer_open(&w, b, "dead-c0", NULL, 0), 0);
    assert_int_equal(w->write(w, data, n), 0);
    assert_int_equal(w->sync(w, &st), 0);
    w->close(w);

    /* what the killed commit did: complete the upload at uploads/<id>/data */
    const char *u = strstr(st, "\"u\":\"");
    assert_non_null(u);
    u += 5;
    memcpy(upload, u, (size_t)(strchr(u, '"') - u));
    berth__s3 *c = client(0);
    got_parts g = {0};
    assert_int_equal(berth__s3_mpu_parts(c, key("uploads/dead-c0/data"), upload, collect_part, &g),
                     0);
    assert_int_equal(g.n, 2);
    assert_int_equal(berth__s3_mpu_complete(c, key("uploads/dead-c0/data"), upload, g.p, g.n), 0);

    assert_int_equal(b->writer_open(&w, b, "dead-c0", st, n), 0);
    check_init(&s, &ck, data, n);
    assert_int_equal(w->commit(w, &d, &ck), 0);
    berth_hasher_free(s.h);
    read_all(b, &d, data, n);

    for (size_t i = 0; i < g.n; i++) {
        free((char *)(uintptr_t)g.p[i].etag);
    }
    free(st);
    free(data);
    berth__s3_free(c);
    b->free(b);
}

/* Requests of `op` the backend's client made since `*last`, which is moved on. */
static uint64_t since(berth_blob_backend *b, const char *op, uint64_t *last)
{
    uint64_t now = berth__s3_count(berth__s3_backend_client(b), op), d = now - *last;
    *last = now;
    return d;
}

typedef struct counts {
    uint64_t part, put, get, list, mpu_list, del;
} counts;

static void mark(berth_blob_backend *b, counts *c)
{
    since(b, "UploadPart", &c->part);
    since(b, "PutObject", &c->put);
    since(b, "GetObject", &c->get);
    since(b, "ListObjectsV2", &c->list);
    since(b, "ListMultipartUploads", &c->mpu_list);
    since(b, "DeleteObject", &c->del);
}

/* One writer per request, as the store opens them for PATCHes: a request of 5 MiB or more is
 * one part of it all (16 MiB: one UploadPart, not three and a staged segment); smaller ones
 * are staged, and go in front of the next part; the commit deletes what it knows by name and
 * lists nothing. */
static void test_s3_blob__patch_is_one_part(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    size_t n = 16 * MIB + 16 * MIB + MIB + 6 * MIB;
    unsigned char *data = bytes(n, 21);
    char *st = NULL, up[128];
    uint64_t size = 0;
    counts c = {0};
    berth_digest d;
    listed l = {0};
    uploads u = {0};
    static const size_t patch[] = {16 * MIB, 16 * MIB, MIB, 6 * MIB};
    (void)state;
    fresh_prefix();
    b = backend(false);
    mark(b, &c);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(b->writer_open(&w, b, "0ae-9a47", st, size), 0);
        for (size_t off = 0; off < patch[i]; off += 32768) { /* as MHD hands the body on */
            assert_int_equal(w->write(w, data + size + off, 32768), 0);
        }
        size += patch[i];
        free(st);
        assert_int_equal(w->sync(w, &st), 0);
        w->close(w);
        /* 16 MiB: one part, streamed as it came; 1 MiB: none (a part streamed from the first
         * byte, since the last one was a full 16 MiB, aborted at the sync); 6 MiB after the
         * 1 MiB staged: a part streamed from 5 MiB and aborted at the sync (the request ended
         * short of 16 MiB), then one part of 7 MiB */
        uint64_t parts = since(b, "UploadPart", &c.part);
        print_message("request %zu: %llu UploadPart\n", i, (unsigned long long)parts);
        assert_int_equal(parts, i == 3 ? 2 : 1);
        assert_int_equal(since(b, "PutObject", &c.put), i == 2 ? 1 : 0); /* 1 MiB: staged */
        assert_int_equal(since(b, "GetObject", &c.get), i == 3 ? 1 : 0); /* read back once */
    }
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, size), 0);
    assert_int_equal(b->writer_open(&w, b, "0ae-9a47", st, size), 0);
    mark(b, &c);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    assert_int_equal(since(b, "ListObjectsV2", &c.list), 0);
    assert_int_equal(since(b, "ListMultipartUploads", &c.mpu_list), 0);
    /* the temporary and the segment the last part took in */
    assert_int_equal(since(b, "DeleteObject", &c.del), 2);
    read_all(b, &d, data, size);
    /* and nothing is left behind */
    berth__s3 *cl = client(0);
    snprintf(up, sizeof(up), "%suploads/", prefix);
    assert_int_equal(berth__s3_list(cl, up, count_object, &l), 0);
    assert_int_equal(l.n, 0);
    assert_int_equal(berth__s3_mpu_list(cl, up, count_upload, &u), 0);
    assert_int_equal(u.n, 0);
    berth__s3_free(cl);
    free(st);
    free(data);
    b->free(b);
}

/* A writer killed after it staged a segment, before its state was stored: the commit from the
 * stored state does not know the segment and leaves it, reap() removes it. */
static void test_s3_blob__unrecorded_segment_is_reaped(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    unsigned char *data = bytes(2 * MIB, 22);
    char *st = NULL, *lost = NULL, up[128];
    uint64_t removed = 0;
    berth_digest d;
    listed l = {0};
    (void)state;
    fresh_prefix();
    b = backend(false);
    berth__s3 *cl = client(0);
    snprintf(up, sizeof(up), "%suploads/", prefix);
    assert_int_equal(b->writer_open(&w, b, "1057", NULL, 0), 0);
    assert_int_equal(w->write(w, data, MIB), 0);
    assert_int_equal(w->sync(w, &st), 0);
    w->close(w);
    assert_int_equal(b->writer_open(&w, b, "1057", st, MIB), 0);
    assert_int_equal(w->write(w, "lost bytes", 10), 0);
    assert_int_equal(w->sync(w, &lost), 0); /* staged; the state never stored */
    w->close(w);
    assert_int_equal(b->writer_open(&w, b, "1057", st, MIB), 0);
    assert_int_equal(w->write(w, data + MIB, MIB), 0);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, 2 * MIB), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, 2 * MIB);
    assert_int_equal(berth__s3_list(cl, up, count_object, &l), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.total, 10);
    sleep(2); /* Swift lists times rounded up to the next second */
    assert_int_equal(b->reap(b, NULL, 0, 0, &removed), 0);
    assert_int_equal(removed, 1);
    l = (listed){0};
    assert_int_equal(berth__s3_list(cl, up, count_object, &l), 0);
    assert_int_equal(l.n, 0);
    berth__s3_free(cl);
    free(lost);
    free(st);
    free(data);
    b->free(b);
}

/* One writer per request (open, write, sync, close), as replicas do: each sync stages only its
 * own bytes, and the staged objects go once a part has taken them in. */
static void test_s3_blob__staged_segments(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    unsigned char *data = bytes(6 * MIB, 8);
    char *st = NULL, up[128];
    uint64_t size = 0;
    berth_digest d;
    listed l = {0};
    (void)state;
    fresh_prefix();
    b = backend(false);
    berth__s3 *c = client(0);
    snprintf(up, sizeof(up), "%suploads/7a11/", prefix);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(b->writer_open(&w, b, "7a11", st, size), 0);
        assert_int_equal(w->write(w, data + size, MIB / 2), 0);
        size += MIB / 2;
        free(st);
        assert_int_equal(w->sync(w, &st), 0);
        w->close(w);
        if (i == 8) {
            /* nine segments of 512 KiB, nothing read back or rewritten */
            assert_int_equal(berth__s3_list(c, up, count_object, &l), 0);
            assert_int_equal(l.n, 9);
            assert_int_equal(l.total, 9 * (MIB / 2));
        }
    }
    /* the tenth filled a part; the two after it are the only objects left */
    l = (listed){0};
    assert_int_equal(berth__s3_list(c, up, count_object, &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.total, MIB);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, size), 0);
    assert_int_equal(b->writer_open(&w, b, "7a11", st, size), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, size);
    free(st);
    free(data);
    berth__s3_free(c);
    b->free(b);
}

/* Past 32 segments they are merged into one. */
static void test_s3_blob__many_small_syncs(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    unsigned char *data = bytes(40 * 1000, 12);
    char *st = NULL;
    uint64_t size = 0;
    berth_digest d;
    (void)state;
    fresh_prefix();
    b = backend(false);
    for (int i = 0; i < 40; i++) {
        assert_int_equal(b->writer_open(&w, b, "5a11", st, size), 0);
        assert_int_equal(w->write(w, data + size, 1000), 0);
        size += 1000;
        free(st);
        assert_int_equal(w->sync(w, &st), 0);
        w->close(w);
        assert_true(strlen(st) < 4096);
    }
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, size), 0);
    assert_int_equal(b->writer_open(&w, b, "5a11", st, size), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, size);
    free(st);
    free(data);
    b->free(b);
}

static void test_s3_blob__abort_and_reap(void **state)
{
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    unsigned char *data = bytes(6 * MIB, 5);
    char *st = NULL, *st2 = NULL;
    uint64_t removed = 0;
    (void)state;
    fresh_prefix();
    b = backend(false);

    /* abort drops everything */
    assert_int_equal(b->writer_open(&w, b, "ab-1", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 6 * MIB), 0);
    assert_int_equal(w->sync(w, &st), 0);
    assert_int_equal(w->abort(w), 0);
    assert_int_equal(b->writer_open(&w, b, "ab-1", st, 6 * MIB), BERTH_ENOTFOUND);
    free(st);
    st = NULL;

    /* two sessions left behind, one live; plus an empty synced one */
    assert_int_equal(b->writer_open(&w, b, "de-ad", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 6 * MIB), 0);
    assert_int_equal(w->sync(w, &st), 0);
    w->close(w);
    assert_int_equal(b->writer_open(&w, b, "11-7e", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 100), 0);
    assert_int_equal(w->sync(w, &st2), 0);
    w->close(w);
    assert_int_equal(b->writer_open(&w, b, "e0", NULL, 0), 0);
    free(st);
    assert_int_equal(w->sync(w, &st), 0);
    w->close(w);
    assert_int_equal(b->writer_open(&w, b, "e0", st, 0), 0); /* an empty session exists */
    w->close(w);

    const char *live[] = {"11-7e"};
    assert_int_equal(b->reap(b, live, 1, 3600, &removed), 0);
    assert_int_equal(removed, 0); /* too young */
    sleep(3);                     /* Swift's s3api rounds listed times up to the next second */
    assert_int_equal(b->reap(b, live, 1, 1, &removed), 0);
    assert_int_equal(removed, 2); /* de-ad and e0 */
    assert_int_equal(b->writer_open(&w, b, "e0", st, 0), BERTH_ENOTFOUND);
    assert_int_equal(b->writer_open(&w, b, "11-7e", st2, 100), 0);
    assert_int_equal(w->abort(w), 0);

    free(st);
    free(st2);
    free(data);
    b->free(b);
}

/* bucket.host/key: RGW takes the bucket from the Host header (its dns name is "localhost",
 * and libcurl resolves *.localhost to the loopback address). */
static void test_s3_blob__virtual_host_style(void **state)
{
    berth_blob_backend *b = NULL;
    berth_blob_writer *w = NULL;
    berth_digest d;
    char ep[300], *url = NULL;
    const char *port = strrchr(endpoint, ':');
    unsigned char *data = bytes(6 * MIB + 1, 7);
    (void)state;
    fresh_prefix();
    snprintf(ep, sizeof(ep), "http://localhost%s", port);
    berth_s3_options o = {.endpoint = ep,
                          .bucket = bucket,
                          .region = region,
                          .prefix = prefix,
                          .path_style = false,
                          .redirect = true};
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), 0);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, 6 * MIB + 1), 0);
    assert_int_equal(b->writer_open(&w, b, "07", NULL, 0), 0);
    assert_int_equal(w->write(w, data, 6 * MIB + 1), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    read_all(b, &d, data, 6 * MIB + 1);

    assert_int_equal(b->url(b, &d, 60, &url), 0);
    assert_true(strncmp(url, "http://", 7) == 0 && strncmp(url + 7, bucket, strlen(bucket)) == 0);
    CURL *h = curl_easy_init();
    long status = 0;
    curl_easy_setopt(h, CURLOPT_URL, url);
    berth_buf body = BERTH_BUF_INIT;
    curl_easy_setopt(h, CURLOPT_RANGE, "0-9");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_to_buf);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    assert_int_equal(status, 206);
    assert_int_equal(body.len, 10);
    assert_memory_equal(body.ptr, data, 10);
    berth_buf_dispose(&body);
    curl_easy_cleanup(h);
    free(url);

    /* a public endpoint replaces the endpoint in presigned URLs */
    b->free(b);
    o.public_endpoint = "https://registry-blobs.example.com";
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), 0);
    assert_int_equal(b->url(b, &d, 60, &url), 0);
    assert_true(strncmp(url, "https://", 8) == 0);
    assert_non_null(strstr(url, ".registry-blobs.example.com/"));
    assert_non_null(strstr(url, "X-Amz-Expires=60&"));
    free(url);
    assert_int_equal(b->url(b, &d, 30 * 86400, &url), 0);
    assert_non_null(strstr(url, "X-Amz-Expires=604800&"));
    free(url);
    b->free(b);
    free(data);
}

typedef struct job {
    berth_blob_backend *b;
    unsigned seed;
    int rc;
} job;

static void *push(void *p)
{
    job *j = p;
    size_t n = (j->seed % 2 ? 6 * MIB : 300 * 1024) + j->seed;
    unsigned char *data = bytes(n, 100 + j->seed);
    berth_blob_writer *w = NULL;
    berth_digest d;
    berth_buf got = BERTH_BUF_INIT;
    char id[16];
    snprintf(id, sizeof(id), "f0-%u", j->seed);
    j->rc = berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, n);
    if (j->rc == 0) {
        j->rc = j->b->writer_open(&w, j->b, id, NULL, 0);
    }
    for (size_t off = 0; j->rc == 0 && off < n; off += 100000) {
        j->rc = w->write(w, data + off, n - off < 100000 ? n - off : 100000);
    }
    if (j->rc == 0) {
        j->rc = w->commit(w, &d, NULL);
    } else if (w) {
        w->close(w);
    }
    if (j->rc == 0) {
        j->rc = j->b->read(j->b, &d, 0, UINT64_MAX, to_buf, &got);
    }
    if (j->rc == 0 && (got.len != n || memcmp(got.ptr, data, n) != 0)) {
        j->rc = -100;
    }
    berth_buf_dispose(&got);
    free(data);
    return NULL;
}

/* One backend used by several threads at once. */
static void test_s3_blob__threads(void **state)
{
    berth_blob_backend *b;
    pthread_t t[6];
    job j[6];
    (void)state;
    fresh_prefix();
    b = backend(false);
    for (unsigned i = 0; i < 6; i++) {
        j[i] = (job){b, i, -1};
        assert_int_equal(pthread_create(&t[i], NULL, push, &j[i]), 0);
    }
    for (unsigned i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(j[i].rc, 0);
    }
    b->free(b);
}

static void test_s3_blob__unreachable_is_enetwork_fast(void **state)
{
    berth_blob_backend *b = NULL;
    berth_blob_writer *w = NULL;
    berth_digest d;
    berth_s3_options o = {.endpoint = "http://127.0.0.1:9", .bucket = "b", .path_style = true};
    struct timespec t0, t1;
    (void)state;
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), 0);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "x", 1), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(b->stat(b, &d, NULL), BERTH_ENETWORK);
    assert_null(strstr(berth_error_last(), "127.0.0.1"));
    assert_int_equal(b->writer_open(&w, b, "00", NULL, 0), 0);
    assert_int_equal(w->write(w, "x", 1), 0);
    assert_int_equal(w->commit(w, &d, NULL), BERTH_ENETWORK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_true(t1.tv_sec - t0.tv_sec < 10);
    b->free(b);
}

/* A service that accepts connections and never answers: one timeout, not one per retry. */
static void *accept_and_hang(void *p)
{
    int ls = *(int *)p, fds[8], n = 0;
    while (n < 8) {
        int fd = accept(ls, NULL, NULL);
        if (fd < 0) {
            break;
        }
        fds[n++] = fd;
    }
    for (int i = 0; i < n; i++) {
        close(fds[i]);
    }
    return NULL;
}

static void test_s3_client__stalled_service_is_not_retried(void **state)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    char ep[64];
    pthread_t t;
    struct timespec t0, t1;
    berth__s3 *c = NULL;
    berth__s3_stat st;
    (void)state;
    assert_true(ls >= 0);
    assert_int_equal(bind(ls, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ls, 8), 0);
    assert_int_equal(getsockname(ls, (struct sockaddr *)&a, &alen), 0);
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", ntohs(a.sin_port));
    assert_int_equal(pthread_create(&t, NULL, accept_and_hang, &ls), 0);

    berth__s3_config cfg = {
        .endpoint = ep, .bucket = "b", .path_style = true, .retries = 3, .low_speed_time_s = 1};
    assert_int_equal(berth__s3_new(&c, &cfg), 0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    assert_int_equal(berth__s3_head(c, "k", &st), BERTH_ENETWORK);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    assert_true(s < 3.0); /* 4 attempts would take more than 4 s */
    berth__s3_free(c);
    shutdown(ls, SHUT_RDWR);
    close(ls);
    pthread_join(t, NULL);
}

static void test_s3_blob__bad_states_are_refused(void **state)
{
    static const char *bad[] = {
        "",
        "not json",
        "[]",
        "{\"v\":2,\"u\":null,\"p\":0,\"c\":\"\",\"t\":\"tail-00\",\"n\":0}",
        "{\"v\":1,\"u\":null,\"p\":1,\"c\":\"\",\"t\":\"tail-00\",\"n\":0}",
        "{\"v\":1,\"u\":\"x\",\"p\":1,\"c\":\"ab\",\"t\":null,\"n\":0}",
        "{\"v\":1,\"u\":null,\"p\":0,\"c\":\"\",\"t\":\"../../blobs/x\",\"n\":0}",
        "{\"v\":1,\"u\":null,\"p\":0,\"c\":\"\",\"t\":\"tail-00\",\"n\":-1}",
        "{\"v\":1,\"u\":null,\"p\":0,\"c\":\"\",\"t\":\"tail-00\",\"n\":99999999}",
        "{\"v\":1,\"u\":\"x\",\"p\":10001,\"c\":\"\",\"t\":null,\"n\":0}",
        "{\"v\":1,\"u\":null,\"p\":0,\"c\":\"\",\"t\":\"tail-00\",\"n\":0,\"q\":\"/x\"}",
    };
    berth_blob_backend *b;
    berth_blob_writer *w = NULL;
    (void)state;
    fresh_prefix();
    b = backend(false);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = b->writer_open(&w, b, "ba-d", bad[i], 0);
        if (rc != BERTH_EINVALID) {
            print_error("state %zu: %d\n", i, rc);
        }
        assert_int_equal(rc, BERTH_EINVALID);
        assert_null(w);
    }
    assert_int_equal(b->writer_open(&w, b, "../x", NULL, 0), BERTH_EINVALID);
    assert_int_equal(b->writer_open(&w, b, "ABC", NULL, 0), BERTH_EINVALID);
    b->free(b);
}

static void test_s3_blob__settings(void **state)
{
    berth_blob_backend *b = NULL;
    berth_s3_options o = {.endpoint = "ftp://x", .bucket = "b"};
    (void)state;
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), BERTH_EINVALID);
    o.endpoint = "http://h:1/path";
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), BERTH_EINVALID);
    o.endpoint = "http://h:1";
    o.public_endpoint = "blobs.example.com";
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), BERTH_EINVALID);
    o.public_endpoint = NULL;
    o.bucket = NULL;
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), BERTH_EINVALID);

    /* credentials from the shared file when the environment has none */
    char *ak = strdup(getenv("AWS_ACCESS_KEY_ID")), *sk = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    char path[] = "/tmp/berth-s3-credsXXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    fprintf(f,
            "[default]\naws_access_key_id = nope\n\n[berth]\naws_access_key_id = %s\n"
            "aws_secret_access_key=%s\n",
            ak, sk);
    fclose(f);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
    setenv("AWS_PROFILE", "nobody", 1);
    o.bucket = bucket;
    o.endpoint = endpoint;
    o.path_style = true;
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), BERTH_EUNAUTHORIZED);
    setenv("AWS_PROFILE", "berth", 1);
    fresh_prefix();
    o.prefix = prefix;
    assert_int_equal(berth_s3_blob_backend_new(&b, &o), 0);
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "y", 1), 0);
    assert_int_equal(b->stat(b, &d, NULL), BERTH_ENOTFOUND); /* signed right: 404, not 403 */
    b->free(b);
    unlink(path);
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
    unsetenv("AWS_PROFILE");
    setenv("AWS_ACCESS_KEY_ID", ak, 1);
    setenv("AWS_SECRET_ACCESS_KEY", sk, 1);
    free(ak);
    free(sk);
}

/* The contract suite's backends: each under a fresh prefix of the test bucket. */
static int open_contract(berth_blob_backend **out, void *payload)
{
    berth_s3_options o = {.endpoint = endpoint,
                          .bucket = bucket,
                          .region = region,
                          .prefix = prefix,
                          .path_style = true,
                          .redirect = true};
    (void)payload;
    fresh_prefix();
    return berth_s3_blob_backend_new(out, &o);
}

static int abort_each(const char *k, const char *id, int64_t initiated, void *p)
{
    int rc = berth__s3_mpu_abort(p, k, id);
    (void)initiated;
    return rc == BERTH_ENOTFOUND ? 0 : rc;
}

static int delete_each(const char *k, uint64_t size, int64_t mtime, void *p)
{
    (void)size;
    (void)mtime;
    return berth__s3_delete(p, k);
}

static void clean_up(void)
{
    berth__s3 *c = NULL;
    berth__s3_config cfg = {.endpoint = endpoint, .bucket = bucket, .path_style = true};
    if (berth__s3_new(&c, &cfg) != 0) {
        return;
    }
    for (unsigned i = 0; i < nused; i++) {
        berth__s3_mpu_list(c, used[i], abort_each, c);
        berth__s3_list(c, used[i], delete_each, c);
    }
    berth__s3_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_client__objects),
        cmocka_unit_test(test_s3_client__multipart),
        cmocka_unit_test(test_s3_client__copies_may_be_silent),
        cmocka_unit_test(test_s3_blob__small_blobs),
        cmocka_unit_test(test_s3_blob__sessions),
        cmocka_unit_test(test_s3_blob__state_guards_parts),
        cmocka_unit_test(test_s3_blob__patch_is_one_part),
        cmocka_unit_test(test_s3_blob__unrecorded_segment_is_reaped),
        cmocka_unit_test(test_s3_blob__staged_segments),
        cmocka_unit_test(test_s3_blob__many_small_syncs),
        cmocka_unit_test(test_s3_blob__commit_killed_after_completing),
        cmocka_unit_test(test_s3_blob__abort_and_reap),
        cmocka_unit_test(test_s3_blob__virtual_host_style),
        cmocka_unit_test(test_s3_blob__threads),
        cmocka_unit_test(test_s3_blob__unreachable_is_enetwork_fast),
        cmocka_unit_test(test_s3_client__stalled_service_is_not_retried),
        cmocka_unit_test(test_s3_blob__bad_states_are_refused),
        cmocka_unit_test(test_s3_blob__settings),
        cmocka_unit_test(test_s3_blob__parts_grow),
    };
    int failed = cmocka_run_group_tests(tests, load_env, NULL);
    if (load_env(NULL) != 0) {
        return 1;
    }
    failed += blob_contract_run("blob_contract/s3", open_contract, NULL);
    clean_up();
    return failed;
}
