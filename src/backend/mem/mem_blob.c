/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory blob backend. Blobs are immutable, reference-counted byte arrays in a table
 * keyed by digest string, so that a read streams its bytes to the sink without holding the
 * backend's lock. A write session keeps the bytes of its last sync() in the backend; a writer
 * keeps what it wrote since apart, so that close() without sync() drops exactly those bytes.
 * One mutex guards both tables.
 */
#include "backend/mem/mem.h"

#include "base/htab.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mem_blob {
    char key[BERTH_DIGEST_MAXLEN + 1];
    berth_digest digest;
    unsigned char *data;
    size_t len;
    int64_t mtime;
    unsigned refs; /* the table's and each reader's; under the lock */
} mem_blob;

typedef struct mem_session {
    char id[65];
    berth_buf data; /* the bytes as of the last sync */
    int64_t updated;
} mem_session;

typedef struct mem_blob_backend {
    berth_blob_backend base;
    pthread_mutex_t lock;
    berth__htab blobs;    /* digest string -> mem_blob */
    berth__htab sessions; /* id -> mem_session */
} mem_blob_backend;

typedef struct mem_writer {
    berth_blob_writer base;
    mem_blob_backend *mb;
    char id[65];
    uint64_t synced;   /* bytes in the session at open or at the last sync */
    berth_buf pending; /* written since */
} mem_writer;

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

static void blob_unref(mem_blob *blob)
{
    free(blob->data);
    free(blob);
}

/* Drop one reference; frees the blob at the last. Call under the lock. */
static void blob_release_locked(mem_blob *blob)
{
    if (--blob->refs == 0) {
        blob_unref(blob);
    }
}

static mem_blob *blob_get_ref(mem_blob_backend *mb, const berth_digest *digest)
{
    pthread_mutex_lock(&mb->lock);
    mem_blob *blob = berth__htab_get(&mb->blobs, digest->str);
    if (blob) {
        blob->refs++;
    }
    pthread_mutex_unlock(&mb->lock);
    return blob;
}

static void blob_put_ref(mem_blob_backend *mb, mem_blob *blob)
{
    pthread_mutex_lock(&mb->lock);
    blob_release_locked(blob);
    pthread_mutex_unlock(&mb->lock);
}

static int mb_stat(berth_blob_backend *b, const berth_digest *digest, uint64_t *size_out)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    int rc = 0;
    pthread_mutex_lock(&mb->lock);
    mem_blob *blob = berth__htab_get(&mb->blobs, digest->str);
    if (blob) {
        *size_out = blob->len;
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not found", digest->str);
    }
    pthread_mutex_unlock(&mb->lock);
    return rc;
}

static int mb_read(berth_blob_backend *b, const berth_digest *digest, uint64_t offset, uint64_t len,
                   berth_blob_sink sink, void *payload)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    mem_blob *blob = blob_get_ref(mb, digest);
    int rc = 0;
    if (!blob) {
        return berth_error_set(BERTH_ENOTFOUND, "blob %s not found", digest->str);
    }
    if (offset > blob->len) {
        rc = berth_error_set(BERTH_ERANGE, "offset %" PRIu64 " past the end of blob %s", offset,
                             digest->str);
        goto out;
    }
    uint64_t left = blob->len - offset;
    if (len > left) {
        len = left;
    }
    /* in pieces, as a stream would come */
    for (uint64_t done = 0; done < len && rc == 0;) {
        size_t n = len - done < 256 * 1024 ? (size_t)(len - done) : 256 * 1024;
        rc = sink(blob->data + offset + done, n, payload);
        done += n;
    }
out:
    blob_put_ref(mb, blob);
    return rc;
}

static int mb_remove(berth_blob_backend *b, const berth_digest *digest)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    int rc = 0;
    pthread_mutex_lock(&mb->lock);
    mem_blob *blob = berth__htab_remove(&mb->blobs, digest->str);
    if (blob) {
        blob_release_locked(blob);
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not found", digest->str);
    }
    pthread_mutex_unlock(&mb->lock);
    return rc;
}

