/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The s3 blob backend (see s3.h for the layout): berth/sys/blob_backend.h over client.c.
 *
 * Write sessions. A writer holds the bytes after the session's last part in one buffer of a
 * part's size (part_limit: 8 MiB by default, larger past 1,000 parts); when it fills, it
 * becomes the next part of the session's multipart
 * upload (created with the first part). Once the buffer holds PART_SIZE (5 MiB), a thread
 * streams it as that part while write() fills it (see inflight): a full buffer ends the
 * request, a sync or commit before aborts it. While a full part is on its way the writer
 * takes in at most FILL_WHILE_UP more bytes. sync() makes what the buffer holds a part when it
 * is PART_SIZE or more (so a request of 5 MiB to a part is one part), else stages the bytes
 * written since the last sync as a new object uploads/<id>/tail-<random> (a segment), and
 * returns the state: upload id, part count and sizes, the parts' ETag chain, the segments
 * (names and sizes) and the segments the state before no longer names. A writer opened from a
 * state reads the segments back only when a part takes them in, so a client pushing in small
 * chunks costs one PutObject of its own bytes per request; past 32 segments they are merged
 * into one. Parts uploaded after the last sync are not in the state; a writer continuing from
 * it uploads its own under the same numbers, and completion lists only the state's parts.
 * Segments a part took in are deleted by the first writer that syncs after the state that
 * dropped them (by then the caller has stored a later state), the rest at commit (by name),
 * abort or reap; what a crashed writer staged or started without a stored state, at reap.
 *
 * Commit. A session that never filled a part is one PutObject with If-None-Match: * to the
 * blob key (412: the blob is there already and is kept); with a check, the bytes in memory go
 * through it first. Otherwise the last part is uploaded, the upload completed at
 * uploads/<id>/data, then (with a check) read back through the check, and copied to the blob
 * key unless one is there (CopyObject, or UploadPartCopy past 5 GiB), and the temporary
 * deleted. A commit that fails after completing (a refused check, a failed copy) puts the
 * session back as at its last sync: a new upload at the same key gets the synced parts back by
 * UploadPartCopy from the completed object (same bytes, so same ETags), and a writer opened
 * later from the old state finds it by its key and the state's ETag chain. A commit killed in
 * between leaves the completed object, from which the next writer rebuilds the upload.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS */
#include "backend/s3/s3.h"

#include "backend/s3/client.h"
#include "backend/s3/sigv4.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PART_SIZE       (5u * 1024u * 1024u) /* S3's least part (but the last) */
#define PART_MAX        (8u * 1024u * 1024u) /* default part_size: a writer's buffer */
#define PART_STEP       1000u /* default part_growth: parts between doublings of the size */
#define PART_CAP        (5ull * 1024u * 1024u * 1024u) /* S3's largest part */
#define FILL_WHILE_UP   (2u * 1024u * 1024u) /* bytes taken in while a part is on its way */
#define STREAM_BATCH    (256u * 1024u)       /* bytes a streamed part waits for before sending */
#define RUNS_MAX        1000 /* runs of part sizes a state may name (see state_text) */
#define MAX_PARTS       10000u
#define COPY_MAX        (5ull * 1024u * 1024u * 1024u)
#define COPY_PIECE      (1024ull * 1024u * 1024u)
#define ID_MAX          64
#define URL_SECONDS     600u
#define URL_SECONDS_MAX 604800u
#define SEG_MAX         32 /* staged segments before they are merged into one */

typedef struct s3_backend {
    berth_blob_backend base;
    berth__s3 *c;
    char *prefix; /* "" or ending in '/' */
    bool redirect;
    char *public_endpoint;
    unsigned redirect_seconds;
    size_t part_size;   /* the first parts' size (see part_limit) */
    unsigned part_step; /* parts between doublings */
} s3_backend;

typedef struct part {
    char *etag;
    uint64_t size;
} part;

typedef struct keys {
    char **v;
    size_t n, cap;
} keys;

typedef struct seg {
    char *name;
    uint64_t size;
} seg;

typedef struct segs {
    seg *v;
    size_t n, cap;
} segs;

/* A part being uploaded by a thread of its own while the writer fills the next one. */
/*
 * A part on its way, uploaded by a thread of its own: either a full buffer (`data`), or a
 * streamed one: the request starts once the writer's buffer holds PART_SIZE bytes, announcing
 * the part's whole size, and sends the bytes as write() brings them (`src`, `avail`), so that
 * receiving and uploading overlap. When the buffer fills, it passes to `data` (`owns`) and the
 * request ends by itself; when the writer syncs or commits before, the request is aborted (`stop`)
 * and the bytes go as a part of their own size, or are staged.
 */
typedef struct inflight {
    bool active;
    bool streaming; /* the thread pulls from src */
    bool owns;      /* data holds the buffer being sent */
    pthread_t thread;
    pthread_mutex_t mu; /* guards avail, sent, stop */
    pthread_cond_t cv;
    const char *src;
    size_t avail, sent;
    size_t size; /* a streamed part's length, announced in its request */
    bool stop;
    berth__s3 *c;
    const char *key, *upload_id; /* the writer's */
    unsigned number;
    berth_buf data;
    char *etag; /* out */
    int rc;     /* out */
    char msg[256];
} inflight;

typedef struct s3_writer {
    berth_blob_writer base;
    s3_backend *b;
    char *id;
    char *mpu_key;   /* <prefix>uploads/<id>/data */
    char *upload_id; /* NULL until the first part */
    part *parts;     /* every part of the session, synced or not: PART_SIZE to its part_limit */
    size_t nparts, cap;
    size_t nbase;        /* parts of the state opened from: their ETags are read at commit */
    size_t nsynced;      /* parts in the last state */
    char chain[65];      /* the ETag chain of parts[0..nparts) (see part_chain) */
    char base_chain[65]; /* ... of the state opened from */
    berth_buf buf;       /* loaded: the bytes after the last part; else only the unstaged ones */
    uint64_t size;       /* bytes in the session */
    segs staged;         /* the segments (objects "tail-...") holding the first staged_bytes after
                            the last part, as the last state names them */
    uint64_t staged_bytes;
    bool loaded;    /* buf begins with the staged bytes (a reopened writer reads them only when
                       a part fills or at commit) */
    bool changed;   /* the next state differs from the last one */
    keys dropped;   /* segments the last state named and the next one will not */
    keys dead_prev; /* segments the last state no longer named (its "q"): dead once the state
                       after it is given, deleted then */
    inflight up;    /* the part on its way */
    int broken;     /* an upload failed: the bytes since the last sync are lost */
} s3_writer;

