/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Filesystem primitives of the fs backends (moved from the store, which no longer touches
 * files). Every durable write is: write a temporary file on the same
 * filesystem, fsync it, rename (or link) it into place, fsync the directory. A crash at any
 * point leaves either the old state or the new, plus temporary debris that startup removes.
 *
 * Error messages name no path (they reach registry clients); the path goes to the log.
 */
#include "backend/fs/fs_internal.h"

#include "base/log.h"

#include <berth/digest.h>
#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const reserved[] = {"blobs", "index.json", "oci-layout"};

/* The berth code of an errno: a full disk (or quota, or file size limit) is BERTH_ENOSPACE. */
int berth__fsb_code(int err)
{
    if (err == ENOENT || err == ENOTDIR) {
        return BERTH_ENOTFOUND;
    }
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? BERTH_ENOSPACE : BERTH_EIO;
}

int berth__fsb_io_error(const char *what, const char *path)
{
    int err = errno;
    berth__log(err == ENOENT ? BERTH_LOG_DEBUG : BERTH_LOG_WARN, "%s %s: %s", what, path,
               strerror(err));
    return berth_error_set(berth__fsb_code(err), "storage %s failed: %s", what, strerror(err));
}

/* A failure of the store's own files: never "not found", which callers would blame on the
   client (a staging directory that vanished is an I/O failure). */
static int write_error(const char *what, const char *path)
{
    int err = errno;
    berth__log(BERTH_LOG_WARN, "%s %s: %s", what, path, strerror(err));
    return berth_error_set(BERTH_EIO, "storage %s failed: %s", what, strerror(err));
}

int berth__fsb_mkdirs(const char *path)
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
                return berth__fsb_io_error("mkdir", tmp);
            }
            tmp[i] = c;
        }
    }
    return 0;
}

int berth__fsb_fsync_dir(const char *dir)
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

int berth__fsb_fsync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;

    if (n == 0 || n >= sizeof(dir)) {
        return berth__fsb_fsync_dir(n == 0 && slash ? "/" : ".");
    }
    memcpy(dir, path, n);
    dir[n] = '\0';
    return berth__fsb_fsync_dir(dir);
}

int berth__fsb_write_all(int fd, const void *data, size_t len)
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

int berth__fsb_write_atomic(const char *tmpdir, const char *dst, const void *data, size_t len,
                            bool sync)
{
    char tmp[4096];
    int fd, rc = 0;

    snprintf(tmp, sizeof(tmp), "%s/write.XXXXXX", tmpdir);
    fd = mkstemp(tmp);
    if (fd < 0) {
        return write_error("create", tmp);
    }
    if (berth__fsb_write_all(fd, data, len) != 0 || (sync && fsync(fd) != 0)) {
        int err = errno;
        rc = write_error("write", tmp);
        if (berth__fsb_code(err) == BERTH_ENOSPACE) {
            rc = berth_error_set(BERTH_ENOSPACE, "storage write failed: %s", strerror(err));
        }
        close(fd);
        unlink(tmp);
        return rc;
    }
    fchmod(fd, 0644);
    close(fd);
    if (rename(tmp, dst) != 0) {
        rc = write_error("rename to", dst);
        unlink(tmp);
        return rc;
    }
    return sync ? berth__fsb_fsync_parent(dst) : 0;
}

