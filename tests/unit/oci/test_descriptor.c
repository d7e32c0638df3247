/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: descriptors and platforms: round trips and one test per MUST that can break. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/descriptor.h>
#include <berth/mediatype.h>

#include "oci_test.h"

#define D1 "sha256:5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270"
#define MT "\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\""

/* Parse `json`, which must fail with `code` naming `field`. */
static void reject(const char *json, int code, const char *field)
{
    berth_descriptor *d = NULL;
    assert_fails(berth_descriptor_parse(&d, json, strlen(json)), code, field);
    assert_null(d);
}

static void test_descriptor__round_trip_keeps_everything(void **state)
{
    berth_buf in = oci_read("descriptor.json"), s1 = BERTH_BUF_INIT, s2 = BERTH_BUF_INIT;
    berth_descriptor *d = NULL, *d2 = NULL;

    (void)state;
    assert_int_equal(berth_descriptor_parse(&d, in.ptr, in.len), 0);
    assert_string_equal(d->media_type, BERTH_MEDIA_OCI_MANIFEST);
    assert_string_equal(d->digest.str, D1);
    assert_int_equal(d->size, 7682);
    assert_int_equal(d->urls.count, 1);
    assert_string_equal(berth_map_get(&d->annotations, "org.opencontainers.image.ref.name"), "v1");
    assert_non_null(d->platform);
    assert_string_equal(d->platform->architecture, "arm64");
    assert_string_equal(d->platform->variant, "v8");
    assert_string_equal(d->platform->extra, "{\"com.example.x\":true}");
    assert_int_equal(berth_descriptor_serialize(&s1, d), 0);
    assert_non_null(strstr(s1.ptr, "\"com.example.x\":true"));
    assert_int_equal(berth_descriptor_parse(&d2, s1.ptr, s1.len), 0);
    assert_int_equal(berth_descriptor_serialize(&s2, d2), 0);
    assert_string_equal(s1.ptr, s2.ptr);
    berth_descriptor_free(d);
    berth_descriptor_free(d2);
    berth_buf_dispose(&in);
    berth_buf_dispose(&s1);
    berth_buf_dispose(&s2);
}

static void test_descriptor__unknown_fields_kept(void **state)
{
    const char *j = "{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"x-new\":{\"a\":[1,2]},\"z\":null}";
    berth_descriptor *d = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_descriptor_parse(&d, j, strlen(j)), 0);
    assert_string_equal(d->extra, "{\"x-new\":{\"a\":[1,2]},\"z\":null}");
    assert_int_equal(berth_descriptor_serialize(&out, d), 0);
    assert_string_equal(out.ptr, "{" MT ",\"digest\":\"" D1
                                 "\",\"size\":1,\"x-new\":{\"a\":[1,2]},\"z\":null}");
    berth_descriptor_free(d);
    berth_buf_dispose(&out);
}

static void test_descriptor__embedded_data(void **state)
{
    const char *j = "{\"mediaType\":\"" BERTH_MEDIA_OCI_EMPTY
                    "\",\"digest\":\"" BERTH_EMPTY_JSON_DIGEST "\",\"size\":2,\"data\":\"e30=\"}";
    berth_descriptor *d = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_descriptor_parse(&d, j, strlen(j)), 0);
    assert_true(d->has_data);
    assert_int_equal(d->data_len, 2);
    assert_memory_equal(d->data, "{}", 2);
    assert_int_equal(berth_descriptor_serialize(&out, d), 0);
    assert_string_equal(out.ptr, j);
    berth_descriptor_free(d);
    berth_buf_dispose(&out);
}

static void test_descriptor__empty_data_is_data(void **state)
{
    const char *j = "{\"mediaType\":\"a/b\",\"digest\":\"sha256:"
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\","
                    "\"size\":0,\"data\":\"\"}";
    berth_descriptor *d = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_descriptor_parse(&d, j, strlen(j)), 0);
    assert_true(d->has_data);
    assert_int_equal(d->data_len, 0);
    assert_int_equal(berth_descriptor_serialize(&out, d), 0);
    assert_string_equal(out.ptr, j);
    berth_descriptor_free(d);
    berth_buf_dispose(&out);
}

static void test_descriptor__data_must_match_size(void **state)
{
    (void)state;
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" BERTH_EMPTY_JSON_DIGEST
           "\",\"size\":3,\"data\":\"e30=\"}",
           BERTH_EINVALID, "data:");
}

static void test_descriptor__data_must_match_digest(void **state)
{
    (void)state;
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2,\"data\":\"e30=\"}",
           BERTH_EINVALID, "data:");
}

static void test_descriptor__data_must_be_base64(void **state)
{
    (void)state;
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2,\"data\":\"e30\"}",
           BERTH_EINVALID, "data:");
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2,\"data\":\"e3!=\"}",
           BERTH_EINVALID, "data:");
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2,\"data\":\"=e30\"}",
           BERTH_EINVALID, "data:");
    reject("{\"mediaType\":\"a/b\",\"digest\":\"" D1 "\",\"size\":2,\"data\":3}", BERTH_EINVALID,
           "data:");
}

static void test_descriptor__media_type_required_and_valid(void **state)
{
    (void)state;
    reject("{\"digest\":\"" D1 "\",\"size\":1}", BERTH_EINVALID, "mediaType:");
    reject("{\"mediaType\":\"json\",\"digest\":\"" D1 "\",\"size\":1}", BERTH_EINVALID,
           "mediaType:");
    reject("{\"mediaType\":7,\"digest\":\"" D1 "\",\"size\":1}", BERTH_EINVALID, "mediaType:");
}

