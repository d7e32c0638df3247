/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store a configuration names: the fs backends over `root` (the embedded default), or the
 * s3 blob backend with the postgres metadata backend (storage.s3.* with database.url).
 */
#include "store/store_internal.h"

#include "backend/postgres/pg.h"
#include "backend/s3/s3.h"

#include <berth/errors.h>

#include <berth/config.h>
#include <berth/store.h>

#include <stdio.h>
#include <string.h>

int berth_store_open_config(berth_store **out, const berth_config *cfg,
                            const berth_store_options *opts)
{
    berth_blob_backend *blobs = NULL;
    berth_meta_backend *meta = NULL;
    berth_s3_options s3;
    berth_pg_options pg;

    if (!cfg->storage.s3.bucket) {
        return berth_store_open(out, cfg->root, opts);
    }
    memset(&s3, 0, sizeof(s3));
    s3.endpoint = cfg->storage.s3.endpoint;
    s3.bucket = cfg->storage.s3.bucket;
    s3.region = cfg->storage.s3.region ? cfg->storage.s3.region : "us-east-1";
    s3.prefix = cfg->storage.s3.prefix ? cfg->storage.s3.prefix : "";
    s3.path_style = cfg->storage.s3.path_style;
    s3.redirect = cfg->storage.s3.redirect;
    s3.public_endpoint = cfg->storage.s3.public_endpoint;
    s3.redirect_seconds = 900;
    s3.part_size = (size_t)cfg->storage.s3.part_size;
    memset(&pg, 0, sizeof(pg));
    pg.conninfo = cfg->database.url;
    pg.pool_size = (unsigned)cfg->database.pool_size;
    if (berth_s3_blob_backend_new(&blobs, &s3) < 0) {
        return berth_error_last_code();
    }
    if (berth_pg_meta_backend_new(&meta, &pg) < 0) {
        int rc = berth_error_last_code();
        blobs->free(blobs);
        return rc;
    }
    return berth_store_open_backends(out, blobs, meta, opts);
}
