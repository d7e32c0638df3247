/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /v2/<name>/blobs/<digest> (GET, HEAD, DELETE) and the upload sessions under
 * /v2/<name>/blobs/uploads/. Blob bodies go out with sendfile when the blob backend has
 * descriptors (fs: the response is built on the store's descriptor, which libmicrohttpd
 * closes), as a 307 to the object store when it gives URLs, else streamed by a reader thread
 * through a ring (stream_response).
 * Upload bodies are streamed into the store's session as they arrive (see feed() in
 * server.c); a session handle is held only for the
 * length of one request.
 */
#include "server/server_internal.h"

#include "base/log.h"

#include <berth/errors.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LOCATION_MAX (BERTH_NAME_MAX + BERTH_UPLOAD_ID_MAX + BERTH_DIGEST_MAXLEN + 32)

/* The body reader of a HEAD response: MHD never sends a body to a HEAD, so never called. */
static ssize_t no_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

/*
 * A small body goes out from memory, read with one pread: libmicrohttpd then sends the headers
 * and the body in one send(2), one TCP segment, where a descriptor response costs a send of the
 * headers and a sendfile of the body, two segments (issue 14: the 4 KiB blob GET spent 28% of
 * the server's CPU in each of the two calls).
 */
#define SMALL_BODY (16u * 1024)

/* NULL: read it otherwise (sendfile); the caller keeps `fd` either way. */
static struct MHD_Response *small_response(int fd, uint64_t offset, uint64_t len)
{
    struct MHD_Response *resp;
    char *buf = malloc(len ? len : 1);
    ssize_t n;

    if (!buf) {
        return NULL;
    }
    n = pread(fd, buf, len, (off_t)offset);
    if (n < 0 || (uint64_t)n != len ||
        !(resp = MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_MUST_FREE))) {
        free(buf);
        return NULL;
    }
    return resp;
}

/* Add the headers of a blob response and queue it (NULL `resp`: out of memory). */
static enum MHD_Result send_blob(berth__req *r, struct MHD_Response *resp,
                                 const berth_digest *digest, unsigned status,
                                 const char *content_range, uint64_t len)
{
    if (!resp) {
        return MHD_NO;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
    MHD_add_response_header(resp, "Docker-Content-Digest", digest->str);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
    if (content_range) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
    }
    r->bytes = len;
    return berth__respond(r, status, resp);
}

/*
 * A blob served from a backend without descriptors (S3) is streamed: one read of the backend
 * for the whole range (one GetObject), run by a thread of the response's own, which fills a
 * ring of STREAM_RING bytes while libmicrohttpd sends what the ring holds, so fetching and
 * sending overlap (the ring full, the thread waits in its sink: the backend's connection stops
 * reading and TCP holds the sender back). A GET holds at most STREAM_RING bytes however large
 * the blob. The read failing midway ends the response with an error, so the client sees a
 * body shorter than its Content-Length, never a whole one. When the response goes (sent,
 * or the client went away), the thread is told to stop (its sink refuses the next bytes) and
 * joined.
 */
#define STREAM_RING (1024u * 1024)

typedef struct blob_stream {
    berth_store *store;
    berth_digest digest;
    uint64_t offset, len; /* the bytes served: [offset, offset + len) of the blob */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* any change below */
    char *ring;
    size_t head, count; /* ring[head] is the next byte to send; count bytes held */
    uint64_t produced;  /* bytes the thread has put in the ring */
    uint64_t sent;      /* bytes handed to libmicrohttpd */
    size_t want_data;   /* the sender waits for this many bytes held (0: it does not wait) */
    size_t want_room;   /* the thread waits for this much room (0: it does not wait) */
    bool done;          /* the thread has finished: `error` says how */
    bool cancelled;     /* the response is gone: the thread stops */
    bool started;       /* the thread runs (joined by stream_free) */
    int error;
    char message[256]; /* the thread's error message (berth_error_last is per thread) */
    pthread_t thread;
} blob_stream;

