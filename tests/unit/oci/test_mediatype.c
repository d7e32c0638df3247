/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the media type grammar (RFC 6838 restricted names) and the constants. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <berth/mediatype.h>

static void test_mediatype__grammar_table(void **state)
{
    static const struct {
        const char *s;
        bool ok;
    } table[] = {
        {BERTH_MEDIA_OCI_MANIFEST, true},
        {BERTH_MEDIA_OCI_LAYER_ND_ZSTD, true},
        {BERTH_MEDIA_DOCKER_FOREIGN, true},
        {"text/plain", true},
        {"a/b", true},
        {"application/vnd.example+json", true},
        {"x/y!#$&-^_.+", true},
        {"x/!y", false},
        {"A1/B2", true},
        {"", false},
        {"application", false},
        {"application/", false},
        {"/json", false},
        {"application/json; charset=utf-8", false},
        {"application/json;charset=utf-8", false},
        {"application/json ", false},
        {" application/json", false},
        {"application//json", false},
        {"application/json/x", false},
        {"+application/json", false},
        {"application/.json", false},
        {"appli cation/json", false},
        {"application/js\"on", false},
        {"application/js(on", false},
        {"t\xc3\xa9xt/plain", false},
    };
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (berth_media_type_valid(table[i].s) != table[i].ok) {
            print_error("'%s': want %d\n", table[i].s, table[i].ok);
            fail();
        }
    }
    assert_false(berth_media_type_valid(NULL));
}

static void test_mediatype__name_length_limit(void **state)
{
    char s[300];

    (void)state;
    memset(s, 'a', sizeof(s));
    s[127] = '/';
    s[128] = 'b';
    s[129] = '\0';
    assert_true(berth_media_type_valid(s)); /* 127 + "/" + 1 */
    s[127] = 'a';
    s[128] = '/';
    s[129] = 'b';
    s[130] = '\0';
    assert_false(berth_media_type_valid(s)); /* 128-character type */
    memset(s, 'a', sizeof(s));
    s[1] = '/';
    s[2 + 127] = '\0';
    assert_true(berth_media_type_valid(s));
    s[2 + 127] = 'a';
    s[2 + 128] = '\0';
    assert_false(berth_media_type_valid(s));
}

static void test_mediatype__nondistributable(void **state)
{
    (void)state;
    assert_true(berth_media_type_is_nondistributable(BERTH_MEDIA_OCI_LAYER_ND_TAR));
    assert_true(berth_media_type_is_nondistributable(BERTH_MEDIA_OCI_LAYER_ND_GZIP));
    assert_true(berth_media_type_is_nondistributable(BERTH_MEDIA_OCI_LAYER_ND_ZSTD));
    assert_true(berth_media_type_is_nondistributable(BERTH_MEDIA_DOCKER_FOREIGN));
    assert_false(berth_media_type_is_nondistributable(BERTH_MEDIA_OCI_LAYER_GZIP));
    assert_false(berth_media_type_is_nondistributable(BERTH_MEDIA_DOCKER_LAYER));
    assert_false(berth_media_type_is_nondistributable(NULL));
}

static void test_mediatype__constants(void **state)
{
    (void)state;
    assert_string_equal(BERTH_MEDIA_OCI_EMPTY, "application/vnd.oci.empty.v1+json");
    assert_string_equal(BERTH_MEDIA_OCI_LAYOUT, "application/vnd.oci.layout.header.v1+json");
    assert_string_equal(BERTH_MEDIA_OCI_DESCRIPTOR, "application/vnd.oci.descriptor.v1+json");
    assert_string_equal(BERTH_MEDIA_DOCKER_CONFIG,
                        "application/vnd.docker.container.image.v1+json");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mediatype__grammar_table),
        cmocka_unit_test(test_mediatype__name_length_limit),
        cmocka_unit_test(test_mediatype__nondistributable),
        cmocka_unit_test(test_mediatype__constants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
