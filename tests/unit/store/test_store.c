/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the store on a fresh temporary root: blobs, uploads, manifests, tags,
 * referrers, persistence across a reopen, and the name-to-directory mapping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "base/fs.h"
#include "helpers/store_helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char root[256];
    berth_store *store;
} fixture;

static berth_store *open_store(const char *root)
{
    berth_store_options opts;
    berth_store *s = NULL;
    berth_store_options_init(&opts);
    opts.fsync = false; /* the tests check semantics, not durability */
    assert_int_equal(berth_store_open(&s, root, &opts), 0);
    return s;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/berth-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    f->store = open_store(f->root);
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

static void reopen(fixture *f)
{
    berth_store_free(f->store);
    f->store = open_store(f->root);
}

static int collect(const char *name, void *payload)
{
    berth_buf *out = payload;
    assert_int_equal(berth_buf_printf(out, "%s,", name), 0);
    return 0;
}

static void read_blob(berth_store *s, const char *repo, const berth_digest *d, const char *want)
{
    char got[256] = {0};
    uint64_t size;
    int fd;
    assert_int_equal(berth_store_blob_open(s, repo, d, &fd, &size), 0);
    assert_int_equal(size, strlen(want));
    assert_int_equal(read(fd, got, sizeof(got) - 1), (ssize_t)strlen(want));
    close(fd);
    assert_string_equal(got, want);
}

static void test_store__blob_upload_and_read(void **state)
{
    fixture *f = *state;
    berth_digest d = store_push_blob(f->store, "library/app", "hello layer");
    uint64_t size = 0;
    char pool[512];
    struct stat st;

    read_blob(f->store, "library/app", &d, "hello layer");
    assert_int_equal(berth_store_blob_stat(f->store, "library/app", &d, &size), 0);
    assert_int_equal(size, 11);
    assert_true(berth_store_repo_exists(f->store, "library/app"));
    /* one copy on disk: the pool file and the repository's link share an inode */
    snprintf(pool, sizeof(pool), "%s/_berth/blobs/sha256/%s", f->root, berth_digest_hex(&d));
    assert_int_equal(stat(pool, &st), 0);
    assert_int_equal(st.st_nlink, 2);
    /* another repository does not see it until it is mounted */
    assert_int_equal(berth_store_blob_stat(f->store, "other", &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_mount(f->store, "other", "library/app", &d), 0);
    read_blob(f->store, "other", &d, "hello layer");
    assert_int_equal(stat(pool, &st), 0);
    assert_int_equal(st.st_nlink, 3);
    assert_int_equal(berth_store_blob_mount(f->store, "third", "nowhere", &d), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_delete(f->store, "other", &d), 0);
    assert_int_equal(berth_store_blob_stat(f->store, "other", &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_delete(f->store, "other", &d), BERTH_ENOTFOUND);
}

static void test_store__upload_digest_mismatch(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL, *again = NULL;
    berth_digest wrong;
    char id[BERTH_UPLOAD_ID_MAX + 1];
    uint64_t size;

    assert_int_equal(berth_digest_buffer(&wrong, BERTH_DIGEST_SHA256, "x", 1), 0);
    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_upload_write(u, "abc", 3), 0);
    assert_int_equal(berth_upload_commit(u, &wrong), BERTH_EMISMATCH);
    assert_non_null(strstr(berth_error_last(), "not sha256:"));
    assert_int_equal(berth_store_upload_open(&again, f->store, "app", id), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_stat(f->store, "app", &wrong, &size), BERTH_ENOTFOUND);
}

static void test_store__upload_resumes_after_restart(void **state)
{
    fixture *f = *state;
    berth_upload *u = NULL, *busy = NULL;
    berth_digest d;
    char id[BERTH_UPLOAD_ID_MAX + 1];

    assert_int_equal(berth_store_upload_new(&u, f->store, "app", NULL), 0);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    assert_int_equal(berth_store_upload_open(&busy, f->store, "app", id), BERTH_EBUSY);
    assert_int_equal(berth_upload_write(u, "first half, ", 12), 0);
    assert_int_equal(berth_upload_close(u), 0);
    reopen(f);
    assert_int_equal(berth_store_upload_open(&u, f->store, "other", id), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", id), 0);
    assert_int_equal(berth_upload_size(u), 12);
    assert_int_equal(berth_upload_write(u, "second half", 11), 0);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "first half, second half", 23),
                     0);
    assert_int_equal(berth_upload_commit(u, &d), 0);
    read_blob(f->store, "app", &d, "first half, second half");
    assert_int_equal(berth_store_upload_open(&u, f->store, "app", "zz"), BERTH_ENOTFOUND);
}

static void test_store__manifest_put_get_tags(void **state)
{
    fixture *f = *state;
    const berth_stored_manifest *m = NULL;
    berth_put_result res;
    berth_digest cfg, layer, mdig;
    char *doc;
    berth_buf names = BERTH_BUF_INIT;
    bool more;

    cfg = store_push_blob(f->store, "app", "{}");
    /* a layer that is not there yet: refused, naming it */
    assert_int_equal(berth_digest_buffer(&layer, BERTH_DIGEST_SHA256, "layer", 5), 0);
    doc = oci_image_manifest(&cfg, 2, &layer, 5, NULL);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v1", NULL, doc, strlen(doc)),
                     BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), layer.str));
    store_push_blob(f->store, "app", "layer");
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v1", NULL, doc, strlen(doc)),
                     0);
    assert_int_equal(berth_digest_buffer(&mdig, BERTH_DIGEST_SHA256, doc, strlen(doc)), 0);
    assert_string_equal(res.digest.str, mdig.str);
    assert_false(res.has_subject);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v2", NULL, doc, strlen(doc)),
                     0);
    assert_int_equal(
        berth_store_manifest_put(&res, f->store, "app", "latest", NULL, doc, strlen(doc)), 0);
    /* by digest: must match the bytes */
    assert_int_equal(
        berth_store_manifest_put(&res, f->store, "app", cfg.str, NULL, doc, strlen(doc)),
        BERTH_EMISMATCH);
    assert_int_equal(
        berth_store_manifest_put(&res, f->store, "app", "bad tag!", NULL, doc, strlen(doc)),
        BERTH_EINVALID);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v3", NULL, "{not json", 9),
                     BERTH_EINVALID);

    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(berth_store_manifest_get(&m, f->store, "app", "v1"), 0);
        assert_int_equal(m->len, strlen(doc));
        assert_memory_equal(m->data, doc, m->len);
        assert_string_equal(m->media_type, "application/vnd.oci.image.manifest.v1+json");
        assert_string_equal(m->digest.str, mdig.str);
        berth_manifest_release(m);
        assert_int_equal(berth_store_manifest_get(&m, f->store, "app", mdig.str), 0);
        berth_manifest_release(m);
        berth_buf_clear(&names);
        assert_int_equal(berth_store_tags(f->store, "app", NULL, 0, collect, &names, &more), 0);
        assert_string_equal(berth_buf_cstr(&names), "latest,v1,v2,");
        assert_false(more);
        berth_buf_clear(&names);
        assert_int_equal(berth_store_tags(f->store, "app", "latest", 1, collect, &names, &more), 0);
        assert_string_equal(berth_buf_cstr(&names), "v1,");
        assert_true(more);
        reopen(f); /* the second pass reads everything back from disk */
    }
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", "nope"), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "nope", "v1"), BERTH_ENOTFOUND);

    /* deleting a tag keeps the manifest; deleting the manifest takes its tags */
    assert_int_equal(berth_store_tag_delete(f->store, "app", "v2"), 0);
    assert_int_equal(berth_store_tag_delete(f->store, "app", "v2"), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", mdig.str), 0);
    berth_manifest_release(m);
    assert_int_equal(berth_store_manifest_delete(f->store, "app", &mdig), 0);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", "v1"), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_manifest_delete(f->store, "app", &mdig), BERTH_ENOTFOUND);
    reopen(f);
    berth_buf_clear(&names);
    assert_int_equal(berth_store_tags(f->store, "app", NULL, 0, collect, &names, &more), 0);
    assert_string_equal(berth_buf_cstr(&names), "");
    berth_buf_dispose(&names);
}

