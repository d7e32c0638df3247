/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/sys/blob_backend.h: the blob backend, for those who write one (as libgit2's
 * sys/odb_backend.h). A blob backend holds bytes under their digest, and nothing else: which
 * repository holds a blob, what references it and when it may go are the metadata backend's
 * (berth/sys/meta_backend.h), and the registry's rules (what an upload checks, what garbage
 * collection keeps) live once, above both, in the store.
 *
 * Implementations: fs (the pool of an embedded root), mem (tests), s3 (any S3-compatible
 * object store). Every one passes the contract suite tests/unit/backend/blob_contract.c.
 *
 * Versioning: a backend sets `version` to BERTH_BLOB_BACKEND_VERSION; the store refuses
 * another. A later version only appends members.
 *
 * Errors are libberth's codes (berth/errors.h) with berth_error_set() detail that never holds
 * a path, a URL or a credential. Every member may be called from many threads at once, except
 * that one berth_blob_writer belongs to one thread at a time.
 */
#ifndef BERTH_SYS_BLOB_BACKEND_H
#define BERTH_SYS_BLOB_BACKEND_H

#include "../common.h"
#include "../digest.h"

#define BERTH_BLOB_BACKEND_VERSION 1

typedef struct berth_blob_backend berth_blob_backend;
typedef struct berth_blob_writer berth_blob_writer;

/** Receives bytes in order; a non-zero return stops the read and is returned by it. */
typedef int (*berth_blob_sink)(const void *data, size_t len, void *payload);

/** Called once per blob by foreach(); `mtime` in Unix seconds; non-zero stops the walk. */
typedef int (*berth_blob_each_cb)(const berth_digest *digest, uint64_t size, int64_t mtime,
                                  void *payload);

/**
 * A check of a writer's bytes before they become a blob (berth_blob_writer.commit): update()
 * gets every byte in order, then final() decides (0: publish; non-zero: refuse, and that code
 * is returned by commit).
 */
typedef struct berth_blob_check {
    int (*update)(const void *data, size_t len, void *payload);
    int (*final)(void *payload);
    void *payload;
} berth_blob_check;

struct berth_blob_backend {
    unsigned version; /* BERTH_BLOB_BACKEND_VERSION */
    const char *name; /* "fs", "mem", "s3": for logs and metrics */

    /** The size of blob `digest`. @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENETWORK */
    int (*stat)(berth_blob_backend *b, const berth_digest *digest, uint64_t *size_out);

    /**
     * Stream `len` bytes of blob `digest` from `offset` (UINT64_MAX: to the end) into `sink`.
     * @return 0; BERTH_ENOTFOUND; BERTH_ERANGE (offset past the end); BERTH_EIO or
     *         BERTH_ENETWORK (the sink may have had part of the bytes); the sink's code
     */
    int (*read)(berth_blob_backend *b, const berth_digest *digest, uint64_t offset, uint64_t len,
                berth_blob_sink sink, void *payload);

    /**
     * Optional (NULL when the backend has no descriptors): a read-only descriptor of blob
     * `digest` for sendfile; the caller closes it.
     * @return 0, BERTH_ENOTFOUND, BERTH_EIO
     */
    int (*open_fd)(berth_blob_backend *b, const berth_digest *digest, int *fd_out,
                   uint64_t *size_out);

    /**
     * Optional: a URL that gives blob `digest` to a plain GET for `seconds` (a presigned URL),
     * for a 307 redirect. The backend does not check that the blob exists.
     * @param url_out  receives a string the caller frees with free()
     * @return 0, BERTH_ENOMEM, BERTH_EUNSUPPORTED (not configured for redirects)
     */
    int (*url)(berth_blob_backend *b, const berth_digest *digest, unsigned seconds, char **url_out);

    /** Delete blob `digest`. @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENETWORK */
    int (*remove)(berth_blob_backend *b, const berth_digest *digest);

    /** Every blob, in no particular order. @return 0, the callback's code, BERTH_EIO, ... */
    int (*foreach)(berth_blob_backend *b, berth_blob_each_cb cb, void *payload);

