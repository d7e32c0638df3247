/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/api.c: the distribution API's JSON documents: error responses (whose `detail` may be
 * any JSON value and is kept as its compact text), the catalog and the tag list.
 */
#include <stdlib.h>
#include <string.h>

#include "berth/api.h"
#include "berth/errors.h"
#include "oci/json.h"

static const char *const response_known[] = {"errors", NULL};
static const char *const info_known[] = {"code", "message", "detail", NULL};
static const char *const repos_known[] = {"repositories", NULL};
static const char *const tags_known[] = {"name", "tags", NULL};

/* ---- error response ---- */

void berth_error_response_free(berth_error_response *r)
{
    size_t i;

    if (!r) {
        return;
    }
    for (i = 0; i < r->nerrors; i++) {
        free(r->errors[i].code);
        free(r->errors[i].message);
        free(r->errors[i].detail);
        free(r->errors[i].extra);
    }
    free(r->errors);
    free(r->extra);
    free(r);
}

static int info_from_json(berth_error_info *e, const json_t *v)
{
    const json_t *d;
    int rc;

    if ((rc = berth__json_want_object(v, "error")) < 0) {
        return rc;
    }
    if ((rc = berth__json_str(&e->code, v, "code", true)) < 0 ||
        (rc = berth__json_str(&e->message, v, "message", false)) < 0) {
        return rc;
    }
    if ((d = json_object_get(v, "detail")) != NULL && !(e->detail = berth__json_to_text(d))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return berth__json_extra(&e->extra, v, info_known);
}

int berth_error_response_validate(const berth_error_response *r)
{
    size_t i;

    if (!r) {
        return berth_error_set(BERTH_EINVALID, "no error response");
    }
    for (i = 0; i < r->nerrors; i++) {
        if (!r->errors[i].code || !*r->errors[i].code) {
            return berth_error_set(BERTH_EINVALID, "errors[%zu].code: required", i);
        }
        if (r->errors[i].detail) {
            json_t *d = berth__json_from_text(r->errors[i].detail);
            json_decref(d);
            if (!d) {
                return berth_error_set(BERTH_EINVALID, "errors[%zu].detail: not JSON", i);
            }
        }
    }
    return 0;
}

static int response_fill(void *doc, const json_t *root)
{
    berth_error_response *r = doc;
    const json_t *errs = json_object_get(root, "errors");
    size_t i, n;
    int rc;

    if (!errs || !json_is_array(errs)) {
        return berth_error_set(BERTH_EINVALID, errs ? "errors: not an array" : "errors: required");
    }
    n = json_array_size(errs);
    if (n && !(r->errors = calloc(n, sizeof(berth_error_info)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (i = 0; i < n; i++) {
        r->nerrors = i + 1;
        if ((rc = info_from_json(&r->errors[i], json_array_get(errs, i))) < 0) {
            berth_error_prefix(
                json_is_object(json_array_get(errs, i)) ? "errors[%zu]." : "errors[%zu]: ", i);
            return rc;
        }
    }
    if ((rc = berth__json_extra(&r->extra, root, response_known)) < 0) {
        return rc;
    }
    return berth_error_response_validate(r);
}

static void response_free(void *doc)
{
    berth_error_response_free(doc);
}

int berth_error_response_parse(berth_error_response **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_error_response), response_fill,
                                 response_free);
    return rc;
}

int berth_error_response_serialize(berth_buf *out, const berth_error_response *r)
{
    json_t *o = json_object(), *arr = json_array();
    size_t i;
    int rc = 0;

    for (i = 0; o && arr && i < r->nerrors; i++) {
        const berth_error_info *e = &r->errors[i];
        json_t *eo = json_object();
        if (!eo) {
            rc = BERTH_ENOMEM;
            break;
        }
        berth__json_set_str(eo, "code", e->code, &rc);
        berth__json_set_str(eo, "message", e->message, &rc);
        if (e->detail) {
            berth__json_set(eo, "detail", berth__json_from_text(e->detail), &rc);
        }
        berth__json_put_extra(eo, e->extra, &rc);
        if (json_array_append_new(arr, eo) != 0) {
            rc = BERTH_ENOMEM;
        }
    }
    if (o) {
        berth__json_set(o, "errors", arr, &rc);
        berth__json_put_extra(o, r->extra, &rc);
    } else {
        json_decref(arr);
    }
    return berth__json_finish(out, o, rc);
}

/* ---- repository list ---- */

void berth_repository_list_free(berth_repository_list *l)
{
    if (l) {
        berth_strlist_dispose(&l->repositories);
        free(l->extra);
        free(l);
    }
}

int berth_repository_list_validate(const berth_repository_list *l)
{
    size_t i;

    for (i = 0; l && i < l->repositories.count; i++) {
        if (!l->repositories.items[i][0]) {
            return berth_error_set(BERTH_EINVALID, "repositories[%zu]: empty", i);
        }
    }
    return l ? 0 : berth_error_set(BERTH_EINVALID, "no repository list");
}

static int repository_list_fill(void *doc, const json_t *root)
{
    berth_repository_list *l = doc;
    int rc;

    if (!json_object_get(root, "repositories")) {
        return berth_error_set(BERTH_EINVALID, "repositories: required");
    }
    if ((rc = berth__json_strlist(&l->repositories, root, "repositories")) < 0 ||
        (rc = berth__json_extra(&l->extra, root, repos_known)) < 0) {
        return rc;
    }
    return berth_repository_list_validate(l);
}

static void repository_list_free(void *doc)
{
    berth_repository_list_free(doc);
}

int berth_repository_list_parse(berth_repository_list **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_repository_list),
                                 repository_list_fill, repository_list_free);
    return rc;
}