/* The thread's sink: copy into the ring, waiting for room. */
static int stream_sink(const void *data, size_t len, void *payload)
{
    blob_stream *st = payload;
    const char *p = data;
    int rc = 0;

    pthread_mutex_lock(&st->mu);
    while (len > 0) {
        size_t tail, n;
        if (st->count == STREAM_RING) {
            /* full: wait until the sender has taken a good part (not every piece it takes),
             * so that each side sleeps and wakes once per half ring, not per send */
            st->want_room = len < STREAM_RING / 2 ? len : STREAM_RING / 2;
            while (STREAM_RING - st->count < st->want_room && !st->cancelled) {
                pthread_cond_wait(&st->cv, &st->mu);
            }
            st->want_room = 0;
        }
        if (st->cancelled) {
            rc = berth_error_set(BERTH_ERROR, "the response is gone");
            break;
        }
        if (len > st->len - st->produced) {
            rc = berth_error_set(BERTH_EIO, "the blob has more bytes than asked for");
            break;
        }
        tail = (st->head + st->count) % STREAM_RING;
        n = STREAM_RING - st->count;
        if (n > STREAM_RING - tail) {
            n = STREAM_RING - tail; /* up to the end of the ring, the rest next turn */
        }
        if (n > len) {
            n = len;
        }
        memcpy(st->ring + tail, p, n);
        st->count += n;
        st->produced += n;
        p += n;
        len -= n;
        if (st->want_data && st->count >= st->want_data) {
            pthread_cond_broadcast(&st->cv); /* the sender has what it waits for */
        }
    }
    pthread_mutex_unlock(&st->mu);
    return rc;
}

static void *stream_main(void *cls)
{
    blob_stream *st = cls;
    int rc = berth_store_blob_read(st->store, &st->digest, st->offset, st->len, stream_sink, st);

    pthread_mutex_lock(&st->mu);
    if (rc == 0 && st->produced != st->len) {
        rc = berth_error_set(BERTH_EIO, "the blob ended after %llu of %llu bytes",
                             (unsigned long long)st->produced, (unsigned long long)st->len);
    }
    if (rc < 0 && !st->cancelled) {
        berth__log(BERTH_LOG_WARN, "blob %s: read at %llu failed: %s", st->digest.str,
                   (unsigned long long)(st->offset + st->produced), berth_error_last());
    }
    if (rc < 0) {
        snprintf(st->message, sizeof(st->message), "%s", berth_error_last());
    }
    st->error = rc;
    st->done = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    return NULL;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    blob_stream *st = cls;
    ssize_t ret;

    pthread_mutex_lock(&st->mu);
    if (pos != st->sent) {
        ret = MHD_CONTENT_READER_END_WITH_ERROR; /* MHD reads in order; never seeks */
        goto out;
    }
    /* wait for a good amount (a full MHD buffer, or half the ring), not for every piece the
     * thread adds: fewer wake-ups and fewer, larger sends */
    size_t enough = max < STREAM_RING / 2 ? max : STREAM_RING / 2;
    if (enough > st->len - st->sent) {
        enough = (size_t)(st->len - st->sent);
    }
    st->want_data = enough;
    while (st->count < enough && !st->done) {
        pthread_cond_wait(&st->cv, &st->mu);
    }
    st->want_data = 0;
    if (st->count == 0) {
        /* all the thread gave is sent: the end, unless it stopped short */
        ret = st->error == 0 && st->sent == st->len ? MHD_CONTENT_READER_END_OF_STREAM
                                                    : MHD_CONTENT_READER_END_WITH_ERROR;
        goto out;
    }
    size_t n = st->count < max ? st->count : max;
    if (n > STREAM_RING - st->head) {
        n = STREAM_RING - st->head;
    }
    memcpy(out, st->ring + st->head, n);
    st->head = (st->head + n) % STREAM_RING;
    st->count -= n;
    st->sent += n;
    if (st->want_room && STREAM_RING - st->count >= st->want_room) {
        pthread_cond_broadcast(&st->cv); /* the thread has the room it waits for */
    }
    ret = (ssize_t)n;
out:
    pthread_mutex_unlock(&st->mu);
    return ret;
}

