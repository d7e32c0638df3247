/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: image manifests (OCI, artifact, Docker schema2) and the versioned header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/manifest.h>
#include <berth/mediatype.h>

#include "oci_test.h"

#define D1 "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
#define CFG                                                                                        \
    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":"  \
    "7}"
#define LAYER                                                                                      \
    "{\"mediaType\":\"application/vnd.oci.image.layer.v1.tar+gzip\",\"digest\":\"" D1              \
    "\",\"size\":9}"

/* parse -> serialise -> parse -> serialise: both serialisations equal; returns the first. */
static berth_manifest *round_trip(const char *file, berth_buf *s1)
{
    berth_buf in = oci_read(file), s2 = BERTH_BUF_INIT;
    berth_manifest *m = NULL, *m2 = NULL;

    if (berth_manifest_parse(&m, in.ptr, in.len) != 0) {
        print_error("%s: %s\n", file, berth_error_last());
        fail();
    }
    assert_int_equal(berth_manifest_serialize(s1, m), 0);
    assert_int_equal(berth_manifest_parse(&m2, s1->ptr, s1->len), 0);
    assert_int_equal(berth_manifest_serialize(&s2, m2), 0);
    assert_string_equal(s1->ptr, s2.ptr);
    berth_manifest_free(m2);
    berth_buf_dispose(&s2);
    berth_buf_dispose(&in);
    return m;
}

static void reject(const char *json, int code, const char *field)
{
    berth_manifest *m = NULL;
    assert_fails(berth_manifest_parse(&m, json, strlen(json)), code, field);
    assert_null(m);
}

static void test_manifest__spec_example_round_trip(void **state)
{
    berth_buf s = BERTH_BUF_INIT;
    berth_manifest *m = round_trip("manifest.json", &s);

    (void)state;
    assert_int_equal(m->schema_version, 2);
    assert_string_equal(m->media_type, BERTH_MEDIA_OCI_MANIFEST);
    assert_string_equal(m->config.media_type, BERTH_MEDIA_OCI_CONFIG);
    assert_int_equal(m->config.size, 7023);
    assert_int_equal(m->nlayers, 3);
    assert_int_equal(m->layers[2].size, 73109);
    assert_string_equal(berth_map_get(&m->annotations, "com.example.key2"), "value2");
    assert_null(m->subject);
    assert_null(m->extra);
    assert_false(berth_manifest_is_docker(m));
    berth_manifest_free(m);
    berth_buf_dispose(&s);
}

static void test_manifest__artifact_round_trip_keeps_unknown(void **state)
{
    berth_buf s = BERTH_BUF_INIT;
    berth_manifest *m = round_trip("artifact.json", &s);

    (void)state;
    assert_string_equal(m->artifact_type, "application/vnd.example.sbom.v1");
    assert_true(m->config.has_data);
    assert_non_null(m->subject);
    assert_string_equal(m->subject->digest.str, D1);
    assert_string_equal(m->extra, "{\"com.example.unknown\":{\"kept\":[1,2,3]}}");
    assert_non_null(strstr(s.ptr, "\"com.example.unknown\":{\"kept\":[1,2,3]}"));
    assert_int_equal(m->layers[0].urls.count, 1);
    berth_manifest_free(m);
    berth_buf_dispose(&s);
}

static void test_manifest__docker_round_trip(void **state)
{
    berth_buf s = BERTH_BUF_INIT;
    berth_manifest *m = round_trip("docker_manifest.json", &s);

    (void)state;
    assert_true(berth_manifest_is_docker(m));
    assert_string_equal(m->config.media_type, BERTH_MEDIA_DOCKER_CONFIG);
    assert_string_equal(m->layers[0].media_type, BERTH_MEDIA_DOCKER_LAYER);
    berth_manifest_free(m);
    berth_buf_dispose(&s);
}

