/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the OCI layout end and the copy engine between two layouts (no network): an
 * image, a whole index, one platform of an index, a corrupt blob that must fail the copy
 * without a tag at the destination; the transports of references, the tags of a layout, the
 * tag a destination takes, and referrers read from a layout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "client/client_internal.h"

#include <berth/client.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    char dir[64];
    berth_buf src, dst;
    berth_digest index, amd64, arm64, layer;
    berth_client *c;
} fixture;

static void put(const char *layout, const char *data, berth_digest *out)
{
    assert_int_equal(berth_digest_buffer(out, BERTH_DIGEST_SHA256, data, strlen(data)), 0);
    assert_int_equal(berth__layout_put_blob_mem(layout, out, data, strlen(data)), 0);
}

/* An image for one architecture; returns its manifest's JSON in `m`. */
static void image(const char *layout, const char *arch, berth_digest *manifest, berth_buf *m,
                  berth_digest *layer_out)
{
    berth_buf cfg = BERTH_BUF_INIT, layer = BERTH_BUF_INIT;
    berth_digest cd, ld;
    assert_int_equal(berth_buf_printf(&layer, "layer bytes of %s", arch), 0);
    put(layout, layer.ptr, &ld);
    assert_int_equal(berth_buf_printf(&cfg, "{\"architecture\":\"%s\",\"os\":\"linux\"}", arch), 0);
    put(layout, cfg.ptr, &cd);
    berth_buf_clear(m);
    assert_int_equal(
        berth_buf_printf(m,
                         "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image."
                         "manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci."
                         "image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},\"layers\":[{"
                         "\"mediaType\":\"application/vnd.oci.image.layer.v1.tar\",\"digest\":"
                         "\"%s\",\"size\":%zu}]}",
                         cd.str, cfg.len, ld.str, layer.len),
        0);
    put(layout, m->ptr, manifest);
    if (layer_out) {
        *layer_out = ld;
    }
    berth_buf_dispose(&cfg);
    berth_buf_dispose(&layer);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    berth_buf m1 = BERTH_BUF_INIT, m2 = BERTH_BUF_INIT, idx = BERTH_BUF_INIT;
    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "/tmp/berth-test-copy-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    assert_int_equal(berth_buf_printf(&f->src, "%s/src", f->dir), 0);
    assert_int_equal(berth_buf_printf(&f->dst, "%s/dst", f->dir), 0);
    assert_int_equal(berth__layout_open(f->src.ptr, true), 0);
    image(f->src.ptr, "amd64", &f->amd64, &m1, &f->layer);
    image(f->src.ptr, "arm64", &f->arm64, &m2, NULL);
    assert_int_equal(
        berth_buf_printf(&idx,
                         "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index."
                         "v1+json\",\"manifests\":[{\"mediaType\":\"application/vnd.oci.image."
                         "manifest.v1+json\",\"digest\":\"%s\",\"size\":%zu,\"platform\":{"
                         "\"architecture\":\"amd64\",\"os\":\"linux\"}},{\"mediaType\":"
                         "\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"%s\","
                         "\"size\":%zu,\"platform\":{\"architecture\":\"arm64\",\"os\":"
                         "\"linux\",\"variant\":\"v8\"}}]}",
                         f->amd64.str, m1.len, f->arm64.str, m2.len),
        0);
    put(f->src.ptr, idx.ptr, &f->index);
    assert_int_equal(berth__layout_set_ref(f->src.ptr, "application/vnd.oci.image.index.v1+json",
                                           &f->index, idx.len, "multi"),
                     0);
    assert_int_equal(berth__layout_set_ref(f->src.ptr, "application/vnd.oci.image.manifest.v1+json",
                                           &f->amd64, m1.len, "single"),
                     0);
    assert_int_equal(berth_client_new(&f->c, NULL), 0);
    berth_buf_dispose(&m1);
    berth_buf_dispose(&m2);
    berth_buf_dispose(&idx);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    berth_buf cmd = BERTH_BUF_INIT;
    if (berth_buf_printf(&cmd, "rm -rf '%s'", f->dir) == 0) {
        (void)system(cmd.ptr);
    }
    berth_buf_dispose(&cmd);
    berth_buf_dispose(&f->src);
    berth_buf_dispose(&f->dst);
    berth_client_free(f->c);
    free(f);
    return 0;
}

static void ref_of(berth_buf *out, const char *layout, const char *tag)
{
    berth_buf_clear(out);
    assert_int_equal(berth_buf_printf(out, "oci:%s:%s", layout, tag), 0);
}

