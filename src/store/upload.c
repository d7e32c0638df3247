/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upload sessions. A session is one file, ROOT/_berth/uploads/<id>.<repo key>.<owner key>,
 * holding the bytes so far; the keys are the first 16 hex digits of the SHA-256 of the
 * repository name and of the owner, so a session costs one inode and its file name says which
 * repository and owner it counts against. The store knows every session (a scan at open
 * registers those of earlier runs), bounds them (in all, per repository, per owner) and reaps
 * those idle past the upload TTL.
 *
 * The hash of the bytes is kept in memory while the server runs, so that a chunked upload is
 * hashed once as it streams. A session of an earlier run is rebuilt from its file when it is
 * next opened, with no store-wide lock held: only that session is busy meanwhile.
 *
 * Invariant: the bytes on disk are the bytes counted (size) and hashed. Writes go to explicit
 * offsets and a failed write cuts the file back. Each handle keeps a restore point (size and
 * hash state when the request began): a refused request rolls back to it, so it changes
 * nothing. A commit checks the stored length, and re-hashes the stored bytes when the running
 * hash was rebuilt, before anything becomes visible.
 *
 * Durability: berth_upload_close() fsyncs before the server acknowledges a chunk, and
 * berth_upload_commit() fsyncs before the blob is linked into place. Writeback of a large
 * upload is started every few MiB (sync_file_range) so that the final fsync is short.
 *
 * Messages returned to callers name no server path; the log has the detail.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "store/store_internal.h"

#include "base/log.h"
#include "base/fs.h"

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
#define ID_LEN         32
#define KEY_LEN        16
#define FILE_LEN       (ID_LEN + 1 + KEY_LEN + 1 + KEY_LEN)

typedef struct upload_session {
    char id[ID_LEN + 1];
    char file[FILE_LEN + 1]; /* <id>.<repo key>.<owner key> */
    char *repo;              /* the repository's name, once known (NULL for a session of an
                                earlier run not opened since) */
    bool busy;
    bool cold;            /* hasher and size not built: rebuilt from the file at next open */
    bool verify;          /* the commit hashes the stored bytes (the hash was rebuilt) */
    berth_hasher *hasher; /* SHA-256 of the bytes so far */
    uint64_t size;
    time_t touched; /* last use by a request */
    uint64_t acked; /* size when the session was last released (what status reports) */
} upload_session;

/* Sessions per repository key or owner key. */
typedef struct session_count {
    char key[KEY_LEN + 1];
    size_t n;
} session_count;

struct berth_upload {
    berth_store *store;
    upload_session *session;
    int fd;
    bool created;            /* this handle made the session */
    uint64_t synced;         /* writeback started up to here */
    uint64_t mark;           /* restore point: size */
    berth_hasher *mark_hash; /* restore point: hash state, taken before the first write past it */
};

static int session_end(berth_upload *u);

/* ---- bookkeeping (store->lock held) ------------------------------------------------------ */

static void key_of(char out[KEY_LEN + 1], const char *text)
{
    berth_digest d;
    if (berth_digest_buffer(&d, BERTH_DIGEST_SHA256, text, strlen(text)) == 0) {
        memcpy(out, berth_digest_hex(&d), KEY_LEN);
    } else {
        memset(out, '0', KEY_LEN);
    }
    out[KEY_LEN] = '\0';
}

static size_t count_get(const berth__htab *t, const char *key)
{
    const session_count *c = berth__htab_get(t, key);
    return c ? c->n : 0;
}

