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

/* A generic Content-Type says nothing of the kind: the document speaks for itself. */
static const char *kind_hint(const char *content_type)
{
    if (content_type && (!*content_type || strcmp(content_type, "application/json") == 0 ||
                         strcmp(content_type, "application/octet-stream") == 0 ||
                         strcmp(content_type, "text/plain") == 0)) {
        return NULL;
    }
    return content_type;
}

int berth_client_inspect_manifest(berth_document_info **out, const char *content_type,
                                  const char *data, size_t len)
{
    berth_error_clear();
    return berth_document_inspect(out, kind_hint(content_type), data, len);
}

/* "os/arch[/variant]" against a platform's members (no variant given: any variant). */
static bool platform_matches(const char *os, const char *arch, const char *variant,
                             const char *platform)
{
    const char *a = strchr(platform, '/');
    if (!os || !arch || !a) {
        return false;
    }
    const char *v = strchr(a + 1, '/');
    size_t oslen = (size_t)(a - platform);
    size_t archlen = v ? (size_t)(v - a - 1) : strlen(a + 1);
    if (strlen(os) != oslen || strncmp(os, platform, oslen) != 0) {
        return false;
    }
    if (strlen(arch) != archlen || strncmp(arch, a + 1, archlen) != 0) {
        return false;
    }
    if (v) {
        return variant && strcmp(variant, v + 1) == 0;
    }
    return true;
}

bool berth_client_platform_matches(const berth_descriptor *d, const char *platform)
{
    return d->platform && platform &&
           platform_matches(d->platform->os, d->platform->architecture, d->platform->variant,
                            platform);
}

int berth__doc_parse(berth__doc *out, const char *content_type, const char *data, size_t len)
{
    berth_document_info *info = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = berth_document_inspect(&info, kind_hint(content_type), data, len)) < 0) {
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
    return platform_matches(r->os, r->arch, r->variant, platform);
}
