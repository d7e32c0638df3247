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

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

enum MHD_Result berth__respond_error(berth__req *r, berth__op op, int code, const char *msg)
{
    berth_buf doc = BERTH_BUF_INIT;
    struct MHD_Response *resp;
    berth__api_error api;
    unsigned status;
    size_t len;
    char *body;

    berth__error_map(&status, &api, op, code);
    if (berth__error_document(&doc, api, msg ? msg : berth_error_last()) < 0) {
        berth_buf_dispose(&doc);
        return MHD_NO;
    }
    len = doc.len;
    body = berth_buf_detach(&doc);
    if (!body) {
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    if (r->upload) {
        /* a refused chunk: tell the client where the session stands, so it can resume */
        berth__session_headers(resp, r, berth_upload_id(r->upload), berth_upload_size(r->upload));
    }
    if (status == 405) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD, PUT, POST, PATCH, DELETE");
    }
    if (status == 401 && r->www_authenticate) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, r->www_authenticate);
    }
    if (status == 429 && r->retry_after) {
        char retry[24];
        snprintf(retry, sizeof(retry), "%llu", (unsigned long long)r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
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
    enum MHD_Result ret;
    berth__op op;
    int error;

    berth_error_clear();
    if (berth__ops_route(r, url, &ret)) {
        return ret;
    }
    if ((error = route(r, url, &op)) < 0) {
        if ((r->srv->ratelimit || r->srv->mtls) && !berth__ops_gate(r, &ret)) {
            return ret;
        }
        return berth__respond_error(r, op, error, NULL);
    }
    r->mroute = mroutes[r->route];
    if (!berth__ops_admit(r, &ret)) {
        return ret;
    }
    switch (r->route) {
    case BERTH_R_BASE:
        return base(r);
    case BERTH_R_CATALOG:
        return r->method == BERTH_M_GET ? berth__api_catalog(r) : method_not_allowed(r);
    case BERTH_R_TAGS:
        return r->method == BERTH_M_GET ? berth__api_tags(r) : method_not_allowed(r);
    case BERTH_R_REFERRERS:
        return r->method == BERTH_M_GET ? berth__api_referrers(r) : method_not_allowed(r);
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

static enum MHD_Result access_handler(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version,
                                      const char *upload_data, size_t *upload_data_size,
                                      void **con_cls)
{
    berth__req *r = *con_cls;

    (void)cls;
    (void)version;
    if (!r) {
        return MHD_NO;
    }
    if (!r->begun) {
        r->begun = true;
        r->conn = conn;
        r->method_name = method;
        r->method = method_of(method);
        /*
         * A request without a body is answered on the next call, once MHD has read all of
         * it: a response queued before that makes MHD close the connection, and keep-alive
         * is what makes the hot path fast. A request with a body is routed now, so that an
         * error (413, 416, unknown session) goes out before the body is sent, when the
         * client asked for 100-continue.
         */
        if (!has_body_method(r->method)) {
            return MHD_YES;
        }
        return begin(r, url);
    }
    if (*upload_data_size) {
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
    if (!has_body_method(r->method)) {
        if (r->method == BERTH_M_OTHER) {
            return method_not_allowed(r);
        }
        return begin(r, url);
    }
    berth_error_clear();
    return finish(r);
}

static void *uri_logger(void *cls, const char *uri, struct MHD_Connection *conn)
{
    berth_server *srv = cls;
    berth__req *r = calloc(1, sizeof(*r));

    (void)conn;
    if (!r) {
        return NULL;
    }
    r->srv = srv;
    r->mroute = BERTH_ROUTE_OTHER;
    clock_gettime(CLOCK_MONOTONIC, &r->start);
    if (srv->opts.log) {
        r->uri = strdup(uri);
    }
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    berth_server *srv = cls;
    berth__req *r = *con_cls;

    (void)conn;
    if (!r) {
        return;
    }
    (void)srv;
    berth__ops_completed(r, toe != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    if (r->upload) {
        berth_upload_close(r->upload);
    }
    berth_buf_dispose(&r->body);
    free(r->www_authenticate);
    free(r->uri);
    free(r);
    *con_cls = NULL;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

int berth_server_start(berth_server **out, berth_store *store, const berth_server_options *opts)
{
    berth_server *srv = NULL;
    struct sockaddr_storage ss;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    const union MHD_DaemonInfo *info;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD;
    struct MHD_OptionItem tls[4];
    size_t ntls = 0;
    unsigned pool;
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
        srv->opts.connection_limit = 1024;
    }
    if (srv->opts.connection_timeout == 0) {
        srv->opts.connection_timeout = 60;
    }
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
    } else if (inet_pton(AF_INET6, srv->opts.listen_address, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(srv->opts.port);
        flags |= MHD_USE_IPv6;
    } else {
        error = berth_error_set(BERTH_EINVALID, "not a numeric IP address: %s",
                                srv->opts.listen_address);
        goto out;
    }
    if ((error = berth__ops_start(srv)) < 0) {
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
        if (srv->tls_ca) {
            tls[ntls++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0, srv->tls_ca};
        }
    }
    tls[ntls] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    /* a pool of one is no pool for MHD (and it says so); 0 means the same, quietly */
    pool = srv->opts.threads > 1 ? srv->opts.threads : 0;
    /* one option and its value per line */
    // clang-format off
    srv->daemon = MHD_start_daemon(
        flags | MHD_USE_ERROR_LOG, srv->opts.port, NULL, NULL, access_handler, srv,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_THREAD_POOL_SIZE, pool,
        MHD_OPTION_CONNECTION_LIMIT, srv->opts.connection_limit,
        MHD_OPTION_CONNECTION_TIMEOUT, srv->opts.connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, srv->opts.connection_memory,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_URI_LOG_CALLBACK, uri_logger, srv,
        MHD_OPTION_NOTIFY_COMPLETED, completed, srv,
        MHD_OPTION_ARRAY, tls,
        MHD_OPTION_END);
    // clang-format on
    if (!srv->daemon) {
        error = berth_error_set(BERTH_EIO, "cannot listen on %s port %u", srv->opts.listen_address,
                                (unsigned)srv->opts.port);
        goto out;
    }
    info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : srv->opts.port;
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
    if (srv) {
        atomic_store(&srv->ready, false);
        berth__maint_stop(srv);
    }
    if (srv && srv->daemon) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
}

void berth_server_free(berth_server *srv)
{
    if (!srv) {
        return;
    }
    berth_server_stop(srv);
    berth__ops_free(srv);
    free(srv);
}
