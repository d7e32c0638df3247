/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The daemon and the router. libmicrohttpd runs an epoll thread pool; each request gets a
 * berth__req from the URI-log callback (which also stamps its start time), is routed on its
 * first access-handler call (the path is parsed from the right, since names contain '/'), has
 * its body fed chunk by chunk to a sink (a bounded buffer for manifests, an upload session
 * for blobs) and is answered once the body is in. The request-completed callback writes the
 * access-log line and releases whatever the request still holds.
 */
#include "server/server_internal.h"

#include <berth/errors.h>

#include "base/log.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

void berth_server_options_init(berth_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->listen_address = "127.0.0.1";
    opts->port = 5000;
    opts->log = true;
}

/* ---- responses ------------------------------------------------------------------------ */

enum MHD_Result berth__respond(berth__req *r, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result ret;

    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Docker-Distribution-API-Version", "registry/2.0");
    if (r->close_after || berth__conn_closing(r->srv, r->lc)) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }
    berth__conn_phase(r->srv, r->lc, r->conn, BERTH__PHASE_RESPONSE, false);
    ret = MHD_queue_response(r->conn, status, resp);
    MHD_destroy_response(resp);
    r->responded = true;
    r->status = status;
    return ret;
}

enum MHD_Result berth__respond_empty(berth__req *r, unsigned status, const char *location)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (resp && location) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    }
    return berth__respond(r, status, resp);
}

void berth__session_headers(struct MHD_Response *resp, const berth__req *r, const char *id,
                            uint64_t size)
{
    char location[BERTH_NAME_MAX + BERTH_UPLOAD_ID_MAX + 32];
    char range[48];

    snprintf(location, sizeof(location), "/v2/%s/blobs/uploads/%s", r->name, id);
    snprintf(range, sizeof(range), "0-%llu", (unsigned long long)(size ? size - 1 : 0));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RANGE, range);
    MHD_add_response_header(resp, "Blob-Upload-Session-ID", id);
    MHD_add_response_header(resp, "Docker-Upload-UUID", id);
}

/* The methods a route supports (RFC 9110 15.5.6: the Allow of a 405). */
/* The methods of a route, less those the operator switched off (storage.read_only: reads only;
 * storage.delete_enabled false: no DELETE). */
static const char *allowed_methods(const berth__req *r)
{
    const berth_config *cfg = r->srv->cfg;
    bool ro = cfg && cfg->storage.read_only;
    bool del = !ro && (!cfg || cfg->storage.delete_enabled);

    switch (r->route) {
    case BERTH_R_MANIFEST:
        return ro ? "GET, HEAD" : del ? "GET, HEAD, PUT, DELETE" : "GET, HEAD, PUT";
    case BERTH_R_BLOB:
        return del ? "GET, HEAD, DELETE" : "GET, HEAD";
    case BERTH_R_UPLOADS:
        return ro ? "" : "POST";
    case BERTH_R_UPLOAD:
        return ro ? "GET" : "GET, PATCH, PUT, DELETE";
    default:
        return "GET, HEAD";
    }
}

struct MHD_Response *berth__error_response(unsigned *status_out, size_t *len_out, berth__op op,
                                           int code, const char *msg)
{
    berth_buf doc = BERTH_BUF_INIT;
    struct MHD_Response *resp;
    berth__api_error api;
    size_t len;
    char *body;

    berth__error_map(status_out, &api, op, code);
    if (berth__error_document(&doc, api, msg ? msg : berth_error_last()) < 0) {
        berth_buf_dispose(&doc);
        return NULL;
    }
    len = doc.len;
    if (!(body = berth_buf_detach(&doc))) {
        return NULL;
    }
    if (!(resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE))) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    *len_out = len;
    return resp;
}

void berth__retry_after(struct MHD_Response *resp, const berth__req *r)
{
    char retry[24];
    snprintf(retry, sizeof(retry), "%llu",
             (unsigned long long)(r->retry_after ? r->retry_after : 1));
    MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
}

enum MHD_Result berth__respond_error(berth__req *r, berth__op op, int code, const char *msg)
{
    unsigned status;
    size_t len;
    struct MHD_Response *resp = berth__error_response(&status, &len, op, code, msg);

