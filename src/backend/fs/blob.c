/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fs blob backend: the pool ROOT/_berth/blobs/<alg>/<hex>, and upload sessions, one file
 * each, ROOT/_berth/uploads/<id>.
 *
 * A writer appends at explicit offsets; sync() is fsync and describes the session as "fs"
 * (the size the caller stores beside it is all a later writer needs). A new session's file is
 * not synced while it holds no byte: a session of no bytes needs nothing on disk, and
 * writer_open() of one whose file a crash lost makes it again; the first sync with bytes
 * fsyncs the file and the directory, unless an fsync of the directory began after the file
 * was made in this run (the store writes a new session's record after opening its writer, and
 * that fsyncs the same directory): the state of an empty session made in this run names the
 * run and the directory's generation at the file's making (root.c). A sync or commit after which
 * this handle wrote or cut nothing does not fsync again. writer_open() of an existing session cuts
 * the file back to that size, and close() without sync() cuts it back to the last sync, so the file
 * always holds exactly the session's bytes. commit() fsyncs the file, links it into the pool under
 * the digest (an existing pool blob is kept: link(2) fails with EEXIST and ours goes), fsyncs the
 * pool directory, and removes the session file: a blob appears in the pool whole or not at all.
 * read_fd() hands a reader a descriptor of the session file (it reads the bytes as written, and
 * the blob after the commit); expect() has writes allocate space up to RESERVE_STEP ahead
 * (fallocate, the size kept), never past the length announced.
 *
 * Messages name no path; the log has it.
 */
#define _GNU_SOURCE /* sync_file_range */
#include "backend/fs/fs_internal.h"

#include "base/log.h"

#include <berth/errors.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define WRITEBACK_STEP (2u * 1024 * 1024)
/* With a length announced (expect()), space is allocated this far ahead of the writes. */
#define RESERVE_STEP (8u * 1024 * 1024)
#define READ_CHUNK   (256u * 1024)

typedef struct fs_blobs {
    berth_blob_backend pub;
    berth__fsb_root *root;
} fs_blobs;

typedef struct fs_writer {
    berth_blob_writer pub;
    fs_blobs *b;
    char *path;
    char id[65];
    int fd;
    uint64_t size;      /* bytes in the session */
    uint64_t synced;    /* size at the last sync (or open): what close() keeps */
    uint64_t writeback; /* writeback started up to here */
    uint64_t expected;  /* the length expect() announced, 0 when none */
    uint64_t reserved;  /* space allocated (fallocate, the size kept) up to here */
    bool dirty;         /* written or cut since this handle's last fsync (or its creation) */
    bool entry;         /* the file's directory entry is known to be durable */
    uint64_t gen;       /* the uploads directory's generation when this run made the file, or 0 */
} fs_writer;

static fs_blobs *of(berth_blob_backend *b)
{
    return (fs_blobs *)b;
}

static int not_found(const berth_digest *d)
{
    return berth_error_set(BERTH_ENOTFOUND, "blob %s not found", d->str);
}

