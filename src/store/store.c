/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: registry semantics over OCI image layouts on disk.
 *
 *   ROOT/_berth/blobs/<alg>/<hex>     the pool: one copy of every blob
 *   ROOT/_berth/uploads/<id>.<r>.<o>  upload sessions: one file each (upload.c)
 *   ROOT/_berth/tmp/                  staging for atomic writes; emptied at startup
 *   ROOT/<name>/                      each repository, an OCI image layout: oci-layout,
 *                                     index.json, blobs/<alg>/<hex> (hard links to the pool)
 *
 * Repository names map to directories by berth__fs_repo_path(). A blob becomes visible in a
 * repository only by link(2) from the pool after it was verified and fsynced, so a reader
 * sees all of it or nothing. Repositories are known from a scan at open and kept in memory;
 * each one loads its tags and manifests on first use (repo.c).
 *
 * Lock order: store->lock, then a repository's lock; never the other way round.
 */
#include "store/store_internal.h"

#include "base/log.h"
#include "base/fs.h"
#include "store/fs/tree.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024 * 1024)

static const char empty_index[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":[]}";
static const char layout_header[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

void berth_store_options_init(berth_store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->manifest_max = BERTH_MANIFEST_MAX_DEFAULT;
    opts->cache_bytes = 8 * MIB;
    opts->upload_ttl_seconds = 3600;
    opts->upload_sessions_max = 4096;
    opts->upload_sessions_per_repo = 256;
    opts->upload_sessions_per_owner = 128;
    opts->fsync = true;
    opts->lock = true;
}

/* A cheap guard against paths that escape the root; the server validates names fully. */
static int check_name(const char *name)
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

int berth__store_blob_path(berth_buf *out, const char *dir, const berth_digest *d)
{
    return berth_buf_printf(out, "%s/blobs/%s/%s", dir, berth_digest_alg_name(d->alg),
                            berth_digest_hex(d));
}

static char *join(const char *a, const char *b)
{
    berth_buf buf = BERTH_BUF_INIT;
    if (berth_buf_printf(&buf, "%s/%s", a, b) < 0) {
        berth_buf_dispose(&buf);
        return NULL;
    }
    return berth_buf_detach(&buf);
}

static repo *repo_new(berth_store *s, const char *name)
{
    repo *r = calloc(1, sizeof(*r));
    berth_buf dir = BERTH_BUF_INIT;

    if (!r || berth_buf_puts(&dir, s->root) < 0 || berth_buf_puts(&dir, "/") < 0 ||
        berth__fs_repo_path(&dir, name) < 0 || !(r->name = strdup(name))) {
        free(r ? r->name : NULL);
        free(r);
        berth_buf_dispose(&dir);
        return NULL;
    }
    r->dir = berth_buf_detach(&dir);
    pthread_rwlock_init(&r->lock, NULL);
    return r;
}

static int catalog_insert(berth_store *s, char *name)
{
    size_t lo = 0, hi = s->ncatalog;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(s->catalog[mid], name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (s->ncatalog == s->catalog_cap) {
        size_t cap = s->catalog_cap ? s->catalog_cap * 2 : 64;
        char **c = realloc(s->catalog, cap * sizeof(*c));
        if (!c) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        s->catalog = c;
        s->catalog_cap = cap;
    }
    memmove(s->catalog + lo + 1, s->catalog + lo, (s->ncatalog - lo) * sizeof(char *));
    s->catalog[lo] = name;
    s->ncatalog++;
    return 0;
}

/* Enter a repository into the table and the catalog (store->lock held). */
static int register_repo(berth_store *s, repo *r)
{
    int rc = berth__htab_put(&s->repos, r->name, r);
    if (rc == 0) {
        rc = catalog_insert(s, r->name);
        if (rc < 0) {
            berth__htab_remove(&s->repos, r->name);
        }
    }
    return rc;
}

/* Register a repository found on disk (store->lock held). */
static int add_repo(berth_store *s, const char *name)
{
    repo *r = repo_new(s, name);
    int rc;

    if (!r) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    r->on_disk = true;
    rc = register_repo(s, r);
    if (rc < 0) {
        berth__repo_free(r);
    }
    return rc;
}

/* Create the layout of a repository on disk: blobs/, oci-layout, then index.json last. */
static int create_layout(berth_store *s, repo *r)
{
    berth_buf path = BERTH_BUF_INIT;
    int rc;

    rc = berth_buf_printf(&path, "%s/blobs/sha256", r->dir);
    if (rc == 0) {
        rc = berth__fs_mkdirs(path.ptr);
    }
    berth_buf_clear(&path);
    if (rc == 0) {
        rc = berth_buf_printf(&path, "%s/oci-layout", r->dir);
    }
    if (rc == 0) {
        rc = berth__fs_write_atomic(s->tmp, path.ptr, layout_header, sizeof(layout_header) - 1,
                                    s->opts.fsync);
    }
    berth_buf_clear(&path);
    if (rc == 0) {
        rc = berth_buf_printf(&path, "%s/index.json", r->dir);
    }
    if (rc == 0) {
        rc = berth__fs_write_atomic(s->tmp, path.ptr, empty_index, sizeof(empty_index) - 1,
                                    s->opts.fsync);
    }
    if (rc == 0 && s->opts.fsync) {
        /* make the new directories themselves durable, up to the root */
        berth_buf_clear(&path);
        rc = berth_buf_puts(&path, r->dir);
        while (rc == 0 && path.len > strlen(s->root)) {
            char *slash = strrchr(path.ptr, '/');
            *slash = '\0';
            path.len = (size_t)(slash - path.ptr);
            rc = berth__fs_fsync_dir(path.ptr);
        }
    }
    if (rc < 0 && path.ptr) {
        /* no layout on disk that memory does not know of: without index.json, no repository */
        berth_buf_clear(&path);
        if (berth_buf_printf(&path, "%s/index.json", r->dir) == 0) {
            unlink(path.ptr);
        }
    }
    berth_buf_dispose(&path);
    if (rc == 0) {
        r->on_disk = true;
    }
    return rc;
}

int berth__store_repo(repo **out, berth_store *s, const char *name, bool create)
{
    repo *r, *fresh = NULL;
    int rc = check_name(name);

    if (rc < 0) {
        return rc;
    }
    pthread_mutex_lock(&s->lock);
    r = berth__htab_get(&s->repos, name);
    if (!r && !create) {
        rc = berth_error_set(BERTH_ENOTFOUND, "repository %s not known", name);
    } else if (!r && s->opts.read_only) {
        rc = berth_error_set(BERTH_EIO, "the store is open read-only");
    } else if (!r) {
        /* memory follows disk: the layout is made first, and only a repository that exists
           on disk enters the table and the catalog */
        fresh = repo_new(s, name);
        rc = fresh ? create_layout(s, fresh) : berth_error_set(BERTH_ENOMEM, "out of memory");
        if (rc == 0) {
            rc = register_repo(s, fresh);
        }
        if (rc == 0) {
            r = fresh;
            fresh = NULL;
        }
    }
    pthread_mutex_unlock(&s->lock);
    berth__repo_free(fresh);
    if (rc == 0) {
        *out = r;
    }
    return rc;
}

/* Walk the root for layouts: a directory with an index.json is a repository. */
static int scan(berth_store *s, berth_buf *dir, berth_buf *name)
{
    DIR *d = opendir(dir->ptr);
    struct dirent *e;
    size_t dlen = dir->len, nlen = name->len;
    int rc = 0;

    if (!d) {
        return 0;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        const char *entry = e->d_name;
        struct stat st;

        if (entry[0] == '.' || berth__fs_is_layout_entry(entry)) {
            continue;
        }
        if (entry[0] == '_' && !berth__fs_is_escaped(entry)) {
            continue; /* _berth, and anything else no name maps to */
        }
        rc = berth_buf_printf(dir, "/%s", entry);
        if (rc == 0 && name->len) {
            rc = berth_buf_puts(name, "/");
        }
        if (rc == 0) {
            rc = berth_buf_puts(name, entry[0] == '_' ? entry + 1 : entry);
        }
        if (rc == 0 && stat(dir->ptr, &st) == 0 && S_ISDIR(st.st_mode)) {
            size_t before = dir->len;
            rc = berth_buf_puts(dir, "/index.json");
            if (rc == 0 && access(dir->ptr, F_OK) == 0 && check_name(name->ptr) == 0) {
                rc = add_repo(s, name->ptr);
            }
            dir->len = before;
            dir->ptr[before] = '\0';
            if (rc == 0) {
                rc = scan(s, dir, name);
            }
        }
        dir->len = dlen;
        dir->ptr[dlen] = '\0';
        name->len = nlen;
        if (name->ptr) {
            name->ptr[nlen] = '\0';
        }
    }
    closedir(d);
    return rc;
}

int berth_store_open(berth_store **out, const char *root, const berth_store_options *opts)
{
    berth_store *s = calloc(1, sizeof(*s));
    berth_buf dir = BERTH_BUF_INIT, name = BERTH_BUF_INIT;
    int rc = 0;

    berth_error_clear();
    if (!s) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (opts) {
        s->opts = *opts;
    } else {
        berth_store_options_init(&s->opts);
    }
    if (!s->opts.manifest_max) {
        s->opts.manifest_max = BERTH_MANIFEST_MAX_DEFAULT;
    }
    if (!s->opts.cache_bytes) {
        s->opts.cache_bytes = 8 * MIB;
    }
    if (!s->opts.upload_ttl_seconds) {
        s->opts.upload_ttl_seconds = 3600;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->cache_lock, NULL);
    s->lock_fd = -1;
    s->root = strdup(root);
    s->internal = s->root ? join(s->root, "_berth") : NULL;
    s->pool = s->internal ? join(s->internal, "blobs") : NULL;
    s->uploads = s->internal ? join(s->internal, "uploads") : NULL;
    s->tmp = s->internal ? join(s->internal, "tmp") : NULL;
    if (!s->tmp) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (s->opts.read_only) {
        struct stat st;
        s->opts.lock = false;
        if (stat(s->internal, &st) != 0 || !S_ISDIR(st.st_mode)) {
            rc = berth_error_set(BERTH_ENOTFOUND, "%s: not a berth store", s->root);
            goto out;
        }
    } else if ((rc = berth__fs_mkdirs(s->internal)) < 0) {
        goto out;
    }
    if (s->opts.lock) {
        char *path = join(s->internal, "lock");
        s->lock_fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
        free(path);
        if (s->lock_fd < 0) {
            berth__log(BERTH_LOG_ERROR, "%s/lock: %s", s->internal, strerror(errno));
            rc = berth_error_set(BERTH_EIO, "cannot open the store's lock file: %s",
                                 strerror(errno));
            goto out;
        }
        if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = berth_error_set(BERTH_EBUSY, "the root is in use by another berth process");
            goto out;
        }
        /* staging debris of a crash goes (sessions stay): only the lock holder may, since a
           process beside a live server would pull files from under its writes */
        if ((rc = berth__fs_rmtree(s->tmp)) < 0) {
            goto out;
        }
    }
    if (!s->opts.read_only &&
        ((rc = berth__fs_mkdirs(s->tmp)) < 0 || (rc = berth__fs_mkdirs(s->uploads)) < 0)) {
        goto out;
    }
    for (int alg = BERTH_DIGEST_SHA256; !s->opts.read_only && alg <= BERTH_DIGEST_SHA512; alg++) {
        char *p = join(s->pool, berth_digest_alg_name((berth_digest_alg)alg));
        rc = p ? berth__fs_mkdirs(p) : berth_error_set(BERTH_ENOMEM, "out of memory");
        free(p);
        if (rc < 0) {
            goto out;
        }
    }
    rc = berth_buf_puts(&dir, s->root);
    if (rc == 0) {
        rc = berth_buf_grow(&name, 1);
    }
    if (rc == 0) {
        rc = scan(s, &dir, &name);
    }
    if (rc == 0) {
        rc = berth__uploads_scan(s);
    }
    if (rc == 0 && s->opts.lock) {
        /* only the one writer of the root reaps (a du beside a server does not) */
        rc = berth__uploads_gc(s, false, NULL);
    }
out:
    berth_buf_dispose(&dir);
    berth_buf_dispose(&name);
    if (rc < 0) {
        berth_store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void free_repo_cb(void *value, void *payload)
{
    (void)payload;
    berth__repo_free(value);
}

void berth_store_free(berth_store *s)
{
    if (!s) {
        return;
    }
    berth__uploads_free(s);
    berth__htab_foreach(&s->repos, free_repo_cb, NULL);
    berth__htab_dispose(&s->repos);
    free(s->catalog);
    if (s->lock_fd >= 0) {
        close(s->lock_fd); /* releases the flock */
    }
    pthread_mutex_destroy(&s->lock);
    pthread_mutex_destroy(&s->cache_lock);
    free(s->root);
    free(s->internal);
    free(s->pool);
    free(s->uploads);
    free(s->tmp);
    free(s);
}

repo **berth__store_repos(berth_store *s, size_t *n_out)
{
    repo **repos;
    pthread_mutex_lock(&s->lock);
    repos = calloc(s->ncatalog ? s->ncatalog : 1, sizeof(*repos));
    *n_out = 0;
    for (size_t i = 0; repos && i < s->ncatalog; i++) {
        repos[(*n_out)++] = berth__htab_get(&s->repos, s->catalog[i]);
    }
    pthread_mutex_unlock(&s->lock);
    return repos;
}

bool berth_store_repo_exists(berth_store *s, const char *name)
{
    bool exists;
    if (check_name(name) < 0) {
        return false;
    }
    pthread_mutex_lock(&s->lock);
    exists = berth__htab_get(&s->repos, name) != NULL;
    pthread_mutex_unlock(&s->lock);
    return exists;
}

/* ---- blobs -------------------------------------------------------------------------- */

/* A failed system call on a path: the path goes to the log, not into the message. */
static int io_failed(const char *what, const char *path)
{
    int err = errno;
    berth__log(BERTH_LOG_WARN, "%s %s: %s", what, path, strerror(err));
    return berth_error_set(BERTH_EIO, "storage %s failed: %s", what, strerror(err));
}

/* The path of a blob in a repository, computed from the name without any lock. */
static int repo_blob_path(berth_buf *out, berth_store *s, const char *name, const berth_digest *d)
{
    int rc = check_name(name);
    if (rc == 0) {
        rc = berth_buf_printf(out, "%s/", s->root);
    }
    if (rc == 0) {
        rc = berth__fs_repo_path(out, name);
    }
    if (rc == 0) {
        rc = berth_buf_printf(out, "/blobs/%s/%s", berth_digest_alg_name(d->alg),
                              berth_digest_hex(d));
    }
    return rc;
}

int berth_store_blob_open(berth_store *s, const char *repo_name, const berth_digest *digest,
                          int *fd_out, uint64_t *size_out)
{
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int fd = -1, rc = repo_blob_path(&path, s, repo_name, digest);

    if (rc < 0) {
        goto out;
    }
    fd = open(path.ptr, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo_name)
                 : io_failed("open", path.ptr);
        goto out;
    }
    *fd_out = fd;
    *size_out = (uint64_t)st.st_size;
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
    }
    berth_buf_dispose(&path);
    return rc;
}

int berth_store_blob_stat(berth_store *s, const char *repo_name, const berth_digest *digest,
                          uint64_t *size_out)
{
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int rc = repo_blob_path(&path, s, repo_name, digest);

    if (rc == 0 && stat(path.ptr, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo_name)
                 : io_failed("stat", path.ptr);
    }
    if (rc == 0) {
        *size_out = (uint64_t)st.st_size;
    }
    berth_buf_dispose(&path);
    return rc;
}

/* The last error as BERTH_EIO, prefixed: a failure of the store, whatever its code was. */
static int as_io_error(const char *prefix)
{
    char msg[512];
    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    return berth_error_set(BERTH_EIO, "%s%s", prefix, msg);
}

/* Writes are refused on a store opened read-only. */
static int writable(const berth_store *s)
{
    return s->opts.read_only ? berth_error_set(BERTH_EIO, "the store is open read-only") : 0;
}

static void gather_entry(void *value, void *payload)
{
    manifest_entry ***cursor = payload;
    *(*cursor)++ = value;
}

/*
 * Does a manifest of the repository other than `skip` name `d` as its config, a layer or an
 * index child? 1 (its digest in `by`), 0, or an error when a manifest cannot be read: then
 * nobody can tell, and the caller refuses. The subject is not content: it may be absent.
 * r->lock held for writing.
 */
static int referenced(berth_store *s, repo *r, const berth_digest *d, const manifest_entry *skip,
                      berth_digest *by)
{
    manifest_entry **all = calloc(r->manifests.count ? r->manifests.count : 1, sizeof(*all));
    manifest_entry **cursor = all;
    int rc = 0;

    if (!all) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    berth__htab_foreach(&r->manifests, gather_entry, &cursor);
    for (size_t i = 0; i < (size_t)(cursor - all) && rc == 0; i++) {
        const cached_manifest *c = NULL;
        berth_document_info *info = NULL;
        if (all[i] == skip) {
            continue;
        }
        rc = berth__repo_peek_bytes(&c, s, r, all[i]);
        if (rc == 0) {
            rc = berth_document_inspect(&info, all[i]->media_type, c->pub.data, c->pub.len);
            berth_manifest_release(&c->pub);
        }
        if (rc < 0) {
            berth_error_prefix("manifest %s of %s cannot be read, so what it references is "
                               "unknown: ",
                               all[i]->digest.str, r->name);
            rc = as_io_error("");
            break;
        }
        for (size_t k = 0; k < info->nrefs; k++) {
            if (berth_digest_equal(&info->refs[k].digest, d)) {
                *by = all[i]->digest;
                rc = 1;
                break;
            }
        }
        berth_document_info_free(info);
    }
    free(all);
    return rc;
}

/* Lock a repository with its state loaded, for reading or writing (defined below). */
static int lock_loaded(berth_store *s, repo *r);
static int wrlock_loaded(berth_store *s, repo *r);

int berth_store_blob_delete(berth_store *s, const char *repo_name, const berth_digest *digest)
{
    berth_buf path = BERTH_BUF_INIT;
    berth_digest by;
    repo *r = NULL;
    int rc;

    berth_error_clear();
    if ((rc = writable(s)) < 0 || (rc = repo_blob_path(&path, s, repo_name, digest)) < 0) {
        goto out;
    }
    rc = berth__store_repo(&r, s, repo_name, false);
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo_name);
    }
    if (rc < 0 || (rc = wrlock_loaded(s, r)) < 0) {
        r = NULL;
        goto out;
    }
    /* under the write lock a manifest PUT, which checks its references under the same lock,
       cannot slip in between the check and the unlink */
    if (berth__htab_get(&r->manifests, digest->str)) {
        /* as Distribution answers: the blob endpoint knows no manifests */
        rc = berth_error_set(BERTH_ENOTFOUND,
                             "%s is a manifest of %s, not a blob: delete it with DELETE "
                             "/v2/%s/manifests/%s",
                             digest->str, repo_name, repo_name, digest->str);
        goto unlock;
    }
    rc = referenced(s, r, digest, NULL, &by);
    if (rc == 1) {
        rc = berth_error_set(BERTH_EINUSE,
                             "blob %s is referenced by manifest %s of %s: delete the manifest "
                             "first",
                             digest->str, by.str, repo_name);
    }
    if (rc == 0 && unlink(path.ptr) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo_name)
                 : io_failed("unlink", path.ptr);
    }
    if (rc == 0 && s->opts.fsync) {
        rc = berth__fs_fsync_parent(path.ptr);
    }
