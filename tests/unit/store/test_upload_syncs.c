/* SPDX-License-Identifier: Apache-2.0 */
/* The syncs an upload costs with fsync on (issue 14, many small layers), counted by this
 * program's own fsync(2) and fdatasync(2), which the static library's calls resolve to: a
 * POST, a PATCH of one small layer and the PUT that commits it; and that a session of no bytes
 * whose file a crash lost is taken up again; and that a POST refused at a limit leaves nothing
 * (the writer is opened before the record is made); that the file of a committed session's
 * record is the next session's record (one inode a small layer, not two); and that the first
 * PATCH fsyncs the directory unless the POST's record did so after the file was made. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "base/fs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fsyncs, fdatasyncs;

int fsync(int fd)
{
    fsyncs++;
    return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
    fdatasyncs++;
    return (int)syscall(SYS_fdatasync, fd);
}

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
    snprintf(f->root, sizeof(f->root), "/tmp/berth-test-syncs-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    berth_store_options_init(&f->opts);
    assert_true(f->opts.fsync);
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

static void counted(int *fs, int *fds)
{
    *fs = fsyncs;
    *fds = fdatasyncs;
    fsyncs = fdatasyncs = 0;
}

/* POST, PATCH of `len` bytes, PUT: the fsyncs and fdatasyncs of each in n[0..5]. */
static void one_layer(fixture *f, const char *data, size_t len, int n[6])
{
    berth_upload *u;
    berth_digest d;
    char id[80];

    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, len), 0);
    fsyncs = fdatasyncs = 0;
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    counted(&n[0], &n[1]);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, data, len), 0);
    assert_int_equal(berth_upload_close(u), 0);
    counted(&n[2], &n[3]);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    counted(&n[4], &n[5]);
}

static void test_upload_syncs__one_small_layer(void **state)
{
    fixture *f = *state;
    static char data[64 * 1024];
    int n[6];

    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (char)(i * 7 + 3);
    }
    one_layer(f, data, sizeof(data), n); /* the first makes the repository */
    data[0] ^= 1;
    one_layer(f, data, sizeof(data), n);
    /* POST: the record, durable (its file and its directory), written once with the writer's
       state in it, into the file the first layer's record left (fdatasync: no new inode); the
       session's empty file is not synced; the close after it writes nothing (it was 6 and 2,
       then 2 and 1, then 2 and 0) */
    assert_int_equal(n[0], 1);
    assert_int_equal(n[1], 1);
    /* PATCH: the bytes and the record; their file's entry was made durable by the fsync of
       the directory that made the POST's record durable (it was 1 and 1, then 2 and 1) */
    assert_int_equal(n[2], 1);
    assert_int_equal(n[3], 1);
    /* PUT: the pool's directory and the repository's link directory; the file was synced by
       the PATCH's handle and nothing changed it since (it was 3) */
    assert_int_equal(n[4], 2);
    assert_int_equal(n[5], 0);
}

/* A refused request's cut back is made durable when its handle goes, so the commit that
   follows trusts the file; a file of an earlier run is fsynced again at commit. */
static void test_upload_syncs__cut_back_and_earlier_run(void **state)
{
    fixture *f = *state;
    const char *text = "the acknowledged bytes";
    berth_upload *u;
    berth_digest d;
    char id[80], back[64];
    uint64_t size = 0;
    int fs, fds, fd = -1, n[6];

    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, strlen(text)), 0);
    one_layer(f, "the repository's first", 22, n); /* makes the repository */
    for (int run = 0; run < 2; run++) {
        assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
        snprintf(id, sizeof(id), "%s", berth_upload_id(u));
        assert_int_equal(berth_upload_close(u), 0);
        assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
        assert_int_equal(berth_upload_write(u, text, strlen(text)), 0);
        assert_int_equal(berth_upload_close(u), 0);
        /* a refused request: its bytes are cut off, and the cut is synced as the handle goes */
        assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
        assert_int_equal(berth_upload_write(u, "more bytes", 10), 0);
        assert_int_equal(berth_upload_flush(u), 0);
        fsyncs = fdatasyncs = 0;
        assert_int_equal(berth_upload_abort(u), 0);
        counted(&fs, &fds);
        assert_int_equal(fs, 1);
        if (run == 1) {
            reopen(f); /* another run: the file is fsynced again at commit */
        }
        assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
        assert_int_equal(berth_upload_commit(u, &d), 0);
        counted(&fs, &fds);
        assert_int_equal(fs, run == 0 ? 2 : 3);
        assert_int_equal(berth_store_blob_open(f->store, "app", &d, &fd, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)strlen(text));
        assert_memory_equal(back, text, strlen(text));
        close(fd);
        assert_int_equal(berth_store_blob_delete(f->store, "app", &d), 0);
    }
}

