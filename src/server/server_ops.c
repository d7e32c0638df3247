/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operations of the server outside the API proper: the state built from the configuration,
 * the endpoints outside /v2/ (/metrics, /healthz, /readyz; /token is in server_auth.c), the
 * access log (text or JSON lines) and request metrics, and the maintenance thread that runs
 * the online garbage collection every gc.interval, reaps idle upload sessions and refreshes
 * the storage gauges.
 */
#include "server/server_internal.h"

#include "base/log.h"
#include "oci/json.h"
#include "server/ops/gcopts.h"
#include "server/ui.h"

#include <berth/errors.h>

#include <arpa/inet.h>
#include <gnutls/gnutls.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* How often the storage gauges are refreshed when no gc runs sooner, seconds. */
#define GAUGE_PERIOD 30

/* ---- state ------------------------------------------------------------------------------ */

/* Read a whole file as a NUL-terminated string. */
static int read_text(char **out, const char *path)
{
    berth_buf b = BERTH_BUF_INIT;
    char chunk[4096];
    FILE *f;
    size_t n;
    int error = 0;

    *out = NULL;
    if (!(f = fopen(path, "rb"))) {
        return berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if ((error = berth_buf_put(&b, chunk, n)) < 0) {
            goto out;
        }
    }
    if (ferror(f)) {
        error = berth_error_set(BERTH_EIO, "%s: read error", path);
        goto out;
    }
    if ((error = berth_buf_put(&b, "", 1)) < 0) {
        goto out;
    }
    *out = berth_buf_detach(&b);
    if (!*out) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    fclose(f);
    berth_buf_dispose(&b);
    return error;
}

/* A file the configuration names holds what cannot be used: a configuration error (berth serve
 * exits 2), naming where the setting was made. */
static int bad_file(const berth_config *cfg, const char *key, int error)
{
    const char *where = berth_config_origin(cfg, key);
    char detail[512];

    if (error == BERTH_ENOMEM) {
        return error;
    }
    snprintf(detail, sizeof(detail), "%s", berth_error_last());
    return berth_error_set(BERTH_EINVALID, "%s%s%s: %s", where ? where : "", where ? ": " : "", key,
                           detail);
}

/* Can GnuTLS use the certificate chain and key? (Checked here, before the daemons start, so
 * that a bad file is reported as the configuration error it is.) */
static int check_tls_pair(const berth_config *cfg, const char *cert, const char *key)
{
    gnutls_certificate_credentials_t cred = NULL;
    gnutls_datum_t c = {(unsigned char *)(uintptr_t)cert, (unsigned)strlen(cert)};
    gnutls_datum_t k = {(unsigned char *)(uintptr_t)key, (unsigned)strlen(key)};
    int rc;

    if (gnutls_certificate_allocate_credentials(&cred) < 0) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = gnutls_certificate_set_x509_key_mem(cred, &c, &k, GNUTLS_X509_FMT_PEM);
    gnutls_certificate_free_credentials(cred);
    if (rc < 0) {
        berth_error_set(BERTH_EINVALID, "%s and tls.key %s: cannot be used: %s", cfg->tls.cert,
                        cfg->tls.key, gnutls_strerror(rc));
        return bad_file(cfg, "tls.cert", BERTH_EINVALID);
    }
    return 0;
}

int berth__ops_start(berth_server *srv)
{
    const berth_config *cfg = srv->opts.config;
    int error;

    srv->cfg = cfg;
    if ((error = berth_metrics_new(&srv->metrics)) < 0) {
        return error;
    }
    if ((!cfg || cfg->ui.enabled) && (error = berth__ui_start(srv)) < 0) {
        return error;
    }
    if (!cfg) {
        return 0;
    }
    srv->json_log = cfg->log.format == BERTH_CONFIG_LOG_JSON;
    srv->body_max = cfg->limits.body_size;
    srv->uploads_max = cfg->limits.upload_requests;
    if ((error = berth_acl_new(&srv->acl, cfg)) < 0) {
        return error;
    }
    if (cfg->auth.htpasswd) {
        if ((error = berth_htpasswd_open(&srv->htpasswd, cfg->auth.htpasswd, 0, 0)) < 0) {
            return bad_file(cfg, "auth.htpasswd", error);
        }
        srv->auth = true;
    }
    if (cfg->auth.token.realm) {
        const char *key =
            cfg->auth.token.private_key ? cfg->auth.token.private_key : cfg->auth.token.public_key;
        if (!key) {
            return berth_error_set(BERTH_EINVALID, "auth.token.realm: no key configured");
        }
        if ((error = berth_token_key_load(&srv->token_key, key)) < 0) {
            return bad_file(cfg,
                            cfg->auth.token.private_key ? "auth.token.private_key"
                                                        : "auth.token.public_key",
                            error);
        }
        if ((error = berth__token_cache_new(&srv->tokens, 1024)) < 0) {
            return error;
        }
        srv->auth = true;
        srv->bearer = true;
    }
    if (cfg->limits.requests_per_second) {
        if ((error = berth_ratelimit_new(&srv->ratelimit, cfg->limits.requests_per_second,
                                         cfg->limits.burst, 0)) < 0) {
            return error;
        }
    }
    if (cfg->tls.cert) {
        if ((error = read_text(&srv->tls_cert, cfg->tls.cert)) < 0) {
            return bad_file(cfg, "tls.cert", error);
        }
        if ((error = read_text(&srv->tls_key, cfg->tls.key)) < 0) {
            return bad_file(cfg, "tls.key", error);
        }
        if ((error = check_tls_pair(cfg, srv->tls_cert, srv->tls_key)) < 0) {
            return error;
        }
        if (cfg->tls.client_ca) {
            if ((error = read_text(&srv->tls_ca, cfg->tls.client_ca)) < 0) {
                return bad_file(cfg, "tls.client_ca", error);
            }
            srv->mtls = true;
        }
    }
    return 0;
}