int berth__fsb_read_file(berth_buf *out, const char *path, size_t max)
{
    struct stat st;
    int rc = 0, fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        return berth__fsb_io_error("open", path);
    }
    if (fstat(fd, &st) != 0) {
        rc = berth__fsb_io_error("stat", path);
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
            rc = berth__fsb_io_error("read", path);
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

int berth__fsb_link(const char *src, const char *dst)
{
    if (link(src, dst) == 0 || errno == EEXIST) {
        return 0;
    }
    return berth__fsb_io_error("link", dst);
}

int berth__fsb_rmtree(const char *path)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;
    int rc = 0;

    if (lstat(path, &st) != 0) {
        return errno == ENOENT ? 0 : berth__fsb_io_error("stat", path);
    }
    if (!S_ISDIR(st.st_mode)) {
        return unlink(path) == 0 || errno == ENOENT ? 0 : berth__fsb_io_error("unlink", path);
    }
    dir = opendir(path);
    if (!dir) {
        return berth__fsb_io_error("opendir", path);
    }
    while ((e = readdir(dir)) != NULL) {
        char child[4096];
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        if (berth__fsb_rmtree(child) < 0) {
            rc = BERTH_EIO;
        }
    }
    closedir(dir);
    if (rmdir(path) != 0 && errno != ENOENT) {
        rc = berth__fsb_io_error("rmdir", path);
    }
    return rc;
}

bool berth__fsb_is_layout_entry(const char *entry)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcmp(entry, reserved[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool berth__fsb_is_escaped(const char *entry)
{
    return entry[0] == '_' && berth__fsb_is_layout_entry(entry + 1);
}

int berth__fsb_repo_path(berth_buf *out, const char *name)
{
    const char *p = name;
    int rc = berth__fsb_check_name(name);

    if (rc < 0) {
        return rc;
    }
    while (*p && rc == 0) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char comp[256];

        if (n >= sizeof(comp)) {
            return berth_error_set(BERTH_EINVALID, "name component too long");
        }
        memcpy(comp, p, n);
        comp[n] = '\0';
        if (out->len > 0) {
            rc = berth_buf_puts(out, "/");
        }
        if (rc == 0 && berth__fsb_is_layout_entry(comp)) {
            rc = berth_buf_puts(out, "_");
        }
        if (rc == 0) {
            rc = berth_buf_puts(out, comp);
        }
        p += n;
        if (*p == '/') {
            p++;
        }
    }
    return rc;
}

int berth__fsb_each_blob(const char *blobs_dir, berth__fsb_blob_visit visit, void *payload)
{
    int rc = 0;
    for (int alg = BERTH_DIGEST_SHA256; alg <= BERTH_DIGEST_SHA512 && rc == 0; alg++) {
        const char *name = berth_digest_alg_name((berth_digest_alg)alg);
        char dir[4096];
        DIR *d;
        struct dirent *e;

        if (snprintf(dir, sizeof(dir), "%s/%s", blobs_dir, name) >= (int)sizeof(dir)) {
            continue;
        }
        d = opendir(dir);
        if (!d) {
            continue;
        }
        while (rc == 0 && (e = readdir(d)) != NULL) {
            char path[4096 + 256], text[300];
            berth_digest digest;
            struct stat st;
            if (e->d_name[0] == '.') {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            snprintf(text, sizeof(text), "%s:%s", name, e->d_name);
            if (berth_digest_parse_str(&digest, text) < 0) {
                berth_error_clear(); /* debris (a temporary name), not a blob */
                continue;
            }
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = visit(path, &digest, &st, payload);
            }
        }
        closedir(d);
    }
    return rc;
}

/* The store's own guard, kept: names reach the backend validated (berth_name_validate), but
   whatever reaches it, no path may leave ROOT. */
int berth__fsb_check_name(const char *name)
{
    const char *p = name;
    size_t len = 0;

    if (!name || !*name) {
        return berth_error_set(BERTH_EINVALID, "empty repository name");
    }
    while (*p) {
        char c = *p;
        bool start = (p == name || p[-1] == '/');
        if (start && !((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
            return berth_error_set(BERTH_EINVALID, "invalid repository name");
        }
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == '/')) {
            return berth_error_set(BERTH_EINVALID, "invalid repository name");
        }
        p++;
        len++;
    }
    if (p[-1] == '/' || len > 255) {
        return berth_error_set(BERTH_EINVALID, "invalid repository name");
    }
    return 0;
}
