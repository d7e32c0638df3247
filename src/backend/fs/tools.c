/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Operator tools of the fs backends, which only make sense on a directory: fsck, du, usage
 * (moved from the store's fsck.c). Each opens the root itself: read-only beside a live server,
 * or, for fsck's repairs, holding the root's lock.
 *
 * fsck hashes every pool blob once and remembers the verdict by inode, so that the links of a
 * blob in many repositories cost one read; a repository link that is not the pool's inode is
 * hashed on its own. Then each repository's index.json and manifests are read, and what each
 * manifest references is looked for in the repository.
 */
#include "backend/fs/fs_internal.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The root and its metadata backend, opened for a tool. */
typedef struct tool {
    berth__fsb_root *root;
    berth_meta_backend *meta;
} tool;

static int tool_open(tool *t, const char *path, bool write)
{
    berth_fs_options opts = {true, write, !write, 0};
    struct stat st;
    berth_buf internal = BERTH_BUF_INIT;
    int rc;

    memset(t, 0, sizeof(*t));
    rc = berth_buf_printf(&internal, "%s/_berth", path);
    if (rc == 0 && (stat(internal.ptr, &st) != 0 || !S_ISDIR(st.st_mode))) {
        rc = berth_error_set(BERTH_ENOTFOUND, "not a berth root");
    }
    berth_buf_dispose(&internal);
    if (rc == 0) {
        rc = berth__fsb_root_open(&t->root, path, &opts);
    }
    if (rc == 0) {
        rc = berth__fsb_meta_new(&t->meta, t->root);
    }
    if (rc < 0) {
        berth__fsb_root_unref(t->root);
        t->root = NULL;
    }
    return rc;
}

static void tool_close(tool *t)
{
    if (t->meta) {
        t->meta->free(t->meta);
    }
    berth__fsb_root_unref(t->root);
}

/* ---- fsck ------------------------------------------------------------------------------------ */

typedef struct fsck_run {
    berth__fsb_root *root;
    bool repair;
    berth_fsck_cb cb;
    void *payload;
    berth_fsck_stats *stats;
    berth__htab inodes; /* "dev:ino" -> verdict (&ok or &bad) */
    char **keys;
    size_t nkeys, keys_cap;
} fsck_run;

static char verdict_ok, verdict_bad;

static void problem(fsck_run *f, berth_fsck_kind kind, const char *repo_name, const char *digest,
                    const char *detail)
{
    f->stats->problems++;
    if (f->cb) {
        f->cb(kind, repo_name, digest, detail, f->payload);
    }
}

static int remember(fsck_run *f, const struct stat *st, bool ok)
{
    char key[64], *copy, **keys;
    snprintf(key, sizeof(key), "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino);
    if (berth__htab_get(&f->inodes, key)) {
        return 0;
    }
    copy = strdup(key);
    if (!copy) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (f->nkeys == f->keys_cap) {
        size_t cap = f->keys_cap ? f->keys_cap * 2 : 256;
        keys = realloc(f->keys, cap * sizeof(*keys));
        if (!keys) {
            free(copy);
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        f->keys = keys;
        f->keys_cap = cap;
    }
    f->keys[f->nkeys++] = copy;
    return berth__htab_put(&f->inodes, copy, ok ? &verdict_ok : &verdict_bad);
}

static const char *known(fsck_run *f, const struct stat *st)
{
    char key[64];
    snprintf(key, sizeof(key), "%llu:%llu", (unsigned long long)st->st_dev,
             (unsigned long long)st->st_ino);
    return berth__htab_get(&f->inodes, key);
}

/* Hash one file and compare with the digest it is stored under. */
static bool verify(fsck_run *f, const char *path, const berth_digest *want, const struct stat *st,
                   char *detail, size_t detail_len)
{
    berth_digest got;
    uint64_t size = 0;

    if (berth_digest_file(&got, want->alg, path, &size) < 0) {
        snprintf(detail, detail_len, "%s", berth_error_last());
        return false;
    }
    f->stats->blobs_checked++;
    f->stats->bytes_checked += size;
    if (!berth_digest_equal(want, &got) || size != (uint64_t)st->st_size) {
        snprintf(detail, detail_len, "content hashes to %s", got.str);
        return false;
    }
    return true;
}

static int check_pool_blob(const char *path, const berth_digest *digest, const struct stat *st,
                           void *payload)
{
    fsck_run *f = payload;
    char detail[512];
    bool ok = verify(f, path, digest, st, detail, sizeof(detail));
    if (!ok) {
        problem(f, BERTH_FSCK_CORRUPT_BLOB, NULL, digest->str, detail);
        if (f->repair) {
            char aside[4096];
            snprintf(aside, sizeof(aside), "%s/corrupt", f->root->internal);
            berth__fs_mkdirs(aside);
            snprintf(aside, sizeof(aside), "%s/corrupt/%s", f->root->internal, digest->str);
            if (rename(path, aside) == 0) {
                f->stats->repaired++;
            }
        }
    }
    return remember(f, st, ok);
}

typedef struct repo_ctx {
    fsck_run *f;
    berth__fsb_repo *r;
} repo_ctx;

static int check_repo_blob(const char *path, const berth_digest *digest, const struct stat *st,
                           void *payload)
{
    fsck_run *f = ((repo_ctx *)payload)->f;
    berth__fsb_repo *r = ((repo_ctx *)payload)->r;
    const char *v = known(f, st);
    char detail[512] = "corrupt (the pool copy is)";
    bool ok = v ? v == &verdict_ok : verify(f, path, digest, st, detail, sizeof(detail));

    if (!v) {
        int rc = remember(f, st, ok);
        if (rc < 0) {
            return rc;
        }
    }
    if (!ok) {
        problem(f, BERTH_FSCK_CORRUPT_BLOB, r->name, digest->str, detail);
        if (f->repair && unlink(path) == 0) {
            f->stats->repaired += v ? 0 : 1;
        }
    }
    return 0;
}

static void check_manifest(fsck_run *f, berth__fsb_repo *r, berth__fsb_manifest *m)
{
    berth_document_info *info = NULL;
    berth_buf path = BERTH_BUF_INIT, bytes = BERTH_BUF_INIT;
    char detail[600];

    f->stats->manifests_checked++;
    if (berth__fsb_read_manifest(&bytes, r, &m->digest) < 0 ||
        berth_document_inspect(&info, m->media_type, bytes.ptr, bytes.len) < 0) {
        problem(f, BERTH_FSCK_BAD_MANIFEST, r->name, m->digest.str, berth_error_last());
        goto out;
    }
    for (size_t i = 0; i < info->nrefs; i++) {
        const berth_descriptor *d = &info->refs[i];
        struct stat st;
        bool index = berth_document_kind_is_index(info->kind);
        const char *v;
        if (!index && i > 0 && d->media_type &&
            (strstr(d->media_type, ".nondistributable.") || strstr(d->media_type, ".foreign."))) {
            continue;
        }
        berth_buf_clear(&path);
        if (berth__fsb_blob_path(&path, r->dir, &d->digest) < 0) {
            break;
        }
        v = stat(path.ptr, &st) == 0 ? known(f, &st) : NULL;
        if (!v && m->sparse) {
            continue; /* accepted without it (sparse_repositories) */
        }
        if (!v || v == &verdict_bad) {
            snprintf(detail, sizeof(detail), "manifest %s references %s %s, which is %s",
                     m->digest.str,
                     index    ? "manifest"
                     : i == 0 ? "config"
                              : "layer",
                     d->digest.str, v ? "corrupt" : "missing");
            problem(f, BERTH_FSCK_MISSING_BLOB, r->name, d->digest.str, detail);
        }
    }
out:
    berth_document_info_free(info);
    berth_buf_dispose(&path);
    berth_buf_dispose(&bytes);
}

static void check_manifest_cb(void *value, void *payload)
{
    repo_ctx *ctx = payload;
    check_manifest(ctx->f, ctx->r, value);
}

static int check_repo(berth__fsb_repo *r, berth__fsb_cache *cache, void *payload)
{
    fsck_run *f = payload;
    char blobs[4096];
    repo_ctx ctx = {f, r};
    int rc;

    pthread_rwlock_wrlock(&r->lock);
    snprintf(blobs, sizeof(blobs), "%s/blobs", r->dir);
    rc = berth__fsb_each_blob(blobs, check_repo_blob, &ctx);
    if (rc == 0 && !r->loaded && berth__fsb_repo_load(r, cache) < 0) {
        problem(f, BERTH_FSCK_BAD_INDEX, r->name, NULL, berth_error_last());
    } else if (rc == 0) {
        berth__htab_foreach(&r->manifests, check_manifest_cb, &ctx);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int berth_fs_fsck(const char *root, bool repair, berth_fsck_cb cb, void *payload,
                  berth_fsck_stats *stats)
{
    tool t;
    int rc;

    berth_error_clear();
    rc = tool_open(&t, root, repair);
    if (rc < 0) {
        return rc;
    }
    rc = berth_fs_fsck_backend(t.meta, repair, cb, payload, stats);
    tool_close(&t);
    return rc;
}

int berth_fs_fsck_backend(berth_meta_backend *meta, bool repair, berth_fsck_cb cb, void *payload,
                          berth_fsck_stats *stats)
{
    berth_fsck_stats local;
    fsck_run f;
    tool t = {berth__fsb_meta_root(meta), meta};
    int rc;

    berth_error_clear();
    memset(&f, 0, sizeof(f));
    f.root = t.root;
    f.repair = repair;
    f.cb = cb;
    f.payload = payload;
    f.stats = stats ? stats : &local;
    memset(f.stats, 0, sizeof(*f.stats));
    rc = berth__fsb_each_blob(t.root->pool, check_pool_blob, &f);
    if (rc == 0) {
        rc = berth__fsb_meta_each_repo(t.meta, check_repo, &f);
    }
    for (size_t i = 0; i < f.nkeys; i++) {
        free(f.keys[i]);
    }
    free(f.keys);
    berth__htab_dispose(&f.inodes);
    return rc;
}

/* ---- du, usage ----------------------------------------------------------------------------- */

typedef struct du_ctx {
    uint64_t exclusive, shared, blobs;
} du_ctx;

static int du_blob(const char *path, const berth_digest *digest, const struct stat *st,
                   void *payload)
{
    du_ctx *ctx = payload;
    (void)path;
    (void)digest;
    ctx->blobs++;
    /* the pool holds one link, this repository another: more means others share it */
    if (st->st_nlink > 2) {
        ctx->shared += (uint64_t)st->st_size;
    } else {
        ctx->exclusive += (uint64_t)st->st_size;
    }
    return 0;
}

typedef struct du_run {
    berth_du_cb cb;
    void *payload;
} du_run;

static int du_repo(berth__fsb_repo *r, berth__fsb_cache *cache, void *payload)
{
    du_run *run = payload;
    du_ctx ctx = {0, 0, 0};
    char blobs[4096];
    int rc;

    (void)cache;
    snprintf(blobs, sizeof(blobs), "%s/blobs", r->dir);
    rc = berth__fsb_each_blob(blobs, du_blob, &ctx);
    if (rc == 0 && run->cb) {
        run->cb(r->name, ctx.exclusive, ctx.shared, ctx.blobs, run->payload);
    }
    return rc;
}

int berth_fs_du(const char *root, berth_du_cb cb, void *payload, uint64_t *total_out)
{
    tool t;
    int rc;

    berth_error_clear();
    rc = tool_open(&t, root, false);
    if (rc < 0) {
        return rc;
    }
    rc = berth_fs_du_backend(t.meta, cb, payload, total_out);
    tool_close(&t);
    return rc;
}

int berth_fs_du_backend(berth_meta_backend *meta, berth_du_cb cb, void *payload,
                        uint64_t *total_out)
{
    du_ctx total = {0, 0, 0};
    du_run run = {cb, payload};
    int rc;

    berth_error_clear();
    rc = berth__fsb_meta_each_repo(meta, du_repo, &run);
    if (rc == 0) {
        rc = berth__fsb_each_blob(berth__fsb_meta_root(meta)->pool, du_blob, &total);
    }
    if (rc == 0 && total_out) {
        *total_out = total.exclusive + total.shared;
    }
    return rc;
}

int berth_fs_usage(const char *root, uint64_t *bytes_out, uint64_t *blobs_out)
{
    du_ctx total = {0, 0, 0};
    berth_buf pool = BERTH_BUF_INIT;
    struct stat st;
    int rc;

    berth_error_clear();
    /* one walk of the pool: no need to scan the repositories */
    rc = berth_buf_printf(&pool, "%s/_berth/blobs", root);
    if (rc == 0 && (stat(pool.ptr, &st) != 0 || !S_ISDIR(st.st_mode))) {
        rc = berth_error_set(BERTH_ENOTFOUND, "not a berth root");
    }
    if (rc == 0) {
        rc = berth__fsb_each_blob(pool.ptr, du_blob, &total);
    }
    if (rc == 0) {
        *bytes_out = total.exclusive + total.shared;
        *blobs_out = total.blobs;
    }
    berth_buf_dispose(&pool);
    return rc;
}