static void stream_free(void *cls)
{
    blob_stream *st = cls;

    pthread_mutex_lock(&st->mu);
    st->cancelled = true;
    pthread_cond_broadcast(&st->cv);
    pthread_mutex_unlock(&st->mu);
    if (st->started) {
        pthread_join(st->thread, NULL);
    }
    pthread_cond_destroy(&st->cv);
    pthread_mutex_destroy(&st->mu);
    free(st->ring);
    free(st);
}

/* A streamed response whose first window is read before the status goes out, so that a
   backend that cannot give the bytes (an object store down) is an error answer (*error), not a
   200 whose body breaks off. */
static struct MHD_Response *stream_response(berth__req *r, const berth_digest *digest,
                                            uint64_t offset, uint64_t len, int *error)
{
    blob_stream *st = calloc(1, sizeof(*st));
    struct MHD_Response *resp;
    pthread_attr_t attr;
    int started;

    *error = 0;
    if (!st || !(st->ring = malloc(STREAM_RING))) {
        free(st);
        return NULL;
    }
    st->store = r->srv->store;
    st->digest = *digest;
    st->offset = offset;
    st->len = len;
    pthread_mutex_init(&st->mu, NULL);
    pthread_cond_init(&st->cv, NULL);
    if (len == 0) {
        st->done = true; /* an empty blob: nothing to read */
    } else {
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 512 * 1024);
        started = pthread_create(&st->thread, &attr, stream_main, st);
        pthread_attr_destroy(&attr);
        if (started != 0) {
            berth__log(BERTH_LOG_WARN, "blob %s: cannot start a reader thread", digest->str);
            stream_free(st);
            return NULL;
        }
        st->started = true;
        /* No status goes out before the first bytes are there: a blob backend that cannot
         * be reached (or lost the blob) is a 503 (or 404), never a 200 broken off. */
        pthread_mutex_lock(&st->mu);
        st->want_data = 1;
        while (st->count == 0 && !st->done) {
            pthread_cond_wait(&st->cv, &st->mu);
        }
        st->want_data = 0;
        if (st->count == 0 && st->error < 0) {
            *error = berth_error_set(st->error, "%s", st->message);
        }
        pthread_mutex_unlock(&st->mu);
        if (*error < 0) {
            stream_free(st);
            return NULL;
        }
    }
    resp = MHD_create_response_from_callback(len, 256 * 1024, stream_read, st, stream_free);
    if (!resp) {
        stream_free(st);
    }
    return resp;
}

enum MHD_Result berth__api_blob(berth__req *r)
{
    berth_blob_location where;
    struct MHD_Response *resp;
    berth_digest digest;
    berth_byte_range range;
    const char *range_hdr;
    uint64_t size, offset = 0, len;
    unsigned status = 200;
    char content_range[96];
    int fd = -1, error;

