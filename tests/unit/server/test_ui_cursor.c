/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests of the web UI's tags cursor (src/server/ui_api.c): what is encoded decodes to the
 * same position for the same order, a cursor of the other order or any other text is refused,
 * and it is opaque (base64url: no character a URL would have to escape).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server/ui.h"

#include <berth/errors.h>

#include <string.h>

static void test_ui_cursor__round_trip(void **state)
{
    static const struct {
        bool by_pushed;
        int64_t pushed;
        const char *tag;
    } cases[] = {
        {true, 1764489600, "v1.2.3"},
        {true, 0, "latest"},
        {false, 0, "a"},
        {false, 0, "_under-score.tag"},
    };
    char cursor[BERTH__UI_CURSOR_MAX], tag[BERTH_TAG_MAX + 1];
    int64_t pushed;
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(berth__ui_cursor_encode(cursor, sizeof(cursor), cases[i].by_pushed,
                                                 cases[i].pushed, cases[i].tag),
                         0);
        assert_int_equal(strspn(cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                        "0123456789-_"),
                         strlen(cursor));
        assert_int_equal(
            berth__ui_cursor_decode(&pushed, tag, sizeof(tag), cases[i].by_pushed, cursor), 0);
        assert_string_equal(tag, cases[i].tag);
        assert_true(pushed == (cases[i].by_pushed ? cases[i].pushed : 0));
        /* the other order refuses it */
        assert_int_equal(
            berth__ui_cursor_decode(&pushed, tag, sizeof(tag), !cases[i].by_pushed, cursor),
            BERTH_EINVALID);
    }
    /* the longest tag fits */
    memset(tag, 'a', BERTH_TAG_MAX);
    tag[BERTH_TAG_MAX] = '\0';
    assert_int_equal(berth__ui_cursor_encode(cursor, sizeof(cursor), true, INT64_MAX, tag), 0);
    assert_int_equal(berth__ui_cursor_decode(&pushed, tag, sizeof(tag), true, cursor), 0);
    assert_true(pushed == INT64_MAX);
    /* too small an output */
    assert_int_equal(berth__ui_cursor_encode(cursor, 4, false, 0, "latest"), BERTH_EINVALID);
}

static void test_ui_cursor__refuses(void **state)
{
    static const char *bad[] = {
        "",         "not a cursor", "bjp2MQ=", /* padding: not base64url */
        "cHg6djE",                             /* "px:v1": no number */
        "cC0xOnYx",                            /* "p-1:v1": negative */
        "bjo",                                 /* "n:" no tag */
        "bjouLi4",                             /* "n:..." not a tag */
        "bjp2MQB4",                            /* "n:v1\0x": a NUL inside */
        "bjp2IDE",                             /* "n:v 1": a space */
    };
    char tag[BERTH_TAG_MAX + 1];
    int64_t pushed;
    (void)state;
    /* "n:v1" and "p1:v1", written by hand */
    assert_int_equal(berth__ui_cursor_decode(&pushed, tag, sizeof(tag), false, "bjp2MQ"), 0);
    assert_string_equal(tag, "v1");
    assert_int_equal(berth__ui_cursor_decode(&pushed, tag, sizeof(tag), true, "cDE6djE"), 0);
    assert_string_equal(tag, "v1");
    assert_true(pushed == 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int by_pushed = 0; by_pushed < 2; by_pushed++) {
            if (berth__ui_cursor_decode(&pushed, tag, sizeof(tag), by_pushed, bad[i]) !=
                BERTH_EINVALID) {
                fail_msg("case %zu (%s) was accepted", i, bad[i]);
            }
            assert_string_equal(berth_error_last(), "last is not a cursor of this listing");
        }
    }
    /* a tag that does not fit the caller's buffer */
    assert_int_equal(berth__ui_cursor_decode(&pushed, tag, 2, false, "bjp2MQ"), BERTH_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ui_cursor__round_trip),
        cmocka_unit_test(test_ui_cursor__refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
