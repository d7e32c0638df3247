/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: image indexes and Docker manifest lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/index.h>
#include <berth/mediatype.h>

#include "oci_test.h"

#define D1 "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
#define ENTRY                                                                                      \
    "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" D1 "\","         \
    "\"size\":9"

static berth_index *round_trip(const char *file, berth_buf *s1)
{
    berth_buf in = oci_read(file), s2 = BERTH_BUF_INIT;
    berth_index *idx = NULL, *idx2 = NULL;

    if (berth_index_parse(&idx, in.ptr, in.len) != 0) {
        print_error("%s: %s\n", file, berth_error_last());
        fail();
    }
    assert_int_equal(berth_index_serialize(s1, idx), 0);
    assert_int_equal(berth_index_parse(&idx2, s1->ptr, s1->len), 0);
    assert_int_equal(berth_index_serialize(&s2, idx2), 0);
    assert_string_equal(s1->ptr, s2.ptr);
    berth_index_free(idx2);
    berth_buf_dispose(&s2);
    berth_buf_dispose(&in);
    return idx;
}

static void reject(const char *json, int code, const char *field)
{
    berth_index *idx = NULL;
    assert_fails(berth_index_parse(&idx, json, strlen(json)), code, field);
    assert_null(idx);
}

static void test_index__spec_example_round_trip(void **state)
{
    berth_buf s = BERTH_BUF_INIT;
    berth_index *idx = round_trip("index.json", &s);

    (void)state;
    assert_int_equal(idx->nmanifests, 2);
    assert_string_equal(idx->manifests[0].platform->architecture, "ppc64le");
    assert_string_equal(idx->manifests[1].platform->os, "linux");
    assert_string_equal(berth_map_get(&idx->annotations, "com.example.key1"), "value1");
    assert_false(berth_index_is_docker(idx));
    berth_index_free(idx);
    berth_buf_dispose(&s);
}

static void test_index__docker_list_round_trip(void **state)
{
    berth_buf s = BERTH_BUF_INIT;
    berth_index *idx = round_trip("docker_list.json", &s);

    (void)state;
    assert_true(berth_index_is_docker(idx));
    assert_int_equal(idx->nmanifests, 3);
    assert_string_equal(idx->manifests[1].platform->variant, "v7");
    assert_string_equal(idx->manifests[2].platform->os_version, "10.0.17763.1817");
    assert_string_equal(idx->manifests[2].platform->os_features.items[0], "win32k");
    berth_index_free(idx);
    berth_buf_dispose(&s);
}

static void test_index__platform_optional_but_complete(void **state)
{
    const char *ok = "{\"schemaVersion\":2,\"manifests\":[" ENTRY "}],\"x\":1}";
    berth_index *idx = NULL;
    berth_buf s = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_index_parse(&idx, ok, strlen(ok)), 0);
    assert_null(idx->manifests[0].platform);
    assert_int_equal(berth_index_serialize(&s, idx), 0);
    assert_string_equal(s.ptr, ok);
    berth_index_free(idx);
    berth_buf_dispose(&s);
    reject("{\"schemaVersion\":2,\"manifests\":[" ENTRY "}," ENTRY
           ",\"platform\":{\"architecture\":\"amd64\"}}]}",
           BERTH_EINVALID, "manifests[1].platform.os:");
    reject("{\"schemaVersion\":2,\"manifests\":[" ENTRY ",\"platform\":{\"os\":\"linux\"}}]}",
           BERTH_EINVALID, "manifests[0].platform.architecture:");
}

static void test_index__docker_list_needs_platform(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MEDIA_DOCKER_LIST
           "\",\"manifests\":[" ENTRY "}]}",
           BERTH_EINVALID, "manifests[0].platform:");
}

static void test_index__required_members(void **state)
{
    (void)state;
    reject("{\"schemaVersion\":2}", BERTH_EINVALID, "manifests:");
    reject("{\"manifests\":[]}", BERTH_EINVALID, "schemaVersion:");
    reject("{\"schemaVersion\":3,\"manifests\":[]}", BERTH_EINVALID, "schemaVersion:");
    reject("{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MEDIA_OCI_MANIFEST "\",\"manifests\":[]}",
           BERTH_EINVALID, "mediaType:");
    reject("{\"schemaVersion\":2,\"manifests\":[" ENTRY "},{\"digest\":\"" D1 "\",\"size\":1}]}",
           BERTH_EINVALID, "manifests[1].mediaType:");
    reject("{\"schemaVersion\":2,\"manifests\":[],\"artifactType\":\"x\"}", BERTH_EINVALID,
           "artifactType:");
    reject("{\"schemaVersion\":2,\"manifests\":[],\"subject\":{}}", BERTH_EINVALID,
           "subject.mediaType:");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index__spec_example_round_trip),
        cmocka_unit_test(test_index__docker_list_round_trip),
        cmocka_unit_test(test_index__platform_optional_but_complete),
        cmocka_unit_test(test_index__docker_list_needs_platform),
        cmocka_unit_test(test_index__required_members),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
