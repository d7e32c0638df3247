/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks and usage. On an fs store they work on the files (each inode once, corrupt blobs
 * moved aside: backend/fs); over other backends they are not yet written (BERTH_EUNSUPPORTED).
 */
#include "store/store_internal.h"

#include "backend/fs/fs.h"

#include <berth/errors.h>

int berth_store_fsck(berth_store *s, bool repair, berth_fsck_cb cb, void *payload,
                     berth_fsck_stats *stats)
{
    berth_error_clear();
    if (repair && s->opts.read_only) {
        return berth_error_set(BERTH_EIO, "the store is open read-only");
    }
    if (!s->root) {
        return berth_error_set(BERTH_EUNSUPPORTED, "fsck works on an fs store only");
    }
    return berth_fs_fsck_backend(s->meta, repair, cb, payload, stats);
}

int berth_store_du(berth_store *s, berth_du_cb cb, void *payload, uint64_t *total_out)
{
    berth_error_clear();
    if (!s->root) {
        return berth_error_set(BERTH_EUNSUPPORTED, "du works on an fs store only");
    }
    return berth_fs_du_backend(s->meta, cb, payload, total_out);
}

typedef struct usage_ctx {
    uint64_t bytes, blobs;
} usage_ctx;

static int count_blob(const berth_digest *digest, uint64_t size, int64_t mtime, void *payload)
{
    usage_ctx *u = payload;
    (void)digest;
    (void)mtime;
    u->bytes += size;
    u->blobs++;
    return 0;
}

int berth_store_usage(berth_store *s, uint64_t *bytes_out, uint64_t *blobs_out)
{
    usage_ctx u = {0, 0};
    int rc;

    berth_error_clear();
    if (!s->root) {
        /* a walk of a whole bucket per replica every few seconds is no gauge: the metadata
           backend would have to keep the sums (not yet) */
        return berth_error_set(BERTH_EUNSUPPORTED, "usage is kept for an fs store only");
    }
    rc = s->blobs->foreach (s->blobs, count_blob, &u);
    if (rc == 0) {
        *bytes_out = u.bytes;
        *blobs_out = u.blobs;
    }
    return rc;
}
