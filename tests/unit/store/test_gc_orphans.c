/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Garbage collection of orphans: bytes stored in the blob backend that no metadata recorded
 * (a process killed between the commit and the record). Over the mem backends a collection
 * records an orphan older than the grace period, does not record it again, and a collection
 * after the grace period removes it; linked blobs and young bytes stay, and a commit that
 * records the digest meanwhile keeps the bytes. On an fs root a pool file no repository links
 * is removed by one collection (the pool is its own record).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "helpers/store_helpers.h"
#include "base/fs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utime.h>

/* Bytes committed to the blob backend alone, as a process killed before the record leaves. */
static berth_digest put_direct(berth_blob_backend *b, const char *id, const char *data)
{
    berth_blob_writer *w = NULL;
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, strlen(data)), 0);
    assert_int_equal(b->writer_open(&w, b, id, NULL, 0), 0);
    assert_int_equal(w->write(w, data, strlen(data)), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    return d;
}

/* A tagged manifest of a config and `layer` (of `len` bytes): what keeps a blob's link. */
static void tag_image(berth_store *s, const char *repo, const char *tag, const berth_digest *layer,
                      size_t len)
{
    berth_put_result res;
    berth_digest cfg = store_push_blob(s, repo, "{}");
    const char *doc = oci_image_manifest(&cfg, 2, layer, len, NULL);
    assert_int_equal(berth_store_manifest_put(&res, s, repo, tag, NULL, doc, strlen(doc)), 0);
}

static bool stored(berth_blob_backend *b, const berth_digest *d)
{
    uint64_t size;
    int rc = b->stat(b, d, &size);
    assert_true(rc == 0 || rc == BERTH_ENOTFOUND);
    return rc == 0;
}

static void gc(berth_store *s, bool dry_run, berth_gc_stats *stats)
{
    berth_gc_options opts;
    berth_gc_options_init(&opts);
    opts.grace_seconds = 3;
    opts.dry_run = dry_run;
    assert_int_equal(berth_store_gc(s, &opts, stats), 0);
}

static void test_gc__orphans_recorded_then_removed(void **state)
{
    mem_store *f = *state;
    berth_gc_stats stats;
    berth_digest orphan = put_direct(f->blobs, "0a01", "bytes nobody recorded");
    berth_digest linked = store_push_blob(f->store, "app", "a linked blob");
    tag_image(f->store, "app", "v1", &linked, 13);
    berth_digest pending = put_direct(f->blobs, "0a02", "bytes of a commit in flight");

    sleep(4); /* all three are older than the grace period now */
    /* the commit of `pending` records its digest before it links it (as upload.c does) */
    assert_int_equal(f->meta->blob_touch(f->meta, &pending, 27), 0);

    gc(f->store, true, &stats); /* a dry run records nothing */
    assert_int_equal(stats.orphans_found, 1);
    gc(f->store, false, &stats);
    assert_int_equal(stats.orphans_found, 1); /* `orphan` only */
    assert_int_equal(stats.blobs_removed, 0);
    assert_true(stored(f->blobs, &orphan));
    /* recorded once: a collection within the grace period neither records it again (which
       would put its removal off for ever) nor removes it */
    gc(f->store, false, &stats);
    assert_int_equal(stats.orphans_found, 0);
    assert_int_equal(stats.blobs_removed, 0);
    assert_true(stored(f->blobs, &orphan));

    /* the commit in flight links its blob */
    assert_int_equal(f->meta->blob_link(f->meta, "app", &pending, 27), 0);
    tag_image(f->store, "app", "v2", &pending, 27);
    sleep(4);
    gc(f->store, false, &stats);
    assert_int_equal(stats.blobs_removed, 1);
    assert_int_equal(stats.orphans_found, 0);
    assert_false(stored(f->blobs, &orphan));
    assert_true(stored(f->blobs, &linked));
    assert_true(stored(f->blobs, &pending));
    /* and nothing more goes */
    sleep(4);
    gc(f->store, false, &stats);
    assert_int_equal(stats.blobs_removed, 0);
    assert_int_equal(stats.orphans_found, 0);
    assert_true(stored(f->blobs, &linked));
    assert_true(stored(f->blobs, &pending));
}

static void test_gc__young_orphan_waits(void **state)
{
    mem_store *f = *state;
    berth_gc_stats stats;
    berth_gc_options opts;
    berth_digest young = put_direct(f->blobs, "0b01", "just stored");

    berth_gc_options_init(&opts); /* one hour of grace */
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.orphans_found, 0);
    assert_true(stored(f->blobs, &young));
}

/* A commit of an orphan's digest after it was recorded keeps the bytes. */
static void test_gc__orphan_committed_again_stays(void **state)
{
    mem_store *f = *state;
    berth_gc_stats stats;
    berth_digest d = put_direct(f->blobs, "0c01", "pushed again");

    sleep(4);
    gc(f->store, false, &stats);
    assert_int_equal(stats.orphans_found, 1);
    assert_int_equal(store_push_blob(f->store, "app", "pushed again").alg, d.alg);
    tag_image(f->store, "app", "v1", &d, 12);
    sleep(4);
    gc(f->store, false, &stats);
    assert_int_equal(stats.blobs_removed, 0);
    assert_true(stored(f->blobs, &d));
}

/* fs: a pool file no repository links goes in one collection. */
static void test_gc__fs_pool_orphan(void **state)
{
    char root[64], path[512];
    berth_store_options so;
    berth_store *s = NULL;
    berth_gc_stats stats;
    berth_digest d;
    struct utimbuf old = {0, 0};
    FILE *fp;
    (void)state;

    snprintf(root, sizeof(root), "/tmp/berth-test-orphan-XXXXXX");
    assert_non_null(mkdtemp(root));
    berth_store_options_init(&so);
    so.fsync = false;
    assert_int_equal(berth_store_open(&s, root, &so), 0);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "pool orphan", 11), 0);
    snprintf(path, sizeof(path), "%s/_berth/blobs/sha256/%s", root, berth_digest_hex(&d));
    fp = fopen(path, "wb");
    assert_non_null(fp);
    fputs("pool orphan", fp);
    fclose(fp);
    old.actime = old.modtime = time(NULL) - 100;
    assert_int_equal(utime(path, &old), 0);
    sleep(4); /* its ctime too */
    gc(s, false, &stats);
    assert_int_equal(stats.blobs_removed, 1);
    assert_int_not_equal(access(path, F_OK), 0);
    berth_store_free(s);
    berth__fs_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_gc__orphans_recorded_then_removed, mem_store_setup,
                                        mem_store_teardown),
        cmocka_unit_test_setup_teardown(test_gc__young_orphan_waits, mem_store_setup,
                                        mem_store_teardown),
        cmocka_unit_test_setup_teardown(test_gc__orphan_committed_again_stays, mem_store_setup,
                                        mem_store_teardown),
        cmocka_unit_test(test_gc__fs_pool_orphan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
