/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ratelimit.c: token buckets per client address. The table is split into SHARDS shards by a
 * hash of the address, each a hash table under its own mutex, so that concurrent requests from
 * different clients rarely contend. Each shard holds at most max_clients / SHARDS buckets; to
 * admit a new address into a full shard we evict a bucket that has been idle long enough to be
 * full again (forgetting it changes nothing), else the least recently used one. Tokens are kept
 * as a double: the precision is far beyond what one request per bucket needs.
 */
#include "ratelimit.h"

#include "base/htab.h"

#include <berth/errors.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#define SHARDS 16

typedef struct bucket {
    char key[64];
    double tokens;
    uint64_t last_ns;
} bucket;

typedef struct shard {
    pthread_mutex_t lock;
    berth__htab table;
} shard;

struct berth_ratelimit {
    double rate;
    double burst;
    size_t per_shard;
    shard shards[SHARDS];
};

int berth_ratelimit_new(berth_ratelimit **out, uint64_t rate, uint64_t burst, size_t max_clients)
{
    berth_ratelimit *rl = NULL;

    if (!out || rate == 0) {
        return berth_error_set(BERTH_EINVALID, "rate limit: the rate must be at least 1/s");
    }
    *out = NULL;
    rl = calloc(1, sizeof(*rl));
    if (!rl) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rl->rate = (double)rate;
    rl->burst = (double)(burst ? burst : rate);
    max_clients = max_clients ? max_clients : 65536;
    rl->per_shard = max_clients / SHARDS ? max_clients / SHARDS : 1;
    for (size_t i = 0; i < SHARDS; i++) {
        pthread_mutex_init(&rl->shards[i].lock, NULL);
    }
    *out = rl;
    return 0;
}

static void free_value(void *value, void *payload)
{
    (void)payload;
    free(value);
}

void berth_ratelimit_free(berth_ratelimit *rl)
{
    if (!rl) {
        return;
    }
    for (size_t i = 0; i < SHARDS; i++) {
        berth__htab_foreach(&rl->shards[i].table, free_value, NULL);
        berth__htab_dispose(&rl->shards[i].table);
        pthread_mutex_destroy(&rl->shards[i].lock);
    }
    free(rl);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) {
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

typedef struct victim_search {
    const berth_ratelimit *rl;
    uint64_t now_ns;
    bucket *idle;   /* a bucket that would be full by now */
    bucket *oldest; /* least recently used */
} victim_search;

static void consider(void *value, void *payload)
{
    victim_search *v = payload;
    bucket *b = value;
    double refill =
        (double)(v->now_ns - (b->last_ns < v->now_ns ? b->last_ns : v->now_ns)) / 1e9 * v->rl->rate;
    if (!v->idle && b->tokens + refill >= v->rl->burst) {
        v->idle = b;
    }
    if (!v->oldest || b->last_ns < v->oldest->last_ns) {
        v->oldest = b;
    }
}

bool berth_ratelimit_take_at(berth_ratelimit *rl, const char *addr, uint64_t now_ns,
                             uint64_t *retry_after)
{
    char key[64];
    shard *s = NULL;
    bucket *b = NULL;
    bool allowed = false;

    if (retry_after) {
        *retry_after = 0;
    }
    if (!rl || !addr) {
        return true;
    }
    snprintf(key, sizeof(key), "%s", addr); /* longer keys are truncated; addresses fit */
    s = &rl->shards[fnv1a(key) % SHARDS];
    pthread_mutex_lock(&s->lock);
    b = berth__htab_get(&s->table, key);
    if (!b) {
        if (s->table.count >= rl->per_shard) {
            victim_search v = {rl, now_ns, NULL, NULL};
            bucket *gone = NULL;
            berth__htab_foreach(&s->table, consider, &v);
            gone = v.idle ? v.idle : v.oldest;
            if (gone) {
                berth__htab_remove(&s->table, gone->key);
                free(gone);
            }
        }
        b = calloc(1, sizeof(*b));
        if (!b) {
            allowed = true; /* fail open: out of memory is not the client's fault */
            goto out;
        }
        memcpy(b->key, key, sizeof(key));
        b->tokens = rl->burst;
        b->last_ns = now_ns;
        if (berth__htab_put(&s->table, b->key, b) < 0) {
            free(b);
            allowed = true;
            goto out;
        }
    }
    if (now_ns > b->last_ns) {
        b->tokens += (double)(now_ns - b->last_ns) / 1e9 * rl->rate;
        if (b->tokens > rl->burst) {
            b->tokens = rl->burst;
        }
        b->last_ns = now_ns;
    }
    if (b->tokens >= 1.0) {
        b->tokens -= 1.0;
        allowed = true;
    } else if (retry_after) {
        double wait = (1.0 - b->tokens) / rl->rate;
        uint64_t secs = (uint64_t)wait;
        *retry_after = (double)secs < wait ? secs + 1 : secs;
        if (*retry_after == 0) {
            *retry_after = 1;
        }
    }
out:
    pthread_mutex_unlock(&s->lock);
    return allowed;
}

bool berth_ratelimit_take(berth_ratelimit *rl, const char *addr, uint64_t *retry_after)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return berth_ratelimit_take_at(
        rl, addr, (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec, retry_after);
}

bool berth_ratelimit_take_sockaddr(berth_ratelimit *rl, const struct sockaddr *sa,
                                   uint64_t *retry_after)
{
    char text[INET6_ADDRSTRLEN] = "unknown";

    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
    }
    return berth_ratelimit_take(rl, text, retry_after);
}

void berth_ratelimit_addr_key(char *out, size_t out_size, const struct sockaddr *sa)
{
    char text[INET6_ADDRSTRLEN] = "unknown";

    if (sa && sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
    } else if (sa && sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        struct in6_addr prefix = in6->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(&prefix)) {
            inet_ntop(AF_INET, &prefix.s6_addr[12], text, sizeof(text));
        } else {
            memset(&prefix.s6_addr[8], 0, 8);
            inet_ntop(AF_INET6, &prefix, text, sizeof(text));
            snprintf(out, out_size, "%s/64", text);
            return;
        }
    }
    snprintf(out, out_size, "%s", text);
}

size_t berth_ratelimit_size(berth_ratelimit *rl)
{
    size_t n = 0;
    for (size_t i = 0; rl && i < SHARDS; i++) {
        pthread_mutex_lock(&rl->shards[i].lock);
        n += rl->shards[i].table.count;
        pthread_mutex_unlock(&rl->shards[i].lock);
    }
    return n;
}
