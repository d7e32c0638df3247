/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Upload sessions, over the two backends: the metadata backend keeps each session's record
 * (repository, owner, size, the running hash's state, the blob writer's state) and lends a
 * session to one request at a time (upload_acquire), across every process that shares it; the
 * blob backend keeps the bytes (a writer). So any process may continue any session: the hash
 * goes on from its written-down state (berth_hasher_export), the bytes from the writer's.
 *
 * Invariant: the record describes the session as the last request that ended left it; a
 * request changes it only by ending well (berth_upload_close: sync the writer, then update the
 * record). A refused request drops what it wrote (the writer's unsynced bytes) and the handle
 * goes back to the record: that is the restore point. A commit checks the stored length, and
 * hashes the stored bytes when the running hash cannot describe them (another algorithm, or a
 * state that could not be read back), before anything becomes visible.
 *
 * Bytes are gathered into slices of SLICE bytes. A full slice is written to the backend by the
 * caller (one write instead of one per piece the HTTP server hands over, and from memory that
 * is still in the caller's cache), then hashed by a thread of the handle's own, started at the
 * first full slice, while the caller receives the next bytes: receiving + writing and hashing
 * overlap on two cores (issue 14). At most DEPTH slices wait for the thread, then the caller
 * waits. The hash is waited for before it is read (save, commit); a handle smaller than a
 * slice never starts the thread and hashes in the caller. Writing stays in the caller, so the
 * backend's write failure is the caller's, at the write that fills a slice or at
 * berth_upload_flush() (the server calls it when the body has ended).
 */
#include "store/store_internal.h"

#include "base/htab.h"
#include "base/log.h"

#include <berth/errors.h>
#include <berth/reference.h>

#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ID_BYTES 16
#define SLICE    (128u * 1024)
#define DEPTH    2
#define PIECE    (64u * 1024)

typedef struct slice {
    char *p;
    size_t len;
} slice;

/* The hashing thread of a handle; everything but `started` under mu. */
typedef struct hash_pipe {
    bool started, stop, busy; /* busy: the thread hashes a slice it took off the queue */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change */
    slice queue[DEPTH];
    unsigned head, count;
    char *spare[DEPTH + 1]; /* hashed slices, for reuse */
    unsigned nspare;
} hash_pipe;

struct berth_upload {
    berth_store *store;
    berth_meta_upload rec; /* the session as its record has it: the restore point */
    berth_blob_writer *w;  /* NULL after a failed commit (the backend freed it) */
    berth_hasher *hasher;  /* SHA-256 of the bytes so far; NULL when unknown (verify) */
    uint64_t size;         /* bytes so far */
    bool created;          /* this handle made the session */
    bool verify;           /* the commit hashes the stored bytes */
    char *cur;             /* the slice being filled; its bytes are counted in size */
    size_t fill;
    int failed;     /* the code of a failed write: no more are taken */
    hash_pipe pipe; /* the hasher belongs to its thread while it runs */
};

static int as_upload_error(int rc, const char *id, const char *repo)
{
    if (rc == BERTH_ENOTFOUND) {
        return berth_error_set(BERTH_ENOTFOUND, "upload %s not known in %s", id, repo);
    }
    if (rc == BERTH_EBUSY) {
        return berth_error_set(BERTH_EBUSY, "upload %s is in use by another request", id);
    }
    return rc;
}

static bool valid_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-') || n >= 64) {
            return false;
        }
    }
    return n > 0;
}

