/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fs.h: the fs backends, berth's embedded default: both storage interfaces
 * (berth/sys/blob_backend.h, berth/sys/meta_backend.h) over one directory, in the on-disk form
 * berth has always had (docs/design.md, "On disk"):
 *
 *   ROOT/_berth/blobs/<alg>/<hex>    the pool: one copy of every blob (the blob backend)
 *   ROOT/_berth/uploads/<id>         the bytes of an upload session (the blob backend's writers)
 *   ROOT/_berth/uploads/<id>.json    the record of an upload session (the metadata backend)
 *   ROOT/_berth/tmp/                 staging for atomic writes; emptied at open by the lock holder
 *   ROOT/_berth/lock                 flock()ed by the one process that writes the root
 *   ROOT/<name>/                     a repository: an OCI image layout (oci-layout, index.json,
 *                                    blobs/<alg>/<hex> hard links to the pool)
 *
 * so that skopeo (`oci:ROOT/<name>:<tag>`) and umoci read a repository directory as it stands,
 * and a root written by earlier versions of berth opens and serves as before.
 *
 * The two backends are a pair over one root: the metadata backend's links are hard links into
 * the blob backend's pool, and garbage collection's claims (gc_blob_claim) look at the pool.
 * They share the root's state (the lock, the options) by reference, so they may be freed in
 * either order.
 */
#ifndef BERTH_BACKEND_FS_H
#define BERTH_BACKEND_FS_H

#include <berth/store.h>
#include <berth/sys/blob_backend.h>
#include <berth/sys/meta_backend.h>

typedef struct berth_fs_options {
    bool fsync;         /* fsync before a write returns (on in production; off only in tests) */
    bool lock;          /* hold ROOT/_berth/lock (flock) while open: one writer process per root;
                           the lock holder also clears ROOT/_berth/tmp at open */
    bool read_only;     /* never write: every write member fails with BERTH_EIO; a missing root
                           is BERTH_ENOTFOUND; implies no lock */
    size_t cache_bytes; /* manifest bytes kept in memory by the metadata backend (0: 8 MiB) */
} berth_fs_options;

/**
 * Open (creating when needed, unless read-only) the fs backends over `root`.
 * @param blobs_out  receives the blob backend (the pool and upload bytes); free it with its
 *                   free member
 * @param meta_out   receives the metadata backend (layouts, links, uploads' records); free it
 *                   with its free member. The two may be freed in either order; the root's lock
 *                   is released when the second one is freed.
 * @param opts       NULL for fsync and lock on, read-write, the default cache
 * @return 0; BERTH_EBUSY (opts->lock and another process holds the root); BERTH_ENOTFOUND
 *         (read-only and no berth root there); BERTH_EIO (the log names the path, the message
 *         does not); BERTH_ENOMEM
 */
int berth_fs_backends_open(berth_blob_backend **blobs_out, berth_meta_backend **meta_out,
                           const char *root, const berth_fs_options *opts);

/**
 * Verify the root at `root`, as berth_store_fsck() does: every pool blob's bytes against its
 * digest (each inode once), every repository's index.json, every manifest and what it
 * references. Without `repair` the root is opened read-only (beside a live server); with
 * `repair` it takes the root's lock (BERTH_EBUSY while a server holds it), moves a corrupt
 * pool blob to ROOT/_berth/corrupt/ and unlinks corrupt links from repositories.
 * @param cb     called per problem; may be NULL
 * @param stats  receives the counts; may be NULL
 * @return 0 when the check ran (problems go to `cb` and `stats`), BERTH_ENOTFOUND (no root),
 *         BERTH_EBUSY, BERTH_EIO, BERTH_ENOMEM
 */
int berth_fs_fsck(const char *root, bool repair, berth_fsck_cb cb, void *payload,
                  berth_fsck_stats *stats);

/**
 * berth_fs_fsck() on the root of an open fs metadata backend (berth_fs_backends_open): with
 * `repair`, the backend must have been opened for writing (holding the root's lock).
 */
int berth_fs_fsck_backend(berth_meta_backend *meta, bool repair, berth_fsck_cb cb, void *payload,
                          berth_fsck_stats *stats);

/** berth_fs_du() on the root of an open fs metadata backend. */
int berth_fs_du_backend(berth_meta_backend *meta, berth_du_cb cb, void *payload,
                        uint64_t *total_out);

/**
 * Space used per repository of the root at `root` (opened read-only), in catalog order, as
 * berth_store_du(): a blob linked from more than one repository is shared.
 * @param total_out  receives the bytes of the pool (every blob once); may be NULL
 * @return 0, BERTH_ENOTFOUND (no root), BERTH_EIO, BERTH_ENOMEM
 */
int berth_fs_du(const char *root, berth_du_cb cb, void *payload, uint64_t *total_out);

/**
 * The bytes and the number of blobs of the pool of the root at `root` (opened read-only), as
 * berth_store_usage(): one directory walk, no reads.
 * @return 0, BERTH_ENOTFOUND (no root), BERTH_EIO
 */
int berth_fs_usage(const char *root, uint64_t *bytes_out, uint64_t *blobs_out);

#endif
