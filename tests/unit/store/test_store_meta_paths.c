/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's use of the metadata backend's optional fast paths (berth/sys/meta_backend.h:
 * tag_manifest_get, tag_names): a manifest GET by tag is one tag_manifest_get when the backend
 * has it and tag_get + manifest_get when it does not; a tags list is tag_names or tags().
 * Either way the answers are the same, a moved tag is seen at once, and errors map alike.
 * The backend is the mem one with its vtable patched to count calls (and to offer the fast
 * paths, made of its own members).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "backend/mem/mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MT "application/vnd.oci.image.manifest.v1+json"

static struct {
    berth_meta_backend orig; /* the mem backend's members */
    int tag_get, manifest_get, tags, tag_manifest_get, tag_names;
    int fail_fast; /* tag_manifest_get answers this code when non-zero */
} g;

static int count_tag_get(berth_meta_backend *b, const char *repo, const char *tag,
                         berth_digest *out)
{
    g.tag_get++;
    return g.orig.tag_get(b, repo, tag, out);
}

static int count_manifest_get(berth_meta_backend *b, const char *repo, const berth_digest *d,
                              berth_meta_blob_doc *out)
{
    g.manifest_get++;
    return g.orig.manifest_get(b, repo, d, out);
}

static int count_tags(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                      berth_meta_tag_cb cb, void *payload, bool *more_out)
{
    g.tags++;
    return g.orig.tags(b, repo, last, n, cb, payload, more_out);
}

static int fast_tag_manifest_get(berth_meta_backend *b, const char *repo, const char *tag,
                                 berth_digest *digest_out, berth_meta_blob_doc *out)
{
    g.tag_manifest_get++;
    if (g.fail_fast) {
        return berth_error_set(g.fail_fast, "the engine failed");
    }
    int rc = g.orig.tag_get(b, repo, tag, digest_out);
    return rc < 0 ? rc : g.orig.manifest_get(b, repo, digest_out, out);
}

typedef struct name_fwd {
    berth_meta_name_cb cb;
    void *payload;
} name_fwd;

static int tag_to_name(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    name_fwd *f = payload;
    (void)digest;
    (void)pushed;
    return f->cb(tag, f->payload);
}

static int fast_tag_names(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                          berth_meta_name_cb cb, void *payload, bool *more_out)
{
    name_fwd f = {cb, payload};
    g.tag_names++;
    return g.orig.tags(b, repo, last, n, tag_to_name, &f, more_out);
}

typedef struct fixture {
    berth_store *s;
    berth_meta_backend *meta;
} fixture;

static fixture *open_fixture(bool fast)
{
    fixture *f = calloc(1, sizeof(*f));
    berth_blob_backend *blobs = NULL;
    assert_non_null(f);
    assert_int_equal(berth_mem_blob_backend_new(&blobs), 0);
    assert_int_equal(berth_mem_meta_backend_new(&f->meta), 0);
    memset(&g, 0, sizeof(g));
    g.orig = *f->meta;
    f->meta->tag_get = count_tag_get;
    f->meta->manifest_get = count_manifest_get;
    f->meta->tags = count_tags;
    f->meta->tag_manifest_get = fast ? fast_tag_manifest_get : NULL;
    f->meta->tag_names = fast ? fast_tag_names : NULL;
    assert_int_equal(berth_store_open_backends(&f->s, blobs, f->meta, NULL), 0);
    return f;
}

static void close_fixture(fixture *f)
{
    berth_store_free(f->s);
    free(f);
}

/* A manifest stored straight through the backend (sparse: no blobs needed), under `tags`. */
static berth_digest put(fixture *f, const char *repo, const char *body, const char *tag)
{
    berth_meta_manifest m = {.media_type = MT, .size = strlen(body), .data = body, .sparse = true};
    berth_digest missing;
    assert_int_equal(berth_digest_buffer(&m.digest, BERTH_DIGEST_SHA256, body, m.size), 0);
    const char *tags[] = {tag};
    assert_int_equal(f->meta->manifest_put(f->meta, repo, &m, tags, tag ? 1 : 0, &missing), 0);
    return m.digest;
}