    if ((error = berth_digest_parse_str(&digest, r->ref)) < 0) {
        return berth__respond_error(r, BERTH_OP_DIGEST, error, NULL);
    }
    /* pull-through cache (proxy.c): under an upstream's prefix, fill the store first, or
     * stream a blob being fetched */
    if (r->srv->proxy) {
        resp = NULL;
        if ((error = berth__proxy_blob(r, &digest, &resp, &size)) < 0) {
            return berth__respond_error(r, BERTH_OP_BLOB, error, NULL);
        }
        if (resp) {
            return send_blob(r, resp, &digest, 200, NULL, size);
        }
    }
    if (r->method == BERTH_M_DELETE) {
        if ((error = berth_store_blob_delete(r->srv->store, r->name, &digest)) < 0) {
            return berth__respond_error(r, BERTH_OP_BLOB, error, NULL);
        }
        return berth__respond_empty(r, 202, NULL);
    }
    if (r->method == BERTH_M_HEAD) {
        /* no body goes out: the size is all that is needed, not an open descriptor */
        if ((error = berth_store_blob_stat(r->srv->store, r->name, &digest, &size)) < 0) {
            return berth__respond_error(r, BERTH_OP_BLOB, error, NULL);
        }
        resp = MHD_create_response_from_callback(size, 4096, no_body, NULL, NULL);
        return send_blob(r, resp, &digest, 200, NULL, size);
    }
    if ((error = berth_store_blob_locate(r->srv->store, r->name, &digest, &where)) < 0) {
        return berth__respond_error(r, BERTH_OP_BLOB, error, NULL);
    }
    if (where.url) {
        /* the object store serves the bytes (storage.s3.redirect) */
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (resp) {
            MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, where.url);
            MHD_add_response_header(resp, "Docker-Content-Digest", digest.str);
        }
        free(where.url);
        return resp ? berth__respond(r, 307, resp) : MHD_NO;
    }
    fd = where.fd;
    size = where.size;
    len = size;
    range_hdr = berth__header(r, MHD_HTTP_HEADER_RANGE);
    if (range_hdr && r->method == BERTH_M_GET) {
        error = berth_range_parse(&range, range_hdr, strlen(range_hdr), size);
        if (error == BERTH_ERANGE) {
            if (fd >= 0) {
                close(fd);
            }
            snprintf(content_range, sizeof(content_range), "bytes */%llu",
                     (unsigned long long)size);
            resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
            if (!resp) {
                return MHD_NO;
            }
            MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, content_range);
            return berth__respond(r, 416, resp);
        }
        if (error == 0) {
            offset = range.start;
            len = berth_range_length(&range);
            status = 206;
            snprintf(content_range, sizeof(content_range), "bytes %llu-%llu/%llu",
                     (unsigned long long)range.start, (unsigned long long)range.end,
                     (unsigned long long)size);
        }
        /* a malformed or multi-range header is ignored: the whole blob is served */
        berth_error_clear();
    }
    if (fd < 0) {
        resp = stream_response(r, &digest, offset, len, &error);
    } else if (len <= SMALL_BODY && (resp = small_response(fd, offset, len)) != NULL) {
        close(fd);
    } else if (!(resp = MHD_create_response_from_fd_at_offset64(len, fd, offset))) {
        close(fd);
    }
    if (!resp) {
        return fd < 0 && error < 0 ? berth__respond_error(r, BERTH_OP_BLOB, error, NULL) : MHD_NO;
    }
    return send_blob(r, resp, &digest, status, status == 206 ? content_range : NULL, len);
}

/* 202/204 answer about a session. */
static enum MHD_Result session_response(berth__req *r, unsigned status, const char *id,
                                        uint64_t size)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);

    if (!resp) {
        return MHD_NO;
    }
    berth__session_headers(resp, r, id, size);
    return berth__respond(r, status, resp);
}

static enum MHD_Result blob_created(berth__req *r, const berth_digest *digest)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    char location[LOCATION_MAX];

    if (!resp) {
        return MHD_NO;
    }
    snprintf(location, sizeof(location), "/v2/%s/blobs/%s", r->name, digest->str);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
    MHD_add_response_header(resp, "Docker-Content-Digest", digest->str);
    return berth__respond(r, 201, resp);
}

enum MHD_Result berth__api_upload_get(berth__req *r)
{
    berth_upload *u = NULL;
    uint64_t size;
    int error;