unlock:
    pthread_rwlock_unlock(&r->lock);
out:
    berth_buf_dispose(&path);
    return rc;
}

/*
 * Link a verified, durable file into the pool and into the repository. When the pool already
 * has the blob, our copy is dropped and theirs linked. Garbage collection may remove an old,
 * unreferenced pool copy between the two links: then the first link is made again from ours.
 */
int berth__store_publish_blob(berth_store *s, repo *r, const char *staged, const berth_digest *d)
{
    berth_buf pool = BERTH_BUF_INIT, dst = BERTH_BUF_INIT;
    int rc = berth__store_blob_path(&pool, s->internal, d);

    if (rc == 0) {
        rc = berth_buf_printf(&dst, "%s/blobs/%s", r->dir, berth_digest_alg_name(d->alg));
    }
    if (rc == 0 && d->alg != BERTH_DIGEST_SHA256) {
        rc = berth__fs_mkdirs(dst.ptr);
    }
    if (rc == 0) {
        rc = berth_buf_printf(&dst, "/%s", berth_digest_hex(d));
    }
    for (int attempt = 0; rc == 0 && attempt < 3; attempt++) {
        rc = berth__fs_link(staged, pool.ptr);
        if (rc == 0 && s->opts.fsync) {
            rc = berth__fs_fsync_parent(pool.ptr);
        }
        if (rc == 0) {
            rc = berth__fs_link(pool.ptr, dst.ptr);
        }
        if (rc != BERTH_ENOTFOUND || access(staged, F_OK) != 0) {
            break;
        }
        rc = 0; /* the pool copy vanished under us: link ours again */
    }
    if (rc == 0 && s->opts.fsync) {
        rc = berth__fs_fsync_parent(dst.ptr);
    }
    berth_buf_dispose(&pool);
    berth_buf_dispose(&dst);
    return rc;
}

