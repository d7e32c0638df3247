/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/descriptor.c: descriptors and platforms (image-spec descriptor.md, image-index.md).
 * Parsing checks JSON types and the digest grammar and then validates; validation checks
 * the MUSTs of the spec on the struct, so a descriptor built by hand is checked the same way.
 * Every message names the member; callers prefix the path (`layers[2].`).
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "berth/errors.h"
#include "berth/mediatype.h"
#include "base/base64.h"
#include "oci/json.h"

static const char *const platform_known[] = {"architecture", "os",      "os.version",
                                             "os.features",  "variant", NULL};
static const char *const descriptor_known[] = {
    "mediaType", "digest", "size", "urls", "annotations", "platform", "artifactType", "data", NULL};

void berth_strlist_dispose(berth_strlist *l)
{
    size_t i;

    if (!l) {
        return;
    }
    for (i = 0; i < l->count; i++) {
        free(l->items[i]);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

void berth_map_dispose(berth_map *m)
{
    size_t i;

    if (!m) {
        return;
    }
    for (i = 0; i < m->count; i++) {
        free(m->items[i].key);
        free(m->items[i].value);
    }
    free(m->items);
    m->items = NULL;
    m->count = 0;
}

const char *berth_map_get(const berth_map *m, const char *key)
{
    size_t i;

    for (i = 0; m && key && i < m->count; i++) {
        if (strcmp(m->items[i].key, key) == 0) {
            return m->items[i].value;
        }
    }
    return NULL;
}

/*
 * An RFC 3986 URI, checked loosely: a scheme (ALPHA *(ALPHA / DIGIT / "+" / "-" / ".")), a
 * colon, then only characters a URI may hold (unreserved, reserved and "%" escapes).
 */
static bool uri_valid(const char *s)
{
    size_t i = 0;

    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) {
        return false;
    }
    while ((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
           (s[i] >= '0' && s[i] <= '9') || s[i] == '+' || s[i] == '-' || s[i] == '.') {
        i++;
    }
    if (s[i] != ':') {
        return false;
    }
    for (i++; s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            if (!isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2])) {
                return false;
            }
        } else if (!isalnum(c) && !strchr("-._~:/?#[]@!$&'()*+,;=", c)) {
            return false;
        }
    }
    return true;
}

/* ---- platform ---- */

void berth__platform_dispose(berth_platform *p)
{
    if (!p) {
        return;
    }
    free(p->architecture);
    free(p->os);
    free(p->os_version);
    berth_strlist_dispose(&p->os_features);
    free(p->variant);
    free(p->extra);
    memset(p, 0, sizeof(*p));
}

void berth_platform_free(berth_platform *p)
{
    berth__platform_dispose(p);
    free(p);
}

int berth__platform_from_json(berth_platform *p, const json_t *v)
{
    int rc;

    memset(p, 0, sizeof(*p));
    if ((rc = berth__json_want_object(v, "platform")) < 0) {
        return rc;
    }
    if ((rc = berth__json_str(&p->architecture, v, "architecture", true)) < 0 ||
        (rc = berth__json_str(&p->os, v, "os", true)) < 0 ||
        (rc = berth__json_str(&p->os_version, v, "os.version", false)) < 0 ||
        (rc = berth__json_strlist(&p->os_features, v, "os.features")) < 0 ||
        (rc = berth__json_str(&p->variant, v, "variant", false)) < 0 ||
        (rc = berth__json_extra(&p->extra, v, platform_known)) < 0) {
        return rc;
    }
    return 0;
}

json_t *berth__platform_to_json(const berth_platform *p, int *rc)
{
    json_t *o = json_object();

    if (!o) {
        *rc = BERTH_ENOMEM;
        return NULL;
    }
    berth__json_set_str(o, "architecture", p->architecture, rc);
    berth__json_set_str(o, "os", p->os, rc);
    berth__json_set_str(o, "os.version", p->os_version, rc);
    berth__json_set_strlist(o, "os.features", &p->os_features, rc);
    berth__json_set_str(o, "variant", p->variant, rc);
    berth__json_put_extra(o, p->extra, rc);
    return o;
}

int berth_platform_validate(const berth_platform *p)
{
    if (!p) {
        return berth_error_set(BERTH_EINVALID, "no platform");
    }
    if (!p->architecture || !*p->architecture) {
        return berth_error_set(BERTH_EINVALID, "architecture: required");
    }
    if (!p->os || !*p->os) {
        return berth_error_set(BERTH_EINVALID, "os: required");
    }
    return 0;
}

static int platform_fill(void *doc, const json_t *root)
{
    int rc = berth__platform_from_json(doc, root);
    return rc < 0 ? rc : berth_platform_validate(doc);
}

