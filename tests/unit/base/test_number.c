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

/* The one duration and size grammar (configuration, environment and every command). */
static void test_number__durations_and_sizes(void **state)
{
    static const struct {
        bool size;
        const char *input;
        int code;
        uint64_t value;
    } cases[] = {
        {false, "0", 0, 0}, /* `berth gc --grace 0` as BERTH_GC_GRACE=0 */
        {false, "0s", 0, 0},
        {false, "90", 0, 90},
        {false, "30s", 0, 30},
        {false, "5m", 0, 300},
        {false, "12h", 0, 43200},
        {false, "7d", 0, 604800},
        {false, "49710d", 0, 49710ull * 86400},
        {false, "4294967295", 0, 4294967295ull},
        /* a longer one would overflow a time plus it (a gc interval ran gc in a loop) */
        {false, "49711d", BERTH_EINVALID, 0},
        {false, "4294967296s", BERTH_EINVALID, 0},
        {false, "9223372036854775807s", BERTH_EINVALID, 0},
        {false, "18446744073709551615", BERTH_EINVALID, 0},
        {false, "213503982334601d", BERTH_EINVALID, 0},
        {false, "", BERTH_EINVALID, 0},
        {false, "s", BERTH_EINVALID, 0},
        {false, "1.5h", BERTH_EINVALID, 0},
        {false, "-1s", BERTH_EINVALID, 0},
        {false, " 1s", BERTH_EINVALID, 0},
        {false, "1 s", BERTH_EINVALID, 0},
        {false, "1w", BERTH_EINVALID, 0},
        {false, "1h30m", BERTH_EINVALID, 0},
        {false, "soon", BERTH_EINVALID, 0},
        {true, "0", 0, 0},
        {true, "512", 0, 512},
        {true, "512B", 0, 512},
        {true, "4K", 0, 4096},
        {true, "4KiB", 0, 4096},
        {true, "4KB", 0, 4000},
        {true, "4MiB", 0, 4194304},
        {true, "10GB", 0, 10000000000ull},
        {true, "1T", 0, 1ull << 40},
        {true, "2TiB", 0, 2ull << 40},
        {true, "4 MiB", BERTH_EINVALID, 0},
        {true, "4mib", BERTH_EINVALID, 0},
        {true, "MiB", BERTH_EINVALID, 0},
        {true, "16777216TiB", BERTH_EINVALID, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = cases[i].size ? berth_parse_size(&v, cases[i].input)
                               : berth_parse_duration(&v, cases[i].input);
        if (rc != cases[i].code || (rc == 0 && v != cases[i].value)) {
            print_error("'%s': got %d (%llu)\n", cases[i].input, rc, (unsigned long long)v);
        }
        assert_int_equal(rc, cases[i].code);
        if (rc == 0) {
            assert_int_equal(v, cases[i].value);
        } else {
            /* the message quotes the value, and names the grammar unless it is too large */
            assert_non_null(strstr(berth_error_last(), cases[i].input));
            if (!strstr(berth_error_last(), "too large")) {
                assert_non_null(strstr(berth_error_last(), cases[i].size ? "MiB" : "30s, 5m"));
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_number__table),
        cmocka_unit_test(test_number__length_bounds),
        cmocka_unit_test(test_number__durations_and_sizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
