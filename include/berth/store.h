/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/store.h: registry semantics over storage. Repositories hold tags, manifests and
 * blobs; uploads are resumable sessions; everything acknowledged is durable. The on-disk
 * form (docs/design.md) keeps each repository as an OCI image layout.
 *
 * Thread safety: a berth_store may be used from many threads at once. A berth_upload handle
 * belongs to one thread at a time; the store refuses a second open of a session in use.
 */
#ifndef BERTH_STORE_H
#define BERTH_STORE_H

#include "buf.h"
#include "common.h"
#include "digest.h"
#include "sys/blob_backend.h"
#include "sys/meta_backend.h"

typedef struct berth_store berth_store;
typedef struct berth_upload berth_upload;

/** The largest manifest accepted unless configured otherwise (limits.manifest_size): the one
 * definition the store, the server and the configuration share. */
#define BERTH_MANIFEST_MAX_DEFAULT ((size_t)4 * 1024 * 1024)

typedef struct berth_store_options {
    size_t manifest_max; /* largest manifest accepted, bytes (0: BERTH_MANIFEST_MAX_DEFAULT) */
    size_t cache_bytes;  /* manifest bytes kept in memory (0: 8 MiB) */
    unsigned upload_ttl_seconds;      /* an upload session idle (no byte written) for longer is
                                         removed by the next reaping (0: 1 hour) */
    size_t upload_sessions_max;       /* upload sessions open in the store at once (0: no limit) */
    size_t upload_sessions_per_repo;  /* ... in one repository (0: no limit) */
    size_t upload_sessions_per_owner; /* ... of one owner (berth_store_upload_new) (0: no limit) */
    bool fsync; /* fsync before acknowledging (default on; off only for tests) */
    bool lock;  /* hold ROOT/_berth/lock exclusively while open (default on):
                   one writer process per root. Without it the store writes
                   nothing at open (no staging cleanup, no session purge) */
    const char *sparse_repositories; /* comma-separated globs (fnmatch) of repositories that
                                        accept sparse manifests: an index whose children or an
                                        image whose blobs are not all there (NULL: none); the
                                        store keeps a copy */
    bool read_only;                  /* never write (berth du, berth fsck beside a live server):
                                        writes fail with BERTH_EIO; implies no lock */
} berth_store_options;

/**
 * Defaults for berth_store_options: fsync on, an idle upload session lives 1 hour, at most 4096
 * sessions in all, 256 per repository and 128 per owner.
 */
void berth_store_options_init(berth_store_options *opts);

/**
 * Open (creating when needed) the store under `root`, and, when it holds the lock, clear
 * staging debris that a crash may have left. With opts.read_only nothing is created or
 * changed: a missing root is BERTH_ENOTFOUND.
 * @param out   receives the store, freed with berth_store_free()
 * @param opts  NULL for the defaults
 * @return 0, BERTH_EIO (the log names the path; messages of the store never do), BERTH_ENOMEM,
 *         BERTH_EBUSY (opts.lock is set and another process holds the root), BERTH_ENOTFOUND
 *         (read-only, no store there)
 */
int berth_store_open(berth_store **out, const char *root, const berth_store_options *opts);

/**
 * Open a store over a blob backend and a metadata backend (berth/sys/), e.g. s3 + postgres.
 * The store takes both, in every case (freed with it, or at once on failure). opts.fsync, lock,
 * read_only and cache_bytes are the backends' own business there.
 * @return 0, BERTH_EUNSUPPORTED (a backend of another interface version), BERTH_ENOMEM
 */
int berth_store_open_backends(berth_store **out, berth_blob_backend *blobs,
                              berth_meta_backend *meta, const berth_store_options *opts);

struct berth_config;

/**
 * Open the store a configuration names (berth/config.h): the fs backends over cfg->root, or,
 * with storage.s3.bucket and database.url, the s3 blob backend with the postgres metadata
 * backend (docs/scale.md). opts as berth_store_open().
 * @return 0, or the code of the backend that failed (BERTH_ENETWORK: an engine unreachable;
 *         BERTH_EUNSUPPORTED: a database schema of another version), with a message
 */
