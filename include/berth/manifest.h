/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/manifest.h: the OCI image manifest (image-spec manifest.md) and the Docker schema2
 * manifest, which has the same shape and its own media type; also the versioned header
 * (`schemaVersion`) every manifest and index starts with.
 */
#ifndef BERTH_MANIFEST_H
#define BERTH_MANIFEST_H

#include "descriptor.h"

/** Versioned (image-spec specs-go/versioned.go): just `schemaVersion`. */
typedef struct berth_versioned {
    int64_t schema_version; /* "schemaVersion", required */
    berth_extra extra;      /* every other member of the document */
} berth_versioned;

/**
 * Parse the versioned header of any document (other members are kept as extra).
 * @param out  receives a struct the caller frees with berth_versioned_free()
 * @return 0, BERTH_EINVALID (`schemaVersion: ...`), BERTH_ENOMEM
 */
int berth_versioned_parse(berth_versioned **out, const char *json, size_t len);

/** Append the compact JSON. @return 0 or BERTH_ENOMEM */
int berth_versioned_serialize(berth_buf *out, const berth_versioned *v);

/** Free; NULL is fine. */
void berth_versioned_free(berth_versioned *v);

/** An image manifest, OCI or Docker schema2. */
typedef struct berth_manifest {
    int64_t schema_version;   /* "schemaVersion", must be 2 */
    char *media_type;         /* "mediaType": optional for OCI (then the OCI type),
                                 required for Docker (BERTH_MEDIA_DOCKER_MANIFEST) */
    char *artifact_type;      /* "artifactType", optional (OCI only) */
    berth_descriptor config;  /* "config", required */
    berth_descriptor *layers; /* "layers", required (may be empty) */
    size_t nlayers;
    berth_descriptor *subject; /* "subject", optional (NULL) */
    berth_map annotations;     /* "annotations", optional */
    berth_extra extra;
} berth_manifest;

/**
 * Parse and validate a manifest.
 * @param out  receives a manifest the caller frees with berth_manifest_free()
 * @return 0; BERTH_EINVALID naming the field (`layers[2].digest: ...`); BERTH_EUNSUPPORTED for
 *         a digest of an unsupported algorithm; BERTH_ENOMEM
 */
int berth_manifest_parse(berth_manifest **out, const char *json, size_t len);

/**
 * Check the MUSTs of manifest.md: schemaVersion 2, a manifest media type, valid descriptors,
 * artifactType set when config.mediaType is the empty type (OCI only).
 * @return 0 or BERTH_EINVALID naming the field
 */
int berth_manifest_validate(const berth_manifest *m);

/** Append the manifest's compact JSON to `out`. @return 0 or BERTH_ENOMEM */
int berth_manifest_serialize(berth_buf *out, const berth_manifest *m);

/** True when the manifest is a Docker schema2 manifest (by its mediaType). */
bool berth_manifest_is_docker(const berth_manifest *m);

/** Free a manifest; NULL is fine. */
void berth_manifest_free(berth_manifest *m);

#endif
