/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The copy engine's view of a manifest-like document: whether it is an index, its media type,
 * the descriptors it references (with their platforms) and its subject. This is a narrow
 * reader, not a validator: the destination registry validates what it is sent, and every
 * referenced digest is parsed strictly here, so nothing unchecked becomes a URL or a path.
 */
#include "client/client_internal.h"

#include <berth/errors.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static char *jdup(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? strdup(s) : NULL;
}

static void ref_dispose(berth__doc_ref *r)
{
    free(r->media_type);
    free(r->os);
    free(r->arch);
    free(r->variant);
    free(r->annotations_json);
}

void berth__doc_dispose(berth__doc *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->nrefs; i++) {
        ref_dispose(&d->refs[i]);
    }
    free(d->refs);
    free(d->media_type);
    memset(d, 0, sizeof(*d));
}

static int read_desc(berth__doc_ref *out, json_t *j, const char *field)
{
    const char *dg = json_string_value(json_object_get(j, "digest"));
    json_t *size = json_object_get(j, "size");
    json_t *plat = json_object_get(j, "platform");
    json_t *ann = json_object_get(j, "annotations");
    int rc;

    if (!json_is_object(j)) {
        return berth_error_set(BERTH_EINVALID, "%s: not an object", field);
    }
    if (!dg) {
        return berth_error_set(BERTH_EINVALID, "%s.digest: missing", field);
    }
    if ((rc = berth_digest_parse_str(&out->digest, dg)) < 0) {
        berth_error_prefix("%s.digest: ", field);
        return rc;
    }
    if (!json_is_integer(size) || json_integer_value(size) < 0) {
        return berth_error_set(BERTH_EINVALID, "%s.size: not a non-negative integer", field);
    }
    out->size = (int64_t)json_integer_value(size);
    out->media_type = jdup(j, "mediaType");
    if (json_is_object(plat)) {
        out->os = jdup(plat, "os");
        out->arch = jdup(plat, "architecture");
        out->variant = jdup(plat, "variant");
    }
    if (json_is_object(ann)) {
        out->annotations_json = json_dumps(ann, JSON_COMPACT);
    }
    return 0;
}

int berth__doc_parse(berth__doc *out, const char *content_type, const char *data, size_t len)
{
    json_error_t jerr;
    json_t *root = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        rc = berth_error_set(BERTH_EINVALID, "manifest: %s", root ? "not an object" : jerr.text);
        goto out;
    }
    const char *mt = json_string_value(json_object_get(root, "mediaType"));
    json_t *manifests = json_object_get(root, "manifests");
    json_t *config = json_object_get(root, "config");
    json_t *layers = json_object_get(root, "layers");
    if (!mt && content_type && *content_type && strcmp(content_type, "application/json") != 0 &&
        strcmp(content_type, "application/octet-stream") != 0) {
        mt = content_type;
    }
    if (mt) {
        out->is_index = strstr(mt, "index") != NULL || strstr(mt, "manifest.list") != NULL;
    } else {
        out->is_index = manifests != NULL;
        mt = manifests ? "application/vnd.oci.image.index.v1+json"
                       : "application/vnd.oci.image.manifest.v1+json";
    }
    if (!(out->media_type = strdup(mt))) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (out->is_index) {
        if (!json_is_array(manifests)) {
            rc = berth_error_set(BERTH_EINVALID, "manifests: missing or not an array");
            goto out;
        }
        size_t n = json_array_size(manifests);
        out->refs = calloc(n ? n : 1, sizeof(*out->refs));
        if (!out->refs) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            char field[48];
            snprintf(field, sizeof(field), "manifests[%zu]", i);
            out->nrefs++;
            if ((rc = read_desc(&out->refs[i], json_array_get(manifests, i), field)) < 0) {
                goto out;
            }
        }
    } else {
        if (!json_is_object(config)) {
            rc = berth_error_set(BERTH_EINVALID, "config: missing or not an object");
            goto out;
        }
        if (layers && !json_is_array(layers)) {
            rc = berth_error_set(BERTH_EINVALID, "layers: not an array");
            goto out;
        }
        size_t n = json_array_size(layers);
        out->refs = calloc(n + 1, sizeof(*out->refs));
        if (!out->refs) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        out->nrefs = 1;
        if ((rc = read_desc(&out->refs[0], config, "config")) < 0) {
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            char field[48];
            snprintf(field, sizeof(field), "layers[%zu]", i);
            out->nrefs++;
            if ((rc = read_desc(&out->refs[i + 1], json_array_get(layers, i), field)) < 0) {
                goto out;
            }
        }
    }
    json_t *subject = json_object_get(root, "subject");
    if (subject) {
        const char *sd = json_string_value(json_object_get(subject, "digest"));
        if (!sd || (rc = berth_digest_parse_str(&out->subject, sd)) < 0) {
            rc = rc < 0 ? rc : berth_error_set(BERTH_EINVALID, "subject.digest: missing");
            goto out;
        }
        out->has_subject = true;
    }
out:
    if (rc < 0) {
        berth__doc_dispose(out);
    }
    json_decref(root);
    return rc;
}

bool berth__doc_ref_matches(const berth__doc_ref *r, const char *platform)
{
    const char *a = strchr(platform, '/');
    if (!r->os || !r->arch || !a) {
        return false;
    }
    const char *v = strchr(a + 1, '/');
    size_t oslen = (size_t)(a - platform);
    size_t archlen = v ? (size_t)(v - a - 1) : strlen(a + 1);
    if (strlen(r->os) != oslen || strncmp(r->os, platform, oslen) != 0) {
        return false;
    }
    if (strlen(r->arch) != archlen || strncmp(r->arch, a + 1, archlen) != 0) {
        return false;
    }
    if (v) {
        return r->variant && strcmp(r->variant, v + 1) == 0;
    }
    return true;
}