/* Tell a streamed part that more of its bytes are there (or that it is to stop). */
static void stream_update(inflight *f, size_t avail, bool stop)
{
    pthread_mutex_lock(&f->mu);
    f->avail = avail;
    f->stop = f->stop || stop;
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

static s3_backend *backend_of(berth_blob_backend *b)
{
    return (s3_backend *)b;
}

static int blob_key(berth_buf *out, const s3_backend *b, const berth_digest *d)
{
    if (!d || d->alg == BERTH_DIGEST_NONE) {
        return berth_error_set(BERTH_EINVALID, "s3: no digest");
    }
    return berth_buf_printf(out, "%sblobs/%s/%s", b->prefix, berth_digest_alg_name(d->alg),
                            berth_digest_hex(d));
}

static int session_key(berth_buf *out, const s3_backend *b, const char *id, const char *name)
{
    return berth_buf_printf(out, "%suploads/%s/%s", b->prefix, id, name);
}

/*
 * The size of part `index` (from 0) of a session: the backend's part_size, doubled every
 * part_step parts up to S3's 5 GiB, so that a writer holds small buffers for the blobs most
 * pushes are, and a session still reaches S3's largest object in its 10,000 parts (with the
 * defaults, 8 MiB parts take a blob to 7.8 GiB, 16 MiB ones to 23 GiB, and so on).
 */
static size_t part_limit(const s3_backend *b, size_t index)
{
    uint64_t s = b->part_size;
    for (size_t k = index / b->part_step; k > 0 && s < PART_CAP; k--) {
        s *= 2;
    }
    return (size_t)(s < PART_CAP ? s : PART_CAP);
}

/*
 * A part buffer: `size` bytes mapped at once (pages count only once written) and unmapped
 * when done, so that its memory goes back to the system at once; a malloc'd buffer of that
 * size would stay in the allocator's arenas (glibc raises its mmap threshold after the first
 * free) and a replica would keep two or three of them per worker thread. Never grown: cap is
 * above max. Released with part_buf_free(), never berth_buf_dispose().
 */
static int part_buf_new(berth_buf *b, size_t size)
{
    void *p = mmap(NULL, size + 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    *b = (berth_buf){.ptr = p, .len = 0, .cap = size + 1, .max = size};
    b->ptr[0] = '\0';
    return 0;
}

static void part_buf_free(berth_buf *b)
{
    if (b->ptr) {
        munmap(b->ptr, b->cap);
    }
    *b = (berth_buf){0};
}

/* ---- reads --------------------------------------------------------------------------------- */

static int be_stat(berth_blob_backend *bb, const berth_digest *digest, uint64_t *size_out)
{
    s3_backend *b = backend_of(bb);
    berth_buf key = BERTH_BUF_INIT;
    berth__s3_stat st;
    int rc = blob_key(&key, b, digest);
    if (rc == 0) {
        rc = berth__s3_head(b->c, key.ptr, &st);
    }
    if (rc == 0 && size_out) {
        *size_out = st.size;
    }
    berth_buf_dispose(&key);
    return rc;
}

static int be_read(berth_blob_backend *bb, const berth_digest *digest, uint64_t offset,
                   uint64_t len, berth_blob_sink sink, void *payload)
{
    s3_backend *b = backend_of(bb);
    berth_buf key = BERTH_BUF_INIT;
    berth__s3_stat st;
    int rc = blob_key(&key, b, digest);
    if (rc != 0) {
        goto out;
    }
    if (len == 0) {
        rc = berth__s3_head(b->c, key.ptr, &st);
        if (rc == 0 && offset > st.size) {
            rc = berth_error_set(BERTH_ERANGE, "s3: read past the end of the blob");
        }
        goto out;
    }
    rc = berth__s3_get(b->c, key.ptr, offset, len, sink, payload);
    if (rc == BERTH_ERANGE) {
        /* 416: an empty blob, or offset at or past the end */
        int hrc = berth__s3_head(b->c, key.ptr, &st);
        if (hrc != 0) {
            rc = hrc;
        } else if (offset == st.size) {
            berth_error_clear();
            rc = 0;
        } else {
            rc = berth_error_set(BERTH_ERANGE, "s3: read past the end of the blob");
        }
    }
out:
    berth_buf_dispose(&key);
    return rc;
}

static int be_url(berth_blob_backend *bb, const berth_digest *digest, unsigned seconds,
                  char **url_out)
{
    s3_backend *b = backend_of(bb);
    berth_buf key = BERTH_BUF_INIT;
    int rc;
    *url_out = NULL;
    if (!b->redirect) {
        return berth_error_set(BERTH_EUNSUPPORTED, "s3: redirects are not enabled");
    }
    rc = blob_key(&key, b, digest);
    if (rc == 0) {
        unsigned s = seconds ? seconds : b->redirect_seconds ? b->redirect_seconds : URL_SECONDS;
        if (s > URL_SECONDS_MAX) {
            s = URL_SECONDS_MAX; /* SigV4's limit: 7 days */
        }
        rc = berth__s3_presign_get(b->c, key.ptr, s, b->public_endpoint, url_out);
    }
    berth_buf_dispose(&key);
    return rc;
}

static int be_remove(berth_blob_backend *bb, const berth_digest *digest)
{
    s3_backend *b = backend_of(bb);
    berth_buf key = BERTH_BUF_INIT;
    berth__s3_stat st;
    int rc = blob_key(&key, b, digest);
    if (rc == 0) {
        rc = berth__s3_head(b->c, key.ptr, &st);
    }
    if (rc == 0) {
        rc = berth__s3_delete(b->c, key.ptr);
    }
    berth_buf_dispose(&key);
    return rc;
}

typedef struct each_ctx {
    size_t skip; /* length of "<prefix>blobs/" */
    berth_blob_each_cb cb;
    void *payload;
} each_ctx;

static int each_object(const char *key, uint64_t size, int64_t mtime, void *p)
{
    each_ctx *x = p;
    char text[BERTH_DIGEST_MAXLEN + 1];
    berth_digest d;
    const char *rel = key + x->skip, *slash = strchr(rel, '/');
    size_t n = strlen(rel);
    if (strlen(key) < x->skip || !slash || n >= sizeof(text)) {
        return 0;
    }
    memcpy(text, rel, n + 1);
    text[slash - rel] = ':';
    if (berth_digest_parse_str(&d, text) != 0) {
        berth_error_clear();
        return 0; /* not a blob of ours */
    }
    return x->cb(&d, size, mtime, x->payload);
}

static int be_foreach(berth_blob_backend *bb, berth_blob_each_cb cb, void *payload)
{
    s3_backend *b = backend_of(bb);
    berth_buf prefix = BERTH_BUF_INIT;
    int rc = berth_buf_printf(&prefix, "%sblobs/", b->prefix);
    if (rc == 0) {
        each_ctx x = {prefix.len, cb, payload};
        rc = berth__s3_list(b->c, prefix.ptr, each_object, &x);
    }
    berth_buf_dispose(&prefix);
    return rc;
}

/* ---- session objects ---------------------------------------------------------------------- */

static int keys_add(keys *k, const char *s)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 16;
        char **v = realloc(k->v, cap * sizeof(*v));
        if (!v) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n] = strdup(s);
    if (!k->v[k->n]) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    k->n++;
    return 0;
}

static void keys_free(keys *k)
{
    for (size_t i = 0; i < k->n; i++) {
        free(k->v[i]);
    }
    free(k->v);
    k->v = NULL;
    k->n = k->cap = 0;
}

static int segs_add(segs *s, const char *name, uint64_t size)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 8;
        seg *v = realloc(s->v, cap * sizeof(*v));
        if (!v) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n].name = strdup(name);
    if (!s->v[s->n].name) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    s->v[s->n++].size = size;
    return 0;
}

static void segs_clear(segs *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->v[i].name);
    }
    s->n = 0;
}

static void segs_free(segs *s)
{
    segs_clear(s);
    free(s->v);
    s->v = NULL;
    s->cap = 0;
}

static int collect_key(const char *key, uint64_t size, int64_t mtime, void *p)
{
    (void)size;
    (void)mtime;
    return keys_add(p, key);
}

static int collect_upload(const char *key, const char *upload_id, int64_t initiated, void *p)
{
    keys *k = p;
    int rc = keys_add(k, key);
    (void)initiated;
    return rc == 0 ? keys_add(k, upload_id) : rc;
}

/*
 * Delete every object under uploads/<id>/ (the staged tails and a completed temporary) and
 * abort every multipart upload there (a writer that crashed before its first sync may have
 * left one).
 */
