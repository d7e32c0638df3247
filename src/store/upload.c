/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upload sessions. A session is a directory ROOT/_berth/uploads/<id>/ holding `repo` (the
 * repository name, written first and fsynced) and `data` (the bytes so far). The hash of the
 * bytes is kept in memory while the server runs, so that a chunked upload is hashed once as it
 * streams; after a restart it is rebuilt from `data` when the session is next opened.
 *
 * Durability: berth_upload_close() fsyncs `data` before the server acknowledges a chunk, and
 * berth_upload_commit() fsyncs before the blob is linked into place. Writeback of a large
 * upload is started every few MiB (sync_file_range) so that the final fsync is short.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "store/store_internal.h"

#include "base/log.h"
#include "store/fs/fs.h"

#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITEBACK_STEP (8u * 1024 * 1024)

typedef struct upload_session {
    char id[BERTH_UPLOAD_ID_MAX + 1];
    char *repo;
    bool busy;
    berth_hasher *hasher; /* SHA-256 of the bytes so far */
    uint64_t size;
    uint64_t acked; /* size when the session was last released (what status reports) */
} upload_session;

struct berth_upload {
    berth_store *store;
    upload_session *session;
    char *dir;
    int fd;
    uint64_t synced; /* writeback started up to here */
};

static int session_end(berth_upload *u);

static void session_free(upload_session *sess)
{
    if (!sess) {
        return;
    }
    berth_hasher_free(sess->hasher);
    free(sess->repo);
    free(sess);
}

static void session_free_cb(void *value, void *payload)
{
    (void)payload;
    session_free(value);
}

void berth__uploads_free(berth_store *s)
{
    berth__htab_foreach(&s->sessions, session_free_cb, NULL);
    berth__htab_dispose(&s->sessions);
}

static char *session_dir(const berth_store *s, const char *id)
{
    berth_buf b = BERTH_BUF_INIT;
    if (berth_buf_printf(&b, "%s/%s", s->uploads, id) < 0) {
        berth_buf_dispose(&b);
        return NULL;
    }
    return berth_buf_detach(&b);
}

static bool valid_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        if (!((id[n] >= '0' && id[n] <= '9') || (id[n] >= 'a' && id[n] <= 'f'))) {
            return false;
        }
    }
    return n == 32;
}

static int open_data(berth_upload *u, int flags)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/data", u->dir);
    u->fd = open(path, flags | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
    if (u->fd < 0) {
        return berth_error_set(errno == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO, "open %s: %s", path,
                               strerror(errno));
    }
    return 0;
}

static berth_upload *handle_new(berth_store *s, upload_session *sess)
{
    berth_upload *u = calloc(1, sizeof(*u));
    if (!u || !(u->dir = session_dir(s, sess->id))) {
        free(u);
        return NULL;
    }
    u->store = s;
    u->session = sess;
    u->fd = -1;
    u->synced = sess->size;
    return u;
}

static void handle_free(berth_upload *u)
{
    if (u->fd >= 0) {
        close(u->fd);
    }
    free(u->dir);
    free(u);
}

int berth_store_upload_new(berth_upload **out, berth_store *s, const char *repo_name)
{
    unsigned char raw[16];
    upload_session *sess = calloc(1, sizeof(*sess));
    berth_upload *u = NULL;
    char path[4096];
    int rc;

    berth_error_clear();
    if (!sess || !(sess->repo = strdup(repo_name)) ||
        berth_hasher_new(&sess->hasher, BERTH_DIGEST_SHA256) < 0) {
        session_free(sess);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        session_free(sess);
        return berth_error_set(BERTH_ERROR, "no random bytes for an upload id");
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(sess->id + 2 * i, 3, "%02x", raw[i]);
    }
    sess->busy = true;
    u = handle_new(s, sess);
    if (!u) {
        session_free(sess);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    /* registered (busy) before its directory exists, so that a concurrent collection of
       stale sessions never takes a session being made for debris */
    pthread_mutex_lock(&s->lock);
    rc = berth__htab_put(&s->sessions, sess->id, sess);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        handle_free(u);
        session_free(sess);
        return rc;
    }
    rc = berth__fs_mkdirs(u->dir);
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/repo", u->dir);
        rc = berth__fs_write_atomic(s->tmp, path, repo_name, strlen(repo_name), s->opts.fsync);
    }
    if (rc == 0) {
        rc = open_data(u, O_CREAT | O_EXCL);
    }
    if (rc == 0 && s->opts.fsync) {
        rc = berth__fs_fsync_dir(u->dir);
        if (rc == 0) {
            rc = berth__fs_fsync_dir(s->uploads);
        }
    }
    if (rc < 0) {
        session_end(u);
        return rc;
    }
    *out = u;
    return 0;
}

