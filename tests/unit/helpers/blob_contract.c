/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The blob backend contract suite (blob_contract.h). Every test gets a fresh backend from the
 * caller's `open`; bytes come from a seeded pattern (so that a misplaced part or a dropped byte
 * changes the digest), and every blob is checked by reading it back through the backend.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "helpers/blob_contract.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KIB 1024u
#define MIB (1024u * 1024u)

static struct {
    int (*open)(berth_blob_backend **out, void *payload);
    void *payload;
    char run[16]; /* random hex, so that session ids differ between runs on a shared engine */
    unsigned seq;
} g;

static int setup(void **state)
{
    berth_blob_backend *b = NULL;
    int rc = g.open(&b, g.payload);
    if (rc != 0 || !b) {
        fprintf(stderr, "blob_contract: open failed: %d %s\n", rc, berth_error_last());
        return -1;
    }
    assert_int_equal(b->version, BERTH_BLOB_BACKEND_VERSION);
    assert_non_null(b->name);
    *state = b;
    return 0;
}

static int teardown(void **state)
{
    berth_blob_backend *b = *state;
    if (b) {
        b->free(b);
    }
    return 0;
}

/* A new session id ([0-9a-f-], unique in this run and, by the random part, between runs). */
static void new_id(char out[65])
{
    snprintf(out, 65, "%s-%08x", g.run, ++g.seq);
}

/* The pattern byte at `off` for `seed`: no short period, so parts out of order show. */
static unsigned char gen(uint64_t off, uint32_t seed)
{
    uint64_t x = (off + 1) * 0x9E3779B97F4A7C15ull ^ ((uint64_t)seed << 17);
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 32;
    return (unsigned char)x;
}

static void fill(unsigned char *p, uint64_t from, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++) {
        p[i] = gen(from + i, seed);
    }
}

/* The digest of the pattern's bytes [0, size). */
static berth_digest pattern_digest(uint32_t seed, uint64_t size)
{
    berth_hasher *h = NULL;
    berth_digest d;
    unsigned char chunk[64 * KIB];
    assert_int_equal(berth_hasher_new(&h, BERTH_DIGEST_SHA256), 0);
    for (uint64_t off = 0; off < size;) {
        size_t n = size - off < sizeof(chunk) ? (size_t)(size - off) : sizeof(chunk);
        fill(chunk, off, n, seed);
        assert_int_equal(berth_hasher_update(h, chunk, n), 0);
        off += n;
    }
    assert_int_equal(berth_hasher_peek(&d, h), 0);
    berth_hasher_free(h);
    return d;
}

static berth_digest digest_of(const void *data, size_t len)
{
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, len), 0);
    return d;
}

/* Write the pattern's bytes [from, to) in pieces of `piece` bytes. */
static void write_pattern(berth_blob_writer *w, uint64_t from, uint64_t to, size_t piece,
                          uint32_t seed)
{
    unsigned char *buf = malloc(piece);
    assert_non_null(buf);
    while (from < to) {
        size_t n = to - from < piece ? (size_t)(to - from) : piece;
        fill(buf, from, n, seed);
        int rc = w->write(w, buf, n);
        if (rc != 0) {
            fprintf(stderr, "write at %llu: %d %s\n", (unsigned long long)from, rc,
                    berth_error_last());
        }
        assert_int_equal(rc, 0);
        from += n;
    }
    free(buf);
}

static int buf_sink(const void *data, size_t len, void *payload)
{
    return berth_buf_put(payload, data, len);
}

/* Read [offset, offset+len) of a blob into a buffer; returns read()'s code. */
static int read_range(berth_blob_backend *b, const berth_digest *d, uint64_t offset, uint64_t len,
                      berth_buf *out)
{
    berth_buf_clear(out);
    return b->read(b, d, offset, len, buf_sink, out);
}

typedef struct hash_sink {
    berth_hasher *h;
    uint64_t count;
} hash_sink;

static int hash_sink_cb(const void *data, size_t len, void *payload)
{
    hash_sink *s = payload;
    s->count += len;
    return berth_hasher_update(s->h, data, len);
}