int berth_store_blob_mount(berth_store *s, const char *repo_name, const char *from,
                           const berth_digest *digest)
{
    berth_buf src = BERTH_BUF_INIT;
    repo *r = NULL;
    struct stat st;
    int rc;

    berth_error_clear();
    rc = writable(s);
    if (rc == 0) {
        rc = from ? repo_blob_path(&src, s, from, digest)
                  : berth__store_blob_path(&src, s->internal, digest);
    }
    if (rc == 0 && stat(src.ptr, &st) != 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str,
                             from ? from : "the store");
    }
    if (rc == 0) {
        rc = berth__store_repo(&r, s, repo_name, true);
    }
    if (rc == 0) {
        /* the pool copy is the one to link: the source's link is the same inode */
        berth_buf_clear(&src);
        rc = berth__store_blob_path(&src, s->internal, digest);
    }
    if (rc == 0) {
        rc = berth__store_publish_blob(s, r, src.ptr, digest);
    }
    berth_buf_dispose(&src);
    return rc;
}

/* ---- manifests ---------------------------------------------------------------------- */

/* Read-lock a repository with its state loaded. */
static int lock_loaded(berth_store *s, repo *r)
{
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->loaded) {
        return 0;
    }
    pthread_rwlock_unlock(&r->lock);
    pthread_rwlock_wrlock(&r->lock);
    if (!r->loaded) {
        rc = berth__repo_load(s, r);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0) {
        pthread_rwlock_rdlock(&r->lock);
    }
    return rc;
}