typedef struct snapshot {
    mem_blob **items;
    size_t n, cap;
    bool failed;
} snapshot;

static void snap_one(void *value, void *payload)
{
    snapshot *s = payload;
    mem_blob *blob = value;
    if (s->failed) {
        return;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        mem_blob **items = realloc(s->items, cap * sizeof(*items));
        if (!items) {
            s->failed = true;
            return;
        }
        s->items = items;
        s->cap = cap;
    }
    blob->refs++;
    s->items[s->n++] = blob;
}

static int mb_foreach(berth_blob_backend *b, berth_blob_each_cb cb, void *payload)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    snapshot s = {NULL, 0, 0, false};
    int rc = 0;
    pthread_mutex_lock(&mb->lock);
    berth__htab_foreach(&mb->blobs, snap_one, &s);
    pthread_mutex_unlock(&mb->lock);
    if (s.failed) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    /* the callbacks run without the lock: they may call the backend */
    for (size_t i = 0; i < s.n && rc == 0; i++) {
        rc = cb(&s.items[i]->digest, s.items[i]->len, s.items[i]->mtime, payload);
    }
    pthread_mutex_lock(&mb->lock);
    for (size_t i = 0; i < s.n; i++) {
        blob_release_locked(s.items[i]);
    }
    pthread_mutex_unlock(&mb->lock);
    free(s.items);
    return rc;
}

/* ---- writers ---------------------------------------------------------------------------- */

static uint64_t w_size(berth_blob_writer *w)
{
    mem_writer *mw = (mem_writer *)w;
    return mw->synced + mw->pending.len;
}

static int w_write(berth_blob_writer *w, const void *data, size_t len)
{
    mem_writer *mw = (mem_writer *)w;
    if (len == 0) {
        return 0;
    }
    return berth_buf_put(&mw->pending, data, len) == 0
               ? 0
               : berth_error_set(BERTH_ENOSPACE, "out of memory for the session");
}

static void w_free(mem_writer *mw)
{
    berth_buf_dispose(&mw->pending);
    free(mw);
}

static int w_sync(berth_blob_writer *w, char **state_out)
{
    mem_writer *mw = (mem_writer *)w;
    mem_blob_backend *mb = mw->mb;
    int rc = 0;
    char text[64];
    pthread_mutex_lock(&mb->lock);
    mem_session *s = berth__htab_get(&mb->sessions, mw->id);
    if (!s) {
        rc = berth_error_set(BERTH_EIO, "upload session %s is gone", mw->id);
        goto out;
    }
    /* a later writer may have truncated it; the writer's view wins (it is the one writing) */
    if (s->data.len > mw->synced) {
        s->data.len = (size_t)mw->synced;
    }
    if (s->data.len != mw->synced) {
        rc = berth_error_set(BERTH_EIO, "upload session %s lost bytes", mw->id);
        goto out;
    }
    if (berth_buf_put(&s->data, mw->pending.ptr ? mw->pending.ptr : "", mw->pending.len) != 0) {
        rc = berth_error_set(BERTH_ENOSPACE, "out of memory for the session");
        goto out;
    }
    s->updated = now();
    mw->synced += mw->pending.len;
    berth_buf_clear(&mw->pending);
    snprintf(text, sizeof(text), "mem:%" PRIu64, mw->synced);
    *state_out = strdup(text);
    if (!*state_out) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    pthread_mutex_unlock(&mb->lock);
    return rc;
}