static int blob_stat(berth_blob_backend *bb, const berth_digest *digest, uint64_t *size_out)
{
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int rc = berth__fsb_pool_path(&path, of(bb)->root, digest);

    if (rc == 0 && stat(path.ptr, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? not_found(digest)
                                                 : berth__fsb_io_error("stat", path.ptr);
    }
    if (rc == 0) {
        *size_out = (uint64_t)st.st_size;
    }
    berth_buf_dispose(&path);
    return rc;
}

static int blob_open_fd(berth_blob_backend *bb, const berth_digest *digest, int *fd_out,
                        uint64_t *size_out)
{
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int fd = -1, rc = berth__fsb_pool_path(&path, of(bb)->root, digest);

    if (rc < 0) {
        goto out;
    }
    fd = open(path.ptr, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? not_found(digest)
                                                 : berth__fsb_io_error("open", path.ptr);
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

static int blob_read(berth_blob_backend *bb, const berth_digest *digest, uint64_t offset,
                     uint64_t len, berth_blob_sink sink, void *payload)
{
    uint64_t size = 0, end;
    char *chunk = NULL;
    int fd = -1, rc = blob_open_fd(bb, digest, &fd, &size);

    if (rc < 0) {
        return rc;
    }
    if (offset > size) {
        rc = berth_error_set(BERTH_ERANGE, "offset %llu is past the end of blob %s",
                             (unsigned long long)offset, digest->str);
        goto out;
    }
    end = len == UINT64_MAX || len > size - offset ? size : offset + len;
    chunk = malloc(READ_CHUNK);
    if (!chunk) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    while (offset < end && rc == 0) {
        size_t want = end - offset > READ_CHUNK ? READ_CHUNK : (size_t)(end - offset);
        ssize_t n = pread(fd, chunk, want, (off_t)offset);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            berth__log(BERTH_LOG_WARN, "read %s: %s", digest->str,
                       n < 0 ? strerror(errno) : "the file is shorter than it was");
            rc = berth_error_set(BERTH_EIO, "storage read failed: %s",
                                 n < 0 ? strerror(errno) : "short file");
            break;
        }
        rc = sink(chunk, (size_t)n, payload);
        offset += (uint64_t)n;
    }
out:
    free(chunk);
    close(fd);
    return rc;
}

static int blob_remove(berth_blob_backend *bb, const berth_digest *digest)
{
    fs_blobs *b = of(bb);
    berth_buf path = BERTH_BUF_INIT;
    int rc = berth__fsb_writable(b->root);

    if (rc == 0) {
        rc = berth__fsb_pool_path(&path, b->root, digest);
    }
    if (rc == 0 && unlink(path.ptr) != 0) {
        rc = errno == ENOENT || errno == ENOTDIR ? not_found(digest)
                                                 : berth__fsb_io_error("unlink", path.ptr);
    }
    if (rc == 0 && b->root->opts.fsync) {
        rc = berth__fs_fsync_parent(path.ptr);
    }
    berth_buf_dispose(&path);
    return rc;
}

typedef struct each_ctx {
    berth_blob_each_cb cb;
    void *payload;
} each_ctx;

static int each_visit(const char *path, const berth_digest *d, const struct stat *st, void *payload)
{
    each_ctx *ctx = payload;
    (void)path;
    return ctx->cb(d, (uint64_t)st->st_size, (int64_t)st->st_mtime, ctx->payload);
}

static int blob_foreach(berth_blob_backend *bb, berth_blob_each_cb cb, void *payload)
{
    each_ctx ctx = {cb, payload};
    return berth__fsb_each_blob(of(bb)->root->pool, each_visit, &ctx);
}

/* ---- writers ------------------------------------------------------------------------------ */

/* A session id as the interface defines it: [0-9a-f-], 1 to 64 bytes. */
static bool valid_id(const char *id)
{
    size_t n = 0;
    for (; id[n]; n++) {
        char c = id[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || c == '-')) {
            return false;
        }
    }
    return n >= 1 && n <= 64;
}

static int writer_error(fs_writer *w, const char *what, int err)
{
    berth__log(BERTH_LOG_WARN, "upload %s: %s %s: %s", w->id, what, w->path, strerror(err));
    return berth_error_set(berth__fsb_code(err) == BERTH_ENOSPACE ? BERTH_ENOSPACE : BERTH_EIO,
                           "upload %s: %s: %s", w->id, what, strerror(err));
}

static void writer_free(fs_writer *w)
{
    if (w->fd >= 0) {
        close(w->fd);
    }
    free(w->path);
    free(w);
}

static uint64_t w_size(berth_blob_writer *bw)
{
    return ((fs_writer *)bw)->size;
}

/* Allocate the space of the next RESERVE_STEP bytes (at most up to the announced length) when
 * the write at w->size + len reaches past what is allocated: ext4 then writes into allocated,
 * unwritten extents instead of reserving delayed blocks page by page (a third less CPU per
 * written byte here, bench/RESULTS.md). Only a hint: a failure just stops it. */
static void reserve_ahead(fs_writer *w, size_t len)
{
    uint64_t end = w->size + len, to;

    if (end <= w->reserved || w->reserved >= w->expected) {
        return;
    }
    to = end + RESERVE_STEP < w->expected ? end + RESERVE_STEP : w->expected;
    if (to > w->reserved &&
        fallocate(w->fd, FALLOC_FL_KEEP_SIZE, (off_t)w->reserved, (off_t)(to - w->reserved)) != 0) {
        w->expected = 0; /* not supported here, or no space: the writes will say */
        return;
    }
    w->reserved = to;
}

static void w_expect(berth_blob_writer *bw, uint64_t total)
{
    fs_writer *w = (fs_writer *)bw;

    w->expected = total;
    if (w->reserved < w->size) {
        w->reserved = w->size;
    }
}

static int w_write(berth_blob_writer *bw, const void *data, size_t len)
{
    fs_writer *w = (fs_writer *)bw;
    const char *p = data;
    size_t done = 0;

    if (w->expected) {
        reserve_ahead(w, len);
    }
    while (done < len) {
        ssize_t n = pwrite(w->fd, p + done, len - done, (off_t)(w->size + done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            /* a short write leaves part of the data: back to what is counted */
            if (ftruncate(w->fd, (off_t)w->size) != 0) {
                berth__log(BERTH_LOG_WARN, "upload %s: cannot cut back: %s", w->id,
                           strerror(errno));
            }
            return writer_error(w, "write", err);
        }
        done += (size_t)n;
    }
    w->size += len;
    w->dirty = true;
    if (w->b->root->opts.fsync && w->size - w->writeback >= WRITEBACK_STEP) {
        /* start writeback now, so that the fsync at the end has little left to do */
        sync_file_range(w->fd, (off_t)w->writeback, (off_t)(w->size - w->writeback),
                        SYNC_FILE_RANGE_WRITE);
        w->writeback = w->size;
    }
    return 0;
}

static int w_read_fd(berth_blob_writer *bw)
{
    fs_writer *w = (fs_writer *)bw;
    int fd = fcntl(w->fd, F_DUPFD_CLOEXEC, 0);

    return fd >= 0 ? fd : writer_error(w, "dup", errno);
}

/* "fs", or, for a file this run made whose entry is not known durable yet,
   "fs:<the run's open time>:<generation>" (writer_open() of this run takes it up). */
static char *state_text(const fs_writer *w)
{
    char text[80];
    const struct timespec *run = &w->b->root->opened;

    if (w->entry || !w->gen) {
        return strdup("fs");
    }
    snprintf(text, sizeof(text), "fs:%lld.%09ld:%llu", (long long)run->tv_sec, run->tv_nsec,
             (unsigned long long)w->gen);
    return strdup(text);
}

/* The generation a state of this run gives, else 0. */
static uint64_t state_gen(const fs_writer *w, const char *state)
{
    const struct timespec *run = &w->b->root->opened;
    long long sec = 0;
    long nsec = 0;
    unsigned long long gen = 0;
    int end = 0;

    if (sscanf(state, "fs:%lld.%ld:%llu%n", &sec, &nsec, &gen, &end) != 3 || state[end] != '\0' ||
        sec != (long long)run->tv_sec || nsec != run->tv_nsec) {
        return 0;
    }
    return gen;
}

static int w_sync(berth_blob_writer *bw, char **state_out)
{
    fs_writer *w = (fs_writer *)bw;
    char *state;

    /* An empty session needs nothing on disk (writer_open() makes its file again if a crash
       lost it); one with bytes needs them and its directory entry durable; and a file nothing
       was written to or cut since its last fsync has nothing left to make durable. */
    if (w->b->root->opts.fsync && (w->dirty || (w->size > 0 && !w->entry))) {
        if (fsync(w->fd) != 0) {
            return writer_error(w, "sync", errno);
        }
        /* the entry: durable already when an fsync of the directory began after this run
           made the file (the new session's record, written after it at the POST) */
        int rc = !w->entry && w->size > 0 && !berth__fsb_uploads_durable(w->b->root, w->gen)
                     ? berth__fsb_uploads_fsync(w->b->root)
                     : 0;
        if (rc < 0) {
            return rc;
        }
    }
    w->dirty = false;
    w->entry = w->entry || w->size > 0;
    state = state_text(w);
    if (!state) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    w->synced = w->size;
    *state_out = state;
    return 0;
}

/* Back to the last sync: the bytes written since are not part of the session. */
static void cut_back(fs_writer *w)
{
    if (w->size != w->synced && ftruncate(w->fd, (off_t)w->synced) != 0) {
        berth__log(BERTH_LOG_WARN, "upload %s: cannot cut back to %llu bytes: %s", w->id,
                   (unsigned long long)w->synced, strerror(errno));
    }
    w->dirty = w->dirty || w->size != w->synced;
    w->size = w->synced;
}

/* Leave a handle: what this handle wrote or cut since its last fsync is cut back and made
   durable, so that the next writer of the session finds the file on disk as it finds it in
   memory (it may then skip the fsync of a file it did not change; see writer_open). */
static void leave(fs_writer *w)
{
    cut_back(w);
    if (w->dirty && w->b->root->opts.fsync) {
        if (fsync(w->fd) != 0) {
            berth__log(BERTH_LOG_WARN, "upload %s: sync of the cut back: %s", w->id,
                       strerror(errno));
            atomic_store(&w->b->root->cut_unsynced, true);
        }
    }
    writer_free(w);
}

static void w_close(berth_blob_writer *bw)
{
    fs_writer *w = (fs_writer *)bw;
    if (!w) {
        return;
    }
    leave(w);
}

static int w_abort(berth_blob_writer *bw)
{
    fs_writer *w = (fs_writer *)bw;
    int rc = 0;

    if (unlink(w->path) != 0 && errno != ENOENT) {
        rc = writer_error(w, "unlink", errno);
    }
    writer_free(w);
    return rc;
}

/* Give the session's bytes to a check, in order. */
static int run_check(fs_writer *w, const berth_blob_check *check)
{
    char *chunk = malloc(READ_CHUNK);
    uint64_t off = 0;
    int rc = 0;

    if (!chunk) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    while (off < w->size && rc == 0) {
        size_t want = w->size - off > READ_CHUNK ? READ_CHUNK : (size_t)(w->size - off);
        ssize_t n = pread(w->fd, chunk, want, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            rc = writer_error(w, "read", n < 0 ? errno : EIO);
            break;
        }
        rc = check->update(chunk, (size_t)n, check->payload);
        off += (uint64_t)n;
    }
    free(chunk);
    return rc == 0 ? check->final(check->payload) : rc;
}

static int w_commit(berth_blob_writer *bw, const berth_digest *digest,
                    const berth_blob_check *check)
{
    fs_writer *w = (fs_writer *)bw;
    berth__fsb_root *root = w->b->root;
    berth_buf pool = BERTH_BUF_INIT;
    int rc = 0;

    if (check) {
        rc = run_check(w, check);
    }
    /* the pool's entry is made durable below; the bytes and the inode here, unless this
       handle synced them already and wrote nothing since */
    if (rc == 0 && root->opts.fsync && (w->dirty || !w->entry) && fsync(w->fd) != 0) {
        rc = writer_error(w, "sync", errno);
    }
    if (rc == 0) {
        w->dirty = false;
        rc = berth__fsb_pool_path(&pool, root, digest);
    }
    if (rc == 0 && link(w->path, pool.ptr) != 0 && errno != EEXIST) {
        rc = writer_error(w, "link", errno);
    }
    if (rc == 0 && root->opts.fsync) {
        rc = berth__fs_fsync_parent(pool.ptr);
    }
    berth_buf_dispose(&pool);
    if (rc < 0) {
        /* the session is as at its last sync */
        leave(w);
        return rc;
    }
    if (unlink(w->path) != 0 && errno != ENOENT) {
        berth__log(BERTH_LOG_WARN, "upload %s: unlink %s: %s (left for reaping)", w->id, w->path,
                   strerror(errno));
    }
    berth__fsb_note_loose(root, digest);
    writer_free(w);
    return 0;
}

static int writer_open(berth_blob_writer **out, berth_blob_backend *bb, const char *id,
                       const char *state, uint64_t size)
{
    fs_blobs *b = of(bb);
    fs_writer *w = NULL;
    berth_buf path = BERTH_BUF_INIT;
    struct stat st;
    int rc = berth__fsb_writable(b->root);

    if (rc < 0) {
        return rc;
    }
    if (!id || !valid_id(id)) {
        return berth_error_set(BERTH_EINVALID, "invalid upload id");
    }
    w = calloc(1, sizeof(*w));
    if (!w || berth_buf_printf(&path, "%s/%s", b->root->uploads, id) < 0) {
        free(w);
        berth_buf_dispose(&path);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    w->b = b;
    w->fd = -1;
    w->path = berth_buf_detach(&path);
    snprintf(w->id, sizeof(w->id), "%s", id);
    w->pub.backend = bb;
    w->pub.size = w_size;
    w->pub.write = w_write;
    w->pub.sync = w_sync;
    w->pub.commit = w_commit;
    w->pub.abort = w_abort;
    w->pub.close = w_close;
    w->pub.read_fd = w_read_fd;
    w->pub.expect = w_expect;
    if (!state) {
        /* not synced: an empty session needs no file on disk (see w_sync) */
        w->fd = open(w->path, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);
        if (w->fd < 0) {
            rc = writer_error(w, "create", errno);
        }
        w->gen = berth__fsb_uploads_gen(b->root);
    } else {
        w->gen = state_gen(w, state);
        w->fd = open(w->path, O_RDWR | O_CLOEXEC);
        if (w->fd < 0 && errno == ENOENT && size == 0) {
            /* an empty session whose file a crash lost before it held a byte */
            w->fd = open(w->path, O_CREAT | O_RDWR | O_CLOEXEC, 0644);
            w->gen = berth__fsb_uploads_gen(b->root);
        }
        /* a file of no bytes may be one not yet durable; bytes were synced with their entry.
           Every handle of this run leaves the file durable as it is (leave()), so a commit
           need not fsync it again, unless the fsync of a cut back failed, or the file was
           last changed by an earlier run (killed perhaps between a cut and its fsync) */
        w->entry = size > 0;
        w->dirty = atomic_load(&b->root->cut_unsynced);
        if (w->fd < 0) {
            rc = errno == ENOENT ? berth_error_set(BERTH_ENOTFOUND, "upload %s not found", id)
                                 : writer_error(w, "open", errno);
        } else if (fstat(w->fd, &st) != 0) {
            rc = writer_error(w, "stat", errno);
        } else if ((uint64_t)st.st_size < size) {
            berth__log(BERTH_LOG_ERROR, "upload %s: %s holds %lld bytes, the session %llu", id,
                       w->path, (long long)st.st_size, (unsigned long long)size);
            rc = berth_error_set(BERTH_EIO, "upload %s: bytes of the session are missing", id);
        } else if ((uint64_t)st.st_size > size && ftruncate(w->fd, (off_t)size) != 0) {
            /* bytes a crashed writer wrote past the last sync are not part of the session */
            rc = writer_error(w, "truncate", errno);
        } else if ((uint64_t)st.st_size > size || st.st_ctim.tv_sec < b->root->opened.tv_sec ||
                   (st.st_ctim.tv_sec == b->root->opened.tv_sec &&
                    st.st_ctim.tv_nsec <= b->root->opened.tv_nsec)) {
            w->dirty = true;
        }
        w->size = w->synced = w->writeback = size;
    }
    if (rc < 0) {
        if (!state && w->fd >= 0) {
            unlink(w->path);
        }
        writer_free(w);
        return rc;
    }
    *out = &w->pub;
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int blob_reap(berth_blob_backend *bb, const char *const *live, size_t nlive,
                     int64_t older_than, uint64_t *removed)
{
    fs_blobs *b = of(bb);
    int64_t now = (int64_t)time(NULL);
    DIR *d;
    struct dirent *e;
    int rc = berth__fsb_writable(b->root);

    if (rc < 0) {
        return rc;
    }
    d = opendir(b->root->uploads);
    if (!d) {
        return berth__fsb_io_error("opendir", b->root->uploads);
    }
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        char path[4096];
        struct stat st;

        if (!valid_id(name)) {
            continue; /* records (<id>.json), and sessions of earlier versions */
        }
        if (nlive && bsearch(&name, live, nlive, sizeof(*live), id_cmp)) {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", b->root->uploads, name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode) ||
            now - (int64_t)st.st_mtime <= older_than) {
            continue;
        }
        if (unlink(path) == 0) {
            berth__log(BERTH_LOG_INFO, "removed the bytes of upload session %s", name);
            if (removed) {
                (*removed)++;
            }
        } else if (errno != ENOENT) {
            rc = berth__fsb_io_error("unlink", path);
        }
    }
    closedir(d);
    return rc;
}

static void blob_free(berth_blob_backend *bb)
{
    fs_blobs *b = of(bb);
    if (!b) {
        return;
    }
    berth__fsb_root_unref(b->root);
    free(b);
}

static int blobs_new(berth_blob_backend **out, berth__fsb_root *root)
{
    fs_blobs *b = calloc(1, sizeof(*b));
    if (!b) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    b->pub.version = BERTH_BLOB_BACKEND_VERSION;
    b->pub.name = "fs";
    b->pub.stat = blob_stat;
    b->pub.read = blob_read;
    b->pub.open_fd = blob_open_fd;
    b->pub.url = NULL;
    b->pub.remove = blob_remove;
    b->pub.foreach = blob_foreach;
    b->pub.writer_open = writer_open;
    b->pub.reap = blob_reap;
    b->pub.free = blob_free;
    b->root = berth__fsb_root_ref(root);
    *out = &b->pub;
    return 0;
}

int berth_fs_backends_open(berth_blob_backend **blobs_out, berth_meta_backend **meta_out,
                           const char *root, const berth_fs_options *opts)
{
    berth__fsb_root *r = NULL;
    berth_blob_backend *blobs = NULL;
    berth_meta_backend *meta = NULL;
    int rc;

    berth_error_clear();
    rc = berth__fsb_root_open(&r, root, opts);
    if (rc < 0) {
        return rc;
    }
    rc = blobs_new(&blobs, r);
    if (rc == 0) {
        rc = berth__fsb_meta_new(&meta, r);
    }
    berth__fsb_root_unref(r); /* the backends hold it now */
    if (rc < 0) {
        blob_free(blobs);
        return rc;
    }
    *blobs_out = blobs;
    *meta_out = meta;
    return 0;
}
