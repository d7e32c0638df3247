/* SPDX-License-Identifier: Apache-2.0 */
/* The store's manifest cache: its charge, its budget and its eviction order (internal state). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "base/fs.h"
#include "store/store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The manifest cache charges what each entry costs, stays in its budget and evicts the least
   recently used. */
static void test_cache__lru(void **state)
{
    berth_store_options opts;
    const berth_stored_manifest *first = NULL, *again = NULL;
    char body[256], tag[16];
    char root[64] = "/tmp/berth-test-cache-XXXXXX";
    berth_store *s = NULL;

    (void)state;
    assert_non_null(mkdtemp(root));
    berth_store_options_init(&opts);
    opts.fsync = false;
    opts.cache_bytes = 4096;
    assert_int_equal(berth_store_open(&s, root, &opts), 0);
    for (int i = 0; i < 40; i++) {
        berth_put_result res;
        snprintf(body, sizeof(body),
                 "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
                 "\"manifests\":[],\"annotations\":{\"n\":\"%d\"}}",
                 i);
        snprintf(tag, sizeof(tag), "t%d", i);
        assert_int_equal(berth_store_manifest_put(&res, s, "app", tag, NULL, body, strlen(body)),
                         0);
        /* t0 is read between pushes: the most recently used is never the one evicted */
        if (i == 0) {
            assert_int_equal(berth_store_manifest_get(&first, s, "app", "t0"), 0);
        } else {
            assert_int_equal(berth_store_manifest_get(&again, s, "app", "t0"), 0);
            assert_ptr_equal(again, first);
            berth_manifest_release(again);
        }
        pthread_mutex_lock(&s->cache_lock);
        assert_true(s->cached_bytes <= opts.cache_bytes);
        pthread_mutex_unlock(&s->cache_lock);
    }
    /* the cache holds far fewer than 40: each costs its allocations, not its ~110 bytes */
    pthread_mutex_lock(&s->cache_lock);
    assert_true(s->cached_bytes > 0);
    {
        size_t n = 0;
        for (cached_manifest *c = s->lru_head; c; c = c->next) {
            assert_true(c->charge > c->pub.len + sizeof(*c));
            n++;
        }
        assert_true(n < 20);
        assert_ptr_equal(s->lru_head, (const cached_manifest *)first);
    }
    pthread_mutex_unlock(&s->cache_lock);
    berth_manifest_release(first);
    berth_store_free(s);
    berth__fs_rmtree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache__lru),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
