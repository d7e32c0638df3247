/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: error responses, catalog, tag list and the oci-layout header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/api.h>
#include <berth/layout.h>

#include "oci_test.h"

static void test_api__error_response_round_trip(void **state)
{
    berth_buf in = oci_read("errors.json"), out = BERTH_BUF_INIT;
    berth_error_response *r = NULL;

    (void)state;
    assert_int_equal(berth_error_response_parse(&r, in.ptr, in.len), 0);
    assert_int_equal(r->nerrors, 2);
    assert_string_equal(r->errors[0].code, "MANIFEST_BLOB_UNKNOWN");
    assert_string_equal(r->errors[0].message, "blob unknown to registry");
    assert_non_null(strstr(r->errors[0].detail, "\"n\":[1,null]"));
    assert_null(r->errors[1].message);
    assert_null(r->errors[1].detail);
    assert_int_equal(berth_error_response_serialize(&out, r), 0);
    /* the file is already compact, with members in the serialiser's order */
    assert_int_equal(strncmp(out.ptr, in.ptr, out.len), 0);
    assert_int_equal(out.len + 1, in.len);
    berth_error_response_free(r);
    berth_buf_dispose(&in);
    berth_buf_dispose(&out);
}

static void test_api__error_detail_any_json(void **state)
{
    const char *j = "{\"errors\":[{\"code\":\"X\",\"detail\":\"text\"},{\"code\":\"Y\","
                    "\"detail\":[1,2]}],\"extra\":true}";
    berth_error_response *r = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_error_response_parse(&r, j, strlen(j)), 0);
    assert_string_equal(r->errors[0].detail, "\"text\"");
    assert_string_equal(r->errors[1].detail, "[1,2]");
    assert_int_equal(berth_error_response_serialize(&out, r), 0);
    assert_string_equal(out.ptr, j);
    berth_error_response_free(r);
    berth_buf_dispose(&out);
}

static void test_api__error_response_musts(void **state)
{
    berth_error_response *r = NULL;

    (void)state;
    assert_fails(berth_error_response_parse(&r, "{}", 2), BERTH_EINVALID, "errors:");
    assert_fails(berth_error_response_parse(&r, "{\"errors\":[{\"message\":\"m\"}]}", 28),
                 BERTH_EINVALID, "errors[0].code:");
    assert_fails(berth_error_response_parse(&r, "{\"errors\":[1]}", 14), BERTH_EINVALID,
                 "errors[0]:");
    assert_null(r);
}

static void test_api__catalog_and_tags(void **state)
{
    berth_buf c = oci_read("catalog.json"), t = oci_read("tags.json"), out = BERTH_BUF_INIT;
    berth_repository_list *rl = NULL;
    berth_tag_list *tl = NULL;

    (void)state;
    assert_int_equal(berth_repository_list_parse(&rl, c.ptr, c.len), 0);
    assert_int_equal(rl->repositories.count, 2);
    assert_string_equal(rl->repositories.items[1], "team/app/web");
    assert_int_equal(berth_repository_list_serialize(&out, rl), 0);
    assert_int_equal(strncmp(out.ptr, c.ptr, out.len), 0);
    berth_buf_clear(&out);
    assert_int_equal(berth_tag_list_parse(&tl, t.ptr, t.len), 0);
    assert_string_equal(tl->name, "library/alpine");
    assert_int_equal(tl->tags.count, 2);
    assert_int_equal(berth_tag_list_serialize(&out, tl), 0);
    assert_int_equal(strncmp(out.ptr, t.ptr, out.len), 0);
    berth_repository_list_free(rl);
    berth_tag_list_free(tl);
    berth_buf_dispose(&c);
    berth_buf_dispose(&t);
    berth_buf_dispose(&out);
}

static void test_api__empty_lists(void **state)
{
    berth_tag_list *tl = NULL;
    berth_repository_list *rl = NULL;
    berth_buf out = BERTH_BUF_INIT;

    (void)state;
    assert_int_equal(berth_tag_list_parse(&tl, "{\"name\":\"a\",\"tags\":null}", 24), 0);
    assert_int_equal(berth_tag_list_serialize(&out, tl), 0);
    assert_string_equal(out.ptr, "{\"name\":\"a\",\"tags\":[]}");
    berth_buf_clear(&out);
    assert_int_equal(berth_repository_list_parse(&rl, "{\"repositories\":[]}", 19), 0);
    assert_int_equal(berth_repository_list_serialize(&out, rl), 0);
    assert_string_equal(out.ptr, "{\"repositories\":[]}");
    berth_tag_list_free(tl);
    berth_repository_list_free(rl);
    berth_buf_dispose(&out);
}

static void test_api__list_musts(void **state)
{
    berth_tag_list *tl = NULL;
    berth_repository_list *rl = NULL;

    (void)state;
    assert_fails(berth_tag_list_parse(&tl, "{\"tags\":[]}", 11), BERTH_EINVALID, "name:");
    assert_fails(berth_tag_list_parse(&tl, "{\"name\":\"a\"}", 12), BERTH_EINVALID, "tags:");
    assert_fails(berth_tag_list_parse(&tl, "{\"name\":\"a\",\"tags\":[1]}", 23), BERTH_EINVALID,
                 "tags[0]:");
    assert_fails(berth_repository_list_parse(&rl, "{}", 2), BERTH_EINVALID, "repositories:");
    assert_fails(berth_repository_list_parse(&rl, "{\"repositories\":[\"\"]}", 21), BERTH_EINVALID,
                 "repositories[0]:");
    assert_null(tl);
    assert_null(rl);
}

static void test_api__layout_header(void **state)
{
    berth_buf in = oci_read("oci-layout"), out = BERTH_BUF_INIT;
    berth_layout_header *h = NULL;

    (void)state;
    assert_int_equal(berth_layout_header_parse(&h, in.ptr, in.len), 0);
    assert_string_equal(h->image_layout_version, BERTH_LAYOUT_VERSION);
    assert_int_equal(berth_layout_header_serialize(&out, h), 0);
    assert_string_equal(out.ptr, "{\"imageLayoutVersion\":\"1.0.0\"}");
    berth_layout_header_free(h);
    h = NULL;
    assert_fails(berth_layout_header_parse(&h, "{}", 2), BERTH_EINVALID, "imageLayoutVersion:");
    assert_fails(berth_layout_header_parse(&h, "{\"imageLayoutVersion\":1}", 24), BERTH_EINVALID,
                 "imageLayoutVersion:");
    assert_null(h);
    berth_buf_dispose(&in);
    berth_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api__error_response_round_trip),
        cmocka_unit_test(test_api__error_detail_any_json),
        cmocka_unit_test(test_api__error_response_musts),
        cmocka_unit_test(test_api__catalog_and_tags),
        cmocka_unit_test(test_api__empty_lists),
        cmocka_unit_test(test_api__list_musts),
        cmocka_unit_test(test_api__layout_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