static int count_add(berth__htab *t, const char *key)
{
    session_count *c = berth__htab_get(t, key);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        memcpy(c->key, key, KEY_LEN + 1);
        if (berth__htab_put(t, c->key, c) < 0) {
            free(c);
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    c->n++;
    return 0;
}

static void count_drop(berth__htab *t, const char *key)
{
    session_count *c = berth__htab_get(t, key);
    if (c && --c->n == 0) {
        berth__htab_remove(t, key);
        free(c);
    }
}

static const char *repo_key(const upload_session *sess)
{
    return sess->file + ID_LEN + 1;
}

static const char *owner_key(const upload_session *sess)
{
    return sess->file + ID_LEN + 1 + KEY_LEN + 1;
}

static int session_register(berth_store *s, upload_session *sess)
{
    char rk[KEY_LEN + 1];
    int rc;

    memcpy(rk, repo_key(sess), KEY_LEN);
    rk[KEY_LEN] = '\0';
    rc = berth__htab_put(&s->sessions, sess->id, sess);
    if (rc == 0 && (rc = count_add(&s->upload_repos, rk)) < 0) {
        berth__htab_remove(&s->sessions, sess->id);
    }
    if (rc == 0 && (rc = count_add(&s->upload_owners, owner_key(sess))) < 0) {
        count_drop(&s->upload_repos, rk);
        berth__htab_remove(&s->sessions, sess->id);
    }
    return rc;
}

static void session_unregister(berth_store *s, upload_session *sess)
{
    char rk[KEY_LEN + 1];

    memcpy(rk, repo_key(sess), KEY_LEN);
    rk[KEY_LEN] = '\0';
    if (berth__htab_get(&s->sessions, sess->id) == sess) {
        berth__htab_remove(&s->sessions, sess->id);
        count_drop(&s->upload_repos, rk);
        count_drop(&s->upload_owners, owner_key(sess));
    }
}

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

static void count_free_cb(void *value, void *payload)
{
    (void)payload;
    free(value);
}

void berth__uploads_free(berth_store *s)
{
    berth__htab_foreach(&s->sessions, session_free_cb, NULL);
    berth__htab_dispose(&s->sessions);
    berth__htab_foreach(&s->upload_repos, count_free_cb, NULL);
    berth__htab_dispose(&s->upload_repos);
    berth__htab_foreach(&s->upload_owners, count_free_cb, NULL);
    berth__htab_dispose(&s->upload_owners);
}

/* ---- names and files ----------------------------------------------------------------------- */

static bool hex_run(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool valid_id(const char *id)
{
    return strlen(id) == ID_LEN && hex_run(id, ID_LEN);
}

/* A session file name: <32 hex>.<16 hex>.<16 hex>. */
static bool session_file_name(const char *name)
{
    return strlen(name) == FILE_LEN && hex_run(name, ID_LEN) && name[ID_LEN] == '.' &&
           hex_run(name + ID_LEN + 1, KEY_LEN) && name[ID_LEN + 1 + KEY_LEN] == '.' &&
           hex_run(name + ID_LEN + 2 + KEY_LEN, KEY_LEN);
}

static void session_path(char *out, size_t size, const berth_store *s, const upload_session *sess)
{
    snprintf(out, size, "%s/%s", s->uploads, sess->file);
}

/* The berth code of a failed write, read or sync. */
static int storage_code(int err)
{
    return err == ENOSPC || err == EDQUOT || err == EFBIG ? BERTH_ENOSPACE : BERTH_EIO;
}

/* Record a failure of the session's file: the caller's message has no path; the log has it. */
static int file_error(const berth_upload *u, const char *what, int err)
{
    char path[4096];
    session_path(path, sizeof(path), u->store, u->session);
    berth__log(BERTH_LOG_WARN, "upload %s: %s %s: %s", u->session->id, what, path, strerror(err));
    return berth_error_set(storage_code(err), "upload %s: %s", what, strerror(err));
}

/* Hash the whole file from its start into `h`. */
static int hash_fd(int fd, berth_hasher *h, uint64_t *size_out)
{
    char chunk[65536];
    uint64_t off = 0;

    for (;;) {
        ssize_t n = pread(fd, chunk, sizeof(chunk), (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break;
        }
        berth_hasher_update(h, chunk, (size_t)n);
        off += (uint64_t)n;
    }
    *size_out = off;
    return 0;
}

static berth_upload *handle_new(berth_store *s, upload_session *sess, int fd)
{
    berth_upload *u = calloc(1, sizeof(*u));
    if (!u) {
        return NULL;
    }
    u->store = s;
    u->session = sess;
    u->fd = fd;
    u->synced = sess->size;
    u->mark = sess->size;
    return u;
}

static void handle_free(berth_upload *u)
{
    if (u->fd >= 0) {
        close(u->fd);
    }
    berth_hasher_free(u->mark_hash);
    free(u);
}

/* Release the session for other requests. */
static void session_release(berth_store *s, upload_session *sess)
{
    pthread_mutex_lock(&s->lock);
    sess->busy = false;
    sess->acked = sess->size;
    sess->touched = time(NULL);
    pthread_mutex_unlock(&s->lock);
}

/* ---- sessions ------------------------------------------------------------------------------ */

int berth_store_upload_new(berth_upload **out, berth_store *s, const char *repo_name,
                           const char *owner)
{
    unsigned char raw[ID_LEN / 2];
    upload_session *sess = calloc(1, sizeof(*sess));
    char rk[KEY_LEN + 1], ok[KEY_LEN + 1], path[4096];
    berth_upload *u = NULL;
    const berth_store_options *o = &s->opts;
    int fd, err, rc = 0;

    berth_error_clear();
    if (!owner) {
        owner = "";
    }
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
    key_of(rk, repo_name);
    key_of(ok, owner);
    snprintf(sess->file, sizeof(sess->file), "%s.%s.%s", sess->id, rk, ok);
    sess->busy = true;
    sess->touched = time(NULL);
    /* registered (busy) before its file exists, so that a concurrent reaping never takes a
       session being made for debris */
    pthread_mutex_lock(&s->lock);
    if (o->upload_sessions_max && s->sessions.count >= o->upload_sessions_max) {
        rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open (%zu)",
                             o->upload_sessions_max);
    } else if (o->upload_sessions_per_repo &&
               count_get(&s->upload_repos, rk) >= o->upload_sessions_per_repo) {
        rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open in %s (%zu)",
                             repo_name, o->upload_sessions_per_repo);
    } else if (o->upload_sessions_per_owner && *owner &&
               count_get(&s->upload_owners, ok) >= o->upload_sessions_per_owner) {
        rc = berth_error_set(BERTH_EBUSY, "too many upload sessions are open for %s (%zu)", owner,
                             o->upload_sessions_per_owner);
    } else {
        rc = session_register(s, sess);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        session_free(sess);
        return rc;
    }
    session_path(path, sizeof(path), s, sess);
    fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644);
    err = errno;
    if (fd >= 0 && s->opts.fsync && berth__fs_fsync_dir(s->uploads) < 0) {
        err = EIO;
        close(fd);
        unlink(path);
        fd = -1;
    }
    if (fd < 0 || !(u = handle_new(s, sess, fd))) {
        if (fd >= 0) {
            close(fd);
            unlink(path);
            err = ENOMEM;
        }
        berth__log(BERTH_LOG_WARN, "upload: create %s: %s", path, strerror(err));
        pthread_mutex_lock(&s->lock);
        session_unregister(s, sess);
        pthread_mutex_unlock(&s->lock);
        session_free(sess);
        return err == ENOMEM ? berth_error_set(BERTH_ENOMEM, "out of memory")
                             : berth_error_set(storage_code(err), "cannot create an upload: %s",
                                               strerror(err));
    }
    u->created = true;
    *out = u;
    return 0;
}