/* Rebuild a session of an earlier run from its directory (store->lock held). */
static int session_recover(upload_session **out, berth_store *s, const char *id)
{
    char *dir = session_dir(s, id);
    berth_buf repo_name = BERTH_BUF_INIT, path = BERTH_BUF_INIT;
    upload_session *sess = NULL;
    berth_digest ignored;
    uint64_t size = 0;
    int fd = -1, rc;

    if (!dir) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = berth_buf_printf(&path, "%s/repo", dir);
    if (rc == 0) {
        rc = berth__fs_read_file(&repo_name, path.ptr, 1024);
    }
    if (rc < 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id);
        goto out;
    }
    sess = calloc(1, sizeof(*sess));
    if (!sess || !(sess->repo = berth_buf_detach(&repo_name)) ||
        berth_hasher_new(&sess->hasher, BERTH_DIGEST_SHA256) < 0) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    memcpy(sess->id, id, strlen(id) + 1);
    berth_buf_clear(&path);
    rc = berth_buf_printf(&path, "%s/data", dir);
    fd = rc == 0 ? open(path.ptr, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload %s has no data", id);
        goto out;
    }
    /* replay the bytes through the hasher, to continue where the last run stopped */
    for (;;) {
        char chunk[65536];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = berth_error_set(BERTH_EIO, "read %s: %s", path.ptr, strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        berth_hasher_update(sess->hasher, chunk, (size_t)n);
        size += (uint64_t)n;
    }
    (void)ignored;
    sess->size = sess->acked = size;
    rc = berth__htab_put(&s->sessions, sess->id, sess);
    if (rc == 0) {
        *out = sess;
        sess = NULL;
    }
out:
    if (fd >= 0) {
        close(fd);
    }
    session_free(sess);
    free(dir);
    berth_buf_dispose(&repo_name);
    berth_buf_dispose(&path);
    return rc;
}

int berth_store_upload_open(berth_upload **out, berth_store *s, const char *repo_name,
                            const char *id)
{
    upload_session *sess;
    berth_upload *u;
    int rc = 0;

    berth_error_clear();
    if (!valid_id(id)) {
        return berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id);
    }
    pthread_mutex_lock(&s->lock);
    sess = berth__htab_get(&s->sessions, id);
    if (!sess) {
        rc = session_recover(&sess, s, id);
    }
    if (rc == 0 && strcmp(sess->repo, repo_name) != 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "upload %s not known in %s", id, repo_name);
    } else if (rc == 0 && sess->busy) {
        rc = berth_error_set(BERTH_EBUSY, "upload %s is in use by another request", id);
    }
    if (rc == 0) {
        sess->busy = true;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        return rc;
    }
    u = handle_new(s, sess);
    if (!u) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    } else {
        rc = open_data(u, 0);
    }
    if (rc < 0) {
        pthread_mutex_lock(&s->lock);
        sess->busy = false;
        pthread_mutex_unlock(&s->lock);
        if (u) {
            handle_free(u);
        }
        return rc;
    }
    *out = u;
    return 0;
}

int berth_store_upload_stat(berth_store *s, const char *repo_name, const char *id, uint64_t *size)
{
    upload_session *sess;
    berth_upload *u = NULL;
    int rc = BERTH_ENOTFOUND;

    berth_error_clear();
    if (!valid_id(id)) {
        return berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id);
    }
    pthread_mutex_lock(&s->lock);
    sess = berth__htab_get(&s->sessions, id);
    if (sess && strcmp(sess->repo, repo_name) == 0) {
        /* busy or not: the size as of the last request that ended */
        *size = sess->busy ? sess->acked : sess->size;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    if (sess) {
        return rc == 0 ? 0 : berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id);
    }
    /* not in memory (a restart): opening it rebuilds it */
    if ((rc = berth_store_upload_open(&u, s, repo_name, id)) < 0) {
        return rc;
    }
    *size = berth_upload_size(u);
    return berth_upload_close(u) < 0 ? berth_error_last_code() : 0;
}

const char *berth_upload_id(const berth_upload *u)
{
    return u->session->id;
}

uint64_t berth_upload_size(const berth_upload *u)
{
    return u->session->size;
}

