/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: token buckets: burst, refill, Retry-After, independence of addresses, the bound
 * on tracked addresses, sockaddr keys, and concurrent use. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ops/ratelimit.h"

#include <berth/errors.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define SEC 1000000000ull

static void test_ratelimit__burst_then_refill(void **state)
{
    berth_ratelimit *rl = NULL;
    uint64_t retry = 99;
    uint64_t t = 1000 * SEC;
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 2, 5, 0), 0);
    for (int i = 0; i < 5; i++) {
        assert_true(berth_ratelimit_take_at(rl, "10.0.0.1", t, &retry));
        assert_int_equal(retry, 0);
    }
    assert_false(berth_ratelimit_take_at(rl, "10.0.0.1", t, &retry));
    assert_int_equal(retry, 1); /* 0.5 s to the next token, rounded up */
    /* another address has its own bucket */
    assert_true(berth_ratelimit_take_at(rl, "10.0.0.2", t, NULL));
    /* half a second later: one token */
    assert_true(berth_ratelimit_take_at(rl, "10.0.0.1", t + SEC / 2, &retry));
    assert_false(berth_ratelimit_take_at(rl, "10.0.0.1", t + SEC / 2, &retry));
    /* a long idle time refills only up to the burst */
    t += 3600 * SEC;
    for (int i = 0; i < 5; i++) {
        assert_true(berth_ratelimit_take_at(rl, "10.0.0.1", t, NULL));
    }
    assert_false(berth_ratelimit_take_at(rl, "10.0.0.1", t, NULL));
    berth_ratelimit_free(rl);
}

static void test_ratelimit__retry_after_slow_rate(void **state)
{
    berth_ratelimit *rl = NULL;
    uint64_t retry = 0;
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 1, 1, 0), 0);
    assert_true(berth_ratelimit_take_at(rl, "::1", 5 * SEC, &retry));
    assert_false(berth_ratelimit_take_at(rl, "::1", 5 * SEC, &retry));
    assert_int_equal(retry, 1);
    assert_false(berth_ratelimit_take_at(rl, "::1", 5 * SEC + SEC / 10, &retry));
    assert_int_equal(retry, 1);
    assert_true(berth_ratelimit_take_at(rl, "::1", 6 * SEC, &retry));
    berth_ratelimit_free(rl);
}

static void test_ratelimit__invalid(void **state)
{
    berth_ratelimit *rl = NULL;
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 0, 5, 0), BERTH_EINVALID);
    assert_null(rl);
    berth_ratelimit_free(NULL);
}

static void test_ratelimit__table_is_bounded(void **state)
{
    berth_ratelimit *rl = NULL;
    char addr[32];
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 1, 1, 64), 0);
    for (int i = 0; i < 1000; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d/%d", i % 256, i);
        assert_true(berth_ratelimit_take_at(rl, addr, (uint64_t)i * 1000, NULL));
    }
    assert_true(berth_ratelimit_size(rl) <= 64);
    assert_true(berth_ratelimit_size(rl) >= 16);
    berth_ratelimit_free(rl);
}

static void test_ratelimit__eviction_admits_new_clients(void **state)
{
    berth_ratelimit *rl = NULL;
    char addr[32];
    (void)state;
    /* 16 shards x 1: each shard holds one bucket, so every new address in a shard evicts */
    assert_int_equal(berth_ratelimit_new(&rl, 1, 1, 16), 0);
    assert_true(berth_ratelimit_take_at(rl, "busy", SEC, NULL));
    for (int i = 0; i < 200; i++) {
        snprintf(addr, sizeof(addr), "other-%d", i);
        /* a new client always starts with a full bucket, even when its shard is full */
        assert_true(berth_ratelimit_take_at(rl, addr, SEC, NULL));
    }
    assert_true(berth_ratelimit_size(rl) <= 16);
    berth_ratelimit_free(rl);
}