/* Rebuild the hash and size of a session of an earlier run from its file (session busy, no
   lock held). */
static int session_rebuild(berth_upload *u)
{
    upload_session *sess = u->session;
    berth_hasher *h = NULL;
    uint64_t size = 0;
    int rc = berth_hasher_new(&h, BERTH_DIGEST_SHA256);

    if (rc < 0) {
        return rc;
    }
    rc = hash_fd(u->fd, h, &size);
    if (rc < 0) {
        berth_hasher_free(h);
        return file_error(u, "read", -rc);
    }
    berth_hasher_free(sess->hasher);
    sess->hasher = h;
    sess->size = size;
    sess->cold = false;
    sess->verify = true;
    pthread_mutex_lock(&u->store->lock);
    sess->acked = size;
    pthread_mutex_unlock(&u->store->lock);
    u->synced = u->mark = size;
    return 0;
}

/* Session `id` (any text) of repository `repo_name` (store->lock held), or NULL with the error
   set. */
static upload_session *session_find(berth_store *s, const char *repo_name, const char *id)
{
    upload_session *sess = valid_id(id) ? berth__htab_get(&s->sessions, id) : NULL;
    char rk[KEY_LEN + 1];

    key_of(rk, repo_name);
    if (!sess || memcmp(repo_key(sess), rk, KEY_LEN) != 0) {
        berth_error_set(BERTH_ENOTFOUND, "upload %s not known in %s", id, repo_name);
        return NULL;
    }
    return sess;
}