static int delete_session_objects(s3_backend *b, const char *id)
{
    berth_buf prefix = BERTH_BUF_INIT;
    keys k = {0}, u = {0};
    int rc = session_key(&prefix, b, id, "");
    if (rc == 0) {
        rc = berth__s3_mpu_list(b->c, prefix.ptr, collect_upload, &u);
    }
    for (size_t i = 0; rc == 0 && i + 1 < u.n; i += 2) {
        rc = berth__s3_mpu_abort(b->c, u.v[i], u.v[i + 1]);
        if (rc == BERTH_ENOTFOUND) {
            berth_error_clear();
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = berth__s3_list(b->c, prefix.ptr, collect_key, &k);
    }
    for (size_t i = 0; rc == 0 && i < k.n; i++) {
        rc = berth__s3_delete(b->c, k.v[i]);
    }
    keys_free(&k);
    keys_free(&u);
    berth_buf_dispose(&prefix);
    return rc;
}

/* ---- writers ----------------------------------------------------------------------------- */

static void delete_segment(s3_writer *w, berth_buf *key, const char *name)
{
    berth_buf_clear(key);
    if (session_key(key, w->b, w->id, name) == 0 && berth__s3_delete(w->b->c, key->ptr) != 0) {
        berth_error_clear();
    }
}

/*
 * After a commit: delete by name what the session is known to hold (its segments, named by
 * the state or dropped since, and the completed temporary), without listing the session's
 * prefix. What a crashed writer staged or started and never recorded (a segment whose state
 * was not stored, an upload created before the first sync) is left to reap(). A failed
 * delete is left to reap() too.
 */
static void delete_known(s3_writer *w)
{
    berth_buf key = BERTH_BUF_INIT;
    for (size_t i = 0; i < w->staged.n; i++) {
        delete_segment(w, &key, w->staged.v[i].name);
    }
    for (size_t i = 0; i < w->dropped.n; i++) {
        delete_segment(w, &key, w->dropped.v[i]);
    }
    for (size_t i = 0; i < w->dead_prev.n; i++) {
        delete_segment(w, &key, w->dead_prev.v[i]);
    }
    if (w->upload_id && berth__s3_delete(w->b->c, w->mpu_key) != 0) {
        berth_error_clear();
    }
    berth_buf_dispose(&key);
}

static void writer_free(s3_writer *w)
{
    if (!w) {
        return;
    }
    if (w->up.active && w->up.streaming) {
        stream_update(&w->up, w->up.avail, true);
    }
    if (w->up.active) {
        pthread_join(w->up.thread, NULL);
    }
    pthread_cond_destroy(&w->up.cv);
    pthread_mutex_destroy(&w->up.mu);
    free(w->up.etag);
    part_buf_free(&w->up.data);
    for (size_t i = 0; i < w->nparts; i++) {
        free(w->parts[i].etag);
    }
    free(w->parts);
    free(w->id);
    free(w->mpu_key);
    free(w->upload_id);
    segs_free(&w->staged);
    keys_free(&w->dropped);
    keys_free(&w->dead_prev);
    part_buf_free(&w->buf);
    free(w);
}

/*
 * The ETag chain: "" for no parts, then hex(SHA-256(chain || ETag of part n)) for each part in
 * turn. The state holds the chain instead of every ETag (which would pass the state's 64 KiB at
 * a few thousand parts); at commit the ETags that ListParts gives must chain to it, so a part
 * replaced since the state was written (by a writer that should not be writing) is found.
 */
static int chain_next(char chain[65], const char *etag)
{
    berth_buf b = BERTH_BUF_INIT;
    int rc = berth_buf_printf(&b, "%s%s", chain, etag);
    if (rc == 0) {
        rc = berth__sigv4_sha256_hex(chain, b.ptr, b.len);
    }
    berth_buf_dispose(&b);
    return rc;
}

static int add_part(s3_writer *w, char *etag, uint64_t size)
{
    int rc = chain_next(w->chain, etag);
    if (rc != 0) {
        free(etag);
        return rc;
    }
    if (w->nparts == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 16;
        part *p = realloc(w->parts, cap * sizeof(*p));
        if (!p) {
            free(etag);
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        w->parts = p;
        w->cap = cap;
    }
    w->parts[w->nparts++] = (part){etag, size};
    return 0;
}

typedef struct front {
    char *dst;
    size_t off, cap;
} front;

static int front_sink(const void *data, size_t len, void *p)
{
    front *f = p;
    if (len > f->cap - f->off) {
        return berth_error_set(BERTH_EIO, "s3: a staged segment of the session grew");
    }
    memcpy(f->dst + f->off, data, len);
    f->off += len;
    return 0;
}

/* The index of the part the writer's buffer is to be: after the one on its way, if any. */
static size_t next_index(const s3_writer *w)
{
    return w->nparts + (w->up.active && w->up.owns ? 1 : 0);
}

/* The size of the part the writer's buffer is to be: the buffer's size. */
static size_t buf_limit(const s3_writer *w)
{
    return part_limit(w->b, next_index(w));
}

/*
 * The staged segments, read back into memory ahead of the unstaged bytes: these move up in
 * the buffer (it has room: the tail is at most a part) and the segments are read into the
 * front, so no second buffer is needed. Nothing to read: nothing moves.
 */
static int ensure_loaded(s3_writer *w)
{
    berth_buf key = BERTH_BUF_INIT;
    size_t have = w->buf.len, staged = (size_t)w->staged_bytes;
    front f = {0};
    int rc = 0;
    if (w->loaded) {
        return 0;
    }
    if (staged == 0) {
        w->loaded = true; /* only empty segments */
        return 0;
    }
    if (staged > buf_limit(w) - have) {
        return berth_error_set(BERTH_EIO, "s3: the staged bytes of the session do not fit");
    }
    if (!w->buf.ptr && (rc = part_buf_new(&w->buf, buf_limit(w))) != 0) {
        return rc;
    }
    memmove(w->buf.ptr + staged, w->buf.ptr, have);
    f = (front){w->buf.ptr, 0, staged};
    for (size_t i = 0; rc == 0 && i < w->staged.n; i++) {
        berth_buf_clear(&key);
        rc = session_key(&key, w->b, w->id, w->staged.v[i].name);
        if (rc == 0) {
            rc = berth__s3_get(w->b->c, key.ptr, 0, UINT64_MAX, front_sink, &f);
        }
    }
    if (rc == 0 && f.off != staged) {
        rc = berth_error_set(BERTH_EIO, "s3: the staged bytes of the session are %zu, not %zu",
                             f.off, staged);
    }
    if (rc == BERTH_ENOTFOUND) {
        berth_error_set(BERTH_ENOTFOUND, "s3: the upload session is gone");
    }
    if (rc == 0) {
        w->buf.len = have + staged;
        w->buf.ptr[w->buf.len] = '\0';
        w->loaded = true;
    } else {
        memmove(w->buf.ptr, w->buf.ptr + staged, have); /* as it was */
    }
    berth_buf_dispose(&key);
    return rc;
}

/* The staged segments are in a part now: the next state names none. */
static int consume_segments(s3_writer *w)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < w->staged.n; i++) {
        rc = keys_add(&w->dropped, w->staged.v[i].name);
    }
    segs_clear(&w->staged);
    w->staged_bytes = 0;
    w->changed = true;
    return rc;
}

/* Bytes after the last part, staged or not. */
static uint64_t tail_len(const s3_writer *w)
{
    return w->loaded ? w->buf.len : w->staged_bytes + w->buf.len;
}

/* Make what is in memory the next part. */
static int upload_part_now(s3_writer *w)
{
    char *etag = NULL;
    int rc = 0;
    if (w->nparts >= MAX_PARTS) {
        return berth_error_set(BERTH_ENOSPACE, "s3: the blob needs more than %u parts", MAX_PARTS);
    }
    if (!w->upload_id) {
        rc = berth__s3_mpu_create(w->b->c, w->mpu_key, &w->upload_id);
    }
    if (rc == 0) {
        rc = berth__s3_mpu_part(w->b->c, w->mpu_key, w->upload_id, (unsigned)w->nparts + 1,
                                w->buf.ptr ? w->buf.ptr : "", w->buf.len, &etag);
    }
    if (rc == 0) {
        rc = add_part(w, etag, w->buf.len);
    }
    if (rc == 0) {
        berth_buf_clear(&w->buf);
        if (w->buf.max != buf_limit(w)) {
            part_buf_free(&w->buf); /* the next part is larger: a buffer of its size */
        }
        rc = consume_segments(w);
    }
    return rc;
}

static void *upload_main(void *p)
{
    inflight *f = p;
    f->rc = berth__s3_mpu_part(f->c, f->key, f->upload_id, f->number, f->data.ptr, f->data.len,
                               &f->etag);
    if (f->rc != 0) {
        snprintf(f->msg, sizeof(f->msg), "%s", berth_error_last());
    }
    return NULL;
}

static size_t size_runs(const s3_writer *w);