/* The digest index.json of `layout` gives `tag`, read through the layout end. */
static int tagged(berth_digest *out, const char *layout, const char *tag)
{
    berth_buf body = BERTH_BUF_INIT;
    char *mt = NULL;
    int rc = berth__layout_get_manifest(layout, tag, &body, &mt, out);
    free(mt);
    berth_buf_dispose(&body);
    return rc;
}

static void test_copy__image(void **state)
{
    fixture *f = *state;
    berth_buf s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    berth_digest got, t;
    ref_of(&s, f->src.ptr, "single");
    ref_of(&d, f->dst.ptr, "one");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, &got), 0);
    assert_true(berth_digest_equal(&got, &f->amd64));
    assert_int_equal(tagged(&t, f->dst.ptr, "one"), 0);
    assert_true(berth_digest_equal(&t, &f->amd64));
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &f->layer), 0);
    /* the arm64 image was not asked for */
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &f->arm64), BERTH_ENOTFOUND);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

static void test_copy__whole_index_and_platform(void **state)
{
    fixture *f = *state;
    berth_buf s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    berth_copy_options o = {0};
    berth_digest got, t;

    ref_of(&s, f->src.ptr, "multi");
    ref_of(&d, f->dst.ptr, "all");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, &got), 0);
    assert_true(berth_digest_equal(&got, &f->index));
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &f->amd64), 0);
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &f->arm64), 0);

    o.platform = "linux/arm64";
    ref_of(&d, f->dst.ptr, "arm");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, &o, &got), 0);
    assert_true(berth_digest_equal(&got, &f->arm64));
    assert_int_equal(tagged(&t, f->dst.ptr, "arm"), 0);
    assert_true(berth_digest_equal(&t, &f->arm64));
    /* the earlier tag is still there: tags are replaced by name only */
    assert_int_equal(tagged(&t, f->dst.ptr, "all"), 0);
    assert_true(berth_digest_equal(&t, &f->index));

    o.platform = "linux/arm64/v7";
    ref_of(&d, f->dst.ptr, "none");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, &o, NULL), BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), "linux/arm64/v8"));
    o.platform = "linux/arm64";
    o.all = true;
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, &o, NULL), BERTH_EINVALID);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

static void test_copy__corrupt_blob_leaves_no_tag(void **state)
{
    fixture *f = *state;
    berth_buf s = BERTH_BUF_INIT, d = BERTH_BUF_INIT, p = BERTH_BUF_INIT;
    berth_digest t;
    FILE *fp;

    assert_int_equal(berth__layout_blob_path(&p, f->src.ptr, &f->layer), 0);
    fp = fopen(p.ptr, "wb");
    assert_non_null(fp);
    fputs("tampered", fp);
    fclose(fp);
    ref_of(&s, f->src.ptr, "single");
    ref_of(&d, f->dst.ptr, "bad");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, NULL), BERTH_EMISMATCH);
    assert_non_null(strstr(berth_error_last(), f->layer.str));
    assert_int_equal(tagged(&t, f->dst.ptr, "bad"), BERTH_ENOTFOUND);
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &f->layer), BERTH_ENOTFOUND);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
    berth_buf_dispose(&p);
}

/* What the CLI uses: layout reads and manifest inspection through berth/client.h. */
static void test_copy__public_layout_reads(void **state)
{
    fixture *f = *state;
    berth_buf body = BERTH_BUF_INIT, blob = BERTH_BUF_INIT;
    berth_document_info *info = NULL;
    berth_digest d;
    char *mt = NULL;

    assert_int_equal(berth_layout_get_manifest(f->src.ptr, "multi", &body, &mt, &d), 0);
    assert_true(berth_digest_equal(&d, &f->index));
    assert_string_equal(mt, "application/vnd.oci.image.index.v1+json");
    /* a generic Content-Type lets the document say what it is */
    assert_int_equal(berth_client_inspect_manifest(&info, "application/json", body.ptr, body.len),
                     0);
    assert_true(berth_document_kind_is_index(info->kind));
    assert_int_equal(info->nrefs, 2);
    assert_true(berth_client_platform_matches(&info->refs[0], "linux/amd64"));
    assert_false(berth_client_platform_matches(&info->refs[0], "linux/arm64"));
    assert_true(berth_client_platform_matches(&info->refs[1], "linux/arm64"));
    assert_true(berth_client_platform_matches(&info->refs[1], "linux/arm64/v8"));
    assert_false(berth_client_platform_matches(&info->refs[1], "linux/arm64/v7"));
    assert_false(berth_client_platform_matches(&info->refs[1], "linux"));
    berth_document_info_free(info);
    info = NULL;
    /* a specific one that disagrees with the document is refused */
    assert_int_equal(berth_client_inspect_manifest(
                         &info, "application/vnd.oci.image.manifest.v1+json", body.ptr, body.len),
                     BERTH_EINVALID);
    assert_null(info);
    assert_int_equal(berth_layout_read_blob(f->src.ptr, &f->layer, &blob), 0);
    assert_true(blob.len > 0);
    free(mt);
    assert_int_equal(berth_layout_get_manifest(f->src.ptr, "nosuch", &body, &mt, NULL),
                     BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), "no tag nosuch"));
    free(mt);
    berth_buf_dispose(&body);
    berth_buf_dispose(&blob);
}

