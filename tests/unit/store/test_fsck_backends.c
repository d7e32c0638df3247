/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fsck and du over backends other than fs (here the mem pair, as S3 + PostgreSQL are used):
 * fsck reads every blob of the blob backend through its digest and checks each repository's
 * links and manifests; du reports from the metadata, shared blobs apart.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "helpers/store_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static berth_digest push_image(berth_store *s, const char *repo, const char *tag,
                               const char *layer_text)
{
    berth_put_result res;
    berth_digest cfg = store_push_blob(s, repo, "{}");
    berth_digest layer = store_push_blob(s, repo, layer_text);
    const char *doc = oci_image_manifest(&cfg, 2, &layer, strlen(layer_text), NULL);
    assert_int_equal(berth_store_manifest_put(&res, s, repo, tag, NULL, doc, strlen(doc)), 0);
    return layer;
}

typedef struct seen {
    unsigned corrupt, missing, bad;
    char last[128];
} seen;

static void fsck_log(berth_fsck_kind kind, const char *repo, const char *digest, const char *detail,
                     void *payload)
{
    seen *s = payload;
    (void)repo;
    (void)detail;
    s->corrupt += kind == BERTH_FSCK_CORRUPT_BLOB;
    s->missing += kind == BERTH_FSCK_MISSING_BLOB;
    s->bad += kind == BERTH_FSCK_BAD_MANIFEST || kind == BERTH_FSCK_BAD_INDEX;
    snprintf(s->last, sizeof(s->last), "%s", digest ? digest : "");
}

/* Replace the bytes stored under `d` with others, as a damaged object store would. */
static void damage(berth_blob_backend *b, const berth_digest *d, const char *bytes)
{
    berth_blob_writer *w = NULL;
    assert_int_equal(b->remove(b, d), 0);
    assert_int_equal(b->writer_open(&w, b, "0dd", NULL, 0), 0);
    assert_int_equal(w->write(w, bytes, strlen(bytes)), 0);
    assert_int_equal(w->commit(w, d, NULL), 0);
}

static void test_fsck__sound_then_damaged(void **state)
{
    mem_store *f = *state;
    berth_fsck_stats stats;
    seen s;
    berth_digest a = push_image(f->store, "app", "v1", "layer of a");
    berth_digest b = push_image(f->store, "app", "v2", "layer of b");

    memset(&s, 0, sizeof(s));
    assert_int_equal(berth_store_fsck(f->store, false, fsck_log, &s, &stats), 0);
    assert_int_equal(stats.problems, 0);
    assert_int_equal(stats.blobs_checked, 3); /* "{}" once, two layers */
    assert_int_equal(stats.bytes_checked, 2 + 10 + 10);
    assert_int_equal(stats.manifests_checked, 2);

    damage(f->blobs, &a, "layer of A"); /* same size, other bytes */
    assert_int_equal(f->blobs->remove(f->blobs, &b), 0);
    memset(&s, 0, sizeof(s));
    assert_int_equal(berth_store_fsck(f->store, false, fsck_log, &s, &stats), 0);
    assert_int_equal(s.corrupt, 1); /* a's bytes */
    /* b linked without bytes; v1 needs the corrupt a, v2 the missing b */
    assert_int_equal(s.missing, 3);
    assert_int_equal(stats.problems, 4);
    /* repair is for fs stores */
    assert_int_equal(berth_store_fsck(f->store, true, fsck_log, &s, &stats), BERTH_EUNSUPPORTED);
}

typedef struct du_line {
    char repo[32];
    uint64_t exclusive, shared, blobs;
} du_line;

typedef struct du_seen {
    du_line lines[4];
    size_t n;
} du_seen;

static void du_log(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                   void *payload)
{
    du_seen *d = payload;
    assert_true(d->n < 4);
    snprintf(d->lines[d->n].repo, sizeof(d->lines[d->n].repo), "%s", repo);
    d->lines[d->n].exclusive = exclusive;
    d->lines[d->n].shared = shared;
    d->lines[d->n].blobs = blobs;
    d->n++;
}

static void test_du__from_metadata(void **state)
{
    mem_store *f = *state;
    du_seen d;
    uint64_t total = 0;
    berth_digest shared = store_push_blob(f->store, "a", "shared bytes"); /* 12 */
    store_push_blob(f->store, "a", "mine");                               /* 4 */
    assert_int_equal(berth_store_blob_mount(f->store, "b", "a", &shared), 0);
    store_push_blob(f->store, "b", "only b's"); /* 8 */

    memset(&d, 0, sizeof(d));
    assert_int_equal(berth_store_du(f->store, du_log, &d, &total), 0);
    assert_int_equal(total, 12 + 4 + 8);
    assert_int_equal(d.n, 2);
    assert_string_equal(d.lines[0].repo, "a");
    assert_int_equal(d.lines[0].exclusive, 4);
    assert_int_equal(d.lines[0].shared, 12);
    assert_int_equal(d.lines[0].blobs, 2);
    assert_string_equal(d.lines[1].repo, "b");
    assert_int_equal(d.lines[1].exclusive, 8);
    assert_int_equal(d.lines[1].shared, 12);
    assert_int_equal(d.lines[1].blobs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fsck__sound_then_damaged, mem_store_setup,
                                        mem_store_teardown),
        cmocka_unit_test_setup_teardown(test_du__from_metadata, mem_store_setup,
                                        mem_store_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
