/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The listing endpoints: /v2/<name>/tags/list, /v2/_catalog (both paginated with n and
 * last, with a Link header to the next page) and /v2/<name>/referrers/<digest>, whose index
 * the store builds. The documents are written by libberth's serialisers (berth/api.h): names
 * are collected from the store's callback into one arena, then written as a tag or repository
 * list in one pass.
 */
#include "server/server_internal.h"

#include <berth/api.h>
#include <berth/errors.h>
#include <berth/index.h>
#include <berth/mediatype.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest page served, whatever n asks for. */
#define PAGE_MAX 10000

/* A page of names being collected: each copied, NUL-terminated, into `names`; `offsets` holds
   where each starts (the arena moves as it grows, so pointers are made at the end). */
typedef struct page {
    berth_buf names;
    size_t *offsets;
    size_t cap;
    size_t count;
    const char *last; /* the last name written, borrowed from the store during the callback */
    char last_copy[BERTH_NAME_MAX + 1];
    int error;
    const berth__req *filter; /* catalog with auth: only what the caller may pull */
    size_t n;                 /* with a filter: the page size (0: all), counted here */
    bool more;                /* with a filter: a visible name remains after the page */
} page;

static int add_name(const char *name, void *payload)
{
    page *p = payload;

    if (p->filter && !berth__ops_may_pull(p->filter, name)) {
        /* skipped, but the next page starts after it */
        snprintf(p->last_copy, sizeof(p->last_copy), "%s", name);
        p->last = p->last_copy;
        return 0;
    }
    if (p->filter && p->n && p->count == p->n) {
        p->more = true; /* the page is full and a visible name follows */
        return 1;
    }
    if (p->count == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 256;
        size_t *o = realloc(p->offsets, cap * sizeof(*o));
        if (!o) {
            p->error = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        p->offsets = o;
        p->cap = cap;
    }
    p->offsets[p->count] = p->names.len;
    if ((p->error = berth_buf_put(&p->names, name, strlen(name) + 1)) < 0) {
        return 1;
    }
    p->count++;
    snprintf(p->last_copy, sizeof(p->last_copy), "%s", name);
    p->last = p->last_copy;
    return 0;
}

static enum MHD_Result send_json(berth__req *r, berth_buf *body, const char *content_type,
                                 const char *link)
{
    struct MHD_Response *resp;
    size_t len = body->len;
    char *data = berth_buf_detach(body);

    if (!data) {
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (link) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LINK, link);
    }
    r->bytes = len;
    return berth__respond(r, 200, resp);
}

/* n and last of a listing. n_given is false when there is no n (all names). */
static int page_query(berth__req *r, size_t *n, bool *n_given, const char **last)
{
    const char *ns = berth__query(r, "n");
    uint64_t v;

    *n = 0;
    *n_given = false;
    *last = berth__query(r, "last");
    if (*last && !**last) {
        *last = NULL;
    }
    if (ns) {
        if (berth_parse_u64(&v, ns, strlen(ns), UINT64_MAX) < 0) {
            return berth_error_set(BERTH_EINVALID, "n must be a non-negative number");
        }
        /* a page is at most PAGE_MAX names; the Link header leads to the rest */
        *n = v > PAGE_MAX ? PAGE_MAX : (size_t)v;
        *n_given = true;
    }
    return 0;
}

/* The page as a tag list (tags) or a repository list, by libberth's serialisers. */
static int write_page(berth_buf *body, const page *p, const char *name, bool tags)
{
    berth_strlist l = {NULL, p->count};
    int error;

    if (p->count && !(l.items = malloc(p->count * sizeof(*l.items)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < p->count; i++) {
        l.items[i] = p->names.ptr + p->offsets[i];
    }
    /* one allocation for the body: the names, their quotes and commas, and the frame */
    if ((error = berth_buf_grow(body, p->names.len + 2 * p->count + (name ? strlen(name) : 0) +
                                          64)) < 0) {
        free(l.items);
        return error;
    }
    if (tags) {
        berth_tag_list doc = {(char *)(uintptr_t)name, l, NULL};
        error = berth_tag_list_serialize(body, &doc);
    } else {
        berth_repository_list doc = {l, NULL};
        error = berth_repository_list_serialize(body, &doc);
    }
    free(l.items); /* the names are the arena's */
    return error;
}

/* Shared by tags and catalog: `path` is the endpoint for the Link header. */
static enum MHD_Result listing(berth__req *r, bool tags)
{
    berth_buf body = BERTH_BUF_INIT;
    page p = {BERTH_BUF_INIT, NULL, 0, 0, NULL, {0}, 0, NULL, 0, false};
    const char *last;
    char link[BERTH_NAME_MAX * 2 + 96];
    bool n_given, more = false;
    enum MHD_Result ret;
    size_t n;
    int error;

    if ((error = page_query(r, &n, &n_given, &last)) < 0) {
        return berth__respond_error(r, BERTH_OP_QUERY, error, NULL);
    }
    /* room for a page of typical names up front: the arena grows once, not by doubling while
       the store's callback runs */
    if (n_given && n > 0 && (error = berth_buf_grow(&p.names, n * 24)) < 0) {
        goto fail;
    }
    if (!tags && r->srv->auth) {
        p.filter = r;
    }
    if (n_given && n == 0) {
        /* n=0 asks for an empty page; the repository must still exist */
        if (tags && !berth_store_repo_exists(r->srv->store, r->name)) {
            berth_error_set(BERTH_ENOTFOUND, "repository %s not known", r->name);
            return berth__respond_error(r, BERTH_OP_REPO, BERTH_ENOTFOUND, NULL);
        }
    } else {
        if (tags) {
            error = berth_store_tags(r->srv->store, r->name, last, n, add_name, &p, &more);
        } else if (p.filter) {
            /* one pass from `last`: the callback skips what the caller may not see and stops
               when the page is full (the store runs it without holding its lock) */
            p.n = n;
            error = berth_store_catalog(r->srv->store, last, 0, add_name, &p, &more);
            more = p.more;
        } else {
            error = berth_store_catalog(r->srv->store, last, n, add_name, &p, &more);
        }
        if (error == 0 && p.error < 0) {
            error = p.error;
        }
        if (error < 0) {
            berth_buf_dispose(&p.names);
            free(p.offsets);
            return berth__respond_error(r, BERTH_OP_REPO, error, NULL);
        }
    }
    error = write_page(&body, &p, r->name, tags);
    berth_buf_dispose(&p.names);
    free(p.offsets);
    if (error < 0) {
        goto fail;
    }
    if (more && p.last && n_given) {
        if (tags) {
            snprintf(link, sizeof(link), "</v2/%s/tags/list?last=%s&n=%zu>; rel=\"next\"", r->name,
                     p.last, n);
        } else {
            snprintf(link, sizeof(link), "</v2/_catalog?last=%s&n=%zu>; rel=\"next\"", p.last, n);
        }
    }
    ret = send_json(r, &body, "application/json", more && p.last && n_given ? link : NULL);
    berth_buf_dispose(&body);
    return ret;
fail:
    berth_buf_dispose(&body);
    return berth__respond_error(r, BERTH_OP_ANY, error, NULL);
}

enum MHD_Result berth__api_tags(berth__req *r)
{
    return listing(r, true);
}

enum MHD_Result berth__api_catalog(berth__req *r)
{
    return listing(r, false);
}

/* Referrers pages: at most this many descriptors unless n asks for fewer (or more, up to
   PAGE_MAX), and a page ends once its body passes REFERRERS_PAGE_BYTES. */
#define REFERRERS_PAGE_DEFAULT 100
#define REFERRERS_PAGE_BYTES   (1024 * 1024)

/* Percent-encode a query value (media types carry '+', which a query would read as ' '). */
static int put_query_value(berth_buf *out, const char *v)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (; rc == 0 && *v; v++) {
        unsigned char c = (unsigned char)*v;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            rc = berth_buf_put(out, v, 1);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = berth_buf_put(out, esc, 3);
        }
    }
    return rc;
}