/* berth_store_blobs and berth_store_manifests: what `berth import` copies. */
typedef struct listing {
    berth_buf text;
    int calls;
    int stop_at; /* return 7 on this call (0: never) */
} listing;

static int list_blob(const berth_digest *d, uint64_t size, void *payload)
{
    listing *l = payload;
    assert_int_equal(berth_buf_printf(&l->text, "%s=%llu,", d->str, (unsigned long long)size), 0);
    return ++l->calls == l->stop_at ? 7 : 0;
}

static int list_manifest(const berth_meta_manifest *m, void *payload)
{
    listing *l = payload;
    assert_int_equal(berth_buf_printf(&l->text, "%s %s %zu %d %u|", m->digest.str, m->media_type,
                                      m->nchildren, m->has_subject, m->ntags),
                     0);
    for (size_t i = 0; i < m->nchildren; i++) {
        assert_int_equal(berth_buf_printf(&l->text, "child %s|", m->children[i].str), 0);
    }
    return ++l->calls == l->stop_at ? 7 : 0;
}

static void test_store__list_blobs_and_manifests(void **state)
{
    fixture *f = *state;
    listing l = {BERTH_BUF_INIT, 0, 0};
    berth_put_result res;
    berth_digest cfg, layer, img, idx;
    char *doc, index[1024], want[2048];
    size_t doclen;

    cfg = store_push_blob(f->store, "app", "{}");
    layer = store_push_blob(f->store, "app", "layer");
    doc = oci_image_manifest(&cfg, 2, &layer, 5, NULL);
    doclen = strlen(doc);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v1", NULL, doc, doclen), 0);
    img = res.digest;
    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
             "\"manifests\":[{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
             "\"digest\":\"%s\",\"size\":%zu}]}",
             img.str, doclen);
    assert_int_equal(
        berth_store_manifest_put(&res, f->store, "app", "multi", NULL, index, strlen(index)), 0);
    idx = res.digest;

    /* blobs: the config and the layer, not the manifests (stored as blobs of the layout) */
    assert_int_equal(berth_store_blobs(f->store, "app", list_blob, &l), 0);
    assert_int_equal(l.calls, 2);
    snprintf(want, sizeof(want), "%s=2,", cfg.str);
    assert_non_null(strstr(berth_buf_cstr(&l.text), want));
    snprintf(want, sizeof(want), "%s=5,", layer.str);
    assert_non_null(strstr(berth_buf_cstr(&l.text), want));
    assert_null(strstr(berth_buf_cstr(&l.text), img.str));
    /* the callback stops the walk with its own code */
    berth_buf_clear(&l.text);
    l.calls = 0;
    l.stop_at = 1;
    assert_int_equal(berth_store_blobs(f->store, "app", list_blob, &l), 7);
    assert_int_equal(l.calls, 1);
    /* a repository that does not exist holds nothing; an invalid name is refused */
    l.calls = 0;
    assert_int_equal(berth_store_blobs(f->store, "none", list_blob, &l), 0);
    assert_int_equal(l.calls, 0);
    assert_int_equal(berth_store_blobs(f->store, "a..b", list_blob, &l), BERTH_EINVALID);

    /* manifests: both, the index with its child */
    berth_buf_clear(&l.text);
    l.calls = 0;
    l.stop_at = 0;
    assert_int_equal(berth_store_manifests(f->store, "app", list_manifest, &l), 0);
    assert_int_equal(l.calls, 2);
    snprintf(want, sizeof(want), "%s application/vnd.oci.image.manifest.v1+json 0 0 1|", img.str);
    assert_non_null(strstr(berth_buf_cstr(&l.text), want));
    snprintf(want, sizeof(want), "%s application/vnd.oci.image.index.v1+json 1 0 1|child %s|",
             idx.str, img.str);
    assert_non_null(strstr(berth_buf_cstr(&l.text), want));
    l.calls = 0;
    l.stop_at = 1;
    assert_int_equal(berth_store_manifests(f->store, "app", list_manifest, &l), 7);
    assert_int_equal(l.calls, 1);
    assert_int_equal(berth_store_manifests(f->store, "none", list_manifest, &l), BERTH_ENOTFOUND);
    berth_buf_dispose(&l.text);
}