    if (r->method == BERTH_M_GET) {
        /* status never waits for, nor fails because of, a request writing to the session */
        if ((error = berth_store_upload_stat(r->srv->store, r->name, r->ref, &size)) < 0) {
            return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
        }
        return session_response(r, 204, r->ref, size);
    }
    if ((error = berth_store_upload_open(&u, r->srv->store, r->name, r->ref)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
    }
    if ((error = berth_upload_cancel(u)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
    }
    return berth__respond_empty(r, 204, NULL);
}

/* ?digest= of a PUT or POST: required for PUT. */
static int query_digest(berth__req *r, bool required)
{
    const char *d = berth__query(r, "digest");

    if (!d) {
        if (required) {
            return berth_error_set(BERTH_EINVALID, "the digest query parameter is required");
        }
        return 0;
    }
    if (berth_digest_parse_str(&r->digest, d) < 0) {
        return berth_error_last_code() ? berth_error_last_code() : BERTH_EINVALID;
    }
    r->has_digest = true;
    return 0;
}

/*
 * The one check of Content-Range for every request that brings bytes into a session (PATCH,
 * the closing PUT, a monolithic POST): when present it must parse, start where the session
 * ends (416 otherwise: distribution spec, "out-of-order" chunks) and, with a Content-Length,
 * span exactly the body. Sets r->has_crange so that feed() and the finish check the body
 * against it.
 */
static int check_content_range(berth__req *r)
{
    const char *crange = berth__header(r, MHD_HTTP_HEADER_CONTENT_RANGE);
    const char *clen = berth__header(r, MHD_HTTP_HEADER_CONTENT_LENGTH);
    uint64_t size = r->upload ? berth_upload_size(r->upload) : 0;
    uint64_t len;

    if (!crange) {
        return 0;
    }
    if (berth_content_range_parse(&r->crange, crange, strlen(crange)) < 0) {
        return berth_error_set(BERTH_EINVALID, "Content-Range must be <start>-<end>");
    }
    if (r->crange.start != size) {
        return berth_error_set(BERTH_ERANGE,
                               "chunk starts at %llu but the session holds %llu bytes",
                               (unsigned long long)r->crange.start, (unsigned long long)size);
    }
    if (clen && berth_parse_u64(&len, clen, strlen(clen), UINT64_MAX) == 0 &&
        len != berth_range_length(&r->crange)) {
        return berth_error_set(
            BERTH_EINVALID, "Content-Length %llu does not match a Content-Range of %llu bytes",
            (unsigned long long)len, (unsigned long long)berth_range_length(&r->crange));
    }
    r->has_crange = true;
    return 0;
}

/* Who starts an upload session, for the per-owner limit: the user, else the client address. */
static void session_owner(const berth__req *r, char *out, size_t size)
{
    if (r->authenticated && r->user[0]) {
        snprintf(out, size, "user:%s", r->user);
    } else {
        snprintf(out, size, "addr:");
        berth__client_address(r, out + 5, size - 5);
    }
}

/* A new session refused at a limit (BERTH_EBUSY): a Retry-After that means something. A slot
 * frees when a session is committed, cancelled or reaped; the answer is when reaping certainly
 * has freed one in every full limit: the soonest idle session's expiry
 * (berth_store_upload_wait) plus one period of the reaper, which runs every TTL/2, at most every
 * 30 s (server_ops.c). 1 when no limit is full any more (a session ended meanwhile). */
static enum MHD_Result refuse_session(berth__req *r, const char *owner, int error)
{
    if (error == BERTH_EBUSY) {
        uint64_t wait = berth_store_upload_wait(r->srv->store, r->name, owner);
        uint64_t period = r->srv->cfg ? r->srv->cfg->limits.upload_idle_ttl / 2 : 1;
        period = period < 1 ? 1 : period > 30 ? 30 : period;
        r->retry_after = wait ? wait + period : 1;
    }
    return berth__respond_error(r, BERTH_OP_UPLOAD_NEW, error, NULL);
}

/*
 * POST to the uploads: a cross-repository mount (?mount=, with ?from= or without: automatic), a
 * monolithic upload (?digest=) or a new session. An empty `from` is no `from`. Authorization
 * (server_auth.c) has already set r->no_mount when the caller may not pull `from`, or, for an
 * automatic mount, when no repository the caller may pull holds the blob, so that the pool is
 * searched only on behalf of a caller who could read the blob anyway. Every mount that does
 * not happen falls back to a new session (202) exactly as a POST without ?mount= does, so the
 * answer tells nothing about blobs elsewhere.
 */
static enum MHD_Result post_begin(berth__req *r)
{
    const char *mount = berth__query(r, "mount");
    const char *from = berth__query(r, "from");
    char owner[160];
    berth_digest digest;
    int error;

    if (from && !from[0]) {
        from = NULL;
    }
    if (mount && !r->no_mount) {
        if ((error = berth_digest_parse_str(&digest, mount)) < 0) {
            return berth__respond_error(r, BERTH_OP_DIGEST, error, NULL);
        }
        if (from && berth_name_validate(from) < 0) {
            return berth__respond_error(r, BERTH_OP_NAME, BERTH_EINVALID, NULL);
        }
        if (!from && r->srv->cfg && !r->srv->cfg->storage.automatic_mount) {
            error = BERTH_ENOTFOUND; /* automatic mount is off */
        } else {
            error = berth_store_blob_mount(r->srv->store, r->name, from, &digest);
        }
        if (error == 0) {
            return blob_created(r, &digest);
        }
        if (error != BERTH_ENOTFOUND) {
            return berth__respond_error(r, BERTH_OP_BLOB, error, NULL);
        }
        /* cannot mount: the spec says to fall back to a new session (202) */
        berth_error_clear();
        r->sink = BERTH_SINK_NONE;
        return MHD_YES;
    }
    if ((error = query_digest(r, false)) < 0) {
        return berth__respond_error(r, BERTH_OP_DIGEST, error, NULL);
    }
    if (r->has_digest) {
        /* monolithic upload: the body is the blob */
        if ((error = check_content_range(r)) < 0) {
            return berth__respond_error(r, BERTH_OP_UPLOAD_RANGE, error, NULL);
        }
        session_owner(r, owner, sizeof(owner));
        if ((error = berth_store_upload_new(&r->upload, r->srv->store, r->name, owner)) < 0) {
            return refuse_session(r, owner, error);
        }
        r->sink = BERTH_SINK_UPLOAD;
    }
    return MHD_YES;
}

enum MHD_Result berth__api_upload_begin(berth__req *r)
{
    int error;

    if (r->method == BERTH_M_POST) {
        return post_begin(r);
    }
    if (r->method == BERTH_M_PUT && (error = query_digest(r, true)) < 0) {
        return berth__respond_error(r, BERTH_OP_DIGEST, error, NULL);
    }
    if ((error = berth_store_upload_open(&r->upload, r->srv->store, r->name, r->ref)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
    }
    if ((error = check_content_range(r)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD_RANGE, error, NULL);
    }
    r->sink = BERTH_SINK_UPLOAD;
    return MHD_YES;
}

static enum MHD_Result commit(berth__req *r)
{
    berth_upload *u = r->upload;
    int error;

    r->upload = NULL; /* commit frees the handle in every case */
    if ((error = berth_upload_commit(u, &r->digest)) < 0) {
        return berth__respond_error(r, BERTH_OP_COMMIT, error, NULL);
    }
    return blob_created(r, &r->digest);
}

enum MHD_Result berth__api_upload_finish(berth__req *r)
{
    berth_upload *u = NULL;
    char id[BERTH_UPLOAD_ID_MAX + 1], owner[160];
    enum MHD_Result ret;
    uint64_t size;
    int error;

    if (r->fail_code) {
        return berth__respond_error(r, r->fail_op, r->fail_code, r->fail_msg);
    }
    if (r->has_crange && r->received != berth_range_length(&r->crange)) {
        berth_error_set(BERTH_EINVALID, "body of %llu bytes for a Content-Range of %llu",
                        (unsigned long long)r->received,
                        (unsigned long long)berth_range_length(&r->crange));
        return berth__respond_error(r, BERTH_OP_UPLOAD_RANGE, BERTH_EINVALID, NULL);
    }
    /* the writes done behind the body (fs: a thread) fail here as a write would: refused,
       rolled back, the client told where the session stands */
    if (r->upload && (error = berth_upload_flush(r->upload)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
    }
    if (r->method == BERTH_M_POST) {
        if (r->upload) {
            return commit(r);
        }
        session_owner(r, owner, sizeof(owner));
        if ((error = berth_store_upload_new(&u, r->srv->store, r->name, owner)) < 0) {
            return refuse_session(r, owner, error);
        }
        ret = session_response(r, 202, berth_upload_id(u), 0);
        berth_upload_close(u);
        return ret;
    }
    if (!r->upload) {
        berth_error_set(BERTH_ENOTFOUND, "no upload session");
        return berth__respond_error(r, BERTH_OP_UPLOAD, BERTH_ENOTFOUND, NULL);
    }
    if (r->method == BERTH_M_PUT) {
        return commit(r);
    }
    /* close (and so sync) before acknowledging: a 202 means the bytes are durable */
    u = r->upload;
    r->upload = NULL;
    size = berth_upload_size(u);
    snprintf(id, sizeof(id), "%s", berth_upload_id(u));
    if ((error = berth_upload_close(u)) < 0) {
        return berth__respond_error(r, BERTH_OP_UPLOAD, error, NULL);
    }
    return session_response(r, 202, id, size);
}