    if (!resp) {
        return MHD_NO;
    }
    if (r->upload) {
        /*
         * A refused chunk changes nothing: roll back, tell the client where the session
         * stands so it can resume, and release the session before the answer goes out, so
         * that the client's next request (a status GET, a retry) finds it free. A POST's own
         * session goes with the request.
         */
        berth_upload_rollback(r->upload);
        if (r->method != BERTH_M_POST) {
            berth__session_headers(resp, r, berth_upload_id(r->upload),
                                   berth_upload_size(r->upload));
        }
        berth_upload_abort(r->upload);
        r->upload = NULL;
    }
    if (status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                r->allow ? r->allow : allowed_methods(r));
    }
    if (status == 401 && r->www_authenticate) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    }
    if (status == 429 || status == 503) {
        /* every 429 says when to come back (a full table of upload sessions: api_blobs.c) */
        berth__retry_after(resp, r);
    }
    r->bytes = len;
    return berth__respond(r, status, resp);
}

void berth__req_fail(berth__req *r, berth__op op, int code)
{
    if (r->fail_code) {
        return;
    }
    r->fail_code = code;
    r->fail_op = op;
    snprintf(r->fail_msg, sizeof(r->fail_msg), "%s", berth_error_last());
}

const char *berth__query(berth__req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
}

typedef struct query_values {
    const char *key;
    const char **out;
    size_t max, n;
} query_values;

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    query_values *q = cls;

    (void)kind;
    if (key && strcmp(key, q->key) == 0) {
        if (q->n < q->max) {
            q->out[q->n] = value ? value : "";
        }
        q->n++;
    }
    return MHD_YES;
}

size_t berth__query_all(berth__req *r, const char *key, const char **out, size_t max)
{
    query_values q = {key, out, max, 0};

    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_query, &q);
    return q.n;
}

const char *berth__header(berth__req *r, const char *key)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, key);
}

/* ---- routing ---------------------------------------------------------------------------- */

static berth__method method_of(const char *m)
{
    static const struct {
        const char *name;
        berth__method m;
    } methods[] = {
        {"GET", BERTH_M_GET},   {"HEAD", BERTH_M_HEAD},   {"PUT", BERTH_M_PUT},
        {"POST", BERTH_M_POST}, {"PATCH", BERTH_M_PATCH}, {"DELETE", BERTH_M_DELETE},
    };
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strcmp(m, methods[i].name) == 0) {
            return methods[i].m;
        }
    }
    return BERTH_M_OTHER;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

/*
 * Split `/v2/<name>/<kind>/.../<last>` from the right. Sets r->route, r->name, r->ref, or
 * returns the op and code of the error to answer.
 */
static int route(berth__req *r, const char *url, berth__op *op_out)
{
    const char *rest, *slash;
    size_t len, prefix_len, name_len = 0, seg_len;

    *op_out = BERTH_OP_ROUTE;
    if (strncmp(url, "/v2", 3) != 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no such endpoint: %s", url);
    }
    rest = url + 3;
    if (*rest == '\0' || strcmp(rest, "/") == 0) {
        r->route = BERTH_R_BASE;
        return 0;
    }
    rest++; /* past the '/' after v2 */
    if (url[3] != '/') {
        return berth_error_set(BERTH_ENOTFOUND, "no such endpoint: %s", url);
    }
    if (strcmp(rest, "_catalog") == 0) {
        r->route = BERTH_R_CATALOG;
        return 0;
    }
    len = strlen(rest);
    slash = strrchr(rest, '/');
    if (!slash) {
        return berth_error_set(BERTH_ENOTFOUND, "no such endpoint: %s", url);
    }
    prefix_len = (size_t)(slash - rest);
    seg_len = len - prefix_len - 1;
    if (ends_with(rest, prefix_len, "/manifests")) {
        r->route = BERTH_R_MANIFEST;
        name_len = prefix_len - strlen("/manifests");
    } else if (ends_with(rest, prefix_len, "/blobs/uploads")) {
        r->route = seg_len ? BERTH_R_UPLOAD : BERTH_R_UPLOADS;
        name_len = prefix_len - strlen("/blobs/uploads");
    } else if (ends_with(rest, prefix_len, "/blobs")) {
        if (strcmp(slash + 1, "uploads") == 0) {
            r->route = BERTH_R_UPLOADS;
            seg_len = 0;
        } else {
            r->route = BERTH_R_BLOB;
        }
        name_len = prefix_len - strlen("/blobs");
    } else if (ends_with(rest, prefix_len, "/referrers")) {
        r->route = BERTH_R_REFERRERS;
        name_len = prefix_len - strlen("/referrers");
    } else if (ends_with(rest, prefix_len, "/tags") && strcmp(slash + 1, "list") == 0) {
        r->route = BERTH_R_TAGS;
        name_len = prefix_len - strlen("/tags");
        seg_len = 0;
    } else {
        return berth_error_set(BERTH_ENOTFOUND, "no such endpoint: %s", url);
    }
    if (r->route != BERTH_R_UPLOADS && r->route != BERTH_R_TAGS && seg_len == 0) {
        r->route = BERTH_R_NONE;
        return berth_error_set(BERTH_ENOTFOUND, "no such endpoint: %s", url);
    }
    *op_out = BERTH_OP_NAME;
    if (name_len == 0 || name_len > BERTH_NAME_MAX) {
        return berth_error_set(BERTH_EINVALID, "repository name must be 1 to %d characters",
                               BERTH_NAME_MAX);
    }
    if (berth_name_validate_len(rest, name_len) < 0) {
        return BERTH_EINVALID;
    }
    memcpy(r->name, rest, name_len);
    r->name[name_len] = '\0';
    if (seg_len > BERTH__REF_MAX) {
        *op_out = r->route == BERTH_R_MANIFEST ? BERTH_OP_TAG : BERTH_OP_DIGEST;
        if (r->route == BERTH_R_UPLOAD) {
            *op_out = BERTH_OP_UPLOAD;
            return berth_error_set(BERTH_ENOTFOUND, "no such upload");
        }
        if (r->route == BERTH_R_MANIFEST && r->method != BERTH_M_PUT) {
            /* what cannot exist is not found */
            *op_out = BERTH_OP_MANIFEST_GET;
            return berth_error_set(BERTH_ENOTFOUND, "manifest unknown: reference too long");
        }
        return berth_error_set(BERTH_EINVALID, "reference too long");
    }
    memcpy(r->ref, slash + 1, seg_len);
    r->ref[seg_len] = '\0';
    return 0;
}