int berth_store_open_config(berth_store **out, const struct berth_config *cfg,
                            const berth_store_options *opts);

/** Close the store; NULL is fine. Upload handles must be closed first. */
void berth_store_free(berth_store *s);

/**
 * Can the store serve? One round trip to each backend (for /readyz): 0, or the code of the
 * engine that failed (BERTH_ENETWORK: unreachable) with a message.
 */
int berth_store_ready(berth_store *s);

/**
 * Take the lock named `key` across every process sharing the store's metadata (replicas over
 * one PostgreSQL database: the metadata backend's lock_acquire), waiting up to `wait_ms`
 * milliseconds while another process (or thread) holds it. A holder that dies loses it at once.
 * With a metadata backend of one process (fs, mem) there is no one to exclude: 0 with *out
 * NULL.
 * @param out  receives the lock (or NULL), released with berth_store_unlock()
 * @return 0, BERTH_EBUSY (held elsewhere for all of wait_ms), BERTH_ENETWORK, BERTH_EIO,
 *         BERTH_ENOMEM
 */
int berth_store_lock(berth_store *s, const char *key, unsigned wait_ms, berth_meta_lock **out);

/** Release a lock taken with berth_store_lock(); NULL is fine. */
void berth_store_unlock(berth_store *s, berth_meta_lock *lock);

/** True when the repository exists (holds at least one manifest or blob). */
bool berth_store_repo_exists(berth_store *s, const char *repo);

/* ---- blobs ---------------------------------------------------------------------------- */

/**
 * Open a blob of a repository for reading.
 * @param fd_out    receives a read-only descriptor the caller closes
 * @param size_out  receives its size
 * @return 0, BERTH_ENOTFOUND, BERTH_EIO
 */
int berth_store_blob_open(berth_store *s, const char *repo, const berth_digest *digest, int *fd_out,
                          uint64_t *size_out);

/** Where the bytes of a blob can be had (berth_store_blob_locate). */
typedef struct berth_blob_location {
    uint64_t size;
    int fd;    /* >= 0: a descriptor the caller closes (sendfile) */
    char *url; /* not NULL: a URL a client may GET for 15 minutes (a 307); free() it */
               /* neither: stream the bytes with berth_store_blob_read() */
} berth_blob_location;

/**
 * Find a blob of a repository and say how to serve it: a redirect URL when the blob backend
 * gives one (S3 with storage.s3.redirect), else a descriptor, else by streaming.
 * @return 0, BERTH_ENOTFOUND, BERTH_EIO, BERTH_ENETWORK
 */
int berth_store_blob_locate(berth_store *s, const char *repo, const berth_digest *digest,
                            berth_blob_location *out);

/**
 * Stream `len` bytes (UINT64_MAX: to the end) of blob `digest` from `offset` into `sink`; the
 * caller has found it in the repository (berth_store_blob_locate).
 * @return 0, BERTH_ENOTFOUND, BERTH_ERANGE, BERTH_EIO, BERTH_ENETWORK, the sink's code
 */
int berth_store_blob_read(berth_store *s, const berth_digest *digest, uint64_t offset, uint64_t len,
                          berth_blob_sink sink, void *payload);

/** The size of a blob of a repository. @return 0, BERTH_ENOTFOUND */
int berth_store_blob_stat(berth_store *s, const char *repo, const berth_digest *digest,
                          uint64_t *size_out);

/** Remove a blob from a repository (other repositories keep theirs). @return 0, BERTH_ENOTFOUND */
int berth_store_blob_delete(berth_store *s, const char *repo, const berth_digest *digest);

/**
 * Make a blob that is in repository `from` (or, when `from` is NULL, anywhere in the store)
 * part of `repo` without copying it.
 * @return 0, BERTH_ENOTFOUND when the source does not hold it
 */
int berth_store_blob_mount(berth_store *s, const char *repo, const char *from,
                           const berth_digest *digest);

/** Called once per blob of a repository; return non-zero to stop early. */
typedef int (*berth_store_blob_cb)(const berth_digest *digest, uint64_t size, void *payload);