static int wrlock_loaded(berth_store *s, repo *r)
{
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    if (!r->loaded) {
        rc = berth__repo_load(s, r);
        if (rc < 0) {
            pthread_rwlock_unlock(&r->lock);
        }
    }
    return rc;
}

int berth_store_manifest_get(const berth_stored_manifest **out, berth_store *s,
                             const char *repo_name, const char *reference)
{
    const cached_manifest *c = NULL;
    manifest_entry *m;
    repo *r;
    int rc = berth__store_repo(&r, s, repo_name, false);

    if (rc < 0) {
        return rc;
    }
    rc = lock_loaded(s, r);
    if (rc < 0) {
        return rc;
    }
    m = berth__repo_find_manifest(r, reference);
    if (!m) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", reference, repo_name);
    } else {
        rc = berth__repo_get_bytes(&c, s, r, m);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0) {
        *out = &c->pub;
    }
    return rc;
}

void berth_manifest_release(const berth_stored_manifest *m)
{
    cached_manifest *c = (cached_manifest *)(uintptr_t)m;
    if (!c) {
        return;
    }
    if (atomic_fetch_sub(&c->refs, 1) == 1) {
        /* the cache's accounting went when it left the list */
        free(c->bytes);
        free(c->media_type);
        free(c);
    }
}

