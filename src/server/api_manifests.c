/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v2/<name>/manifests/<reference>: GET, HEAD, PUT, DELETE. A GET is the hot path: the
 * store hands out its shared in-memory bytes, which the response points at without a copy;
 * the reference is dropped by the response's free callback once libmicrohttpd is done.
 * A PUT buffers the body up to the manifest limit, then gives it to the store to validate.
 */
#include "server/server_internal.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Validate r->ref as a digest (it has a ':') or a tag; answer the error when invalid. */
static int check_reference(berth__req *r, bool *is_digest, berth_digest *digest, berth__op *op_out)
{
    int error;

    *is_digest = strchr(r->ref, ':') != NULL;
    if (*is_digest) {
        *op_out = BERTH_OP_DIGEST;
        return berth_digest_parse_str(digest, r->ref);
    }
    *op_out = BERTH_OP_TAG;
    if ((error = berth_tag_validate(r->ref)) < 0) {
        return error;
    }
    return 0;
}

/* What the Accept headers of a request say of one media type. */
typedef struct accept_ctx {
    const char *media_type;
    bool seen;     /* the request has an Accept header */
    bool admitted; /* one of them admits the media type */
} accept_ctx;

/* Does an Accept value (a list of media ranges, with wildcards) admit `type`? Parameters and
 * q-values are ignored. */
static bool accept_admits(const char *value, const char *type)
{
    const char *slash = strchr(type, '/');
    size_t tlen = strlen(type), major = slash ? (size_t)(slash - type) : tlen;

    while (*value) {
        size_t len;
        while (*value == ' ' || *value == '\t' || *value == ',') {
            value++;
        }
        len = strcspn(value, ";,");
        while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t')) {
            len--;
        }
        if ((len == tlen && strncasecmp(value, type, len) == 0) ||
            (len == 3 && memcmp(value, "*/*", 3) == 0) ||
            (len == major + 2 && strncasecmp(value, type, major + 1) == 0 &&
             value[len - 1] == '*')) {
            return true;
        }
        value += strcspn(value, ",");
    }
    return false;
}

static enum MHD_Result accept_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    accept_ctx *ctx = cls;
    (void)kind;
    if (strcasecmp(key, MHD_HTTP_HEADER_ACCEPT) == 0) {
        ctx->seen = true;
        if (value && accept_admits(value, ctx->media_type)) {
            ctx->admitted = true;
            return MHD_NO;
        }
    }
    return MHD_YES;
}

/*
 * Content negotiation as Distribution does it: an OCI manifest or index is not served to a
 * client whose Accept headers (clients send several) admit neither its media type nor a
 * wildcard; it gets MANIFEST_UNKNOWN. No Accept header admits everything. Docker schema2
 * documents are served as they are: there is no older form to convert them to.
 */
static bool accepted(berth__req *r, const char *media_type)
{
    accept_ctx ctx = {media_type, false, false};
    berth_document_kind kind = berth_document_kind_of(media_type);

    if (kind != BERTH_DOC_OCI_MANIFEST && kind != BERTH_DOC_OCI_INDEX) {
        return true;
    }
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, accept_header, &ctx);
    return !ctx.seen || ctx.admitted;
}

static void release_manifest(void *cls)
{
    berth_manifest_release(cls);
}

enum MHD_Result berth__api_manifest(berth__req *r)
{
    const berth_stored_manifest *m = NULL;
    struct MHD_Response *resp;
    berth_digest digest;
    berth__op op;
    bool is_digest;
    int error;