static size_t stream_body(char *out, size_t max, void *p)
{
    inflight *f = p;
    size_t n = 0, enough = max < STREAM_BATCH ? max : STREAM_BATCH;
    if (enough > f->size - f->sent) {
        enough = f->size - f->sent;
    }
    pthread_mutex_lock(&f->mu);
    /* a good amount at a time (not every piece write() adds): fewer wake-ups and sends; the
     * part is f->size bytes, so the last wait ends when the buffer is full */
    while (!f->stop && f->avail - f->sent < enough) {
        pthread_cond_wait(&f->cv, &f->mu);
    }
    if (!f->stop) {
        n = f->avail - f->sent < max ? f->avail - f->sent : max;
        memcpy(out, f->src + f->sent, n);
        f->sent += n;
    }
    pthread_mutex_unlock(&f->mu);
    return n; /* 0: aborted */
}

static void *stream_main(void *p)
{
    inflight *f = p;
    f->rc = berth__s3_mpu_part_stream(f->c, f->key, f->upload_id, f->number, f->size, stream_body,
                                      f, &f->etag);
    if (f->rc != 0) {
        snprintf(f->msg, sizeof(f->msg), "%s", berth_error_last());
    }
    return NULL;
}

/* Abort a streamed part that has not got its buffer (nothing of it is recorded). */
static void stream_abort(s3_writer *w)
{
    stream_update(&w->up, w->up.avail, true);
    pthread_join(w->up.thread, NULL);
    free(w->up.etag);
    w->up.etag = NULL;
    w->up.active = w->up.streaming = false;
}

/*
 * Start streaming the writer's buffer as the next part (see inflight), when it holds
 * PART_SIZE bytes and nothing else is on its way. Not starting is never an error: the bytes
 * then go as they did before (a full buffer, or a part cut by sync).
 */
static int stream_start(s3_writer *w)
{
    int rc = 0;
    if (w->up.active || w->nparts >= MAX_PARTS || size_runs(w) >= RUNS_MAX) {
        return 0;
    }
    if (!w->loaded) {
        rc = ensure_loaded(w);
    }
    if (rc == 0 && !w->upload_id) {
        rc = berth__s3_mpu_create(w->b->c, w->mpu_key, &w->upload_id);
    }
    if (rc != 0) {
        return rc;
    }
    w->up.c = w->b->c;
    w->up.key = w->mpu_key;
    w->up.upload_id = w->upload_id;
    w->up.number = (unsigned)w->nparts + 1;
    w->up.rc = 0;
    w->up.etag = NULL;
    w->up.src = w->buf.ptr;
    w->up.avail = w->buf.len;
    w->up.size = buf_limit(w);
    w->up.sent = 0;
    w->up.stop = false;
    w->up.owns = false;
    w->up.streaming = true;
    if (pthread_create(&w->up.thread, NULL, stream_main, &w->up) != 0) {
        w->up.streaming = false;
        return 0;
    }
    w->up.active = true;
    return 0;
}

/* Wait for the part on its way, and record it (or the writer is broken). */
static int wait_part(s3_writer *w)
{
    int rc;
    if (w->broken) {
        return berth_error_set(w->broken, "s3: an earlier part of this write failed");
    }
    if (!w->up.active) {
        return 0;
    }
    if (w->up.streaming && !w->up.owns) {
        stream_abort(w); /* the buffer is not full: it goes another way */
        return 0;
    }
    pthread_join(w->up.thread, NULL);
    w->up.active = false;
    rc = w->up.rc;
    if (rc != 0 && w->up.streaming) {
        /* the streamed request failed: the bytes are all here, send them again (retried) */
        berth_error_clear();
        free(w->up.etag);
        w->up.etag = NULL;
        rc = berth__s3_mpu_part(w->up.c, w->up.key, w->up.upload_id, w->up.number, w->up.data.ptr,
                                w->up.data.len, &w->up.etag);
        snprintf(w->up.msg, sizeof(w->up.msg), "%s", rc ? berth_error_last() : "");
    }
    w->up.streaming = w->up.owns = false;
    if (rc == 0) {
        rc = add_part(w, w->up.etag, w->up.data.len);
        w->up.etag = NULL;
    } else {
        berth_error_set(rc, "%s", w->up.msg);
    }
    part_buf_free(&w->up.data); /* its memory goes back: a writer holds one full buffer */
    if (rc != 0) {
        w->broken = rc;
    }
    return rc;
}

/*
 * Make what is in memory the next part, uploaded by a thread while write() goes on taking in
 * up to FILL_WHILE_UP bytes (at most one part on its way: a part + FILL_WHILE_UP bytes of
 * buffers a writer).
 */
static int flush_part(s3_writer *w)
{
    berth_buf t;
    int rc;
    if (w->up.active && w->up.streaming && !w->up.owns) {
        /* the streamed part is this buffer: it has all its bytes, and goes on by itself */
        stream_update(&w->up, w->buf.len, false);
        w->up.data = w->buf;
        w->up.owns = true;
        w->buf = (berth_buf){0};
        rc = consume_segments(w);
        if (rc != 0) {
            w->broken = rc;
        }
        return rc;
    }
    rc = wait_part(w);
    if (rc == 0 && w->nparts >= MAX_PARTS) {
        rc = berth_error_set(BERTH_ENOSPACE, "s3: the blob needs more than %u parts", MAX_PARTS);
    }
    if (rc == 0 && !w->upload_id) {
        rc = berth__s3_mpu_create(w->b->c, w->mpu_key, &w->upload_id);
    }
    if (rc != 0) {
        return rc;
    }
    t = w->up.data;
    w->up.data = w->buf;
    w->buf = t; /* unmapped: the next write maps one of the next part's size */
    w->up.c = w->b->c;
    w->up.key = w->mpu_key;
    w->up.upload_id = w->upload_id;
    w->up.number = (unsigned)w->nparts + 1;
    w->up.rc = 0;
    w->up.etag = NULL;
    rc = consume_segments(w);
    if (rc != 0) {
        w->broken = rc;
        return rc;
    }
    w->up.owns = true;
    w->up.streaming = false;
    if (pthread_create(&w->up.thread, NULL, upload_main, &w->up) == 0) {
        w->up.active = true;
        return 0;
    }
    w->up.owns = false;
    /* no thread: upload here */
    upload_main(&w->up);
    rc = w->up.rc;
    if (rc == 0) {
        rc = add_part(w, w->up.etag, w->up.data.len);
        w->up.etag = NULL;
    } else {
        berth_error_set(rc, "%s", w->up.msg);
        w->broken = rc;
    }
    part_buf_free(&w->up.data);
    return rc;
}

static uint64_t w_size(berth_blob_writer *bw)
{
    return ((s3_writer *)bw)->size;
}

/*
 * Whether this session's client sends large requests: its last part filled a whole buffer and
 * nothing is staged after it. Then a new part is streamed from its first byte, not from
 * PART_SIZE (a request that ends short of a whole part costs one aborted request).
 */
static bool big_requests(const s3_writer *w)
{
    return w->nparts > 0 && w->parts[w->nparts - 1].size == part_limit(w->b, w->nparts - 1) &&
           w->staged_bytes == 0;
}

static int w_write(berth_blob_writer *bw, const void *data, size_t len)
{
    s3_writer *w = (s3_writer *)bw;
    const char *p = data;
    int rc = w->broken ? berth_error_set(w->broken, "s3: an earlier part of this write failed") : 0;
    while (rc == 0 && len > 0) {
        if (w->up.active && w->up.owns && w->buf.len >= FILL_WHILE_UP) {
            rc = wait_part(w); /* bounded memory: the part on its way goes first */
            if (rc != 0) {
                break;
            }
        }
        size_t limit = buf_limit(w), room = limit - (size_t)tail_len(w),
               n = len < room ? len : room;
        if (n == room && !w->loaded) {
            rc = ensure_loaded(w); /* these bytes fill a part: it needs the staged ones */
        }
        if (rc == 0 && !w->buf.ptr) {
            rc = part_buf_new(&w->buf, limit);
        }
        if (rc == 0) {
            rc = berth_buf_put(&w->buf, p, n);
        }
        if (rc == 0) {
            p += n;
            len -= n;
            w->size += n;
        }
        if (rc == 0 && tail_len(w) >= limit) {
            rc = flush_part(w);
        } else if (rc == 0 && w->up.active && w->up.streaming && !w->up.owns) {
            stream_update(&w->up, w->buf.len, false);
        } else if (rc == 0 && !w->up.active && (tail_len(w) >= PART_SIZE || big_requests(w))) {
            rc = stream_start(w);
        }
    }
    return rc;
}