static bool is_tag(const char *s)
{
    size_t n = 0;
    for (; s[n]; n++) {
        char c = s[n];
        bool word =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
        if (!(word || (n > 0 && (c == '.' || c == '-')))) {
            return false;
        }
    }
    return n >= 1 && n <= 128;
}

static bool exempt_layer(const char *media_type)
{
    return media_type && (strstr(media_type, ".nondistributable.") != NULL ||
                          strstr(media_type, ".foreign.") != NULL);
}

/* Does the repository accept sparse manifests (opts.sparse_repositories)? */
static bool sparse_allowed(const berth_store *s, const char *name)
{
    const char *p = s->opts.sparse_repositories;
    while (p && *p) {
        char glob[512];
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof(glob)) {
            memcpy(glob, p, len);
            glob[len] = '\0';
            if (fnmatch(glob, name, 0) == 0) {
                return true;
            }
        }
        p += len + (p[len] == ',');
    }
    return false;
}

/* Everything a manifest references must be in the repository (r->lock held); with `sparse`,
   absent references are counted in `*absent` instead. */
static int check_refs(berth_store *s, repo *r, const berth_document_info *info, bool sparse,
                      size_t *absent)
{
    bool index = berth_document_kind_is_index(info->kind);
    berth_buf path = BERTH_BUF_INIT;
    int rc = 0;

    *absent = 0;
    for (size_t i = 0; i < info->nrefs && rc == 0; i++) {
        const berth_descriptor *d = &info->refs[i];
        struct stat st;
        int err;
        if (index) {
            if (!berth__htab_get(&r->manifests, d->digest.str) && sparse) {
                (*absent)++;
            } else if (!berth__htab_get(&r->manifests, d->digest.str)) {
                rc = berth_error_set(BERTH_ENOTFOUND, "manifests[%zu]: manifest %s not in %s", i,
                                     d->digest.str, r->name);
            }
            continue;
        }
        if (i > 0 && exempt_layer(d->media_type)) {
            continue;
        }
        berth_buf_clear(&path);
        rc = berth__store_blob_path(&path, r->dir, &d->digest);
        err = rc == 0 && stat(path.ptr, &st) != 0 ? errno : 0;
        if (rc == 0 && sparse && (err == ENOENT || err == ENOTDIR)) {
            (*absent)++;
        } else if (rc == 0 && err) {
            errno = err;
            rc = errno == ENOENT || errno == ENOTDIR
                     ? berth_error_set(BERTH_ENOTFOUND, "%s: blob %s not in %s",
                                       i == 0 ? "config" : "layers", d->digest.str, r->name)
                     : berth_error_set(BERTH_EIO, "stat %s: %s", path.ptr, strerror(errno));
        } else if (rc == 0 && d->size != (int64_t)st.st_size) {
            rc = berth_error_set(BERTH_EINVALID, "%s: blob %s has size %lld, not %lld",
                                 i == 0 ? "config" : "layers", d->digest.str, (long long)st.st_size,
                                 (long long)d->size);
        }
    }
    berth_buf_dispose(&path);
    (void)s;
    return rc;
}

