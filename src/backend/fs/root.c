/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The root both fs backends share: its directories, its lock, its options, and the claims of
 * garbage collection. Reference counted, so that the blob and metadata backends may be freed
 * in either order; the flock on ROOT/_berth/lock goes with the last reference.
 */
#include "backend/fs/fs_internal.h"

#include "base/log.h"

#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char *join(const char *a, const char *b)
{
    berth_buf buf = BERTH_BUF_INIT;
    if (berth_buf_printf(&buf, "%s/%s", a, b) < 0) {
        berth_buf_dispose(&buf);
        return NULL;
    }
    return berth_buf_detach(&buf);
}

static void free_value(void *value, void *payload)
{
    (void)payload;
    free(value);
}

void berth__fsb_note_loose(berth__fsb_root *r, const berth_digest *d)
{
    berth_digest *copy;
    pthread_mutex_lock(&r->claim_lock);
    if (!berth__htab_get(&r->loosened, d->str) && (copy = malloc(sizeof(*copy))) != NULL) {
        *copy = *d;
        if (berth__htab_put(&r->loosened, copy->str, copy) < 0) {
            free(copy); /* a missed candidate waits for the next walk of the pool */
        }
    }
    pthread_mutex_unlock(&r->claim_lock);
}

typedef struct berth__fsb_age {
    berth_digest digest;
    int64_t ctime_ns; /* the inode's ctime as our unlink left it */
    int64_t linked;   /* the age the links had before it */
} berth__fsb_age;

/* Entries kept at most; past it the table starts over (links then look young: safe). */
#define AGES_MAX 65536

static int64_t ctime_ns(const struct stat *st)
{
    return (int64_t)st->st_ctim.tv_sec * 1000000000 + (int64_t)st->st_ctim.tv_nsec;
}

int64_t berth__fsb_link_time(berth__fsb_root *r, const berth_digest *d, const struct stat *st)
{
    int64_t t = (int64_t)st->st_ctime;
    berth__fsb_age *a;

    pthread_mutex_lock(&r->ages_lock);
    a = berth__htab_get(&r->ages, d->str);
    if (a && a->ctime_ns == ctime_ns(st)) {
        t = a->linked;
    }
    pthread_mutex_unlock(&r->ages_lock);
    return t;
}

void berth__fsb_keep_age(berth__fsb_root *r, const berth_digest *d, int64_t linked)
{
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    berth__fsb_age *a;

    if (berth__fsb_pool_path(&path, r, d) < 0 || lstat(path.ptr, &st) != 0) {
        berth_buf_dispose(&path);
        return;
    }
    berth_buf_dispose(&path);
    pthread_mutex_lock(&r->ages_lock);
    a = berth__htab_get(&r->ages, d->str);
    if (!a) {
        if (r->ages.count >= AGES_MAX) {
            berth__htab_foreach(&r->ages, free_value, NULL);
            berth__htab_dispose(&r->ages);
        }
        a = malloc(sizeof(*a));
        if (a) {
            a->digest = *d;
            if (berth__htab_put(&r->ages, a->digest.str, a) < 0) {
                free(a);
                a = NULL;
            }
        }
    }
    if (a) {
        a->ctime_ns = ctime_ns(&st);
        a->linked = linked;
    }
    pthread_mutex_unlock(&r->ages_lock);
}

static void root_free(berth__fsb_root *r)
{
    if (!r) {
        return;
    }
    berth__htab_foreach(&r->ages, free_value, NULL);
    berth__htab_dispose(&r->ages);
    pthread_mutex_destroy(&r->ages_lock);
    berth__htab_foreach(&r->loosened, free_value, NULL);
    berth__htab_dispose(&r->loosened);
    if (r->lock_fd >= 0) {
        close(r->lock_fd); /* releases the flock */
    }
    berth__htab_dispose(&r->claimed);
    berth__htab_dispose(&r->linking);
    pthread_mutex_destroy(&r->claim_lock);
    pthread_cond_destroy(&r->claim_cond);
    free(r->root);
    free(r->internal);
    free(r->pool);
    free(r->uploads);
    free(r->tmp);
    free(r);
}

int berth__fsb_root_open(berth__fsb_root **out, const char *root, const berth_fs_options *opts)
{
    berth__fsb_root *r = calloc(1, sizeof(*r));
    int rc = 0;

    if (!r) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    atomic_init(&r->refs, 1);
    r->lock_fd = -1;
    clock_gettime(CLOCK_REALTIME, &r->opened);
    atomic_init(&r->uploads_gen, 1);
    atomic_init(&r->uploads_synced, 0);
    pthread_mutex_init(&r->claim_lock, NULL);
    pthread_mutex_init(&r->ages_lock, NULL);
    pthread_cond_init(&r->claim_cond, NULL);
    if (opts) {
        r->opts = *opts;
    } else {
        r->opts.fsync = true;
        r->opts.lock = true;
    }
    if (!r->opts.cache_bytes) {
        r->opts.cache_bytes = (size_t)8 * 1024 * 1024;
    }
    r->root = strdup(root);
    r->internal = r->root ? join(r->root, "_berth") : NULL;
    r->pool = r->internal ? join(r->internal, "blobs") : NULL;
    r->uploads = r->internal ? join(r->internal, "uploads") : NULL;
    r->tmp = r->internal ? join(r->internal, "tmp") : NULL;
    if (!r->tmp) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (r->opts.read_only) {
        struct stat st;
        r->opts.lock = false;
        if (stat(r->internal, &st) != 0 || !S_ISDIR(st.st_mode)) {
            berth__log(BERTH_LOG_WARN, "%s: not a berth root", r->root);
            rc = berth_error_set(BERTH_ENOTFOUND, "not a berth root");
            goto out;
        }
    } else if ((rc = berth__fs_mkdirs(r->internal)) < 0) {
        goto out;
    }
    if (r->opts.lock) {
        char *path = join(r->internal, "lock");
        r->lock_fd = path ? open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
        free(path);
        if (r->lock_fd < 0) {
            berth__log(BERTH_LOG_ERROR, "%s/lock: %s", r->internal, strerror(errno));
            rc =
                berth_error_set(BERTH_EIO, "cannot open the root's lock file: %s", strerror(errno));
            goto out;
        }
        if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
            rc = berth_error_set(BERTH_EBUSY, "the root is in use by another berth process");
            goto out;
        }
        /* staging debris of a crash goes: only the lock holder may, since a process beside
           a live server would pull files from under its writes */
        if ((rc = berth__fs_rmtree(r->tmp)) < 0) {
            goto out;
        }
    }
    if (!r->opts.read_only &&
        ((rc = berth__fs_mkdirs(r->tmp)) < 0 || (rc = berth__fs_mkdirs(r->uploads)) < 0)) {
        goto out;
    }
    for (int alg = BERTH_DIGEST_SHA256; !r->opts.read_only && alg <= BERTH_DIGEST_SHA512; alg++) {
        char *p = join(r->pool, berth_digest_alg_name((berth_digest_alg)alg));
        rc = p ? berth__fs_mkdirs(p) : berth_error_set(BERTH_ENOMEM, "out of memory");
        free(p);
        if (rc < 0) {
            goto out;
        }
    }
