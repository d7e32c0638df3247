/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of upload sessions: restore points (a refused request changes nothing), the
 * stored bytes checked at commit, the limits of open sessions, reaping of idle sessions, one
 * file per session, and the rebuild of a session of an earlier run without the store lock. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "base/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    char root[256];
    berth_store_options opts;
    berth_store *store;
} fixture;

static void reopen(fixture *f)
{
    berth_store_free(f->store);
    f->store = NULL;
    assert_int_equal(berth_store_open(&f->store, f->root, &f->opts), 0);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/berth-test-upload-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    berth_store_options_init(&f->opts);
    f->opts.fsync = false;
    reopen(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    berth_store_free(f->store);
    berth__fs_rmtree(f->root);
    free(f);
    return 0;
}

static berth_digest digest_of(const char *text)
{
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, strlen(text)), 0);
    return d;
}

/* The path of the bytes of session `id` (asserts there is exactly one such file). */
static void session_file(char *out, size_t size, const fixture *f, const char *id)
{
    char dir[512];
    DIR *d;
    struct dirent *e;
    int found = 0;

    snprintf(dir, sizeof(dir), "%s/_berth/uploads", f->root);
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, id) == 0) {
            snprintf(out, size, "%s/%s", dir, e->d_name);
            found++;
        }
    }
    closedir(d);
    assert_int_equal(found, 1);
}

static size_t entries(const fixture *f)
{
    char dir[512];
    DIR *d;
    struct dirent *e;
    size_t n = 0;

    snprintf(dir, sizeof(dir), "%s/_berth/uploads", f->root);
    d = opendir(dir);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n;
}

static void append_raw(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

typedef struct readback {
    unsigned char *p;
    size_t n, max;
} readback;

static int readback_sink(const void *data, size_t len, void *payload)
{
    readback *r = payload;
    assert_true(r->n + len <= r->max);
    memcpy(r->p + r->n, data, len);
    r->n += len;
    return 0;
}

static long long session_size(const fixture *f, const char *id)
{
    char path[1024];
    struct stat st;

    session_file(path, sizeof(path), f, id);
    assert_int_equal(stat(path, &st), 0);
    return (long long)st.st_size;
}

/*
 * Bytes are gathered into slices, written a slice at a time and hashed by a thread of the
 * handle's (issue 14): a few small writes reach the file in one write, at the flush; a session
 * of many slices written in 32 KiB pieces, rolled back after the thread started, then written
 * again, commits under its digest with its bytes.
 */
static void test_upload__writes_gather_into_slices(void **state)
{
    fixture *f = *state;
    size_t size = 3 * 1024 * 1024 + 12345, piece = 32 * 1024;
    unsigned char *data = malloc(size);
    readback back = {malloc(size), 0, size};
    char id[BERTH_UPLOAD_ID_MAX + 1];
    berth_upload *u = NULL;
    berth_digest d;

    for (size_t i = 0; i < size; i++) {
        data[i] = (unsigned char)(i * 2654435761u >> 13);
    }
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, size), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", "alice"), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    for (int i = 0; i < 10; i++) {
        assert_int_equal(berth_upload_write(u, data + i * 1000, 1000), 0);
    }
    assert_int_equal(berth_upload_size(u), 10000);
    assert_int_equal(session_size(f, id), 0); /* held in the slice */
    assert_int_equal(berth_upload_flush(u), 0);
    assert_int_equal(session_size(f, id), 10000);
    assert_int_equal(berth_upload_close(u), 0);
    /* a request that sends 2 MiB of wrong bytes (the thread hashes them) and is refused */
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    for (size_t off = 0; off < 2 * 1024 * 1024; off += piece) {
        assert_int_equal(berth_upload_write(u, data, piece), 0);
    }
    assert_int_equal(berth_upload_rollback(u), 0);
    assert_int_equal(berth_upload_size(u), 10000);
    for (size_t off = 10000; off < size; off += piece) {
        size_t n = size - off < piece ? size - off : piece;
        assert_int_equal(berth_upload_write(u, data + off, n), 0);
    }
    assert_int_equal(berth_upload_size(u), size);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    assert_int_equal(berth_store_blob_read(f->store, &d, 0, size, readback_sink, &back), 0);
    assert_int_equal(back.n, size);
    assert_memory_equal(back.p, data, size);
    free(data);
    free(back.p);
}

/* A write that fails (here: past the file size limit) fails that write or the flush, takes no
   more bytes, and a rollback brings the session back to its last close. */
static void test_upload__a_failed_slice_write_is_refused_and_rolled_back(void **state)
{
    fixture *f = *state;
    size_t size = 4 * 1024 * 1024, piece = 64 * 1024;
    unsigned char *data = calloc(1, size);
    char id[BERTH_UPLOAD_ID_MAX + 1];
    berth_upload *u = NULL;
    struct rlimit old, lim;
    int rc = 0;

    assert_int_equal(berth_store_upload_new(&u, f->store, "app", "alice"), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "kept", 4), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 1536 * 1024; /* a write past it fails with EFBIG */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (size_t off = 0; off < size && rc == 0; off += piece) {
        rc = berth_upload_write(u, data + off, piece);
    }
    if (rc == 0) {
        rc = berth_upload_flush(u);
    }
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_true(rc < 0);
    assert_true(berth_upload_write(u, "x", 1) < 0); /* no more bytes after a failure */
    assert_int_equal(berth_upload_rollback(u), 0);
    assert_int_equal(berth_upload_size(u), 4);
    assert_int_equal(session_size(f, id), 4);
    assert_int_equal(berth_upload_write(u, "more", 4), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(session_size(f, id), 8);
    free(data);
}

static void test_upload__rollback_restores_size_hash_and_bytes(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1], path[1024];
    struct stat st;
    berth_digest d = digest_of("abcdef");

    assert_int_equal(berth_store_upload_new(&u, f->store, "app", "alice"), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_close(u), 0);
    /* a request that wrote and was refused */
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, "XYZXYZ", 6), 0);
    assert_int_equal(berth_upload_size(u), 9);
    assert_int_equal(berth_upload_rollback(u), 0);
    assert_int_equal(berth_upload_size(u), 3);
    session_file(path, sizeof(path), f, id);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    assert_int_equal(berth_upload_write(u, "ZZ", 2), 0);
    assert_int_equal(berth_upload_abort(u), 0); /* the client went away */
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    /* then the right bytes: the hash went back too */
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), 3);
    assert_int_equal(berth_upload_write(u, "def", 3), 0);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    assert_int_equal(entries(f), 0);
}