/**
 * The blobs a repository holds (its links; not its manifests), in no particular order, each
 * with its size: what `berth import` copies. The callback runs without the store's locks.
 * @return 0 (also for a repository that does not exist), the callback's non-zero return,
 *         BERTH_EIO, BERTH_ENOMEM
 */
int berth_store_blobs(berth_store *s, const char *repo, berth_store_blob_cb cb, void *payload);

/* ---- uploads -------------------------------------------------------------------------- */

/** Longest upload id, without its NUL. */
#define BERTH_UPLOAD_ID_MAX 64

/**
 * Start an upload session for `repo`. Sessions are bounded (berth_store_options): in all, per
 * repository and per owner.
 * @param out    receives an open handle; close it with berth_upload_close()
 * @param owner  who starts it (a user name, or a client address), for the per-owner limit;
 *               NULL or "" for nobody in particular (counted in the other limits only)
 * @return 0; BERTH_EBUSY (a limit of open sessions is reached: try later); BERTH_ENOSPACE;
 *         BERTH_EIO
 */
int berth_store_upload_new(berth_upload **out, berth_store *s, const char *repo, const char *owner);

/**
 * After berth_store_upload_new() gave BERTH_EBUSY: the seconds until a session of every limit
 * that is full (all sessions, those of `repo`, those of `owner`) has been idle past the upload
 * TTL, so that reaping frees a slot in each (a commit or a cancel may free one sooner). Leaves
 * the last error as it was.
 * @return 1 to the upload TTL; 0 when no limit is full any more or the sessions cannot be read
 */
uint64_t berth_store_upload_wait(berth_store *s, const char *repo, const char *owner);

/**
 * Open an existing session of `repo` (also one that outlived a restart: its bytes are then
 * hashed again here, with no store-wide lock held, so only this session waits).
 * @return 0; BERTH_ENOTFOUND (no such session for this repository); BERTH_EBUSY (another
 *         request holds it); BERTH_EIO
 */
int berth_store_upload_open(berth_upload **out, berth_store *s, const char *repo, const char *id);

/**
 * The status of upload session `id` of `repo` (distribution spec, "Getting the upload status"):
 * the bytes it holds, as of the last request on it that ended. Never fails because another
 * request is writing to the session at the time.
 * @return 0; BERTH_ENOTFOUND (no such session in `repo`); BERTH_EIO
 */
int berth_store_upload_stat(berth_store *s, const char *repo, const char *id, uint64_t *size);

/** The session's id (borrowed). */
const char *berth_upload_id(const berth_upload *u);

/** Bytes received so far. */
uint64_t berth_upload_size(const berth_upload *u);

/**
 * Append bytes to the session. Acknowledged bytes (once the caller has answered the request
 * that carried them) survive a crash: berth_upload_close() fsyncs before it returns. Bytes are
 * gathered into slices of 128 KiB, written to the backend as a slice fills (a slice's hash is
 * computed by a thread of the handle's own meanwhile) and at berth_upload_flush(), close or
 * commit, so a failed write shows at the write that fills a slice or at one of those. After a
 * failure the handle takes no more bytes; berth_upload_rollback() returns it to the session as
 * at its last close, so the bytes on disk are always the bytes counted and hashed.
 * @return 0; BERTH_ENOSPACE (disk full, quota, file size limit); BERTH_EIO; BERTH_ENOMEM
 */
int berth_upload_write(berth_upload *u, const void *data, size_t len);

/**
 * The SHA-256 digest of the bytes received so far, when the session hashes them as they arrive
 * (a session this process wrote from its start or took over with its hash state). Writes and
 * hashes what berth_upload_write() has gathered first, as berth_upload_flush() does.
 * @return 0; BERTH_EUNSUPPORTED when only reading the bytes back would tell (the commit does);
 *         BERTH_ENOSPACE, BERTH_EIO (the flush)
 */
int berth_upload_digest(berth_upload *u, berth_digest *out);

