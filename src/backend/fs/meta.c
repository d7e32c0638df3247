/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fs metadata backend: repositories as OCI image layouts under ROOT (index.c keeps each
 * one's index.json in memory), links as hard links ROOT/<repo>/blobs/<alg>/<hex> to the pool,
 * manifests as blobs of the layout listed in index.json, upload records as small JSON files
 * beside their bytes (uploads.c), and garbage collection's claims over the pool.
 *
 * Repositories are found by a scan at open and kept in a table and a sorted catalog under
 * `repos_lock`; each one loads its tags and manifests on first use, under its own read-write
 * lock. Reads (tag_get, manifest_get of a cached manifest) take the read locks only and touch
 * no file; writes take the repository's write lock, change memory, then write index.json
 * atomically; if that write fails the repository's state is dropped and reloaded from disk on
 * next use, so memory never runs ahead of what is durable.
 *
 * Callbacks of listings run with no lock held (the page is copied out first), so that a
 * callback may call the backend again.
 *
 * Claims: gc_blob_claim() takes a pool blob whose link count is 1 (no repository links it)
 * and whose inode changed before `older_than`; while claimed, blob_link() and blob_touch() of
 * it wait, and while one of those runs, the blob is not claimed (root->linking). blob_touch()
 * of a blob in the pool renews its ctime, so that the commit that found it there has the
 * grace period to link it.
 *
 * Lock order: repos_lock, then a repository's lock, then the cache's or the claims' mutex.
 */
#include "backend/fs/fs_internal.h"
#include "backend/fs/uploads.h"

#include "base/log.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CATALOG_BATCH 256

typedef struct fs_meta {
    berth_meta_backend pub;
    berth__fsb_root *root;
    pthread_rwlock_t repos_lock;
    berth__htab repos; /* name -> berth__fsb_repo */
    char **catalog;    /* sorted names (borrowed from the repositories) */
    size_t ncatalog, catalog_cap;
    berth__fsb_cache cache;
    berth__fsb_uploads uploads;
    atomic_uint staged; /* names of staged manifest files */
    /* gc_blob_claim's candidates from its last pool walk (root->claim_lock) */
    berth_digest *candidates;
    size_t ncandidates;
    size_t candidates_cap;
    int64_t candidates_older_than;
    bool sorted;
} fs_meta;

struct berth_meta_claim {
    berth_digest digest;
};

static fs_meta *of(berth_meta_backend *b)
{
    return (fs_meta *)b;
}

/* ---- repositories --------------------------------------------------------------------- */

static int catalog_insert(fs_meta *m, char *name)
{
    size_t lo = 0, hi = m->ncatalog;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(m->catalog[mid], name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (m->ncatalog == m->catalog_cap) {
        size_t cap = m->catalog_cap ? m->catalog_cap * 2 : 64;
        char **c = realloc(m->catalog, cap * sizeof(*c));
        if (!c) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        m->catalog = c;
        m->catalog_cap = cap;
    }
    memmove(m->catalog + lo + 1, m->catalog + lo, (m->ncatalog - lo) * sizeof(char *));
    m->catalog[lo] = name;
    m->ncatalog++;
    return 0;
}

/* Enter a repository into the table and the catalog (repos_lock held for writing). */
static int register_repo(fs_meta *m, berth__fsb_repo *r)
{
    int rc = berth__htab_put(&m->repos, r->name, r);
    if (rc == 0) {
        rc = catalog_insert(m, r->name);
        if (rc < 0) {
            berth__htab_remove(&m->repos, r->name);
        }
    }
    return rc;
}

/* An index.json this small lists no manifest (one entry takes more). */
#define EMPTY_INDEX_MAX 160

static int add_found(const char *name, void *payload)
{
    fs_meta *m = payload;
    berth__fsb_repo *r = berth__fsb_repo_new(m->root, name);
    berth_buf index = BERTH_BUF_INIT;
    struct stat st;
    int rc;

    if (!r) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    /* an emptied repository: checked (and hidden) on first use */
    rc = berth_buf_printf(&index, "%s/index.json", r->dir);
    atomic_init(&r->maybe_empty,
                rc == 0 && stat(index.ptr, &st) == 0 && st.st_size < EMPTY_INDEX_MAX);
    berth_buf_dispose(&index);
    if (rc == 0) {
        rc = register_repo(m, r);
    }
    if (rc < 0) {
        berth__fsb_repo_free(r, NULL);
    }
    return rc;
}

/* The repository `name`; with `create`, made (its layout first) when absent. */
static int find_repo(berth__fsb_repo **out, fs_meta *m, const char *name, bool create)
{
    berth__fsb_repo *r, *fresh = NULL;
    int rc = berth__fsb_check_name(name);

    if (rc < 0) {
        return rc;
    }
    pthread_rwlock_rdlock(&m->repos_lock);
    r = berth__htab_get(&m->repos, name);
    pthread_rwlock_unlock(&m->repos_lock);
    if (r) {
        *out = r;
        return 0;
    }
    if (!create) {
        return berth_error_set(BERTH_ENOTFOUND, "repository %s not known", name);
    }
    if ((rc = berth__fsb_writable(m->root)) < 0) {
        return rc;
    }
    pthread_rwlock_wrlock(&m->repos_lock);
    r = berth__htab_get(&m->repos, name);
    if (!r) {
        /* memory follows disk: only a repository whose layout exists enters the catalog */
        fresh = berth__fsb_repo_new(m->root, name);
        if (fresh) {
            atomic_init(&fresh->maybe_empty, true); /* until content lands */
        }
        rc = fresh ? berth__fsb_create_layout(m->root, fresh->dir)
                   : berth_error_set(BERTH_ENOMEM, "out of memory");
        if (rc == BERTH_ENOTFOUND) {
            /* a path component is not a directory: the store failed, not the request (a
               not-found here would read as the client's unknown blob or manifest) */
            rc = berth_error_set(BERTH_EIO, "repository %s cannot be created", name);
        }
        if (rc == 0) {
            rc = register_repo(m, fresh);
        }
        if (rc == 0) {
            r = fresh;
            fresh = NULL;
        }
    }
    pthread_rwlock_unlock(&m->repos_lock);
    berth__fsb_repo_free(fresh, NULL);
    if (rc == 0) {
        *out = r;
    }
    return rc;
}

/* Read-lock a repository with its state loaded. */
static int rdlock_loaded(fs_meta *m, berth__fsb_repo *r)
{
    int rc = 0;
    pthread_rwlock_rdlock(&r->lock);
    if (r->loaded) {
        return 0;
    }
    pthread_rwlock_unlock(&r->lock);
    pthread_rwlock_wrlock(&r->lock);
    if (!r->loaded) {
        rc = berth__fsb_repo_load(r, &m->cache);
    }
    pthread_rwlock_unlock(&r->lock);
    if (rc == 0) {
        pthread_rwlock_rdlock(&r->lock);
    }
    return rc;
}

static int wrlock_loaded(fs_meta *m, berth__fsb_repo *r)
{
    int rc = 0;
    pthread_rwlock_wrlock(&r->lock);
    if (!r->loaded) {
        rc = berth__fsb_repo_load(r, &m->cache);
        if (rc < 0) {
            pthread_rwlock_unlock(&r->lock);
        }
    }
    return rc;
}

/* Find and lock (read or write) a loaded repository. */
static int any_blob(const char *path, const berth_digest *d, const struct stat *st, void *payload)
{
    (void)path;
    (void)d;
    (void)st;
    (void)payload;
    return 1;
}

/* Does the repository hold a manifest or a blob? 1, 0, or an error (r->lock held). */
static int holds(berth__fsb_repo *r)
{
    berth_buf dir = BERTH_BUF_INIT;
    int rc;

    if (r->manifests.count > 0 || !atomic_load(&r->maybe_empty)) {
        return 1;
    }
    if (atomic_load(&r->known_empty)) {
        return 0; /* walked since it may have become empty: the catalog skips it cheaply */
    }
    rc = berth_buf_printf(&dir, "%s/blobs", r->dir);
    if (rc == 0) {
        rc = berth__fsb_each_blob(dir.ptr, any_blob, NULL);
    }
    if (rc == 0) {
        atomic_store(&r->known_empty, true);
    }
    berth_buf_dispose(&dir);
    return rc;
}

/* Find and lock (read or write) a loaded repository; one that holds nothing is not found. */
static int open_repo(berth__fsb_repo **out, fs_meta *m, const char *name, bool write)
{
    berth__fsb_repo *r;
    int rc = find_repo(&r, m, name, false);
    if (rc == 0) {
        rc = write ? wrlock_loaded(m, r) : rdlock_loaded(m, r);
    }
    if (rc == 0 && (rc = holds(r)) <= 0) {
        pthread_rwlock_unlock(&r->lock);
        if (rc == 0) {
            rc = berth_error_set(BERTH_ENOTFOUND, "repository %s not known", name);
        }
    } else if (rc == 1) {
        rc = 0;
    }
    if (rc == 0) {
        *out = r;
    }
    return rc;
}

/* A repository exists while it holds a manifest or a blob; its layout may outlive both. */
static int m_repo_exists(berth_meta_backend *b, const char *repo)
{
    fs_meta *m = of(b);
    berth__fsb_repo *r;
    int rc;

    if (berth__fsb_check_name(repo) < 0) {
        berth_error_clear();
        return 0;
    }
    rc = open_repo(&r, m, repo, false);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        return 0;
    }
    if (rc == 0) {
        pthread_rwlock_unlock(&r->lock);
        rc = 1;
    }
    return rc;
}

/* Is a repository that may hold nothing (maybe_empty) to be listed? */
static bool listed(fs_meta *m, berth__fsb_repo *r)
{
    int rc = rdlock_loaded(m, r);
    if (rc == 0) {
        rc = holds(r);
        pthread_rwlock_unlock(&r->lock);
    }
    if (rc < 0) {
        berth_error_clear();
        return true; /* cannot tell: listed, as its layout is there */
    }
    return rc == 1;
}

static int m_catalog(berth_meta_backend *b, const char *last, size_t n, berth_meta_name_cb cb,
                     void *payload, bool *more_out)
{
    fs_meta *m = of(b);
    char *batch[CATALOG_BATCH];
    berth__fsb_repo *repos[CATALOG_BATCH];
    char *after = NULL;
    size_t given = 0;
    bool done = false, end = false, more_none;
    int rc = 0;

    if (!more_out) {
        more_out = &more_none; /* a caller that does not ask */
    }
    *more_out = false;
    while (!done && !end && rc == 0) {
        size_t lo = 0, hi, take = 0;
        const char *from = after ? after : last;

        /* under the lock only a binary search and a copy of one batch */
        pthread_rwlock_rdlock(&m->repos_lock);
        hi = m->ncatalog;
        while (from && lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(m->catalog[mid], from) <= 0) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for (size_t i = lo; i < m->ncatalog && take < CATALOG_BATCH; i++) {
            if (!(batch[take] = strdup(m->catalog[i]))) {
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                break;
            }
            /* repositories live as long as the backend: the pointer outlives the lock */
            repos[take] = berth__htab_get(&m->repos, m->catalog[i]);
            take++;
        }
        pthread_rwlock_unlock(&m->repos_lock);
        end = take < CATALOG_BATCH;
        for (size_t i = 0; i < take; i++) {
            if (!done && rc == 0 && (!atomic_load(&repos[i]->maybe_empty) || listed(m, repos[i]))) {
                if (n && given == n) {
                    *more_out = true; /* a listed name follows the page */
                    done = true;
                } else {
                    int c = cb(batch[i], payload);
                    given++;
                    if (c != 0) {
                        rc = c;
                        done = true;
                    }
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

/* ---- claims and links ------------------------------------------------------------------- */

typedef struct linking_count {
    char key[BERTH_DIGEST_MAXLEN + 1];
    size_t n;
} linking_count;

/* Wait while `d` is claimed, then hold it off claims until link_end(). */
static int link_begin(berth__fsb_root *root, const berth_digest *d)
{
    linking_count *c;
    int rc = 0;

    pthread_mutex_lock(&root->claim_lock);
    while (berth__htab_get(&root->claimed, d->str)) {
        pthread_cond_wait(&root->claim_cond, &root->claim_lock);
    }
    c = berth__htab_get(&root->linking, d->str);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (c) {
            snprintf(c->key, sizeof(c->key), "%s", d->str);
        }
        if (!c || berth__htab_put(&root->linking, c->key, c) < 0) {
            free(c);
            c = NULL;
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    if (c) {
        c->n++;
    }
    pthread_mutex_unlock(&root->claim_lock);
    return rc;
}

static void link_end(berth__fsb_root *root, const berth_digest *d)
{
    linking_count *c;
    pthread_mutex_lock(&root->claim_lock);
    c = berth__htab_get(&root->linking, d->str);
    if (c && --c->n == 0) {
        berth__htab_remove(&root->linking, d->str);
        free(c);
    }
    pthread_mutex_unlock(&root->claim_lock);
}

/*
 * Link `staged` (NULL: nothing new) into the pool under `d`, then the pool's copy into the
 * repository. An existing pool blob is kept. If the pool copy vanishes between the two links
 * (removed by something that took no claim), ours is linked again.
 */
static int publish(berth__fsb_root *root, berth__fsb_repo *r, const char *staged,
                   const berth_digest *d)
{
    berth_buf pool = BERTH_BUF_INIT, dst = BERTH_BUF_INIT;
    int rc = berth__fsb_pool_path(&pool, root, d);

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
        if (staged) {
            rc = berth__fs_link(staged, pool.ptr);
            if (rc == 0 && root->opts.fsync) {
                rc = berth__fs_fsync_parent(pool.ptr);
            }
        }
        if (rc == 0) {
            rc = berth__fs_link(pool.ptr, dst.ptr);
        }
        if (rc != BERTH_ENOTFOUND || !staged || access(staged, F_OK) != 0) {
            break;
        }
        rc = 0;
    }
    if (rc == 0 && root->opts.fsync) {
        rc = berth__fs_fsync_parent(dst.ptr);
    }
    berth_buf_dispose(&pool);
    berth_buf_dispose(&dst);
    return rc;
}

static int m_blob_touch(berth_meta_backend *b, const berth_digest *digest, uint64_t size)
{
    fs_meta *m = of(b);
    berth_buf pool = BERTH_BUF_INIT;
    struct timespec times[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
    int rc = berth__fsb_writable(m->root);

    (void)size;
    if (rc == 0) {
        rc = berth__fsb_pool_path(&pool, m->root, digest);
    }
    if (rc == 0) {
        rc = link_begin(m->root, digest);
    }
    if (rc == 0) {
        /* a new inode time: the claims of garbage collection keep off it for their grace */
        if (utimensat(AT_FDCWD, pool.ptr, times, 0) != 0 && errno != ENOENT) {
            rc = berth__fsb_io_error("touch", pool.ptr);
        }
        link_end(m->root, digest);
    }
    berth_buf_dispose(&pool);
    return rc;
}

static int m_blob_link(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                       uint64_t size)
{
    fs_meta *m = of(b);
    berth_buf pool = BERTH_BUF_INIT;
    berth__fsb_repo *r;
    struct stat st;
    int rc = berth__fsb_writable(m->root);

    (void)size;
    if (rc == 0) {
        rc = berth__fsb_check_name(repo);
    }
    if (rc == 0) {
        rc = berth__fsb_pool_path(&pool, m->root, digest);
    }
    if (rc < 0 || (rc = link_begin(m->root, digest)) < 0) {
        goto out;
    }
    if (stat(pool.ptr, &st) != 0) {
        rc = errno == ENOENT ? berth_error_set(BERTH_ENOTFOUND, "blob %s not known", digest->str)
                             : berth__fsb_io_error("stat", pool.ptr);
    }
    if (rc == 0) {
        rc = find_repo(&r, m, repo, true);
    }
    if (rc == 0 && (rc = rdlock_loaded(m, r)) == 0) {
        /* the read lock: an unlink (write lock) that empties the repository is before or
           after, never between the link and the flag */
        rc = publish(m->root, r, NULL, digest);
        if (rc == 0) {
            atomic_store(&r->maybe_empty, false);
        }
        pthread_rwlock_unlock(&r->lock);
    }
    link_end(m->root, digest);
out:
    berth_buf_dispose(&pool);
    return rc;
}

/* ROOT/<repo>/blobs/<alg>/<hex>, the link of `d` in `repo` (no printf: on every blob GET). */
static int link_path(berth_buf *out, const berth__fsb_root *root, const char *repo,
                     const berth_digest *d)
{
    int rc = berth_buf_grow(out, strlen(root->root) + strlen(repo) + 32 + BERTH_DIGEST_MAXLEN);
    if (rc == 0) {
        rc = berth_buf_puts(out, root->root);
    }
    if (rc == 0) {
        rc = berth__fsb_repo_path(out, repo); /* "/<repo>": the buffer is not empty */
    }
    if (rc == 0) {
        rc = berth__fsb_blob_path(out, "", d);
    }
    return rc;
}

static int not_in(const char *repo, const berth_digest *digest)
{
    return berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str,
                           repo ? repo : "any repository");
}

static int m_blob_stat(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                       uint64_t *size_out)
{
    fs_meta *m = of(b);
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int rc = repo ? link_path(&path, m->root, repo, digest)
                  : berth__fsb_pool_path(&path, m->root, digest);

    if (rc == 0 && stat(path.ptr, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? BERTH_ENOTFOUND
                                                 : berth__fsb_io_error("stat", path.ptr);
    }
    if (rc == 0 && !repo && st.st_nlink < 2) {
        rc = BERTH_ENOTFOUND; /* in the pool, but linked by no repository */
    }
    if (rc == BERTH_ENOTFOUND) {
        not_in(repo, digest);
    }
    if (rc == 0) {
        *size_out = (uint64_t)st.st_size;
    }
    berth_buf_dispose(&path);
    return rc;
}

/*
 * A link is a hard link to the pool file: opening it is the check (a blob of another
 * repository has no link here; an unlinked one is gone) and gives the bytes, in one path walk
 * where blob_stat() and the blob backend's open_fd() take two.
 */
static int m_blob_open_fd(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                          int *fd_out, uint64_t *size_out)
{
    fs_meta *m = of(b);
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int fd = -1, rc = link_path(&path, m->root, repo, digest);

    if (rc == 0 && ((fd = open(path.ptr, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) != 0)) {
        rc = errno == ENOENT || errno == ENOTDIR ? not_in(repo, digest)
                                                 : berth__fsb_io_error("open", path.ptr);
    }
    if (rc == 0 && !S_ISREG(st.st_mode)) {
        berth__log(BERTH_LOG_ERROR, "%s is not a regular file", path.ptr);
        rc = berth_error_set(BERTH_EIO, "blob %s of %s is not a file", digest->str, repo);
    }
    if (rc == 0) {
        *fd_out = fd;
        *size_out = (uint64_t)st.st_size;
        fd = -1;
    }
    if (fd >= 0) {
        close(fd);
    }
    berth_buf_dispose(&path);
    return rc;
}

static bool exempt_layer(const char *media_type)
{
    return media_type && (strstr(media_type, ".nondistributable.") != NULL ||
                          strstr(media_type, ".foreign.") != NULL);
}

/* The bytes of a manifest: from the cache, else from the layout (not cached: a scan). */
static int peek_bytes(berth_buf *out, fs_meta *m, berth__fsb_repo *r, berth__fsb_manifest *e)
{
    berth__fsb_cached *c = berth__fsb_cache_get(&m->cache, e);
    int rc;
    if (c) {
        rc = berth_buf_put(out, c->bytes, c->len);
        berth__fsb_cache_release(c);
        return rc;
    }
    return berth__fsb_read_manifest(out, r, &e->digest);
}

static int inspect_entry(berth_document_info **info, fs_meta *m, berth__fsb_repo *r,
                         berth__fsb_manifest *e)
{
    berth_buf bytes = BERTH_BUF_INIT;
    int rc = peek_bytes(&bytes, m, r, e);
    if (rc == 0) {
        rc = berth_document_inspect(info, e->media_type, bytes.ptr, bytes.len);
    }
    if (rc < 0) {
        berth__log(BERTH_LOG_WARN, "%s@%s: %s", r->name, e->digest.str, berth_error_last());
        rc = berth_error_set(BERTH_EIO,
                             "manifest %s of %s cannot be read, so what it references is "
                             "unknown",
                             e->digest.str, r->name);
    }
    berth_buf_dispose(&bytes);
    return rc;
}

/* ---- what a manifest references, packed -------------------------------------------------- */

static size_t raw_len(berth_digest_alg alg)
{
    return alg == BERTH_DIGEST_SHA512 ? 64 : 32;
}

static int hexval(char c)
{
    return c >= 'a' ? c - 'a' + 10 : c - '0';
}

/* Append digest `d` packed to `p`; returns the bytes written. */
static size_t pack_one(unsigned char *p, const berth_digest *d)
{
    const char *hex = berth_digest_hex(d);
    size_t n = raw_len(d->alg);
    p[0] = (unsigned char)d->alg;
    for (size_t i = 0; i < n; i++) {
        p[1 + i] = (unsigned char)(hexval(hex[2 * i]) << 4 | hexval(hex[2 * i + 1]));
    }
    return 1 + n;
}

/* The packed digest at `*p` (advanced past it). */
static void unpack_one(berth_digest *d, const unsigned char **p)
{
    static const char digits[] = "0123456789abcdef";
    berth_digest_alg alg = (berth_digest_alg)(*p)[0];
    const char *name = berth_digest_alg_name(alg);
    size_t n = raw_len(alg), at = strlen(name);

    memset(d, 0, sizeof(*d));
    d->alg = alg;
    memcpy(d->str, name, at);
    d->str[at++] = ':';
    for (size_t i = 0; i < n; i++) {
        d->str[at++] = digits[(*p)[1 + i] >> 4];
        d->str[at++] = digits[(*p)[1 + i] & 15];
    }
    *p += 1 + n;
}

static int set_refs(berth__fsb_manifest *e, const berth_digest *blobs, size_t nblobs,
                    const berth_digest *children, size_t nchildren)
{
    size_t len = 0, at = 0;
    unsigned char *packed;

    for (size_t i = 0; i < nblobs; i++) {
        len += 1 + raw_len(blobs[i].alg);
    }
    for (size_t i = 0; i < nchildren; i++) {
        len += 1 + raw_len(children[i].alg);
    }
    packed = malloc(len ? len : 1);
    if (!packed) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nblobs; i++) {
        at += pack_one(packed + at, &blobs[i]);
    }
    for (size_t i = 0; i < nchildren; i++) {
        at += pack_one(packed + at, &children[i]);
    }
    free(e->refs);
    e->refs = packed;
    e->nblobs = (uint32_t)nblobs;
    e->nchildren = (uint32_t)nchildren;
    e->refs_known = true;
    return 0;
}

/* What a stored manifest references, from its bytes: an image's config and distributable
   layers (non-distributable ones are left out, as the store leaves them out of a put), or an
   index's manifests. */
static int refs_from_bytes(berth_digest **blobs, size_t *nblobs, berth_digest **children,
                           size_t *nchildren, const berth_document_info *info)
{
    bool index = berth_document_kind_is_index(info->kind);
    berth_digest *list = calloc(info->nrefs ? info->nrefs : 1, sizeof(*list));
    size_t n = 0;

    if (!list) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < info->nrefs; i++) {
        if (!index && i > 0 && exempt_layer(info->refs[i].media_type)) {
            continue;
        }
        list[n++] = info->refs[i].digest;
    }
    *blobs = index ? NULL : list;
    *nblobs = index ? 0 : n;
    *children = index ? list : NULL;
    *nchildren = index ? n : 0;
    return 0;
}

/* Make e->refs known (r->lock held for writing). */
static int ensure_refs(fs_meta *m, berth__fsb_repo *r, berth__fsb_manifest *e)
{
    berth_document_info *info = NULL;
    berth_digest *blobs = NULL, *children = NULL;
    size_t nblobs = 0, nchildren = 0;
    int rc;

    if (e->refs_known) {
        return 0;
    }
    rc = inspect_entry(&info, m, r, e);
    if (rc == 0) {
        rc = refs_from_bytes(&blobs, &nblobs, &children, &nchildren, info);
    }
    if (rc == 0) {
        rc = set_refs(e, blobs, nblobs, children, nchildren);
    }
    free(blobs);
    free(children);
    berth_document_info_free(info);
    return rc;
}

typedef struct ref_ctx {
    fs_meta *m;
    berth__fsb_repo *r;
    unsigned char want[65];
    size_t want_len;
    const berth__fsb_manifest *skip;
    bool blobs; /* look in blobs as well as children */
    berth_digest by;
    int rc; /* 0, 1 (found), or an error */
} ref_ctx;

static void find_ref(void *value, void *payload)
{
    berth__fsb_manifest *e = value;
    ref_ctx *ctx = payload;
    const unsigned char *p;
    uint32_t n;

    if (ctx->rc != 0 || e == ctx->skip) {
        return;
    }
    ctx->rc = ensure_refs(ctx->m, ctx->r, e);
    p = e->refs;
    n = e->nblobs + e->nchildren;
    for (uint32_t i = 0; ctx->rc == 0 && i < n; i++) {
        size_t len = 1 + raw_len((berth_digest_alg)p[0]);
        if ((ctx->blobs || i >= e->nblobs) && len == ctx->want_len &&
            memcmp(p, ctx->want, len) == 0) {
            ctx->by = e->digest;
            ctx->rc = 1;
        }
        p += len;
    }
}

/* Does a manifest of `r` other than `skip` reference `d` (as a blob when `blobs`, or as an
   index child)? 1 (naming it in `by`), 0, or an error when one cannot be read (then nobody
   can tell). r->lock held for writing. */
static int referenced(fs_meta *m, berth__fsb_repo *r, const berth_digest *d,
                      const berth__fsb_manifest *skip, bool blobs, berth_digest *by)
{
    ref_ctx ctx;
    memset(&ctx, 0, sizeof(ctx));
    ctx.m = m;
    ctx.r = r;
    ctx.want_len = pack_one(ctx.want, d);
    ctx.skip = skip;
    ctx.blobs = blobs;
    berth__htab_foreach(&r->manifests, find_ref, &ctx);
    *by = ctx.by;
    return ctx.rc;
}

static int m_blob_unlink(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                         int64_t older_than)
{
    fs_meta *m = of(b);
    berth_buf path = BERTH_BUF_INIT;
    berth__fsb_repo *r = NULL;
    berth_digest by;
    struct stat st;
    int64_t linked;
    int rc = berth__fsb_writable(m->root);

    if (rc < 0) {
        return rc;
    }
    rc = open_repo(&r, m, repo, true);
    if (rc == BERTH_ENOTFOUND) {
        return berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo);
    }
    if (rc < 0) {
        return rc;
    }
    rc = berth__fsb_blob_path(&path, r->dir, digest);
    if (rc < 0) {
        goto out;
    }
    /* under the write lock a manifest PUT, which checks its references under the same lock,
       cannot slip in between the check and the unlink */
    if (berth__htab_get(&r->manifests, digest->str)) {
        rc = berth_error_set(BERTH_ENOTFOUND, "%s is a manifest of %s, not a blob", digest->str,
                             repo);
        goto out;
    }
    if (lstat(path.ptr, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR
                 ? berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo)
                 : berth__fsb_io_error("stat", path.ptr);
        goto out;
    }
    rc = referenced(m, r, digest, NULL, true, &by);
    if (rc == 1) {
        rc = berth_error_set(BERTH_EINUSE, "blob %s is referenced by manifest %s of %s",
                             digest->str, by.str, repo);
    }
    linked = berth__fsb_link_time(m->root, digest, &st);
    if (rc == 0 && older_than > 0 && linked >= older_than) {
        rc = berth_error_set(BERTH_EBUSY, "blob %s was linked in %s recently", digest->str, repo);
    }
    if (rc == 0 && unlink(path.ptr) != 0) {
        rc = errno == ENOENT
                 ? berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo)
                 : berth__fsb_io_error("unlink", path.ptr);
    }
    if (rc == 0) {
        /* the other links keep their age: our unlink changed the inode's ctime */
        berth__fsb_keep_age(m->root, digest, linked);
        berth__fsb_note_loose(m->root, digest);
        if (r->manifests.count == 0) {
            atomic_store(&r->known_empty, false);
            atomic_store(&r->maybe_empty, true);
        }
    }
    if (rc == 0 && m->root->opts.fsync) {
        rc = berth__fs_fsync_parent(path.ptr);
    }
out:
    pthread_rwlock_unlock(&r->lock);
    berth_buf_dispose(&path);
    return rc;
}

typedef struct link_item {
    berth_digest digest;
    uint64_t size;
    int64_t linked;
} link_item;

typedef struct links_ctx {
    berth__fsb_root *root;
    link_item *items;
    size_t n, cap;
} links_ctx;

static int collect_link(const char *path, const berth_digest *d, const struct stat *st,
                        void *payload)
{
    links_ctx *ctx = payload;
    (void)path;
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 64;
        link_item *items = realloc(ctx->items, cap * sizeof(*items));
        if (!items) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        ctx->items = items;
        ctx->cap = cap;
    }
    ctx->items[ctx->n].digest = *d;
    ctx->items[ctx->n].size = (uint64_t)st->st_size;
    ctx->items[ctx->n].linked = berth__fsb_link_time(ctx->root, d, st);
    ctx->n++;
    return 0;
}

static int m_links(berth_meta_backend *b, const char *repo, berth_meta_link_cb cb, void *payload)
{
    fs_meta *m = of(b);
    links_ctx ctx = {m->root, NULL, 0, 0};
    berth__fsb_repo *r;
    berth_buf dir = BERTH_BUF_INIT;
    size_t kept = 0;
    int rc = open_repo(&r, m, repo, false);

    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        return 0; /* no repository holds nothing */
    }
    if (rc < 0) {
        return rc;
    }
    rc = berth_buf_printf(&dir, "%s/blobs", r->dir);
    if (rc == 0) {
        rc = berth__fsb_each_blob(dir.ptr, collect_link, &ctx);
    }
    /* the repository's manifests are stored as blobs of the layout, but are not links */
    for (size_t i = 0; rc == 0 && i < ctx.n; i++) {
        if (!berth__htab_get(&r->manifests, ctx.items[i].digest.str)) {
            ctx.items[kept++] = ctx.items[i];
        }
    }
    pthread_rwlock_unlock(&r->lock);
    for (size_t i = 0; rc == 0 && i < kept; i++) {
        rc = cb(&ctx.items[i].digest, ctx.items[i].size, ctx.items[i].linked, payload);
    }
    free(ctx.items);
    berth_buf_dispose(&dir);
    return rc;
}

/* ---- manifests and tags ------------------------------------------------------------------ */

/* Write manifest bytes as a blob of the repository (unless it is there already). */
static int store_manifest_blob(fs_meta *m, berth__fsb_repo *r, const berth_digest *d,
                               const void *data, size_t len)
{
    berth_buf path = BERTH_BUF_INIT, tmp = BERTH_BUF_INIT;
    struct stat st;
    bool linking = false;
    int rc = berth__fsb_blob_path(&path, r->dir, d);

    if (rc < 0 || stat(path.ptr, &st) == 0) {
        goto out;
    }
    rc = berth_buf_printf(&tmp, "%s/manifest.%s.%u", m->root->tmp, berth_digest_hex(d),
                          atomic_fetch_add(&m->staged, 1));
    if (rc == 0) {
        rc = berth__fs_write_atomic(m->root->tmp, tmp.ptr, data, len, m->root->opts.fsync);
    }
    if (rc == 0) {
        rc = link_begin(m->root, d);
        linking = rc == 0;
    }
    if (rc == 0) {
        rc = publish(m->root, r, tmp.ptr, d);
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_EIO, "storing the manifest failed: %s", berth_error_last());
    }
    if (linking) {
        link_end(m->root, d);
    }
    if (tmp.ptr) {
        unlink(tmp.ptr);
    }
out:
    berth_buf_dispose(&path);
    berth_buf_dispose(&tmp);
    return rc;
}

/* Every m->blobs linked and every m->children a manifest of `r` (r->lock held), else
   BERTH_ENOTFOUND naming the first absent one in `missing`. */
static int check_refs(fs_meta *m, berth__fsb_repo *r, const berth_meta_manifest *mf,
                      berth_digest *missing)
{
    berth_buf path = BERTH_BUF_INIT;
    int rc = 0;

    (void)m;
    for (size_t i = 0; rc == 0 && i < mf->nblobs; i++) {
        struct stat st;
        berth_buf_clear(&path);
        rc = berth__fsb_blob_path(&path, r->dir, &mf->blobs[i]);
        if (rc == 0 && stat(path.ptr, &st) != 0) {
            if (errno == ENOENT || errno == ENOTDIR) {
                *missing = mf->blobs[i];
                rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", mf->blobs[i].str,
                                     r->name);
            } else {
                rc = berth__fsb_io_error("stat", path.ptr);
            }
        }
    }
    for (size_t i = 0; rc == 0 && i < mf->nchildren; i++) {
        if (!berth__htab_get(&r->manifests, mf->children[i].str)) {
            *missing = mf->children[i];
            rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", mf->children[i].str,
                                 r->name);
        }
    }
    berth_buf_dispose(&path);
    return rc;
}

