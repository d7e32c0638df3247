/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/ratelimit.h: a token bucket per client address. */
#ifndef BERTH_SERVER_OPS_RATELIMIT_H
#define BERTH_SERVER_OPS_RATELIMIT_H

#include <berth/common.h>

struct sockaddr;

/**
 * Rate limiter: each client address has a bucket of `burst` tokens refilled at `rate` tokens per
 * second; a request takes one. The table of addresses is bounded (`max_clients`): when it is
 * full, buckets idle long enough to be full again are evicted first, then the least recently
 * used one. Thread-safe (the table is split into independently locked shards).
 */
typedef struct berth_ratelimit berth_ratelimit;

/**
 * @param out          receives the limiter; free with berth_ratelimit_free()
 * @param rate         tokens per second, at least 1
 * @param burst        bucket size; 0 means `rate`
 * @param max_clients  bound on tracked addresses; 0 means 65536
 * @return 0, BERTH_EINVALID (rate 0) or BERTH_ENOMEM
 */
int berth_ratelimit_new(berth_ratelimit **out, uint64_t rate, uint64_t burst, size_t max_clients);

/**
 * Take one token for `addr` (any string key: an IPv4/IPv6 text address).
 * @param retry_after  when refused, receives the whole seconds until a token is available (>= 1);
 *                     may be NULL
 * @return true when the request may proceed
 */
bool berth_ratelimit_take(berth_ratelimit *rl, const char *addr, uint64_t *retry_after);

/** As berth_ratelimit_take() keyed by a socket address (AF_INET or AF_INET6, port ignored). */
bool berth_ratelimit_take_sockaddr(berth_ratelimit *rl, const struct sockaddr *sa,
                                   uint64_t *retry_after);

/** As berth_ratelimit_take() at an explicit time in nanoseconds (monotonic); for tests. */
bool berth_ratelimit_take_at(berth_ratelimit *rl, const char *addr, uint64_t now_ns,
                             uint64_t *retry_after);

/**
 * The key under which a client address is counted by the failed-login limits: the text form of
 * an IPv4 address (an IPv4-mapped IPv6 address counts as its IPv4 address), the /64 prefix of an
 * IPv6 address ("2001:db8:1:2::/64": one subnet is one client, as an end site is usually given
 * at least a /64), "unknown" for anything else or NULL.
 * @param out       receives the key, NUL-terminated
 * @param out_size  its size; BERTH_RATELIMIT_KEY_MAX is always enough
 */
void berth_ratelimit_addr_key(char *out, size_t out_size, const struct sockaddr *sa);

/** A size that holds every key of berth_ratelimit_addr_key(). */
#define BERTH_RATELIMIT_KEY_MAX 64

/** The number of addresses currently tracked. */
size_t berth_ratelimit_size(berth_ratelimit *rl);

/** Free the limiter; NULL is fine. */
void berth_ratelimit_free(berth_ratelimit *rl);

#endif