static void test_store__manifest_too_big(void **state)
{
    fixture *f = *state;
    berth_put_result res;
    size_t len = 4 * 1024 * 1024 + 1;
    char *big = malloc(len);
    memset(big, ' ', len);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v1", NULL, big, len),
                     BERTH_ETOOBIG);
    free(big);
}

static void test_store__referrers(void **state)
{
    fixture *f = *state;
    berth_put_result res;
    berth_digest cfg, layer, subject, empty;
    berth_buf out = BERTH_BUF_INIT;
    char extra[512], *doc;

    cfg = store_push_blob(f->store, "app", "{}");
    layer = store_push_blob(f->store, "app", "layer");
    doc = oci_image_manifest(&cfg, 2, &layer, 5, NULL);
    assert_int_equal(berth_store_manifest_put(&res, f->store, "app", "v1", NULL, doc, strlen(doc)),
                     0);
    subject = res.digest;
    snprintf(extra, sizeof(extra),
             ",\"artifactType\":\"application/vnd.example.sbom\",\"subject\":{\"mediaType\":"
             "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu},"
             "\"annotations\":{\"org.example\":\"yes\"}",
             subject.str, strlen(doc));
    doc = oci_image_manifest(&cfg, 2, &layer, 5, extra);
    assert_int_equal(
        berth_store_manifest_put(&res, f->store, "app", "sbom", NULL, doc, strlen(doc)), 0);
    assert_true(res.has_subject);
    assert_string_equal(res.subject.str, subject.str);

    for (int pass = 0; pass < 2; pass++) {
        berth_buf_clear(&out);
        assert_int_equal(berth_store_referrers(&out, f->store, "app", &subject, NULL, NULL), 0);
        assert_non_null(strstr(out.ptr, "\"artifactType\":\"application/vnd.example.sbom\""));
        assert_non_null(strstr(out.ptr, "\"annotations\":{\"org.example\":\"yes\"}"));
        assert_non_null(strstr(out.ptr, res.digest.str));
        berth_buf_clear(&out);
        assert_int_equal(
            berth_store_referrers(&out, f->store, "app", &subject, "application/other", NULL), 0);
        assert_non_null(strstr(out.ptr, "\"manifests\":[]"));
        reopen(f);
    }
    berth_buf_clear(&out);
    assert_int_equal(berth_digest_buffer(&empty, BERTH_DIGEST_SHA256, "", 0), 0);
    assert_int_equal(berth_store_referrers(&out, f->store, "app", &empty, NULL, NULL), 0);
    assert_non_null(strstr(out.ptr, "\"manifests\":[]"));
    assert_int_equal(berth_store_referrers(&out, f->store, "nope", &empty, NULL, NULL),
                     BERTH_ENOTFOUND);
    berth_buf_dispose(&out);
}

