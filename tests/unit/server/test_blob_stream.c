/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the streamed blob GET (src/server/api_blobs.c, stream_*): a daemon on port 0
 * over a store whose blob backend is the mem backend behind a wrapper that hides descriptors
 * and URLs (so blobs are streamed, as from S3), counts the reads and can fail one midway.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "backend/mem/mem.h"

#include <berth/digest.h>
#include <berth/errors.h>
#include <berth/server.h>
#include <berth/store.h>
#include <berth/sys/blob_backend.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BLOB_SIZE (8u * 1024 * 1024 + 12345)
#define PIECE     (64u * 1024)

/* ---- the wrapper backend ------------------------------------------------------------------- */

typedef struct wrap {
    berth_blob_backend base;
    berth_blob_backend *inner;
    atomic_uint reads;     /* read() calls of more than 0 bytes */
    atomic_int active;     /* read() calls running */
    atomic_ullong fail_at; /* a read fails once it has given this many bytes (0: never) */
} wrap;

typedef struct piece_ctx {
    wrap *w;
    berth_blob_sink sink;
    void *payload;
    uint64_t given;
    bool failed;
} piece_ctx;

/* Hand the inner backend's bytes on in pieces, as a network read would, failing at fail_at. */
static int pieces(const void *data, size_t len, void *p)
{
    piece_ctx *x = p;
    const char *d = data;
    unsigned long long fail_at = atomic_load(&x->w->fail_at);

    while (len > 0) {
        size_t n = len < PIECE ? len : PIECE;
        int rc;
        if (fail_at && x->given + n > fail_at) {
            x->failed = true;
            return 1;
        }
        if ((rc = x->sink(d, n, x->payload)) != 0) {
            return rc;
        }
        x->given += n;
        d += n;
        len -= n;
    }
    return 0;
}

static int w_stat(berth_blob_backend *b, const berth_digest *d, uint64_t *size)
{
    wrap *w = (wrap *)b;
    return w->inner->stat(w->inner, d, size);
}

static int w_read(berth_blob_backend *b, const berth_digest *d, uint64_t offset, uint64_t len,
                  berth_blob_sink sink, void *payload)
{
    wrap *w = (wrap *)b;
    piece_ctx x = {w, sink, payload, 0, false};
    int rc;

    if (len > 0) {
        atomic_fetch_add(&w->reads, 1);
    }
    atomic_fetch_add(&w->active, 1);
    rc = w->inner->read(w->inner, d, offset, len, pieces, &x);
    if (x.failed) {
        rc = berth_error_set(BERTH_ENETWORK, "the test's backend broke off");
    }
    atomic_fetch_sub(&w->active, 1);
    return rc;
}

static int w_remove(berth_blob_backend *b, const berth_digest *d)
{
    wrap *w = (wrap *)b;
    return w->inner->remove(w->inner, d);
}

static int w_foreach(berth_blob_backend *b, berth_blob_each_cb cb, void *payload)
{
    wrap *w = (wrap *)b;
    return w->inner->foreach (w->inner, cb, payload);
}

static int w_writer_open(berth_blob_writer **out, berth_blob_backend *b, const char *id,
                         const char *state, uint64_t size)
{
    wrap *w = (wrap *)b;
    int rc = w->inner->writer_open(out, w->inner, id, state, size);
    if (rc == 0) {
        (*out)->backend = b;
    }
    return rc;
}

static void w_free(berth_blob_backend *b)
{
    wrap *w = (wrap *)b;
    w->inner->free(w->inner);
    free(w);
}

static wrap *wrap_new(void)
{
    wrap *w = calloc(1, sizeof(*w));
    assert_non_null(w);
    assert_int_equal(berth_mem_blob_backend_new(&w->inner), 0);
    w->base = (berth_blob_backend){.version = BERTH_BLOB_BACKEND_VERSION,
                                   .name = "wrap",
                                   .stat = w_stat,
                                   .read = w_read,
                                   .remove = w_remove,
                                   .foreach = w_foreach,
                                   .writer_open = w_writer_open,
                                   .free = w_free};
    return w;
}

/* ---- the fixture --------------------------------------------------------------------------- */

typedef struct fixture {
    wrap *w;
    berth_store *store;
    berth_server *srv;
    unsigned char *blob;
    berth_digest digest;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    berth_meta_backend *meta = NULL;
    berth_server_options opts;
    berth_upload *u = NULL;

    assert_non_null(f);
    f->w = wrap_new();
    assert_int_equal(berth_mem_meta_backend_new(&meta), 0);
    assert_int_equal(berth_store_open_backends(&f->store, &f->w->base, meta, NULL), 0);
    f->blob = malloc(BLOB_SIZE);
    assert_non_null(f->blob);
    srand(7);
    for (size_t i = 0; i < BLOB_SIZE; i++) {
        f->blob[i] = (unsigned char)rand();
    }
    assert_int_equal(berth_digest_buffer(&f->digest, BERTH_DIGEST_SHA256, f->blob, BLOB_SIZE), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "a/b", NULL), 0);
    assert_int_equal(berth_upload_write(u, f->blob, BLOB_SIZE), 0);
    assert_int_equal(berth_upload_commit(u, &f->digest), 0);
    berth_server_options_init(&opts);
    opts.port = 0;
    opts.threads = 2;
    opts.log = false;
    assert_int_equal(berth_server_start(&f->srv, f->store, &opts), 0);
    atomic_store(&f->w->reads, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    berth_server_stop(f->srv);
    berth_server_free(f->srv);
    berth_store_free(f->store);
    free(f->blob);
    free(f);
    return 0;
}

