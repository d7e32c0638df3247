/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/document.c: berth_document_inspect(), the registry's view of a pushed manifest of any
 * kind. The bytes are parsed once into a jansson tree, the kind is decided (the document's
 * mediaType, else the Content-Type, else its shape), the tree is read and validated as a
 * manifest or an index, and the descriptors are moved out into the info without copying.
 */
#include <stdlib.h>
#include <string.h>

#include "berth/document.h"
#include "berth/errors.h"
#include "berth/index.h"
#include "berth/manifest.h"
#include "berth/mediatype.h"
#include "oci/json.h"

berth_document_kind berth_document_kind_of(const char *media_type)
{
    if (!media_type) {
        return 0;
    }
    if (strcmp(media_type, BERTH_MEDIA_OCI_MANIFEST) == 0) {
        return BERTH_DOC_OCI_MANIFEST;
    }
    if (strcmp(media_type, BERTH_MEDIA_OCI_INDEX) == 0) {
        return BERTH_DOC_OCI_INDEX;
    }
    if (strcmp(media_type, BERTH_MEDIA_DOCKER_MANIFEST) == 0) {
        return BERTH_DOC_DOCKER_MANIFEST;
    }
    if (strcmp(media_type, BERTH_MEDIA_DOCKER_LIST) == 0) {
        return BERTH_DOC_DOCKER_LIST;
    }
    return 0;
}

bool berth_document_kind_is_index(berth_document_kind kind)
{
    return kind == BERTH_DOC_OCI_INDEX || kind == BERTH_DOC_DOCKER_LIST;
}

static const char *kind_media_type(berth_document_kind kind)
{
    switch (kind) {
    case BERTH_DOC_OCI_MANIFEST:
        return BERTH_MEDIA_OCI_MANIFEST;
    case BERTH_DOC_OCI_INDEX:
        return BERTH_MEDIA_OCI_INDEX;
    case BERTH_DOC_DOCKER_MANIFEST:
        return BERTH_MEDIA_DOCKER_MANIFEST;
    case BERTH_DOC_DOCKER_LIST:
        return BERTH_MEDIA_DOCKER_LIST;
    }
    return NULL;
}

void berth_document_info_free(berth_document_info *info)
{
    if (!info) {
        return;
    }
    free(info->media_type);
    free(info->artifact_type);
    berth_descriptor_free(info->subject);
    berth_map_dispose(&info->annotations);
    berth__descriptors_free(info->refs, info->nrefs);
    free(info);
}

/* The media type of a Content-Type value without parameters or surrounding blanks, copied into
 * `buf`; "" when it does not fit. */
static const char *bare_type(char *buf, size_t size, const char *ct)
{
    size_t n;

    while (*ct == ' ' || *ct == '\t') {
        ct++;
    }
    for (n = 0; ct[n] && ct[n] != ';' && ct[n] != ' ' && ct[n] != '\t'; n++) {
    }
    if (n >= size) {
        n = 0;
    }
    memcpy(buf, ct, n);
    buf[n] = '\0';
    return buf;
}

/* Decide the kind of a loaded document. */
static int decide_kind(berth_document_kind *out, const json_t *root, const char *content_type)
{
    char ctbuf[256];
    const char *ct = content_type ? bare_type(ctbuf, sizeof(ctbuf), content_type) : "";
    const json_t *mt = json_object_get(root, "mediaType");
    berth_document_kind kind;

    if (mt) {
        if (!json_is_string(mt)) {
            return berth_error_set(BERTH_EINVALID, "mediaType: not a string");
        }
        if (*ct && strcmp(ct, json_string_value(mt)) != 0) {
            return berth_error_set(BERTH_EINVALID,
                                   "mediaType: '%.200s' differs from the "
                                   "content type '%.200s'",
                                   json_string_value(mt), ct);
        }
        if (!(kind = berth_document_kind_of(json_string_value(mt)))) {
            return berth_error_set(BERTH_EUNSUPPORTED, "mediaType: '%.200s' is not supported",
                                   json_string_value(mt));
        }
    } else if (*ct) {
        if (!(kind = berth_document_kind_of(ct))) {
            return berth_error_set(BERTH_EUNSUPPORTED, "content type '%.200s' is not supported",
                                   ct);
        }
    } else if (json_object_get(root, "manifests")) {
        kind = BERTH_DOC_OCI_INDEX;
    } else if (json_object_get(root, "config")) {
        kind = BERTH_DOC_OCI_MANIFEST;
    } else {
        return berth_error_set(BERTH_EINVALID, "mediaType: absent and the document is neither "
                                               "a manifest nor an index");
    }
    *out = kind;
    return 0;
}