/**
 * A descriptor (close-on-exec, the caller closes it) that reads the session's bytes with
 * pread() while they are written: the first berth_upload_written() bytes are readable at
 * once, and it keeps reading them after the commit or abort of the session. For a reader of a
 * session that is still being written (the pull-through cache streams a blob it fetches).
 * @return the descriptor (>= 0); BERTH_EUNSUPPORTED when the backend keeps no local file (S3,
 *         memory); BERTH_EIO
 */
int berth_upload_read_fd(berth_upload *u);

/**
 * A hint: the session will hold `total` bytes in all (a length the caller was told, such as an
 * upstream's Content-Length). The filesystem backend allocates the space ahead of the writes, a
 * few MiB at a time (cheaper writes); a wrong hint wastes at most that until the session ends.
 */
void berth_upload_expect(berth_upload *u, uint64_t total);

/** Bytes of the session written to its backend: berth_upload_size() but those still gathered
 * in memory (berth_upload_flush() writes them). */
uint64_t berth_upload_written(const berth_upload *u);

/**
 * Write what berth_upload_write() has gathered and wait for its hashing, and report a failure
 * as a write would (call it when the request's body has ended, so that a full disk is refused
 * as a write is, and berth_upload_rollback() applies).
 * @return 0; BERTH_ENOSPACE; BERTH_EIO
 */
int berth_upload_flush(berth_upload *u);

/**
 * Requests and refusals. A handle remembers a restore point: the session's size, hash state
 * and bytes when it was opened or created (each request opens its own handle), or at the last
 * berth_upload_mark(). A request that is refused for any reason (range, length, digest, a
 * limit, the disk, the client gone mid-body) calls berth_upload_rollback() or
 * berth_upload_abort(), and the session is again exactly as it was at the restore point.
 */

/** Make the session's current state the handle's restore point. */
void berth_upload_mark(berth_upload *u);

/**
 * Go back to the restore point: size, hash state and bytes on disk (truncated). The handle
 * stays open. When the file cannot be cut back, the session is rebuilt from what is on disk at
 * its next open, and its commit verifies the stored bytes.
 * @return 0, BERTH_EIO
 */
int berth_upload_rollback(berth_upload *u);

/**
 * End a refused request: roll back, and release the handle. A session this handle created
 * (berth_store_upload_new) did not exist before the request and is removed. NULL is fine.
 * @return 0, BERTH_EIO
 */
int berth_upload_abort(berth_upload *u);

/**
 * Finish the session: verify the bytes actually stored (their length always; their digest
 * when the running hash may not describe them, e.g. after a restart or another algorithm)
 * against `expected`, make the blob durable and visible in the repository, and end the
 * session. On any failure the request is rolled back (berth_upload_abort()): the session stays
 * as it was at the restore point, so the client may retry. The handle is freed in every case.
 * @return 0; BERTH_EMISMATCH (the digest differs); BERTH_EUNSUPPORTED (algorithm);
 *         BERTH_ENOSPACE; BERTH_EIO
 */
int berth_upload_commit(berth_upload *u, const berth_digest *expected);

/** Abandon the session and drop its bytes. The handle is freed. @return 0, BERTH_EIO */
int berth_upload_cancel(berth_upload *u);

/**
 * Release the handle, keeping the session with its bytes synced to disk (a chunk is
 * acknowledged). When the sync fails the request is rolled back instead (and BERTH_EIO
 * returned). NULL is fine.
 */
int berth_upload_close(berth_upload *u);

/**
 * Remove upload sessions idle past the upload TTL (not those in use). Cheap: one directory
 * walk. @param removed  incremented per session removed; may be NULL
 * @return 0, BERTH_EIO
 */
int berth_store_uploads_reap(berth_store *s, uint64_t *removed);

/**
 * The upload sessions on disk: how many, and the bytes they hold.
 * @return 0, BERTH_EIO
 */
int berth_store_uploads_usage(berth_store *s, uint64_t *count_out, uint64_t *bytes_out);

/* ---- manifests and tags --------------------------------------------------------------- */

/**
 * A stored manifest, shared and immutable: the exact bytes pushed, their media type and
 * digest. Held by reference; release with berth_manifest_release().
 */
typedef struct berth_stored_manifest {
    const char *data;
    size_t len;
    const char *media_type;
    berth_digest digest;
} berth_stored_manifest;

