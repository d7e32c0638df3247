/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the per-thread last error (set, prefix, clear, names). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/errors.h>

#include <pthread.h>
#include <string.h>

static void test_errors__set_and_clear(void **state)
{
    (void)state;
    berth_error_clear();
    assert_string_equal(berth_error_last(), "");
    assert_int_equal(berth_error_last_code(), BERTH_OK);
    assert_int_equal(berth_error_set(BERTH_ENOTFOUND, "blob %s not found (%d)", "x", 3),
                     BERTH_ENOTFOUND);
    assert_string_equal(berth_error_last(), "blob x not found (3)");
    assert_int_equal(berth_error_last_code(), BERTH_ENOTFOUND);
    /* a new failure replaces the old one */
    assert_int_equal(berth_error_set(BERTH_EINVALID, "bad"), BERTH_EINVALID);
    assert_string_equal(berth_error_last(), "bad");
    assert_int_equal(berth_error_last_code(), BERTH_EINVALID);
    berth_error_clear();
    assert_string_equal(berth_error_last(), "");
    assert_int_equal(berth_error_last_code(), BERTH_OK);
}

static void test_errors__prefix(void **state)
{
    (void)state;
    berth_error_set(BERTH_EINVALID, ".digest: bad");
    berth_error_prefix("layers[%d]", 2);
    assert_string_equal(berth_error_last(), "layers[2].digest: bad");
    berth_error_prefix("manifest ");
    assert_string_equal(berth_error_last(), "manifest layers[2].digest: bad");
    assert_int_equal(berth_error_last_code(), BERTH_EINVALID); /* the code is kept */
    /* prefix on an empty message */
    berth_error_clear();
    berth_error_prefix("just: ");
    assert_string_equal(berth_error_last(), "just: ");
}

static void test_errors__long_messages(void **state)
{
    char big[4096];
    size_t n;
    (void)state;
    memset(big, 'm', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    /* messages are truncated, never overflow */
    berth_error_set(BERTH_ERROR, "%s", big);
    n = strlen(berth_error_last());
    assert_true(n > 0 && n < sizeof(big) - 1);
    berth_error_prefix("%s", big);
    assert_true(strlen(berth_error_last()) <= n);
    berth_error_set(BERTH_ERROR, "%s", big);
    berth_error_prefix("short: ");
    assert_int_equal(strncmp(berth_error_last(), "short: mmm", 10), 0);
    assert_true(strlen(berth_error_last()) == n);
    berth_error_clear();
}

static void test_errors__names(void **state)
{
    static const struct {
        int code;
        const char *name;
    } cases[] = {
        {BERTH_OK, "OK"},
        {BERTH_ERROR, "ERROR"},
        {BERTH_ENOMEM, "ENOMEM"},
        {BERTH_ENOTFOUND, "ENOTFOUND"},
        {BERTH_EEXISTS, "EEXISTS"},
        {BERTH_EINVALID, "EINVALID"},
        {BERTH_EMISMATCH, "EMISMATCH"},
        {BERTH_ETOOBIG, "ETOOBIG"},
        {BERTH_EUNSUPPORTED, "EUNSUPPORTED"},
        {BERTH_EIO, "EIO"},
        {BERTH_ERANGE, "ERANGE"},
        {BERTH_EUNAUTHORIZED, "EUNAUTHORIZED"},
        {BERTH_EDENIED, "EDENIED"},
        {BERTH_ENETWORK, "ENETWORK"},
        {BERTH_EBUSY, "EBUSY"},
        {-999, "EUNKNOWN"},
        {1, "EUNKNOWN"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_string_equal(berth_error_name(cases[i].code), cases[i].name);
    }
}

static void *other_thread(void *arg)
{
    int *seen = arg;
    /* this thread has its own slot: nothing recorded yet */
    seen[0] = berth_error_last()[0] == '\0' && berth_error_last_code() == BERTH_OK;
    berth_error_set(BERTH_EIO, "from the other thread");
    seen[1] = strcmp(berth_error_last(), "from the other thread") == 0;
    return NULL;
}

static void test_errors__per_thread(void **state)
{
    pthread_t t;
    int seen[2] = {0, 0};
    (void)state;
    berth_error_set(BERTH_EEXISTS, "main thread");
    assert_int_equal(pthread_create(&t, NULL, other_thread, seen), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(seen[0]);
    assert_true(seen[1]);
    assert_string_equal(berth_error_last(), "main thread");
    assert_int_equal(berth_error_last_code(), BERTH_EEXISTS);
    berth_error_clear();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors__set_and_clear), cmocka_unit_test(test_errors__prefix),
        cmocka_unit_test(test_errors__long_messages), cmocka_unit_test(test_errors__names),
        cmocka_unit_test(test_errors__per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