static int take_manifest(berth_document_info *info, const json_t *root)
{
    berth_manifest *m = calloc(1, sizeof(*m));
    int rc;

    if (!m) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if ((rc = berth__manifest_from_json(m, root)) < 0) {
        goto out;
    }
    if (m->media_type && berth_document_kind_of(m->media_type) != info->kind) {
        rc = berth_error_set(BERTH_EINVALID, "mediaType: '%.200s' does not match the document",
                             m->media_type);
        goto out;
    }
    /* refs: config, then the layers, moved out of the manifest */
    if (!(info->refs = calloc(m->nlayers + 1, sizeof(berth_descriptor)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    info->refs[0] = m->config;
    memset(&m->config, 0, sizeof(m->config));
    if (m->nlayers) {
        memcpy(&info->refs[1], m->layers, m->nlayers * sizeof(berth_descriptor));
    }
    info->nrefs = m->nlayers + 1;
    free(m->layers);
    m->layers = NULL;
    m->nlayers = 0;
    info->artifact_type = m->artifact_type;
    m->artifact_type = NULL;
    if (!info->artifact_type && info->refs[0].media_type &&
        !(info->artifact_type = strdup(info->refs[0].media_type))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    info->subject = m->subject;
    m->subject = NULL;
    info->annotations = m->annotations;
    memset(&m->annotations, 0, sizeof(m->annotations));
out:
    berth_manifest_free(m);
    return rc;
}

static int take_index(berth_document_info *info, const json_t *root)
{
    berth_index *idx = calloc(1, sizeof(*idx));
    int rc;

    if (!idx) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (info->kind == BERTH_DOC_DOCKER_LIST && !json_object_get(root, "mediaType")) {
        /* the Content-Type said manifest list: validate it as one */
        if (!(idx->media_type = strdup(BERTH_MEDIA_DOCKER_LIST))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    }
    if ((rc = berth__index_from_json(idx, root)) < 0) {
        goto out;
    }
    info->refs = idx->manifests;
    info->nrefs = idx->nmanifests;
    idx->manifests = NULL;
    idx->nmanifests = 0;
    info->artifact_type = idx->artifact_type;
    idx->artifact_type = NULL;
    info->subject = idx->subject;
    idx->subject = NULL;
    info->annotations = idx->annotations;
    memset(&idx->annotations, 0, sizeof(idx->annotations));
out:
    berth_index_free(idx);
    return rc;
}

int berth_document_inspect(berth_document_info **out, const char *content_type, const char *data,
                           size_t len)
{
    berth_document_info *info = NULL;
    json_t *root = NULL;
    int rc;

    berth_error_clear();
    *out = NULL;
    if ((rc = berth__json_load(&root, data, len)) < 0) {
        goto out;
    }
    if (!(info = calloc(1, sizeof(*info)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = decide_kind(&info->kind, root, content_type)) < 0) {
        goto out;
    }
    if (!(info->media_type = strdup(kind_media_type(info->kind)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (berth_document_kind_is_index(info->kind)) {
        rc = take_index(info, root);
    } else {
        rc = take_manifest(info, root);
    }
    if (rc < 0) {
        goto out;
    }
    *out = info;
    info = NULL;
out:
    berth_document_info_free(info);
    json_decref(root);
    return rc;
}