/* Read a whole blob through the backend and check its size and digest. */
static void check_blob(berth_blob_backend *b, const berth_digest *d, uint64_t size)
{
    uint64_t got = 0;
    hash_sink s = {NULL, 0};
    berth_digest rd;
    assert_int_equal(b->stat(b, d, &got), 0);
    assert_int_equal(got, size);
    assert_int_equal(berth_hasher_new(&s.h, BERTH_DIGEST_SHA256), 0);
    assert_int_equal(b->read(b, d, 0, UINT64_MAX, hash_sink_cb, &s), 0);
    assert_int_equal(s.count, size);
    assert_int_equal(berth_hasher_peek(&rd, s.h), 0);
    assert_string_equal(rd.str, d->str);
    berth_hasher_free(s.h);
}

/* Store `data` as a blob through a new session; returns its digest. */
static berth_digest put_blob(berth_blob_backend *b, const void *data, size_t len)
{
    berth_blob_writer *w = NULL;
    char id[65];
    berth_digest d = digest_of(data, len);
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    if (len) {
        assert_int_equal(w->write(w, data, len), 0);
    }
    assert_int_equal(w->commit(w, &d, NULL), 0);
    return d;
}

static void sync_state(berth_blob_writer *w, char **state)
{
    free(*state);
    *state = NULL;
    assert_int_equal(w->sync(w, state), 0);
    assert_non_null(*state);
    assert_true(strlen(*state) <= 64 * KIB);
}

/* A check that hashes what it is given and accepts only `want` (or refuses everything). */
typedef struct digest_check {
    berth_hasher *h;
    uint64_t count;
    berth_digest want;
    bool refuse;
    int finals;
} digest_check;

static int check_update(const void *data, size_t len, void *payload)
{
    digest_check *c = payload;
    c->count += len;
    return berth_hasher_update(c->h, data, len);
}

static int check_final(void *payload)
{
    digest_check *c = payload;
    berth_digest d;
    c->finals++;
    if (c->refuse) {
        return BERTH_EMISMATCH;
    }
    if (berth_hasher_peek(&d, c->h) != 0 || !berth_digest_equal(&d, &c->want)) {
        return BERTH_EMISMATCH;
    }
    return 0;
}

static void check_init(digest_check *c, berth_blob_check *chk, const berth_digest *want,
                       bool refuse)
{
    memset(c, 0, sizeof(*c));
    assert_int_equal(berth_hasher_new(&c->h, BERTH_DIGEST_SHA256), 0);
    c->want = *want;
    c->refuse = refuse;
    chk->update = check_update;
    chk->final = check_final;
    chk->payload = c;
}

/* ---- reading ---------------------------------------------------------------------------- */

static int stop_sink(const void *data, size_t len, void *payload)
{
    (*(int *)payload)++;
    return -77;
}