static int random_name(char out[32])
{
    unsigned char r[8];
    static const char hex[] = "0123456789abcdef";
    if (RAND_bytes(r, sizeof(r)) != 1) {
        return berth_error_set(BERTH_ERROR, "s3: no random bytes");
    }
    memcpy(out, "tail-", 5);
    for (int i = 0; i < 8; i++) {
        out[5 + 2 * i] = hex[r[i] >> 4];
        out[6 + 2 * i] = hex[r[i] & 15];
    }
    out[21] = '\0';
    return 0;
}

/* Runs of equal sizes among the parts: how many. */
static size_t size_runs(const s3_writer *w)
{
    size_t n = 0;
    for (size_t i = 0; i < w->nparts; i++) {
        n += i == 0 || w->parts[i].size != w->parts[i - 1].size;
    }
    return n;
}

/*
 * The state (version 2): {"v":2, "u": upload id or null, "p": parts, "c": their ETag chain,
 * "s": their sizes as runs [[size, count], ...], "t": segments [[name, size], ...], "n": bytes
 * in the segments, "q": segments dead once the next state is stored}. Parts are of their
 * part_limit, except one a sync cut from what it held (PART_SIZE or more), so runs are at most two
 * per request; past RUNS_MAX a sync stages instead, and the state stays under 64 KiB.
 * Version 1 (before parts of other sizes) had no "s": every part PART_SIZE bytes.
 */
static int state_text(s3_writer *w, char **out)
{
    json_t *t = json_array(), *q = json_array(), *r = json_array(), *o = NULL;
    int rc = 0;
    *out = NULL;
    for (size_t i = 0; r && i < w->nparts;) {
        size_t j = i;
        while (j < w->nparts && w->parts[j].size == w->parts[i].size) {
            j++;
        }
        if (json_array_append_new(
                r, json_pack("[II]", (json_int_t)w->parts[i].size, (json_int_t)(j - i))) != 0) {
            json_decref(r);
            r = NULL;
        }
        i = j;
    }
    for (size_t i = 0; t && i < w->staged.n; i++) {
        if (json_array_append_new(
                t, json_pack("[sI]", w->staged.v[i].name, (json_int_t)w->staged.v[i].size)) != 0) {
            json_decref(t);
            t = NULL;
        }
    }
    for (size_t i = 0; q && i < w->dead_prev.n; i++) {
        if (json_array_append_new(q, json_string(w->dead_prev.v[i])) != 0) {
            json_decref(q);
            q = NULL;
        }
    }
    if (t && q && r) {
        o = json_pack("{s:i, s:o, s:I, s:s, s:O, s:O, s:I, s:O}", "v", 2, "u",
                      w->upload_id ? json_string(w->upload_id) : json_null(), "p",
                      (json_int_t)w->nparts, "c", w->chain, "s", r, "t", t, "n",
                      (json_int_t)w->staged_bytes, "q", q);
    }
    *out = o ? json_dumps(o, JSON_COMPACT) : NULL;
    if (!*out) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    json_decref(o);
    json_decref(t);
    json_decref(q);
    json_decref(r);
    return rc;
}

/* PutObject of a new segment uploads/<id>/tail-<random>, added to the staged ones. */
static int stage(s3_writer *w, const char *data, size_t len)
{
    berth_buf key = BERTH_BUF_INIT;
    char name[32];
    int rc = random_name(name);
    if (rc == 0) {
        rc = session_key(&key, w->b, w->id, name);
    }
    if (rc == 0) {
        rc = berth__s3_put(w->b->c, key.ptr, data ? data : "", len, false);
    }
    if (rc == 0) {
        rc = segs_add(&w->staged, name, len);
    }
    if (rc == 0) {
        w->staged_bytes += len;
        w->changed = true;
    }
    berth_buf_dispose(&key);
    return rc;
}

static int w_sync(berth_blob_writer *bw, char **state_out)
{
    s3_writer *w = (s3_writer *)bw;
    berth_buf key = BERTH_BUF_INIT;
    int rc = wait_part(w);
    *state_out = NULL;
    if (rc != 0) {
        goto out;
    }
    if (tail_len(w) >= PART_SIZE && size_runs(w) < RUNS_MAX) {
        /* enough for a part: one UploadPart of it all (the staged bytes in front), no
         * segment */
        rc = ensure_loaded(w);
        if (rc == 0) {
            rc = upload_part_now(w);
        }
        if (rc != 0) {
            goto out;
        }
    }
    /* the bytes written since the last sync: a new segment */
    size_t fresh = w->loaded ? w->buf.len - (size_t)w->staged_bytes : w->buf.len;
    if (fresh > 0) {
        rc = stage(w, w->buf.ptr + (w->buf.len - fresh), fresh);
        if (rc == 0 && !w->loaded) {
            berth_buf_clear(&w->buf);
        }
    }
    if (rc == 0 && w->staged.n > SEG_MAX) {
        /* too many segments: one instead */
        segs old = w->staged;
        uint64_t old_bytes = w->staged_bytes;
        rc = ensure_loaded(w);
        if (rc == 0) {
            w->staged = (segs){0};
            w->staged_bytes = 0;
            rc = stage(w, w->buf.ptr, w->buf.len);
            if (rc != 0) {
                segs_free(&w->staged);
                w->staged = old;
                w->staged_bytes = old_bytes;
                old = (segs){0};
            }
        }
        for (size_t i = 0; rc == 0 && i < old.n; i++) {
            rc = keys_add(&w->dropped, old.v[i].name);
        }
        if (rc == 0) {
            segs_free(&old);
        }
    }
    if (rc == 0 && !w->upload_id && w->staged.n == 0) {
        /* nothing stored yet: an empty segment tells a later open that the session exists */
        rc = stage(w, "", 0);
    }
    if (rc != 0) {
        goto out;
    }
    if (w->changed) {
        /* the state before the last is dead now: what only it named goes */
        for (size_t i = 0; i < w->dead_prev.n; i++) {
            berth_buf_clear(&key);
            if (session_key(&key, w->b, w->id, w->dead_prev.v[i]) == 0 &&
                berth__s3_delete(w->b->c, key.ptr) != 0) {
                berth_error_clear(); /* left for commit, abort or reap */
            }
        }
        keys_free(&w->dead_prev);
        w->dead_prev = w->dropped;
        w->dropped = (keys){0};
        w->changed = false;
    }
    rc = state_text(w, state_out);
    if (rc == 0) {
        w->nsynced = w->nparts;
    }
out:
    berth_buf_dispose(&key);
    return rc;
}

/*
 * Rebuild the first `nsynced` parts of the session as a new upload at the same key, by
 * UploadPartCopy from the completed object there (same bytes, so same ETags). Parts whose ETag
 * the writer does not know get the copy's, which the caller checks against the state's chain.
 * @param id_out  the new upload's id (freed with free()), or NULL when the caller leaves it to
 *                be found by its key
 */
static int restore_session(s3_writer *w, size_t nsynced, char **id_out)
{
    char *id = NULL;
    uint64_t off = 0;
    int rc = berth__s3_mpu_create(w->b->c, w->mpu_key, &id);
    for (size_t i = 0; rc == 0 && i < nsynced; i++) {
        char *etag = NULL;
        rc = berth__s3_mpu_part_copy(w->b->c, w->mpu_key, id, (unsigned)i + 1, w->mpu_key, off,
                                     w->parts[i].size, &etag);
        if (rc == 0 && !w->parts[i].etag) {
            w->parts[i].etag = etag;
            etag = NULL;
        } else if (rc == 0 && strcmp(etag, w->parts[i].etag) != 0) {
            rc = berth_error_set(BERTH_EIO, "s3: a copied part has another ETag");
        }
        free(etag);
        off += w->parts[i].size;
    }
    if (rc != 0 && id) {
        berth__s3_mpu_abort(w->b->c, w->mpu_key, id);
    }
    if (rc == 0 && id_out) {
        *id_out = id;
        id = NULL;
    }
    free(id);
    return rc;
}

