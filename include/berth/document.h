/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/document.h: any manifest-like document (OCI image manifest or index, Docker schema2
 * manifest or manifest list) seen the way a registry sees it: its kind, its effective media
 * type, what it references, its subject, artifactType and annotations. The registry validates
 * a pushed manifest with this and stores the original bytes; it never re-serialises them.
 */
#ifndef BERTH_DOCUMENT_H
#define BERTH_DOCUMENT_H

#include "descriptor.h"

typedef enum berth_document_kind {
    BERTH_DOC_OCI_MANIFEST = 1, /* application/vnd.oci.image.manifest.v1+json */
    BERTH_DOC_OCI_INDEX,        /* application/vnd.oci.image.index.v1+json */
    BERTH_DOC_DOCKER_MANIFEST,  /* application/vnd.docker.distribution.manifest.v2+json */
    BERTH_DOC_DOCKER_LIST,      /* application/vnd.docker.distribution.manifest.list.v2+json */
} berth_document_kind;

typedef struct berth_document_info {
    berth_document_kind kind;
    char *media_type;          /* effective media type (see berth_document_inspect) */
    char *artifact_type;       /* artifactType; else config.mediaType of an image manifest;
                                  NULL for an index without artifactType */
    berth_descriptor *subject; /* "subject", NULL when absent */
    berth_map annotations;     /* "annotations" of the document */
    berth_descriptor *refs;    /* image: config then layers; index: its manifests */
    size_t nrefs;
} berth_document_info;

/**
 * Parse and fully validate a manifest or index of any supported kind, and say what it is.
 *
 * The kind comes from the document's own `mediaType`; when that is absent, from
 * `content_type` (may be NULL); when both are absent, from the shape (`manifests` makes an
 * index, `config` a manifest). A document whose `mediaType` differs from a given
 * `content_type` is invalid, as is one whose kind cannot be told or is not supported.
 *
 * @param out  receives the info, freed with berth_document_info_free()
 * @return 0; BERTH_EINVALID naming the field (`layers[2].digest: ...`); BERTH_EUNSUPPORTED for
 *         a media type of no supported kind or a digest of an unsupported algorithm;
 *         BERTH_ENOMEM
 */
int berth_document_inspect(berth_document_info **out, const char *content_type, const char *data,
                           size_t len);

/** Free the result of berth_document_inspect(); NULL is fine. */
void berth_document_info_free(berth_document_info *info);

/** True for a kind that is an index or manifest list. */
bool berth_document_kind_is_index(berth_document_kind kind);

/** The kind named by a media type, or 0 when it names none. */
berth_document_kind berth_document_kind_of(const char *media_type);

#endif