int berth_store_upload_open(berth_upload **out, berth_store *s, const char *repo_name,
                            const char *id)
{
    upload_session *sess;
    berth_upload *u = NULL;
    char path[4096];
    int fd, rc = 0;

    berth_error_clear();
    pthread_mutex_lock(&s->lock);
    if (!(sess = session_find(s, repo_name, id))) {
        rc = BERTH_ENOTFOUND;
    } else if (sess->busy) {
        rc = berth_error_set(BERTH_EBUSY, "upload %s is in use by another request", id);
    } else if (!sess->repo && !(sess->repo = strdup(repo_name))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (rc == 0) {
        sess->busy = true;
        sess->touched = time(NULL);
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0) {
        return rc;
    }
    session_path(path, sizeof(path), s, sess);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        int err = errno;
        session_release(s, sess);
        berth__log(BERTH_LOG_WARN, "upload %s: open %s: %s", id, path, strerror(err));
        return err == ENOENT ? berth_error_set(BERTH_ENOTFOUND, "upload %s not known", id)
                             : berth_error_set(BERTH_EIO, "upload %s: open: %s", id, strerror(err));
    }
    u = handle_new(s, sess, fd);
    if (!u) {
        close(fd);
        session_release(s, sess);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (sess->cold && (rc = session_rebuild(u)) < 0) {
        session_release(s, sess);
        handle_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

int berth_store_upload_stat(berth_store *s, const char *repo_name, const char *id, uint64_t *size)
{
    upload_session *sess;
    berth_upload *u = NULL;
    bool cold = false;
    int rc = 0;

    berth_error_clear();
    pthread_mutex_lock(&s->lock);
    if (!(sess = session_find(s, repo_name, id))) {
        rc = BERTH_ENOTFOUND;
    } else if (sess->busy) {
        *size = sess->acked; /* as of the last request that ended */
    } else if (sess->cold) {
        cold = true;
    } else {
        *size = sess->size;
    }
    pthread_mutex_unlock(&s->lock);
    if (rc < 0 || !cold) {
        return rc;
    }
    /* a session of an earlier run: opening it rebuilds it (and a racing open makes it busy,
       which is no failure for a status) */
    rc = berth_store_upload_open(&u, s, repo_name, id);
    if (rc == BERTH_EBUSY) {
        return berth_store_upload_stat(s, repo_name, id, size);
    }
    if (rc < 0) {
        return rc;
    }
    *size = berth_upload_size(u);
    return berth_upload_close(u);
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
    upload_session *sess = u->session;
    const char *p = data;
    size_t done = 0;
    int rc;

    if (len == 0) {
        return 0;
    }
    if (!u->mark_hash && (rc = berth_hasher_dup(&u->mark_hash, sess->hasher)) < 0) {
        return rc;
    }
    while (done < len) {
        ssize_t n = pwrite(u->fd, p + done, len - done, (off_t)(sess->size + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            /* a short write leaves part of the data: the file goes back to what is counted */
            if (ftruncate(u->fd, (off_t)sess->size) != 0) {
                berth__log(BERTH_LOG_WARN, "upload %s: cannot cut back to %llu bytes: %s", sess->id,
                           (unsigned long long)sess->size, strerror(errno));
                sess->verify = true;
            }
            return file_error(u, "write", err);
        }
        done += (size_t)n;
    }
    berth_hasher_update(sess->hasher, data, len);
    sess->size += len;
    if (u->store->opts.fsync && sess->size - u->synced >= WRITEBACK_STEP) {
        /* start writeback now, so that the fsync at the end has little left to do */
        sync_file_range(u->fd, (off_t)u->synced, (off_t)(sess->size - u->synced),
                        SYNC_FILE_RANGE_WRITE);
        u->synced = sess->size;
    }
    return 0;
}

void berth_upload_mark(berth_upload *u)
{
    berth_hasher_free(u->mark_hash);
    u->mark_hash = NULL;
    u->mark = u->session->size;
}

int berth_upload_rollback(berth_upload *u)
{
    upload_session *sess = u->session;

    /* durable too: a crash right after a refusal must not bring the refused bytes back */
    if (ftruncate(u->fd, (off_t)u->mark) != 0 ||
        (u->store->opts.fsync && u->mark_hash && fsync(u->fd) != 0)) {
        int err = errno;
        /* what is on disk is unknown now: rebuild from it at the next open, verify at commit */
        sess->cold = true;
        sess->verify = true;
        return file_error(u, "truncate", err);
    }
    if (u->mark_hash) {
        berth_hasher_free(sess->hasher);
        sess->hasher = u->mark_hash;
        u->mark_hash = NULL;
    }
    sess->size = u->mark;
    if (u->synced > u->mark) {
        u->synced = u->mark;
    }
    return 0;
}

int berth_upload_abort(berth_upload *u)
{
    int rc;

    if (!u) {
        return 0;
    }
    if (u->created) {
        return session_end(u);
    }
    rc = berth_upload_rollback(u);
    session_release(u->store, u->session);
    handle_free(u);
    return rc;
}

/* End the session: forget it and remove its file. */
static int session_end(berth_upload *u)
{
    berth_store *s = u->store;
    char path[4096];
    int rc = 0;

    session_path(path, sizeof(path), s, u->session);
    pthread_mutex_lock(&s->lock);
    session_unregister(s, u->session);
    pthread_mutex_unlock(&s->lock);
    if (unlink(path) != 0 && errno != ENOENT) {
        rc = file_error(u, "unlink", errno);
    }
    session_free(u->session);
    handle_free(u);
    return rc;
}

int berth_upload_close(berth_upload *u)
{
    int rc;

    if (!u) {
        return 0;
    }
    if (u->store->opts.fsync && fsync(u->fd) != 0) {
        rc = file_error(u, "sync", errno);
        berth_upload_rollback(u);
        session_release(u->store, u->session);
        handle_free(u);
        return rc;
    }
    session_release(u->store, u->session);
    handle_free(u);
    return 0;
}

int berth_upload_cancel(berth_upload *u)
{
    return session_end(u);
}

int berth_upload_commit(berth_upload *u, const berth_digest *expected)
{
    berth_store *s = u->store;
    upload_session *sess = u->session;
    berth_hasher *h = NULL;
    berth_digest got;
    struct stat st;
    uint64_t stored = 0;
    char path[4096];
    repo *r = NULL;
    int rc = 0;

    session_path(path, sizeof(path), s, sess);
    if (s->opts.fsync && fsync(u->fd) != 0) {
        rc = file_error(u, "sync", errno);
        goto refused;
    }
    if (fstat(u->fd, &st) != 0) {
        rc = file_error(u, "stat", errno);
        goto refused;
    }
    if ((uint64_t)st.st_size != sess->size) {
        berth__log(BERTH_LOG_ERROR, "upload %s: %s holds %lld bytes, the session counted %llu",
                   sess->id, path, (long long)st.st_size, (unsigned long long)sess->size);
        sess->verify = true;
        rc = berth_error_set(BERTH_EIO, "upload %s: the stored bytes differ from those received",
                             sess->id);
        goto refused;
    }
    if (expected->alg == BERTH_DIGEST_SHA256 && !sess->verify) {
        rc = berth_hasher_peek(&got, sess->hasher);
    } else {
        /* the running hash may not describe the stored bytes: hash what is stored */
        rc = berth_hasher_new(&h, expected->alg);
        if (rc == 0 && (rc = hash_fd(u->fd, h, &stored)) < 0) {
            rc = file_error(u, "read", -rc);
        }
        if (rc == 0) {
            rc = berth_hasher_peek(&got, h);
        }
        berth_hasher_free(h);
    }
    if (rc == 0 && !berth_digest_equal(&got, expected)) {
        rc = berth_error_set(BERTH_EMISMATCH, "uploaded content has digest %s, not %s", got.str,
                             expected->str);
    }
    if (rc == 0) {
        rc = berth__store_repo(&r, s, sess->repo, true);
    }
    if (rc == 0) {
        rc = berth__store_publish_blob(s, r, path, expected);
    }
    if (rc == 0) {
        session_end(u);
        return 0;
    }
refused:
    /* the request changes nothing: the client may retry */
    berth_upload_abort(u);
    return rc;
}

/* ---- the directory: scan at open, reaping, usage ---------------------------------------- */

/* Move a session of the earlier layout (<id>/repo, <id>/data) to its file. */
static void migrate_legacy(berth_store *s, const char *id)
{
    berth_buf repo_name = BERTH_BUF_INIT;
    char dir[4096], from[4200], to[4200], rk[KEY_LEN + 1], ok[KEY_LEN + 1];

    snprintf(dir, sizeof(dir), "%s/%s", s->uploads, id);
    snprintf(from, sizeof(from), "%s/repo", dir);
    if (berth__fs_read_file(&repo_name, from, 1024) == 0) {
        key_of(rk, repo_name.ptr);
        key_of(ok, "");
        snprintf(from, sizeof(from), "%s/data", dir);
        snprintf(to, sizeof(to), "%s/%s.%s.%s", s->uploads, id, rk, ok);
        if (rename(from, to) == 0) {
            berth__fs_rmtree(dir);
        }
    }
    berth_error_clear();
    berth_buf_dispose(&repo_name);
}

int berth__uploads_scan(berth_store *s)
{
    DIR *d = opendir(s->uploads);
    struct dirent *e;
    int rc = 0;

    if (!d) {
        berth__log(BERTH_LOG_ERROR, "opendir %s: %s", s->uploads, strerror(errno));
        return berth_error_set(BERTH_EIO, "cannot read the upload sessions: %s", strerror(errno));
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strlen(e->d_name) == ID_LEN && hex_run(e->d_name, ID_LEN)) {
            migrate_legacy(s, e->d_name);
        }
    }
    rewinddir(d);
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;
        upload_session *sess;

        if (!session_file_name(e->d_name)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", s->uploads, e->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        sess = calloc(1, sizeof(*sess));
        if (!sess) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        memcpy(sess->id, e->d_name, ID_LEN);
        memcpy(sess->file, e->d_name, FILE_LEN + 1);
        sess->cold = true;
        sess->size = (uint64_t)st.st_size;
        sess->touched = st.st_mtime;
        pthread_mutex_lock(&s->lock);
        rc = berth__htab_get(&s->sessions, sess->id) ? 0 : session_register(s, sess);
        if (rc == 0 && berth__htab_get(&s->sessions, sess->id) != sess) {
            session_free(sess); /* the same id twice: the first one counts */
        }
        pthread_mutex_unlock(&s->lock);
        if (rc < 0) {
            session_free(sess);
        }
    }
    closedir(d);
    return rc;
}

int berth__uploads_gc(berth_store *s, bool dry_run, uint64_t *removed)
{
    DIR *d = opendir(s->uploads);
    struct dirent *e;
    time_t now = time(NULL);

    if (!d) {
        berth__log(BERTH_LOG_ERROR, "opendir %s: %s", s->uploads, strerror(errno));
        return berth_error_set(BERTH_EIO, "cannot read the upload sessions: %s", strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096], id[ID_LEN + 1];
        struct stat st;
        upload_session *sess = NULL;
        time_t last;
        bool stale;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", s->uploads, e->d_name);
        last = lstat(path, &st) == 0 ? st.st_mtime : now;
        memcpy(id, e->d_name, ID_LEN);
        id[strnlen(e->d_name, ID_LEN)] = '\0';
        pthread_mutex_lock(&s->lock);
        if (session_file_name(e->d_name)) {
            sess = berth__htab_get(&s->sessions, id);
            if (sess && strcmp(sess->file, e->d_name) != 0) {
                sess = NULL;
            }
        }
        if (sess && sess->touched > last) {
            last = sess->touched;
        }
        stale = (!sess || !sess->busy) && now - last > (time_t)s->opts.upload_ttl_seconds;
        if (stale && !dry_run && sess) {
            session_unregister(s, sess);
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
            berth__log(BERTH_LOG_INFO, "removing upload session %s, idle since %lld s", id,
                       (long long)(now - last));
            berth__fs_rmtree(path);
        }
    }
    closedir(d);
    berth_error_clear();
    return 0;
}

int berth_store_uploads_reap(berth_store *s, uint64_t *removed)
{
    berth_error_clear();
    return berth__uploads_gc(s, false, removed);
}

int berth_store_uploads_usage(berth_store *s, uint64_t *count_out, uint64_t *bytes_out)
{
    DIR *d;
    struct dirent *e;
    uint64_t count = 0, bytes = 0;

    berth_error_clear();
    d = opendir(s->uploads);
    if (!d) {
        berth__log(BERTH_LOG_ERROR, "opendir %s: %s", s->uploads, strerror(errno));
        return berth_error_set(BERTH_EIO, "cannot read the upload sessions: %s", strerror(errno));
    }
    while ((e = readdir(d)) != NULL) {
        char path[4096];
        struct stat st;

        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", s->uploads, e->d_name);
        if (lstat(path, &st) != 0) {
            continue;
        }
        if (S_ISDIR(st.st_mode)) {
            /* a session of the earlier layout that could not be moved */
            snprintf(path, sizeof(path), "%s/%s/data", s->uploads, e->d_name);
            st.st_size = lstat(path, &st) == 0 ? st.st_size : 0;
        }
        count++;
        bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    *count_out = count;
    *bytes_out = bytes;
    return 0;
}