/* Write manifest bytes as a blob of the repository (unless it is there already). */
static int store_manifest_blob(berth_store *s, repo *r, const berth_digest *d, const void *data,
                               size_t len)
{
    berth_buf path = BERTH_BUF_INIT;
    char tmp[4096];
    struct stat st;
    int rc = berth__store_blob_path(&path, r->dir, d);

    if (rc < 0 || stat(path.ptr, &st) == 0) {
        goto out;
    }
    snprintf(tmp, sizeof(tmp), "%s/manifest.%s", s->tmp, berth_digest_hex(d));
    rc = berth__fs_write_atomic(s->tmp, tmp, data, len, s->opts.fsync);
    if (rc == 0) {
        rc = berth__store_publish_blob(s, r, tmp, d);
    }
    if (rc == BERTH_ENOTFOUND) {
        /* our own staged file vanished: the store failed, not the client */
        rc = as_io_error("storing the manifest: ");
    }
    unlink(tmp);
out:
    berth_buf_dispose(&path);
    return rc;
}

/* After a failed save the in-memory state may be ahead of the disk: reload on next use. */
static void invalidate(repo *r)
{
    berth__repo_free_state(r);
}

int berth_store_manifest_put(berth_put_result *result, berth_store *s, const char *repo_name,
                             const char *reference, const char *content_type, const void *data,
                             size_t len)
{
    return berth_store_manifest_put_tags(result, s, repo_name, reference, NULL, 0, content_type,
                                         data, len);
}

int berth_store_manifest_put_tags(berth_put_result *result, berth_store *s, const char *repo_name,
                                  const char *reference, const char *const *tags, size_t ntags,
                                  const char *content_type, const void *data, size_t len)
{
    berth_document_info *info = NULL;
    manifest_entry *m = NULL, *fresh = NULL;
    berth_digest want, got;
    bool by_digest = strchr(reference, ':') != NULL, sparse;
    size_t absent = 0;
    repo *r = NULL;
    int rc;

    berth_error_clear();
    memset(result, 0, sizeof(*result));
    if ((rc = writable(s)) < 0) {
        return rc;
    }
    if (len > s->opts.manifest_max) {
        return berth_error_set(BERTH_ETOOBIG, "manifest of %zu bytes is over the limit of %zu", len,
                               s->opts.manifest_max);
    }
    if (by_digest) {
        rc = berth_digest_parse_str(&want, reference);
        if (rc < 0) {
            return rc;
        }
    } else if (!is_tag(reference)) {
        return berth_error_set(BERTH_EINVALID, "invalid tag '%s'", reference);
    }
    for (size_t i = 0; i < ntags; i++) {
        if (!is_tag(tags[i])) {
            return berth_error_set(BERTH_EINVALID, "invalid tag '%s'", tags[i]);
        }
    }
    rc = berth_digest_buffer(&got, by_digest ? want.alg : BERTH_DIGEST_SHA256, data, len);
    if (rc < 0) {
        return rc;
    }
    if (by_digest && !berth_digest_equal(&want, &got)) {
        return berth_error_set(BERTH_EMISMATCH, "manifest digest is %s, not %s", got.str, want.str);
    }
    rc = berth_document_inspect(&info, content_type, data, len);
    if (rc < 0) {
        return rc;
    }
    /* a new repository is created only for a manifest whose references could be there */
    sparse = sparse_allowed(s, repo_name);
    rc = berth__store_repo(&r, s, repo_name, info->nrefs == 0 || sparse);
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_ENOTFOUND, "%s: %s %s not in %s",
                             berth_document_kind_is_index(info->kind) ? "manifests" : "config",
                             berth_document_kind_is_index(info->kind) ? "manifest" : "blob",
                             info->refs[0].digest.str, repo_name);
    }
    if (rc < 0) {
        goto out;
    }
    rc = wrlock_loaded(s, r);
    if (rc < 0) {
        goto out;
    }
    rc = check_refs(s, r, info, sparse, &absent);
    if (rc == 0) {
        rc = store_manifest_blob(s, r, &got, data, len);
    }
    if (rc < 0) {
        goto unlock;
    }
    m = berth__htab_get(&r->manifests, got.str);
    if (!m) {
        fresh = m = calloc(1, sizeof(*m));
        if (!m || !(m->media_type = strdup(info->media_type))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto unlock;
        }
        m->digest = got;
        m->sparse = absent > 0;
        m->size = (int64_t)len;
        m->pushed = (int64_t)time(NULL);
        m->artifact_type = info->artifact_type ? strdup(info->artifact_type) : NULL;
        if (info->subject) {
            m->has_subject = true;
            m->subject = info->subject->digest;
        }
        rc = berth__htab_put(&r->manifests, m->digest.str, m);
        if (rc < 0) {
            goto unlock;
        }
        fresh = NULL;
    }
    if (!by_digest) {
        rc = berth__repo_set_tag(r, reference, m, (int64_t)time(NULL));
    }
    /* the tags point at the digest the client used, in its algorithm */
    for (size_t i = 0; rc == 0 && i < ntags; i++) {
        rc = berth__repo_set_tag(r, tags[i], m, (int64_t)time(NULL));
    }
    if (rc == 0) {
        rc = berth__repo_save(s, r);
    }
    if (rc < 0) {
        invalidate(r);
        m = NULL;
    }
