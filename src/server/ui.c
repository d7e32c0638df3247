/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web UI's files: /ui answers 301 to /ui/; /ui/assets/<file> is an embedded file of
 * ui/assets/ (404 when there is none); every other path under /ui/ but /ui/api/ is index.html,
 * so that deep links (/ui/r/NAME:TAG) load the application, which reads the path itself. The
 * files are embedded at build time (scripts/embed.c) and never change while the server runs:
 * each has an ETag (a hash of its bytes, computed at build time), answered with 304 when a
 * client sends it back; hashed names (app.1a2b3c4d.js) are immutable for a year, the others
 * `no-cache` (revalidated on each load). Only GET and HEAD. The paths under /ui/api/ are the
 * JSON API (ui_api.c).
 *
 * berth__ui_route() is called by berth__ops_route() only for a path starting "/u", after the
 * /v2/ test: the registry's hot path does not see the UI.
 */
#include "server/ui.h"

#include <berth/errors.h>

#include "server/ui_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Entries (tags, manifests, blobs) the per-repository models may hold together: about 100 MB. */
#define UI_CACHE_ENTRIES 500000
/* The UI's files are this origin's only (no inline script or style, no framing, no plugin); a
 * JSON document opened on its own runs nothing either. */
#define UI_CSP                                                                                     \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; "   \
    "connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; "               \
    "frame-ancestors 'none'"

int berth__ui_start(berth_server *srv)
{
    berth__ui *ui = calloc(1, sizeof(*ui));
    const char *env;

    if (!ui) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&ui->lock, NULL);
    ui->weight_max = UI_CACHE_ENTRIES;
    if ((env = getenv("BERTH_UI_CACHE_ENTRIES")) != NULL && *env) {
        uint64_t v;
        if (berth_parse_u64(&v, env, strlen(env), UINT64_MAX) < 0) {
            pthread_mutex_destroy(&ui->lock);
            free(ui);
            return berth_error_set(BERTH_EINVALID, "BERTH_UI_CACHE_ENTRIES: not a number");
        }
        ui->weight_max = v;
    }
    srv->ui = ui;
    return 0;
}

void berth__ui_headers(struct MHD_Response *resp)
{
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "X-Frame-Options", "DENY");
    MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
    MHD_add_response_header(resp, "Referrer-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(resp, "Cross-Origin-Opener-Policy", "same-origin");
}

void berth__ui_free(berth_server *srv)
{
    berth__ui *ui = srv->ui;

    if (!ui) {
        return;
    }
    berth__ui_models_clear(ui);
    berth__htab_dispose(&ui->models);
    berth__ui_du_clear(ui);
    pthread_mutex_destroy(&ui->lock);
    free(ui);
    srv->ui = NULL;
}

void berth__ui_gc_done(berth_server *srv, const berth_gc_stats *stats)
{
    berth__ui *ui = srv->ui;

    if (!ui) {
        return;
    }
    pthread_mutex_lock(&ui->lock);
    ui->gc_ran = true;
    ui->gc_time = (int64_t)time(NULL);
    ui->gc = *stats;
    berth__ui_note_change(ui, NULL);
    berth__ui_models_clear(ui); /* anything may have gone */
    berth__ui_du_clear(ui);
    berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_UI_MODELS, 0);
    berth_metrics_gauge_set(srv->metrics, BERTH_GAUGE_UI_ENTRIES, 0);
    pthread_mutex_unlock(&ui->lock);
}

enum MHD_Result berth__ui_error(berth__req *r, berth__op op, int code, const char *msg)
{
    unsigned status;
    size_t len;
    struct MHD_Response *resp = berth__error_response(&status, &len, op, code, msg);

    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    berth__ui_headers(resp);
    if (status == 401) {
        MHD_add_response_header(resp, "X-Berth-Login", r->srv->htpasswd ? "basic" : "bearer");
    }
    if (status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    }
    if (status == 429 || status == 503) {
        berth__retry_after(resp, r);
    }
    r->bytes = len;
    return berth__respond(r, status, resp);
}

/* ---- files ------------------------------------------------------------------------------- */

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".mjs", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".map", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".webp", "image/webp"},
        {".woff2", "font/woff2"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(path, '.');

    for (size_t i = 0; dot && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcasecmp(dot, types[i].ext) == 0) {
            return types[i].type;
        }
    }
    return "application/octet-stream";
}