static void test_blob__missing(void **state)
{
    berth_blob_backend *b = *state;
    berth_digest d = digest_of("never stored", 12);
    berth_buf out = BERTH_BUF_INIT;
    uint64_t size = 0;
    assert_int_equal(b->stat(b, &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(read_range(b, &d, 0, UINT64_MAX, &out), BERTH_ENOTFOUND);
    assert_int_equal(out.len, 0);
    assert_int_equal(b->remove(b, &d), BERTH_ENOTFOUND);
    if (b->open_fd) {
        int fd = -1;
        assert_int_equal(b->open_fd(b, &d, &fd, &size), BERTH_ENOTFOUND);
    }
    berth_buf_dispose(&out);
}

static void test_blob__read_ranges(void **state)
{
    berth_blob_backend *b = *state;
    unsigned char data[1000];
    berth_buf out = BERTH_BUF_INIT;
    int calls = 0;
    fill(data, 0, sizeof(data), 1);
    berth_digest d = put_blob(b, data, sizeof(data));
    check_blob(b, &d, sizeof(data));

    assert_int_equal(read_range(b, &d, 0, UINT64_MAX, &out), 0);
    assert_int_equal(out.len, 1000);
    assert_memory_equal(out.ptr, data, 1000);
    assert_int_equal(read_range(b, &d, 0, 1000, &out), 0);
    assert_int_equal(out.len, 1000);
    assert_memory_equal(out.ptr, data, 1000);
    assert_int_equal(read_range(b, &d, 10, 100, &out), 0);
    assert_int_equal(out.len, 100);
    assert_memory_equal(out.ptr, data + 10, 100);
    assert_int_equal(read_range(b, &d, 990, UINT64_MAX, &out), 0);
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.ptr, data + 990, 10);
    assert_int_equal(read_range(b, &d, 999, 1, &out), 0);
    assert_int_equal(out.len, 1);
    assert_memory_equal(out.ptr, data + 999, 1);
    assert_int_equal(read_range(b, &d, 0, 1, &out), 0);
    assert_int_equal(out.len, 1);
    assert_memory_equal(out.ptr, data, 1);

    /* offsets past the end */
    assert_int_equal(read_range(b, &d, 1001, UINT64_MAX, &out), BERTH_ERANGE);
    assert_int_equal(read_range(b, &d, 5000, 10, &out), BERTH_ERANGE);
    assert_int_equal(read_range(b, &d, UINT64_MAX - 1, 1, &out), BERTH_ERANGE);

    /* a sink's non-zero return stops the read and is its result */
    assert_int_equal(b->read(b, &d, 0, UINT64_MAX, stop_sink, &calls), -77);
    assert_int_equal(calls, 1);
    berth_buf_dispose(&out);
}

static void test_blob__empty_blob(void **state)
{
    berth_blob_backend *b = *state;
    berth_buf out = BERTH_BUF_INIT;
    berth_digest d = put_blob(b, "", 0);
    uint64_t size = 99;
    assert_int_equal(b->stat(b, &d, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(read_range(b, &d, 0, UINT64_MAX, &out), 0);
    assert_int_equal(out.len, 0);
    assert_int_equal(read_range(b, &d, 1, UINT64_MAX, &out), BERTH_ERANGE);
    assert_int_equal(b->remove(b, &d), 0);
    assert_int_equal(b->stat(b, &d, &size), BERTH_ENOTFOUND);
    berth_buf_dispose(&out);
}

static void test_blob__open_fd(void **state)
{
    berth_blob_backend *b = *state;
    unsigned char data[3000], back[3001];
    int fd = -1;
    uint64_t size = 0;
    ssize_t n;
    size_t got = 0;
    if (!b->open_fd) {
        skip();
    }
    fill(data, 0, sizeof(data), 2);
    berth_digest d = put_blob(b, data, sizeof(data));
    assert_int_equal(b->open_fd(b, &d, &fd, &size), 0);
    assert_true(fd >= 0);
    assert_int_equal(size, sizeof(data));
    while ((n = read(fd, back + got, sizeof(back) - got)) > 0) {
        got += (size_t)n;
    }
    assert_int_equal(n, 0);
    assert_int_equal(got, sizeof(data));
    assert_memory_equal(back, data, sizeof(data));
    /* read-only */
    assert_true(write(fd, "x", 1) < 0);
    close(fd);
}

static void test_blob__url(void **state)
{
    berth_blob_backend *b = *state;
    berth_digest d = digest_of("url", 3);
    char *url = NULL;
    if (!b->url) {
        skip();
    }
    int rc = b->url(b, &d, 60, &url);
    assert_true(rc == 0 || rc == BERTH_EUNSUPPORTED);
    if (rc == 0) {
        assert_non_null(url);
        assert_true(strlen(url) > 0);
        free(url);
    }
}

static void test_blob__remove(void **state)
{
    berth_blob_backend *b = *state;
    berth_buf out = BERTH_BUF_INIT;
    uint64_t size;
    berth_digest d1 = put_blob(b, "first blob", 10);
    berth_digest d2 = put_blob(b, "second blob", 11);
    assert_int_equal(b->remove(b, &d1), 0);
    assert_int_equal(b->stat(b, &d1, &size), BERTH_ENOTFOUND);
    assert_int_equal(read_range(b, &d1, 0, UINT64_MAX, &out), BERTH_ENOTFOUND);
    assert_int_equal(b->remove(b, &d1), BERTH_ENOTFOUND);
    check_blob(b, &d2, 11);
    /* stored again after its removal */
    d1 = put_blob(b, "first blob", 10);
    check_blob(b, &d1, 10);
    berth_buf_dispose(&out);
}

typedef struct seen {
    berth_digest want[3];
    uint64_t size[3];
    int count[3];
    int total;
    int64_t mtime_min, mtime_max;
} seen;

static int seen_cb(const berth_digest *digest, uint64_t size, int64_t mtime, void *payload)
{
    seen *s = payload;
    s->total++;
    for (int i = 0; i < 3; i++) {
        if (berth_digest_equal(digest, &s->want[i])) {
            s->count[i]++;
            s->size[i] = size;
            if (mtime < s->mtime_min) {
                s->mtime_min = mtime;
            }
            if (mtime > s->mtime_max) {
                s->mtime_max = mtime;
            }
        }
    }
    return 0;
}

static int stop_each(const berth_digest *digest, uint64_t size, int64_t mtime, void *payload)
{
    (*(int *)payload)++;
    return -77;
}

static void test_blob__foreach(void **state)
{
    berth_blob_backend *b = *state;
    unsigned char big[3000];
    seen s;
    int calls = 0;
    int64_t before = (int64_t)time(NULL);
    fill(big, 0, sizeof(big), 3);
    memset(&s, 0, sizeof(s));
    s.want[0] = put_blob(b, "a", 1);
    s.want[1] = put_blob(b, "one hundred", 11);
    s.want[2] = put_blob(b, big, sizeof(big));
    /* a session, with bytes synced and more not, is no blob */
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 6 * (uint64_t)MIB, 64 * KIB, 3);
    sync_state(w, &st);
    write_pattern(w, 6 * (uint64_t)MIB, 6 * (uint64_t)MIB + 10, 64 * KIB, 3);
    s.mtime_min = INT64_MAX;
    s.mtime_max = INT64_MIN;
    assert_int_equal(b->foreach (b, seen_cb, &s), 0);
    assert_int_equal(s.total, 3); /* the backend was empty */
    assert_int_equal(s.count[0], 1);
    assert_int_equal(s.count[1], 1);
    assert_int_equal(s.count[2], 1);
    assert_int_equal(s.size[0], 1);
    assert_int_equal(s.size[1], 11);
    assert_int_equal(s.size[2], sizeof(big));
    /* Unix seconds, about now (a remote clock may be a little off) */
    assert_true(s.mtime_min >= before - 600);
    assert_true(s.mtime_max <= (int64_t)time(NULL) + 600);

    assert_int_equal(b->remove(b, &s.want[1]), 0);
    memset(s.count, 0, sizeof(s.count));
    assert_int_equal(b->foreach (b, seen_cb, &s), 0);
    assert_int_equal(s.count[0], 1);
    assert_int_equal(s.count[1], 0);
    assert_int_equal(s.count[2], 1);

    /* the callback's non-zero return stops the walk and is its result */
    assert_int_equal(b->foreach (b, stop_each, &calls), -77);
    assert_int_equal(calls, 1);

    /* committed, the session is one blob more */
    berth_digest d = pattern_digest(3, 6 * (uint64_t)MIB + 10);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    memset(s.count, 0, sizeof(s.count));
    s.total = 0;
    assert_int_equal(b->foreach (b, seen_cb, &s), 0);
    assert_int_equal(s.total, 3);
    free(st);
}

/* ---- write sessions --------------------------------------------------------------------- */

static void test_blob__session_sync_close_reopen(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    uint32_t seed = 4;
    new_id(id);

    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    assert_ptr_equal(w->backend, b);
    assert_int_equal(w->size(w), 0);
    write_pattern(w, 0, 1000, 300, seed);
    assert_int_equal(w->size(w), 1000);
    write_pattern(w, 1000, 5000, 1000, seed);
    assert_int_equal(w->size(w), 5000);
    sync_state(w, &st);
    assert_int_equal(w->size(w), 5000);
    /* written after the last sync: dropped by close() */
    write_pattern(w, 5000, 9000, 4000, seed + 1);
    assert_int_equal(w->size(w), 9000);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 5000), 0);
    assert_int_equal(w->size(w), 5000);
    write_pattern(w, 5000, 7000, 500, seed);
    assert_int_equal(w->size(w), 7000);
    sync_state(w, &st);
    write_pattern(w, 7000, 7500, 500, seed);
    sync_state(w, &st); /* two syncs in a row, the later one counts */
    assert_int_equal(w->size(w), 7500);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 7500), 0);
    assert_int_equal(w->size(w), 7500);
    write_pattern(w, 7500, 8000, 1, seed);
    berth_digest d = pattern_digest(seed, 8000);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, 8000);

    /* the session ended with the commit */
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 7500), BERTH_ENOTFOUND);
    free(st);
}