void berth__ops_free(berth_server *srv)
{
    berth__ui_free(srv);
    berth_metrics_free(srv->metrics);
    berth_acl_free(srv->acl);
    berth_htpasswd_free(srv->htpasswd);
    berth_token_key_free(srv->token_key);
    berth__token_cache_free(srv->tokens);
    berth_ratelimit_free(srv->ratelimit);
    if (srv->tls_key) {
        memset(srv->tls_key, 0, strlen(srv->tls_key));
    }
    free(srv->tls_cert);
    free(srv->tls_key);
    free(srv->tls_ca);
}

/* ---- endpoints outside /v2/ ---------------------------------------------------------------- */

static enum MHD_Result respond_text(berth__req *r, unsigned status, const char *type,
                                    const char *text)
{
    struct MHD_Response *resp;
    size_t len = strlen(text);

    resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)text, MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    }
    r->bytes = len;
    return berth__respond(r, status, resp);
}

static enum MHD_Result metrics(berth__req *r)
{
    berth_buf out = BERTH_BUF_INIT;
    struct MHD_Response *resp;
    uint64_t sessions = 0, session_bytes = 0;
    size_t len;
    char *data;
    int error;

    /* the open sessions as the metadata backend records them (every replica's), at most
       limits.upload_sessions records: cheap enough for each scrape, and never stale */
    if (berth_store_uploads_usage(r->srv->store, &sessions, &session_bytes) == 0) {
        berth_metrics_gauge_set(r->srv->metrics, BERTH_GAUGE_UPLOAD_SESSIONS, (int64_t)sessions);
        berth_metrics_gauge_set(r->srv->metrics, BERTH_GAUGE_UPLOAD_SESSION_BYTES,
                                (int64_t)session_bytes);
    }
    berth_error_clear();

    if ((error = berth_metrics_render(r->srv->metrics, &out)) < 0) {
        berth_buf_dispose(&out);
        return berth__respond_error(r, BERTH_OP_ANY, error, NULL);
    }
    len = out.len;
    if (!(data = berth_buf_detach(&out))) {
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; version=0.0.4");
    r->bytes = len;
    return berth__respond(r, 200, resp);
}

bool berth__ops_route(berth__req *r, const char *url, enum MHD_Result *ret)
{
    bool get = r->method == BERTH_M_GET || r->method == BERTH_M_HEAD;

    if (url[0] != '/' || url[1] == 'v') {
        return false;
    }
    if (url[1] == 'u' && berth__ui_route(r, url, ret)) { /* the web UI (ui.c) */
        return true;
    }
    if (strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0) {
        r->mroute = BERTH_ROUTE_OTHER;
        if (!get) {
            berth_error_set(BERTH_EUNSUPPORTED, "method %s not allowed here", r->method_name);
            *ret = berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
        } else if (url[1] == 'h') {
            *ret = respond_text(r, 200, "text/plain", "ok\n");
        } else if (atomic_load(&r->srv->ready) && berth_store_ready(r->srv->store) == 0) {
            *ret = respond_text(r, 200, "text/plain", "ready\n");
        } else {
            *ret = respond_text(r, 503, "text/plain", "not ready\n");
        }
        return true;
    }
    if (strcmp(url, "/metrics") == 0) {
        r->mroute = BERTH_ROUTE_METRICS;
        if (!berth__ops_gate(r, ret)) {
            return true;
        }
        if (!get) {
            berth_error_set(BERTH_EUNSUPPORTED, "method %s not allowed here", r->method_name);
            *ret = berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
        } else {
            *ret = metrics(r);
        }
        return true;
    }
    if (strcmp(url, "/token") == 0) {
        r->mroute = BERTH_ROUTE_TOKEN;
        if (!berth__ops_gate(r, ret)) {
            return true;
        }
        *ret = berth__token_endpoint(r);
        return true;
    }
    return false;
}

/* ---- access log and metrics ------------------------------------------------------------- */

/*
 * A worker thread gathers its access-log lines and writes them with one write(2) at the end of
 * each pass of its event loop (berth__access_log_flush), or when ACCESS_BUF would overflow: under
 * load one write for many requests (a write(2) per line was 10% of the server's CPU for a
 * manifest GET with the JSON log on), and at once when the worker has nothing more to do. Other
 * threads, and lines longer than the buffer, write directly.
 */
#define ACCESS_BUF (16u * 1024)

static _Thread_local struct {
    bool on;
    size_t len;
    char buf[ACCESS_BUF];
} access_buf;

static void write_out(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, p, n);
        if (w < 0 && errno == EINTR) {
            continue;
        }
        if (w <= 0) {
            return; /* nothing useful to do when stderr is gone */
        }
        p += w;
        n -= (size_t)w;
    }
}