unlock:
    if (rc == 0 && !m->cached) {
        const cached_manifest *c = NULL;
        /* warm the cache with the bytes just pushed */
        if (berth__repo_get_bytes(&c, s, r, m) == 0) {
            berth_manifest_release(&c->pub);
        }
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0) {
        result->digest = got;
        if (info->subject) {
            result->has_subject = true;
            result->subject = info->subject->digest;
        }
    }
out:
    berth__manifest_entry_free(fresh);
    berth_document_info_free(info);
    return rc;
}

int berth_store_manifest_delete(berth_store *s, const char *repo_name, const berth_digest *digest)
{
    berth_buf path = BERTH_BUF_INIT;
    berth_digest by;
    manifest_entry *m;
    repo *r;
    size_t j = 0;
    int rc;

    berth_error_clear();
    if ((rc = writable(s)) < 0) {
        return rc;
    }
    rc = berth__store_repo(&r, s, repo_name, false);
    if (rc < 0 || (rc = wrlock_loaded(s, r)) < 0) {
        return rc;
    }
    m = berth__htab_get(&r->manifests, digest->str);
    if (!m) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", digest->str, repo_name);
        goto out;
    }
    rc = referenced(s, r, digest, m, &by);
    if (rc == 1) {
        rc = berth_error_set(BERTH_EINUSE,
                             "manifest %s is referenced by %s of %s: delete that one first",
                             digest->str, by.str, repo_name);
    }
    if (rc < 0) {
        goto out;
    }
    for (size_t i = 0; i < r->ntags; i++) {
        if (r->tags[i].manifest == m) {
            free(r->tags[i].name);
        } else {
            r->tags[j++] = r->tags[i];
        }
    }
    r->ntags = j;
    berth__htab_remove(&r->manifests, digest->str);
    rc = berth__repo_save(s, r);
    if (rc < 0) {
        berth__manifest_entry_free(m);
        invalidate(r);
        goto out;
    }
    rc = berth__store_blob_path(&path, r->dir, digest);
    if (rc == 0 && unlink(path.ptr) != 0 && errno != ENOENT) {
        berth__log(BERTH_LOG_WARN, "unlink %s: %s", path.ptr, strerror(errno));
    }
    berth__manifest_entry_free(m);
out:
    pthread_rwlock_unlock(&r->lock);
    berth_buf_dispose(&path);
    return rc;
}