static bool has_body_method(berth__method m)
{
    return m == BERTH_M_PUT || m == BERTH_M_POST || m == BERTH_M_PATCH;
}

static enum MHD_Result method_not_allowed(berth__req *r)
{
    berth_error_set(BERTH_EUNSUPPORTED, "method %s not allowed here", r->method_name);
    return berth__respond_error(r, BERTH_OP_METHOD, BERTH_EUNSUPPORTED, NULL);
}

static enum MHD_Result base(berth__req *r)
{
    static const char body[] = "{}";
    struct MHD_Response *resp;

    if (r->method != BERTH_M_GET && r->method != BERTH_M_HEAD) {
        return method_not_allowed(r);
    }
    resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)(uintptr_t)body,
                                           MHD_RESPMEM_PERSISTENT);
    if (resp) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    }
    r->bytes = sizeof(body) - 1;
    return berth__respond(r, 200, resp);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether an escaped byte may be decoded in the path (see safe_unescape). */
static bool path_safe(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~:+", c));
}

/*
 * Decode `s` in place; an escape is decoded only when `keep` accepts its byte, otherwise it
 * stays as it is ("%00"). @return the new length
 */
static size_t unescape_if(char *s, bool (*keep)(char))
{
    char *in = s, *out = s;

    while (*in) {
        int hi, lo;
        char c;

        if (in[0] == '%' && (hi = hexval(in[1])) >= 0 && (lo = hexval(in[2])) >= 0) {
            c = (char)(hi * 16 + lo);
            if (keep(c)) {
                *out++ = c;
                in += 3;
                continue;
            }
        }
        *out++ = *in++;
    }
    *out = '\0';
    return (size_t)(out - s);
}

static bool not_nul(char c)
{
    return c != '\0';
}

/*
 * MHD_OPTION_UNESCAPE_CALLBACK, for query values (and MHD's copy of the path, which berth does
 * not route on): everything is decoded but %00, which would cut a value short; it stays
 * "%00" and fails the grammar of whatever it is in.
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    return unescape_if(s, not_nul);
}

/* First call: route and either answer or get ready for the body. */
static enum MHD_Result begin(berth__req *r, const char *url)
{
    static const berth_metrics_route mroutes[] = {
        [BERTH_R_NONE] = BERTH_ROUTE_OTHER,          [BERTH_R_BASE] = BERTH_ROUTE_BASE,
        [BERTH_R_CATALOG] = BERTH_ROUTE_CATALOG,     [BERTH_R_TAGS] = BERTH_ROUTE_TAGS,
        [BERTH_R_MANIFEST] = BERTH_ROUTE_MANIFESTS,  [BERTH_R_BLOB] = BERTH_ROUTE_BLOBS,
        [BERTH_R_UPLOADS] = BERTH_ROUTE_UPLOADS,     [BERTH_R_UPLOAD] = BERTH_ROUTE_UPLOADS,
        [BERTH_R_REFERRERS] = BERTH_ROUTE_REFERRERS,
    };
    char path[2 * BERTH_NAME_MAX + 64];
    enum MHD_Result ret;
    berth__op op;
    size_t n;
    int error;

