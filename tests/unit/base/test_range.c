/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: Content-Range of upload chunks and Range of blob GETs (RFC 9110 rules). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/range.h>

#include <string.h>

#define MAX64  "18446744073709551615"
#define OVER64 "18446744073709551616"

typedef struct cr_case {
    const char *input;
    int code;
    uint64_t start;
    uint64_t end;
} cr_case;

static void test_range__content_range_table(void **state)
{
    static const cr_case cases[] = {
        {"0-0", 0, 0, 0},
        {"0-1023", 0, 0, 1023},
        {"1024-2047", 0, 1024, 2047},
        {"  5-9\t", 0, 5, 9},
        {"bytes 0-99/100", 0, 0, 99},
        {"bytes 0-99/*", 0, 0, 99},
        {"BYTES 10-19/1000", 0, 10, 19},
        {"0-" MAX64, 0, 0, UINT64_MAX},
        {MAX64 "-" MAX64, 0, UINT64_MAX, UINT64_MAX},
        {"00-01", 0, 0, 1},
        /* order and bounds */
        {"10-9", BERTH_ERANGE, 0, 0},
        {"bytes 0-100/100", BERTH_ERANGE, 0, 0},
        {"bytes 0-0/0", BERTH_ERANGE, 0, 0},
        /* syntax */
        {"", BERTH_EINVALID, 0, 0},
        {"   ", BERTH_EINVALID, 0, 0},
        {"0", BERTH_EINVALID, 0, 0},
        {"0-", BERTH_EINVALID, 0, 0},
        {"-5", BERTH_EINVALID, 0, 0},
        {"a-b", BERTH_EINVALID, 0, 0},
        {"+1-2", BERTH_EINVALID, 0, 0},
        {"1 - 2", BERTH_EINVALID, 0, 0},
        {"1-2-3", BERTH_EINVALID, 0, 0},
        {"1-2/3", BERTH_EINVALID, 0, 0},
        {"bytes=0-1", BERTH_EINVALID, 0, 0},
        {"bytes 0-1", BERTH_EINVALID, 0, 0},
        {"bytes 0-1/", BERTH_EINVALID, 0, 0},
        {"bytes 0-1/x", BERTH_EINVALID, 0, 0},
        {"bytes 0-1/**", BERTH_EINVALID, 0, 0},
        {"bytes */100", BERTH_EINVALID, 0, 0},
        {"bytes  0-1/2", BERTH_EINVALID, 0, 0},
        {"0-" OVER64, BERTH_EINVALID, 0, 0},
        {OVER64 "-" OVER64, BERTH_EINVALID, 0, 0},
        {"bytes 0-1/" OVER64, BERTH_EINVALID, 0, 0},
        {"0-1,2-3", BERTH_EINVALID, 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_byte_range r = {7, 7};
        int rc = berth_content_range_parse(&r, cases[i].input, strlen(cases[i].input));
        if (rc != cases[i].code) {
            print_error("Content-Range '%s': got %d want %d (%s)\n", cases[i].input, rc,
                        cases[i].code, berth_error_last());
        }
        assert_int_equal(rc, cases[i].code);
        if (rc == 0) {
            assert_true(r.start == cases[i].start);
            assert_true(r.end == cases[i].end);
        } else {
            /* untouched on failure, with a message naming the header */
            assert_true(r.start == 7 && r.end == 7);
            assert_non_null(strstr(berth_error_last(), "Content-Range"));
        }
    }
}

static void test_range__content_range_not_terminated(void **state)
{
    /* only `len` bytes are read: "0-12" out of "0-1234" */
    berth_byte_range r;
    (void)state;
    assert_int_equal(berth_content_range_parse(&r, "0-1234", 4), 0);
    assert_true(r.start == 0 && r.end == 12);
    assert_int_equal(berth_content_range_parse(NULL, "0-1", 3), BERTH_EINVALID);
    /* a success leaves no stale message behind */
    assert_int_equal(berth_content_range_parse(&r, "0-1", 3), 0);
    assert_string_equal(berth_error_last(), "");
    assert_int_equal(berth_range_parse(&r, "x", 1, 10), BERTH_EINVALID);
    assert_int_equal(berth_range_parse(&r, "bytes=0-1", 9, 10), 0);
    assert_string_equal(berth_error_last(), "");
    assert_int_equal(berth_content_range_parse(&r, NULL, 0), BERTH_EINVALID);
}

typedef struct range_case {
    const char *input;
    uint64_t size;
    int code;
    uint64_t start;
    uint64_t end;
} range_case;

static void test_range__range_table(void **state)
{
    static const range_case cases[] = {
        /* int-range */
        {"bytes=0-0", 10, 0, 0, 0},
        {"bytes=0-9", 10, 0, 0, 9},
        {"bytes=2-5", 10, 0, 2, 5},
        {"bytes=9-9", 10, 0, 9, 9},
        {"bytes=5-100", 10, 0, 5, 9},
        {"bytes=0-" OVER64 "0", 10, 0, 0, 9},
        {"bytes=3-", 10, 0, 3, 9},
        {"bytes=0-", 1, 0, 0, 0},
        {"Bytes=1-2", 10, 0, 1, 2},
        {"bytes = 1-2", 10, BERTH_EINVALID, 0, 0},
        {" bytes=1-2 ", 10, 0, 1, 2},
        {"bytes=1-2,", 10, 0, 1, 2},
        {"bytes=, 1-2 ,", 10, 0, 1, 2},
        {"bytes=10-", 10, BERTH_ERANGE, 0, 0},
        {"bytes=10-20", 10, BERTH_ERANGE, 0, 0},
        {"bytes=0-", 0, BERTH_ERANGE, 0, 0},
        {"bytes=" OVER64 "-", 10, BERTH_ERANGE, 0, 0},
        {"bytes=5-4", 10, BERTH_ERANGE, 0, 0}, /* last before first: rejected (416) */
        /* suffix-range */
        {"bytes=-1", 10, 0, 9, 9},
        {"bytes=-4", 10, 0, 6, 9},
        {"bytes=-10", 10, 0, 0, 9},
        {"bytes=-500", 10, 0, 0, 9},
        {"bytes=-" OVER64, 10, 0, 0, 9},
        {"bytes=-0", 10, BERTH_ERANGE, 0, 0},
        {"bytes=-5", 0, BERTH_ERANGE, 0, 0},
        /* large sizes */
        {"bytes=0-", UINT64_MAX, 0, 0, UINT64_MAX - 1},
        {"bytes=-1", UINT64_MAX, 0, UINT64_MAX - 1, UINT64_MAX - 1},
        /* several ranges, other units */
        {"bytes=0-1,3-4", 10, BERTH_EUNSUPPORTED, 0, 0},
        {"bytes=0-1, -2", 10, BERTH_EUNSUPPORTED, 0, 0},
        {"items=0-1", 10, BERTH_EUNSUPPORTED, 0, 0},
        {"bytes=0-1,x", 10, BERTH_EINVALID, 0, 0},
        /* syntax */
        {"", 10, BERTH_EINVALID, 0, 0},
        {"bytes", 10, BERTH_EINVALID, 0, 0},
        {"bytes=", 10, BERTH_EINVALID, 0, 0},
        {"bytes=,", 10, BERTH_EINVALID, 0, 0},
        {"=0-1", 10, BERTH_EINVALID, 0, 0},
        {"bytes=-", 10, BERTH_EINVALID, 0, 0},
        {"bytes=--1", 10, BERTH_EINVALID, 0, 0},
        {"bytes=1", 10, BERTH_EINVALID, 0, 0},
        {"bytes=a-b", 10, BERTH_EINVALID, 0, 0},
        {"bytes=1-b", 10, BERTH_EINVALID, 0, 0},
        {"bytes=+1-2", 10, BERTH_EINVALID, 0, 0},
        {"bytes=1 -2", 10, BERTH_EINVALID, 0, 0},
        {"bytes=1-2-3", 10, BERTH_EINVALID, 0, 0},
        {"by tes=1-2", 10, BERTH_EINVALID, 0, 0},
        {"bytes 0-1/10", 10, BERTH_EINVALID, 0, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_byte_range r = {7, 7};
        int rc = berth_range_parse(&r, cases[i].input, strlen(cases[i].input), cases[i].size);
        if (rc != cases[i].code) {
            print_error("Range '%s' size %llu: got %d want %d (%s)\n", cases[i].input,
                        (unsigned long long)cases[i].size, rc, cases[i].code, berth_error_last());
        }
        assert_int_equal(rc, cases[i].code);
        if (rc == 0) {
            assert_true(r.start == cases[i].start);
            assert_true(r.end == cases[i].end);
            assert_true(r.start <= r.end && r.end < cases[i].size);
        } else {
            assert_true(r.start == 7 && r.end == 7);
            assert_non_null(strstr(berth_error_last(), "Range"));
        }
    }
    assert_int_equal(berth_range_parse(NULL, "bytes=0-1", 9, 10), BERTH_EINVALID);
}

static void test_range__length(void **state)
{
    berth_byte_range a = {0, 0}, b = {2, 5}, c = {0, UINT64_MAX}, d = {1, UINT64_MAX};
    (void)state;
    assert_true(berth_range_length(&a) == 1);
    assert_true(berth_range_length(&b) == 4);
    assert_true(berth_range_length(&c) == UINT64_MAX);
    assert_true(berth_range_length(&d) == UINT64_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range__content_range_table),
        cmocka_unit_test(test_range__content_range_not_terminated),
        cmocka_unit_test(test_range__range_table),
        cmocka_unit_test(test_range__length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