static void test_store__names_do_not_collide(void **state)
{
    fixture *f = *state;
    const char *names[] = {"a", "a/blobs", "a/index.json", "a/oci-layout", "a/b/c", "blobs"};
    berth_buf list = BERTH_BUF_INIT;
    char path[512];
    bool more;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        berth_digest d = store_push_blob(f->store, names[i], names[i]);
        read_blob(f->store, names[i], &d, names[i]);
    }
    reopen(f);
    assert_int_equal(berth_store_catalog(f->store, NULL, 0, collect, &list, &more), 0);
    assert_string_equal(berth_buf_cstr(&list), "a,a/b/c,a/blobs,a/index.json,a/oci-layout,blobs,");
    berth_buf_clear(&list);
    assert_int_equal(berth_store_catalog(f->store, "a/b/c", 2, collect, &list, &more), 0);
    assert_string_equal(berth_buf_cstr(&list), "a/blobs,a/index.json,");
    assert_true(more);
    /* each repository is an OCI layout of its own */
    snprintf(path, sizeof(path), "%s/a/_blobs/oci-layout", f->root);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/a/index.json", f->root);
    assert_int_equal(access(path, F_OK), 0);
    assert_false(berth_store_repo_exists(f->store, "../etc"));
    assert_false(berth_store_repo_exists(f->store, "_berth"));
    berth_buf_dispose(&list);
}