/* The running hash as the record keeps it ("" when unknown). */
static int hash_state(const berth_upload *u, char **out)
{
    if (!u->hasher) {
        *out = strdup("");
        return *out ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return berth_hasher_export(u->hasher, out);
}

/* Set the handle's hash from the record: its state, a fresh hash for no bytes, else unknown. */
static int load_hash(berth_upload *u)
{
    berth_hasher_free(u->hasher);
    u->hasher = NULL;
    /* bytes stored before this process began may have changed at rest (a crash, a disk): the
       commit then hashes what is stored rather than trust the recorded state */
    u->verify = u->rec.size > 0 && u->rec.updated <= u->store->opened;
    if (u->rec.hash_state && *u->rec.hash_state &&
        berth_hasher_import(&u->hasher, u->rec.hash_state) == 0 &&
        berth_hasher_count(u->hasher) == u->rec.size) {
        return 0;
    }
    berth_hasher_free(u->hasher);
    u->hasher = NULL;
    if (u->rec.size == 0) {
        return berth_hasher_new(&u->hasher, BERTH_DIGEST_SHA256);
    }
    u->verify = true; /* continue without one; the commit hashes the stored bytes */
    return 0;
}

static char *slice_new(void)
{
    void *p = NULL;
    return posix_memalign(&p, 4096, SLICE) == 0 ? p : NULL;
}

static void *hash_main(void *cls)
{
    berth_upload *u = cls;
    hash_pipe *hp = &u->pipe;

    pthread_mutex_lock(&hp->mu);
    for (;;) {
        while (!hp->count && !hp->stop) {
            pthread_cond_wait(&hp->cv, &hp->mu);
        }
        if (hp->stop) {
            break;
        }
        slice sl = hp->queue[hp->head];
        hp->head = (hp->head + 1) % DEPTH;
        hp->count--;
        hp->busy = true;
        pthread_mutex_unlock(&hp->mu);
        berth_hasher_update(u->hasher, sl.p, sl.len);
        pthread_mutex_lock(&hp->mu);
        if (hp->nspare < sizeof(hp->spare) / sizeof(hp->spare[0])) {
            hp->spare[hp->nspare++] = sl.p;
        } else {
            free(sl.p); /* never expected: at most DEPTH + 1 slices are hashed and not reused */
        }
        hp->busy = false;
        pthread_cond_broadcast(&hp->cv);
    }
    pthread_mutex_unlock(&hp->mu);
    return NULL;
}

/* Wait until the thread has hashed every slice given to it: the hasher is the caller's again. */
static void hash_wait(berth_upload *u)
{
    hash_pipe *hp = &u->pipe;

    if (!hp->started) {
        return;
    }
    pthread_mutex_lock(&hp->mu);
    while (hp->count || hp->busy) {
        pthread_cond_wait(&hp->cv, &hp->mu);
    }
    pthread_mutex_unlock(&hp->mu);
}

/* Stop the thread (slices not hashed yet are dropped: the caller resets the hash) and free the
   slices. */
static void pipe_stop(berth_upload *u)
{
    hash_pipe *hp = &u->pipe;

    if (hp->started) {
        pthread_mutex_lock(&hp->mu);
        hp->stop = true;
        pthread_cond_broadcast(&hp->cv);
        pthread_mutex_unlock(&hp->mu);
        pthread_join(hp->thread, NULL);
        for (; hp->count; hp->count--, hp->head = (hp->head + 1) % DEPTH) {
            free(hp->queue[hp->head].p);
        }
        for (; hp->nspare; hp->nspare--) {
            free(hp->spare[hp->nspare - 1]);
        }
        pthread_cond_destroy(&hp->cv);
        pthread_mutex_destroy(&hp->mu);
        memset(hp, 0, sizeof(*hp));
    }
    free(u->cur);
    u->cur = NULL;
    u->fill = 0;
}

static bool pipe_start(berth_upload *u)
{
    hash_pipe *hp = &u->pipe;

    memset(hp, 0, sizeof(*hp));
    if (pthread_mutex_init(&hp->mu, NULL) != 0) {
        return false;
    }
    if (pthread_cond_init(&hp->cv, NULL) != 0) {
        pthread_mutex_destroy(&hp->mu);
        return false;
    }
    if (pthread_create(&hp->thread, NULL, hash_main, u) != 0) {
        pthread_cond_destroy(&hp->cv);
        pthread_mutex_destroy(&hp->mu);
        return false;
    }
    hp->started = true;
    return true;
}

/* Write the current slice to the backend and hash it: by the thread when `behind` (started
   if need be), else here. The caller gets an empty slice. */
static int drain(berth_upload *u, bool behind)
{
    hash_pipe *hp = &u->pipe;
    char *next = NULL;
    int rc;

    if (u->failed) {
        return berth_error_set(u->failed, "upload %s: an earlier write failed", u->rec.id);
    }
    for (size_t off = 0; off < u->fill; off += PIECE) {
        size_t n = u->fill - off < PIECE ? u->fill - off : PIECE;
        if ((rc = u->w->write(u->w, u->cur + off, n)) < 0) {
            u->failed = rc;
            return rc;
        }
    }
    if (u->hasher && behind && !hp->started) {
        pipe_start(u); /* else hashed here */
    }
    if (!u->hasher) {
        u->fill = 0;
        return 0;
    }
    if (!hp->started) {
        berth_hasher_update(u->hasher, u->cur, u->fill);
        u->fill = 0;
        return 0;
    }
    pthread_mutex_lock(&hp->mu);
    while (hp->count == DEPTH) {
        pthread_cond_wait(&hp->cv, &hp->mu);
    }
    hp->queue[(hp->head + hp->count) % DEPTH] = (slice){u->cur, u->fill};
    hp->count++;
    pthread_cond_broadcast(&hp->cv);
    if (hp->nspare) {
        next = hp->spare[--hp->nspare];
    }
    pthread_mutex_unlock(&hp->mu);
    u->cur = next; /* NULL: the next write allocates one */
    u->fill = 0;
    return 0;
}

/* Write and hash everything received; the hasher is the caller's after it. */
static int flush(berth_upload *u)
{
    int rc = 0;

    if (u->fill) {
        rc = drain(u, false);
    }
    hash_wait(u);
    return rc;
}

static void handle_free(berth_upload *u)
{
    pipe_stop(u);
    if (u->w) {
        u->w->close(u->w);
    }
    berth_hasher_free(u->hasher);
    berth_meta_upload_dispose(&u->rec);
    free(u);
}

/* Give the session back and free the handle. */
static void release(berth_upload *u)
{
    u->store->meta->upload_release(u->store->meta, u->rec.id);
    handle_free(u);
}

/* Sync the writer and write the record: the session's new restore point. */
static int save(berth_upload *u)
{
    berth_meta_upload next;
    char *state = NULL, *hs = NULL;
    int rc = flush(u);

    if (rc == 0) {
        rc = u->w->sync(u->w, &state);
    }

    if (rc == 0) {
        rc = hash_state(u, &hs);
    }
    if (rc == 0) {
        next = u->rec;
        next.size = u->size;
        next.hash_state = hs;
        next.backend_state = state;
        next.updated = (int64_t)time(NULL);
        rc = u->store->meta->upload_update(u->store->meta, &next);
    }
    if (rc == 0) {
        free(u->rec.hash_state);
        free(u->rec.backend_state);
        u->rec.hash_state = hs;
        u->rec.backend_state = state;
        u->rec.size = u->size;
        u->rec.updated = next.updated;
        return 0;
    }
    free(hs);
    free(state);
    return rc;
}

/* Drop the writer's bytes (a session that is not made after all), keeping the error. */
static void abort_writer(berth_upload *u)
{
    int code = berth_error_last_code();
    char msg[512];

    if (!u->w) {
        return;
    }
    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    u->w->abort(u->w);
    u->w = NULL;
    if (code) {
        berth_error_set(code, "%s", msg);
    }
}

int berth_store_upload_new(berth_upload **out, berth_store *s, const char *repo, const char *owner)
{
    unsigned char raw[ID_BYTES];
    berth_meta_upload_limits limits;
    berth_meta_upload held;
    berth_upload *u;
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0) {
        return rc;
    }
    if (berth_name_validate(repo) < 0) {
        return berth_error_set(BERTH_EINVALID, "invalid repository name");
    }
    if (!owner) {
        owner = "";
    }
    if (!(u = calloc(1, sizeof(*u)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    u->store = s;
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        free(u);
        return berth_error_set(BERTH_ERROR, "no random bytes for an upload id");
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(u->rec.id + 2 * i, 3, "%02x", raw[i]);
    }
    u->rec.repo = strdup(repo);
    u->rec.owner = strdup(owner);
    u->rec.hash_state = strdup("");
    if (!u->rec.repo || !u->rec.owner || !u->rec.hash_state) {
        handle_free(u);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    u->rec.created = u->rec.updated = (int64_t)time(NULL);
    /* The writer first, so that the record is made durable once, with the writer's state in
       it (it used to be created and then updated with the state: one sync more per POST). A
       refused creation (a limit) drops the writer: the request changes nothing. */
    rc = s->blobs->writer_open(&u->w, s->blobs, u->rec.id, NULL, 0);
    if (rc == 0) {
        rc = berth_hasher_new(&u->hasher, BERTH_DIGEST_SHA256);
    }
    if (rc == 0) {
        rc = u->w->sync(u->w, &u->rec.backend_state);
    }
    if (rc == 0) {
        limits.total = s->opts.upload_sessions_max;
        limits.per_repo = s->opts.upload_sessions_per_repo;
        limits.per_owner = *owner ? s->opts.upload_sessions_per_owner : 0;
        rc = s->meta->upload_create(s->meta, &u->rec, &limits);
    }
    if (rc < 0) {
        abort_writer(u);
        handle_free(u);
        return rc;
    }
    u->created = true;
    /* the creator holds it: nobody can use an id before it is known to them */
    memset(&held, 0, sizeof(held));
    rc = s->meta->upload_acquire(s->meta, repo, u->rec.id, &held);
    berth_meta_upload_dispose(&held);
    if (rc < 0) {
        abort_writer(u);
        s->meta->upload_delete(s->meta, u->rec.id);
        handle_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

/* The sessions of each limit's scope and the soonest time one of them is idle past the TTL. */
typedef struct wait_scan {
    const char *repo, *owner;
    int64_t ttl;
    size_t n[3];      /* all, of repo, of owner */
    int64_t first[3]; /* soonest updated + ttl in each scope */
} wait_scan;

static int scan_wait(const berth_meta_upload *u, void *payload)
{
    wait_scan *w = payload;
    bool in[3] = {true, u->repo && strcmp(u->repo, w->repo) == 0,
                  w->owner[0] && u->owner && strcmp(u->owner, w->owner) == 0};
    int64_t expiry = u->updated + w->ttl + 1; /* reaped once idle for longer than the TTL */
    for (int i = 0; i < 3; i++) {
        if (in[i]) {
            if (w->n[i]++ == 0 || expiry < w->first[i]) {
                w->first[i] = expiry;
            }
        }
    }
    return 0;
}

uint64_t berth_store_upload_wait(berth_store *s, const char *repo, const char *owner)
{
    char msg[512];
    int code = berth_error_last_code();
    const size_t limit[3] = {s ? s->opts.upload_sessions_max : 0,
                             s ? s->opts.upload_sessions_per_repo : 0,
                             s && owner && *owner ? s->opts.upload_sessions_per_owner : 0};
    wait_scan w;
    int64_t now = (int64_t)time(NULL), until = 0;
    uint64_t wait = 0;

    if (!s || !repo) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "%s", berth_error_last());
    memset(&w, 0, sizeof(w));
    w.repo = repo;
    w.owner = owner ? owner : "";
    w.ttl = (int64_t)s->opts.upload_ttl_seconds;
    if (s->meta->uploads(s->meta, scan_wait, &w) == 0) {
        for (int i = 0; i < 3; i++) {
            if (limit[i] && w.n[i] >= limit[i] && w.first[i] > until) {
                until = w.first[i]; /* every full scope needs one slot */
            }
        }
        if (until) {
            int64_t d = until - now;
            wait = d < 1 ? 1 : d > w.ttl ? (uint64_t)(w.ttl > 0 ? w.ttl : 1) : (uint64_t)d;
        }
    }
    if (code) {
        berth_error_set(code, "%s", msg);
    } else {
        berth_error_clear();
    }
    return wait;
}

int berth_store_upload_open(berth_upload **out, berth_store *s, const char *repo, const char *id)
{
    berth_upload *u;
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0) {
        return rc;
    }
    if (berth_name_validate(repo) < 0 || !valid_id(id)) {
        return as_upload_error(BERTH_ENOTFOUND, id, repo);
    }
    if (!(u = calloc(1, sizeof(*u)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    u->store = s;
    rc = s->meta->upload_acquire(s->meta, repo, id, &u->rec);
    if (rc < 0) {
        free(u);
        return as_upload_error(rc, id, repo);
    }
    u->size = u->rec.size;
    rc = s->blobs->writer_open(&u->w, s->blobs, u->rec.id, u->rec.backend_state, u->rec.size);
    if (rc == 0) {
        rc = load_hash(u);
    }
    if (rc < 0) {
        release(u);
        return as_upload_error(rc, id, repo);
    }
    *out = u;
    return 0;
}

int berth_store_upload_stat(berth_store *s, const char *repo, const char *id, uint64_t *size)
{
    berth_meta_upload rec;
    int rc;

    berth_error_clear();
    if (berth_name_validate(repo) < 0 || !valid_id(id)) {
        return as_upload_error(BERTH_ENOTFOUND, id, repo);
    }
    memset(&rec, 0, sizeof(rec));
    rc = s->meta->upload_get(s->meta, repo, id, &rec);
    if (rc == 0) {
        *size = rec.size; /* as of the last request that ended */
    }
    berth_meta_upload_dispose(&rec);
    return as_upload_error(rc, id, repo);
}

const char *berth_upload_id(const berth_upload *u)
{
    return u->rec.id;
}

uint64_t berth_upload_size(const berth_upload *u)
{
    return u->size;
}

int berth_upload_read_fd(berth_upload *u)
{
    if (!u->w) {
        return berth_error_set(BERTH_EIO, "upload %s: the session is closed", u->rec.id);
    }
    if (!u->w->read_fd) {
        return berth_error_set(BERTH_EUNSUPPORTED, "upload %s: no local file to read", u->rec.id);
    }
    return u->w->read_fd(u->w);
}

void berth_upload_expect(berth_upload *u, uint64_t total)
{
    if (u->w && u->w->expect) {
        u->w->expect(u->w, total);
    }
}

uint64_t berth_upload_written(const berth_upload *u)
{
    return u->size - u->fill;
}

int berth_upload_write(berth_upload *u, const void *data, size_t len)
{
    const char *p = data;
    int rc;

    if (len == 0) {
        return 0;
    }
    if (!u->w) {
        return berth_error_set(BERTH_EIO, "upload %s: the session is closed", u->rec.id);
    }
    if (u->failed) {
        return berth_error_set(u->failed, "upload %s: an earlier write failed", u->rec.id);
    }
    while (len > 0) {
        size_t n = SLICE - u->fill;
        if (!u->cur && !(u->cur = slice_new())) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        if (n > len) {
            n = len;
        }
        memcpy(u->cur + u->fill, p, n);
        u->fill += n;
        u->size += n;
        p += n;
        len -= n;
        if (u->fill == SLICE && (rc = drain(u, true)) < 0) {
            u->size -= len; /* the rest of this call is not taken */
            return rc;
        }
    }
    return 0;
}

int berth_upload_flush(berth_upload *u)
{
    if (!u->w) {
        return berth_error_set(BERTH_EIO, "upload %s: the session is closed", u->rec.id);
    }
    return flush(u);
}

void berth_upload_mark(berth_upload *u)
{
    if (u->w && save(u) < 0) {
        berth__log(BERTH_LOG_WARN, "upload %s: cannot keep a restore point: %s", u->rec.id,
                   berth_error_last());
    }
}

int berth_upload_rollback(berth_upload *u)
{
    berth_store *s = u->store;
    int rc;

    /* what was written since the record's state is dropped with the writer */
    pipe_stop(u);
    u->failed = 0;
    if (u->w) {
        u->w->close(u->w);
        u->w = NULL;
    }
    u->size = u->rec.size;
    rc = s->blobs->writer_open(&u->w, s->blobs, u->rec.id, u->rec.backend_state, u->rec.size);
    if (rc == 0) {
        rc = load_hash(u);
    }
    return rc;
}

/* End a session: drop its bytes and its record, and give it back. */
static int session_end(berth_upload *u)
{
    berth_store *s = u->store;
    int rc = 0;

    if (!u->w) {
        /* a failed commit freed the writer: open it again to drop the bytes */
        rc = s->blobs->writer_open(&u->w, s->blobs, u->rec.id, u->rec.backend_state, u->rec.size);
    }
    if (u->w) {
        rc = u->w->abort(u->w);
        u->w = NULL;
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = 0;
    }
    if (s->meta->upload_delete(s->meta, u->rec.id) < 0 && rc == 0) {
        rc = BERTH_EIO;
    }
    release(u);
    return rc;
}

int berth_upload_abort(berth_upload *u)
{
    if (!u) {
        return 0;
    }
    if (u->created) {
        return session_end(u);
    }
    /* the record still describes the session as it was before this request: give it back
       without writing anything; the writer's unsynced bytes go with it */
    release(u);
    return 0;
}

int berth_upload_close(berth_upload *u)
{
    int rc = 0;

    if (!u) {
        return 0;
    }
    /* a new session's record was written by berth_store_upload_new(): nothing changed since */
    if (u->w && u->size != u->rec.size) {
        rc = save(u);
    }
    if (rc < 0) {
        berth__log(BERTH_LOG_WARN, "upload %s: cannot keep what was written: %s", u->rec.id,
                   berth_error_last());
    }
    release(u);
    return rc;
}

int berth_upload_cancel(berth_upload *u)
{
    return session_end(u);
}

/* The check of a commit whose running hash cannot describe the stored bytes. */
typedef struct verify_ctx {
    berth_hasher *h;
    const berth_digest *expected;
    uint64_t count, size;
} verify_ctx;

static int verify_update(const void *data, size_t len, void *payload)
{
    verify_ctx *v = payload;
    v->count += len;
    return berth_hasher_update(v->h, data, len);
}

static int verify_final(void *payload)
{
    verify_ctx *v = payload;
    berth_digest got;
    int rc = berth_hasher_peek(&got, v->h);

    if (rc == 0 && v->count != v->size) {
        rc = berth_error_set(BERTH_EIO, "the stored bytes (%llu) differ from those received (%llu)",
                             (unsigned long long)v->count, (unsigned long long)v->size);
    }
    if (rc == 0 && !berth_digest_equal(&got, v->expected)) {
        rc = berth_error_set(BERTH_EMISMATCH, "uploaded content has digest %s, not %s", got.str,
                             v->expected->str);
    }
    return rc;
}

int berth_upload_commit(berth_upload *u, const berth_digest *expected)
{
    berth_store *s = u->store;
    berth_blob_writer *w = u->w;
    verify_ctx v = {NULL, expected, 0, u->size};
    berth_blob_check check = {verify_update, verify_final, &v};
    bool hashed = expected->alg == BERTH_DIGEST_SHA256 && u->hasher && !u->verify;
    int rc = 0;

    if (!w) {
        rc = berth_error_set(BERTH_EIO, "upload %s: the session is closed", u->rec.id);
        goto refused;
    }
    if ((rc = flush(u)) < 0) {
        goto refused;
    }
    if (w->size(w) != u->size) {
        berth__log(BERTH_LOG_ERROR, "upload %s: the writer holds %llu bytes, the session %llu",
                   u->rec.id, (unsigned long long)w->size(w), (unsigned long long)u->size);
        rc = berth_error_set(BERTH_EIO, "upload %s: the stored bytes differ from those received",
                             u->rec.id);
        goto refused;
    }
    if (hashed) {
        berth_digest got;
        rc = berth_hasher_peek(&got, u->hasher);
        if (rc == 0 && !berth_digest_equal(&got, expected)) {
            rc = berth_error_set(BERTH_EMISMATCH, "uploaded content has digest %s, not %s", got.str,
                                 expected->str);
        }
    } else {
        rc = berth_hasher_new(&v.h, expected->alg);
    }
    if (rc == 0) {
        /* keep garbage collection off this digest until it is linked */
        rc = s->meta->blob_touch(s->meta, expected, u->size);
    }
    if (rc < 0) {
        goto refused;
    }
    u->w = NULL; /* the backend frees the writer, whatever happens */
    rc = w->commit(w, expected, hashed ? NULL : &check);
    berth_hasher_free(v.h);
    v.h = NULL;
    if (rc == 0) {
        rc = s->meta->blob_link(s->meta, u->rec.repo, expected, u->size);
        if (rc == BERTH_ENOTFOUND) {
            rc = berth_error_set(BERTH_EIO, "blob %s vanished while it was stored", expected->str);
        }
    }
    if (rc < 0) {
        goto refused;
    }
    if (s->meta->upload_delete(s->meta, u->rec.id) < 0) {
        berth__log(BERTH_LOG_WARN, "upload %s: committed, but its record stays: %s", u->rec.id,
                   berth_error_last());
    }
    release(u);
    return 0;
refused:
    berth_hasher_free(v.h);
    /* the request changes nothing: the client may retry */
    berth_upload_abort(u);
    return rc;
}

/* ---- reaping and usage ---------------------------------------------------------------- */

typedef struct session_list {
    char (*ids)[65];
    char **repos;
    int64_t *updated;
    uint64_t *sizes;
    size_t n, cap;
    int rc;
} session_list;

static int collect_session(const berth_meta_upload *u, void *payload)
{
    session_list *l = payload;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        void *a = realloc(l->ids, cap * sizeof(*l->ids));
        void *b = a ? realloc(l->repos, cap * sizeof(*l->repos)) : NULL;
        void *c = b ? realloc(l->updated, cap * sizeof(*l->updated)) : NULL;
        void *d = c ? realloc(l->sizes, cap * sizeof(*l->sizes)) : NULL;
        if (a) {
            l->ids = a;
        }
        if (b) {
            l->repos = b;
        }
        if (c) {
            l->updated = c;
        }
        if (!d) {
            l->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        l->sizes = d;
        l->cap = cap;
    }
    snprintf(l->ids[l->n], sizeof(l->ids[l->n]), "%s", u->id);
    if (!(l->repos[l->n] = strdup(u->repo ? u->repo : ""))) {
        l->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    l->updated[l->n] = u->updated;
    l->sizes[l->n] = u->size;
    l->n++;
    return 0;
}

static void session_list_dispose(session_list *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->repos[i]);
    }
    free(l->ids);
    free(l->repos);
    free(l->updated);
    free(l->sizes);
}

static int list_sessions(berth_store *s, session_list *l)
{
    int rc;
    memset(l, 0, sizeof(*l));
    rc = s->meta->uploads(s->meta, collect_session, l);
    return l->rc < 0 ? l->rc : rc;
}

static int by_id(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int berth__uploads_gc(berth_store *s, bool dry_run, uint64_t *removed)
{
    int64_t cutoff = (int64_t)time(NULL) - (int64_t)s->opts.upload_ttl_seconds;
    const char **live = NULL;
    size_t nlive = 0;
    session_list l;
    int rc = list_sessions(s, &l);

    if (rc == 0 && !(live = calloc(l.n ? l.n : 1, sizeof(*live)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        berth_upload *u;
        if (l.updated[i] >= cutoff) {
            live[nlive++] = l.ids[i];
            continue;
        }
        if (dry_run) {
            if (removed) {
                (*removed)++;
            }
            continue;
        }
        /* taken like any request takes it, so a session in use is never reaped */
        if (berth_store_upload_open(&u, s, l.repos[i], l.ids[i]) < 0) {
            live[nlive++] = l.ids[i];
            continue;
        }
        if (session_end(u) == 0 && removed) {
            (*removed)++;
        }
    }
    if (rc == 0 && !dry_run && s->blobs->reap) {
        /* what sessions left in the blob backend without a record (a crash between the two) */
        qsort(live, nlive, sizeof(*live), by_id);
        rc = s->blobs->reap(s->blobs, live, nlive, (int64_t)s->opts.upload_ttl_seconds, NULL);
    }
    free(live);
    session_list_dispose(&l);
    return rc;
}

int berth_store_uploads_reap(berth_store *s, uint64_t *removed)
{
    berth_error_clear();
    if (s->opts.read_only) {
        return 0;
    }
    return berth__uploads_gc(s, false, removed);
}

int berth__uploads_repos(berth_store *s, berth__htab *out)
{
    int64_t cutoff = (int64_t)time(NULL) - (int64_t)s->opts.upload_ttl_seconds;
    session_list l;
    int rc = list_sessions(s, &l);

    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        char *repo;
        if (l.updated[i] < cutoff || berth__htab_get(out, l.repos[i])) {
            continue; /* stale: reaped at the end of this run, no push of anyone's */
        }
        if (!(repo = strdup(l.repos[i]))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        } else if ((rc = berth__htab_put(out, repo, repo)) < 0) {
            free(repo);
        }
    }
    session_list_dispose(&l);
    return rc;
}

int berth_store_uploads_usage(berth_store *s, uint64_t *count_out, uint64_t *bytes_out)
{
    session_list l;
    int rc = list_sessions(s, &l);

    *count_out = *bytes_out = 0;
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        (*count_out)++;
        *bytes_out += l.sizes[i];
    }
    session_list_dispose(&l);
    return rc;
}

int berth_upload_digest(berth_upload *u, berth_digest *out)
{
    int rc;
    if (!u->hasher || u->verify) {
        return berth_error_set(BERTH_EUNSUPPORTED, "upload %s: no running hash", u->rec.id);
    }
    /* the bytes gathered and those the hashing thread holds count too */
    if ((rc = flush(u)) < 0) {
        return rc;
    }
    return berth_hasher_peek(out, u->hasher);
}