/**
 * Look up a manifest by tag or by digest (`reference` is either).
 * @param out  receives a reference the caller releases with berth_manifest_release()
 * @return 0; BERTH_ENOTFOUND (no such repository, tag or manifest); BERTH_EINVALID (neither a
 *         tag nor a digest); BERTH_EIO
 */
int berth_store_manifest_get(const berth_stored_manifest **out, berth_store *s, const char *repo,
                             const char *reference);

/** Drop a reference from berth_store_manifest_get(); NULL is fine. */
void berth_manifest_release(const berth_stored_manifest *m);

/** What berth_store_manifest_put() learned of the manifest it stored. */
typedef struct berth_put_result {
    berth_digest digest; /* digest of the bytes stored */
    bool has_subject;
    berth_digest subject; /* the manifest's subject, when has_subject */
} berth_put_result;

/**
 * Store a manifest, and point a tag at it when `reference` is a tag. The bytes are validated
 * (berth_document_inspect) and stored exactly as given, with `content_type` as their media
 * type when the document has none. Everything the manifest references (config and layers,
 * or an index's manifests) must already be in the repository; non-distributable layers
 * are exempt. The subject need not exist. In a repository matching opts.sparse_repositories
 * absent references are accepted and the manifest is recorded as sparse (index.json
 * `io.berth.sparse`): its absent content answers not found, and fsck does not report it.
 *
 * @param reference  a tag, or a digest that the bytes must hash to
 * @return 0; BERTH_EINVALID (bad document, naming the field; or a reference that is neither
 *         tag nor digest); BERTH_EMISMATCH (digest reference differs from the bytes);
 *         BERTH_ENOTFOUND (a referenced blob or manifest is absent; the message names it);
 *         BERTH_ETOOBIG (over manifest_max); BERTH_EUNSUPPORTED; BERTH_EIO
 */
int berth_store_manifest_put(berth_put_result *result, berth_store *s, const char *repo,
                             const char *reference, const char *content_type, const void *data,
                             size_t len);

/**
 * berth_store_manifest_put(), and also point each of `tags` (`ntags` of them; the `?tag=`
 * parameters of a manifest PUT, distribution spec "Pushing Manifests with tags") at the
 * manifest, in one change of the repository: every tag is validated before anything is stored,
 * and a tag points at the manifest under the digest of `reference` (so a manifest pushed by a
 * sha512 digest is tagged by that digest).
 * @return as berth_store_manifest_put(); BERTH_EINVALID names a bad tag
 */
int berth_store_manifest_put_tags(berth_put_result *result, berth_store *s, const char *repo,
                                  const char *reference, const char *const *tags, size_t ntags,
                                  const char *content_type, const void *data, size_t len);

/**
 * Delete a manifest by digest, with every tag pointing at it.
 * @return 0, BERTH_ENOTFOUND, BERTH_EIO
 */
int berth_store_manifest_delete(berth_store *s, const char *repo, const berth_digest *digest);

/** Delete a tag; the manifest stays. @return 0, BERTH_ENOTFOUND, BERTH_EIO */
int berth_store_tag_delete(berth_store *s, const char *repo, const char *tag);

/**
 * Called once per manifest of a repository (berth_store_manifests): its digest, media type,
 * artifact type, subject, size, what it references (`blobs`: config and layers, without the
 * non-distributable ones; `children`: an index's manifests), whether it was stored sparse,
 * when it was pushed and how many tags point at it; `data` is NULL (berth_store_manifest_get()
 * gives the bytes). Everything is borrowed for the call. Return non-zero to stop early.
 */
typedef int (*berth_store_manifest_cb)(const berth_meta_manifest *m, void *payload);

/**
 * The manifests of a repository, in no particular order (untagged ones and referrers
 * included): what `berth import` copies, an index's `children` before it.
 * @return 0, BERTH_ENOTFOUND (no such repository), the callback's non-zero return, BERTH_EIO,
 *         BERTH_ENOMEM
 */
int berth_store_manifests(berth_store *s, const char *repo, berth_store_manifest_cb cb,
                          void *payload);