    berth_error_clear();
    if (berth__ops_route(r, url, &ret)) {
        return ret;
    }
    /*
     * Route on the request target as received: MHD's decoded copy would let an escape (%00,
     * %2F) cut short or re-split a component. Only escapes of bytes that a component may hold
     * are decoded; any other stays literal and fails that component's grammar.
     */
    n = r->uri ? strcspn(r->uri, "?") : 0;
    if (n >= sizeof(path)) {
        berth_error_set(BERTH_ENOTFOUND, "request path too long");
        return berth__respond_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
    }
    memcpy(path, r->uri ? r->uri : "", n);
    path[n] = '\0';
    unescape_if(path, path_safe);
    if ((error = route(r, path, &op)) < 0) {
        if ((r->srv->ratelimit || r->srv->mtls) && !berth__ops_gate(r, &ret)) {
            return ret;
        }
        return berth__respond_error(r, op, error, NULL);
    }
    r->mroute = mroutes[r->route];
    /* pull-through cache (proxy.c): containerd's /v2/NAME/...?ns=REGISTRY is PREFIX/NAME, for
     * authorization and all that follows; an ns no upstream answers to is 404 NAME_UNKNOWN */
    if (r->srv->proxy && (error = berth__proxy_ns(r)) < 0) {
        if ((r->srv->ratelimit || r->srv->mtls) && !berth__ops_gate(r, &ret)) {
            return ret;
        }
        return berth__respond_error(r, error == BERTH_EINVALID ? BERTH_OP_NAME : BERTH_OP_REPO,
                                    error, NULL);
    }
    if (!berth__ops_admit(r, &ret)) {
        return ret;
    }
    /* pull-through cache (proxy.c): no writes under an upstream's prefix */
    if (r->srv->proxy && berth__proxy_refuse(r, &ret)) {
        return ret;
    }
    switch (r->route) {
    case BERTH_R_BASE:
        return base(r);
    case BERTH_R_CATALOG:
        return r->method == BERTH_M_GET || r->method == BERTH_M_HEAD ? berth__api_catalog(r)
                                                                     : method_not_allowed(r);
    case BERTH_R_TAGS:
        return r->method == BERTH_M_GET || r->method == BERTH_M_HEAD ? berth__api_tags(r)
                                                                     : method_not_allowed(r);
    case BERTH_R_REFERRERS:
        return r->method == BERTH_M_GET || r->method == BERTH_M_HEAD ? berth__api_referrers(r)
                                                                     : method_not_allowed(r);
    case BERTH_R_MANIFEST:
        if (r->method == BERTH_M_PUT) {
            return berth__api_manifest_put_begin(r);
        }
        if (r->method == BERTH_M_GET || r->method == BERTH_M_HEAD || r->method == BERTH_M_DELETE) {
            return berth__api_manifest(r);
        }
        return method_not_allowed(r);
    case BERTH_R_BLOB:
        if (r->method == BERTH_M_GET || r->method == BERTH_M_HEAD || r->method == BERTH_M_DELETE) {
            return berth__api_blob(r);
        }
        return method_not_allowed(r);
    case BERTH_R_UPLOADS:
        return r->method == BERTH_M_POST ? berth__api_upload_begin(r) : method_not_allowed(r);
    case BERTH_R_UPLOAD:
        if (r->method == BERTH_M_GET || r->method == BERTH_M_DELETE) {
            return berth__api_upload_get(r);
        }
        if (r->method == BERTH_M_PATCH || r->method == BERTH_M_PUT) {
            return berth__api_upload_begin(r);
        }
        return method_not_allowed(r);
    case BERTH_R_NONE:
        break;
    }
    berth_error_set(BERTH_ENOTFOUND, "no such endpoint");
    return berth__respond_error(r, BERTH_OP_ROUTE, BERTH_ENOTFOUND, NULL);
}

