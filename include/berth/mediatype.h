/* SPDX-License-Identifier: Apache-2.0 */
/* berth/mediatype.h: the media types of the OCI image-spec and of Docker schema2, and checks. */
#ifndef BERTH_MEDIATYPE_H
#define BERTH_MEDIATYPE_H

#include "common.h"

/* OCI image-spec (media-types.md) */
#define BERTH_MEDIA_OCI_DESCRIPTOR    "application/vnd.oci.descriptor.v1+json"
#define BERTH_MEDIA_OCI_LAYOUT        "application/vnd.oci.layout.header.v1+json"
#define BERTH_MEDIA_OCI_MANIFEST      "application/vnd.oci.image.manifest.v1+json"
#define BERTH_MEDIA_OCI_INDEX         "application/vnd.oci.image.index.v1+json"
#define BERTH_MEDIA_OCI_CONFIG        "application/vnd.oci.image.config.v1+json"
#define BERTH_MEDIA_OCI_EMPTY         "application/vnd.oci.empty.v1+json"
#define BERTH_MEDIA_OCI_LAYER_TAR     "application/vnd.oci.image.layer.v1.tar"
#define BERTH_MEDIA_OCI_LAYER_GZIP    "application/vnd.oci.image.layer.v1.tar+gzip"
#define BERTH_MEDIA_OCI_LAYER_ZSTD    "application/vnd.oci.image.layer.v1.tar+zstd"
#define BERTH_MEDIA_OCI_LAYER_ND_TAR  "application/vnd.oci.image.layer.nondistributable.v1.tar"
#define BERTH_MEDIA_OCI_LAYER_ND_GZIP "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
#define BERTH_MEDIA_OCI_LAYER_ND_ZSTD "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

/* Docker image manifest v2, schema 2 */
#define BERTH_MEDIA_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define BERTH_MEDIA_DOCKER_LIST     "application/vnd.docker.distribution.manifest.list.v2+json"
#define BERTH_MEDIA_DOCKER_CONFIG   "application/vnd.docker.container.image.v1+json"
#define BERTH_MEDIA_DOCKER_LAYER    "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define BERTH_MEDIA_DOCKER_FOREIGN  "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

/** The digest of the empty JSON document `{}` (the image-spec's empty descriptor). */
#define BERTH_EMPTY_JSON_DIGEST                                                                    \
    "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

/**
 * True when `s` is a media type by RFC 6838's grammar as the image-spec applies it:
 * `type/subtype`, each a restricted-name of 1 to 127 characters (first alphanumeric, then
 * alphanumerics and `!#$&-^_.+`), no parameters. NULL is false.
 */
bool berth_media_type_valid(const char *s);

/** True for the nondistributable layer types (OCI and Docker foreign layers). */
bool berth_media_type_is_nondistributable(const char *s);

#endif
