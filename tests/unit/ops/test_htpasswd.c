/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: htpasswd Basic auth: hashes written by `htpasswd -B`, wrong passwords and
 * unknown users, header parsing, the credential cache, reload on change, refused formats, and
 * concurrent checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ops/htpasswd.h"

#include <berth/errors.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Written by `htpasswd -nbB alice 'wonder land'`, `htpasswd -nbB -C 4 bob
 * 's3cret:with:colons'` and `htpasswd -nbB -C 10 slow 'slow pw'` (apache2-utils). */
static const char file_text[] =
    "# users\n"
    "alice:$2y$05$9GgJuoGlMrdY9Qf.ZyRxg.rBqjpFzSD4KZdAqxdZY4U5z51/sZBxa\n"
    "\n"
    "bob:$2y$04$Yi.9uY19V8SEU.PozFjqG.44lp.4qjpNL0xYuQY8XEDOkQ5/WMH7e\r\n"
    "slow:$2y$10$v5/rALbSYEPLyPmjgwalLO8IWh528ATJHlIch0plG0El9dJ0mr08m\n";

static char path[64];

static void write_file(const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    int fd = 0;
    (void)state;
    snprintf(path, sizeof(path), "/tmp/berth-htpasswd-XXXXXX");
    fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    close(fd);
    write_file(file_text);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void test_htpasswd__check(void **state)
{
    berth_htpasswd *h = NULL;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", "wonder land"), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "bob", "s3cret:with:colons"), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", "wonder lane"), BERTH_EUNAUTHORIZED);
    assert_string_equal(berth_error_last(), "invalid user name or password");
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", ""), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, NULL, "carol", "wonder land"), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, NULL, "# users", ""), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, NULL, "Alice", "wonder land"), BERTH_EUNAUTHORIZED);
    berth_htpasswd_free(h);
}

static void test_htpasswd__cache(void **state)
{
    berth_htpasswd *h = NULL;
    struct timespec a, b;
    double first = 0, second = 0;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 2, 300), 0);
    assert_int_equal(berth_htpasswd_cache_count(h), 0);
    /* cost 10: about a thousand times the work of computing a cache key */
    clock_gettime(CLOCK_MONOTONIC, &a);
    assert_int_equal(berth_htpasswd_check(h, NULL, "slow", "slow pw"), 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    first = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    assert_int_equal(berth_htpasswd_cache_count(h), 1);
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(berth_htpasswd_check(h, NULL, "slow", "slow pw"), 0);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    second = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    /* ten cached checks cost less than one bcrypt */
    if (!(second < first)) {
        fail_msg("10 cached checks took %f s, one bcrypt %f s", second, first);
    }
    assert_int_equal(berth_htpasswd_cache_count(h), 1);
    /* a wrong password is never cached and never matches a cached entry */
    assert_int_equal(berth_htpasswd_check(h, NULL, "slow", "slow p"), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_cache_count(h), 1);
    /* the cache is bounded (2 here) */
    assert_int_equal(berth_htpasswd_check(h, NULL, "bob", "s3cret:with:colons"), 0);
    assert_int_equal(berth_htpasswd_cache_count(h), 2);
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", "wonder land"), 0);
    assert_true(berth_htpasswd_cache_count(h) <= 2);
    berth_htpasswd_free(h);
}

static void test_htpasswd__header(void **state)
{
    berth_htpasswd *h = NULL;
    char user[16];
    char *u = NULL, *p = NULL;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    /* base64("alice:wonder land") */
    assert_int_equal(
        berth_htpasswd_check_header(h, NULL, "Basic YWxpY2U6d29uZGVyIGxhbmQ=", user, sizeof(user)),
        0);
    assert_string_equal(user, "alice");
    assert_int_equal(berth_htpasswd_check_header(h, NULL, "basic  YWxpY2U6d29uZGVyIGxhbmQ= ", user,
                                                 sizeof(user)),
                     0);
    assert_int_equal(
        berth_htpasswd_check_header(h, NULL, "Basic YWxpY2U6d29uZGVyIGxhbmQ=", user, 5),
        BERTH_EUNAUTHORIZED);
    assert_string_equal(user, "");
    assert_int_equal(berth_htpasswd_check_header(h, NULL, "Bearer abc", user, sizeof(user)),
                     BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check_header(h, NULL, NULL, user, sizeof(user)),
                     BERTH_EUNAUTHORIZED);
    /* base64("bob:s3cret:with:colons"): only the first colon splits */
    assert_int_equal(berth_basic_parse(&u, &p, "Basic Ym9iOnMzY3JldDp3aXRoOmNvbG9ucw=="), 0);
    assert_string_equal(u, "bob");
    assert_string_equal(p, "s3cret:with:colons");
    free(u);
    free(p);
    static const char *bad[] = {"Basic",
                                "Basic ",
                                "Basic YWxpY2U",
                                "Basic YWxpY2U=",
                                "Basic !!!!",
                                "BasicYWxpY2U6eA==",
                                "Digest YWxpY2U6eA==",
                                "Basic YWxpY2U6eA==="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (berth_basic_parse(&u, &p, bad[i]) != BERTH_EINVALID) {
            fail_msg("'%s' was accepted", bad[i]);
        }
        assert_null(u);
        assert_null(p);
    }
    berth_htpasswd_free(h);
}

static void test_htpasswd__reload_on_change(void **state)
{
    berth_htpasswd *h = NULL;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", "wonder land"), 0);
    /* drop alice; the reload is checked at most once a second */
    write_file("bob:$2y$04$Yi.9uY19V8SEU.PozFjqG.44lp.4qjpNL0xYuQY8XEDOkQ5/WMH7e\n");
    sleep(2);
    assert_int_equal(berth_htpasswd_check(h, NULL, "alice", "wonder land"), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, NULL, "bob", "s3cret:with:colons"), 0);
    /* a broken file keeps the last good users */
    write_file("garbage without colon\n");
    sleep(2);
    assert_int_equal(berth_htpasswd_check(h, NULL, "bob", "s3cret:with:colons"), 0);
    /* a garbage line before a new user: the new user works, the garbage is skipped */
    write_file("bob:$2y$04$Yi.9uY19V8SEU.PozFjqG.44lp.4qjpNL0xYuQY8XEDOkQ5/WMH7e\n"
               "garbage without colon\n"
               "carl:$2y$04$Yi.9uY19V8SEU.PozFjqG.44lp.4qjpNL0xYuQY8XEDOkQ5/WMH7e\n");
    sleep(2);
    assert_int_equal(berth_htpasswd_check(h, NULL, "carl", "s3cret:with:colons"), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "bob", "s3cret:with:colons"), 0);
    write_file(file_text);
    berth_htpasswd_free(h);
}

static void test_htpasswd__refused_files(void **state)
{
    berth_htpasswd *h = NULL;
    (void)state;
    /* unusable lines are skipped (with a warning in the log); the other users work */
    write_file("apr:$apr1$efF1CY3t$t7Im7abSMgZSMilTzFfWM0\n"
               "ok:$2y$04$Yi.9uY19V8SEU.PozFjqG.44lp.4qjpNL0xYuQY8XEDOkQ5/WMH7e\n:nouser\n"
               "garbage\nplain:password\n");
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "ok", "s3cret:with:colons"), 0);
    assert_int_equal(berth_htpasswd_check(h, NULL, "apr", "x"), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, NULL, "plain", "password"), BERTH_EUNAUTHORIZED);
    berth_htpasswd_free(h);
    h = NULL;
    assert_int_equal(berth_htpasswd_open(&h, "/nonexistent/htpasswd", 0, 0), BERTH_EIO);
    write_file(file_text);
}

typedef struct job {
    berth_htpasswd *h;
    int ok;
} job;

static void *check_many(void *arg)
{
    job *j = arg;
    for (int i = 0; i < 200; i++) {
        j->ok += berth_htpasswd_check(j->h, NULL, i % 2 ? "alice" : "bob",
                                      i % 2 ? "wonder land" : "s3cret:with:colons") == 0;
    }
    return NULL;
}

static void test_htpasswd__threads(void **state)
{
    berth_htpasswd *h = NULL;
    pthread_t t[4];
    job j[4];
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 1, 0), 0); /* a tiny cache: churn */
    for (int i = 0; i < 4; i++) {
        j[i].h = h;
        j[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, check_many, &j[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(j[i].ok, 200);
    }
    assert_true(berth_htpasswd_cache_count(h) <= 1);
    berth_htpasswd_free(h);
}

/* Sleep until just after the start of a fresh second of the monotonic clock (as htpasswd.c counts),
 * so that a test's attempts all fall in the same one-second window of the failure counts. */
static void wait_for_new_second(void)
{
    struct timespec ts, pause;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    pause.tv_sec = 0;
    pause.tv_nsec = 1000000000L - ts.tv_nsec + 5000000L;
    if (pause.tv_nsec >= 1000000000L) {
        pause.tv_sec = 1;
        pause.tv_nsec -= 1000000000L;
    }
    nanosleep(&pause, NULL);
}

/* Failed attempts past the per-address limit are refused (EBUSY) without bcrypt; cached
 * credentials, other addresses and other users are unaffected; the limits reset with the next
 * second. */
static void test_htpasswd__failures_throttled(void **state)
{
    berth_htpasswd *h = NULL;
    uint64_t before;
    int rc = 0;
    struct timespec pause = {1, 200000000};
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.9", "alice", "wonder land"), 0); /* cached */
    berth_htpasswd_set_fail_limits(h, 2, 1000, 1000);
    wait_for_new_second();
    for (int i = 0; i < 50 && berth_htpasswd_throttled_count(h) == 0; i++) {
        rc = berth_htpasswd_check(h, "10.0.0.1", "alice", "guess");
        assert_true(rc == BERTH_EUNAUTHORIZED || rc == BERTH_EBUSY);
    }
    assert_true(berth_htpasswd_throttled_count(h) > 0);
    assert_int_equal(rc, BERTH_EBUSY);
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.1", "alice", "guess"), BERTH_EBUSY);
    /* refused unverified, even when right: the guessing address waits for the next second */
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.1", "bob", "s3cret:with:colons"), BERTH_EBUSY);
    /* cached credentials pass from anywhere; new ones from another address are verified */
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.1", "alice", "wonder land"), 0);
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.2", "bob", "s3cret:with:colons"), 0);

    nanosleep(&pause, NULL);
    before = berth_htpasswd_throttled_count(h);
    assert_int_equal(berth_htpasswd_check(h, "10.0.0.1", "alice", "guess"), BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_throttled_count(h), before); /* a new second: bcrypt ran */
    berth_htpasswd_free(h);
}

/* The lockout of the issue: however much one address guesses alice's password, her right
 * password is verified from any other address (the per-user count never refuses a clean
 * address); the old code keyed the limit on the user and refused it. */
static void test_htpasswd__guessing_does_not_lock_out_the_user(void **state)
{
    berth_htpasswd *h = NULL;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    wait_for_new_second();
    for (int i = 0; i < 20; i++) {
        int rc = berth_htpasswd_check(h, "192.0.2.66", "alice", "guess");
        assert_true(rc == BERTH_EUNAUTHORIZED || rc == BERTH_EBUSY);
    }
    assert_true(berth_htpasswd_throttled_count(h) >= 14); /* 5 verified, the rest refused */
    assert_int_equal(berth_htpasswd_check(h, "192.0.2.7", "alice", "wonder land"), 0);
    berth_htpasswd_free(h);
}

/* Many addresses guessing one user: past the per-user limit, an address that has failed this
 * second gets no further try at that user (one bcrypt per address per second), while an address
 * that has not failed is verified, right password or not. */
static void test_htpasswd__distributed_guessing(void **state)
{
    berth_htpasswd *h = NULL;
    char addr[32];
    uint64_t before;
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    berth_htpasswd_set_fail_limits(h, 5, 3, 1000);
    wait_for_new_second();
    for (int i = 0; i < 4; i++) {
        snprintf(addr, sizeof(addr), "198.51.100.%d", i);
        assert_int_equal(berth_htpasswd_check(h, addr, "alice", "guess"), BERTH_EUNAUTHORIZED);
    }
    before = berth_htpasswd_throttled_count(h);
    assert_int_equal(berth_htpasswd_check(h, "198.51.100.0", "alice", "guess2"), BERTH_EBUSY);
    assert_int_equal(berth_htpasswd_throttled_count(h), before + 1);
    /* a fresh address is verified: wrong and then right */
    assert_int_equal(berth_htpasswd_check(h, "198.51.100.9", "alice", "guess3"),
                     BERTH_EUNAUTHORIZED);
    assert_int_equal(berth_htpasswd_check(h, "198.51.100.10", "alice", "wonder land"), 0);
    /* other users are not under attack: a failing address may still try them */
    assert_int_equal(berth_htpasswd_check(h, "198.51.100.1", "bob", "s3cret:with:colons"), 0);
    berth_htpasswd_free(h);
}

/* A flood of random names from many addresses passes the global limit: failing addresses are
 * then refused unverified, but a first login from an address without failures is verified (the
 * old code refused bob here). */
static void test_htpasswd__random_names_do_not_refuse_others(void **state)
{
    berth_htpasswd *h = NULL;
    char addr[32], name[32];
    (void)state;
    assert_int_equal(berth_htpasswd_open(&h, path, 0, 0), 0);
    berth_htpasswd_set_fail_limits(h, 5, 5, 10);
    wait_for_new_second();
    for (int i = 0; i < 12; i++) {
        snprintf(addr, sizeof(addr), "203.0.113.%d", i);
        snprintf(name, sizeof(name), "user%d", i);
        assert_int_equal(berth_htpasswd_check(h, addr, name, "x"), BERTH_EUNAUTHORIZED);
    }
    assert_int_equal(berth_htpasswd_check(h, "203.0.113.1", "someone", "x"), BERTH_EBUSY);
    assert_int_equal(berth_htpasswd_check(h, "203.0.113.200", "bob", "s3cret:with:colons"), 0);
    /* no address counts as the address "unknown", which has not failed yet */
    assert_int_equal(berth_htpasswd_check(h, NULL, "nobody", "x"), BERTH_EUNAUTHORIZED);
    berth_htpasswd_free(h);
}

/* `Basic Og==` (empty user and password) is anonymous; nothing else is. */
static void test_htpasswd__empty_credentials_are_anonymous(void **state)
{
    (void)state;
    assert_true(berth_basic_is_anonymous("Basic Og=="));
    assert_true(berth_basic_is_anonymous("basic  Og== "));
    assert_false(berth_basic_is_anonymous(NULL));
    assert_false(berth_basic_is_anonymous("Basic "));
    assert_false(berth_basic_is_anonymous("Basic OnBhc3M=")); /* ":pass" */
    assert_false(berth_basic_is_anonymous("Basic YWxpY2U6")); /* "alice:" */
    assert_false(berth_basic_is_anonymous("Bearer Og=="));
    assert_false(berth_basic_is_anonymous("Basic !!"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_htpasswd__check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__cache, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__reload_on_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__refused_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__failures_throttled, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__guessing_does_not_lock_out_the_user, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__distributed_guessing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_htpasswd__random_names_do_not_refuse_others, setup,
                                        teardown),
        cmocka_unit_test(test_htpasswd__empty_credentials_are_anonymous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