static void test_upload__refused_commit_keeps_the_session(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1];
    berth_digest wrong = digest_of("nope"), right = digest_of("abcdef");
    uint64_t size;

    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, "def", 3), 0);
    assert_int_equal(berth_upload_commit(u, &wrong), BERTH_EMISMATCH);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), 3);
    assert_int_equal(berth_upload_write(u, "def", 3), 0);
    assert_int_equal(berth_upload_commit(u, &right), 0);
    assert_int_equal(berth_store_blob_stat(f->store, "app", &right, &size), 0);
    assert_int_equal(size, 6);
    /* a session this request made (a monolithic upload) is gone when refused */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_commit(u, &wrong), BERTH_EMISMATCH);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), BERTH_ENOTFOUND);
    assert_int_equal(entries(f), 0);
}

static void test_upload__commit_checks_the_stored_bytes(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1], path[1024];
    berth_digest d = digest_of("abc");
    uint64_t size;
    int fd;

    /* bytes on disk the session did not count (a crash mid-write): not part of the session,
       they are cut off when it is next opened */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_close(u), 0);
    session_file(path, sizeof(path), f, id);
    append_raw(path, "junk");
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), 3);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    assert_int_equal(berth_store_blob_stat(f->store, "app", &d, &size), 0);
    assert_int_equal(size, 3);

    /* a session rebuilt after a restart: the commit hashes what is stored */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app2", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_close(u), 0);
    reopen(f);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app2", id), 0);
    assert_int_equal(berth_upload_size(u), 3);
    session_file(path, sizeof(path), f, id);
    fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "abd", 3, 0), 3);
    close(fd);
    assert_int_equal(berth_upload_commit(u, &d), BERTH_EMISMATCH);
    assert_int_equal(berth_store_blob_stat(f->store, "app2", &d, &size), BERTH_ENOTFOUND);
}

/* A session costs two files: its bytes and its record (<id>.json). */
static void test_upload__two_files_per_session(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1], path[1024];
    struct stat st;
    uint64_t count = 0, bytes = 0;

    assert_int_equal(berth_store_upload_new(&u, f->store, "some/repo", "bob"), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "12345", 5), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(entries(f), 2);
    session_file(path, sizeof(path), f, id);
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(berth_store_uploads_usage(f->store, &count, &bytes), 0);
    assert_int_equal(count, 1);
    assert_int_equal(bytes, 5);
    /* another repository cannot use it */
    assert_int_equal(berth_store_upload_open(&u, f->store, "some/other", id), BERTH_ENOTFOUND);
}

static void test_upload__limits(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL, *keep = NULL;

    f->opts.upload_sessions_max = 3;
    f->opts.upload_sessions_per_repo = 2;
    f->opts.upload_sessions_per_owner = 1;
    reopen(f);
    assert_int_equal(berth_store_upload_new(&keep, f->store, "a", "alice"), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "b", "alice"), BERTH_EBUSY);
    assert_non_null(strstr(berth_error_last(), "too many upload sessions"));
    assert_int_equal(berth_store_upload_new(&u, f->store, "a", "bob"), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "a", "carol"), BERTH_EBUSY);
    assert_int_equal(berth_store_upload_new(&u, f->store, "b", "carol"), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "c", "dave"), BERTH_EBUSY);
    /* ending a session makes room */
    assert_int_equal(berth_upload_cancel(keep), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "c", "dave"), 0);
    assert_int_equal(berth_upload_close(u), 0);
    /* sessions of an earlier run count */
    reopen(f);
    assert_int_equal(berth_store_upload_new(&u, f->store, "d", "erin"), BERTH_EBUSY);
    assert_int_equal(entries(f), 6);
}

static void test_upload__idle_sessions_are_reaped(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL, *busy = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1];
    uint64_t removed = 0, count = 0, bytes = 0;

    f->opts.upload_ttl_seconds = 1;
    reopen(f);
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(berth_store_upload_new(&busy, f->store, "app", NULL), 0);
    assert_int_equal(berth_store_uploads_reap(f->store, &removed), 0);
    assert_int_equal(removed, 0);
    sleep(3);
    assert_int_equal(berth_store_uploads_reap(f->store, &removed), 0);
    assert_int_equal(removed, 1); /* not the one in use */
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_uploads_usage(f->store, &count, &bytes), 0);
    assert_int_equal(count, 1);
    assert_int_equal(berth_upload_write(busy, "x", 1), 0);
    assert_int_equal(berth_upload_close(busy), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload__rollback_restores_size_hash_and_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload__refused_commit_keeps_the_session, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload__commit_checks_the_stored_bytes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload__two_files_per_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload__limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload__writes_gather_into_slices, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_upload__a_failed_slice_write_is_refused_and_rolled_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload__idle_sessions_are_reaped, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