static int w_commit(berth_blob_writer *w, const berth_digest *digest, const berth_blob_check *check)
{
    mem_writer *mw = (mem_writer *)w;
    mem_blob_backend *mb = mw->mb;
    mem_blob *blob = NULL;
    int rc = 0;

    blob = calloc(1, sizeof(*blob));
    if (!blob) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    pthread_mutex_lock(&mb->lock);
    mem_session *s = berth__htab_get(&mb->sessions, mw->id);
    if (!s || s->data.len < mw->synced) {
        pthread_mutex_unlock(&mb->lock);
        rc = berth_error_set(BERTH_ENOTFOUND, "upload session %s is gone", mw->id);
        goto out;
    }
    blob->len = (size_t)(mw->synced + mw->pending.len);
    blob->data = malloc(blob->len ? blob->len : 1);
    if (blob->data) {
        if (mw->synced) {
            memcpy(blob->data, s->data.ptr, (size_t)mw->synced);
        }
        if (mw->pending.len) {
            memcpy(blob->data + mw->synced, mw->pending.ptr, mw->pending.len);
        }
    }
    pthread_mutex_unlock(&mb->lock);
    if (!blob->data) {
        rc = berth_error_set(BERTH_ENOSPACE, "out of memory for the blob");
        goto out;
    }
    if (check) {
        for (size_t done = 0; done < blob->len && rc == 0;) {
            size_t n = blob->len - done < 256 * 1024 ? blob->len - done : 256 * 1024;
            rc = check->update(blob->data + done, n, check->payload);
            done += n;
        }
        if (rc == 0) {
            rc = check->final(check->payload);
        }
        if (rc != 0) {
            goto out; /* the session stays as at its last sync */
        }
    }
    snprintf(blob->key, sizeof(blob->key), "%s", digest->str);
    blob->digest = *digest;
    blob->mtime = now();
    blob->refs = 1;
    pthread_mutex_lock(&mb->lock);
    if (!berth__htab_get(&mb->blobs, blob->key)) {
        if (berth__htab_put(&mb->blobs, blob->key, blob) != 0) {
            pthread_mutex_unlock(&mb->lock);
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        blob = NULL; /* the table's now */
    }
    s = berth__htab_remove(&mb->sessions, mw->id);
    pthread_mutex_unlock(&mb->lock);
    if (s) {
        berth_buf_dispose(&s->data);
        free(s);
    }
out:
    if (blob) {
        blob_unref(blob);
    }
    w_free(mw);
    return rc;
}

static int w_abort(berth_blob_writer *w)
{
    mem_writer *mw = (mem_writer *)w;
    mem_blob_backend *mb = mw->mb;
    pthread_mutex_lock(&mb->lock);
    mem_session *s = berth__htab_remove(&mb->sessions, mw->id);
    pthread_mutex_unlock(&mb->lock);
    if (s) {
        berth_buf_dispose(&s->data);
        free(s);
    }
    w_free(mw);
    return 0;
}

static void w_close(berth_blob_writer *w)
{
    if (w) {
        w_free((mem_writer *)w);
    }
}

static int mb_writer_open(berth_blob_writer **out, berth_blob_backend *b, const char *id,
                          const char *state, uint64_t size)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    mem_writer *mw = NULL;
    mem_session *fresh = NULL;
    int rc = 0;

    if (!id || strlen(id) > 64 || strspn(id, "0123456789abcdef-") != strlen(id)) {
        return berth_error_set(BERTH_EINVALID, "invalid upload session id");
    }
    if (state) {
        char expect[64];
        snprintf(expect, sizeof(expect), "mem:%" PRIu64, size);
        if (strcmp(state, expect) != 0) {
            return berth_error_set(BERTH_EINVALID, "upload session state does not match its size");
        }
    }
    mw = calloc(1, sizeof(*mw));
    if (!mw) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    mw->base.backend = b;
    mw->base.size = w_size;
    mw->base.write = w_write;
    mw->base.sync = w_sync;
    mw->base.commit = w_commit;
    mw->base.abort = w_abort;
    mw->base.close = w_close;
    mw->mb = mb;
    snprintf(mw->id, sizeof(mw->id), "%s", id);

    if (!state) {
        fresh = calloc(1, sizeof(*fresh));
        if (!fresh) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        snprintf(fresh->id, sizeof(fresh->id), "%s", id);
        fresh->updated = now();
    }
    pthread_mutex_lock(&mb->lock);
    mem_session *s = berth__htab_get(&mb->sessions, id);
    if (state) {
        if (!s) {
            rc = berth_error_set(BERTH_ENOTFOUND, "no upload session %s", id);
        } else if (s->data.len < size) {
            rc = berth_error_set(BERTH_ENOTFOUND, "upload session %s has fewer bytes", id);
        } else {
            s->data.len = (size_t)size; /* what a crashed writer wrote past it goes */
            s->updated = now();
        }
    } else if (s) {
        rc = berth_error_set(BERTH_EEXISTS, "upload session %s exists", id);
    } else if (berth__htab_put(&mb->sessions, fresh->id, fresh) != 0) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    } else {
        fresh = NULL;
    }
    pthread_mutex_unlock(&mb->lock);
    mw->synced = state ? size : 0;
