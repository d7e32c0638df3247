/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Checks of the store's soundness (fsck) and of its use of space (du).
 *
 * fsck hashes every pool blob once and remembers the verdict by inode, so that the links of a
 * blob in many repositories cost one read; a repository link that is not the pool's inode is
 * hashed on its own. Then each repository's index.json and manifests are read, and what each
 * manifest references is looked for in the repository.
 */
#include "store/store_internal.h"

#include "base/fs.h"
#include "store/fs/tree.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fsck_run {
    berth_store *s;
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
static bool verify(fsck_run *f, const char *path, const char *digest_text, const struct stat *st,
                   char *detail, size_t detail_len)
{
    berth_digest want, got;
    uint64_t size = 0;

    if (berth_digest_parse_str(&want, digest_text) < 0) {
        snprintf(detail, detail_len, "not a digest name: %s", berth_error_last());
        return false;
    }
    if (berth_digest_file(&got, want.alg, path, &size) < 0) {
        snprintf(detail, detail_len, "%s", berth_error_last());
        return false;
    }
    f->stats->blobs_checked++;
    f->stats->bytes_checked += size;
    if (!berth_digest_equal(&want, &got) || size != (uint64_t)st->st_size) {
        snprintf(detail, detail_len, "content hashes to %s", got.str);
        return false;
    }
    return true;
}

static int check_pool_blob(const char *path, const char *digest, const struct stat *st,
                           void *payload)
{
    fsck_run *f = payload;
    char detail[512];
    bool ok = verify(f, path, digest, st, detail, sizeof(detail));
    if (!ok) {
        problem(f, BERTH_FSCK_CORRUPT_BLOB, NULL, digest, detail);
        if (f->repair) {
            char aside[4096];
            snprintf(aside, sizeof(aside), "%s/corrupt", f->s->internal);
            berth__fs_mkdirs(aside);
            snprintf(aside, sizeof(aside), "%s/corrupt/%s", f->s->internal, digest);
            if (rename(path, aside) == 0) {
                f->stats->repaired++;
            }
        }
    }
    return remember(f, st, ok);
}

typedef struct repo_ctx {
    fsck_run *f;
    repo *r;
} repo_ctx;

static int check_repo_blob(const char *path, const char *digest, const struct stat *st,
                           void *payload)
{
    fsck_run *f = ((repo_ctx *)payload)->f;
    repo *r = ((repo_ctx *)payload)->r;
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
        problem(f, BERTH_FSCK_CORRUPT_BLOB, r->name, digest, detail);
        if (f->repair && unlink(path) == 0) {
            f->stats->repaired += v ? 0 : 1;
        }
    }
    return 0;
}

static void check_manifest(fsck_run *f, repo *r, manifest_entry *m)
{
    const cached_manifest *c = NULL;
    berth_document_info *info = NULL;
    berth_buf path = BERTH_BUF_INIT;
    char detail[600];

    f->stats->manifests_checked++;
    if (berth__repo_peek_bytes(&c, f->s, r, m) < 0 ||
        berth_document_inspect(&info, m->media_type, c->pub.data, c->pub.len) < 0) {
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
        if (berth__store_blob_path(&path, r->dir, &d->digest) < 0) {
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
    berth_manifest_release(c ? &c->pub : NULL);
    berth_document_info_free(info);
    berth_buf_dispose(&path);
}

static void check_manifest_cb(void *value, void *payload)
{
    repo_ctx *ctx = payload;
    check_manifest(ctx->f, ctx->r, value);
}

static int check_repo(fsck_run *f, repo *r)
{
    char blobs[4096];
    repo_ctx ctx = {f, r};
    int rc;

    pthread_rwlock_wrlock(&r->lock);
    snprintf(blobs, sizeof(blobs), "%s/blobs", r->dir);
    rc = berth__fs_each_blob(blobs, check_repo_blob, &ctx);
    if (rc == 0 && !r->loaded && berth__repo_load(f->s, r) < 0) {
        problem(f, BERTH_FSCK_BAD_INDEX, r->name, NULL, berth_error_last());
    } else if (rc == 0) {
        berth__htab_foreach(&r->manifests, check_manifest_cb, &ctx);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int berth_store_fsck(berth_store *s, bool repair, berth_fsck_cb cb, void *payload,
                     berth_fsck_stats *stats)
{
    berth_fsck_stats local;
    fsck_run f;
    repo **repos;
    size_t n = 0;
    int rc;

    berth_error_clear();
    if (repair && s->opts.read_only) {
        return berth_error_set(BERTH_EIO, "the store is open read-only");
    }
    memset(&f, 0, sizeof(f));
    f.s = s;
    f.repair = repair;
    f.cb = cb;
    f.payload = payload;
    f.stats = stats ? stats : &local;
    memset(f.stats, 0, sizeof(*f.stats));
    repos = berth__store_repos(s, &n);
    if (!repos) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = berth__fs_each_blob(s->pool, check_pool_blob, &f);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (repos[i]->on_disk) {
            rc = check_repo(&f, repos[i]);
        }
    }
    for (size_t i = 0; i < f.nkeys; i++) {
        free(f.keys[i]);
    }
    free(f.keys);
    berth__htab_dispose(&f.inodes);
    free(repos);
    return rc;
}

typedef struct du_ctx {
    uint64_t exclusive, shared, blobs;
} du_ctx;

static int du_blob(const char *path, const char *digest, const struct stat *st, void *payload)
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

int berth_store_du(berth_store *s, berth_du_cb cb, void *payload, uint64_t *total_out)
{
    du_ctx total = {0, 0, 0};
    repo **repos;
    size_t n = 0;
    int rc = 0;

    berth_error_clear();
    repos = berth__store_repos(s, &n);
    if (!repos) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        du_ctx ctx = {0, 0, 0};
        char blobs[4096];
        snprintf(blobs, sizeof(blobs), "%s/blobs", repos[i]->dir);
        rc = berth__fs_each_blob(blobs, du_blob, &ctx);
        if (rc == 0 && cb) {
            cb(repos[i]->name, ctx.exclusive, ctx.shared, ctx.blobs, payload);
        }
    }
    if (rc == 0) {
        rc = berth__fs_each_blob(s->pool, du_blob, &total);
    }
    if (rc == 0 && total_out) {
        *total_out = total.exclusive + total.shared;
    }
    free(repos);
    return rc;
}

int berth_store_usage(berth_store *s, uint64_t *bytes_out, uint64_t *blobs_out)
{
    du_ctx total = {0, 0, 0};
    int rc;

    berth_error_clear();
    rc = berth__fs_each_blob(s->pool, du_blob, &total);
    if (rc == 0) {
        *bytes_out = total.exclusive + total.shared;
        *blobs_out = total.blobs;
    }
    return rc;
}