static void test_blob__sync_before_any_write(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    sync_state(w, &st);
    write_pattern(w, 0, 100, 100, 9); /* not synced */
    w->close(w);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 0), 0);
    assert_int_equal(w->size(w), 0);
    write_pattern(w, 0, 10, 10, 5);
    berth_digest d = pattern_digest(5, 10);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, 10);
    free(st);
}

static void test_blob__commit_without_sync(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 3000, 1000, 6);
    sync_state(w, &st);
    write_pattern(w, 3000, 4500, 700, 6);
    /* commit takes every byte written, synced or not */
    berth_digest d = pattern_digest(6, 4500);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, 4500);
    free(st);
}

static void test_blob__commit_existing_keeps_bytes(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    berth_buf out = BERTH_BUF_INIT;
    char id[65];
    berth_digest d = put_blob(b, "the original bytes", 18);

    /* a second commit under the same digest (here with other bytes) keeps the first */
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    assert_int_equal(w->write(w, "other bytes, other size", 23), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    assert_int_equal(read_range(b, &d, 0, UINT64_MAX, &out), 0);
    assert_int_equal(out.len, 18);
    assert_memory_equal(out.ptr, "the original bytes", 18);

    /* the same bytes again: still one blob */
    d = put_blob(b, "the original bytes", 18);
    check_blob(b, &d, 18);
    berth_buf_dispose(&out);
}

static void test_blob__commit_refused_by_check(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    berth_blob_check chk;
    digest_check c;
    char id[65], *st = NULL;
    uint64_t size;
    uint32_t seed = 7;
    berth_digest want = pattern_digest(seed, 6000);
    new_id(id);

    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 2000, 1000, seed);
    sync_state(w, &st);
    write_pattern(w, 2000, 3000, 1000, seed);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 2000), 0);
    write_pattern(w, 2000, 4000, 1000, seed);
    sync_state(w, &st);
    write_pattern(w, 4000, 5000, 1000, seed); /* after the last sync */
    check_init(&c, &chk, &want, true);
    assert_int_equal(w->commit(w, &want, &chk), BERTH_EMISMATCH);
    assert_int_equal(c.finals, 1);
    /* the check saw the bytes of the session, the earlier writer's too */
    assert_int_equal(c.count, 5000);
    berth_hasher_free(c.h);
    assert_int_equal(b->stat(b, &want, &size), BERTH_ENOTFOUND);

    /* the session is as at its last sync: reopen at 4000 and finish */
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 4000), 0);
    assert_int_equal(w->size(w), 4000);
    write_pattern(w, 4000, 6000, 999, seed);
    check_init(&c, &chk, &want, false);
    assert_int_equal(w->commit(w, &want, &chk), 0);
    assert_int_equal(c.finals, 1);
    assert_int_equal(c.count, 6000);
    berth_hasher_free(c.h);
    check_blob(b, &want, 6000);

    /* a check that refuses the right bytes of a digest already stored: the blob stays */
    new_id(id);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 6000, 6000, seed);
    check_init(&c, &chk, &want, true);
    assert_int_equal(w->commit(w, &want, &chk), BERTH_EMISMATCH);
    berth_hasher_free(c.h);
    check_blob(b, &want, 6000);
    free(st);
}

