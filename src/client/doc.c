/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The copy engine's view of a manifest-like document: whether it is an index, its media type,
 * the descriptors it references (with their platforms) and its subject, taken from the data
 * model's berth_document_inspect(), which validates the document fully. So nothing unchecked
 * (a digest, a size) becomes a URL or a path, and an OCI layout destination, which has no
 * registry to validate what it is given, never receives an invalid manifest.
 */
#include "client/client_internal.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void berth__doc_dispose(berth__doc *d)
{
    if (!d) {
        return;
    }
    for (size_t i = 0; i < d->nrefs; i++) {
        free(d->refs[i].media_type);
        free(d->refs[i].os);
        free(d->refs[i].arch);
        free(d->refs[i].variant);
    }
    free(d->refs);
    free(d->media_type);
    memset(d, 0, sizeof(*d));
}

int berth__doc_parse(berth__doc *out, const char *content_type, const char *data, size_t len)
{
    berth_document_info *info = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    /* a generic Content-Type says nothing of the kind; let the document speak */
    if (content_type && (!*content_type || strcmp(content_type, "application/json") == 0 ||
                         strcmp(content_type, "application/octet-stream") == 0 ||
                         strcmp(content_type, "text/plain") == 0)) {
        content_type = NULL;
    }
    if ((rc = berth_document_inspect(&info, content_type, data, len)) < 0) {
        goto out;
    }
    out->is_index = berth_document_kind_is_index(info->kind);
    out->refs = calloc(info->nrefs ? info->nrefs : 1, sizeof(*out->refs));
    if (!(out->media_type = strdup(info->media_type)) || !out->refs) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < info->nrefs; i++) {
        const berth_descriptor *d = &info->refs[i];
        berth__doc_ref *r = &out->refs[i];
        out->nrefs++;
        r->digest = d->digest;
        r->size = d->size;
        r->media_type = dup_or_null(d->media_type);
        if (d->platform) {
            r->os = dup_or_null(d->platform->os);
            r->arch = dup_or_null(d->platform->architecture);
            r->variant = dup_or_null(d->platform->variant);
        }
    }
    if (info->subject) {
        out->has_subject = true;
        out->subject = info->subject->digest;
    }
out:
    if (rc < 0) {
        berth__doc_dispose(out);
    }
    berth_document_info_free(info);
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