static int dial(uint16_t port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

/* GET the blob (with `extra` header lines) and read the whole answer until the server closes. */
static void get(fixture *f, const char *extra, berth_buf *out)
{
    char req[512], chunk[65536];
    ssize_t n;
    int fd = dial(berth_server_port(f->srv));

    snprintf(req, sizeof(req),
             "GET /v2/a/b/blobs/%s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n",
             f->digest.str, extra);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
        assert_int_equal(berth_buf_put(out, chunk, (size_t)n), 0);
    }
    close(fd);
}

/* The body of an answer in `resp` (after the blank line), and its length. */
static const char *body_of(const berth_buf *resp, size_t *len)
{
    const char *end = strstr(resp->ptr, "\r\n\r\n");
    assert_non_null(end);
    *len = resp->len - (size_t)(end + 4 - resp->ptr);
    return end + 4;
}

/* The whole blob comes through one read of the backend (one GetObject for S3), not a read per
 * window. */
static void test_blob_stream__whole_blob_in_one_read(void **state)
{
    fixture *f = *state;
    berth_buf resp = BERTH_BUF_INIT;
    char want[64];
    size_t len;
    const char *body;

    get(f, "", &resp);
    assert_int_equal(berth_buf_put(&resp, "", 1), 0); /* for strstr */
    resp.len--;
    assert_memory_equal(resp.ptr, "HTTP/1.1 200", 12);
    snprintf(want, sizeof(want), "Content-Length: %u\r\n", BLOB_SIZE);
    assert_non_null(strstr(resp.ptr, want));
    body = body_of(&resp, &len);
    assert_int_equal(len, BLOB_SIZE);
    assert_memory_equal(body, f->blob, BLOB_SIZE);
    assert_int_equal(atomic_load(&f->w->reads), 1);
    berth_buf_dispose(&resp);
}

static void test_blob_stream__range_in_one_read(void **state)
{
    fixture *f = *state;
    berth_buf resp = BERTH_BUF_INIT;
    char want[96];
    size_t len;
    const char *body;
    const unsigned start = 1000, end = 5u * 1024 * 1024 + 17;

    get(f, "Range: bytes=1000-5242897\r\n", &resp);
    assert_int_equal(berth_buf_put(&resp, "", 1), 0);
    resp.len--;
    assert_memory_equal(resp.ptr, "HTTP/1.1 206", 12);
    snprintf(want, sizeof(want), "Content-Range: bytes %u-%u/%u\r\n", start, end, BLOB_SIZE);
    assert_non_null(strstr(resp.ptr, want));
    body = body_of(&resp, &len);
    assert_int_equal(len, end - start + 1);
    assert_memory_equal(body, f->blob + start, len);
    assert_int_equal(atomic_load(&f->w->reads), 1);

    /* the last bytes, from an offset that is not a multiple of anything */
    berth_buf_clear(&resp);
    get(f, "Range: bytes=8388000-\r\n", &resp);
    assert_int_equal(berth_buf_put(&resp, "", 1), 0);
    resp.len--;
    assert_memory_equal(resp.ptr, "HTTP/1.1 206", 12);
    body = body_of(&resp, &len);
    assert_int_equal(len, BLOB_SIZE - 8388000u);
    assert_memory_equal(body, f->blob + 8388000u, len);
    berth_buf_dispose(&resp);
}

/* The backend breaking off midway: the client gets fewer bytes than the Content-Length said
 * (the connection is closed), never a short body presented as whole. */
static void test_blob_stream__failure_midway_cuts_the_response(void **state)
{
    fixture *f = *state;
    berth_buf resp = BERTH_BUF_INIT;
    size_t len;
    const char *body;

    atomic_store(&f->w->fail_at, 3u * 1024 * 1024 + 100);
    get(f, "", &resp);
    assert_int_equal(berth_buf_put(&resp, "", 1), 0);
    resp.len--;
    assert_memory_equal(resp.ptr, "HTTP/1.1 200", 12);
    body = body_of(&resp, &len);
    assert_true(len < BLOB_SIZE);
    assert_true(len <= 3u * 1024 * 1024 + 100);
    assert_memory_equal(body, f->blob, len);

    /* and the next GET is whole again */
    atomic_store(&f->w->fail_at, 0);
    berth_buf_clear(&resp);
    get(f, "", &resp);
    body = body_of(&resp, &len);
    assert_int_equal(len, BLOB_SIZE);
    berth_buf_dispose(&resp);
}

/* A client that goes away after the first bytes: the read ends (nothing left running, nothing
 * leaked: the sanitizer builds check the memory), and the server goes on serving. */
static void test_blob_stream__client_gone(void **state)
{
    fixture *f = *state;
    char req[512], chunk[65536];
    berth_buf resp = BERTH_BUF_INIT;
    struct timespec ts = {0, 10 * 1000 * 1000};
    size_t len;
    int fd;

    for (int round = 0; round < 5; round++) {
        fd = dial(berth_server_port(f->srv));
        snprintf(req, sizeof(req), "GET /v2/a/b/blobs/%s HTTP/1.1\r\nHost: x\r\n\r\n",
                 f->digest.str);
        assert_int_equal(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        assert_true(read(fd, chunk, sizeof(chunk)) > 0);
        close(fd);
    }
    for (int i = 0; i < 500 && atomic_load(&f->w->active) > 0; i++) {
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&f->w->active), 0);
    get(f, "", &resp);
    body_of(&resp, &len);
    assert_int_equal(len, BLOB_SIZE);
    berth_buf_dispose(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blob_stream__whole_blob_in_one_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_stream__range_in_one_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blob_stream__failure_midway_cuts_the_response, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_blob_stream__client_gone, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