static void feed(berth__req *r, const char *data, size_t size)
{
    int error;

    r->received += size;
    if (r->fail_code || r->responded) {
        return;
    }
    switch (r->sink) {
    case BERTH_SINK_NONE:
        break;
    case BERTH_SINK_BUF:
        if ((error = berth_buf_put(&r->body, data, size)) < 0) {
            if (error == BERTH_ETOOBIG) {
                berth_error_set(error, "manifest larger than %zu bytes", r->body.max);
            }
            berth__req_fail(r, BERTH_OP_MANIFEST_PUT, error);
            berth_buf_dispose(&r->body);
        }
        break;
    case BERTH_SINK_UPLOAD:
        if (r->has_crange && r->received > berth_range_length(&r->crange)) {
            berth_error_set(BERTH_EINVALID, "body longer than its Content-Range");
            berth__req_fail(r, BERTH_OP_UPLOAD_RANGE, BERTH_EINVALID);
            break;
        }
        if (r->srv->body_max && berth_upload_size(r->upload) + size > r->srv->body_max) {
            berth_error_set(BERTH_ETOOBIG, "body larger than %llu bytes",
                            (unsigned long long)r->srv->body_max);
            berth__req_fail(r, BERTH_OP_UPLOAD, BERTH_ETOOBIG);
            break;
        }
        if ((error = berth_upload_write(r->upload, data, size)) < 0) {
            berth__req_fail(r, BERTH_OP_UPLOAD, error);
        }
        break;
    }
}

static enum MHD_Result finish(berth__req *r)
{
    if (r->route == BERTH_R_MANIFEST) {
        return berth__api_manifest_put_finish(r);
    }
    return berth__api_upload_finish(r);
}

typedef struct framing {
    unsigned content_length, transfer_encoding;
    const char *te, *cl;
    bool bad_name; /* a field name that is not an RFC 9110 token (e.g. "Name : value") */
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    framing *f = cls;

    (void)kind;
    if (!*key || key[strcspn(key, " \t\r\n\"(),/:;<=>?@[\\]{}")] != '\0') {
        f->bad_name = true;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
        f->content_length++;
        f->cl = value;
    } else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
        f->transfer_encoding++;
        f->te = value;
    }
    return MHD_YES;
}

/* Whether `te` ends with the chunked coding; `*only` when it is nothing else. */
static bool te_chunked(const char *te, bool *only)
{
    const char *last = strrchr(te, ',');
    const char *p = last ? last + 1 : te;
    size_t n;

    while (*p == ' ' || *p == '\t') {
        p++;
    }
    n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
        n--;
    }
    *only = !last;
    return n == 7 && strncasecmp(p, "chunked", 7) == 0;
}

/*
 * Request framing as RFC 9112 section 6 requires of a server: a request whose body length
 * cannot be determined reliably (several Content-Length fields, Transfer-Encoding together
 * with Content-Length, a Transfer-Encoding whose final coding is not chunked, Transfer-Encoding
 * in HTTP/1.0) is refused with 400 and its connection closed (6.3), so that no byte of it is
 * read as another request; a coding other than chunked gets 501 (6.1).
 */
static bool framing_ok(berth__req *r, const char *version, bool *body)
{
    framing f = {0, 0, NULL, NULL, false};
    bool only;

    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_framing, &f);
    *body = f.transfer_encoding || (f.cl && strcmp(f.cl, "0") != 0);
    if (f.bad_name) {
        /* RFC 9112 5.1: whitespace between a field name and the colon MUST be refused */
        berth_error_set(BERTH_EINVALID, "a header field name is not a token");
        return false;
    }
    if (f.content_length > 1) {
        berth_error_set(BERTH_EINVALID, "more than one Content-Length");
        return false;
    }
    if (f.transfer_encoding == 0) {
        return true;
    }
    if (f.transfer_encoding > 1 || f.content_length) {
        berth_error_set(BERTH_EINVALID, f.content_length
                                            ? "both Transfer-Encoding and Content-Length"
                                            : "more than one Transfer-Encoding");
        return false;
    }
    if (strcmp(version, MHD_HTTP_VERSION_1_0) == 0) {
        berth_error_set(BERTH_EINVALID, "Transfer-Encoding in an HTTP/1.0 request");
        return false;
    }
    if (!te_chunked(f.te, &only)) {
        berth_error_set(BERTH_EINVALID, "the final transfer coding must be chunked");
        return false;
    }
    if (!only) {
        berth_error_set(BERTH_EUNSUPPORTED, "transfer codings other than chunked");
        return false;
    }
    if (strcasecmp(f.te, "chunked") != 0) {
        /* libmicrohttpd decodes chunked only when the value is exactly that: anything else
           ("chunked " with a space) it would read to the end of the connection */
        berth_error_set(BERTH_EINVALID, "Transfer-Encoding must be exactly \"chunked\"");
        return false;
    }
    return true;
}