static void test_manifest__schema_version_must_be_2(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":1,\"config\":" CFG ",\"layers\":[]}", BERTH_EINVALID,
           "schemaVersion:");
    reject("{\"config\":" CFG ",\"layers\":[]}", BERTH_EINVALID, "schemaVersion:");
    reject("{\"schemaVersion\":\"2\",\"config\":" CFG ",\"layers\":[]}", BERTH_EINVALID,
           "schemaVersion:");
    reject("{\"schemaVersion\":2.0,\"config\":" CFG ",\"layers\":[]}", BERTH_EINVALID,
           "schemaVersion:");
}

static void test_manifest__media_type_must_be_a_manifest(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MEDIA_OCI_INDEX "\",\"config\":" CFG
           ",\"layers\":[]}",
           BERTH_EINVALID, "mediaType:");
}

static void test_manifest__config_required_and_valid(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"layers\":[]}", BERTH_EINVALID, "config:");
    reject("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"a/b\",\"size\":1},\"layers\":[]}",
           BERTH_EINVALID, "config.digest:");
    reject("{\"schemaVersion\":2,\"config\":\"x\",\"layers\":[]}", BERTH_EINVALID, "config:");
}

static void test_manifest__layers_required_and_named_by_index(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"config\":" CFG "}", BERTH_EINVALID, "layers:");
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":{}}", BERTH_EINVALID, "layers:");
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[" LAYER "," LAYER
           ",{\"mediaType\":\"a/b\",\"digest\":\"sha256:1234\",\"size\":1}]}",
           BERTH_EINVALID, "layers[2].digest:");
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[" LAYER
           ",{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":-1}]}",
           BERTH_EINVALID, "layers[1].size:");
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[7]}", BERTH_EINVALID, "layers[0]:");
}

static void test_manifest__empty_config_needs_artifact_type(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"config\":{\"mediaType\":\"" BERTH_MEDIA_OCI_EMPTY
           "\",\"digest\":\"" BERTH_EMPTY_JSON_DIGEST "\",\"size\":2},\"layers\":[]}",
           BERTH_EINVALID, "artifactType:");
    reject("{\"schemaVersion\":2,\"artifactType\":\"bad\",\"config\":" CFG ",\"layers\":[]}",
           BERTH_EINVALID, "artifactType:");
}

static void test_manifest__subject_validated(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[],\"subject\":{\"mediaType\":"
           "\"a/b\",\"digest\":\"" D1 "\"}}",
           BERTH_EINVALID, "subject.size:");
}

static void test_manifest__annotations_are_strings(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[],\"annotations\":{\"k\":[]}}",
           BERTH_EINVALID, "annotations.k:");
}

static void test_manifest__duplicate_keys_rejected(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[],\"layers\":[]}", BERTH_EINVALID,
           "invalid JSON");
}

static void test_manifest__versioned_round_trip(void **state)
{
    const char *j = "{\"schemaVersion\":2,\"other\":[true]}";
    berth_versioned *v = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_versioned_parse(&v, j, strlen(j)), 0);
    assert_int_equal(v->schema_version, 2);
    assert_int_equal(berth_versioned_serialize(&out, v), 0);
    assert_string_equal(out.ptr, j);
    berth_versioned_free(v);
    assert_fails(berth_versioned_parse(&v, "{}", 2), BERTH_EINVALID, "schemaVersion:");
    assert_fails(berth_versioned_parse(&v, "{\"schemaVersion\":-2}", 20), BERTH_EINVALID,
                 "schemaVersion:");
    berth_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest__spec_example_round_trip),
        cmocka_unit_test(test_manifest__artifact_round_trip_keeps_unknown),
        cmocka_unit_test(test_manifest__docker_round_trip),
        cmocka_unit_test(test_manifest__schema_version_must_be_2),
        cmocka_unit_test(test_manifest__media_type_must_be_a_manifest),
        cmocka_unit_test(test_manifest__config_required_and_valid),
        cmocka_unit_test(test_manifest__layers_required_and_named_by_index),
        cmocka_unit_test(test_manifest__empty_config_needs_artifact_type),
        cmocka_unit_test(test_manifest__subject_validated),
        cmocka_unit_test(test_manifest__annotations_are_strings),
        cmocka_unit_test(test_manifest__duplicate_keys_rejected),
        cmocka_unit_test(test_manifest__versioned_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
