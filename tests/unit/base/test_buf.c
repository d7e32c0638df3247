/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: berth_buf growth, the ceiling, printf, clear, detach and dispose. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/buf.h>
#include <berth/errors.h>

#include <stdlib.h>
#include <string.h>

static void test_buf__empty(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    assert_null(b.ptr);
    assert_string_equal(berth_buf_cstr(&b), "");
    berth_buf_clear(&b);
    assert_int_equal(berth_buf_put(&b, "", 0), 0);
    assert_non_null(b.ptr);
    assert_int_equal(b.len, 0);
    assert_string_equal(berth_buf_cstr(&b), "");
    berth_buf_dispose(&b);
    assert_null(b.ptr);
    berth_buf_dispose(&b); /* twice is fine */
}

static void test_buf__growth(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    for (size_t i = 0; i < 100000; i++) {
        char c = (char)('a' + i % 26);
        assert_int_equal(berth_buf_put(&b, &c, 1), 0);
        assert_int_equal(b.len, i + 1);
        assert_true(b.cap > b.len);
        assert_int_equal(b.ptr[b.len], '\0');
    }
    for (size_t i = 0; i < 100000; i++) {
        assert_int_equal(b.ptr[i], (char)('a' + i % 26));
    }
    assert_int_equal(strlen(berth_buf_cstr(&b)), 100000);
    /* one large append */
    char *big = malloc(1 << 20);
    assert_non_null(big);
    memset(big, 'z', 1 << 20);
    assert_int_equal(berth_buf_put(&b, big, 1 << 20), 0);
    assert_int_equal(b.len, 100000 + (1 << 20));
    assert_int_equal(b.ptr[b.len - 1], 'z');
    assert_int_equal(b.ptr[b.len], '\0');
    free(big);
    berth_buf_dispose(&b);
}

static void test_buf__puts_and_printf(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_buf_puts(&b, "hello"), 0);
    assert_int_equal(berth_buf_printf(&b, ", %s #%d of %zu", "world", 3, (size_t)7), 0);
    assert_string_equal(berth_buf_cstr(&b), "hello, world #3 of 7");
    assert_int_equal(b.len, strlen("hello, world #3 of 7"));
    assert_int_equal(berth_buf_printf(&b, "%s", ""), 0);
    assert_int_equal(b.len, strlen("hello, world #3 of 7"));
    /* a long printf forces growth inside printf */
    assert_int_equal(berth_buf_printf(&b, "%5000d|", 1), 0);
    assert_int_equal(b.len, strlen("hello, world #3 of 7") + 5001);
    assert_int_equal(b.ptr[b.len - 1], '|');
    assert_int_equal(b.ptr[b.len - 2], '1');
    berth_buf_dispose(&b);
}

static void test_buf__ceiling(void **state)
{
    berth_buf b = BERTH_BUF_INIT_MAX(10);
    (void)state;
    assert_int_equal(berth_buf_put(&b, "12345678", 8), 0);
    /* over the ceiling: refused and the buffer unchanged */
    assert_int_equal(berth_buf_put(&b, "abc", 3), BERTH_ETOOBIG);
    assert_non_null(strstr(berth_error_last(), "10"));
    assert_int_equal(b.len, 8);
    assert_string_equal(berth_buf_cstr(&b), "12345678");
    assert_int_equal(berth_buf_printf(&b, "%s", "xyz"), BERTH_ETOOBIG);
    assert_string_equal(berth_buf_cstr(&b), "12345678");
    assert_int_equal(berth_buf_puts(&b, "xyz"), BERTH_ETOOBIG);
    assert_int_equal(b.len, 8);
    /* exactly at the ceiling is fine */
    assert_int_equal(berth_buf_put(&b, "9", 1), 0);
    assert_int_equal(berth_buf_printf(&b, "%d", 0), 0);
    assert_int_equal(b.len, 10);
    assert_string_equal(berth_buf_cstr(&b), "1234567890");
    assert_int_equal(berth_buf_put(&b, "x", 1), BERTH_ETOOBIG);
    assert_int_equal(berth_buf_put(&b, "", 0), 0);
    assert_true(b.cap <= 11);
    /* clear keeps memory and the ceiling */
    berth_buf_clear(&b);
    assert_int_equal(b.len, 0);
    assert_non_null(b.ptr);
    assert_string_equal(berth_buf_cstr(&b), "");
    assert_int_equal(berth_buf_put(&b, "0123456789A", 11), BERTH_ETOOBIG);
    /* dispose keeps the ceiling */
    berth_buf_dispose(&b);
    assert_int_equal(b.max, 10);
    assert_int_equal(berth_buf_put(&b, "0123456789A", 11), BERTH_ETOOBIG);
    assert_null(b.ptr);
    berth_buf_dispose(&b);
}

static void test_buf__grow_overflow(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_buf_puts(&b, "abc"), 0);
    assert_int_equal(berth_buf_grow(&b, SIZE_MAX), BERTH_ETOOBIG);
    assert_int_equal(berth_buf_grow(&b, SIZE_MAX - 3), BERTH_ETOOBIG);
    assert_string_equal(berth_buf_cstr(&b), "abc");
    assert_int_equal(berth_buf_grow(&b, 1000), 0);
    assert_true(b.cap >= 1004);
    assert_int_equal(b.len, 3);
    assert_string_equal(berth_buf_cstr(&b), "abc");
    berth_buf_dispose(&b);
}

static void test_buf__detach(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    char *s;
    (void)state;
    assert_int_equal(berth_buf_puts(&b, "owned text"), 0);
    s = berth_buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "owned text");
    assert_null(b.ptr);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.cap, 0);
    assert_string_equal(berth_buf_cstr(&b), "");
    free(s);
    /* the buffer is usable again */
    assert_int_equal(berth_buf_puts(&b, "again"), 0);
    assert_string_equal(berth_buf_cstr(&b), "again");
    berth_buf_dispose(&b);
    /* detaching an empty buffer gives an allocated "" */
    s = berth_buf_detach(&b);
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf__empty),           cmocka_unit_test(test_buf__growth),
        cmocka_unit_test(test_buf__puts_and_printf), cmocka_unit_test(test_buf__ceiling),
        cmocka_unit_test(test_buf__grow_overflow),   cmocka_unit_test(test_buf__detach),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