/*
 * A writer whose upload is gone finds the session in the completed object a commit left at
 * uploads/<id>/data when it failed after completing (killed, or the copy to the blob key
 * failed): the state's parts are rebuilt from it, checked against the state's ETag chain.
 * @return 0 (the writer has its upload back), BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENETWORK
 */
static int recover_from_completed(s3_writer *w)
{
    berth__s3_stat st;
    char chain[65] = "", *id = NULL;
    uint64_t base_bytes = 0;
    int rc = berth__s3_head(w->b->c, w->mpu_key, &st);
    for (size_t i = 0; i < w->nbase; i++) {
        base_bytes += w->parts[i].size;
    }
    if (rc == 0 && st.size < base_bytes) {
        rc = berth_error_set(BERTH_ENOTFOUND, "s3: no such upload session");
    }
    if (rc == 0) {
        rc = restore_session(w, w->nbase, &id);
    }
    for (size_t i = 0; rc == 0 && i < w->nbase; i++) {
        rc = chain_next(chain, w->parts[i].etag);
    }
    if (rc == 0 && strcmp(chain, w->base_chain) != 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "s3: no such upload session");
        berth__s3_mpu_abort(w->b->c, w->mpu_key, id);
    }
    if (rc == 0) {
        free(w->upload_id);
        w->upload_id = id;
        id = NULL;
        w->nbase = 0;
        if (berth__s3_delete(w->b->c, w->mpu_key) != 0) {
            berth_error_clear(); /* the next commit overwrites it */
        }
    } else {
        for (size_t i = 0; i < w->nbase; i++) {
            free(w->parts[i].etag);
            w->parts[i].etag = NULL;
        }
    }
    free(id);
    return rc;
}

static int base_part(unsigned number, const char *etag, uint64_t size, void *p)
{
    s3_writer *w = p;
    if (number > w->nbase) {
        return 0; /* past the state: not part of the session */
    }
    if (size != w->parts[number - 1].size) {
        return berth_error_set(BERTH_EIO, "s3: a part of the session has another size");
    }
    free(w->parts[number - 1].etag);
    w->parts[number - 1].etag = strdup(etag);
    return w->parts[number - 1].etag ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
}

/* The ETags of the parts a reopened writer took over from its state, checked against its chain. */
static int fill_base_etags(s3_writer *w)
{
    char chain[65] = "";
    int rc = 0;
    if (w->nbase == 0) {
        return 0;
    }
    rc = berth__s3_mpu_parts(w->b->c, w->mpu_key, w->upload_id, base_part, w);
    for (size_t i = 0; rc == 0 && i < w->nbase; i++) {
        if (!w->parts[i].etag) {
            rc = berth_error_set(BERTH_EIO, "s3: a part of the session is missing");
        } else {
            rc = chain_next(chain, w->parts[i].etag);
        }
    }
    if (rc == 0 && strcmp(chain, w->base_chain) != 0) {
        rc = berth_error_set(BERTH_EIO, "s3: the parts of the session changed since its state");
    }
    if (rc == 0) {
        w->nbase = 0;
    }
    return rc;
}

static int check_sink(const void *data, size_t len, void *p)
{
    const berth_blob_check *check = p;
    return check->update(data, len, check->payload);
}

/* Copy object `src` (of `size` bytes) to `dst`: CopyObject, or UploadPartCopy past 5 GiB. */
static int copy_object(s3_backend *b, const char *dst, const char *src, uint64_t size)
{
    berth__s3_part *ps = NULL;
    char *id = NULL;
    size_t n = 0;
    int rc;
    if (size <= COPY_MAX) {
        return berth__s3_copy(b->c, dst, src);
    }
    size_t count = (size_t)((size + COPY_PIECE - 1) / COPY_PIECE);
    ps = calloc(count, sizeof(*ps));
    if (!ps) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = berth__s3_mpu_create(b->c, dst, &id);
    for (uint64_t off = 0; rc == 0 && off < size; off += COPY_PIECE, n++) {
        char *etag = NULL;
        uint64_t len = size - off < COPY_PIECE ? size - off : COPY_PIECE;
        rc = berth__s3_mpu_part_copy(b->c, dst, id, (unsigned)n + 1, src, off, len, &etag);
        ps[n] = (berth__s3_part){(unsigned)n + 1, etag};
    }
    if (rc == 0) {
        rc = berth__s3_mpu_complete(b->c, dst, id, ps, n);
    }
    if (rc != 0 && id) {
        berth__s3_mpu_abort(b->c, dst, id);
    }
    for (size_t i = 0; i < n; i++) {
        free((char *)(uintptr_t)ps[i].etag);
    }
    free(ps);
    free(id);
    return rc;
}

static int w_commit(berth_blob_writer *bw, const berth_digest *digest,
                    const berth_blob_check *check)
{
    s3_writer *w = (s3_writer *)bw;
    s3_backend *b = w->b;
    berth_buf key = BERTH_BUF_INIT;
    berth__s3_part *ps = NULL;
    berth__s3_stat st;
    size_t nsynced = 0;
    int rc = blob_key(&key, b, digest);

    if (rc == 0) {
        rc = wait_part(w);
    }
    if (rc == 0) {
        rc = ensure_loaded(w);
    }
    if (rc != 0) {
        goto out;
    }
    if (!w->upload_id) {
        /* small: one PutObject, never overwriting */
        if (check) {
            rc = w->buf.len ? check->update(w->buf.ptr, w->buf.len, check->payload) : 0;
            if (rc == 0) {
                rc = check->final(check->payload);
            }
            if (rc != 0) {
                goto out;
            }
        }
        rc = berth__s3_put(b->c, key.ptr, w->buf.ptr ? w->buf.ptr : "", w->buf.len, true);
        if (rc == BERTH_EEXISTS) {
            berth_error_clear();
            rc = 0;
        }
        goto cleanup;
    }

    /* the parts of the last state, for a refused check */
    nsynced = w->nsynced;
    rc = fill_base_etags(w);
    if (rc == 0 && w->buf.len > 0) {
        rc = upload_part_now(w);
    }
    if (rc == 0) {
        ps = calloc(w->nparts ? w->nparts : 1, sizeof(*ps));
        if (!ps) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    for (size_t i = 0; rc == 0 && i < w->nparts; i++) {
        ps[i] = (berth__s3_part){(unsigned)i + 1, w->parts[i].etag};
    }
    if (rc == 0) {
        rc = berth__s3_mpu_complete(b->c, w->mpu_key, w->upload_id, ps, w->nparts);
    }
    if (rc == BERTH_ENOTFOUND) {
        /* a retried completion whose first attempt went through (its answer was lost) */
        int hrc = berth__s3_head(b->c, w->mpu_key, &st);
        if (hrc == 0 && st.size == w->size) {
            berth_error_clear();
            rc = 0;
        }
    }
    if (rc != 0) {
        goto out;
    }
    if (check) {
        rc = berth__s3_get(b->c, w->mpu_key, 0, UINT64_MAX, check_sink, (void *)(uintptr_t)check);
        if (rc == 0) {
            rc = check->final(check->payload);
        }
    }
    if (rc == 0) {
        rc = berth__s3_head(b->c, key.ptr, &st);
        if (rc == BERTH_ENOTFOUND) {
            berth_error_clear();
            rc = copy_object(b, key.ptr, w->mpu_key, w->size);
        }
    }
    if (rc != 0) {
        /* completed, but not published: put the session back as at its last sync (if that
         * fails too, the next writer rebuilds it from the completed object) */
        int code = rc;
        char *msg = strdup(berth_error_last());
        if (restore_session(w, nsynced, NULL) == 0) {
            berth__s3_delete(b->c, w->mpu_key);
        }
        berth_error_set(code, "%s", msg ? msg : "s3: commit failed");
        free(msg);
        rc = code;
        goto out;
    }
cleanup:
    if (rc == 0) {
        /* the blob is in place: what is left of the session is garbage */
        delete_known(w);
    }
out:
    free(ps);
    berth_buf_dispose(&key);
    writer_free(w);
    return rc;
}

static int w_abort(berth_blob_writer *bw)
{
    s3_writer *w = (s3_writer *)bw;
    int rc = 0;
    if (w->up.active && w->up.streaming) {
        stream_update(&w->up, w->up.avail, true);
    }
    if (w->up.active) {
        pthread_join(w->up.thread, NULL);
        w->up.active = false;
    }
    if (w->upload_id) {
        rc = berth__s3_mpu_abort(w->b->c, w->mpu_key, w->upload_id);
        if (rc == BERTH_ENOTFOUND) {
            berth_error_clear();
            rc = 0;
        }
    }
    if (rc == 0) {
        rc = delete_session_objects(w->b, w->id);
    }
    writer_free(w);
    return rc;
}

static void w_close(berth_blob_writer *bw)
{
    writer_free((s3_writer *)bw);
}

static bool valid_id(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n > ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') || id[i] == '-')) {
            return false;
        }
    }
    return true;
}