/* A hashed name: a dot-separated part of 8 or more hex digits before the extension
 * (app.1a2b3c4d.js), which a build tool changes with the content. */
static bool hashed_name(const char *path)
{
    const char *base = strrchr(path, '/'), *p, *end = strrchr(path, '.');

    base = base ? base + 1 : path;
    p = strchr(base, '.');
    while (p && p < end) {
        const char *q = strchr(p + 1, '.');
        size_t n = (size_t)((q ? q : end) - (p + 1));
        bool hex = n >= 8 && q && q <= end;

        for (size_t i = 0; hex && i < n; i++) {
            char c = p[1 + i];
            hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        }
        if (hex) {
            return true;
        }
        p = q;
    }
    return false;
}

/* Does If-None-Match name `etag` (or "*")? */
static bool not_modified(berth__req *r, const char *etag)
{
    const char *inm = berth__header(r, MHD_HTTP_HEADER_IF_NONE_MATCH);

    if (!inm) {
        return false;
    }
    return strstr(inm, etag) != NULL || strcmp(inm, "*") == 0;
}

static enum MHD_Result serve_file(berth__req *r, unsigned index)
{
    const berth__ui_file *f = &berth__ui_files[index];
    const char *etag = f->etag;
    bool fresh = not_modified(r, etag);
    struct MHD_Response *resp =
        fresh ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
              : MHD_create_response_from_buffer(f->len, (void *)(uintptr_t)f->data,
                                                MHD_RESPMEM_PERSISTENT);

    if (!resp) {
        return MHD_NO;
    }
    if (!fresh) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type(f->path));
        r->bytes = f->len;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
                            hashed_name(f->path) ? "public, max-age=31536000, immutable"
                                                 : "no-cache");
    berth__ui_headers(resp);
    return berth__respond(r, fresh ? 304 : 200, resp);
}

static int find_file(const char *path)
{
    for (unsigned i = 0; i < berth__ui_nfiles; i++) {
        if (strcmp(berth__ui_files[i].path, path) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static enum MHD_Result not_found(berth__req *r)
{
    berth_error_set(BERTH_ENOTFOUND, "no such file");
    return berth__ui_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
}

bool berth__ui_route(berth__req *r, const char *url, enum MHD_Result *ret)
{
    berth_server *srv = r->srv;
    const char *rest;
    char path[2 * BERTH_NAME_MAX + 128];
    size_t n;
    int i;

    if (!srv->ui || strncmp(url, "/ui", 3) != 0 || (url[3] != '\0' && url[3] != '/')) {
        return false;
    }
    r->mroute = BERTH_ROUTE_OTHER;
    if ((srv->ratelimit || srv->mtls) && !berth__ops_gate(r, ret)) {
        return true;
    }
    if (r->method != BERTH_M_GET && r->method != BERTH_M_HEAD) {
        berth_error_set(BERTH_EUNSUPPORTED, "method %s not allowed here", r->method_name);
        *ret = berth__ui_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
        return true;
    }
    if (url[3] == '\0') {
        *ret = berth__respond_empty(r, 301, "/ui/");
        return true;
    }
    if (strncmp(url, "/ui/api/", 8) == 0 || strcmp(url, "/ui/api") == 0) {
        /* routed on the request target as sent (as /v2/ is), less its query: a name holds
           slashes, and an escaped one (%2F) must not split it */
        const char *raw = r->uri ? r->uri : "";

        n = strcspn(raw, "?");
        if (strncmp(raw, "/ui/api/v1/", 11) != 0) {
            *ret = not_found(r);
            return true;
        }
        if (n >= sizeof(path)) {
            /* longer than any name, tag or digest together */
            berth_error_set(BERTH_EINVALID, "request path too long: no repository has such a name");
            *ret = berth__ui_error(r, BERTH_OP_NAME, BERTH_EINVALID, NULL);
            return true;
        }
        memcpy(path, raw + 11, n - 11);
        path[n - 11] = '\0';
        *ret = berth__ui_api(r, path);
        return true;
    }
    rest = url + 4;
    if (strncmp(rest, "assets/", 7) == 0) {
        *ret = (i = find_file(rest)) >= 0 ? serve_file(r, (unsigned)i) : not_found(r);
        return true;
    }
    if ((i = find_file("index.html")) < 0) {
        *ret = not_found(r);
        return true;
    }
    *ret = serve_file(r, (unsigned)i);
    return true;
}