static void test_blob__abort(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], id2[65], *st = NULL;
    uint64_t size;
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 2500, 1000, 8);
    sync_state(w, &st);
    write_pattern(w, 2500, 3000, 1000, 8);
    assert_int_equal(w->abort(w), 0);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 2500), BERTH_ENOTFOUND);
    berth_digest d = pattern_digest(8, 2500);
    assert_int_equal(b->stat(b, &d, &size), BERTH_ENOTFOUND);

    /* a session never synced */
    new_id(id2);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id2, NULL, 0), 0);
    write_pattern(w, 0, 10, 10, 8);
    assert_int_equal(w->abort(w), 0);

    /* an aborted session after it was reopened */
    new_id(id2);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id2, NULL, 0), 0);
    write_pattern(w, 0, 100, 10, 8);
    sync_state(w, &st);
    w->close(w);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id2, st, 100), 0);
    assert_int_equal(w->abort(w), 0);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id2, st, 100), BERTH_ENOTFOUND);
    free(st);
}

static void test_blob__ended_sessions_are_not_found(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    new_id(id);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 64, 64, 10);
    sync_state(w, &st);
    berth_digest d = pattern_digest(10, 64);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, 64), BERTH_ENOTFOUND);
    check_blob(b, &d, 64);
    free(st);
}