enum MHD_Result berth__api_referrers(berth__req *r)
{
    berth_buf body = BERTH_BUF_INIT, link = BERTH_BUF_INIT;
    const char *artifact_type = berth__query(r, "artifactType");
    berth_referrers_page pg;
    berth_digest digest, last_digest;
    struct MHD_Response *resp;
    bool n_given;
    size_t len, n;
    char *data;
    int error;

    if ((error = berth_digest_parse_str(&digest, r->ref)) < 0) {
        return berth__respond_error(r, BERTH_OP_DIGEST, error, NULL);
    }
    if (r->srv->proxy) { /* pull-through cache (proxy.c): the upstream's referrers first */
        berth__proxy_referrers(r, &digest);
    }
    if (artifact_type && !*artifact_type) {
        artifact_type = NULL;
    }
    memset(&pg, 0, sizeof(pg));
    if ((error = page_query(r, &n, &n_given, &pg.last)) < 0) {
        return berth__respond_error(r, BERTH_OP_QUERY, error, NULL);
    }
    if (pg.last && berth_digest_parse_str(&last_digest, pg.last) < 0) {
        berth_error_set(BERTH_EINVALID, "last must be a digest");
        return berth__respond_error(r, BERTH_OP_QUERY, BERTH_EINVALID, NULL);
    }
    pg.n = n_given && n > 0 ? n : REFERRERS_PAGE_DEFAULT;
    pg.max_bytes = REFERRERS_PAGE_BYTES;
    error = berth_store_referrers(&body, r->srv->store, r->name, &digest, artifact_type, &pg);
    if (error == BERTH_ENOTFOUND) {
        /* a 404 would send clients to the referrers tag schema: a repository that does not
         * exist simply has no referrers */
        berth_index empty = {.schema_version = 2,
                             .media_type = (char *)(uintptr_t)BERTH_MEDIA_OCI_INDEX};
        berth_error_clear();
        berth_buf_clear(&body);
        pg.more = false;
        error = berth_index_serialize(&body, &empty);
    }
    if (error == 0 && pg.more) {
        /* the spec: a Link header with rel="next" when the list does not fit one response */
        error = berth_buf_printf(&link, "</v2/%s/referrers/%s?last=%s&n=%zu", r->name, digest.str,
                                 pg.next_last.str, pg.n);
        if (error == 0 && artifact_type) {
            error = berth_buf_puts(&link, "&artifactType=");
            if (error == 0) {
                error = put_query_value(&link, artifact_type);
            }
        }
        if (error == 0) {
            error = berth_buf_puts(&link, ">; rel=\"next\"");
        }
    }
    if (error < 0) {
        berth_buf_dispose(&body);
        berth_buf_dispose(&link);
        return berth__respond_error(r, BERTH_OP_REPO, error, NULL);
    }
    len = body.len;
    if (!(data = berth_buf_detach(&body))) {
        berth_buf_dispose(&link);
        return MHD_NO;
    }
    resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        berth_buf_dispose(&link);
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                            "application/vnd.oci.image.index.v1+json");
    if (artifact_type) {
        MHD_add_response_header(resp, "OCI-Filters-Applied", "artifactType");
    }
    if (pg.more) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_LINK, link.ptr);
    }
    berth_buf_dispose(&link);
    r->bytes = len;
    return berth__respond(r, 200, resp);
}
