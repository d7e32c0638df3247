/* SPDX-License-Identifier: Apache-2.0 */
/*
 * metrics.c: Prometheus metrics with no lock on the hot path. Every counter lives in a fixed
 * array indexed by (method, route, status) or (route, bucket) and is updated with a relaxed
 * atomic add: a request costs about six atomic operations. Rendering reads the counters without
 * stopping writers, so a scrape may see a request's count before its latency, which Prometheus
 * tolerates. The latency sum is kept in whole microseconds to stay an integer atomic.
 */
#include "metrics.h"

#include <berth/errors.h>

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define NMETHODS 7
#define NSTATUS  501 /* 100..599 -> 0..499, anything else -> 500 */
#define NBUCKETS 14  /* the finite bounds below, then +Inf */

static const char *method_names[NMETHODS] = {"GET",   "HEAD",   "PUT",  "POST",
                                             "PATCH", "DELETE", "OTHER"};
static const char *route_names[BERTH_ROUTE_COUNT_] = {
    "base",    "manifests", "blobs", "uploads", "tags",
    "catalog", "referrers", "token", "metrics", "other"};
static const double bounds[NBUCKETS - 1] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,     2.5,  5,     10,   30,  60};
static const char *bound_text[NBUCKETS] = {"0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5",
                                           "1",     "2.5",  "5",     "10",   "30",  "60",   "+Inf"};
/* Names as Prometheus asks: the unit in the name (bytes, seconds), _total for counters. */
static const char *gauge_names[BERTH_GAUGE_COUNT_] = {
    "berth_upload_requests_in_flight",
    "berth_upload_sessions_open",
    "berth_upload_session_bytes",
    "berth_storage_blob_bytes",
    "berth_storage_blobs",
    "berth_storage_refresh_timestamp_seconds",
    "berth_connections_open",
    "berth_ui_cache_repositories",
    "berth_ui_cache_entries",
};
static const char *gauge_help[BERTH_GAUGE_COUNT_] = {
    "Upload requests (POST, PATCH, PUT of a blob upload) streaming in this process now "
    "(bounded by limits.upload_requests).",
    "Blob upload sessions open in the registry, from POST until committed, cancelled or reaped "
    "(the metadata backend's records: every replica's; bounded by limits.upload_sessions); "
    "read at each scrape.",
    "Bytes held by the open upload sessions; read at each scrape.",
    "Bytes of blob content in the store (fs root only), refreshed every 30 s and after each gc.",
    "Blobs in the store (fs root only), refreshed every 30 s and after each gc.",
    "Unix time of the last refresh of berth_storage_blob_bytes and berth_storage_blobs.",
    "Client connections open in this process.",
    "Repositories whose web UI figures this process keeps (docs/ui.md).",
    "Tags, manifests and blobs the web UI's cache holds, bounded by BERTH_UI_CACHE_ENTRIES.",
};

static const char *counter_names[BERTH_COUNTER_COUNT_] = {
    "berth_connections_refused_total", "berth_connections_cut_total", "berth_gc_runs_total",
    "berth_gc_freed_bytes_total"};
static const char *counter_help[BERTH_COUNTER_COUNT_] = {
    "Connections refused because their client address was at its connection cap.",
    "Connections closed by the server: a deadline passed, slots were needed, or shutdown.",
    "Online garbage collection passes completed (gc.interval).",
    "Bytes of blob content freed by online garbage collection."};

static const char *proxy_names[BERTH_PROXY_COUNT_] = {
    "berth_proxy_cache_hits_total",      "berth_proxy_cache_misses_total",
    "berth_proxy_revalidations_total",   "berth_proxy_stale_serves_total",
    "berth_proxy_upstream_errors_total", "berth_proxy_upstream_bytes_total",
    "berth_proxy_evictions_total"};
static const char *proxy_help[BERTH_PROXY_COUNT_] = {
    "Pulls under an upstream's prefix answered from the cache without asking the upstream.",
    "Pulls under an upstream's prefix fetched from the upstream (not cached, or a tag changed).",
    "Cached tags past their ttl checked against the upstream with one HEAD.",
    "Pulls answered from the cache because the upstream failed or asked to wait (429).",
    "Requests to the upstream that failed, or were not made while it asked to wait.",
    "Body bytes received from the upstream.",
    "Cached manifests evicted (least recently pulled first) to keep the upstream's max_size."};