static enum MHD_Result handle(berth__req *r, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size);

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    berth__worker *w = cls;
    enum MHD_Result ret;

    atomic_store_explicit(&w->busy_since, berth__now_ms(), memory_order_relaxed);
    ret = handle(*con_cls, conn, url, method, version, upload_data, upload_data_size);
    atomic_store_explicit(&w->busy_since, 0, memory_order_relaxed);
    return ret;
}

static enum MHD_Result handle(berth__req *r, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload_data,
                              size_t *upload_data_size)
{
    bool body;

    if (!r) {
        return MHD_NO;
    }
    if (!r->begun) {
        r->begun = true;
        r->conn = conn;
        r->method_name = method;
        r->method = method_of(method);
        if (!framing_ok(r, version, &body)) {
            berth__conn_phase(r->srv, r->lc, conn, BERTH__PHASE_BODY, false);
            r->close_after = true;
            return berth__respond_error(r, BERTH_OP_HTTP, berth_error_last_code(), NULL);
        }
        body = body || has_body_method(r->method);
        berth__conn_phase(r->srv, r->lc, conn, BERTH__PHASE_BODY, body);
        /*
         * A request without a body is answered on the next call, once MHD has read all of
         * it: a response queued before that makes MHD close the connection, and keep-alive
         * is what makes the hot path fast. A request with a body is routed now, so that an
         * error (413, 416, unknown session) goes out before the body is sent, when the
         * client asked for 100-continue.
         */
        if (!body) {
            return MHD_YES;
        }
        /* (a GET or DELETE that announces a body is admitted, or refused, before it is read) */
        r->early = true;
        return begin(r, url);
    }
    if (*upload_data_size) {
        berth__conn_progress(r->lc, *upload_data_size);
        feed(r, upload_data, *upload_data_size);
        *upload_data_size = 0;
        /*
         * MHD cannot answer before the body is read, so a refused body is drained to send
         * the error; but a refused manifest sent without a length is not drained forever:
         * past twice the limit the connection is dropped.
         */
        if (r->fail_code && r->sink == BERTH_SINK_BUF &&
            r->received / 2 > r->srv->opts.manifest_max) {
            return MHD_NO;
        }
        return MHD_YES;
    }
    if (r->responded) {
        return MHD_YES;
    }
    berth__conn_phase(r->srv, r->lc, conn, BERTH__PHASE_WORK, false);
    if (!r->early) {
        return begin(r, url);
    }
    berth_error_clear();
    return finish(r);
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    berth_server *srv = ((berth__worker *)cls)->srv;
    berth__req *r = calloc(1, sizeof(*r));

    if (!r) {
        return NULL;
    }
    r->srv = srv;
    r->mroute = BERTH_ROUTE_OTHER;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    r->lc = berth__conn_of(conn);
    berth__conn_phase(srv, r->lc, conn, BERTH__PHASE_HEAD, false);
    r->uri = strdup(uri); /* routed on (see begin) and logged */
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    berth__worker *w = cls;
    berth_server *srv = w->srv;
    berth__req *r = *con_cls;

    if (!r) {
        return;
    }
    atomic_store_explicit(&w->busy_since, berth__now_ms(), memory_order_relaxed);
    berth__conn_phase(srv, r->lc, conn, BERTH__PHASE_IDLE, false);
    berth__ops_completed(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->upload) {
        /* still held: the request was refused or the client went away mid-body */
        berth_upload_abort(r->upload);
    }
    berth_buf_dispose(&r->body);
    free(r->www_authenticate);
    free(r->uri);
    free(r);
    *con_cls = NULL;
    atomic_store_explicit(&w->busy_since, 0, memory_order_relaxed);
}

/* ---- lifecycle ------------------------------------------------------------------------- */

/*
 * GnuTLS priorities. The default is TLS 1.2 and 1.3 with forward-secret key exchange and AEAD
 * ciphers only, as Mozilla's "intermediate" profile: no TLS 1.0/1.1, no static-RSA key
 * exchange, no CBC, no SHA-1 MACs.
 */
#define TLS_PRIORITIES_12                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:"            \
    "+CHACHA20-POLY1305:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:+DHE-RSA:"                  \
    "%SERVER_PRECEDENCE"