static void test_copy__layout_errors(void **state)
{
    fixture *f = *state;
    berth_buf s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    berth_digest t;
    ref_of(&s, f->src.ptr, "nosuchtag");
    ref_of(&d, f->dst.ptr, "x");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, NULL), BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), "no tag nosuchtag"));
    /* no tag and several entries: ambiguous */
    assert_int_equal(tagged(&t, f->src.ptr, NULL), BERTH_ENOTFOUND);
    assert_int_equal(berth_copy(f->c, "oci:/nonexistent/berth/layout:x", d.ptr, NULL, NULL),
                     BERTH_ENOTFOUND);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

static void test_copy__invalid_manifest_refused(void **state)
{
    fixture *f = *state;
    berth_buf s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    const char *bad = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest."
                      "v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config."
                      "v1+json\",\"digest\":\"sha256:abc\",\"size\":2},\"layers\":[]}";
    berth_digest bd, t;

    put(f->src.ptr, bad, &bd);
    assert_int_equal(berth__layout_set_ref(f->src.ptr, "application/vnd.oci.image.manifest.v1+json",
                                           &bd, strlen(bad), "bad"),
                     0);
    ref_of(&s, f->src.ptr, "bad");
    ref_of(&d, f->dst.ptr, "bad");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, NULL), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "config.digest"));
    assert_int_equal(tagged(&t, f->dst.ptr, "bad"), BERTH_ENOTFOUND);
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &bd), BERTH_ENOTFOUND);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

/* References as people type them: which transport, and what follows the prefix. */
static void test_copy__transport(void **state)
{
    static const struct {
        const char *text;
        int want;
        const char *rest; /* NULL: the text itself */
    } cases[] = {
        {"docker://127.0.0.1:5000/team/app:v1", BERTH_TRANSPORT_REGISTRY,
         "127.0.0.1:5000/team/app:v1"},
        {"docker://registry.example/"
         "app@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
         BERTH_TRANSPORT_REGISTRY,
         "registry.example/"
         "app@sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
        {"docker://alpine", BERTH_TRANSPORT_REGISTRY, "alpine"},
        {"127.0.0.1:5000/team/app:v1", BERTH_TRANSPORT_REGISTRY, NULL},
        {"localhost:5000/app", BERTH_TRANSPORT_REGISTRY, NULL},
        {"alpine:3.19", BERTH_TRANSPORT_REGISTRY, NULL},
        {"dir:5000/app", BERTH_TRANSPORT_REGISTRY, NULL}, /* a host "dir" with a port */
        {"team/app:dir", BERTH_TRANSPORT_REGISTRY, NULL},
        {"oci:/tmp/layout", BERTH_TRANSPORT_LAYOUT, NULL},
        {"oci:/tmp/layout:v1", BERTH_TRANSPORT_LAYOUT, NULL},
        {"oci-archive:/tmp/a.tar:v1", BERTH_EUNSUPPORTED, NULL},
        {"docker-archive:/tmp/a.tar", BERTH_EUNSUPPORTED, NULL},
        {"containers-storage:app", BERTH_EUNSUPPORTED, NULL},
        {"docker-daemon:app:v1", BERTH_EUNSUPPORTED, NULL},
        {"dir:/tmp/x", BERTH_EUNSUPPORTED, NULL},
        {"docker:app", BERTH_EINVALID, NULL},
        {"docker:5000/app", BERTH_TRANSPORT_REGISTRY, NULL}, /* docker-in-docker's host */
        {"docker:127.0.0.1:5000/app", BERTH_EINVALID, NULL},
        {"", BERTH_EINVALID, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        const char *rest = NULL;
        int rc = berth_transport_of(cases[i].text, &rest);
        if (rc != cases[i].want) {
            fail_msg("%s: got %d, want %d", cases[i].text, rc, cases[i].want);
        }
        if (rc > 0) {
            assert_string_equal(rest, cases[i].rest ? cases[i].rest : cases[i].text);
        }
    }
    assert_int_equal(berth_transport_of("oci-archive:/tmp/a.tar", NULL), BERTH_EUNSUPPORTED);
    assert_non_null(strstr(berth_error_last(), "oci-archive: a transport berth does not read"));
}

static int collect(const char *name, void *payload)
{
    berth_buf *b = payload;
    return berth_buf_printf(b, "%s,", name);
}

/* berth tags oci:DIR: the names of index.json, in order; unnamed entries left out. */
static void test_copy__layout_list_tags(void **state)
{
    fixture *f = *state;
    berth_buf names = BERTH_BUF_INIT;
    assert_int_equal(berth__layout_set_ref(f->src.ptr, "application/vnd.oci.image.manifest.v1+json",
                                           &f->arm64, 10, NULL),
                     0);
    assert_int_equal(berth_layout_list_tags(f->src.ptr, collect, &names), 0);
    assert_string_equal(berth_buf_cstr(&names), "multi,single,");
    assert_int_equal(berth_layout_list_tags("/nonexistent/berth/layout", collect, &names),
                     BERTH_ENOTFOUND);
    berth_buf_dispose(&names);
}

/* A DST without a tag takes the source's: for oci:DIR without one, the name of its only named
 * image (the unnamed entries beside it are referrers). */
static void test_copy__source_tag_of_a_layout(void **state)
{
    fixture *f = *state;
    berth_buf one = BERTH_BUF_INIT, s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    berth_digest got, t;
    assert_int_equal(berth_buf_printf(&one, "%s/one", f->dir), 0);
    ref_of(&s, f->src.ptr, "multi");
    assert_int_equal(berth_buf_printf(&d, "oci:%s", one.ptr), 0);
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, &got), 0);
    assert_int_equal(tagged(&t, one.ptr, "multi"), 0);
    /* an unnamed entry beside the one named image */
    assert_int_equal(berth__layout_set_ref(one.ptr, "application/vnd.oci.image.manifest.v1+json",
                                           &f->amd64, 10, NULL),
                     0);
    berth_buf_clear(&s);
    berth_buf_clear(&d);
    assert_int_equal(berth_buf_printf(&s, "oci:%s", one.ptr), 0);
    assert_int_equal(berth_buf_printf(&d, "oci:%s", f->dst.ptr), 0);
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, NULL, &got), 0);
    assert_true(berth_digest_equal(&got, &f->index));
    assert_int_equal(tagged(&t, f->dst.ptr, "multi"), 0);
    assert_true(berth_digest_equal(&t, &f->index));
    berth_buf_dispose(&one);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

