/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: error responses, catalog, tag list and the oci-layout header. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/api.h>
#include <berth/layout.h>

#include "oci/json.h"
#include "oci_test.h"

#include <jansson.h>

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

/* Strings that jansson writes with each of its escapes, and UTF-8 it leaves alone. */
static const char *const tricky[] = {
    "plain",
    "",
    "a\"b",
    "back\\slash",
    "sl/ash",
    "\b\f\n\r\t",
    "\x01\x1f\x7f",
    "caf\xc3\xa9",
    "\xe2\x82\xac",
    "\xf0\x9f\x90\xb3",
    "mixed \"\xc3\xa9\"\n end",
};

/* Lists without extra members are streamed (berth__json_put_string): byte for byte what
   jansson writes for the same tree. */
static void test_api__streamed_lists_are_what_jansson_writes(void **state)
{
    size_t n = sizeof(tricky) / sizeof(tricky[0]);
    berth_tag_list tl = {(char *)(uintptr_t) "team/app", {(char **)(uintptr_t)tricky, n}, NULL};
    berth_repository_list rl = {{(char **)(uintptr_t)tricky, n}, NULL};
    json_t *tags = json_array(), *o;
    berth_buf out = BERTH_BUF_INIT;
    char *want;

    (void)state;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(json_array_append_new(tags, json_string(tricky[i])), 0);
    }
    o = json_pack("{s:s, s:O}", "name", "team/app", "tags", tags);
    want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_int_equal(berth_tag_list_serialize(&out, &tl), 0);
    assert_string_equal(out.ptr, want);
    free(want);
    json_decref(o);
    berth_buf_clear(&out);
    o = json_pack("{s:O}", "repositories", tags);
    want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_int_equal(berth_repository_list_serialize(&out, &rl), 0);
    assert_string_equal(out.ptr, want);
    free(want);
    json_decref(o);
    json_decref(tags);
    berth_buf_dispose(&out);
}

static void test_api__json_strings_are_always_json(void **state)
{
    static const struct {
        const char *in;
        size_t len;
        const char *want;
    } cases[] = {
        {"ok", 2, "\"ok\""},
        {"a\0b", 3, "\"a\\u0000b\""},
        {"\x1b[0m", 4, "\"\\u001B[0m\""},
        /* bytes that are not UTF-8 become U+FFFD, one each */
        {"a\xff-", 3, "\"a\xef\xbf\xbd-\""},
        {"\xc3", 1, "\"\xef\xbf\xbd\""},                                 /* truncated sequence */
        {"\xc0\xaf", 2, "\"\xef\xbf\xbd\xef\xbf\xbd\""},                 /* overlong '/' */
        {"\xed\xa0\x80", 3, "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* surrogate */
        {"\xf4\x90\x80\x80", 4,
         "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\""}, /* over U+10FFFF */
        {"\xc3\xa9\xff\n", 4, "\"\xc3\xa9\xef\xbf\xbd\\n\""},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_buf out = BERTH_BUF_INIT;
        json_t *v;
        assert_int_equal(berth__json_put_string(&out, cases[i].in, cases[i].len), 0);
        assert_string_equal(out.ptr, cases[i].want);
        v = json_loadb(out.ptr, out.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        assert_non_null(v);
        json_decref(v);
        berth_buf_dispose(&out);
    }
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
        cmocka_unit_test(test_api__streamed_lists_are_what_jansson_writes),
        cmocka_unit_test(test_api__json_strings_are_always_json),
        cmocka_unit_test(test_api__layout_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