#define TLS_PRIORITIES_13                                                                          \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305:"      \
    "-MAC-ALL:+AEAD:%SERVER_PRECEDENCE"

static const char *tls_priorities(const berth_config *cfg)
{
    if (cfg && cfg->tls.priorities) {
        return cfg->tls.priorities;
    }
    if (cfg && cfg->tls.min_version && strcmp(cfg->tls.min_version, "1.3") == 0) {
        return TLS_PRIORITIES_13;
    }
    return TLS_PRIORITIES_12;
}

/*
 * libmicrohttpd's own messages, through berth's log (one format for every line, JSON with
 * log.format: json). Most are about what a client did (a TLS handshake that failed, a request
 * it could not parse, a connection it dropped): those are not the server's errors. A client
 * that fails its handshake (an old TLS version, no client certificate under mTLS, plain HTTP
 * probing the TLS port) is info; the rest of the clients' doing is debug; anything else warn.
 */
static void mhd_logger(void *cls, const char *fmt, va_list ap) BERTH_PRINTF(2, 0);

static void mhd_logger(void *cls, const char *fmt, va_list ap)
{
    static const struct {
        const char *words;
        berth_log_level level;
    } kinds[] = {
        {"handshake", BERTH_LOG_INFO},
        {"TLS", BERTH_LOG_INFO},
        {"certificate", BERTH_LOG_INFO},
        {"Error processing request", BERTH_LOG_DEBUG},
        {"Failed to receive", BERTH_LOG_DEBUG},
        {"Failed to parse", BERTH_LOG_DEBUG},
        {"Failed to send", BERTH_LOG_DEBUG},
        {"disconnected", BERTH_LOG_DEBUG},
        {"reset by peer", BERTH_LOG_DEBUG},
        {"closed", BERTH_LOG_DEBUG},
        {"Host", BERTH_LOG_DEBUG},
        {"too large", BERTH_LOG_DEBUG},
        {"too long", BERTH_LOG_DEBUG},
        {"malformed", BERTH_LOG_DEBUG},
        {"Malformed", BERTH_LOG_DEBUG},
        {"Unsupported", BERTH_LOG_DEBUG},
        {"timed out", BERTH_LOG_DEBUG},
    };
    berth_log_level level = BERTH_LOG_WARN;
    char msg[1024];
    int n;

    (void)cls;
    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (n < 0) {
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strstr(msg, kinds[i].words)) {
            level = kinds[i].level;
            break;
        }
    }
    berth__log(level, "libmicrohttpd: %s", msg);
}

