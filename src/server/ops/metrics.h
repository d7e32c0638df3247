/* SPDX-License-Identifier: Apache-2.0 */
/* server/ops/metrics.h: request counters, latency histogram and gauges, Prometheus text. */
#ifndef BERTH_SERVER_OPS_METRICS_H
#define BERTH_SERVER_OPS_METRICS_H

#include <berth/buf.h>

/** The fixed set of routes requests are counted under. */
typedef enum berth_metrics_route {
    BERTH_ROUTE_BASE = 0,
    BERTH_ROUTE_MANIFESTS,
    BERTH_ROUTE_BLOBS,
    BERTH_ROUTE_UPLOADS,
    BERTH_ROUTE_TAGS,
    BERTH_ROUTE_CATALOG,
    BERTH_ROUTE_REFERRERS,
    BERTH_ROUTE_TOKEN,
    BERTH_ROUTE_METRICS,
    BERTH_ROUTE_OTHER,
    BERTH_ROUTE_COUNT_
} berth_metrics_route;

/** Gauges the caller sets. */
typedef enum berth_metrics_gauge {
    BERTH_GAUGE_UPLOAD_REQUESTS = 0,  /* berth_upload_requests_in_flight */
    BERTH_GAUGE_UPLOAD_SESSIONS,      /* berth_upload_sessions_open */
    BERTH_GAUGE_UPLOAD_SESSION_BYTES, /* berth_upload_session_bytes */
    BERTH_GAUGE_STORED_BYTES,         /* berth_storage_blob_bytes */
    BERTH_GAUGE_BLOBS,                /* berth_storage_blobs */
    BERTH_GAUGE_STORAGE_REFRESHED,    /* berth_storage_refresh_timestamp_seconds */
    BERTH_GAUGE_CONNECTIONS,          /* berth_connections_open */
    BERTH_GAUGE_UI_MODELS,            /* berth_ui_cache_repositories */
    BERTH_GAUGE_UI_ENTRIES,           /* berth_ui_cache_entries */
    BERTH_GAUGE_COUNT_
} berth_metrics_gauge;

/** Counters the caller adds to (monotonic; rendered as Prometheus counters). */
typedef enum berth_metrics_counter {
    BERTH_COUNTER_CONNECTIONS_REFUSED = 0, /* over the per-address connection cap */
    BERTH_COUNTER_CONNECTIONS_CUT,         /* past a deadline, under pressure, or at drain */
    BERTH_COUNTER_GC_RUNS,                 /* online gc passes that completed */
    BERTH_COUNTER_GC_FREED_BYTES,          /* bytes online gc freed */
    BERTH_COUNTER_COUNT_
} berth_metrics_counter;

/** What the pull-through cache counts per upstream (server/proxy.c). */
typedef enum berth_metrics_proxy {
    BERTH_PROXY_HITS = 0,      /* answered from the cache without asking the upstream */
    BERTH_PROXY_MISSES,        /* not in the cache (or a tag changed): fetched from upstream */
    BERTH_PROXY_REVALIDATIONS, /* a cached tag past its ttl checked with one HEAD */
    BERTH_PROXY_STALE,         /* answered from the cache because the upstream failed */
    BERTH_PROXY_ERRORS,        /* requests to the upstream that failed (or were not made: 429) */
    BERTH_PROXY_BYTES,         /* body bytes received from the upstream */
    BERTH_PROXY_EVICTIONS,     /* cached manifests evicted over the upstream's max_size */
    BERTH_PROXY_COUNT_
} berth_metrics_proxy;

/**
 * The metrics of one server. All updates are relaxed atomic adds on fixed arrays (no lock, no
 * allocation), so recording a request costs a handful of atomic operations.
 */
typedef struct berth_metrics berth_metrics;

/** @param out receives the metrics (all zero); free with berth_metrics_free(). @return 0 or
 * BERTH_ENOMEM */
int berth_metrics_new(berth_metrics **out);

/** Free; NULL is fine. */
void berth_metrics_free(berth_metrics *m);

/**
 * Record one finished request.
 * @param method       "GET", "HEAD", "PUT", "POST", "PATCH", "DELETE"; anything else is "OTHER"
 * @param status       HTTP status (100..599; others are counted as 0)
 * @param seconds      time from the request line to the last byte sent
 * @param bytes_in     body bytes received
 * @param bytes_out    body bytes sent
 */
void berth_metrics_observe(berth_metrics *m, const char *method, berth_metrics_route route,
                           unsigned status, double seconds, uint64_t bytes_in, uint64_t bytes_out);

/** Set a gauge to a value. */
void berth_metrics_gauge_set(berth_metrics *m, berth_metrics_gauge g, int64_t value);

/** Add a (possibly negative) amount to a gauge (uploads started / finished). */
void berth_metrics_gauge_add(berth_metrics *m, berth_metrics_gauge g, int64_t delta);

/** Add `n` to a counter. */
void berth_metrics_counter_add(berth_metrics *m, berth_metrics_counter c, uint64_t n);

/**
 * Declare the upstreams of the pull-through cache, named by their prefix (the `upstream` label),
 * before the server serves; their counters are rendered only when there are some.
 * @return 0, BERTH_ENOMEM
 */
int berth_metrics_upstreams(berth_metrics *m, const char *const *names, size_t n);

/** Add `n` to counter `c` of upstream number `upstream` (an index of berth_metrics_upstreams). */
void berth_metrics_proxy_add(berth_metrics *m, size_t upstream, berth_metrics_proxy c, uint64_t n);

/** A route's label, e.g. "manifests". */
const char *berth_metrics_route_name(berth_metrics_route route);

/**
 * Classify a request path (without the query string) into a route: /v2/ is base, /v2/_catalog
 * catalog, /token token, /metrics metrics, and under /v2/<name>/: manifests/<ref>,
 * blobs/<digest>, blobs/uploads/[<id>] (uploads), tags/list, referrers/<digest>. The name may
 * itself contain those words: the shape is matched from the end of the path.
 */
berth_metrics_route berth_metrics_route_of(const char *path);

/**
 * Append the Prometheus text exposition (version 0.0.4) of every metric to `out`. Reads only
 * (`m` is not const because C11 atomic loads take non-const pointers).
 * @return 0, BERTH_ENOMEM or BERTH_ETOOBIG (the buffer's ceiling)
 */
int berth_metrics_render(berth_metrics *m, berth_buf *out);

#endif