/** Called once per name, in lexical order; return non-zero to stop early. */
typedef int (*berth_store_name_cb)(const char *name, void *payload);

/**
 * The tags of a repository in lexical (byte) order, starting after `last` (NULL: from the
 * start), at most `n` of them (0: all).
 * @param more_out  set true when names remain after the ones given
 * @return 0, BERTH_ENOTFOUND (no such repository)
 */
int berth_store_tags(berth_store *s, const char *repo, const char *last, size_t n,
                     berth_store_name_cb cb, void *payload, bool *more_out);

/** Called once per tag with the digest it points at and when it was set (Unix seconds, 0 when
 * unknown); return non-zero to stop early. */
typedef int (*berth_store_tag_cb)(const char *tag, const berth_digest *digest, int64_t pushed,
                                  void *payload);

/**
 * The tags of a repository as berth_store_tags() lists them (same order, paging and errors),
 * each with its digest and the time it was set: what a listing sorted by push time needs.
 * @param more_out  set true when tags remain after the ones given
 * @return 0, BERTH_ENOTFOUND (no such repository), BERTH_EIO
 */
int berth_store_tag_list(berth_store *s, const char *repo, const char *last, size_t n,
                         berth_store_tag_cb cb, void *payload, bool *more_out);

/**
 * The repositories of the store, as berth_store_tags() gives tags. The callback runs without
 * the store's lock (names are copied out in batches, found by binary search), so it may be
 * slow (an access check per name) without holding up other requests.
 * @return 0, BERTH_ENOMEM
 */
int berth_store_catalog(berth_store *s, const char *last, size_t n, berth_store_name_cb cb,
                        void *payload, bool *more_out);

/** One page of a referrers listing: what to give, and (out) where the next page starts. */
typedef struct berth_referrers_page {
    const char *last;       /* start after this digest (NULL: from the first) */
    size_t n;               /* at most this many descriptors (0: no limit) */
    size_t max_bytes;       /* end the page once the index is this long (0: no limit); a page
                               holds at least one descriptor */
    bool more;              /* out: descriptors remain after the page */
    berth_digest next_last; /* out, when more: the `last` of the next page */
} berth_referrers_page;

/**
 * The referrers of `digest` in `repo`: an OCI image index (compact JSON, appended to `out`)
 * whose manifests are the descriptors of the repository's manifests with that subject, in
 * digest order, each with mediaType, digest, size, artifactType and annotations (read from the
 * stored manifest). With `artifact_type` not NULL, only those of that artifact type. An
 * unknown digest gives an empty index.
 * @param page  NULL for every referrer in one index, else the page wanted
 * @return 0, BERTH_ENOTFOUND (no such repository), BERTH_ENOMEM
 */
int berth_store_referrers(berth_buf *out, berth_store *s, const char *repo,
                          const berth_digest *digest, const char *artifact_type,
                          berth_referrers_page *page);

/* ---- maintenance: garbage collection, retention, checks, usage ------------------------- */

/** A retention rule: which tags of which repositories to keep. */
typedef struct berth_retention_rule {
    const char *repositories; /* glob (fnmatch) over repository names; NULL: all */
    const char *tags;         /* glob over the tags it governs; NULL: all */
    unsigned keep_last;       /* keep only the N most recently pushed governed tags (0: all) */
    int64_t max_tag_age;      /* drop governed tags pushed longer ago, seconds (0: no limit) */
    int64_t max_untagged_age; /* drop untagged manifests pushed longer ago, seconds, unless an
                                 index or subject still kept needs them (0: keep) */
} berth_retention_rule;

/** Called for each thing garbage collection removes (or, in a dry run, would remove). */
typedef void (*berth_gc_report_cb)(const char *kind, const char *repo, const char *what,
                                   uint64_t size, void *payload);

typedef struct berth_gc_options {
    bool dry_run;                      /* report only */
    int64_t grace_seconds;             /* content linked more recently is kept (default 3600) */
    const berth_retention_rule *rules; /* applied in order; NULL for none */
    size_t nrules;
    bool keep_manifests; /* remove no tag and no manifest (rules ignored; deletes switched off):
                            only unreferenced blobs and idle upload sessions go */
    berth_gc_report_cb report; /* may be NULL */
    void *payload;
} berth_gc_options;