    if ((error = check_reference(r, &is_digest, &digest, &op)) < 0) {
        /* what cannot exist is not found (the spec lists 404 only); PUT still refuses it */
        berth_error_prefix("manifest unknown: ");
        return berth__respond_error(r, BERTH_OP_MANIFEST_GET, BERTH_ENOTFOUND, NULL);
    }
    if (r->method == BERTH_M_DELETE) {
        error = is_digest ? berth_store_manifest_delete(r->srv->store, r->name, &digest)
                          : berth_store_tag_delete(r->srv->store, r->name, r->ref);
        if (error < 0) {
            return berth__respond_error(r, BERTH_OP_MANIFEST_GET, error, NULL);
        }
        return berth__respond_empty(r, 202, NULL);
    }
    /* pull-through cache (proxy.c): under an upstream's prefix, fill the store first */
    if (r->srv->proxy && (error = berth__proxy_manifest(r)) < 0) {
        return berth__respond_error(r, BERTH_OP_MANIFEST_GET, error, NULL);
    }
    if ((error = berth_store_manifest_get(&m, r->srv->store, r->name, r->ref)) < 0) {
        return berth__respond_error(r, BERTH_OP_MANIFEST_GET, error, NULL);
    }
    if (!accepted(r, m->media_type)) {
        berth_error_set(BERTH_ENOTFOUND,
                        "manifest %s is %s, which the Accept header does not admit", r->ref,
                        m->media_type);
        berth_manifest_release(m);
        return berth__respond_error(r, BERTH_OP_MANIFEST_GET, BERTH_ENOTFOUND, NULL);
    }
    /* the store's bytes are immutable while referenced; MHD only reads them */
    resp = MHD_create_response_from_buffer_with_free_callback_cls(
        m->len, (void *)(uintptr_t)m->data, release_manifest, (void *)(uintptr_t)m);
    if (!resp) {
        berth_manifest_release(m);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, m->media_type);
    MHD_add_response_header(resp, "Docker-Content-Digest", m->digest.str);
    r->bytes = m->len;
    return berth__respond(r, 200, resp);
}

enum MHD_Result berth__api_manifest_put_begin(berth__req *r)
{
    const char *cl = berth__header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t max = r->srv->opts.manifest_max;
    berth_digest digest;
    berth__op op;
    bool is_digest;
    uint64_t declared;
    int error;

    if ((error = check_reference(r, &is_digest, &digest, &op)) < 0) {
        return berth__respond_error(r, op, error, NULL);
    }
    /* refuse early what is declared too big, so that no byte of it is read */
    if (cl && berth_parse_u64(&declared, cl, strlen(cl), UINT64_MAX) == 0 && declared > max) {
        berth_error_set(BERTH_ETOOBIG, "manifest of %llu bytes is over the limit of %zu",
                        (unsigned long long)declared, max);
        return berth__respond_error(r, BERTH_OP_MANIFEST_PUT, BERTH_ETOOBIG, NULL);
    }
    r->body.max = max;
    r->sink = BERTH_SINK_BUF;
    return MHD_YES;
}

/* Most ?tag= parameters one manifest PUT may carry. */
#define TAGS_MAX 64

enum MHD_Result berth__api_manifest_put_finish(berth__req *r)
{
    const char *tags[TAGS_MAX];
    size_t ntags;
    const char *content_type = berth__header(r, MHD_HTTP_HEADER_CONTENT_TYPE);
    char media_type[256];
    berth_put_result result;
    struct MHD_Response *resp;
    char location[BERTH_NAME_MAX + BERTH_DIGEST_MAXLEN + 32];
    int error;

    if (r->fail_code) {
        return berth__respond_error(r, r->fail_op, r->fail_code, r->fail_msg);
    }
    if (content_type) {
        /* the spec: registries SHOULD ignore parameters of the Content-Type */
        size_t len = strcspn(content_type, "; \t");

        if (len == 0 || len >= sizeof(media_type)) {
            content_type = NULL;
        } else {
            memcpy(media_type, content_type, len);
            media_type[len] = '\0';
            content_type = media_type;
        }
        /* a type that names no manifest kind (curl's form default, application/json): let
         * the document's own mediaType, or its shape, say what it is */
        if (content_type && berth_document_kind_of(content_type) == 0) {
            content_type = NULL;
        }
    }
    if ((ntags = berth__query_all(r, "tag", tags, TAGS_MAX)) > TAGS_MAX) {
        berth_error_set(BERTH_EINVALID, "more than %d tag parameters", TAGS_MAX);
        return berth__respond_error(r, BERTH_OP_MANIFEST_PUT, BERTH_EINVALID, NULL);
    }
    error =
        berth_store_manifest_put_tags(&result, r->srv->store, r->name, r->ref, tags, ntags,
                                      content_type, r->body.ptr ? r->body.ptr : "", r->body.len);
    if (error < 0) {
        return berth__respond_error(r, BERTH_OP_MANIFEST_PUT, error, NULL);
    }
    berth_buf_dispose(&r->body);
    snprintf(location, sizeof(location), "/v2/%s/manifests/%s", r->name, result.digest.str);
    resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(resp, "Docker-Content-Digest", result.digest.str);
    if (result.has_subject) {
        MHD_add_response_header(resp, "OCI-Subject", result.subject.str);
    }
    for (size_t i = 0; i < ntags; i++) {
        MHD_add_response_header(resp, "OCI-Tag", tags[i]);
    }
    return berth__respond(r, 201, resp);
}