static void platform_free(void *doc)
{
    berth_platform_free(doc);
}

int berth_platform_parse(berth_platform **out, const char *json, size_t len)
{
    int rc;

    *out =
        berth__json_parse_doc(&rc, json, len, sizeof(berth_platform), platform_fill, platform_free);
    return rc;
}

int berth_platform_serialize(berth_buf *out, const berth_platform *p)
{
    int rc = 0;
    json_t *o = berth__platform_to_json(p, &rc);

    return berth__json_finish(out, o, rc);
}

/* ---- descriptor ---- */

void berth_descriptor_dispose(berth_descriptor *d)
{
    if (!d) {
        return;
    }
    free(d->media_type);
    berth_strlist_dispose(&d->urls);
    berth_map_dispose(&d->annotations);
    berth_platform_free(d->platform);
    free(d->artifact_type);
    free(d->data);
    free(d->extra);
    memset(d, 0, sizeof(*d));
}

void berth_descriptor_free(berth_descriptor *d)
{
    berth_descriptor_dispose(d);
    free(d);
}

int berth__descriptor_from_json(berth_descriptor *d, const json_t *v)
{
    const json_t *x;
    char *s = NULL;
    berth_buf data = BERTH_BUF_INIT;
    int rc;

    memset(d, 0, sizeof(*d));
    if ((rc = berth__json_want_object(v, "descriptor")) < 0) {
        return rc;
    }
    if ((rc = berth__json_str(&d->media_type, v, "mediaType", true)) < 0 ||
        (rc = berth__json_str(&s, v, "digest", true)) < 0) {
        goto out;
    }
    if ((rc = berth_digest_parse_str(&d->digest, s)) < 0) {
        berth_error_prefix("digest: ");
        goto out;
    }
    if ((rc = berth__json_size(&d->size, NULL, v, "size", true)) < 0 ||
        (rc = berth__json_strlist(&d->urls, v, "urls")) < 0 ||
        (rc = berth__json_map(&d->annotations, v, "annotations")) < 0 ||
        (rc = berth__json_str(&d->artifact_type, v, "artifactType", false)) < 0) {
        goto out;
    }
    if ((x = json_object_get(v, "platform")) != NULL) {
        if (!(d->platform = calloc(1, sizeof(*d->platform)))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = berth__platform_from_json(d->platform, x)) < 0) {
            if (json_is_object(x)) {
                berth_error_prefix("platform.");
            }
            goto out;
        }
    }
    if ((x = json_object_get(v, "data")) != NULL) {
        if (!json_is_string(x)) {
            rc = berth_error_set(BERTH_EINVALID, "data: not a string");
            goto out;
        }
        rc = berth__base64_decode(&data, json_string_value(x), json_string_length(x),
                                  BERTH__BASE64_STD);
        if (rc == BERTH_EINVALID) {
            rc = berth_error_set(BERTH_EINVALID, "data: not base64");
        }
        if (rc < 0) {
            goto out;
        }
        d->data_len = data.len;
        if (!(d->data = (unsigned char *)berth_buf_detach(&data))) {
            d->data_len = 0;
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        d->has_data = true;
    }
    rc = berth__json_extra(&d->extra, v, descriptor_known);
out:
    free(s);
    berth_buf_dispose(&data);
    return rc;
}

json_t *berth__descriptor_to_json(const berth_descriptor *d, int *rc)
{
    json_t *o = json_object();

    if (!o) {
        *rc = BERTH_ENOMEM;
        return NULL;
    }
    berth__json_set_str(o, "mediaType", d->media_type, rc);
    berth__json_set_str(o, "artifactType", d->artifact_type, rc);
    berth__json_set_str(o, "digest", d->digest.str, rc);
    berth__json_set(o, "size", json_integer(d->size), rc);
    berth__json_set_strlist(o, "urls", &d->urls, rc);
    berth__json_set_map(o, "annotations", &d->annotations, rc);
    if (d->has_data) {
        berth_buf b = BERTH_BUF_INIT;
        if (berth__base64_encode(&b, d->data, d->data_len, BERTH__BASE64_STD) < 0) {
            *rc = BERTH_ENOMEM;
        } else {
            berth__json_set(o, "data", json_string(berth_buf_cstr(&b)), rc);
        }
        berth_buf_dispose(&b);
    }
    if (d->platform) {
        berth__json_set(o, "platform", berth__platform_to_json(d->platform, rc), rc);
    }
    berth__json_put_extra(o, d->extra, rc);
    return o;
}