static void test_upload_syncs__empty_session_file_lost(void **state)
{
    fixture *f = *state;
    const char *text = "bytes after the crash";
    berth_upload *u;
    berth_digest d;
    char id[80], path[512], back[64];
    uint64_t size = 1;
    int fd = -1;

    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, strlen(text)), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    /* a crash lost the file the POST did not sync; the record was synced */
    snprintf(path, sizeof(path), "%s/_berth/uploads/%s", f->root, id);
    assert_int_equal(unlink(path), 0);
    reopen(f);
    assert_int_equal(berth_store_upload_stat(f->store, "app", id, &size), 0);
    assert_int_equal(size, 0);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, text, strlen(text)), 0);
    assert_int_equal(berth_upload_close(u), 0);
    reopen(f);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), strlen(text));
    assert_int_equal(berth_upload_commit(u, &d), 0);
    assert_int_equal(berth_store_blob_open(f->store, "app", &d, &fd, &size), 0);
    assert_int_equal(size, strlen(text));
    assert_int_equal(read(fd, back, sizeof(back)), (ssize_t)strlen(text));
    assert_memory_equal(back, text, strlen(text));
    close(fd);
}

/* The names in the uploads directory, as "a,b,...", in the directory's order. */
static int uploads_entries(const fixture *f, char *out, size_t size)
{
    char path[512];
    struct dirent *e;
    DIR *d;
    int n = 0;

    snprintf(path, sizeof(path), "%s/_berth/uploads", f->root);
    assert_non_null(d = opendir(path));
    out[0] = '\0';
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') {
            size_t used = strlen(out);
            snprintf(out + used, size - used, "%s,", e->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

static void test_upload_syncs__refused_post_leaves_nothing(void **state)
{
    fixture *f = *state;
    berth_upload *u, *v = NULL;
    char id[80], path[512], before[1024], after[1024], text[8192];
    FILE *fp;
    size_t len;

    f->opts.upload_sessions_max = 1;
    reopen(f);
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    /* the record is written once, and holds the writer's state from the start */
    snprintf(path, sizeof(path), "%s/_berth/uploads/%s.json", f->root, id);
    assert_non_null(fp = fopen(path, "rb"));
    len = fread(text, 1, sizeof(text) - 1, fp);
    fclose(fp);
    for (size_t i = 0; i < len; i++) {
        text[i] = text[i] ? text[i] : ' '; /* the slots' padding */
    }
    text[len] = '\0';
    assert_non_null(strstr(text, "\"backend_state\":\"fs:"));
    assert_int_equal(uploads_entries(f, before, sizeof(before)), 2); /* <id> and <id>.json */
    assert_int_equal(berth_store_upload_new(&v, f->store, "app", NULL), BERTH_EBUSY);
    assert_null(v);
    assert_int_equal(uploads_entries(f, after, sizeof(after)), 2);
    assert_string_equal(after, before);
}

static void test_upload_syncs__record_file_reused(void **state)
{
    fixture *f = *state;
    berth_upload *u;
    char id[80], path[512], names[1024];
    struct stat kept, rec;
    int n[6];

    one_layer(f, "the first layer", 15, n);
    /* the committed session's record file is kept in _berth/tmp */
    snprintf(path, sizeof(path), "%s/_berth/tmp/record.0", f->root);
    assert_int_equal(stat(path, &kept), 0);
    assert_int_equal(kept.st_size, 8192);
    /* and it is the next session's record */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_not_equal(stat(path, &rec), 0);
    snprintf(path, sizeof(path), "%s/_berth/uploads/%s.json", f->root, id);
    assert_int_equal(stat(path, &rec), 0);
    assert_int_equal(rec.st_ino, kept.st_ino);
    assert_int_equal(uploads_entries(f, names, sizeof(names)), 2);
    /* it reads back after a restart, and the session goes on */
    reopen(f);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, "bytes", 5), 0);
    assert_int_equal(berth_upload_close(u), 0);
    reopen(f);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), 5);
    assert_int_equal(berth_upload_cancel(u), 0);
}

/* The fsyncs of the first PATCH of a new session (a small write, then close). */
static int first_patch_fsyncs(fixture *f, const char *id)
{
    berth_upload *u;
    int fs, fds;

    fsyncs = fdatasyncs = 0;
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_write(u, "bytes", 5), 0);
    assert_int_equal(berth_upload_close(u), 0);
    counted(&fs, &fds);
    assert_int_equal(fds, 1); /* the record */
    return fs;
}

static void test_upload_syncs__first_patch_entry(void **state)
{
    fixture *f = *state;
    berth_upload *u;
    char id[80], path[512];

    /* made in this run, its record made durable after it: the file's fsync only */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    assert_int_equal(first_patch_fsyncs(f, id), 1);
    /* the file gone (as a crash loses it) and made again by the PATCH: the directory too */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    snprintf(path, sizeof(path), "%s/_berth/uploads/%s", f->root, id);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(first_patch_fsyncs(f, id), 2);
    /* a session of an earlier run: the directory too */
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_close(u), 0);
    reopen(f);
    assert_int_equal(first_patch_fsyncs(f, id), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_upload_syncs__one_small_layer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_syncs__cut_back_and_earlier_run, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload_syncs__empty_session_file_lost, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload_syncs__refused_post_leaves_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_upload_syncs__record_file_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_syncs__first_patch_entry, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
