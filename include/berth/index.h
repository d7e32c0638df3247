/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/index.h: the OCI image index (image-spec image-index.md) and the Docker schema2
 * manifest list, which has the same shape and its own media type.
 */
#ifndef BERTH_INDEX_H
#define BERTH_INDEX_H

#include "descriptor.h"

/** An image index or manifest list. */
typedef struct berth_index {
    int64_t schema_version;      /* "schemaVersion", must be 2 */
    char *media_type;            /* "mediaType": optional for OCI, required for Docker */
    char *artifact_type;         /* "artifactType", optional (OCI only) */
    berth_descriptor *manifests; /* "manifests", required (may be empty) */
    size_t nmanifests;
    berth_descriptor *subject; /* "subject", optional (NULL) */
    berth_map annotations;     /* "annotations", optional */
    berth_extra extra;
} berth_index;

/**
 * Parse and validate an index.
 * @param out  receives an index the caller frees with berth_index_free()
 * @return 0; BERTH_EINVALID naming the field (`manifests[1].platform.os: ...`);
 *         BERTH_EUNSUPPORTED for a digest of an unsupported algorithm; BERTH_ENOMEM
 */
int berth_index_parse(berth_index **out, const char *json, size_t len);

/**
 * Check the MUSTs of image-index.md: schemaVersion 2, an index media type, valid descriptors
 * (a platform, when present, has architecture and os); a Docker manifest list needs a
 * platform on every entry. @return 0 or BERTH_EINVALID naming the field
 */
int berth_index_validate(const berth_index *idx);

/** Append the index's compact JSON to `out`. @return 0 or BERTH_ENOMEM */
int berth_index_serialize(berth_buf *out, const berth_index *idx);

/** True when the index is a Docker manifest list (by its mediaType). */
bool berth_index_is_docker(const berth_index *idx);

/** Free an index; NULL is fine. */
void berth_index_free(berth_index *idx);

#endif