/* A session is found by its id: the state of another session does not open it. */
static void test_blob__unknown_session_is_not_found(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], never[65], *st = NULL;
    new_id(id);
    new_id(never);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, 100, 100, 19);
    sync_state(w, &st);
    w->close(w);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, never, st, 100), BERTH_ENOTFOUND);
    w = NULL;
    /* the other session is untouched */
    assert_int_equal(b->writer_open(&w, b, id, st, 100), 0);
    berth_digest d = pattern_digest(19, 100);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, 100);
    free(st);
}

/* 12 MiB in 64 KiB pieces, syncs off part boundaries, rollbacks across the 5 MiB and 10 MiB
 * boundaries, reopened twice, checked by the commit's check and by a read. */
static void test_blob__large_session(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    berth_blob_check chk;
    digest_check c;
    berth_buf out = BERTH_BUF_INIT;
    char id[65], *st = NULL;
    uint32_t seed = 11;
    uint64_t total = 12 * (uint64_t)MIB, s1 = 6 * (uint64_t)MIB + 1000, s2 = 10 * (uint64_t)MIB + 1;
    unsigned char expect[64];
    new_id(id);

    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, s1, 64 * KIB, seed);
    sync_state(w, &st);
    /* dropped: crosses nothing synced, but a staged part would include it */
    write_pattern(w, s1, s1 + 100 * KIB, 64 * KIB, seed + 1);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, s1), 0);
    assert_int_equal(w->size(w), s1);
    write_pattern(w, s1, s2, 64 * KIB, seed);
    sync_state(w, &st);
    write_pattern(w, s2, 11 * (uint64_t)MIB, 64 * KIB, seed + 2); /* dropped again */
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, s2), 0);
    assert_int_equal(w->size(w), s2);
    write_pattern(w, s2, total, 64 * KIB, seed);
    assert_int_equal(w->size(w), total);
    berth_digest d = pattern_digest(seed, total);
    check_init(&c, &chk, &d, false);
    assert_int_equal(w->commit(w, &d, &chk), 0);
    assert_int_equal(c.count, total);
    berth_hasher_free(c.h);
    check_blob(b, &d, total);

    /* ranges across the boundaries */
    uint64_t offs[] = {5 * (uint64_t)MIB - 32, 10 * (uint64_t)MIB - 32, s1 - 32, s2 - 32};
    for (size_t i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
        fill(expect, offs[i], sizeof(expect), seed);
        assert_int_equal(read_range(b, &d, offs[i], sizeof(expect), &out), 0);
        assert_int_equal(out.len, sizeof(expect));
        assert_memory_equal(out.ptr, expect, sizeof(expect));
    }
    assert_int_equal(read_range(b, &d, total - 10, UINT64_MAX, &out), 0);
    assert_int_equal(out.len, 10);
    berth_buf_dispose(&out);
    free(st);
}

/* Syncs exactly on the 5 MiB and 10 MiB boundaries, a sync with nothing new, and a commit with
 * nothing written since the reopen. */
static void test_blob__exact_boundaries(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    uint32_t seed = 20;
    uint64_t m5 = 5 * (uint64_t)MIB, m10 = 10 * (uint64_t)MIB;
    new_id(id);

    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, m5, 64 * KIB, seed);
    sync_state(w, &st);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, m5), 0);
    sync_state(w, &st); /* nothing new: still a state to reopen by */
    w->close(w);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, m5), 0);
    assert_int_equal(w->size(w), m5);
    write_pattern(w, m5, m10, 1 * MIB, seed);
    sync_state(w, &st);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, m10), 0);
    assert_int_equal(w->size(w), m10);
    berth_digest d = pattern_digest(seed, m10);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, m10);
    free(st);
}