out:
    free(fresh);
    if (rc != 0) {
        w_free(mw);
        mw = NULL;
    }
    *out = mw ? &mw->base : NULL;
    return rc;
}

static int cmp_id(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

typedef struct reap_ctx {
    const char *const *live;
    size_t nlive;
    int64_t cutoff;
    mem_session **dead;
    size_t n, cap;
    bool failed;
} reap_ctx;

static void reap_one(void *value, void *payload)
{
    reap_ctx *r = payload;
    mem_session *s = value;
    if (r->failed || s->updated >= r->cutoff ||
        (r->nlive && bsearch(s->id, r->live, r->nlive, sizeof(*r->live), cmp_id))) {
        return;
    }
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 8;
        mem_session **dead = realloc(r->dead, cap * sizeof(*dead));
        if (!dead) {
            r->failed = true;
            return;
        }
        r->dead = dead;
        r->cap = cap;
    }
    r->dead[r->n++] = s;
}

static int mb_reap(berth_blob_backend *b, const char *const *live, size_t nlive, int64_t older_than,
                   uint64_t *removed)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    reap_ctx r = {live, nlive, now() - older_than, NULL, 0, 0, false};
    int rc = 0;
    pthread_mutex_lock(&mb->lock);
    berth__htab_foreach(&mb->sessions, reap_one, &r);
    for (size_t i = 0; i < r.n; i++) {
        berth__htab_remove(&mb->sessions, r.dead[i]->id);
        berth_buf_dispose(&r.dead[i]->data);
        free(r.dead[i]);
    }
    pthread_mutex_unlock(&mb->lock);
    if (removed) {
        *removed += r.n;
    }
    if (r.failed) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    free(r.dead);
    return rc;
}

static void free_blob_value(void *value, void *payload)
{
    blob_release_locked(value);
}

static void free_session_value(void *value, void *payload)
{
    mem_session *s = value;
    berth_buf_dispose(&s->data);
    free(s);
}

static void mb_free(berth_blob_backend *b)
{
    mem_blob_backend *mb = (mem_blob_backend *)b;
    if (!mb) {
        return;
    }
    berth__htab_foreach(&mb->blobs, free_blob_value, NULL);
    berth__htab_foreach(&mb->sessions, free_session_value, NULL);
    berth__htab_dispose(&mb->blobs);
    berth__htab_dispose(&mb->sessions);
    pthread_mutex_destroy(&mb->lock);
    free(mb);
}

int berth_mem_blob_backend_new(berth_blob_backend **out)
{
    mem_blob_backend *mb = calloc(1, sizeof(*mb));
    if (!mb) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    mb->base.version = BERTH_BLOB_BACKEND_VERSION;
    mb->base.name = "mem";
    mb->base.stat = mb_stat;
    mb->base.read = mb_read;
    mb->base.open_fd = NULL;
    mb->base.url = NULL;
    mb->base.remove = mb_remove;
    mb->base.foreach = mb_foreach;
    mb->base.writer_open = mb_writer_open;
    mb->base.reap = mb_reap;
    mb->base.free = mb_free;
    pthread_mutex_init(&mb->lock, NULL);
    *out = &mb->base;
    return 0;
}