static void test_descriptor__digest_required_and_valid(void **state)
{
    (void)state;
    reject("{" MT ",\"size\":1}", BERTH_EINVALID, "digest:");
    reject("{" MT ",\"digest\":\"sha256:abc\",\"size\":1}", BERTH_EINVALID, "digest:");
    reject("{" MT ",\"digest\":\"sha256:"
           "5B0BCABD1ED22E9FB1310CF6C2DEC7CDEF19F0AD69EFA1F392E94A4333501270\",\"size\":1}",
           BERTH_EINVALID, "digest:");
    reject("{" MT ",\"digest\":\"sha512:"
           "5b0bcabd1ed22e9fb1310cf6c2dec7cdef19f0ad69efa1f392e94a4333501270\",\"size\":1}",
           BERTH_EINVALID, "digest:");
    reject("{" MT ",\"digest\":\"md5:d41d8cd98f00b204e9800998ecf8427e\",\"size\":1}",
           BERTH_EUNSUPPORTED, "digest:");
}

static void test_descriptor__size_required_integer_not_negative(void **state)
{
    (void)state;
    reject("{" MT ",\"digest\":\"" D1 "\"}", BERTH_EINVALID, "size:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":-1}", BERTH_EINVALID, "size:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1.5}", BERTH_EINVALID, "size:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1.0}", BERTH_EINVALID, "size:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":\"1\"}", BERTH_EINVALID, "size:");
}

static void test_descriptor__duplicate_keys_rejected(void **state)
{
    (void)state;
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"size\":2}", BERTH_EINVALID, "invalid JSON");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"annotations\":{\"a\":\"1\",\"a\":\"2\"}}",
           BERTH_EINVALID, "invalid JSON");
}

static void test_descriptor__field_types(void **state)
{
    (void)state;
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":\"x\"}", BERTH_EINVALID, "urls:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":[1]}", BERTH_EINVALID, "urls[0]:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"annotations\":{\"a\":1}}", BERTH_EINVALID,
           "annotations.a:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"artifactType\":\"nope\"}", BERTH_EINVALID,
           "artifactType:");
    reject("[1]", BERTH_EINVALID, "document is not");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1} x", BERTH_EINVALID, "invalid JSON");
}

static void test_descriptor__urls_are_uris(void **state)
{
    (void)state;
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":[\"https://a/b\",\"\"]}",
           BERTH_EINVALID, "urls[1]:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":[\"no scheme\"]}", BERTH_EINVALID,
           "urls[0]:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":[\"http://a/b c\"]}", BERTH_EINVALID,
           "urls[0]:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"urls\":[\"http://a/%zz\"]}", BERTH_EINVALID,
           "urls[0]:");
}

static void test_descriptor__platform_needs_architecture_and_os(void **state)
{
    (void)state;
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"os\":\"linux\"}}",
           BERTH_EINVALID, "platform.architecture:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"architecture\":\"amd64\"}}",
           BERTH_EINVALID, "platform.os:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"platform\":[]}", BERTH_EINVALID,
           "platform:");
    reject("{" MT ",\"digest\":\"" D1 "\",\"size\":1,\"platform\":{\"architecture\":\"amd64\","
           "\"os\":\"linux\",\"os.features\":[true]}}",
           BERTH_EINVALID, "platform.os.features[0]:");
}

static void test_descriptor__platform_round_trip(void **state)
{
    const char *j = "{\"architecture\":\"amd64\",\"os\":\"windows\",\"os.version\":"
                    "\"10.0.17763.1817\",\"os.features\":[\"win32k\"],\"variant\":\"v3\"}";
    berth_platform *p = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_platform_parse(&p, j, strlen(j)), 0);
    assert_string_equal(p->os_version, "10.0.17763.1817");
    assert_int_equal(p->os_features.count, 1);
    assert_int_equal(berth_platform_serialize(&out, p), 0);
    assert_string_equal(out.ptr, j);
    berth_platform_free(p);
    assert_fails(berth_platform_parse(&p, "{\"os\":\"linux\"}", 14), BERTH_EINVALID,
                 "architecture:");
    berth_buf_dispose(&out);
}

static void test_descriptor__validate_hand_built(void **state)
{
    berth_descriptor d;

    (void)state;
    memset(&d, 0, sizeof(d));
    assert_fails(berth_descriptor_validate(&d), BERTH_EINVALID, "mediaType:");
    d.media_type = (char *)(uintptr_t) "a/b";
    assert_fails(berth_descriptor_validate(&d), BERTH_EINVALID, "digest:");
    assert_int_equal(berth_digest_parse_str(&d.digest, D1), 0);
    d.size = -5;
    assert_fails(berth_descriptor_validate(&d), BERTH_EINVALID, "size:");
    d.size = 5;
    assert_int_equal(berth_descriptor_validate(&d), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptor__round_trip_keeps_everything),
        cmocka_unit_test(test_descriptor__unknown_fields_kept),
        cmocka_unit_test(test_descriptor__embedded_data),
        cmocka_unit_test(test_descriptor__empty_data_is_data),
        cmocka_unit_test(test_descriptor__data_must_match_size),
        cmocka_unit_test(test_descriptor__data_must_match_digest),
        cmocka_unit_test(test_descriptor__data_must_be_base64),
        cmocka_unit_test(test_descriptor__media_type_required_and_valid),
        cmocka_unit_test(test_descriptor__digest_required_and_valid),
        cmocka_unit_test(test_descriptor__size_required_integer_not_negative),
        cmocka_unit_test(test_descriptor__duplicate_keys_rejected),
        cmocka_unit_test(test_descriptor__field_types),
        cmocka_unit_test(test_descriptor__urls_are_uris),
        cmocka_unit_test(test_descriptor__platform_needs_architecture_and_os),
        cmocka_unit_test(test_descriptor__platform_round_trip),
        cmocka_unit_test(test_descriptor__validate_hand_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