void berth__access_log_buffer(bool on)
{
    berth__access_log_flush();
    access_buf.on = on;
}

void berth__access_log_flush(void)
{
    if (access_buf.len) {
        write_out(access_buf.buf, access_buf.len);
        access_buf.len = 0;
    }
}

static void write_line(const char *line, size_t n)
{
    if (!access_buf.on) {
        write_out(line, n);
        return;
    }
    if (access_buf.len + n > ACCESS_BUF) {
        berth__access_log_flush();
    }
    if (n > ACCESS_BUF) {
        write_out(line, n);
        return;
    }
    memcpy(access_buf.buf + access_buf.len, line, n);
    access_buf.len += n;
}

void berth__client_address(const berth__req *r, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci;
    const struct sockaddr *sa;

    snprintf(out, size, "-");
    if (!r->conn || !(ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) ||
        !(sa = ci->client_addr)) {
        return;
    }
    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, out,
                  (socklen_t)size);
    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, out,
                  (socklen_t)size);
    }
}

/* A string of the JSON access log, escaped by the data model's one JSON string writer (user
   and URI come from the client: bytes that are not UTF-8 are written as U+FFFD). */
static int put_str(berth_buf *b, const char *s)
{
    return berth__json_put_string(b, s, strlen(s));
}

/* One JSON object per line. Written as a stream, not through a jansson tree: it runs on every
   request, and its numbers are formatted with integer arithmetic. */