    /**
     * Open a write session: a new one (`state` NULL), or one that an earlier writer (of this
     * process or another, before a crash or on another replica) left with `sync`.
     * @param id     the session's name (the upload id: [0-9a-f-], at most 64 bytes)
     * @param state  NULL for a new session, else the text the last successful sync() gave
     * @param size   with `state`, the size sync() gave with it: the writer continues at this
     *               offset, and bytes a crashed writer wrote past it are not part of the session
     * @return 0; BERTH_ENOTFOUND (no such session: it was committed, aborted or reaped; a
     *         backend may instead begin a session of `size` 0 again, which holds no byte);
     *         BERTH_ENOSPACE; BERTH_EIO; BERTH_ENETWORK
     */
    int (*writer_open)(berth_blob_writer **out, berth_blob_backend *b, const char *id,
                       const char *state, uint64_t size);

    /**
     * Remove what sessions left that are not in `live` (sorted ids, `nlive` of them) and that
     * were last written to more than `older_than` seconds ago: files, staged objects, S3
     * multipart uploads. Optional.
     * @param removed  incremented per session removed; may be NULL
     * @return 0, BERTH_EIO, BERTH_ENETWORK
     */
    int (*reap)(berth_blob_backend *b, const char *const *live, size_t nlive, int64_t older_than,
                uint64_t *removed);

    /** Free the backend (every writer closed first); NULL is fine. */
    void (*free)(berth_blob_backend *b);
};

/**
 * A write session of a blob backend. Bytes appended with write() are part of the session once
 * sync() returns; close() without sync() drops what was written since the last sync (that is
 * how the store rolls back a refused request).
 */
struct berth_blob_writer {
    berth_blob_backend *backend;

    /** Bytes in the session: the size at open plus what was written since. */
    uint64_t (*size)(berth_blob_writer *w);

    /** Append bytes. @return 0, BERTH_ENOSPACE, BERTH_EIO, BERTH_ENETWORK */
    int (*write)(berth_blob_writer *w, const void *data, size_t len);

    /**
     * Make everything written durable, and describe the session for a later writer_open().
     * @param state_out  receives a NUL-terminated text (at most 64 KiB) the caller frees with
     *                   free(); the caller stores it (the metadata backend's upload record)
     * @return 0, BERTH_ENOSPACE, BERTH_EIO, BERTH_ENETWORK
     */
    int (*sync)(berth_blob_writer *w, char **state_out);

    /**
     * Make the session's bytes blob `digest` (the caller has checked them, or passes `check`
     * to have them checked first), and end the session. A blob already stored under `digest`
     * is kept as it is. The writer is freed in every case.
     * @param check  NULL, or a check given every byte of the session before it is published
     * @return 0; the check's code; BERTH_ENOSPACE; BERTH_EIO; BERTH_ENETWORK. On failure the
     *         session is as at its last sync().
     */
    int (*commit)(berth_blob_writer *w, const berth_digest *digest, const berth_blob_check *check);

    /** End the session and drop its bytes. The writer is freed. @return 0, BERTH_EIO, ... */
    int (*abort)(berth_blob_writer *w);

    /** Release the writer; the session stays as at its last sync(). NULL is fine. */
    void (*close)(berth_blob_writer *w);

    /**
     * Optional (NULL when the session's bytes are not in a local file): a new descriptor
     * (close-on-exec) that reads the session's bytes with pread(), each byte as soon as write()
     * has returned. It stays valid after commit(), abort() or close() (bytes a close() cuts
     * back then read short); the caller closes it.
     * @return the descriptor (>= 0); BERTH_EIO
     */
    int (*read_fd)(berth_blob_writer *w);

    /**
     * Optional: a hint that the session will hold `total` bytes in all when it is committed
     * (the caller knows its length). The backend may allocate their space ahead of the writes,
     * which makes them cheaper; a wrong hint costs nothing but that space until the session
     * ends. Failures are the backend's to ignore.
     */
    void (*expect)(berth_blob_writer *w, uint64_t total);
};

#endif
