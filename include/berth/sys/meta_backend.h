/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/sys/meta_backend.h: the metadata backend, for those who write one (as libgit2's
 * sys/refdb_backend.h beside sys/odb_backend.h). It holds what has a name: repositories, the
 * blobs each one holds (links), manifests with their bytes and what they reference, tags,
 * referrers, upload sessions, and the bookkeeping garbage collection needs. Blob bytes are the
 * blob backend's (berth/sys/blob_backend.h).
 *
 * The registry's rules live above, in the store, once: it parses and validates every manifest,
 * names and tags, and decides what garbage collection keeps. A metadata backend stores, looks
 * up, and makes each change atomic with the check it needs (a manifest is stored only while
 * everything it references is there; a link is removed only while nothing references it):
 * those checks cannot be made above it without a race between replicas.
 *
 * Implementations: fs (index.json per repository, an OCI image layout), mem (tests), postgres.
 * Every one passes the contract suite tests/unit/backend/meta_contract.c.
 *
 * Names given to a backend are valid (the store checks them: berth_name_validate,
 * berth_tag_validate). Errors are libberth's codes with berth_error_set() detail that never
 * holds a path, a connection string or a credential; BERTH_EIO for a failed engine (the
 * store answers 503 when the engine is unreachable: BERTH_ENETWORK). Every member may be
 * called from many threads at once.
 */
#ifndef BERTH_SYS_META_BACKEND_H
#define BERTH_SYS_META_BACKEND_H

#include "../common.h"
#include "../digest.h"

#include <stdlib.h>

#define BERTH_META_BACKEND_VERSION 1

typedef struct berth_meta_backend berth_meta_backend;

/**
 * A manifest as the store hands it to the backend (put) and as the backend lists it (gc).
 * Strings and arrays are borrowed for the duration of the call.
 */
typedef struct berth_meta_manifest {
    berth_digest digest;       /* of `data`, in the algorithm the client pushed it by */
    const char *media_type;    /* never NULL */
    const char *artifact_type; /* for referrers; NULL when none */
    bool has_subject;
    berth_digest subject;
    uint64_t size;                /* bytes of the manifest */
    const void *data;             /* put: the exact bytes (size of them); lists: NULL */
    const berth_digest *blobs;    /* config and layers that must be blobs of the repository */
    size_t nblobs;                /*   (non-distributable layers are left out by the store) */
    const berth_digest *children; /* an index's manifests, which must be manifests of it */
    size_t nchildren;
    bool sparse;    /* put: accept absent blobs and children (sparse_repositories) */
    int64_t pushed; /* Unix seconds: put gives now; lists give when it was pushed */
    unsigned ntags; /* lists: tags pointing at it */
} berth_meta_manifest;

/** A manifest's bytes and media type, as manifest_get() gives them (owned by the caller). */
typedef struct berth_meta_blob_doc {
    char *data; /* malloc()ed; free() it */
    size_t len;
    char *media_type; /* malloc()ed; free() it */
} berth_meta_blob_doc;

/** A referrer (distribution spec "Listing Referrers"); strings borrowed for the call. */
typedef struct berth_meta_referrer {
    berth_digest digest;
    const char *media_type;
    const char *artifact_type; /* NULL when none */
    uint64_t size;
} berth_meta_referrer;

/**
 * A manifest lent by manifest_lend(): its bytes (`len` of them, then a NUL) and media type,
 * unchanged until release(loan), which may be called from any thread, after the manifest was
 * deleted, and after the backend was freed. Several callers may hold the same loan; each
 * releases its own.
 */
typedef struct berth_meta_loan berth_meta_loan;
struct berth_meta_loan {
    const char *data;
    size_t len;
    const char *media_type;
    void (*release)(berth_meta_loan *loan);
};

/** An upload session's record. Strings are owned by whoever filled the struct. */
typedef struct berth_meta_upload {
    char id[65];         /* [0-9a-f-], at most 64 bytes */
    char *repo;          /* repository it was started in */
    char *owner;         /* who started it ("" for nobody in particular) */
    uint64_t size;       /* bytes in the session at its last sync */
    char *hash_state;    /* the store's running digest state (berth_hasher_export); may be "" */
    char *backend_state; /* the blob writer's sync() text; NULL before the first sync */
    int64_t created;     /* Unix seconds */
    int64_t updated;     /* last write, Unix seconds */
} berth_meta_upload;

/** Free the strings of an upload record filled by a backend; the struct itself is the caller's. */
static inline void berth_meta_upload_dispose(berth_meta_upload *u);

typedef int (*berth_meta_name_cb)(const char *name, void *payload);
typedef int (*berth_meta_tag_cb)(const char *tag, const berth_digest *digest, int64_t pushed,
                                 void *payload);