static bool valid_tail_name(const char *s)
{
    if (strncmp(s, "tail-", 5) != 0 || strlen(s) > 40) {
        return false;
    }
    for (s += 5; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int upload_at_key(const char *key, const char *upload_id, int64_t initiated, void *p)
{
    keys *k = p;
    (void)initiated;
    (void)key;
    return keys_add(k, upload_id);
}

/*
 * The upload a refused check left (see restore_session), found by its key among the uploads
 * there: the one whose parts chain to the state's.
 */
static int adopt_upload(s3_writer *w)
{
    keys ids = {0};
    int rc = berth__s3_mpu_list(w->b->c, w->mpu_key, upload_at_key, &ids);
    bool found = false;
    for (size_t i = 0; rc == 0 && !found && i < ids.n; i++) {
        free(w->upload_id);
        w->upload_id = strdup(ids.v[i]);
        if (!w->upload_id) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            break;
        }
        int frc = fill_base_etags(w);
        if (frc == 0) {
            found = true;
        } else if (frc == BERTH_EIO || frc == BERTH_ENOTFOUND) {
            berth_error_clear();
            for (size_t j = 0; j < w->nbase; j++) {
                free(w->parts[j].etag);
                w->parts[j].etag = NULL;
            }
        } else {
            rc = frc;
        }
    }
    keys_free(&ids);
    return rc == 0 && !found ? BERTH_ENOTFOUND : rc;
}

static bool valid_chain(const char *c, size_t nparts)
{
    size_t n = strlen(c);
    if (n != (nparts ? 64u : 0u)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!((c[i] >= '0' && c[i] <= '9') || (c[i] >= 'a' && c[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static int parse_state(s3_writer *w, const char *state)
{
    json_error_t jerr;
    json_t *o = json_loads(state, 0, &jerr), *u = NULL, *t = NULL, *q = NULL, *r = NULL;
    json_int_t v = 0, np = -1, n = -1;
    const char *chain = NULL;
    int rc = 0;
    if (!o ||
        json_unpack(o, "{s:I, s:o, s:I, s:s, s:o, s:I, s:o}", "v", &v, "u", &u, "p", &np, "c",
                    &chain, "t", &t, "n", &n, "q", &q) != 0 ||
        (v != 1 && v != 2) || !(json_is_null(u) || json_is_string(u)) || np < 0 || np > MAX_PARTS ||
        (json_is_null(u) && np > 0) || !valid_chain(chain, (size_t)np) || !json_is_array(t) ||
        json_array_size(t) > SEG_MAX + 1 || n < 0 ||
        n >= (json_int_t)(v == 1 ? PART_SIZE : part_limit(w->b, (size_t)np)) || !json_is_array(q) ||
        json_array_size(q) > 2 * (SEG_MAX + 1) ||
        (v == 2 && (!(r = json_object_get(o, "s")) || !json_is_array(r) ||
                    json_array_size(r) > RUNS_MAX + 1))) {
        rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
        goto out;
    }
    if (json_is_string(u) && !(w->upload_id = strdup(json_string_value(u)))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (np > 0) {
        w->parts = calloc((size_t)np, sizeof(*w->parts));
        if (!w->parts) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        for (json_int_t i = 0; i < np; i++) {
            w->parts[i].size = PART_SIZE; /* version 1 */
        }
        w->nparts = w->cap = w->nbase = w->nsynced = (size_t)np;
    }
    if (r) {
        /* version 2: the sizes, as runs that must cover the parts exactly */
        json_int_t at = 0;
        for (size_t i = 0; rc == 0 && i < json_array_size(r); i++) {
            json_int_t size = -1, count = -1;
            if (json_unpack(json_array_get(r, i), "[II]", &size, &count) != 0 || size < PART_SIZE ||
                (uint64_t)size > PART_CAP || count < 1 || count > np - at) {
                rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
                break;
            }
            for (json_int_t k = 0; k < count; k++) {
                w->parts[at++].size = (uint64_t)size;
            }
        }
        if (rc == 0 && at != np) {
            rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
        }
        if (rc != 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < w->nparts; i++) {
        w->size += w->parts[i].size;
    }
    snprintf(w->chain, sizeof(w->chain), "%s", chain);
    snprintf(w->base_chain, sizeof(w->base_chain), "%s", chain);
    for (size_t i = 0; rc == 0 && i < json_array_size(t); i++) {
        const char *name = NULL;
        json_int_t size = -1;
        if (json_unpack(json_array_get(t, i), "[sI]", &name, &size) != 0 || size < 0 ||
            !valid_tail_name(name)) {
            rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
        } else {
            rc = segs_add(&w->staged, name, (uint64_t)size);
            w->staged_bytes += (uint64_t)size;
        }
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(q); i++) {
        json_t *e = json_array_get(q, i);
        if (!json_is_string(e) || !valid_tail_name(json_string_value(e))) {
            rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
        } else {
            rc = keys_add(&w->dead_prev, json_string_value(e));
        }
    }
    if (rc == 0 && w->staged_bytes != (uint64_t)n) {
        rc = berth_error_set(BERTH_EINVALID, "s3: unreadable session state");
    }
    w->size += w->staged_bytes;
out:
    json_decref(o);
    return rc;
}

static int be_writer_open(berth_blob_writer **out, berth_blob_backend *bb, const char *id,
                          const char *state, uint64_t size)
{
    s3_backend *b = backend_of(bb);
    s3_writer *w = NULL;
    berth_buf key = BERTH_BUF_INIT;
    int rc = 0;

    *out = NULL;
    if (!valid_id(id)) {
        return berth_error_set(BERTH_EINVALID, "s3: bad session id");
    }
    w = calloc(1, sizeof(*w));
    if (!w) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&w->up.mu, NULL);
    pthread_cond_init(&w->up.cv, NULL);
    w->base = (berth_blob_writer){.backend = bb,
                                  .size = w_size,
                                  .write = w_write,
                                  .sync = w_sync,
                                  .commit = w_commit,
                                  .abort = w_abort,
                                  .close = w_close};
    w->b = b;
    w->id = strdup(id);
    rc = session_key(&key, b, id, "data");
    w->mpu_key = rc == 0 ? berth_buf_detach(&key) : NULL;
    if (!w->id || !w->mpu_key) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (!state) {
        w->loaded = true;
        goto out;
    }
    rc = parse_state(w, state);
    if (rc == 0 && w->size != size) {
        rc = berth_error_set(BERTH_EINVALID, "s3: the session state is of another size");
    }
    if (rc != 0) {
        goto out;
    }
    /* does the session still exist? (its last segment, or its upload) */
    if (w->staged.n) {
        berth__s3_stat st;
        rc = session_key(&key, b, id, w->staged.v[w->staged.n - 1].name);
        if (rc == 0) {
            rc = berth__s3_head(b->c, key.ptr, &st);
        }
    }
    if (rc == 0 && w->upload_id) {
        rc = berth__s3_mpu_exists(b->c, w->mpu_key, w->upload_id);
        if (rc == BERTH_ENOTFOUND && w->nbase > 0) {
            /* a refused check may have moved the parts to a new upload at the same key */
            berth_error_clear();
            rc = adopt_upload(w);
        }
        if (rc == BERTH_ENOTFOUND && w->nbase > 0) {
            /* or a commit that failed after completing left them in the completed object */
            berth_error_clear();
            rc = recover_from_completed(w);
        }
    }
    if (rc == 0 && !w->staged.n && !w->upload_id) {
        rc = BERTH_ENOTFOUND;
    }
    if (rc == BERTH_ENOTFOUND) {
        berth_error_set(BERTH_ENOTFOUND, "s3: no such upload session (committed, aborted or "
                                         "reaped)");
    }
out:
    berth_buf_dispose(&key);
    if (rc != 0) {
        writer_free(w);
        return rc;
    }
    *out = &w->base;
    return 0;
}

/* ---- reap ------------------------------------------------------------------------------- */

typedef struct reap_ctx {
    s3_backend *b;
    const char *const *live;
    size_t nlive;
    int64_t cutoff;    /* written before this: old enough */
    size_t skip;       /* length of "<prefix>uploads/" */
    keys removed;      /* session ids */
    keys dead_keys;    /* objects to delete */
    keys dead_uploads; /* "key\nuploadid" */
} reap_ctx;

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The session id in key "<prefix>uploads/<id>/...", copied into `id`; false if none. */
static bool session_of(const reap_ctx *x, const char *key, char id[ID_MAX + 1])
{
    const char *s = key + x->skip, *slash;
    if (strlen(key) <= x->skip || !(slash = strchr(s, '/')) || slash - s > ID_MAX || slash == s) {
        return false;
    }
    memcpy(id, s, (size_t)(slash - s));
    id[slash - s] = '\0';
    return true;
}

static bool is_live(const reap_ctx *x, const char *id)
{
    return x->nlive && bsearch(&id, x->live, x->nlive, sizeof(*x->live), cmp_str) != NULL;
}

static int note_removed(reap_ctx *x, const char *id)
{
    for (size_t i = 0; i < x->removed.n; i++) {
        if (strcmp(x->removed.v[i], id) == 0) {
            return 0;
        }
    }
    return keys_add(&x->removed, id);
}

static int reap_upload(const char *key, const char *upload_id, int64_t initiated, void *p)
{
    reap_ctx *x = p;
    char id[ID_MAX + 1];
    berth_buf both = BERTH_BUF_INIT;
    int rc = 0;
    if (!session_of(x, key, id) || is_live(x, id) || initiated >= x->cutoff) {
        return 0;
    }
    rc = berth_buf_printf(&both, "%s\n%s", key, upload_id);
    if (rc == 0) {
        rc = keys_add(&x->dead_uploads, both.ptr);
    }
    if (rc == 0) {
        rc = note_removed(x, id);
    }
    berth_buf_dispose(&both);
    return rc;
}

static int reap_object(const char *key, uint64_t size, int64_t mtime, void *p)
{
    reap_ctx *x = p;
    char id[ID_MAX + 1];
    int rc;
    (void)size;
    if (!session_of(x, key, id) || is_live(x, id) || mtime >= x->cutoff) {
        return 0;
    }
    rc = keys_add(&x->dead_keys, key);
    if (rc == 0) {
        rc = note_removed(x, id);
    }
    return rc;
}

static int be_reap(berth_blob_backend *bb, const char *const *live, size_t nlive,
                   int64_t older_than, uint64_t *removed)
{
    s3_backend *b = backend_of(bb);
    berth_buf prefix = BERTH_BUF_INIT;
    reap_ctx x = {.b = b, .live = live, .nlive = nlive};
    int rc = berth_buf_printf(&prefix, "%suploads/", b->prefix);
    x.cutoff = (int64_t)time(NULL) - (older_than > 0 ? older_than : 0);
    x.skip = prefix.len;
    if (rc == 0) {
        rc = berth__s3_mpu_list(b->c, prefix.ptr, reap_upload, &x);
    }
    if (rc == 0) {
        rc = berth__s3_list(b->c, prefix.ptr, reap_object, &x);
    }
    for (size_t i = 0; rc == 0 && i < x.dead_uploads.n; i++) {
        char *nl = strchr(x.dead_uploads.v[i], '\n');
        *nl = '\0';
        rc = berth__s3_mpu_abort(b->c, x.dead_uploads.v[i], nl + 1);
        if (rc == BERTH_ENOTFOUND) {
            berth_error_clear();
            rc = 0;
        }
    }
    for (size_t i = 0; rc == 0 && i < x.dead_keys.n; i++) {
        rc = berth__s3_delete(b->c, x.dead_keys.v[i]);
    }
    if (rc == 0 && removed) {
        *removed += x.removed.n;
    }
    keys_free(&x.removed);
    keys_free(&x.dead_keys);
    keys_free(&x.dead_uploads);
    berth_buf_dispose(&prefix);
    return rc;
}

/* ---- the backend ------------------------------------------------------------------------- */

berth__s3 *berth__s3_backend_client(berth_blob_backend *bb)
{
    return backend_of(bb)->c;
}

static void be_free(berth_blob_backend *bb)
{
    s3_backend *b = backend_of(bb);
    if (!b) {
        return;
    }
    berth__s3_free(b->c);
    free(b->prefix);
    free(b->public_endpoint);
    free(b);
}

int berth_s3_blob_backend_new(berth_blob_backend **out, const berth_s3_options *opts)
{
    s3_backend *b = NULL;
    berth_buf prefix = BERTH_BUF_INIT;
    int rc;

    *out = NULL;
    if (!opts) {
        return berth_error_set(BERTH_EINVALID, "s3: no options");
    }
    b = calloc(1, sizeof(*b));
    if (!b) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    b->base = (berth_blob_backend){.version = BERTH_BLOB_BACKEND_VERSION,
                                   .name = "s3",
                                   .stat = be_stat,
                                   .read = be_read,
                                   .open_fd = NULL,
                                   .url = be_url,
                                   .remove = be_remove,
                                   .foreach = be_foreach,
                                   .writer_open = be_writer_open,
                                   .reap = be_reap,
                                   .free = be_free};
    berth__s3_config cfg = {.endpoint = opts->endpoint,
                            .bucket = opts->bucket,
                            .region = opts->region,
                            .path_style = opts->path_style,
                            .retries = 3};
    rc = berth__s3_new(&b->c, &cfg);
    if (rc != 0) {
        goto out;
    }
    const char *p = opts->prefix ? opts->prefix : "";
    while (*p == '/') {
        p++;
    }
    rc = berth_buf_puts(&prefix, p);
    if (rc == 0 && prefix.len && prefix.ptr[prefix.len - 1] != '/') {
        rc = berth_buf_put(&prefix, "/", 1);
    }
    b->prefix = rc == 0 ? berth_buf_detach(&prefix) : NULL;
    b->redirect = opts->redirect;
    b->redirect_seconds = opts->redirect_seconds;
    b->part_size = opts->part_size ? opts->part_size : PART_MAX;
    b->part_step = opts->part_growth ? opts->part_growth : PART_STEP;
    if (rc == 0 && (b->part_size < PART_SIZE || b->part_size > PART_CAP)) {
        rc = berth_error_set(BERTH_EINVALID, "s3: a part size is 5 MiB to 5 GiB");
    }
    if (opts->public_endpoint && *opts->public_endpoint) {
        char *probe = NULL;
        b->public_endpoint = strdup(opts->public_endpoint);
        if (!b->public_endpoint) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        } else {
            /* refuse a public endpoint that is not scheme://host[:port] now, not at the first
             * redirect */
            rc = berth__s3_presign_get(b->c, "x", 1, b->public_endpoint, &probe);
            free(probe);
        }
    }
    if (rc == 0 && !b->prefix) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    berth_buf_dispose(&prefix);
    if (rc != 0) {
        be_free(&b->base);
        return rc;
    }
    *out = &b->base;
    return 0;
}
