/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the fs metadata backend: upload session records, one JSON file each,
 * ROOT/_berth/uploads/<id>.json, written atomically and durably at create and update, and a
 * table in memory rebuilt from them at open. One process writes a root (its flock), so
 * "held" (upload_acquire) is a flag in memory, and a process that dies loses it with its
 * memory.
 */
#ifndef BERTH_BACKEND_FS_UPLOADS_H
#define BERTH_BACKEND_FS_UPLOADS_H

#include "backend/fs/fs_internal.h"

#define BERTH__FSB_SPARES 16

typedef struct berth__fsb_uploads {
    berth__fsb_root *root; /* borrowed from the metadata backend */
    pthread_mutex_t lock;
    bool init;
    berth__htab table; /* id -> record */
    /* files of deleted records, kept in ROOT/_berth/tmp for the next creations (uploads.c) */
    char *spares[BERTH__FSB_SPARES];
    size_t nspares;
    unsigned long spare_seq;
} berth__fsb_uploads;

/* Read the records of the root (and adopt sessions of earlier versions). */
int berth__fsb_uploads_open(berth__fsb_uploads *t, berth__fsb_root *root);
void berth__fsb_uploads_dispose(berth__fsb_uploads *t);
int berth__fsb_upload_create(berth__fsb_uploads *t, const berth_meta_upload *u,
                             const berth_meta_upload_limits *limits);
/* upload_get (acquire false) and upload_acquire (true). */
int berth__fsb_upload_get(berth__fsb_uploads *t, const char *repo, const char *id,
                          berth_meta_upload *out, bool acquire);
int berth__fsb_upload_update(berth__fsb_uploads *t, const berth_meta_upload *u);
void berth__fsb_upload_release(berth__fsb_uploads *t, const char *id);
int berth__fsb_upload_delete(berth__fsb_uploads *t, const char *id);
int berth__fsb_uploads_each(berth__fsb_uploads *t, berth_meta_upload_cb cb, void *payload);

#endif