typedef struct berth_gc_stats {
    uint64_t tags_removed;
    uint64_t manifests_removed;
    uint64_t links_removed; /* blobs removed from a repository */
    uint64_t blobs_removed; /* blobs removed from the pool (their bytes freed) */
    uint64_t bytes_freed;
    uint64_t uploads_removed;
    uint64_t orphans_found; /* blobs of the blob backend no metadata knew, older than the grace
                               period: recorded now (kind "orphan"), removed by a collection
                               run once the grace period has passed */
} berth_gc_stats;

/** Defaults for berth_gc_options: no dry run, one hour of grace, no rules. */
void berth_gc_options_init(berth_gc_options *opts);

/**
 * Collect garbage while the store serves. Per repository, under its write lock: apply the
 * retention rules to tags; keep every tagged manifest, every untagged one without a subject
 * (unless a rule drops it by age) and everything pushed within the grace period; keep what
 * they reach (an index's children, the referrers of a kept manifest); drop the other manifests
 * (so referrers whose subject is gone go; none with keep_manifests); unlink blobs no kept manifest
 * references whose link is older than the grace period. Then remove pool blobs no repository links
 * to, and upload sessions idle past the upload TTL. Blobs of the blob backend that no metadata
 * knows (bytes stored by a process killed before it recorded them), older than the grace period,
 * are recorded, so that a run after the grace period removes them as it removes any unlinked blob.
 * See docs/design.md for why this is safe with concurrent pushes.
 * @param stats  receives the counts; may be NULL
 * @return 0, BERTH_EIO, BERTH_ENOMEM
 */
int berth_store_gc(berth_store *s, const berth_gc_options *opts, berth_gc_stats *stats);

/** What berth_store_fsck() found wrong. */
typedef enum berth_fsck_kind {
    BERTH_FSCK_CORRUPT_BLOB = 1, /* bytes do not match the digest they are stored under */
    BERTH_FSCK_MISSING_BLOB,     /* a manifest references a blob the repository lacks */
    BERTH_FSCK_BAD_MANIFEST,     /* a manifest listed in index.json is absent or invalid */
    BERTH_FSCK_BAD_INDEX,        /* index.json cannot be read */
} berth_fsck_kind;

typedef void (*berth_fsck_cb)(berth_fsck_kind kind, const char *repo, const char *digest,
                              const char *detail, void *payload);

typedef struct berth_fsck_stats {
    uint64_t blobs_checked;
    uint64_t bytes_checked;
    uint64_t manifests_checked;
    uint64_t problems;
    uint64_t repaired; /* corrupt blobs moved aside */
} berth_fsck_stats;

/**
 * Verify the store: every blob's bytes against its digest (each inode once), every index.json,
 * every manifest and what it references. With `repair`, a corrupt blob is moved to
 * ROOT/_berth/corrupt/ and unlinked from every repository, and the manifests that referenced it
 * are reported as missing content.
 * @return 0 when the check ran (problems are reported through `cb` and `stats`), BERTH_EIO
 */
int berth_store_fsck(berth_store *s, bool repair, berth_fsck_cb cb, void *payload,
                     berth_fsck_stats *stats);

/** Space used by one repository: bytes only it holds, and bytes it shares with others. */
typedef void (*berth_du_cb)(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                            void *payload);

/**
 * Space used per repository, in catalog order; a blob linked from more than one repository is
 * shared. @param total_out  receives the bytes of the pool (every blob once); may be NULL
 * @return 0, BERTH_EIO
 */
int berth_store_du(berth_store *s, berth_du_cb cb, void *payload, uint64_t *total_out);

/**
 * The bytes and the number of blobs the store holds, each blob counted once (the pool).
 * Cheap enough for a periodic gauge: one directory walk, no reads.
 * @return 0, BERTH_EIO
 */
int berth_store_usage(berth_store *s, uint64_t *bytes_out, uint64_t *blobs_out);

#endif
