/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: filesystem primitives: durable writes (temporary file, fsync, rename, fsync of the
 * directory), whole-file reads, links, mkdir -p, rm -r. Used by the store and by the client's OCI
 * layout end. Messages of read and directory failures name no path (the log has it), so that the
 * store can hand them to registry clients; callers that may show paths prefix them. */
#ifndef BERTH_BASE_FS_H
#define BERTH_BASE_FS_H

#include <berth/buf.h>

/** mkdir -p (mode 0755). @return 0, BERTH_ENOSPACE (full disk) or BERTH_EIO */
int berth__fs_mkdirs(const char *path);

/** fsync a directory, so that entries made in it are durable. @return 0 or BERTH_EIO */
int berth__fs_fsync_dir(const char *dir);

/** fsync the directory holding `path`. @return 0 or BERTH_EIO */
int berth__fs_fsync_parent(const char *path);

/**
 * Create a new temporary file `dir/<prefix>XXXXXX` (mkstemp, mode 0600 until committed) to be
 * written and then passed to berth__fs_commit(). `dir` must be on the filesystem of the final
 * place. @param fd_out receives the descriptor @param path_out receives the path (appended)
 * @return 0, BERTH_ENOMEM or BERTH_EIO
 */
int berth__fs_tmpfile(int *fd_out, berth_buf *path_out, const char *dir, const char *prefix);

/**
 * Write all `len` bytes of `data` to `fd` (short writes and EINTR retried); `path` is for the
 * log. @return 0, BERTH_ENOSPACE (full disk, quota, file size limit) or BERTH_EIO
 */
int berth__fs_write_all(int fd, const char *path, const void *data, size_t len);

/**
 * Put the temporary file `tmp` (open as `fd`, completely written) at `dst`, durably: mode 0644,
 * fsync of the file when `sync`, close, rename over `dst` (atomic: a reader sees the old file or
 * the new, whole), fsync of dst's directory when `sync`. `fd` is closed in every case and `tmp`
 * removed when it was not renamed. @return 0 or BERTH_EIO
 */
int berth__fs_commit(int fd, const char *tmp, const char *dst, bool sync);

/**
 * Replace `dst` with `data` atomically: berth__fs_tmpfile() in `tmpdir` (same filesystem,
 * prefix `write.`), berth__fs_write_all(), berth__fs_commit().
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

#endif