out:
    if (rc < 0) {
        root_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

berth__fsb_root *berth__fsb_root_ref(berth__fsb_root *r)
{
    atomic_fetch_add(&r->refs, 1);
    return r;
}

void berth__fsb_root_unref(berth__fsb_root *r)
{
    if (r && atomic_fetch_sub(&r->refs, 1) == 1) {
        root_free(r);
    }
}

int berth__fsb_writable(const berth__fsb_root *r)
{
    return r->opts.read_only ? berth_error_set(BERTH_EIO, "the storage is open read-only") : 0;
}

int berth__fsb_blob_path(berth_buf *out, const char *dir, const berth_digest *d)
{
    /* on every blob GET and HEAD: no printf */
    int rc = berth_buf_grow(out, strlen(dir) + sizeof("/blobs/sha512/") + BERTH_DIGEST_MAXLEN);
    if (rc == 0) {
        rc = berth_buf_puts(out, dir);
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "/blobs/");
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, berth_digest_alg_name(d->alg));
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "/");
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, berth_digest_hex(d));
    }
    return rc;
}

int berth__fsb_pool_path(berth_buf *out, const berth__fsb_root *r, const berth_digest *d)
{
    return berth__fsb_blob_path(out, r->internal, d);
}

/* Walk for layouts: a directory with an index.json is a repository. */
static int scan(berth_buf *dir, berth_buf *name, int (*add)(const char *, void *), void *payload)
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

        if (entry[0] == '.' || berth__fsb_is_layout_entry(entry)) {
            continue;
        }
        if (entry[0] == '_' && !berth__fsb_is_escaped(entry)) {
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
            /* the entry is enough: an index.json that cannot be read is a damaged
               repository (500 when used), not an absent one */
            if (rc == 0 && lstat(dir->ptr, &st) == 0) {
                if (berth__fsb_check_name(name->ptr) == 0) {
                    rc = add(name->ptr, payload);
                } else {
                    berth_error_clear(); /* a directory no name maps to */
                }
            }
            dir->len = before;
            dir->ptr[before] = '\0';
            if (rc == 0) {
                rc = scan(dir, name, add, payload);
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

int berth__fsb_scan(const berth__fsb_root *root, int (*add)(const char *name, void *payload),
                    void *payload)
{
    berth_buf dir = BERTH_BUF_INIT, name = BERTH_BUF_INIT;
    int rc = berth_buf_puts(&dir, root->root);
    if (rc == 0) {
        rc = berth_buf_grow(&name, 1);
    }
    if (rc == 0) {
        rc = scan(&dir, &name, add, payload);
    }
    berth_buf_dispose(&dir);
    berth_buf_dispose(&name);
    return rc;
}

/*
 * Entries of ROOT/_berth/uploads become durable by an fsync of the directory; several requests
 * make entries there (a session's file at its POST, before the record; the record). Each maker
 * reads the generation after making its entry; each fsync takes the generation (and moves it
 * on) before it starts, and records it when it is done: an fsync that took g started after
 * every entry made while the generation was at most g, so those are durable once it is done.
 */
uint64_t berth__fsb_uploads_gen(berth__fsb_root *r)
{
    return atomic_load(&r->uploads_gen);
}

uint64_t berth__fsb_uploads_sync_begin(berth__fsb_root *r)
{
    return atomic_fetch_add(&r->uploads_gen, 1);
}

void berth__fsb_uploads_synced(berth__fsb_root *r, uint64_t gen)
{
    uint64_t cur = atomic_load(&r->uploads_synced);
    while (cur < gen && !atomic_compare_exchange_weak(&r->uploads_synced, &cur, gen)) {
    }
}

bool berth__fsb_uploads_durable(berth__fsb_root *r, uint64_t gen)
{
    return gen > 0 && atomic_load(&r->uploads_synced) >= gen;
}

int berth__fsb_uploads_fsync(berth__fsb_root *r)
{
    uint64_t gen = berth__fsb_uploads_sync_begin(r);
    int rc = berth__fs_fsync_dir(r->uploads);

    if (rc == 0) {
        berth__fsb_uploads_synced(r, gen);
    }
    return rc;
}