/* About 10.5 MiB in 1000-byte writes, with runs of one-byte writes across 5 MiB and 10 MiB and
 * a sync in the middle of each run. */
static void test_blob__small_writes(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    uint32_t seed = 12;
    uint64_t m5 = 5 * (uint64_t)MIB, m10 = 10 * (uint64_t)MIB;
    uint64_t total = m10 + 500 * KIB + 7;
    new_id(id);

    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    write_pattern(w, 0, m5 - 1500, 1000, seed);
    write_pattern(w, m5 - 1500, m5 - 3, 1, seed);
    sync_state(w, &st); /* 3 bytes short of 5 MiB */
    write_pattern(w, m5 - 3, m5 + 5, 1, seed + 1);
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, m5 - 3), 0);
    write_pattern(w, m5 - 3, m5 + 1500, 1, seed);
    write_pattern(w, m5 + 1500, m10 - 1000, 1000, seed);
    write_pattern(w, m10 - 1000, m10 + 2, 1, seed);
    sync_state(w, &st); /* just past 10 MiB */
    w->close(w);

    w = NULL;
    assert_int_equal(b->writer_open(&w, b, id, st, m10 + 2), 0);
    write_pattern(w, m10 + 2, total, 1000, seed);
    berth_digest d = pattern_digest(seed, total);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, total);
    free(st);
}

static void test_blob__two_sessions_interleaved(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w1 = NULL, *w2 = NULL;
    char id1[65], id2[65], *st1 = NULL, *st2 = NULL;
    new_id(id1);
    new_id(id2);
    assert_int_equal(b->writer_open(&w1, b, id1, NULL, 0), 0);
    assert_int_equal(b->writer_open(&w2, b, id2, NULL, 0), 0);
    for (uint64_t off = 0; off < 40000; off += 4000) {
        write_pattern(w1, off, off + 4000, 4000, 13);
        write_pattern(w2, off, off + 4000, 4000, 14);
    }
    sync_state(w1, &st1);
    sync_state(w2, &st2);
    w1->close(w1);
    w1 = NULL;
    /* w2 goes on while w1 is reopened */
    write_pattern(w2, 40000, 50000, 5000, 14);
    assert_int_equal(b->writer_open(&w1, b, id1, st1, 40000), 0);
    write_pattern(w1, 40000, 45000, 5000, 13);
    berth_digest d2 = pattern_digest(14, 50000), d1 = pattern_digest(13, 45000);
    assert_int_equal(w2->abort(w2), 0);
    assert_int_equal(w1->commit(w1, &d1, NULL), 0);
    check_blob(b, &d1, 45000);
    uint64_t size;
    assert_int_equal(b->stat(b, &d2, &size), BERTH_ENOTFOUND);
    free(st1);
    free(st2);
}

typedef struct worker {
    berth_blob_backend *b;
    uint32_t seed;
    uint64_t size;
    int rc_own, rc_shared;
} worker;

static int write_session(berth_blob_backend *b, uint32_t seed, uint64_t size)
{
    berth_blob_writer *w = NULL;
    char id[65], *st = NULL;
    unsigned char buf[4096];
    int rc;
    /* g.seq is shared: take the id under a lock */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    pthread_mutex_lock(&lock);
    new_id(id);
    pthread_mutex_unlock(&lock);
    if ((rc = b->writer_open(&w, b, id, NULL, 0)) != 0) {
        return rc;
    }
    for (uint64_t off = 0; off < size; off += sizeof(buf)) {
        size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        fill(buf, off, n, seed);
        if ((rc = w->write(w, buf, n)) != 0) {
            w->close(w);
            return rc;
        }
        if (off == size / 2 / sizeof(buf) * sizeof(buf)) {
            if ((rc = w->sync(w, &st)) != 0) {
                w->close(w);
                return rc;
            }
            free(st);
        }
    }
    berth_digest d = pattern_digest(seed, size);
    return w->commit(w, &d, NULL);
}