int berth_server_start(berth_server **out, berth_store *store, const berth_server_options *opts)
{
    berth_server *srv = NULL;
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    unsigned flags = MHD_USE_EPOLL;
    struct MHD_OptionItem tls[5];
    socklen_t sslen = 0;
    size_t ntls = 0;
    long cores;
    int error = 0;

    berth_error_clear();
    *out = NULL;
    if (!store) {
        return berth_error_set(BERTH_EINVALID, "no store");
    }
    if (!(srv = calloc(1, sizeof(*srv)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (opts) {
        srv->opts = *opts;
    } else {
        berth_server_options_init(&srv->opts);
    }
    srv->store = store;
    if (!srv->opts.listen_address) {
        srv->opts.listen_address = "127.0.0.1";
    }
    if (srv->opts.threads == 0) {
        cores = sysconf(_SC_NPROCESSORS_ONLN);
        srv->opts.threads = cores > 0 ? (unsigned)cores : 1;
    }
    if (srv->opts.connection_limit == 0) {
        srv->opts.connection_limit = berth_server_default_connection_limit();
    }
    if (srv->opts.connection_timeout == 0) {
        srv->opts.connection_timeout = 60;
    }
    srv->timeout_header = srv->opts.header_timeout ? srv->opts.header_timeout : 20;
    srv->timeout_read = srv->opts.read_timeout ? srv->opts.read_timeout : 60;
    srv->timeout_write = srv->opts.write_timeout ? srv->opts.write_timeout : 300;
    srv->timeout_default = srv->timeout_write > srv->opts.connection_timeout
                               ? srv->timeout_write
                               : srv->opts.connection_timeout;
    srv->per_address = srv->opts.connections_per_address;
    if (srv->opts.connection_memory == 0) {
        srv->opts.connection_memory = 32 * 1024;
    }
    if (srv->opts.manifest_max == 0) {
        srv->opts.manifest_max = BERTH_MANIFEST_MAX_DEFAULT;
    }
    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, srv->opts.listen_address, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(srv->opts.port);
        sslen = sizeof(*sin);
    } else if (inet_pton(AF_INET6, srv->opts.listen_address, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(srv->opts.port);
        sslen = sizeof(*sin6);
        flags |= MHD_USE_IPv6;
    } else {
        error = berth_error_set(BERTH_EINVALID, "not a numeric IP address: %s",
                                srv->opts.listen_address);
        goto out;
    }
    if ((error = berth__ops_start(srv)) < 0) {
        goto out;
    }
    if ((error = berth__proxy_start(srv)) < 0) { /* pull-through cache (proxy.c) */
        goto out;
    }
    if (srv->tls_cert) {
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            error = berth_error_set(BERTH_EUNSUPPORTED, "libmicrohttpd was built without TLS");
            goto out;
        }
        flags |= MHD_USE_TLS;
        tls[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls_cert};
        tls[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls_key};
        tls[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                              (void *)(uintptr_t)tls_priorities(srv->cfg)};
        if (srv->tls_ca) {
            tls[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, srv->tls_ca};
        }
    }
    tls[ntls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    if ((error = berth__listener_start(srv, (struct sockaddr *)&ss, sslen)) < 0) {
        goto out;
    }
    /*
     * One daemon per worker, each without a listening socket and without a thread of its own:
     * the listener accepts and queues connections to a worker, whose thread (worker.c) adds them
     * to its daemon and runs it in libmicrohttpd's external epoll mode. MHD's own limit sits
     * above the listener's, which is the one that counts: a slot the listener saw freed may not
     * be freed in MHD's books yet.
     */
    if (!(srv->workers = calloc(srv->opts.threads, sizeof(*srv->workers)))) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    for (unsigned i = 0; i < srv->opts.threads; i++) {
        berth__worker *w = &srv->workers[i];

        w->srv = srv;
        // clang-format off
        w->daemon = MHD_start_daemon(
            flags | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ERROR_LOG, 0, NULL, NULL,
            access_handler, w,
            MHD_OPTION_EXTERNAL_LOGGER, mhd_logger, srv, /* first: all of its messages */
            MHD_OPTION_CONNECTION_LIMIT, srv->opts.connection_limit + 64,
            MHD_OPTION_CONNECTION_TIMEOUT, srv->timeout_default,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->opts.connection_memory,
            MHD_OPTION_URI_LOG_CALLBACK, uri_logger, w,
            MHD_OPTION_NOTIFY_COMPLETED, completed, w,
            MHD_OPTION_NOTIFY_CONNECTION, berth__conn_notify, w,
            MHD_OPTION_UNESCAPE_CALLBACK, unescape, NULL,
            MHD_OPTION_SIGPIPE_HANDLED_BY_APP, 1, /* the workers block it: sendfile(2) is safe */
            MHD_OPTION_ARRAY, tls,
            MHD_OPTION_END);
        // clang-format on
        if (!w->daemon) {
            error = berth_error_set(BERTH_EIO, "cannot start the HTTP daemon on %s port %u",
                                    srv->opts.listen_address, (unsigned)srv->opts.port);
            goto out;
        }
        srv->nworkers++;
        if ((error = berth__worker_start(w)) < 0) {
            goto out;
        }
    }
    if ((error = berth__listener_port(srv, &srv->port)) < 0 ||
        (error = berth__listener_run(srv)) < 0) {
        goto out;
    }
    if ((error = berth__maint_start(srv)) < 0) {
        goto out;
    }
    atomic_store(&srv->ready, true);
out:
    if (error < 0) {
        berth_server_free(srv);
        return error;
    }
    *out = srv;
    return 0;
}

uint16_t berth_server_port(const berth_server *srv)
{
    return srv ? srv->port : 0;
}

void berth_server_stop(berth_server *srv)
{
    if (!srv) {
        return;
    }
    atomic_store(&srv->ready, false);
    berth__maint_stop(srv);
    if (srv->nworkers) {
        berth__listener_drain(srv, srv->opts.drain_timeout_ms);
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        berth__worker_stop(&srv->workers[i]);
        MHD_stop_daemon(srv->workers[i].daemon);
    }
    srv->nworkers = 0;
    free(srv->workers);
    srv->workers = NULL;
    berth__listener_free(srv);
}

void berth_server_free(berth_server *srv)
{
    if (!srv) {
        return;
    }
    berth_server_stop(srv);
    berth__proxy_free(srv); /* pull-through cache (proxy.c) */
    berth__ops_free(srv);
    free(srv);
}