typedef int (*berth_meta_manifest_cb)(const berth_meta_manifest *m, void *payload);
typedef int (*berth_meta_referrer_cb)(const berth_meta_referrer *r, void *payload);
typedef int (*berth_meta_link_cb)(const berth_digest *digest, uint64_t size, int64_t linked,
                                  void *payload);
typedef int (*berth_meta_upload_cb)(const berth_meta_upload *u, void *payload);

/** Limits on upload sessions, checked atomically with the creation (0: no limit). */
typedef struct berth_meta_upload_limits {
    size_t total, per_repo, per_owner;
} berth_meta_upload_limits;

/** A blob claimed for deletion by gc_blob_claim(); released by gc_blob_release(). */
typedef struct berth_meta_claim berth_meta_claim;

/** A named lock taken by lock_acquire(); released by lock_release(). */
typedef struct berth_meta_lock berth_meta_lock;

struct berth_meta_backend {
    unsigned version; /* BERTH_META_BACKEND_VERSION */
    const char *name; /* "fs", "mem", "postgres" */

    /* ---- repositories ----------------------------------------------------------------- */

    /** Does `repo` exist (holds a manifest or a blob)? @return 1, 0, BERTH_EIO */
    int (*repo_exists)(berth_meta_backend *b, const char *repo);

    /**
     * Repository names in byte order after `last` (NULL: from the first), at most `n` (0: all);
     * `more_out` set when names remain. The callback's non-zero return stops the walk and is
     * returned. Keyset paging: cost in `n`, not in the number of repositories.
     * @return 0, the callback's code, BERTH_EIO
     */
    int (*catalog)(berth_meta_backend *b, const char *last, size_t n, berth_meta_name_cb cb,
                   void *payload, bool *more_out);

    /* ---- blobs of a repository (links) ------------------------------------------------ */

    /**
     * Note that blob `digest` of `size` bytes is about to be stored in the blob backend (an
     * upload's commit): record it when new, and keep garbage collection off it for its grace
     * period from now, so that bytes the commit finds already stored are not deleted before
     * blob_link(). Waits while the blob is claimed (gc_blob_claim).
     * @return 0, BERTH_EIO
     */
    int (*blob_touch)(berth_meta_backend *b, const berth_digest *digest, uint64_t size);