static void assert_get(fixture *f, const char *repo, const char *ref, const char *body,
                       const berth_digest *d)
{
    const berth_stored_manifest *m = NULL;
    assert_int_equal(berth_store_manifest_get(&m, f->s, repo, ref), 0);
    assert_int_equal(m->len, strlen(body));
    assert_memory_equal(m->data, body, m->len);
    assert_string_equal(m->media_type, MT);
    assert_string_equal(m->digest.str, d->str);
    berth_manifest_release(m);
}

static int collect(const char *name, void *payload)
{
    char *out = payload;
    strcat(out, name);
    strcat(out, ",");
    return 0;
}

static void assert_tags(fixture *f, const char *repo, const char *want)
{
    char got[256] = "";
    bool more = true;
    assert_int_equal(berth_store_tags(f->s, repo, NULL, 0, collect, got, &more), 0);
    assert_false(more);
    assert_string_equal(got, want);
}

/* The same answers whichever path the backend offers; a moved tag is seen at once. */
static void check_semantics(fixture *f)
{
    const char *a = "{\"schemaVersion\":2,\"n\":1}", *b = "{\"schemaVersion\":2,\"n\":2}";
    berth_digest da = put(f, "lib/x", a, "latest"), db = put(f, "lib/x", b, "other");
    const berth_stored_manifest *m = NULL;
    assert_get(f, "lib/x", "latest", a, &da);
    assert_get(f, "lib/x", "other", b, &db);
    assert_get(f, "lib/x", da.str, a, &da);
    put(f, "lib/x", b, "latest"); /* moved */
    assert_get(f, "lib/x", "latest", b, &db);
    assert_tags(f, "lib/x", "latest,other,");
    assert_int_equal(berth_store_manifest_get(&m, f->s, "lib/x", "nope"), BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), "tag nope not in lib/x"));
    assert_null(m);
    assert_int_equal(berth_store_manifest_get(&m, f->s, "lib/none", "latest"), BERTH_ENOTFOUND);
    assert_null(m);
    bool more;
    assert_int_equal(berth_store_tags(f->s, "lib/none", NULL, 0, collect, (char[64]){0}, &more),
                     BERTH_ENOTFOUND);
}

static void test_store_meta_paths__fallback_without_fast_paths(void **state)
{
    fixture *f = open_fixture(false);
    check_semantics(f);
    /* by tag: tag_get then manifest_get each time */
    int t0 = g.tag_get, m0 = g.manifest_get;
    const char *body = "{\"schemaVersion\":2,\"n\":3}";
    berth_digest d = put(f, "lib/y", body, "v1");
    assert_get(f, "lib/y", "v1", body, &d);
    assert_int_equal(g.tag_get - t0, 1);
    assert_int_equal(g.manifest_get - m0, 1);
    assert_true(g.tags > 0);
    close_fixture(f);
}

static void test_store_meta_paths__one_call_with_fast_paths(void **state)
{
    fixture *f = open_fixture(true);
    check_semantics(f);
    assert_int_equal(g.tag_get, 0);
    assert_int_equal(g.tags, 0);
    assert_true(g.tag_names > 0);
    /* by tag: one tag_manifest_get and nothing else; by digest: manifest_get */
    int fast0 = g.tag_manifest_get, m0 = g.manifest_get;
    const char *body = "{\"schemaVersion\":2,\"n\":3}";
    berth_digest d = put(f, "lib/y", body, "v1");
    assert_get(f, "lib/y", "v1", body, &d);
    assert_int_equal(g.tag_manifest_get - fast0, 1);
    assert_int_equal(g.manifest_get - m0, 0);
    assert_get(f, "lib/y", d.str, body, &d);
    assert_int_equal(g.manifest_get - m0, 1);
    assert_int_equal(g.tag_get, 0);
    /* an engine failure on the fast path is the client's 503, as on the slow one */
    const berth_stored_manifest *m = NULL;
    g.fail_fast = BERTH_ENETWORK;
    assert_int_equal(berth_store_manifest_get(&m, f->s, "lib/y", "v1"), BERTH_ENETWORK);
    assert_null(m);
    close_fixture(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_meta_paths__fallback_without_fast_paths),
        cmocka_unit_test(test_store_meta_paths__one_call_with_fast_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