static int m_manifest_put(berth_meta_backend *b, const char *repo, const berth_meta_manifest *mf,
                          const char *const *tags, size_t ntags, berth_digest *missing_out)
{
    fs_meta *m = of(b);
    berth__fsb_repo *r = NULL;
    berth__fsb_manifest *e = NULL, *fresh = NULL;
    bool refs = mf->nblobs + mf->nchildren > 0;
    berth_digest missing;
    int rc = berth__fsb_writable(m->root);

    if (rc < 0) {
        return rc;
    }
    /* a new repository is made only for a manifest whose references could be there */
    rc = find_repo(&r, m, repo, !refs || mf->sparse);
    if (rc == BERTH_ENOTFOUND) {
        missing = mf->nblobs ? mf->blobs[0] : mf->children[0];
        if (missing_out) {
            *missing_out = missing;
        }
        return berth_error_set(BERTH_ENOTFOUND, "%s %s not in %s", mf->nblobs ? "blob" : "manifest",
                               missing.str, repo);
    }
    if (rc < 0 || (rc = wrlock_loaded(m, r)) < 0) {
        return rc;
    }
    if (!mf->sparse && (rc = check_refs(m, r, mf, &missing)) < 0) {
        if (missing_out && rc == BERTH_ENOTFOUND) {
            *missing_out = missing;
        }
        goto unlock;
    }
    e = berth__htab_get(&r->manifests, mf->digest.str);
    if (!e) {
        rc = store_manifest_blob(m, r, &mf->digest, mf->data, (size_t)mf->size);
        if (rc < 0) {
            goto unlock;
        }
        fresh = e = calloc(1, sizeof(*e));
        if (!e || !(e->media_type = strdup(mf->media_type)) ||
            (mf->artifact_type && !(e->artifact_type = strdup(mf->artifact_type)))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto unlock;
        }
        e->digest = mf->digest;
        e->size = (int64_t)mf->size;
        e->pushed = mf->pushed;
        e->has_subject = mf->has_subject;
        if (mf->has_subject) {
            e->subject = mf->subject;
        }
        if (mf->sparse) {
            /* recorded sparse only when something is really absent */
            e->sparse = check_refs(m, r, mf, &missing) < 0;
            berth_error_clear();
        }
        rc = set_refs(e, mf->blobs, mf->nblobs, mf->children, mf->nchildren);
        if (rc < 0) {
            goto unlock;
        }
        rc = berth__htab_put(&r->manifests, e->digest.str, e);
        if (rc < 0) {
            goto unlock;
        }
        fresh = NULL;
    } else if (mf->pushed > e->pushed) {
        e->pushed = mf->pushed; /* pushed again: as young as its last push (gc's grace) */
    }
    for (size_t i = 0; rc == 0 && i < ntags; i++) {
        rc = berth__fsb_set_tag(r, tags[i], e, mf->pushed);
    }
    if (rc == 0) {
        rc = berth__fsb_repo_save(m->root, r);
    }
    if (rc == 0) {
        atomic_store(&r->maybe_empty, false);
    }
    if (rc < 0) {
        /* memory may be ahead of the disk: reload on next use */
        berth__fsb_repo_free_state(r, &m->cache);
        e = NULL;
    }
unlock:
    if (rc == 0 && !atomic_load(&e->cached)) {
        /* warm the cache with the bytes just pushed */
        berth__fsb_cache_release(berth__fsb_cache_put(&m->cache, e, mf->data, (size_t)mf->size));
    }
    pthread_rwlock_unlock(&r->lock);
    berth__fsb_manifest_free(fresh, &m->cache);
    return rc;
}

