/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal: the store, the registry's rules over a blob backend and a metadata backend
 * (include/berth/sys/). store.c: manifests, tags, blobs of repositories, lists; upload.c: upload
 * sessions; gc.c: garbage collection and retention; fsck.c: checks and usage.
 */
#ifndef BERTH_STORE_INTERNAL_H
#define BERTH_STORE_INTERNAL_H

#include <berth/store.h>
#include <berth/sys/blob_backend.h>
#include <berth/sys/meta_backend.h>

struct berth_store {
    berth_blob_backend *blobs;
    berth_meta_backend *meta;
    berth_store_options opts;
    char *root;     /* the fs root when opened by berth_store_open(), else NULL */
    int64_t opened; /* when the store was opened (Unix seconds) */
    char *sparse;   /* the store's copy of opts.sparse_repositories */
};

/* Fail when the store is open read-only. */
int berth__store_writable(const berth_store *s);

/* Remove sessions idle past the TTL (uploads_reap, gc). */
int berth__uploads_gc(berth_store *s, bool dry_run, uint64_t *removed);

struct berth__htab;
/* Add to `out` the repositories with an upload session not idle past the TTL (a push in
 * progress), each key a malloc()ed name that is also its value (the caller frees them). */
int berth__uploads_repos(berth_store *s, struct berth__htab *out);

#endif