static void gc_log(const char *kind, const char *repo, const char *what, uint64_t size,
                   void *payload)
{
    berth_buf *log = payload;
    (void)size;
    assert_int_equal(berth_buf_printf(log, "%s %s %s\n", kind, repo ? repo : "-", what), 0);
}

static berth_digest push_image(berth_store *s, const char *repo, const char *tag,
                               const char *layer_text, const char *extra)
{
    berth_put_result res;
    berth_digest cfg = store_push_blob(s, repo, "{}");
    berth_digest layer = store_push_blob(s, repo, layer_text);
    char *doc = oci_image_manifest(&cfg, 2, &layer, strlen(layer_text), extra);
    berth_digest by;
    assert_int_equal(berth_digest_buffer(&by, BERTH_DIGEST_SHA256, doc, strlen(doc)), 0);
    /* NULL tag: pushed by digest, untagged */
    assert_int_equal(
        berth_store_manifest_put(&res, s, repo, tag ? tag : by.str, NULL, doc, strlen(doc)), 0);
    return res.digest;
}

static bool in_repo(berth_store *s, const char *repo, const berth_digest *d)
{
    uint64_t size;
    return berth_store_blob_stat(s, repo, d, &size) == 0;
}

static void test_store__gc_sweeps_unreferenced(void **state)
{
    fixture *f = *state;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_buf log = BERTH_BUF_INIT;
    berth_digest kept_layer, stray, gone;
    const berth_stored_manifest *m = NULL;
    char pool[512];

    push_image(f->store, "app", "v1", "kept layer", NULL);
    assert_int_equal(berth_digest_buffer(&kept_layer, BERTH_DIGEST_SHA256, "kept layer", 10), 0);
    stray = store_push_blob(f->store, "app", "stray blob");
    gone = push_image(f->store, "app", "v2", "old layer", NULL);
    assert_int_equal(berth_store_tag_delete(f->store, "app", "v2"), 0);
    /* a manifest untagged but without retention rules is still kept */
    berth_gc_options_init(&opts);
    opts.grace_seconds = 0;
    opts.report = gc_log;
    opts.payload = &log;

    /* a dry run reports and changes nothing */
    opts.dry_run = true;
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed, 1);
    assert_int_equal(stats.blobs_removed, 1);
    assert_non_null(strstr(log.ptr, stray.str));
    assert_true(in_repo(f->store, "app", &stray));

    opts.dry_run = false;
    berth_buf_clear(&log);
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed, 1);
    assert_int_equal(stats.blobs_removed, 1);
    assert_int_equal(stats.bytes_freed, 10);
    assert_false(in_repo(f->store, "app", &stray));
    assert_true(in_repo(f->store, "app", &kept_layer));
    snprintf(pool, sizeof(pool), "%s/_berth/blobs/sha256/%s", f->root, berth_digest_hex(&stray));
    assert_int_not_equal(access(pool, F_OK), 0);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", gone.str), 0);
    berth_manifest_release(m);

    /* with a rule on untagged manifests, the untagged one and its layer go */
    berth_retention_rule rule = {NULL, NULL, 0, 0, 1};
    opts.rules = &rule;
    opts.nrules = 1;
    opts.grace_seconds = 0;
    sleep(2);
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.manifests_removed, 1);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", gone.str), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", "v1"), 0);
    berth_manifest_release(m);
    assert_true(in_repo(f->store, "app", &kept_layer));
    reopen(f);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", gone.str), BERTH_ENOTFOUND);
    berth_buf_dispose(&log);
}

