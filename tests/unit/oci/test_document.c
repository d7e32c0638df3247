/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: berth_document_inspect(), the registry's view of a pushed manifest. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/document.h>
#include <berth/mediatype.h>

#include "oci_test.h"

#define D1 "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
#define CFG                                                                                        \
    "{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" D1 "\",\"size\":"  \
    "7}"

static berth_document_info *inspect_file(const char *file, const char *content_type)
{
    berth_buf in = oci_read(file);
    berth_document_info *info = NULL;

    if (berth_document_inspect(&info, content_type, in.ptr, in.len) != 0) {
        print_error("%s: %s\n", file, berth_error_last());
        fail();
    }
    berth_buf_dispose(&in);
    return info;
}

static void reject(const char *ct, const char *json, int code, const char *field)
{
    berth_document_info *info = NULL;
    assert_fails(berth_document_inspect(&info, ct, json, strlen(json)), code, field);
    assert_null(info);
}

static void test_document__oci_manifest(void **state)
{
    berth_document_info *info = inspect_file("manifest.json", BERTH_MEDIA_OCI_MANIFEST);

    (void)state;
    assert_int_equal(info->kind, BERTH_DOC_OCI_MANIFEST);
    assert_string_equal(info->media_type, BERTH_MEDIA_OCI_MANIFEST);
    /* no artifactType: the config's media type stands in */
    assert_string_equal(info->artifact_type, BERTH_MEDIA_OCI_CONFIG);
    assert_int_equal(info->nrefs, 4);
    assert_string_equal(info->refs[0].media_type, BERTH_MEDIA_OCI_CONFIG);
    assert_int_equal(info->refs[3].size, 73109);
    assert_null(info->subject);
    assert_string_equal(berth_map_get(&info->annotations, "com.example.key1"), "value1");
    assert_false(berth_document_kind_is_index(info->kind));
    berth_document_info_free(info);
}

static void test_document__artifact_with_subject(void **state)
{
    berth_document_info *info = inspect_file("artifact.json", NULL);

    (void)state;
    assert_string_equal(info->artifact_type, "application/vnd.example.sbom.v1");
    assert_non_null(info->subject);
    assert_string_equal(info->subject->digest.str, D1);
    assert_int_equal(info->nrefs, 2);
    berth_document_info_free(info);
}

static void test_document__index_and_docker_kinds(void **state)
{
    berth_document_info *info;

    (void)state;
    info = inspect_file("index.json", "application/vnd.oci.image.index.v1+json; charset=x");
    assert_int_equal(info->kind, BERTH_DOC_OCI_INDEX);
    assert_true(berth_document_kind_is_index(info->kind));
    assert_null(info->artifact_type);
    assert_int_equal(info->nrefs, 2);
    berth_document_info_free(info);
    info = inspect_file("docker_list.json", BERTH_MEDIA_DOCKER_LIST);
    assert_int_equal(info->kind, BERTH_DOC_DOCKER_LIST);
    assert_int_equal(info->nrefs, 3);
    berth_document_info_free(info);
    info = inspect_file("docker_manifest.json", NULL);
    assert_int_equal(info->kind, BERTH_DOC_DOCKER_MANIFEST);
    assert_string_equal(info->media_type, BERTH_MEDIA_DOCKER_MANIFEST);
    assert_string_equal(info->artifact_type, BERTH_MEDIA_DOCKER_CONFIG);
    assert_int_equal(info->nrefs, 2);
    berth_document_info_free(info);
}

static void test_document__kind_from_content_type_then_shape(void **state)
{
    const char *m = "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[]}";
    const char *i = "{\"schemaVersion\":2,\"manifests\":[]}";
    berth_document_info *info = NULL;

    (void)state;
    assert_int_equal(berth_document_inspect(&info, BERTH_MEDIA_OCI_MANIFEST, m, strlen(m)), 0);
    assert_int_equal(info->kind, BERTH_DOC_OCI_MANIFEST);
    berth_document_info_free(info);
    assert_int_equal(berth_document_inspect(&info, NULL, m, strlen(m)), 0);
    assert_int_equal(info->kind, BERTH_DOC_OCI_MANIFEST);
    assert_int_equal(info->nrefs, 1);
    berth_document_info_free(info);
    assert_int_equal(berth_document_inspect(&info, "", i, strlen(i)), 0);
    assert_int_equal(info->kind, BERTH_DOC_OCI_INDEX);
    assert_int_equal(info->nrefs, 0);
    assert_null(info->refs);
    berth_document_info_free(info);
    /* an index sent as a manifest is not a valid manifest */
    reject(BERTH_MEDIA_OCI_MANIFEST, i, BERTH_EINVALID, "config:");
    reject(NULL, "{\"schemaVersion\":2}", BERTH_EINVALID, "mediaType:");
}

static void test_document__media_type_must_match_content_type(void **state)
{
    (void)state;
    reject(BERTH_MEDIA_OCI_INDEX,
           "{\"schemaVersion\":2,\"mediaType\":\"" BERTH_MEDIA_OCI_MANIFEST "\",\"config\":" CFG
           ",\"layers\":[]}",
           BERTH_EINVALID, "mediaType:");
}

static void test_document__unsupported_kinds(void **state)
{
    (void)state;
    reject(NULL,
           "{\"schemaVersion\":1,\"mediaType\":\"application/vnd.docker.distribution.manifest."
           "v1+prettyjws\"}",
           BERTH_EUNSUPPORTED, "mediaType:");
    reject("application/octet-stream", "{\"schemaVersion\":2,\"manifests\":[]}", BERTH_EUNSUPPORTED,
           "content type");
    reject(NULL,
           "{\"schemaVersion\":2,\"manifests\":[{\"mediaType\":\"a/b\",\"size\":1,\"digest\":"
           "\"sha384:aa\"}]}",
           BERTH_EUNSUPPORTED, "manifests[0].digest:");
}

static void test_document__invalid_documents_name_the_field(void **state)
{
    (void)state;
    reject(NULL,
           "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[" CFG "," CFG ","
           "{\"mediaType\":\"a/b\",\"digest\":\"sha256:00\",\"size\":1}]}",
           BERTH_EINVALID, "layers[2].digest:");
    reject(NULL, "not json", BERTH_EINVALID, "invalid JSON");
    reject(NULL, "", BERTH_EINVALID, "invalid JSON");
    reject(NULL, "{\"schemaVersion\":2,\"config\":" CFG ",\"layers\":[],\"config\":" CFG "}",
           BERTH_EINVALID, "invalid JSON");
}

static void test_document__kind_of(void **state)
{
    (void)state;
    assert_int_equal(berth_document_kind_of(BERTH_MEDIA_OCI_INDEX), BERTH_DOC_OCI_INDEX);
    assert_int_equal(berth_document_kind_of(BERTH_MEDIA_DOCKER_MANIFEST),
                     BERTH_DOC_DOCKER_MANIFEST);
    assert_int_equal(berth_document_kind_of("text/plain"), 0);
    assert_int_equal(berth_document_kind_of(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_document__oci_manifest),
        cmocka_unit_test(test_document__artifact_with_subject),
        cmocka_unit_test(test_document__index_and_docker_kinds),
        cmocka_unit_test(test_document__kind_from_content_type_then_shape),
        cmocka_unit_test(test_document__media_type_must_match_content_type),
        cmocka_unit_test(test_document__unsupported_kinds),
        cmocka_unit_test(test_document__invalid_documents_name_the_field),
        cmocka_unit_test(test_document__kind_of),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