static void log_json(const berth__req *r, uint64_t us, uint64_t bytes_out, bool aborted)
{
    berth_buf b = BERTH_BUF_INIT;
    char addr[64], stamp[32], num[160];
    struct timespec wall;
    struct tm tm;
    int n;

    clock_gettime(CLOCK_REALTIME, &wall);
    gmtime_r(&wall.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    berth__client_address(r, addr, sizeof(addr));
    if (berth_buf_puts(&b, "{\"time\":\"") < 0 || berth_buf_puts(&b, stamp) < 0) {
        goto out;
    }
    n = snprintf(num, sizeof(num), ".%03ldZ\",\"remote\":", (long)(wall.tv_nsec / 1000000));
    if (berth_buf_put(&b, num, (size_t)n) < 0 || put_str(&b, addr) < 0 ||
        berth_buf_puts(&b, ",\"user\":") < 0 || put_str(&b, r->authenticated ? r->user : "") < 0 ||
        berth_buf_puts(&b, ",\"method\":") < 0 ||
        put_str(&b, r->method_name ? r->method_name : "-") < 0 ||
        berth_buf_puts(&b, ",\"uri\":") < 0 || put_str(&b, r->uri ? r->uri : "-") < 0 ||
        berth_buf_puts(&b, ",\"route\":") < 0 ||
        put_str(&b, berth_metrics_route_name(r->mroute)) < 0) {
        goto out;
    }
    n = snprintf(num, sizeof(num),
                 ",\"status\":%u,\"bytes_in\":%llu,\"bytes_out\":%llu,\"duration_ms\":%llu.%03llu,"
                 "\"aborted\":%s}\n",
                 r->status, (unsigned long long)r->received, (unsigned long long)bytes_out,
                 (unsigned long long)(us / 1000), (unsigned long long)(us % 1000),
                 aborted ? "true" : "false");
    if (n > 0 && (size_t)n < sizeof(num) && berth_buf_put(&b, num, (size_t)n) == 0) {
        write_line(b.ptr, b.len);
    }
out:
    berth_buf_dispose(&b);
}

static void log_text(const berth__req *r, uint64_t us, uint64_t bytes_out, bool aborted)
{
    char line[1024], uri[768];
    int n;

    /* the target as the client sent it, its control bytes as \xNN */
    berth__log_text_escape(uri, sizeof(uri), r->uri ? r->uri : "-", r->uri ? strlen(r->uri) : 1);
    n = snprintf(line, sizeof(line), "%s %s %u %llu %llu.%03llums%s\n",
                 r->method_name ? r->method_name : "-", uri, r->status,
                 (unsigned long long)bytes_out, (unsigned long long)(us / 1000),
                 (unsigned long long)(us % 1000), aborted ? " (aborted)" : "");
    if (n > 0) {
        if ((size_t)n >= sizeof(line)) {
            n = sizeof(line) - 1;
            line[n - 1] = '\n';
        }
        write_line(line, (size_t)n);
    }
}

void berth__ops_completed(berth__req *r, bool aborted)
{
    berth_server *srv = r->srv;
    uint64_t bytes_out = r->method == BERTH_M_HEAD ? 0 : r->bytes;
    struct timespec now;
    uint64_t us;

    clock_gettime(CLOCK_MONOTONIC, &now);
    /* integer arithmetic: no floating-point formatting on every request */
    us = (uint64_t)(now.tv_sec - r->start.tv_sec) * 1000000u + (uint64_t)(now.tv_nsec / 1000) -
         (uint64_t)(r->start.tv_nsec / 1000);
    if (r->method_name) {
        berth_metrics_observe(srv->metrics, r->method_name, r->mroute, r->status, (double)us / 1e6,
                              r->received, bytes_out);
    }
    if (srv->ui && r->name[0] && r->status >= 200 && r->status < 300 &&
        (r->method == BERTH_M_PUT || r->method == BERTH_M_DELETE ||
         (r->method == BERTH_M_POST && r->status == 201))) {
        berth__ui_changed(srv, r->name); /* a push, mount or delete: the UI's figures change */
    }
    if (r->counted_upload) {
        atomic_fetch_sub(&srv->uploads, 1);
        berth_metrics_gauge_add(srv->metrics, BERTH_GAUGE_UPLOAD_REQUESTS, -1);
        r->counted_upload = false;
    }
    if (!srv->opts.log) {
        return;
    }
    if (srv->json_log) {
        log_json(r, us, bytes_out, aborted);
    } else {
        log_text(r, us, bytes_out, aborted);
    }
}

/* ---- maintenance thread ------------------------------------------------------------------ */

static void refresh_gauges(berth_server *srv)
{
    uint64_t bytes = 0, blobs = 0;

    if (berth_store_usage(srv->store, &bytes, &blobs) == 0) {
        berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_BLOBS, (int64_t)blobs);
        berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_STORED_BYTES, (int64_t)bytes);
        berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_STORAGE_REFRESHED, (int64_t)time(NULL));
    }
    berth_error_clear();
}

/* Remove upload sessions idle past limits.upload_idle_ttl (whether or not gc runs). */
static void reap_uploads(berth_server *srv)
{
    uint64_t removed = 0;

    if (berth_store_uploads_reap(srv->store, &removed) < 0) {
        berth__log(BERTH_LOG_WARN, "berth serve: reaping upload sessions failed: %s",
                   berth_error_last());
    } else if (removed) {
        berth__log(BERTH_LOG_NOTICE, "berth serve: %llu idle upload sessions removed",
                   (unsigned long long)removed);
    }
}

static void run_gc(berth_server *srv)
{
    berth_gc_options opts;
    berth_retention_rule *rules = NULL;
    berth_gc_stats stats;
    struct timespec t0, t1;
    int error;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&stats, 0, sizeof(stats));
    error = berth_gcopts_from_config(&opts, &rules, srv->cfg);
    if (error == 0 && srv->proxy) {
        berth__proxy_evict(srv); /* pull-through cache (proxy.c): max_size, then collected */
    }
    if (error == 0) {
        error = berth_store_gc(srv->store, &opts, &stats);
    }
    free(rules);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (error == 0) {
        berth__ui_gc_done(srv, &stats);
        berth_metrics_counter_add(srv->metrics, BERTH_COUNTER_GC_RUNS, 1);
        berth_metrics_counter_add(srv->metrics, BERTH_COUNTER_GC_FREED_BYTES, stats.bytes_freed);
    }
    if (error < 0) {
        berth__log(BERTH_LOG_WARN, "berth serve: gc failed: %s", berth_error_last());
    } else {
        berth__log(
            BERTH_LOG_NOTICE,
            "berth serve: gc: %llu tags, %llu manifests, %llu links, %llu blobs, "
            "%llu uploads removed, %llu bytes freed in %lld ms",
            (unsigned long long)stats.tags_removed, (unsigned long long)stats.manifests_removed,
            (unsigned long long)stats.links_removed, (unsigned long long)stats.blobs_removed,
            (unsigned long long)stats.uploads_removed, (unsigned long long)stats.bytes_freed,
            (long long)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000));
    }
}

