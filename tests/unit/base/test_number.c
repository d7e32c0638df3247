/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: berth_parse_u64, the one checked numeric parser. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/common.h>
#include <berth/errors.h>

#include <string.h>

typedef struct number_case {
    const char *input;
    uint64_t max;
    int code;
    uint64_t value;
} number_case;

static void test_number__table(void **state)
{
    static const number_case cases[] = {
        {"0", UINT64_MAX, 0, 0},
        {"7", UINT64_MAX, 0, 7},
        {"0042", UINT64_MAX, 0, 42},
        {"1234567890", UINT64_MAX, 0, 1234567890u},
        {"18446744073709551615", UINT64_MAX, 0, UINT64_MAX},
        {"018446744073709551615", UINT64_MAX, 0, UINT64_MAX},
        {"18446744073709551616", UINT64_MAX, BERTH_EINVALID, 0},
        {"18446744073709551620", UINT64_MAX, BERTH_EINVALID, 0},
        {"99999999999999999999", UINT64_MAX, BERTH_EINVALID, 0},
        {"184467440737095516150", UINT64_MAX, BERTH_EINVALID, 0},
        /* a smaller maximum */
        {"65535", 65535, 0, 65535},
        {"65536", 65535, BERTH_EINVALID, 0},
        {"100000", 65535, BERTH_EINVALID, 0},
        {"0", 0, 0, 0},
        {"1", 0, BERTH_EINVALID, 0},
        {"9", 9, 0, 9},
        {"10", 9, BERTH_EINVALID, 0},
        /* not numbers */
        {"", UINT64_MAX, BERTH_EINVALID, 0},
        {"-1", UINT64_MAX, BERTH_EINVALID, 0},
        {"+1", UINT64_MAX, BERTH_EINVALID, 0},
        {" 1", UINT64_MAX, BERTH_EINVALID, 0},
        {"1 ", UINT64_MAX, BERTH_EINVALID, 0},
        {"0x10", UINT64_MAX, BERTH_EINVALID, 0},
        {"1e3", UINT64_MAX, BERTH_EINVALID, 0},
        {"1.5", UINT64_MAX, BERTH_EINVALID, 0},
        {"12a", UINT64_MAX, BERTH_EINVALID, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = berth_parse_u64(&v, cases[i].input, strlen(cases[i].input), cases[i].max);
        if (rc != cases[i].code) {
            print_error("number '%s': got %d want %d\n", cases[i].input, rc, cases[i].code);
        }
        assert_int_equal(rc, cases[i].code);
        if (rc == 0) {
            assert_true(v == cases[i].value);
        } else {
            assert_true(v == 12345); /* untouched on failure */
            assert_true(berth_error_last()[0] != '\0');
        }
    }
}

static void test_number__length_bounds(void **state)
{
    uint64_t v = 0;
    (void)state;
    /* only `len` bytes are read */
    assert_int_equal(berth_parse_u64(&v, "123abc", 3, UINT64_MAX), 0);
    assert_true(v == 123);
    assert_int_equal(berth_parse_u64(&v, "5-7", 1, UINT64_MAX), 0);
    assert_true(v == 5);
    assert_int_equal(berth_parse_u64(&v, "123", 0, UINT64_MAX), BERTH_EINVALID);
    assert_int_equal(berth_parse_u64(&v, NULL, 0, UINT64_MAX), BERTH_EINVALID);
    assert_int_equal(berth_parse_u64(&v, "1234", 4, 1000), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "large"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number__table),
        cmocka_unit_test(test_number__length_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
