/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's directory tree (moved out of the filesystem primitives, which are now
 * base/fs.c). A repository name maps to a directory component by component; a component equal
 * to an OCI layout entry gets a leading '_', so no name lands on a layout entry.
 */
#include "store/fs/tree.h"

#include <berth/digest.h>
#include <berth/errors.h>

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char *const reserved[] = {"blobs", "index.json", "oci-layout"};

bool berth__fs_is_layout_entry(const char *entry)
{
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
        if (strcmp(entry, reserved[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool berth__fs_is_escaped(const char *entry)
{
    return entry[0] == '_' && berth__fs_is_layout_entry(entry + 1);
}

int berth__fs_repo_path(berth_buf *out, const char *name)
{
    const char *p = name;
    int rc = 0;

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
        if (rc == 0 && berth__fs_is_layout_entry(comp)) {
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

int berth__fs_each_blob(const char *blobs_dir, berth__blob_visit visit, void *payload)
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
            char path[4096 + 256], digest[300];
            struct stat st;
            if (e->d_name[0] == '.') {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            snprintf(digest, sizeof(digest), "%s:%s", name, e->d_name);
            if (lstat(path, &st) == 0 && S_ISREG(st.st_mode)) {
                rc = visit(path, digest, &st, payload);
            }
        }
        closedir(d);
    }
    return rc;
}