/* An array member that is written even when empty. */
static void set_array(json_t *o, const char *key, const berth_strlist *l, int *rc)
{
    if (l->count) {
        berth__json_set_strlist(o, key, l, rc);
    } else {
        berth__json_set(o, key, json_array(), rc);
    }
}

/*
 * The lists of the catalog and of tags run to thousands of names per page, on the registry's
 * hot path: without extra members they are written as a stream, byte for byte what jansson
 * writes (berth__json_put_string), without building a tree (about 7x faster for 10,000 tags).
 * `name` (optional) is written as the "name" member, before the array `key`.
 */
static int stream_list(berth_buf *out, const char *name, const char *key, const berth_strlist *l)
{
    size_t start = out->len;
    int rc = berth_buf_put(out, "{", 1);

    if (rc == 0 && name) {
        if ((rc = berth_buf_puts(out, "\"name\":")) == 0 &&
            (rc = berth__json_put_string(out, name, strlen(name))) == 0) {
            rc = berth_buf_put(out, ",", 1);
        }
    }
    if (rc == 0) {
        rc = berth_buf_printf(out, "\"%s\":[", key);
    }
    for (size_t i = 0; rc == 0 && i < l->count; i++) {
        if (i > 0) {
            rc = berth_buf_put(out, ",", 1);
        }
        if (rc == 0) {
            rc = berth__json_put_string(out, l->items[i], strlen(l->items[i]));
        }
    }
    if (rc == 0) {
        rc = berth_buf_put(out, "]}", 2);
    }
    if (rc < 0) {
        out->len = start;
        if (out->ptr) {
            out->ptr[start] = '\0';
        }
    }
    return rc;
}

int berth_repository_list_serialize(berth_buf *out, const berth_repository_list *l)
{
    json_t *o;
    int rc = 0;

    if (!l->extra) {
        return stream_list(out, NULL, "repositories", &l->repositories);
    }
    if ((o = json_object()) != NULL) {
        set_array(o, "repositories", &l->repositories, &rc);
        berth__json_put_extra(o, l->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}

/* ---- tag list ---- */

void berth_tag_list_free(berth_tag_list *l)
{
    if (l) {
        free(l->name);
        berth_strlist_dispose(&l->tags);
        free(l->extra);
        free(l);
    }
}

int berth_tag_list_validate(const berth_tag_list *l)
{
    size_t i;

    if (!l || !l->name || !*l->name) {
        return berth_error_set(BERTH_EINVALID, "name: required");
    }
    for (i = 0; i < l->tags.count; i++) {
        if (!l->tags.items[i][0]) {
            return berth_error_set(BERTH_EINVALID, "tags[%zu]: empty", i);
        }
    }
    return 0;
}

static int tag_list_fill(void *doc, const json_t *root)
{
    berth_tag_list *l = doc;
    int rc;

    if ((rc = berth__json_str(&l->name, root, "name", true)) < 0) {
        return rc;
    }
    if (!json_object_get(root, "tags")) {
        return berth_error_set(BERTH_EINVALID, "tags: required");
    }
    if ((rc = berth__json_strlist(&l->tags, root, "tags")) < 0 ||
        (rc = berth__json_extra(&l->extra, root, tags_known)) < 0) {
        return rc;
    }
    return berth_tag_list_validate(l);
}

static void tag_list_free(void *doc)
{
    berth_tag_list_free(doc);
}

int berth_tag_list_parse(berth_tag_list **out, const char *json, size_t len)
{
    int rc;

    *out =
        berth__json_parse_doc(&rc, json, len, sizeof(berth_tag_list), tag_list_fill, tag_list_free);
    return rc;
}

int berth_tag_list_serialize(berth_buf *out, const berth_tag_list *l)
{
    json_t *o;
    int rc = 0;

    if (!l->extra) {
        return stream_list(out, l->name, "tags", &l->tags);
    }
    if ((o = json_object()) != NULL) {
        berth__json_set_str(o, "name", l->name, &rc);
        set_array(o, "tags", &l->tags, &rc);
        berth__json_put_extra(o, l->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}