static void *maint_main(void *arg)
{
    berth_server *srv = arg;
    uint64_t interval = srv->cfg->gc.interval;
    /* idle sessions are reaped at least twice per TTL, and at least every GAUGE_PERIOD */
    time_t period = (time_t)(srv->cfg->limits.upload_idle_ttl / 2);
    struct timespec now, next_gc, next_gauge, wake;

    period = period < 1 ? 1 : period > GAUGE_PERIOD ? GAUGE_PERIOD : period;
    refresh_gauges(srv);
    clock_gettime(CLOCK_MONOTONIC, &now);
    next_gc = now;
    next_gc.tv_sec += (time_t)(interval ? interval : 0);
    next_gauge = now;
    next_gauge.tv_sec += period;
    pthread_mutex_lock(&srv->maint_lock);
    while (!srv->maint_stop) {
        bool do_gc, do_gauge;

        wake = next_gauge;
        if (interval && next_gc.tv_sec < wake.tv_sec) {
            wake = next_gc;
        }
        pthread_cond_timedwait(&srv->maint_cond, &srv->maint_lock, &wake);
        if (srv->maint_stop) {
            break;
        }
        clock_gettime(CLOCK_MONOTONIC, &now);
        do_gc = interval && now.tv_sec >= next_gc.tv_sec;
        do_gauge = do_gc || now.tv_sec >= next_gauge.tv_sec;
        if (!do_gc && !do_gauge) {
            continue;
        }
        pthread_mutex_unlock(&srv->maint_lock);
        if (do_gc) {
            if (srv->cfg->storage.read_only) {
                berth__log(BERTH_LOG_INFO, "berth serve: gc skipped: read-only");
            } else {
                run_gc(srv);
            }
            next_gc = now;
            next_gc.tv_sec += (time_t)interval;
        }
        if (!srv->cfg->storage.read_only) {
            reap_uploads(srv); /* read-only: nothing is removed, idle sessions wait */
        }
        refresh_gauges(srv);
        clock_gettime(CLOCK_MONOTONIC, &next_gauge);
        next_gauge.tv_sec += period;
        pthread_mutex_lock(&srv->maint_lock);
    }
    pthread_mutex_unlock(&srv->maint_lock);
    return NULL;
}

int berth__maint_start(berth_server *srv)
{
    pthread_condattr_t attr;

    if (!srv->cfg) {
        return 0;
    }
    if (pthread_condattr_init(&attr) != 0) {
        return berth_error_set(BERTH_ENOMEM, "cannot create a condition variable");
    }
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&srv->maint_cond, &attr) != 0) {
        pthread_condattr_destroy(&attr);
        return berth_error_set(BERTH_ENOMEM, "cannot create a condition variable");
    }
    pthread_condattr_destroy(&attr);
    if (pthread_mutex_init(&srv->maint_lock, NULL) != 0) {
        pthread_cond_destroy(&srv->maint_cond);
        return berth_error_set(BERTH_ENOMEM, "cannot create a mutex");
    }
    srv->maint_stop = false;
    if (pthread_create(&srv->maint, NULL, maint_main, srv) != 0) {
        pthread_mutex_destroy(&srv->maint_lock);
        pthread_cond_destroy(&srv->maint_cond);
        return berth_error_set(BERTH_ERROR, "cannot start the maintenance thread");
    }
    srv->maint_running = true;
    return 0;
}

void berth__maint_stop(berth_server *srv)
{
    if (!srv->maint_running) {
        return;
    }
    pthread_mutex_lock(&srv->maint_lock);
    srv->maint_stop = true;
    pthread_cond_signal(&srv->maint_cond);
    pthread_mutex_unlock(&srv->maint_lock);
    pthread_join(srv->maint, NULL);
    pthread_mutex_destroy(&srv->maint_lock);
    pthread_cond_destroy(&srv->maint_cond);
    srv->maint_running = false;
}