struct berth_metrics {
    /* the pull-through cache: nupstreams x BERTH_PROXY_COUNT_ counters, set before serving */
    atomic_uint_fast64_t *proxy;
    char **upstreams;
    size_t nupstreams;
    atomic_uint_fast64_t counters[BERTH_COUNTER_COUNT_];
    atomic_uint_fast64_t requests[NMETHODS][BERTH_ROUTE_COUNT_][NSTATUS];
    atomic_uint_fast64_t buckets[BERTH_ROUTE_COUNT_][NBUCKETS]; /* not cumulative */
    atomic_uint_fast64_t latency_us[BERTH_ROUTE_COUNT_];
    atomic_uint_fast64_t bytes_in[BERTH_ROUTE_COUNT_];
    atomic_uint_fast64_t bytes_out[BERTH_ROUTE_COUNT_];
    atomic_int_fast64_t gauges[BERTH_GAUGE_COUNT_];
};

int berth_metrics_new(berth_metrics **out)
{
    berth_metrics *m = NULL;

    if (!out) {
        return berth_error_set(BERTH_EINVALID, "berth_metrics_new: no output");
    }
    /* calloc's zero bytes are valid zero atomics on every platform we build for */
    m = calloc(1, sizeof(*m));
    if (!m) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    *out = m;
    return 0;
}

void berth_metrics_free(berth_metrics *m)
{
    if (!m) {
        return;
    }
    for (size_t i = 0; i < m->nupstreams; i++) {
        free(m->upstreams[i]);
    }
    free(m->upstreams);
    free(m->proxy);
    free(m);
}