static void test_store__gc_grace_keeps_young_blobs(void **state)
{
    fixture *f = *state;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_digest young = store_push_blob(f->store, "app", "about to be referenced");

    berth_gc_options_init(&opts); /* one hour of grace */
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed, 0);
    assert_true(in_repo(f->store, "app", &young));
}

/*
 * A push longer than the grace: its first layer is older than the grace, its last was just
 * committed (no upload session open any more) and its manifest is on the way. gc must not take
 * the first layer in between; once the repository is quiet, unreferenced blobs go as before.
 */
static void test_store__gc_spares_a_push_between_last_blob_and_manifest(void **state)
{
    fixture *f = *state;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_digest first = store_push_blob(f->store, "app", "first layer of a slow push");

    sleep(3);
    berth_digest last = store_push_blob(f->store, "app", "last layer of a slow push");
    berth_gc_options_init(&opts);
    opts.grace_seconds = 2;
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed, 0);
    assert_true(in_repo(f->store, "app", &first));
    assert_true(in_repo(f->store, "app", &last));
    /* no manifest came: once nothing was linked within the grace, both go */
    sleep(3);
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.links_removed, 2);
    assert_false(in_repo(f->store, "app", &first));
    assert_false(in_repo(f->store, "app", &last));
}

static void test_store__gc_referrers_follow_subject(void **state)
{
    fixture *f = *state;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_digest subject, referrer;
    const berth_stored_manifest *m = NULL;
    char extra[512];

    subject = push_image(f->store, "app", "v1", "image layer", NULL);
    snprintf(extra, sizeof(extra),
             ",\"artifactType\":\"application/vnd.example.sig\",\"subject\":{\"mediaType\":"
             "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\",\"size\":1}",
             subject.str);
    referrer = push_image(f->store, "app", NULL, "sig layer", extra);
    berth_gc_options_init(&opts);
    opts.grace_seconds = 0;
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.manifests_removed, 0);
    /* the subject goes: its referrer follows */
    assert_int_equal(berth_store_manifest_delete(f->store, "app", &subject), 0);
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.manifests_removed, 1);
    assert_int_equal(berth_store_manifest_get(&m, f->store, "app", referrer.str), BERTH_ENOTFOUND);
}

static void test_store__retention_keep_last(void **state)
{
    fixture *f = *state;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_retention_rule rule = {"app", "v*", 2, 0, 0};
    berth_buf names = BERTH_BUF_INIT;
    bool more;
    char tag[16], layer[32];

    for (int i = 1; i <= 4; i++) {
        snprintf(tag, sizeof(tag), "v%d", i);
        snprintf(layer, sizeof(layer), "layer %d", i);
        push_image(f->store, "app", tag, layer, NULL);
        if (i < 4) {
            sleep(1); /* push times have one-second resolution */
        }
    }
    push_image(f->store, "app", "stable", "layer 1", NULL);
    push_image(f->store, "other", "v1", "layer 1", NULL);
    berth_gc_options_init(&opts);
    opts.grace_seconds = 0;
    opts.rules = &rule;
    opts.nrules = 1;
    assert_int_equal(berth_store_gc(f->store, &opts, &stats), 0);
    assert_int_equal(stats.tags_removed, 2);
    assert_int_equal(berth_store_tags(f->store, "app", NULL, 0, collect, &names, &more), 0);
    assert_string_equal(berth_buf_cstr(&names), "stable,v3,v4,");
    berth_buf_clear(&names);
    assert_int_equal(berth_store_tags(f->store, "other", NULL, 0, collect, &names, &more), 0);
    assert_string_equal(berth_buf_cstr(&names), "v1,");
    berth_buf_dispose(&names);
}