int berth_descriptor_validate(const berth_descriptor *d)
{
    berth_digest got;
    int rc;

    if (!d) {
        return berth_error_set(BERTH_EINVALID, "no descriptor");
    }
    if (!d->media_type) {
        return berth_error_set(BERTH_EINVALID, "mediaType: required");
    }
    if (!berth_media_type_valid(d->media_type)) {
        return berth_error_set(BERTH_EINVALID, "mediaType: '%.200s' is not a media type",
                               d->media_type);
    }
    if (d->digest.alg == BERTH_DIGEST_NONE) {
        return berth_error_set(BERTH_EINVALID, "digest: required");
    }
    if (d->size < 0) {
        return berth_error_set(BERTH_EINVALID, "size: negative");
    }
    if (d->artifact_type && !berth_media_type_valid(d->artifact_type)) {
        return berth_error_set(BERTH_EINVALID, "artifactType: '%.200s' is not a media type",
                               d->artifact_type);
    }
    for (size_t i = 0; i < d->urls.count; i++) {
        if (!uri_valid(d->urls.items[i])) {
            return berth_error_set(BERTH_EINVALID, "urls[%zu]: '%.200s' is not a URI", i,
                                   d->urls.items[i]);
        }
    }
    if (d->has_data) {
        if ((uint64_t)d->size != d->data_len) {
            return berth_error_set(BERTH_EINVALID, "data: %zu bytes, but size is %lld", d->data_len,
                                   (long long)d->size);
        }
        if ((rc = berth_digest_buffer(&got, d->digest.alg, d->data, d->data_len)) < 0) {
            return rc;
        }
        if (!berth_digest_equal(&got, &d->digest)) {
            return berth_error_set(BERTH_EINVALID, "data: digest is %s, not %s", got.str,
                                   d->digest.str);
        }
    }
    if (d->platform && (rc = berth_platform_validate(d->platform)) < 0) {
        berth_error_prefix("platform.");
        return rc;
    }
    return 0;
}

static int descriptor_fill(void *doc, const json_t *root)
{
    int rc = berth__descriptor_from_json(doc, root);
    return rc < 0 ? rc : berth_descriptor_validate(doc);
}

static void descriptor_free(void *doc)
{
    berth_descriptor_free(doc);
}

int berth_descriptor_parse(berth_descriptor **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_descriptor), descriptor_fill,
                                 descriptor_free);
    return rc;
}

int berth_descriptor_serialize(berth_buf *out, const berth_descriptor *d)
{
    int rc = 0;
    json_t *o = berth__descriptor_to_json(d, &rc);

    return berth__json_finish(out, o, rc);
}

/* ---- arrays of descriptors, shared by manifests and indexes ---- */

void berth__descriptors_free(berth_descriptor *a, size_t n)
{
    size_t i;

    for (i = 0; a && i < n; i++) {
        berth_descriptor_dispose(&a[i]);
    }
    free(a);
}

int berth__descriptors_from_json(berth_descriptor **out, size_t *n, const json_t *obj,
                                 const char *key, bool required)
{
    const json_t *v = json_object_get(obj, key);
    size_t i, count;
    int rc;

    *out = NULL;
    *n = 0;
    if (!v) {
        return required ? berth_error_set(BERTH_EINVALID, "%s: required", key) : 0;
    }
    if (!json_is_array(v)) {
        return berth_error_set(BERTH_EINVALID, "%s: not an array", key);
    }
    count = json_array_size(v);
    if (count == 0) {
        return 0;
    }
    if (!(*out = calloc(count, sizeof(berth_descriptor)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (i = 0; i < count; i++) {
        /* *n counts the elements that may hold memory, so that the caller can free them */
        *n = i + 1;
        rc = berth__descriptor_from_json(&(*out)[i], json_array_get(v, i));
        if (rc < 0) {
            berth_error_prefix(json_is_object(json_array_get(v, i)) ? "%s[%zu]." : "%s[%zu]: ", key,
                               i);
            return rc;
        }
    }
    return 0;
}

int berth__descriptors_validate(const berth_descriptor *a, size_t n, const char *key)
{
    size_t i;
    int rc;

    for (i = 0; i < n; i++) {
        if ((rc = berth_descriptor_validate(&a[i])) < 0) {
            berth_error_prefix("%s[%zu].", key, i);
            return rc;
        }
    }
    return 0;
}

void berth__json_set_descriptors(json_t *obj, const char *key, const berth_descriptor *a, size_t n,
                                 int *rc)
{
    json_t *arr = json_array();
    size_t i;

    for (i = 0; arr && i < n; i++) {
        if (json_array_append_new(arr, berth__descriptor_to_json(&a[i], rc)) != 0) {
            *rc = BERTH_ENOMEM;
        }
    }
    berth__json_set(obj, key, arr, rc);
}
