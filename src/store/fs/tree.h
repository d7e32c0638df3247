/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: the store's directory tree: where a repository lives, which entries are the OCI
 * layout's, and the walk over a blobs directory. The durable-write primitives are base/fs.h. */
#ifndef BERTH_STORE_FS_TREE_H
#define BERTH_STORE_FS_TREE_H

#include <berth/buf.h>

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