/* --referrers from a layout: the index.json entries whose subject is the copied manifest; an
 * artifact whose config and layer are one blob (the empty descriptor) is copied once. */
static void test_copy__layout_referrers_and_shared_blob(void **state)
{
    fixture *f = *state;
    berth_buf art = BERTH_BUF_INIT, s = BERTH_BUF_INIT, d = BERTH_BUF_INIT;
    berth_copy_options o = {.referrers = true, .jobs = 4};
    berth_digest empty, ad, got;
    put(f->src.ptr, "{}", &empty);
    assert_int_equal(
        berth_buf_printf(&art,
                         "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image."
                         "manifest.v1+json\",\"artifactType\":\"application/spdx+json\","
                         "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
                         "\"digest\":\"%s\",\"size\":2},\"layers\":[{\"mediaType\":"
                         "\"application/vnd.oci.empty.v1+json\",\"digest\":\"%s\",\"size\":2}],"
                         "\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+"
                         "json\",\"digest\":\"%s\",\"size\":10}}",
                         empty.str, empty.str, f->amd64.str),
        0);
    put(f->src.ptr, art.ptr, &ad);
    assert_int_equal(berth__layout_set_ref(f->src.ptr, "application/vnd.oci.image.manifest.v1+json",
                                           &ad, art.len, NULL),
                     0);
    ref_of(&s, f->src.ptr, "single");
    ref_of(&d, f->dst.ptr, "one");
    assert_int_equal(berth_copy(f->c, s.ptr, d.ptr, &o, &got), 0);
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &ad), 0);
    assert_int_equal(berth__layout_has_blob(f->dst.ptr, &empty), 0);
    berth_buf_dispose(&art);
    berth_buf_dispose(&s);
    berth_buf_dispose(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_copy__image, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__whole_index_and_platform, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__corrupt_blob_leaves_no_tag, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__layout_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__public_layout_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__invalid_manifest_refused, setup, teardown),
        cmocka_unit_test(test_copy__transport),
        cmocka_unit_test_setup_teardown(test_copy__layout_list_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__source_tag_of_a_layout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_copy__layout_referrers_and_shared_blob, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