int berth_store_tag_delete(berth_store *s, const char *repo_name, const char *tag)
{
    repo *r;
    bool found;
    size_t i;
    tag_entry removed;
    int rc;

    berth_error_clear();
    if ((rc = writable(s)) < 0) {
        return rc;
    }
    rc = berth__store_repo(&r, s, repo_name, false);
    if (rc < 0 || (rc = wrlock_loaded(s, r)) < 0) {
        return rc;
    }
    i = berth__repo_tag_index(r, tag, &found);
    if (!found) {
        rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", tag, repo_name);
        goto out;
    }
    removed = r->tags[i];
    memmove(r->tags + i, r->tags + i + 1, (r->ntags - i - 1) * sizeof(*r->tags));
    r->ntags--;
    removed.manifest->ntags--;
    rc = berth__repo_save(s, r);
    free(removed.name);
    if (rc < 0) {
        invalidate(r);
    }
out:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

int berth_store_tags(berth_store *s, const char *repo_name, const char *last, size_t n,
                     berth_store_name_cb cb, void *payload, bool *more_out)
{
    repo *r;
    size_t i = 0, given = 0;
    int rc;

    berth_error_clear();
    *more_out = false;
    rc = berth__store_repo(&r, s, repo_name, false);
    if (rc < 0 || (rc = lock_loaded(s, r)) < 0) {
        return rc;
    }
    if (last) {
        bool found;
        i = berth__repo_tag_index(r, last, &found);
        i += found;
    }
    for (; i < r->ntags; i++) {
        if (n && given == n) {
            *more_out = true;
            break;
        }
        given++;
        if (cb(r->tags[i].name, payload) != 0) {
            break;
        }
    }
    pthread_rwlock_unlock(&r->lock);
    return 0;
}

/* Names copied per batch of a catalog listing, so that the callback runs without the lock. */
#define CATALOG_BATCH 256

int berth_store_catalog(berth_store *s, const char *last, size_t n, berth_store_name_cb cb,
                        void *payload, bool *more_out)
{
    char *batch[CATALOG_BATCH];
    char *after = NULL;
    size_t given = 0;
    bool done = false, end = false;
    int rc = 0;

    berth_error_clear();
    *more_out = false;
    while (!done && !end && rc == 0) {
        size_t lo = 0, hi, take = 0;
        const char *from = after ? after : last;

        /* under the store's lock only a binary search and a copy of one batch */
        pthread_mutex_lock(&s->lock);
        hi = s->ncatalog;
        while (from && lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(s->catalog[mid], from) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (size_t i = lo; i < s->ncatalog && take < CATALOG_BATCH; i++) {
            if (!(batch[take] = strdup(s->catalog[i]))) {
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                break;
            }
            take++;
        }
        pthread_mutex_unlock(&s->lock);
        end = take < CATALOG_BATCH; /* the end of the catalog (or out of memory) */
        for (size_t i = 0; i < take; i++) {
            if (!done && rc == 0) {
                if (n && given == n) {
                    *more_out = true;
                    done = true;
                } else if (given++, cb(batch[i], payload) != 0) {
                    done = true;
                }
            }
            if (i + 1 < take) {
                free(batch[i]);
            }
        }
        free(after);
        after = take ? batch[take - 1] : NULL;
    }
    free(after);
    return rc;
}

typedef struct referrers_ctx {
    const berth_digest *subject;
    const char *artifact_type;
    manifest_entry **found;
    size_t count, cap;
    int rc;
} referrers_ctx;

static void collect_referrer(void *value, void *payload)
{
    manifest_entry *m = value;
    referrers_ctx *ctx = payload;
    if (ctx->rc < 0 || !m->has_subject || !berth_digest_equal(&m->subject, ctx->subject)) {
        return;
    }
    if (ctx->artifact_type &&
        (!m->artifact_type || strcmp(m->artifact_type, ctx->artifact_type) != 0)) {
        return;
    }
    if (ctx->count == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 8;
        manifest_entry **f = realloc(ctx->found, cap * sizeof(*f));
        if (!f) {
            ctx->rc = BERTH_ENOMEM;
            return;
        }
        ctx->found = f;
        ctx->cap = cap;
    }
    ctx->found[ctx->count++] = m;
}

static int by_digest(const void *a, const void *b)
{
    const manifest_entry *x = *(manifest_entry *const *)a, *y = *(manifest_entry *const *)b;
    return strcmp(x->digest.str, y->digest.str);
}

int berth_store_referrers(berth_buf *out, berth_store *s, const char *repo_name,
                          const berth_digest *digest, const char *artifact_type,
                          berth_referrers_page *page)
{
    referrers_ctx ctx = {digest, artifact_type, NULL, 0, 0, 0};
    size_t i = 0, given = 0, start = out->len;
    repo *r;
    int rc;

    berth_error_clear();
    if (page) {
        page->more = false;
    }
    rc = berth__store_repo(&r, s, repo_name, false);
    if (rc < 0 || (rc = lock_loaded(s, r)) < 0) {
        return rc;
    }
    berth__htab_foreach(&r->manifests, collect_referrer, &ctx);
    rc = ctx.rc;
    if (rc < 0) {
        berth_error_set(rc, "out of memory");
        goto out;
    }
    if (ctx.count > 1) {
        qsort(ctx.found, ctx.count, sizeof(*ctx.found), by_digest);
    }
    while (page && page->last && i < ctx.count &&
           strcmp(ctx.found[i]->digest.str, page->last) <= 0) {
        i++;
    }
    rc = berth_buf_puts(out, "{\"schemaVersion\":2,\"mediaType\":"
                             "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[");
    for (; rc == 0 && i < ctx.count; i++) {
        manifest_entry *m = ctx.found[i];
        json_t *d;
        char *text;

        if (page && given > 0 &&
            ((page->n && given == page->n) ||
             (page->max_bytes && out->len - start >= page->max_bytes))) {
            /* a full page; the next starts after the last one given */
            page->more = true;
            page->next_last = ctx.found[i - 1]->digest;
            break;
        }
        d = json_pack("{s:s, s:s, s:I}", "mediaType", m->media_type, "digest", m->digest.str,
                      "size", (json_int_t)m->size);
        if (d && m->artifact_type) {
            json_object_set_new(d, "artifactType", json_string(m->artifact_type));
        }
        if (d) {
            /* read from the stored manifest: annotations are not kept in memory */
            json_t *a = berth__repo_annotations(s, r, m);
            if (a) {
                json_object_set_new(d, "annotations", a);
            }
        }
        text = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(d);
        if (!text) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        rc = given ? berth_buf_puts(out, ",") : 0;
        if (rc == 0) {
            rc = berth_buf_puts(out, text);
        }
        free(text);
        given++;
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "]}");
    }
out:
    pthread_rwlock_unlock(&r->lock);
    free(ctx.found);
    return rc;
}
