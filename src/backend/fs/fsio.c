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