static void test_ratelimit__sockaddr(void **state)
{
    berth_ratelimit *rl = NULL;
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 1, 1, 0), 0);
    a4.sin_family = AF_INET;
    a4.sin_port = htons(1234);
    inet_pton(AF_INET, "198.51.100.7", &a4.sin_addr);
    a6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8::7", &a6.sin6_addr);
    assert_true(berth_ratelimit_take_sockaddr(rl, (struct sockaddr *)&a4, NULL));
    a4.sin_port = htons(4321); /* another port, same client */
    assert_false(berth_ratelimit_take_sockaddr(rl, (struct sockaddr *)&a4, NULL));
    assert_true(berth_ratelimit_take_sockaddr(rl, (struct sockaddr *)&a6, NULL));
    assert_false(berth_ratelimit_take_sockaddr(rl, (struct sockaddr *)&a6, NULL));
    assert_int_equal(berth_ratelimit_size(rl), 2);
    berth_ratelimit_free(rl);
}

/* The failed-login key of an address: IPv4 as is (port ignored, IPv4-mapped IPv6 included),
 * IPv6 by its /64. */
static void test_ratelimit__addr_key(void **state)
{
    struct sockaddr_in a4 = {0};
    struct sockaddr_in6 a6 = {0};
    struct sockaddr other = {0};
    char key[BERTH_RATELIMIT_KEY_MAX];
    (void)state;
    a4.sin_family = AF_INET;
    a4.sin_port = htons(1234);
    inet_pton(AF_INET, "198.51.100.7", &a4.sin_addr);
    berth_ratelimit_addr_key(key, sizeof(key), (struct sockaddr *)&a4);
    assert_string_equal(key, "198.51.100.7");
    a6.sin6_family = AF_INET6;
    inet_pton(AF_INET6, "2001:db8:1:2:aaaa:bbbb:cccc:dddd", &a6.sin6_addr);
    berth_ratelimit_addr_key(key, sizeof(key), (struct sockaddr *)&a6);
    assert_string_equal(key, "2001:db8:1:2::/64");
    inet_pton(AF_INET6, "::ffff:192.0.2.1", &a6.sin6_addr);
    berth_ratelimit_addr_key(key, sizeof(key), (struct sockaddr *)&a6);
    assert_string_equal(key, "192.0.2.1");
    inet_pton(AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", &a6.sin6_addr);
    berth_ratelimit_addr_key(key, sizeof(key), (struct sockaddr *)&a6);
    assert_string_equal(key, "ffff:ffff:ffff:ffff::/64");
    other.sa_family = AF_UNIX;
    berth_ratelimit_addr_key(key, sizeof(key), &other);
    assert_string_equal(key, "unknown");
    berth_ratelimit_addr_key(key, sizeof(key), NULL);
    assert_string_equal(key, "unknown");
}

typedef struct worker {
    berth_ratelimit *rl;
    int allowed;
} worker;

static void *hammer(void *arg)
{
    worker *w = arg;
    for (int i = 0; i < 5000; i++) {
        if (berth_ratelimit_take_at(w->rl, "203.0.113.1", 42 * SEC, NULL)) {
            w->allowed++;
        }
    }
    return NULL;
}

static void test_ratelimit__threads_share_one_bucket(void **state)
{
    berth_ratelimit *rl = NULL;
    pthread_t t[4];
    worker w[4];
    int total = 0;
    (void)state;
    assert_int_equal(berth_ratelimit_new(&rl, 10, 1000, 0), 0);
    for (int i = 0; i < 4; i++) {
        w[i].rl = rl;
        w[i].allowed = 0;
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 1000); /* exactly the burst, no lost or double-spent tokens */
    berth_ratelimit_free(rl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit__burst_then_refill),
        cmocka_unit_test(test_ratelimit__retry_after_slow_rate),
        cmocka_unit_test(test_ratelimit__invalid),
        cmocka_unit_test(test_ratelimit__table_is_bounded),
        cmocka_unit_test(test_ratelimit__eviction_admits_new_clients),
        cmocka_unit_test(test_ratelimit__sockaddr),
        cmocka_unit_test(test_ratelimit__addr_key),
        cmocka_unit_test(test_ratelimit__threads_share_one_bucket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
