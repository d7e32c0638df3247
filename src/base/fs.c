/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Filesystem primitives. Every durable write is: write a temporary file on the same
 * filesystem, fsync it, rename (or link) it into place, fsync the directory. A crash at any
 * point leaves either the old state or the new, plus temporary debris that startup removes.
 *
 * Used by the store (whose tmpdir is ROOT/_berth/tmp, emptied at startup) and by the client's
 * OCI layout end (which stages next to the target, as hidden `.tmp-` files).
 *
 * Error messages of reads and directories name no path (they reach registry clients); the path
 * goes to the log. Failures of the store's own staging writes are BERTH_EIO with the path (the
 * server logs an EIO's message and answers a plain 500).
 */
#include "base/fs.h"

#include "base/log.h"

#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The berth code of an errno: a full disk (or quota, or file size limit) is BERTH_ENOSPACE. */
static int code_of(int err)
{
    if (err == ENOENT) {
        return BERTH_ENOTFOUND;
    }
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? BERTH_ENOSPACE : BERTH_EIO;
}

static int io_error(const char *what, const char *path)
{
    int err = errno;
    berth__log(err == ENOENT ? BERTH_LOG_DEBUG : BERTH_LOG_WARN, "%s %s: %s", what, path,
               strerror(err));
    return berth_error_set(code_of(err), "storage %s failed: %s", what, strerror(err));
}

/* A failure of the store's own files: never "not found", which callers would blame on the
   client (a staging directory that vanished is an I/O failure). */
static int write_error(const char *what, const char *path)
{
    int err = errno;
    /* messages may reach clients: the path goes to the log only */
    berth__log(BERTH_LOG_WARN, "%s %s: %s", what, path, strerror(err));
    return berth_error_set(BERTH_EIO, "storage %s failed: %s", what, strerror(err));
}

int berth__fs_mkdirs(const char *path)
{
    char tmp[4096];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(tmp)) {
        berth__log(BERTH_LOG_WARN, "path too long: %s", path);
        return berth_error_set(BERTH_EIO, "storage path too long");
    }
    memcpy(tmp, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (tmp[i] == '/' || tmp[i] == '\0') {
            char c = tmp[i];
            tmp[i] = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return io_error("mkdir", tmp);
            }
            tmp[i] = c;
        }
    }
    return 0;
}

int berth__fs_fsync_dir(const char *dir)
{
    int rc = 0, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return write_error("open", dir);
    }
    if (fsync(fd) != 0) {
        rc = write_error("fsync", dir);
    }
    close(fd);
    return rc;
}

int berth__fs_fsync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;

    if (n == 0 || n >= sizeof(dir)) {
        return berth__fs_fsync_dir(n == 0 && slash ? "/" : ".");
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return berth__fs_fsync_dir(dir);
}

static int write_loop(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int berth__fs_write_all(int fd, const char *path, const void *data, size_t len)
{
    return write_loop(fd, data, len) == 0 ? 0 : io_error("write", path);
}

int berth__fs_tmpfile(int *fd_out, berth_buf *path_out, const char *dir, const char *prefix)
{
    size_t start = path_out->len;
    int rc;

    *fd_out = -1;
    if ((rc = berth_buf_printf(path_out, "%s/%sXXXXXX", dir, prefix)) < 0) {
        return rc;
    }
    if ((*fd_out = mkstemp(path_out->ptr + start)) < 0) {
        return write_error("create", path_out->ptr + start);
    }
    return 0;
}

int berth__fs_commit(int fd, const char *tmp, const char *dst, bool sync)
{
    int rc;

    /* the mode before the fsync, so that it is as durable as the bytes */
    if (fchmod(fd, 0644) != 0 || (sync && fsync(fd) != 0)) {
        rc = write_error("write", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, dst) != 0) {
        rc = write_error("rename to", dst);
        unlink(tmp);
        return rc;
    }
    return sync ? berth__fs_fsync_parent(dst) : 0;
}

int berth__fs_write_atomic(const char *tmpdir, const char *dst, const void *data, size_t len,
                           bool sync)
{
    berth_buf tmp = BERTH_BUF_INIT;
    int fd = -1, rc;

    if ((rc = berth__fs_tmpfile(&fd, &tmp, tmpdir, "write.")) < 0) {
        goto out;
    }
    if (write_loop(fd, data, len) != 0) {
        rc = write_error("write", tmp.ptr);
        close(fd);
        unlink(tmp.ptr);
        goto out;
    }
    rc = berth__fs_commit(fd, tmp.ptr, dst, sync);
out:
    berth_buf_dispose(&tmp);
    return rc;
}

int berth__fs_read_file(berth_buf *out, const char *path, size_t max)
{
    struct stat st;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return io_error("open", path);
    }
    if (fstat(fd, &st) != 0) {
        rc = io_error("stat", path);
        goto out;
    }
    if ((uint64_t)st.st_size > max) {
        berth__log(BERTH_LOG_WARN, "%s: over %zu bytes", path, max);
        rc = berth_error_set(BERTH_ETOOBIG, "stored file over %zu bytes", max);
        goto out;
    }
    rc = berth_buf_grow(out, (size_t)st.st_size);
    if (rc < 0) {
        goto out;
    }
    for (;;) {
        ssize_t n;
        rc = berth_buf_grow(out, 4096);
        if (rc < 0) {
            goto out;
        }
        n = read(fd, out->ptr + out->len, out->cap - out->len - 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = io_error("read", path);
            goto out;
        }
        if (n == 0) {
            break;
        }
        out->len += (size_t)n;
        out->ptr[out->len] = '\0';
        if (out->len > max) {
            berth__log(BERTH_LOG_WARN, "%s: over %zu bytes", path, max);
            rc = berth_error_set(BERTH_ETOOBIG, "stored file over %zu bytes", max);
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

int berth__fs_link(const char *src, const char *dst)
{
    if (link(src, dst) == 0 || errno == EEXIST) {
        return 0;
    }
    return io_error("link", dst);
}

int berth__fs_rmtree(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;
    int rc = 0;

    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : io_error("stat", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) == 0 || errno == ENOENT ? 0 : io_error("unlink", path);
    }
    dir = opendir(path);
    if (!dir) {
        return io_error("opendir", path);
    }
    while ((e = readdir(dir)) != NULL) {
        char child[4096];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (berth__fs_rmtree(child) < 0) {
            rc = BERTH_EIO;
        }
    }
    closedir(dir);
    if (rmdir(path) != 0 && errno != ENOENT) {
        rc = io_error("rmdir", path);
    }
    return rc;
}
