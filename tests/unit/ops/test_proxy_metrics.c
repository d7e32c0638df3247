/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the pull-through cache's counters per upstream in the metrics (rendered only when
 * upstreams are declared, so a server without a cache exposes what it always did). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/buf.h>
#include <berth/errors.h>

#include "server/ops/metrics.h"

#include <string.h>

static void test_proxy_metrics__absent_without_upstreams(void **state)
{
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    berth_metrics_proxy_add(m, 0, BERTH_PROXY_HITS, 1); /* no upstream 0: ignored */
    assert_int_equal(berth_metrics_render(m, &out), 0);
    assert_null(strstr(out.ptr, "berth_proxy"));
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

static void test_proxy_metrics__per_upstream_counters(void **state)
{
    static const char *const names[] = {"docker.io", "ghcr.io/org"};
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    assert_int_equal(berth_metrics_upstreams(m, names, 2), 0);
    berth_metrics_proxy_add(m, 0, BERTH_PROXY_HITS, 3);
    berth_metrics_proxy_add(m, 1, BERTH_PROXY_MISSES, 2);
    berth_metrics_proxy_add(m, 1, BERTH_PROXY_BYTES, 4096);
    berth_metrics_proxy_add(m, 0, BERTH_PROXY_STALE, 1);
    berth_metrics_proxy_add(m, 0, BERTH_PROXY_ERRORS, 5);
    berth_metrics_proxy_add(m, 1, BERTH_PROXY_REVALIDATIONS, 7);
    berth_metrics_proxy_add(m, 2, BERTH_PROXY_HITS, 1); /* no such upstream: ignored */
    assert_int_equal(berth_metrics_render(m, &out), 0);
    assert_non_null(strstr(out.ptr, "# TYPE berth_proxy_cache_hits_total counter\n"
                                    "berth_proxy_cache_hits_total{upstream=\"docker.io\"} 3\n"
                                    "berth_proxy_cache_hits_total{upstream=\"ghcr.io/org\"} 0\n"));
    assert_non_null(
        strstr(out.ptr, "berth_proxy_cache_misses_total{upstream=\"ghcr.io/org\"} 2\n"));
    assert_non_null(
        strstr(out.ptr, "berth_proxy_revalidations_total{upstream=\"ghcr.io/org\"} 7\n"));
    assert_non_null(strstr(out.ptr, "berth_proxy_stale_serves_total{upstream=\"docker.io\"} 1\n"));
    assert_non_null(
        strstr(out.ptr, "berth_proxy_upstream_errors_total{upstream=\"docker.io\"} 5\n"));
    assert_non_null(
        strstr(out.ptr, "berth_proxy_upstream_bytes_total{upstream=\"ghcr.io/org\"} 4096\n"));
    assert_non_null(strstr(out.ptr, "# HELP berth_proxy_upstream_bytes_total "));
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_metrics__absent_without_upstreams),
        cmocka_unit_test(test_proxy_metrics__per_upstream_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
