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

int berth_layout_header_parse(berth_layout_header **out, const char *json, size_t len)
{
    berth_layout_header *h = NULL;
    json_t *root = NULL;
    int rc;

    berth_error_clear();
    *out = NULL;
    if ((rc = berth__json_load(&root, json, len)) < 0) {
        goto out;
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = berth__json_str(&h->image_layout_version, root, "imageLayoutVersion", true)) < 0 ||
        (rc = berth__json_extra(&h->extra, root, layout_known)) < 0 ||
        (rc = berth_layout_header_validate(h)) < 0) {
        goto out;
    }
    *out = h;
    h = NULL;
out:
    berth_layout_header_free(h);
    json_decref(root);
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
    if (!o || rc < 0) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    } else {
        rc = berth__json_dump(out, o);
    }
    json_decref(o);
    return rc;
}