static void *worker_main(void *arg)
{
    worker *wk = arg;
    wk->rc_own = write_session(wk->b, wk->seed, wk->size);
    /* both threads commit the same bytes under the same digest */
    wk->rc_shared = write_session(wk->b, 99, 300 * KIB);
    return NULL;
}

static void test_blob__concurrent_sessions(void **state)
{
    berth_blob_backend *b = *state;
    worker wk[2] = {{b, 15, 1 * (uint64_t)MIB + 17, -1, -1}, {b, 16, 700 * KIB, -1, -1}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, worker_main, &wk[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(wk[i].rc_own, 0);
        assert_int_equal(wk[i].rc_shared, 0);
        berth_digest d = pattern_digest(wk[i].seed, wk[i].size);
        check_blob(b, &d, wk[i].size);
    }
    berth_digest shared = pattern_digest(99, 300 * KIB);
    check_blob(b, &shared, 300 * KIB);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void test_blob__reap(void **state)
{
    berth_blob_backend *b = *state;
    berth_blob_writer *w = NULL;
    char live_id[65], dead_id[65], other[65], *live_st = NULL, *dead_st = NULL;
    uint64_t removed = 0;
    if (!b->reap) {
        skip();
    }
    new_id(live_id);
    new_id(dead_id);
    new_id(other);
    assert_int_equal(b->writer_open(&w, b, live_id, NULL, 0), 0);
    write_pattern(w, 0, 3000, 1000, 17);
    sync_state(w, &live_st);
    w->close(w);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, dead_id, NULL, 0), 0);
    write_pattern(w, 0, 2000, 1000, 18);
    sync_state(w, &dead_st);
    w->close(w);

    const char *live[2] = {live_id, other}; /* `other` never existed */
    qsort(live, 2, sizeof(live[0]), cmp_str);

    /* nothing written more than an hour ago */
    assert_int_equal(b->reap(b, live, 2, 3600, &removed), 0);
    assert_int_equal(removed, 0);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, dead_id, dead_st, 2000), 0);
    w->close(w);

    /* a second later, everything not live goes */
    sleep(2);
    assert_int_equal(b->reap(b, live, 2, 0, &removed), 0);
    assert_true(removed >= 1);
    assert_int_equal(b->reap(b, live, 2, 0, NULL), 0);
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, dead_id, dead_st, 2000), BERTH_ENOTFOUND);

    /* the live one goes on */
    w = NULL;
    assert_int_equal(b->writer_open(&w, b, live_id, live_st, 3000), 0);
    write_pattern(w, 3000, 4000, 1000, 17);
    berth_digest d = pattern_digest(17, 4000);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    check_blob(b, &d, 4000);
    free(live_st);
    free(dead_st);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int blob_contract_run(const char *label, int (*open_fn)(berth_blob_backend **out, void *payload),
                      void *payload)
{
    const struct CMUnitTest tests[] = {
        T(test_blob__missing),
        T(test_blob__read_ranges),
        T(test_blob__empty_blob),
        T(test_blob__open_fd),
        T(test_blob__url),
        T(test_blob__remove),
        T(test_blob__foreach),
        T(test_blob__session_sync_close_reopen),
        T(test_blob__sync_before_any_write),
        T(test_blob__commit_without_sync),
        T(test_blob__commit_existing_keeps_bytes),
        T(test_blob__commit_refused_by_check),
        T(test_blob__abort),
        T(test_blob__ended_sessions_are_not_found),
        T(test_blob__unknown_session_is_not_found),
        T(test_blob__large_session),
        T(test_blob__exact_boundaries),
        T(test_blob__small_writes),
        T(test_blob__two_sessions_interleaved),
        T(test_blob__concurrent_sessions),
        T(test_blob__reap),
    };
    unsigned char rnd[4] = {0};
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, rnd, sizeof(rnd)) != (ssize_t)sizeof(rnd)) {
            memset(rnd, 0, sizeof(rnd));
        }
        close(fd);
    }
    snprintf(g.run, sizeof(g.run), "%02x%02x%02x%02x%04x", rnd[0], rnd[1], rnd[2], rnd[3],
             (unsigned)getpid() & 0xffff);
    g.open = open_fn;
    g.payload = payload;
    return cmocka_run_group_tests_name(label, tests, NULL, NULL);
}
