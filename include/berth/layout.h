/* SPDX-License-Identifier: Apache-2.0 */
/* berth/layout.h: the `oci-layout` file of an OCI image layout (image-spec image-layout.md). */
#ifndef BERTH_LAYOUT_H
#define BERTH_LAYOUT_H

#include "descriptor.h"

/** The version berth writes. */
#define BERTH_LAYOUT_VERSION "1.0.0"

/** The `oci-layout` header. */
typedef struct berth_layout_header {
    char *image_layout_version; /* "imageLayoutVersion", required */
    berth_extra extra;
} berth_layout_header;

/**
 * Parse and validate an `oci-layout` file.
 * @param out  receives a struct the caller frees with berth_layout_header_free()
 * @return 0, BERTH_EINVALID (`imageLayoutVersion: ...`), BERTH_ENOMEM
 */
int berth_layout_header_parse(berth_layout_header **out, const char *json, size_t len);

/** imageLayoutVersion present and not empty. @return 0 or BERTH_EINVALID */
int berth_layout_header_validate(const berth_layout_header *h);

/** Append the compact JSON. @return 0 or BERTH_ENOMEM */
int berth_layout_header_serialize(berth_buf *out, const berth_layout_header *h);

/** Free; NULL is fine. */
void berth_layout_header_free(berth_layout_header *h);

#endif
