/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: filesystem primitives of the store (durable writes, links, paths of names). */
#ifndef BERTH_STORE_FS_H
#define BERTH_STORE_FS_H

#include <berth/buf.h>

/** mkdir -p. @return 0 or BERTH_EIO */
int berth__fs_mkdirs(const char *path);

/** fsync a directory, so that entries made in it are durable. @return 0 or BERTH_EIO */
int berth__fs_fsync_dir(const char *dir);

/** fsync the directory holding `path`. @return 0 or BERTH_EIO */
int berth__fs_fsync_parent(const char *path);

/**
 * Replace `dst` with `data` atomically: a temporary file in `tmpdir` (same filesystem), fsync
 * when `sync`, rename over `dst`, fsync of dst's directory when `sync`.
 * @return 0 or BERTH_EIO
 */
int berth__fs_write_atomic(const char *tmpdir, const char *dst, const void *data, size_t len,
                           bool sync);

/** Read a whole file of at most `max` bytes. @return 0, BERTH_ENOTFOUND, BERTH_ETOOBIG, BERTH_EIO
 */
int berth__fs_read_file(berth_buf *out, const char *path, size_t max);

/**
 * Hard-link `src` to `dst`. An existing `dst` counts as success.
 * @return 0; BERTH_ENOTFOUND when `src` does not exist; BERTH_EIO
 */
int berth__fs_link(const char *src, const char *dst);

/** Remove a directory tree (or a file); a missing path is fine. @return 0 or BERTH_EIO */
int berth__fs_rmtree(const char *path);

/**
 * The directory (relative to the store root) of repository `name`: its components, with
 * those that collide with an OCI layout entry (`blobs`, `index.json`, `oci-layout`) prefixed
 * by '_'. No valid name starts a component with '_', so no two names, and no name and layout
 * entry, share a path. @return 0 or BERTH_ENOMEM
 */
int berth__fs_repo_path(berth_buf *out, const char *name);

/** True when a directory entry is one that berth__fs_repo_path() escapes ('_' + reserved). */
bool berth__fs_is_escaped(const char *entry);

/** True when a directory entry is an OCI layout entry (`blobs`, `index.json`, `oci-layout`). */
bool berth__fs_is_layout_entry(const char *entry);

struct stat;

/** Called for each blob file: its path, its digest text (`alg:hex`) and its lstat. */
typedef int (*berth__blob_visit)(const char *path, const char *digest, const struct stat *st,
                                 void *payload);

/**
 * Visit every regular file `<blobs_dir>/<alg>/<name>` for the supported algorithms (a missing
 * directory has none). A non-zero return from `visit` stops the walk and is returned.
 */
int berth__fs_each_blob(const char *blobs_dir, berth__blob_visit visit, void *payload);

#endif