int berth_metrics_upstreams(berth_metrics *m, const char *const *names, size_t n)
{
    if (!m || m->nupstreams || n == 0) {
        return m && n == 0 ? 0 : berth_error_set(BERTH_EINVALID, "berth_metrics_upstreams");
    }
    m->proxy = calloc(n * BERTH_PROXY_COUNT_, sizeof(*m->proxy));
    m->upstreams = calloc(n, sizeof(*m->upstreams));
    if (!m->proxy || !m->upstreams) {
        free(m->proxy);
        free(m->upstreams);
        m->proxy = NULL;
        m->upstreams = NULL;
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        if (!(m->upstreams[i] = strdup(names[i]))) {
            m->nupstreams = i;
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    m->nupstreams = n;
    return 0;
}

void berth_metrics_proxy_add(berth_metrics *m, size_t upstream, berth_metrics_proxy c, uint64_t n)
{
    if (m && upstream < m->nupstreams && (unsigned)c < BERTH_PROXY_COUNT_) {
        atomic_fetch_add_explicit(&m->proxy[upstream * BERTH_PROXY_COUNT_ + c], n,
                                  memory_order_relaxed);
    }
}

const char *berth_metrics_route_name(berth_metrics_route route)
{
    return (unsigned)route < BERTH_ROUTE_COUNT_ ? route_names[route] : "other";
}

/* Does the path end with the components `tail` (e.g. "/tags/list"), after at least one name
 * component following "/v2/"? */
static bool ends_with(const char *path, size_t len, const char *tail)
{
    size_t n = strlen(tail);
    return len > 4 + n && memcmp(path + len - n, tail, n) == 0 && path[len - n - 1] != '/';
}

/* Is the next-to-last component of the path `word`, after a name, with a non-empty last? */
static bool second_last_is(const char *path, size_t len, const char *word)
{
    size_t n = strlen(word);
    const char *last = NULL;
    if (len == 0 || path[len - 1] == '/') {
        return false;
    }
    last = path + len;
    while (last > path && last[-1] != '/') {
        last--;
    }
    /* "/v2/" + name + "/" + word + "/" + last */
    return (size_t)(last - path) > 4 + n + 2 && memcmp(last - n - 2, "/", 1) == 0 &&
           memcmp(last - n - 1, word, n) == 0 && last[-1] == '/';
}

berth_metrics_route berth_metrics_route_of(const char *path)
{
    size_t len = path ? strlen(path) : 0;

    if (!path) {
        return BERTH_ROUTE_OTHER;
    }
    if (strcmp(path, "/v2") == 0 || strcmp(path, "/v2/") == 0) {
        return BERTH_ROUTE_BASE;
    }
    if (strcmp(path, "/token") == 0) {
        return BERTH_ROUTE_TOKEN;
    }
    if (strcmp(path, "/metrics") == 0) {
        return BERTH_ROUTE_METRICS;
    }
    if (strncmp(path, "/v2/", 4) != 0) {
        return BERTH_ROUTE_OTHER;
    }
    if (strcmp(path, "/v2/_catalog") == 0) {
        return BERTH_ROUTE_CATALOG;
    }
    if (ends_with(path, len, "/tags/list")) {
        return BERTH_ROUTE_TAGS;
    }
    if (ends_with(path, len, "/blobs/uploads") || ends_with(path, len, "/blobs/uploads/") ||
        (second_last_is(path, len, "uploads") &&
         ends_with(path, (size_t)(strrchr(path, '/') - path), "/blobs/uploads"))) {
        return BERTH_ROUTE_UPLOADS;
    }
    if (second_last_is(path, len, "manifests")) {
        return BERTH_ROUTE_MANIFESTS;
    }
    if (second_last_is(path, len, "blobs")) {
        return BERTH_ROUTE_BLOBS;
    }
    if (second_last_is(path, len, "referrers")) {
        return BERTH_ROUTE_REFERRERS;
    }
    return BERTH_ROUTE_OTHER;
}

static size_t method_index(const char *method)
{
    for (size_t i = 0; method && i < NMETHODS - 1; i++) {
        if (strcmp(method, method_names[i]) == 0) {
            return i;
        }
    }
    return NMETHODS - 1;
}

void berth_metrics_observe(berth_metrics *m, const char *method, berth_metrics_route route,
                           unsigned status, double seconds, uint64_t bytes_in, uint64_t bytes_out)
{
    size_t r = (unsigned)route < BERTH_ROUTE_COUNT_ ? (size_t)route : BERTH_ROUTE_OTHER;
    size_t s = status >= 100 && status <= 599 ? status - 100 : NSTATUS - 1;
    size_t b = 0;

    if (!m) {
        return;
    }
    if (!(seconds >= 0)) { /* also NaN */
        seconds = 0;
    }
    while (b < NBUCKETS - 1 && seconds > bounds[b]) {
        b++;
    }
    atomic_fetch_add_explicit(&m->requests[method_index(method)][r][s], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->buckets[r][b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&m->latency_us[r],
                              seconds > 1e12 ? (uint64_t)1e18 : (uint64_t)(seconds * 1e6),
                              memory_order_relaxed);
    if (bytes_in) {
        atomic_fetch_add_explicit(&m->bytes_in[r], bytes_in, memory_order_relaxed);
    }
    if (bytes_out) {
        atomic_fetch_add_explicit(&m->bytes_out[r], bytes_out, memory_order_relaxed);
    }
}

void berth_metrics_gauge_set(berth_metrics *m, berth_metrics_gauge g, int64_t value)
{
    if (m && (unsigned)g < BERTH_GAUGE_COUNT_) {
        atomic_store_explicit(&m->gauges[g], value, memory_order_relaxed);
    }
}

void berth_metrics_counter_add(berth_metrics *m, berth_metrics_counter c, uint64_t n)
{
    if (m && (unsigned)c < BERTH_COUNTER_COUNT_) {
        atomic_fetch_add_explicit(&m->counters[c], n, memory_order_relaxed);
    }
}

void berth_metrics_gauge_add(berth_metrics *m, berth_metrics_gauge g, int64_t delta)
{
    if (m && (unsigned)g < BERTH_GAUGE_COUNT_) {
        atomic_fetch_add_explicit(&m->gauges[g], delta, memory_order_relaxed);
    }
}

static uint64_t load(atomic_uint_fast64_t *a)
{
    return (uint64_t)atomic_load_explicit(a, memory_order_relaxed);
}

int berth_metrics_render(berth_metrics *m, berth_buf *out)
{
    int error = 0;

    if (!m || !out) {
        return berth_error_set(BERTH_EINVALID, "berth_metrics_render: missing argument");
    }
    berth_error_clear();
    error = berth_buf_puts(out, "# HELP berth_http_requests_total HTTP requests by method, "
                                "route and status code.\n"
                                "# TYPE berth_http_requests_total counter\n");
    for (size_t i = 0; error == 0 && i < NMETHODS; i++) {
        for (size_t r = 0; error == 0 && r < BERTH_ROUTE_COUNT_; r++) {
            for (size_t s = 0; error == 0 && s < NSTATUS; s++) {
                uint64_t n = load(&m->requests[i][r][s]);
                if (n) {
                    error = berth_buf_printf(
                        out,
                        "berth_http_requests_total{method=\"%s\",route=\"%s\",code=\"%u\"} "
                        "%llu\n",
                        method_names[i], route_names[r],
                        s == NSTATUS - 1 ? 0u : (unsigned)(s + 100), (unsigned long long)n);
                }
            }
        }
    }
    if (error == 0) {
        error = berth_buf_puts(out, "# HELP berth_http_request_duration_seconds Time to serve a "
                                    "request.\n"
                                    "# TYPE berth_http_request_duration_seconds histogram\n");
    }
    for (size_t r = 0; error == 0 && r < BERTH_ROUTE_COUNT_; r++) {
        uint64_t cumulative = 0;
        for (size_t b = 0; error == 0 && b < NBUCKETS; b++) {
            cumulative += load(&m->buckets[r][b]);
            error = berth_buf_printf(out,
                                     "berth_http_request_duration_seconds_bucket{route=\"%s\","
                                     "le=\"%s\"} %llu\n",
                                     route_names[r], bound_text[b], (unsigned long long)cumulative);
        }
        if (error == 0) {
            uint64_t us = load(&m->latency_us[r]);
            error = berth_buf_printf(out,
                                     "berth_http_request_duration_seconds_sum{route=\"%s\"} "
                                     "%llu.%06llu\n"
                                     "berth_http_request_duration_seconds_count{route=\"%s\"} "
                                     "%llu\n",
                                     route_names[r], (unsigned long long)(us / 1000000),
                                     (unsigned long long)(us % 1000000), route_names[r],
                                     (unsigned long long)cumulative);
        }
    }
    for (int dir = 0; dir < 2 && error == 0; dir++) {
        const char *name =
            dir ? "berth_http_response_bytes_total" : "berth_http_request_bytes_total";
        error = berth_buf_printf(out, "# HELP %s HTTP body bytes %s.\n# TYPE %s counter\n", name,
                                 dir ? "sent" : "received", name);
        for (size_t r = 0; error == 0 && r < BERTH_ROUTE_COUNT_; r++) {
            error = berth_buf_printf(
                out, "%s{route=\"%s\"} %llu\n", name, route_names[r],
                (unsigned long long)load(dir ? &m->bytes_out[r] : &m->bytes_in[r]));
        }
    }
    for (size_t g = 0; error == 0 && g < BERTH_GAUGE_COUNT_; g++) {
        error =
            berth_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n%s %lld\n", gauge_names[g],
                             gauge_help[g], gauge_names[g], gauge_names[g],
                             (long long)atomic_load_explicit(&m->gauges[g], memory_order_relaxed));
    }
    for (size_t c = 0; error == 0 && c < BERTH_COUNTER_COUNT_; c++) {
        error = berth_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n",
                                 counter_names[c], counter_help[c], counter_names[c],
                                 counter_names[c], (unsigned long long)load(&m->counters[c]));
    }
    for (size_t c = 0; error == 0 && m->nupstreams && c < BERTH_PROXY_COUNT_; c++) {
        error = berth_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", proxy_names[c],
                                 proxy_help[c], proxy_names[c]);
        for (size_t u = 0; error == 0 && u < m->nupstreams; u++) {
            error =
                berth_buf_printf(out, "%s{upstream=\"%s\"} %llu\n", proxy_names[c], m->upstreams[u],
                                 (unsigned long long)load(&m->proxy[u * BERTH_PROXY_COUNT_ + c]));
        }
    }
    if (error < 0) {
        berth_error_set(error, "metrics: the output buffer is full");
    }
    return error;
}