typedef struct fsck_seen {
    int corrupt, missing;
} fsck_seen;

static void fsck_log(berth_fsck_kind kind, const char *repo, const char *digest, const char *detail,
                     void *payload)
{
    fsck_seen *seen = payload;
    (void)repo;
    (void)digest;
    (void)detail;
    seen->corrupt += kind == BERTH_FSCK_CORRUPT_BLOB;
    seen->missing += kind == BERTH_FSCK_MISSING_BLOB;
}

static void test_store__fsck_finds_corruption(void **state)
{
    fixture *f = *state;
    berth_fsck_stats stats;
    fsck_seen seen = {0, 0};
    berth_digest layer, gone;
    char path[512];
    FILE *fp;

    push_image(f->store, "app", "v1", "layer bytes", NULL);
    push_image(f->store, "app", "v2", "other layer", NULL);
    assert_int_equal(berth_digest_buffer(&layer, BERTH_DIGEST_SHA256, "layer bytes", 11), 0);
    assert_int_equal(berth_digest_buffer(&gone, BERTH_DIGEST_SHA256, "other layer", 11), 0);
    assert_int_equal(berth_store_fsck(f->store, false, fsck_log, &seen, &stats), 0);
    assert_int_equal(stats.problems, 0);
    assert_int_equal(stats.manifests_checked, 2);

    /* flip a byte of a layer (the pool inode, seen through the repository's link) */
    snprintf(path, sizeof(path), "%s/app/blobs/sha256/%s", f->root, berth_digest_hex(&layer));
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fputc('L', fp);
    fclose(fp);
    /* the API refuses to delete a referenced blob; lose another blob as a damaged disk would */
    assert_int_equal(berth_store_blob_delete(f->store, "app", &gone), BERTH_EINUSE);
    snprintf(path, sizeof(path), "%s/app/blobs/sha256/%s", f->root, berth_digest_hex(&gone));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(berth_store_fsck(f->store, false, fsck_log, &seen, &stats), 0);
    assert_int_equal(seen.corrupt, 2); /* the pool copy and the repository's link */
    assert_int_equal(seen.missing, 2); /* v1 needs the corrupt layer, v2 the lost one */

    memset(&seen, 0, sizeof(seen));
    assert_int_equal(berth_store_fsck(f->store, true, fsck_log, &seen, &stats), 0);
    assert_int_equal(stats.repaired, 1);
    snprintf(path, sizeof(path), "%s/_berth/corrupt/%s", f->root, layer.str);
    assert_int_equal(access(path, F_OK), 0);
    assert_false(in_repo(f->store, "app", &layer));
}

static void test_store__du(void **state)
{
    fixture *f = *state;
    berth_digest d = store_push_blob(f->store, "a", "shared bytes");
    uint64_t total = 0;
    store_push_blob(f->store, "a", "mine");
    assert_int_equal(berth_store_blob_mount(f->store, "b", "a", &d), 0);
    assert_int_equal(berth_store_du(f->store, NULL, NULL, &total), 0);
    assert_int_equal(total, 12 + 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_store__blob_upload_and_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__upload_digest_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__upload_resumes_after_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__manifest_put_get_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__list_blobs_and_manifests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__manifest_too_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__referrers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__names_do_not_collide, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__gc_sweeps_unreferenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__gc_grace_keeps_young_blobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__gc_spares_a_push_between_last_blob_and_manifest,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__gc_referrers_follow_subject, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__retention_keep_last, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__fsck_finds_corruption, setup, teardown),
        cmocka_unit_test_setup_teardown(test_store__du, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