int berth_upload_write(berth_upload *u, const void *data, size_t len)
{
    const char *p = data;
    size_t left = len;

    while (left > 0) {
        ssize_t n = write(u->fd, p, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return berth_error_set(errno == ENOSPC ? BERTH_ETOOBIG : BERTH_EIO, "upload write: %s",
                                   strerror(errno));
        }
        p += n;
        left -= (size_t)n;
    }
    berth_hasher_update(u->session->hasher, data, len);
    u->session->size += len;
    if (u->store->opts.fsync && u->session->size - u->synced >= WRITEBACK_STEP) {
        /* start writeback now, so that the fsync at the end has little left to do */
        sync_file_range(u->fd, (off_t)u->synced, (off_t)(u->session->size - u->synced),
                        SYNC_FILE_RANGE_WRITE);
        u->synced = u->session->size;
    }
    return 0;
}

/* Release the session for other requests (store->lock taken here). */
static void session_release(berth_store *s, upload_session *sess)
{
    pthread_mutex_lock(&s->lock);
    sess->busy = false;
    sess->acked = sess->size;
    pthread_mutex_unlock(&s->lock);
}

/* End the session: forget it and remove its directory. */
static int session_end(berth_upload *u)
{
    berth_store *s = u->store;
    int rc;

    if (u->fd >= 0) {
        close(u->fd);
        u->fd = -1;
    }
    pthread_mutex_lock(&s->lock);
    berth__htab_remove(&s->sessions, u->session->id);
    pthread_mutex_unlock(&s->lock);
    rc = berth__fs_rmtree(u->dir);
    session_free(u->session);
    handle_free(u);
    return rc;
}

int berth_upload_close(berth_upload *u)
{
    int rc = 0;
    if (!u) {
        return 0;
    }
    if (u->store->opts.fsync && fsync(u->fd) != 0) {
        rc = berth_error_set(BERTH_EIO, "upload fsync: %s", strerror(errno));
    }
    session_release(u->store, u->session);
    handle_free(u);
    return rc;
}

int berth_upload_cancel(berth_upload *u)
{
    return session_end(u);
}

int berth_upload_commit(berth_upload *u, const berth_digest *expected)
{
    berth_store *s = u->store;
    berth_digest got;
    repo *r = NULL;
    char data[4096];
    int rc;

    snprintf(data, sizeof(data), "%s/data", u->dir);
    if (s->opts.fsync && fsync(u->fd) != 0) {
        rc = berth_error_set(BERTH_EIO, "upload fsync: %s", strerror(errno));
        session_release(s, u->session);
        handle_free(u);
        return rc;
    }
    if (expected->alg == BERTH_DIGEST_SHA256) {
        rc = berth_hasher_peek(&got, u->session->hasher);
    } else {
        rc = berth_digest_file(&got, expected->alg, data, NULL);
    }
    if (rc == 0 && !berth_digest_equal(&got, expected)) {
        rc = berth_error_set(BERTH_EMISMATCH, "uploaded content has digest %s, not %s", got.str,
                             expected->str);
    }
    if (rc == 0) {
        rc = berth__store_repo(&r, s, u->session->repo, true);
    }
    if (rc == 0) {
        rc = berth__store_publish_blob(s, r, data, expected);
    }
    if (rc == BERTH_EIO) {
        /* keep the session: the client may retry the commit */
        session_release(s, u->session);
        handle_free(u);
        return rc;
    }
    session_end(u);
    return rc;
}

int berth__uploads_gc(berth_store *s, bool dry_run, uint64_t *removed)
{
    DIR *d = opendir(s->uploads);
    struct dirent *e;
    time_t now = time(NULL);

    if (!d) {
        return berth_error_set(BERTH_EIO, "opendir %s: %s", s->uploads, strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        upload_session *sess;
        bool stale;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s/data", s->uploads, e->d_name);
        pthread_mutex_lock(&s->lock);
        sess = berth__htab_get(&s->sessions, e->d_name);
        if (stat(path, &st) != 0) {
            /* no data (a crash while the session was made): its directory's age counts */
            snprintf(path, sizeof(path), "%s/%s", s->uploads, e->d_name);
            if (stat(path, &st) != 0) {
                st.st_mtime = now;
            }
        }
        stale = (!sess || !sess->busy) && now - st.st_mtime > (time_t)s->opts.upload_ttl_seconds;
        if (stale && !dry_run && sess) {
            berth__htab_remove(&s->sessions, e->d_name);
            session_free(sess);
        }
        pthread_mutex_unlock(&s->lock);
        if (!stale) {
            continue;
        }
        if (removed) {
            (*removed)++;
        }
        if (!dry_run) {
            snprintf(path, sizeof(path), "%s/%s", s->uploads, e->d_name);
            berth__log(BERTH_LOG_INFO, "removing stale upload session %s", e->d_name);
            berth__fs_rmtree(path);
        }
    }
    closedir(d);
    return 0;
}
