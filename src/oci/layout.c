/* SPDX-License-Identifier: Apache-2.0 */
/* oci/layout.c: the `oci-layout` header of an image layout (image-layout.md). */
#include <stdlib.h>

#include "berth/errors.h"
#include "berth/layout.h"
#include "oci/json.h"

static const char *const layout_known[] = {"imageLayoutVersion", NULL};

void berth_layout_header_free(berth_layout_header *h)
{
    if (h) {
        free(h->image_layout_version);
        free(h->extra);
        free(h);
    }
}

int berth_layout_header_validate(const berth_layout_header *h)
{
    if (!h || !h->image_layout_version || !*h->image_layout_version) {
        return berth_error_set(BERTH_EINVALID, "imageLayoutVersion: required");
    }
    return 0;
}

static int header_fill(void *doc, const json_t *root)
{
    berth_layout_header *h = doc;
    int rc;

    if ((rc = berth__json_str(&h->image_layout_version, root, "imageLayoutVersion", true)) < 0 ||
        (rc = berth__json_extra(&h->extra, root, layout_known)) < 0) {
        return rc;
    }
    return berth_layout_header_validate(h);
}

static void header_free(void *doc)
{
    berth_layout_header_free(doc);
}

int berth_layout_header_parse(berth_layout_header **out, const char *json, size_t len)
{
    int rc;

    *out = berth__json_parse_doc(&rc, json, len, sizeof(berth_layout_header), header_fill,
                                 header_free);
    return rc;
}

int berth_layout_header_serialize(berth_buf *out, const berth_layout_header *h)
{
    json_t *o = json_object();
    int rc = 0;

    if (o) {
        berth__json_set_str(o, "imageLayoutVersion", h->image_layout_version, &rc);
        berth__json_put_extra(o, h->extra, &rc);
    }
    return berth__json_finish(out, o, rc);
}
