/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: Prometheus exposition of request counters, the latency histogram, byte counters
 * and gauges; concurrent observation loses nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "server/ops/metrics.h"

#include <berth/errors.h>

#include <pthread.h>
#include <string.h>

static void render(berth_metrics *m, berth_buf *out)
{
    berth_buf_clear(out);
    assert_int_equal(berth_metrics_render(m, out), 0);
}

static void test_metrics__counters_and_histogram(void **state)
{
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    berth_metrics_observe(m, "GET", BERTH_ROUTE_MANIFESTS, 200, 0.003, 0, 1500);
    berth_metrics_observe(m, "GET", BERTH_ROUTE_MANIFESTS, 200, 0.2, 0, 500);
    berth_metrics_observe(m, "GET", BERTH_ROUTE_MANIFESTS, 404, 0.01, 0, 100);
    berth_metrics_observe(m, "PUT", BERTH_ROUTE_UPLOADS, 201, 120.0, 1 << 20, 0);
    berth_metrics_observe(m, "BREW", BERTH_ROUTE_COUNT_, 999, -1.0, 0, 0);
    render(m, &out);
    assert_non_null(strstr(out.ptr, "# TYPE berth_http_requests_total counter\n"));
    assert_non_null(strstr(
        out.ptr, "berth_http_requests_total{method=\"GET\",route=\"manifests\",code=\"200\"} 2\n"));
    assert_non_null(strstr(
        out.ptr, "berth_http_requests_total{method=\"GET\",route=\"manifests\",code=\"404\"} 1\n"));
    assert_non_null(strstr(
        out.ptr, "berth_http_requests_total{method=\"PUT\",route=\"uploads\",code=\"201\"} 1\n"));
    assert_non_null(strstr(
        out.ptr, "berth_http_requests_total{method=\"OTHER\",route=\"other\",code=\"0\"} 1\n"));
    /* zero series are left out of the request counter */
    assert_null(strstr(out.ptr, "method=\"DELETE\""));
    /* cumulative buckets: 0.003 -> le 0.005; 0.01 -> le 0.01; 0.2 -> le 0.25 */
    assert_non_null(strstr(out.ptr,
                           "berth_http_request_duration_seconds_bucket{route=\"manifests\","
                           "le=\"0.005\"} 1\n"));
    assert_non_null(strstr(out.ptr,
                           "berth_http_request_duration_seconds_bucket{route=\"manifests\","
                           "le=\"0.01\"} 2\n"));
    assert_non_null(strstr(out.ptr,
                           "berth_http_request_duration_seconds_bucket{route=\"manifests\","
                           "le=\"0.1\"} 2\n"));
    assert_non_null(strstr(out.ptr,
                           "berth_http_request_duration_seconds_bucket{route=\"manifests\","
                           "le=\"0.25\"} 3\n"));
    assert_non_null(strstr(out.ptr,
                           "berth_http_request_duration_seconds_bucket{route=\"manifests\","
                           "le=\"+Inf\"} 3\n"));
    assert_non_null(strstr(out.ptr, "berth_http_request_duration_seconds_sum{route=\"manifests\"} "
                                    "0.213000\n"));
    assert_non_null(strstr(out.ptr, "berth_http_request_duration_seconds_count{route=\"manifests\"}"
                                    " 3\n"));
    /* 120 s is above the last finite bound */
    assert_non_null(strstr(out.ptr, "berth_http_request_duration_seconds_bucket{route=\"uploads\","
                                    "le=\"60\"} 0\n"));
    assert_non_null(strstr(out.ptr, "berth_http_request_duration_seconds_bucket{route=\"uploads\","
                                    "le=\"+Inf\"} 1\n"));
    assert_non_null(strstr(out.ptr, "berth_http_request_bytes_total{route=\"uploads\"} 1048576\n"));
    assert_non_null(strstr(out.ptr, "berth_http_response_bytes_total{route=\"manifests\"} 2100\n"));
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

static void test_metrics__gauges(void **state)
{
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    berth_metrics_gauge_set(m, BERTH_GAUGE_STORED_BYTES, 123456789012);
    berth_metrics_gauge_set(m, BERTH_GAUGE_BLOBS, 42);
    berth_metrics_gauge_add(m, BERTH_GAUGE_UPLOAD_REQUESTS, 3);
    berth_metrics_gauge_add(m, BERTH_GAUGE_UPLOAD_REQUESTS, -1);
    berth_metrics_gauge_add(m, BERTH_GAUGE_COUNT_, 7); /* ignored */
    render(m, &out);
    assert_non_null(strstr(out.ptr,
                           "# TYPE berth_storage_blob_bytes gauge\nberth_storage_blob_bytes "
                           "123456789012\n"));
    assert_non_null(strstr(out.ptr, "\nberth_storage_blobs 42\n"));
    assert_non_null(strstr(out.ptr, "\nberth_upload_requests_in_flight 2\n"));
    assert_string_equal(berth_metrics_route_name(BERTH_ROUTE_REFERRERS), "referrers");
    assert_string_equal(berth_metrics_route_name(BERTH_ROUTE_COUNT_), "other");
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

static void test_metrics__buffer_ceiling(void **state)
{
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT_MAX(100);
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    assert_int_equal(berth_metrics_render(m, &out), BERTH_ETOOBIG);
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

static void *observe_many(void *arg)
{
    berth_metrics *m = arg;
    for (int i = 0; i < 20000; i++) {
        berth_metrics_observe(m, "HEAD", BERTH_ROUTE_BLOBS, 200, 0.001, 1, 2);
    }
    return NULL;
}

static void test_metrics__concurrent_observations(void **state)
{
    berth_metrics *m = NULL;
    berth_buf out = BERTH_BUF_INIT;
    pthread_t t[4];
    (void)state;
    assert_int_equal(berth_metrics_new(&m), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, observe_many, m), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
    }
    render(m, &out);
    assert_non_null(
        strstr(out.ptr,
               "berth_http_requests_total{method=\"HEAD\",route=\"blobs\",code=\"200\"} 80000\n"));
    assert_non_null(strstr(out.ptr, "berth_http_request_bytes_total{route=\"blobs\"} 80000\n"));
    assert_non_null(strstr(out.ptr, "berth_http_response_bytes_total{route=\"blobs\"} 160000\n"));
    berth_buf_dispose(&out);
    berth_metrics_free(m);
}

static void test_metrics__route_of_path(void **state)
{
    static const struct {
        const char *path;
        berth_metrics_route route;
    } cases[] = {
        {"/v2/", BERTH_ROUTE_BASE},
        {"/v2", BERTH_ROUTE_BASE},
        {"/v2/_catalog", BERTH_ROUTE_CATALOG},
        {"/token", BERTH_ROUTE_TOKEN},
        {"/metrics", BERTH_ROUTE_METRICS},
        {"/v2/library/alpine/manifests/latest", BERTH_ROUTE_MANIFESTS},
        {"/v2/a/manifests/sha256:abc", BERTH_ROUTE_MANIFESTS},
        {"/v2/a/blobs/sha256:abc", BERTH_ROUTE_BLOBS},
        {"/v2/a/b/c/blobs/uploads/", BERTH_ROUTE_UPLOADS},
        {"/v2/a/blobs/uploads", BERTH_ROUTE_UPLOADS},
        {"/v2/a/blobs/uploads/3f2a-11", BERTH_ROUTE_UPLOADS},
        {"/v2/a/tags/list", BERTH_ROUTE_TAGS},
        {"/v2/a/referrers/sha256:abc", BERTH_ROUTE_REFERRERS},
        /* names that contain the route words are matched by shape from the end */
        {"/v2/manifests/tags/list", BERTH_ROUTE_TAGS},
        {"/v2/x/blobs/y/manifests/v1", BERTH_ROUTE_MANIFESTS},
        {"/v2/tags/list/blobs/sha256:abc", BERTH_ROUTE_BLOBS},
        /* malformed shapes */
        {"/v2/manifests/latest", BERTH_ROUTE_OTHER},
        {"/v2//tags/list", BERTH_ROUTE_OTHER},
        {"/v2/a/manifests/", BERTH_ROUTE_OTHER},
        {"/v2/a", BERTH_ROUTE_OTHER},
        {"/", BERTH_ROUTE_OTHER},
        {"", BERTH_ROUTE_OTHER},
        {"/v3/a/tags/list", BERTH_ROUTE_OTHER},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (berth_metrics_route_of(cases[i].path) != cases[i].route) {
            fail_msg("'%s': got %s, want %s", cases[i].path,
                     berth_metrics_route_name(berth_metrics_route_of(cases[i].path)),
                     berth_metrics_route_name(cases[i].route));
        }
    }
    assert_int_equal(berth_metrics_route_of(NULL), BERTH_ROUTE_OTHER);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metrics__counters_and_histogram),
        cmocka_unit_test(test_metrics__gauges),
        cmocka_unit_test(test_metrics__buffer_ceiling),
        cmocka_unit_test(test_metrics__concurrent_observations),
        cmocka_unit_test(test_metrics__route_of_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