    /**
     * Record that `repo` holds blob `digest` (creating the repository). The blob must be
     * known (blob_touch, or linked elsewhere: a mount). A link of a blob being deleted
     * (gc_blob_claim) waits for the deletion to end.
     * @param size  the blob's size (a known blob keeps the size it was recorded with)
     * @return 0, BERTH_ENOTFOUND (unknown, or deleted meanwhile), BERTH_EIO
     */
    int (*blob_link)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                     uint64_t size);

    /**
     * Is blob `digest` in `repo` (NULL: in any repository)? Its size in `size_out`.
     * @return 0, BERTH_ENOTFOUND, BERTH_EIO
     */
    int (*blob_stat)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                     uint64_t *size_out);

    /**
     * Remove blob `digest` from `repo`, unless a manifest of `repo` references it (as config,
     * layer or index child): BERTH_EINUSE, naming one such manifest. With `older_than` > 0 only
     * a link made before that time (Unix seconds) is removed, else BERTH_EBUSY (garbage
     * collection's re-check). A digest that is a manifest of `repo` is not a blob:
     * BERTH_ENOTFOUND.
     * @return 0, BERTH_ENOTFOUND, BERTH_EINUSE, BERTH_EBUSY, BERTH_EIO
     */
    int (*blob_unlink)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                       int64_t older_than);

    /** The blobs `repo` holds, in no particular order. @return 0, the callback's, BERTH_EIO */
    int (*links)(berth_meta_backend *b, const char *repo, berth_meta_link_cb cb, void *payload);

    /* ---- manifests and tags ----------------------------------------------------------- */

    /**
     * Store manifest `m` in `repo` (creating the repository) and point `tags` at it, as one
     * change: either all of it is visible, or none. Unless m->sparse, every m->blobs must be
     * linked in `repo` and every m->children a manifest of it, checked atomically with the
     * insert: otherwise BERTH_ENOTFOUND with `missing_out` set to the first absent one. A
     * manifest already stored under m->digest keeps its bytes and takes m->pushed when later
     * (pushed again, it is as young as its last push); the tags are still set. A tag that
     * pointed elsewhere moves.
     * @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENOSPACE
     */
    int (*manifest_put)(berth_meta_backend *b, const char *repo, const berth_meta_manifest *m,
                        const char *const *tags, size_t ntags, berth_digest *missing_out);

    /**
     * The digest a tag points at. @return 0, BERTH_ENOTFOUND (no repository or tag), BERTH_EIO
     */
    int (*tag_get)(berth_meta_backend *b, const char *repo, const char *tag,
                   berth_digest *digest_out);

    /**
     * The bytes and media type of manifest `digest` of `repo`.
     * @param out  filled with malloc()ed data the caller frees
     * @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENOMEM
     */
    int (*manifest_get)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                        berth_meta_blob_doc *out);

    /**
     * Delete manifest `digest` of `repo` with every tag pointing at it, unless another
     * manifest of `repo` has it as an index child: BERTH_EINUSE naming it. With `older_than`
     * > 0 (garbage collection's re-check) it is deleted only if pushed before then and
     * untagged, else BERTH_EBUSY.
     * @return 0, BERTH_ENOTFOUND, BERTH_EINUSE, BERTH_EBUSY, BERTH_EIO
     */
    int (*manifest_delete)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                           int64_t older_than);

    /**
     * Delete a tag (the manifest stays). With `digest` not NULL, only while the tag still
     * points at it (else BERTH_EBUSY). @return 0, BERTH_ENOTFOUND, BERTH_EBUSY, BERTH_EIO
     */
    int (*tag_delete)(berth_meta_backend *b, const char *repo, const char *tag,
                      const berth_digest *digest);

    /**
     * The tags of `repo` in byte order after `last`, at most `n` (0: all), each with the digest
     * it points at and when it was set. Keyset paging as catalog().
     * @return 0, BERTH_ENOTFOUND (no such repository), the callback's code, BERTH_EIO
     */
    int (*tags)(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                berth_meta_tag_cb cb, void *payload, bool *more_out);

    /**
     * The manifests of `repo` whose subject is `subject`, in digest-string order after `last`
     * (NULL: from the first), at most `n` (0: all), only those of `artifact_type` when it is
     * not NULL. An unknown subject gives none.
     * @return 0, BERTH_ENOTFOUND (no such repository), the callback's code, BERTH_EIO
     */
    int (*referrers)(berth_meta_backend *b, const char *repo, const berth_digest *subject,
                     const char *artifact_type, const char *last, size_t n,
                     berth_meta_referrer_cb cb, void *payload, bool *more_out);

    /**
     * Every manifest of `repo`, with what it references (blobs, children), its subject,
     * pushed time and tag count: garbage collection's and fsck's view. data is NULL.
     * @return 0, BERTH_ENOTFOUND, the callback's code, BERTH_EIO
     */
    int (*manifests)(berth_meta_backend *b, const char *repo, berth_meta_manifest_cb cb,
                     void *payload);

    /* ---- upload sessions -------------------------------------------------------------- */

    /**
     * Record a new session (u->id, repo, owner, created, hash_state, backend_state; size 0),
     * durably, unless a limit is reached.
     * @return 0, BERTH_EBUSY (a limit), BERTH_EEXISTS (the id is taken), BERTH_EIO
     */
    int (*upload_create)(berth_meta_backend *b, const berth_meta_upload *u,
                         const berth_meta_upload_limits *limits);

    /**
     * A session's record, by id, in `repo`.
     * @param out  filled; free its strings with berth_meta_upload_dispose()
     * @return 0, BERTH_ENOTFOUND (no such session in that repository), BERTH_EIO
     */
    int (*upload_get)(berth_meta_backend *b, const char *repo, const char *id,
                      berth_meta_upload *out);

    /**
     * Take a session for one request (a PATCH, PUT or DELETE), across every process sharing
     * the backend, and give its record. A holder that dies (a process killed) loses it at
     * once, not after a timeout. @param out as upload_get()
     * @return 0, BERTH_ENOTFOUND, BERTH_EBUSY (another request holds it), BERTH_EIO
     */
    int (*upload_acquire)(berth_meta_backend *b, const char *repo, const char *id,
                          berth_meta_upload *out);

    /**
     * Store the new size, hash state, backend state and updated time of a session this
     * process holds (upload_acquire). @return 0, BERTH_EIO
     */
    int (*upload_update)(berth_meta_backend *b, const berth_meta_upload *u);

    /** Give up a session taken with upload_acquire(). */
    void (*upload_release)(berth_meta_backend *b, const char *id);

    /**
     * Delete a session's record (committed, cancelled, reaped). The caller holds it
     * (upload_acquire) except when reaping. @return 0, BERTH_ENOTFOUND, BERTH_EIO
     */
    int (*upload_delete)(berth_meta_backend *b, const char *id);

    /**
     * Every session in no particular order (reaping, usage, the blob backend's reap list).
     * @return 0, the callback's code, BERTH_EIO
     */
    int (*uploads)(berth_meta_backend *b, berth_meta_upload_cb cb, void *payload);

    /* ---- garbage collection of blobs -------------------------------------------------- */

    /**
     * Claim the first blob in digest-string order after `after` (NULL: from the first) that no
     * repository links to and that was last touched or linked before `older_than` (Unix
     * seconds), skipping blobs another process has claimed. Until gc_blob_release(),
     * blob_touch() and blob_link() of that digest wait.
     * @param claim_out  receives the claim
     * @return 0 (claimed), BERTH_ENOTFOUND (nothing more to collect), BERTH_EIO
     */
    int (*gc_blob_claim)(berth_meta_backend *b, const char *after, int64_t older_than,
                         berth_digest *digest_out, uint64_t *size_out,
                         berth_meta_claim **claim_out);

    /**
     * End a claim: with `deleted` the blob is forgotten (the caller removed its bytes), else it
     * stays as it was. @return 0, BERTH_EIO (the claim was lost: the caller logs it)
     */
    int (*gc_blob_release)(berth_meta_backend *b, berth_meta_claim *claim, bool deleted);

    /** Free the backend; NULL is fine. */
    void (*free)(berth_meta_backend *b);

    /* ---- optional members (NULL when the backend has none; the store falls back) ------- */

    /**
     * Optional, for a backend whose links are the bytes themselves (fs: a link is a hard link
     * to the file of its blob backend's pool): blob_stat() of `repo` (not NULL) and the blob
     * backend's open_fd() in one step, a read-only descriptor of the bytes of blob `digest` as
     * `repo` holds it, for sendfile; the caller closes it. Only for the blob backend it was
     * opened with. NULL: the store asks blob_stat(), then the blob backend's open_fd().
     * @return 0 (*fd_out and *size_out set; only then), BERTH_ENOTFOUND (not in `repo`, as
     *         blob_stat() answers), BERTH_EIO
     */
    int (*blob_open_fd)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                        int *fd_out, uint64_t *size_out);

    /**
     * Optional, for a backend that keeps manifests in memory: manifest_get() without a copy
     * (a manifest GET hands the bytes to the server as they are). NULL: the store asks
     * manifest_get() and keeps the copy.
     * @param out  receives a loan the caller ends with (*out)->release(*out)
     * @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENOMEM
     */
    int (*manifest_lend)(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                         berth_meta_loan **out);

    /**
     * The manifest tag `tag` of `repo` points at, with its digest, as one lookup: what tag_get()
     * then manifest_get() give, but at one moment and in one round trip to the engine. Never
     * answered from a cache: a tag moved by any process is seen by the next call. NULL: the
     * store calls tag_get() then manifest_get().
     * @param out  filled as manifest_get() fills it (the caller frees)
     * @return 0, BERTH_ENOTFOUND (no repository, tag or manifest), BERTH_EIO, BERTH_ENOMEM
     */
    int (*tag_manifest_get)(berth_meta_backend *b, const char *repo, const char *tag,
                            berth_digest *digest_out, berth_meta_blob_doc *out);

    /**
     * The names of the tags of `repo`, as tags() lists them (same order, paging, errors) but
     * without digest and time: what a tags list needs, which an engine may answer from an
     * index alone. NULL: the store uses tags().
     * @return 0, BERTH_ENOTFOUND (no such repository), the callback's code, BERTH_EIO
     */
    int (*tag_names)(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                     berth_meta_name_cb cb, void *payload, bool *more_out);

    /**
     * Optional, for a backend that several processes share (replicas over one database): take
     * the lock named `key` (any string) across every process sharing the backend, waiting up to
     * `wait_ms` milliseconds (0: not at all) while another holds it, also another thread of
     * this process. Held until lock_release(); a holder that dies (a process killed, its
     * connection lost) loses it at once, not after a timeout. Nothing else of the backend waits
     * for it: it orders work done outside the backend (the pull-through cache's fetches from an
     * upstream, one per object across replicas). NULL: the backend serves one process, whose
     * own locks are enough (fs, mem).
     * @param out  receives the lock
     * @return 0 (taken), BERTH_EBUSY (still held elsewhere after wait_ms), BERTH_ENETWORK,
     *         BERTH_EIO, BERTH_ENOMEM
     */
    int (*lock_acquire)(berth_meta_backend *b, const char *key, unsigned wait_ms,
                        berth_meta_lock **out);

    /** Release a lock taken with lock_acquire() (from any thread, once); NULL is fine. */
    void (*lock_release)(berth_meta_backend *b, berth_meta_lock *lock);
};

static inline void berth_meta_upload_dispose(berth_meta_upload *u)
{
    free(u->repo);
    free(u->owner);
    free(u->hash_state);
    free(u->backend_state);
    u->repo = u->owner = u->hash_state = u->backend_state = NULL;
}

#endif