static int m_tag_get(berth_meta_backend *b, const char *repo, const char *tag,
                     berth_digest *digest_out)
{
    fs_meta *m = of(b);
    berth__fsb_repo *r;
    bool found;
    size_t i;
    int rc = open_repo(&r, m, repo, false);

    if (rc < 0) {
        return rc;
    }
    i = berth__fsb_tag_index(r, tag, &found);
    if (found) {
        *digest_out = r->tags[i].manifest->digest;
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", tag, repo);
    }
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

/* The bytes of manifest `digest` of `repo`, with a reference the caller releases: from the
   cache, else read from the layout (and cached when they fit). */
static int manifest_bytes(berth__fsb_cached **out, fs_meta *m, const char *repo,
                          const berth_digest *digest)
{
    berth_buf bytes = BERTH_BUF_INIT;
    berth__fsb_manifest *e;
    berth__fsb_cached *c = NULL;
    berth__fsb_repo *r;
    int rc = open_repo(&r, m, repo, false);

    if (rc < 0) {
        return rc;
    }
    e = berth__htab_get(&r->manifests, digest->str);
    if (!e) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", digest->str, repo);
    } else if (!(c = berth__fsb_cache_get(&m->cache, e))) {
        rc = berth__fsb_read_manifest(&bytes, r, &e->digest);
        if (rc == BERTH_ENOTFOUND) {
            rc = berth_error_set(BERTH_EIO, "manifest %s of %s: its bytes are missing", digest->str,
                                 repo);
        }
        if (rc == 0 &&
            !(c = berth__fsb_cache_put(&m->cache, e, bytes.ptr ? bytes.ptr : "", bytes.len))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    pthread_rwlock_unlock(&r->lock);
    berth_buf_dispose(&bytes);
    *out = c;
    return rc;
}

static int m_manifest_get(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                          berth_meta_blob_doc *out)
{
    berth__fsb_cached *c = NULL;
    int rc = manifest_bytes(&c, of(b), repo, digest);

    memset(out, 0, sizeof(*out));
    if (rc < 0) {
        return rc;
    }
    out->data = malloc(c->len + 1);
    out->media_type = strdup(c->loan.media_type);
    if (!out->data || !out->media_type) {
        free(out->data);
        free(out->media_type);
        memset(out, 0, sizeof(*out));
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    } else {
        memcpy(out->data, c->bytes, c->len + 1);
        out->len = c->len;
    }
    berth__fsb_cache_release(c);
    return rc;
}

/* The cache's entry itself, lent: a manifest GET sends these bytes without a copy. */
static int m_manifest_lend(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                           berth_meta_loan **out)
{
    berth__fsb_cached *c = NULL;
    int rc = manifest_bytes(&c, of(b), repo, digest);

    if (rc == 0) {
        *out = &c->loan;
    }
    return rc;
}

static int m_manifest_delete(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                             int64_t older_than)
{
    fs_meta *m = of(b);
    berth_buf path = BERTH_BUF_INIT;
    berth__fsb_manifest *e;
    berth__fsb_repo *r;
    berth_digest by;
    size_t j = 0;
    int rc = berth__fsb_writable(m->root);

    if (rc < 0 || (rc = open_repo(&r, m, repo, true)) < 0) {
        return rc;
    }
    e = berth__htab_get(&r->manifests, digest->str);
    if (!e) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", digest->str, repo);
        goto out;
    }
    rc = referenced(m, r, digest, e, false, &by);
    if (rc == 1) {
        rc = berth_error_set(BERTH_EINUSE, "manifest %s is referenced by %s of %s", digest->str,
                             by.str, repo);
    }
    if (rc == 0 && older_than > 0 && (e->ntags > 0 || e->pushed >= older_than)) {
        rc = berth_error_set(BERTH_EBUSY, "manifest %s of %s is tagged or recent", digest->str,
                             repo);
    }
    if (rc < 0) {
        goto out;
    }
    for (size_t i = 0; i < r->ntags; i++) {
        if (r->tags[i].manifest == e) {
            free(r->tags[i].name);
        } else {
            r->tags[j++] = r->tags[i];
        }
    }
    r->ntags = j;
    berth__htab_remove(&r->manifests, digest->str);
    rc = berth__fsb_repo_save(m->root, r);
    berth__fsb_manifest_free(e, &m->cache);
    if (rc < 0) {
        berth__fsb_repo_free_state(r, &m->cache);
        goto out;
    }
    /* The file is also the repository's link of the blob with this digest: another manifest
       that references that blob (a manifest's bytes pushed as a layer too) keeps it. */
    if ((rc = referenced(m, r, digest, NULL, true, &by)) != 0) {
        if (rc < 0) { /* nobody can tell whether it is needed: it stays (gc decides later) */
            berth__log(BERTH_LOG_WARN, "%s of %s kept: %s", digest->str, repo, berth_error_last());
        }
        rc = 0;
        goto out;
    }
    rc = berth__fsb_blob_path(&path, r->dir, digest);
    if (rc == 0) {
        struct stat st;
        int64_t linked = lstat(path.ptr, &st) == 0 ? berth__fsb_link_time(m->root, digest, &st) : 0;
        if (unlink(path.ptr) != 0 && errno != ENOENT) {
            berth__log(BERTH_LOG_WARN, "unlink %s: %s", path.ptr, strerror(errno));
        } else if (linked) {
            /* the manifest's other copies keep their age */
            berth__fsb_keep_age(m->root, digest, linked);
        }
    }
    berth__fsb_note_loose(m->root, digest);
    if (r->manifests.count == 0) {
        atomic_store(&r->known_empty, false);
        atomic_store(&r->maybe_empty, true);
    }
out:
    pthread_rwlock_unlock(&r->lock);
    berth_buf_dispose(&path);
    return rc;
}

static int m_tag_delete(berth_meta_backend *b, const char *repo, const char *tag,
                        const berth_digest *digest)
{
    fs_meta *m = of(b);
    berth__fsb_repo *r;
    berth__fsb_tag removed;
    bool found;
    size_t i;
    int rc = berth__fsb_writable(m->root);

    if (rc < 0 || (rc = open_repo(&r, m, repo, true)) < 0) {
        return rc;
    }
    i = berth__fsb_tag_index(r, tag, &found);
    if (!found) {
        rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", tag, repo);
        goto out;
    }
    if (digest && !berth_digest_equal(&r->tags[i].manifest->digest, digest)) {
        rc = berth_error_set(BERTH_EBUSY, "tag %s of %s was moved", tag, repo);
        goto out;
    }
    removed = r->tags[i];
    memmove(r->tags + i, r->tags + i + 1, (r->ntags - i - 1) * sizeof(*r->tags));
    r->ntags--;
    removed.manifest->ntags--;
    rc = berth__fsb_repo_save(m->root, r);
    free(removed.name);
    if (rc < 0) {
        berth__fsb_repo_free_state(r, &m->cache);
    }
out:
    pthread_rwlock_unlock(&r->lock);
    return rc;
}

typedef struct tag_item {
    char *name;
    berth_digest digest;
    int64_t pushed;
} tag_item;

static int m_tags(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                  berth_meta_tag_cb cb, void *payload, bool *more_out)
{
    fs_meta *m = of(b);
    berth__fsb_repo *r;
    tag_item *page = NULL;
    char *names = NULL;
    size_t i = 0, count = 0, names_len = 0;
    bool more_none;
    int rc = open_repo(&r, m, repo, false);

    if (!more_out) {
        more_out = &more_none; /* a caller that does not ask */
    }
    *more_out = false;
    if (rc < 0) {
        return rc;
    }
    if (last) {
        bool found;
        i = berth__fsb_tag_index(r, last, &found);
        i += found;
    }
    count = r->ntags - i;
    if (n && count > n) {
        count = n;
        *more_out = true;
    }
    /* copied out (names into one block) so that the callback runs without the lock */
    for (size_t k = 0; k < count; k++) {
        names_len += strlen(r->tags[i + k].name) + 1;
    }
    page = malloc((count ? count : 1) * sizeof(*page)); /* every member is set below */
    names = malloc(names_len ? names_len : 1);
    if (page && names) {
        char *p = names;
        for (size_t k = 0; k < count; k++) {
            const berth__fsb_tag *t = &r->tags[i + k];
            size_t len = strlen(t->name) + 1;
            memcpy(p, t->name, len);
            page[k].name = p;
            page[k].digest = t->manifest->digest;
            page[k].pushed = t->pushed;
            p += len;
        }
    } else {
        count = 0;
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_rwlock_unlock(&r->lock);
    for (size_t k = 0; rc == 0 && k < count; k++) {
        rc = cb(page[k].name, &page[k].digest, page[k].pushed, payload);
    }
    free(names);
    free(page);
    return rc;
}

typedef struct ref_item {
    berth_digest digest;
    char *media_type;
    char *artifact_type;
    uint64_t size;
} ref_item;

typedef struct referrers_ctx {
    const berth_digest *subject;
    const char *artifact_type;
    const char *last;
    ref_item *items;
    size_t n, cap;
    int rc;
} referrers_ctx;

static void collect_referrer(void *value, void *payload)
{
    berth__fsb_manifest *e = value;
    referrers_ctx *ctx = payload;
    ref_item *it;

    if (ctx->rc < 0 || !e->has_subject || !berth_digest_equal(&e->subject, ctx->subject)) {
        return;
    }
    if (ctx->artifact_type &&
        (!e->artifact_type || strcmp(e->artifact_type, ctx->artifact_type) != 0)) {
        return;
    }
    if (ctx->last && strcmp(e->digest.str, ctx->last) <= 0) {
        return;
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 8;
        ref_item *items = realloc(ctx->items, cap * sizeof(*items));
        if (!items) {
            ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return;
        }
        ctx->items = items;
        ctx->cap = cap;
    }
    it = &ctx->items[ctx->n];
    it->digest = e->digest;
    it->size = (uint64_t)e->size;
    it->media_type = strdup(e->media_type);
    it->artifact_type = e->artifact_type ? strdup(e->artifact_type) : NULL;
    ctx->n++;
    if (!it->media_type || (e->artifact_type && !it->artifact_type)) {
        ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
}

static int by_digest(const void *a, const void *b)
{
    return strcmp(((const ref_item *)a)->digest.str, ((const ref_item *)b)->digest.str);
}

static int m_referrers(berth_meta_backend *b, const char *repo, const berth_digest *subject,
                       const char *artifact_type, const char *last, size_t n,
                       berth_meta_referrer_cb cb, void *payload, bool *more_out)
{
    fs_meta *m = of(b);
    referrers_ctx ctx = {subject, artifact_type, last, NULL, 0, 0, 0};
    berth__fsb_repo *r;
    size_t count;
    bool more_none;
    int rc = open_repo(&r, m, repo, false);

    if (!more_out) {
        more_out = &more_none; /* a caller that does not ask */
    }
    *more_out = false;
    if (rc < 0) {
        return rc;
    }
    berth__htab_foreach(&r->manifests, collect_referrer, &ctx);
    pthread_rwlock_unlock(&r->lock);
    rc = ctx.rc;
    if (ctx.n > 1) {
        qsort(ctx.items, ctx.n, sizeof(*ctx.items), by_digest);
    }
    count = ctx.n;
    if (n && count > n) {
        count = n;
        *more_out = true;
    }
    for (size_t i = 0; rc == 0 && i < count; i++) {
        berth_meta_referrer ref = {ctx.items[i].digest, ctx.items[i].media_type,
                                   ctx.items[i].artifact_type, ctx.items[i].size};
        rc = cb(&ref, payload);
    }
    for (size_t i = 0; i < ctx.n; i++) {
        free(ctx.items[i].media_type);
        free(ctx.items[i].artifact_type);
    }
    free(ctx.items);
    return rc;
}

typedef struct mf_item {
    berth_digest digest;
    char *media_type;
    char *artifact_type;
    bool has_subject;
    berth_digest subject;
    uint64_t size;
    int64_t pushed;
    unsigned ntags;
    bool sparse;
    berth_digest *refs; /* nblobs blobs, then nchildren children */
    size_t nblobs, nchildren;
} mf_item;

typedef struct mf_ctx {
    fs_meta *m;
    berth__fsb_repo *r;
    mf_item *items;
    size_t n;
    int rc;
} mf_ctx;

static void collect_manifest(void *value, void *payload)
{
    berth__fsb_manifest *e = value;
    mf_ctx *ctx = payload;
    mf_item *it;
    const unsigned char *p;

    if (ctx->rc < 0 || (ctx->rc = ensure_refs(ctx->m, ctx->r, e)) < 0) {
        return;
    }
    it = &ctx->items[ctx->n++];
    it->digest = e->digest;
    it->media_type = strdup(e->media_type);
    it->artifact_type = e->artifact_type ? strdup(e->artifact_type) : NULL;
    it->has_subject = e->has_subject;
    it->subject = e->subject;
    it->size = (uint64_t)e->size;
    it->pushed = e->pushed;
    it->ntags = e->ntags;
    it->sparse = e->sparse;
    it->nblobs = e->nblobs;
    it->nchildren = e->nchildren;
    it->refs = calloc(e->nblobs + e->nchildren + 1, sizeof(*it->refs));
    if (!it->media_type || (e->artifact_type && !it->artifact_type) || !it->refs) {
        ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return;
    }
    p = e->refs;
    for (size_t i = 0; i < it->nblobs + it->nchildren; i++) {
        unpack_one(&it->refs[i], &p);
    }
}

static int m_manifests(berth_meta_backend *b, const char *repo, berth_meta_manifest_cb cb,
                       void *payload)
{
    fs_meta *m = of(b);
    mf_ctx ctx = {m, NULL, NULL, 0, 0};
    berth__fsb_repo *r;
    /* the write lock: references not known yet are read from the bytes and kept */
    int rc = open_repo(&r, m, repo, true);

    if (rc < 0) {
        return rc;
    }
    ctx.r = r;
    ctx.items = calloc(r->manifests.count ? r->manifests.count : 1, sizeof(*ctx.items));
    if (ctx.items) {
        berth__htab_foreach(&r->manifests, collect_manifest, &ctx);
    } else {
        ctx.rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_rwlock_unlock(&r->lock);
    rc = ctx.rc;
    for (size_t i = 0; rc == 0 && i < ctx.n; i++) {
        mf_item *it = &ctx.items[i];
        berth_meta_manifest mf;

        memset(&mf, 0, sizeof(mf));
        mf.digest = it->digest;
        mf.media_type = it->media_type;
        mf.artifact_type = it->artifact_type;
        mf.has_subject = it->has_subject;
        mf.subject = it->subject;
        mf.size = it->size;
        mf.blobs = it->refs;
        mf.nblobs = it->nblobs;
        mf.children = it->refs + it->nblobs;
        mf.nchildren = it->nchildren;
        mf.sparse = it->sparse;
        mf.pushed = it->pushed;
        mf.ntags = it->ntags;
        rc = cb(&mf, payload);
    }
    for (size_t i = 0; i < ctx.n; i++) {
        free(ctx.items[i].media_type);
        free(ctx.items[i].artifact_type);
        free(ctx.items[i].refs);
    }
    free(ctx.items);
    return rc;
}

/* ---- garbage collection's claims ---------------------------------------------------------- */

typedef struct cand_ctx {
    berth__fsb_root *root;
    berth_digest *list;
    size_t n, cap;
    int64_t older_than;
} cand_ctx;

static int collect_candidate(const char *path, const berth_digest *d, const struct stat *st,
                             void *payload)
{
    cand_ctx *ctx = payload;
    (void)path;
    if (st->st_nlink != 1 || berth__fsb_link_time(ctx->root, d, st) >= ctx->older_than) {
        return 0;
    }
    if (ctx->n == ctx->cap) {
        size_t cap = ctx->cap ? ctx->cap * 2 : 64;
        berth_digest *list = realloc(ctx->list, cap * sizeof(*list));
        if (!list) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        ctx->list = list;
        ctx->cap = cap;
    }
    ctx->list[ctx->n++] = *d;
    return 0;
}

static int digest_cmp(const void *a, const void *b)
{
    return strcmp(((const berth_digest *)a)->str, ((const berth_digest *)b)->str);
}

static void free_loose(void *value, void *payload)
{
    (void)payload;
    free(value);
}

typedef struct merge_ctx {
    fs_meta *m;
    int rc;
} merge_ctx;

static void merge_one(void *value, void *payload)
{
    merge_ctx *ctx = payload;
    fs_meta *m = ctx->m;
    if (ctx->rc < 0) {
        return;
    }
    if (m->ncandidates == m->candidates_cap) {
        size_t cap = m->candidates_cap ? m->candidates_cap * 2 : 64;
        berth_digest *list = realloc(m->candidates, cap * sizeof(*list));
        if (!list) {
            ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return;
        }
        m->candidates = list;
        m->candidates_cap = cap;
    }
    m->candidates[m->ncandidates++] = *(const berth_digest *)value;
}

/* Add the loosened digests to the candidates, sorted, each once (claim_lock held). */
static int merge_loosened(fs_meta *m)
{
    merge_ctx ctx = {m, 0};
    size_t kept = 0;

    berth__htab_foreach(&m->root->loosened, merge_one, &ctx);
    if (ctx.rc < 0) {
        return ctx.rc;
    }
    berth__htab_foreach(&m->root->loosened, free_loose, NULL);
    berth__htab_dispose(&m->root->loosened);
    qsort(m->candidates, m->ncandidates, sizeof(*m->candidates), digest_cmp);
    for (size_t i = 0; i < m->ncandidates; i++) {
        if (kept == 0 || strcmp(m->candidates[kept - 1].str, m->candidates[i].str) != 0) {
            m->candidates[kept++] = m->candidates[i];
        }
    }
    m->ncandidates = kept;
    m->sorted = true;
    return 0;
}

static int m_gc_blob_claim(berth_meta_backend *b, const char *after, int64_t older_than,
                           berth_digest *digest_out, uint64_t *size_out,
                           berth_meta_claim **claim_out)
{
    fs_meta *m = of(b);
    berth__fsb_root *root = m->root;
    berth_buf path = BERTH_BUF_INIT;
    berth_meta_claim *claim = NULL;
    size_t lo = 0, hi;
    int rc;

    /* a claim is kept in memory: a read-only root can be claimed from (gc --dry-run); only
       the release that deletes writes */
    pthread_mutex_lock(&root->claim_lock);
    if (!after || !m->candidates || m->candidates_older_than != older_than) {
        /* one walk of the pool per pass: later claims of the pass continue from its list,
           with what lost its last link since added (root->loosened); each candidate is
           checked again before it is claimed */
        cand_ctx ctx = {root, NULL, 0, 0, older_than};
        berth__htab_foreach(&root->loosened, free_loose, NULL);
        berth__htab_dispose(&root->loosened);
        pthread_mutex_unlock(&root->claim_lock);
        rc = berth__fsb_each_blob(root->pool, collect_candidate, &ctx);
        if (rc < 0) {
            free(ctx.list);
            return rc;
        }
        pthread_mutex_lock(&root->claim_lock);
        free(m->candidates);
        m->candidates = ctx.list;
        m->ncandidates = ctx.n;
        m->candidates_cap = ctx.cap;
        m->candidates_older_than = older_than;
        m->sorted = false;
    }
    if (root->loosened.count > 0) {
        rc = merge_loosened(m);
        if (rc < 0) {
            pthread_mutex_unlock(&root->claim_lock);
            return rc;
        }
    }
    if (m->ncandidates > 1 && !m->sorted) {
        qsort(m->candidates, m->ncandidates, sizeof(*m->candidates), digest_cmp);
        m->sorted = true;
    }
    hi = m->ncandidates;
    while (after && lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(m->candidates[mid].str, after) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    rc = berth_error_set(BERTH_ENOTFOUND, "nothing more to collect");
    for (size_t i = lo; i < m->ncandidates; i++) {
        const berth_digest *d = &m->candidates[i];
        struct stat st;
        if (berth__htab_get(&root->claimed, d->str) || berth__htab_get(&root->linking, d->str)) {
            continue;
        }
        berth_buf_clear(&path);
        if (berth__fsb_pool_path(&path, root, d) < 0 || lstat(path.ptr, &st) != 0 ||
            st.st_nlink != 1 || berth__fsb_link_time(root, d, &st) >= older_than) {
            continue; /* gone, linked or touched since the walk */
        }
        claim = calloc(1, sizeof(*claim));
        if (!claim) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        claim->digest = *d;
        if (berth__htab_put(&root->claimed, claim->digest.str, claim) < 0) {
            free(claim);
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        berth_error_clear();
        rc = 0;
        *digest_out = *d;
        *size_out = (uint64_t)st.st_size;
        *claim_out = claim;
        break;
    }
    pthread_mutex_unlock(&root->claim_lock);
    berth_buf_dispose(&path);
    return rc;
}

static int m_gc_blob_release(berth_meta_backend *b, berth_meta_claim *claim, bool deleted)
{
    fs_meta *m = of(b);
    berth_buf path = BERTH_BUF_INIT;
    int rc = 0;

    if (!claim) {
        return 0;
    }
    if (deleted && (rc = berth__fsb_writable(m->root)) < 0) {
        deleted = false;
    }
    if (deleted && berth__fsb_pool_path(&path, m->root, &claim->digest) == 0 &&
        unlink(path.ptr) != 0 && errno != ENOENT) {
        /* the pool is the record of a blob: forgotten, it goes (the caller removed its bytes
           through the blob backend, which is the same file) */
        rc = berth__fsb_io_error("unlink", path.ptr);
    }
    berth_buf_dispose(&path);
    pthread_mutex_lock(&m->root->claim_lock);
    berth__htab_remove(&m->root->claimed, claim->digest.str);
    pthread_cond_broadcast(&m->root->claim_cond);
    pthread_mutex_unlock(&m->root->claim_lock);
    free(claim);
    return rc;
}

/* ---- the backend -------------------------------------------------------------------------- */

static void free_repo_cb(void *value, void *payload)
{
    berth__fsb_repo_free(value, payload);
}

static void m_free(berth_meta_backend *b)
{
    fs_meta *m = of(b);
    if (!m) {
        return;
    }
    berth__fsb_uploads_dispose(&m->uploads);
    berth__htab_foreach(&m->repos, free_repo_cb, &m->cache);
    berth__htab_dispose(&m->repos);
    free(m->catalog);
    free(m->candidates);
    pthread_rwlock_destroy(&m->repos_lock);
    pthread_mutex_destroy(&m->cache.lock);
    berth__fsb_root_unref(m->root);
    free(m);
}

/* The upload members live in uploads.c; these adapt the backend pointer. */
static int m_upload_create(berth_meta_backend *b, const berth_meta_upload *u,
                           const berth_meta_upload_limits *limits)
{
    return berth__fsb_upload_create(&of(b)->uploads, u, limits);
}

static int m_upload_get(berth_meta_backend *b, const char *repo, const char *id,
                        berth_meta_upload *out)
{
    return berth__fsb_upload_get(&of(b)->uploads, repo, id, out, false);
}

static int m_upload_acquire(berth_meta_backend *b, const char *repo, const char *id,
                            berth_meta_upload *out)
{
    return berth__fsb_upload_get(&of(b)->uploads, repo, id, out, true);
}

static int m_upload_update(berth_meta_backend *b, const berth_meta_upload *u)
{
    return berth__fsb_upload_update(&of(b)->uploads, u);
}

static void m_upload_release(berth_meta_backend *b, const char *id)
{
    berth__fsb_upload_release(&of(b)->uploads, id);
}

static int m_upload_delete(berth_meta_backend *b, const char *id)
{
    return berth__fsb_upload_delete(&of(b)->uploads, id);
}

static int m_uploads(berth_meta_backend *b, berth_meta_upload_cb cb, void *payload)
{
    return berth__fsb_uploads_each(&of(b)->uploads, cb, payload);
}

int berth__fsb_meta_new(berth_meta_backend **out, berth__fsb_root *root)
{
    fs_meta *m = calloc(1, sizeof(*m));
    int rc;

    if (!m) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    m->pub.version = BERTH_META_BACKEND_VERSION;
    m->pub.name = "fs";
    m->pub.repo_exists = m_repo_exists;
    m->pub.catalog = m_catalog;
    m->pub.blob_touch = m_blob_touch;
    m->pub.blob_link = m_blob_link;
    m->pub.blob_stat = m_blob_stat;
    m->pub.blob_unlink = m_blob_unlink;
    m->pub.links = m_links;
    m->pub.manifest_put = m_manifest_put;
    m->pub.tag_get = m_tag_get;
    m->pub.manifest_get = m_manifest_get;
    m->pub.manifest_delete = m_manifest_delete;
    m->pub.tag_delete = m_tag_delete;
    m->pub.tags = m_tags;
    m->pub.referrers = m_referrers;
    m->pub.manifests = m_manifests;
    m->pub.upload_create = m_upload_create;
    m->pub.upload_get = m_upload_get;
    m->pub.upload_acquire = m_upload_acquire;
    m->pub.upload_update = m_upload_update;
    m->pub.upload_release = m_upload_release;
    m->pub.upload_delete = m_upload_delete;
    m->pub.uploads = m_uploads;
    m->pub.gc_blob_claim = m_gc_blob_claim;
    m->pub.gc_blob_release = m_gc_blob_release;
    m->pub.free = m_free;
    m->pub.blob_open_fd = m_blob_open_fd;
    m->pub.manifest_lend = m_manifest_lend;
    m->root = berth__fsb_root_ref(root);
    pthread_rwlock_init(&m->repos_lock, NULL);
    pthread_mutex_init(&m->cache.lock, NULL);
    m->cache.budget = root->opts.cache_bytes;
    atomic_init(&m->staged, 0);
    rc = berth__fsb_scan(root, add_found, m);
    if (rc == 0) {
        rc = berth__fsb_uploads_open(&m->uploads, root);
    }
    if (rc < 0) {
        m_free(&m->pub);
        return rc;
    }
    *out = &m->pub;
    return 0;
}

/* For the tools (tools.c): every repository in catalog order, with its directory. */
berth__fsb_cache *berth__fsb_meta_cache(berth_meta_backend *b)
{
    return &((fs_meta *)b)->cache;
}

berth__fsb_root *berth__fsb_meta_root(berth_meta_backend *b)
{
    return ((fs_meta *)b)->root;
}

int berth__fsb_meta_each_repo(berth_meta_backend *b,
                              int (*fn)(berth__fsb_repo *r, berth__fsb_cache *cache, void *payload),
                              void *payload)
{
    fs_meta *m = of(b);
    berth__fsb_repo **list;
    size_t n;
    int rc = 0;

    pthread_rwlock_rdlock(&m->repos_lock);
    n = m->ncatalog;
    list = calloc(n ? n : 1, sizeof(*list));
    for (size_t i = 0; list && i < n; i++) {
        list[i] = berth__htab_get(&m->repos, m->catalog[i]);
    }
    pthread_rwlock_unlock(&m->repos_lock);
    if (!list) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = fn(list[i], &m->cache, payload);
    }
    free(list);
    return rc;
}
