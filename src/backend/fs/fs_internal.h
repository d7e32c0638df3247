/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internal to the fs backends (src/backend/fs/): the root both backends share, the filesystem
 * primitives (durable writes, links, the paths of names), and the metadata backend's view of
 * one repository (its index.json in memory).
 */
#ifndef BERTH_BACKEND_FS_INTERNAL_H
#define BERTH_BACKEND_FS_INTERNAL_H

#include "backend/fs/fs.h"
#include "base/fs.h"
#include "base/htab.h"

#include <berth/buf.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

struct stat;

/* ---- the root ------------------------------------------------------------------------- */

/* What both backends of one root share; freed with the last of them. */
typedef struct berth__fsb_root {
    atomic_int refs;
    char *root;     /* ROOT */
    char *internal; /* ROOT/_berth */
    char *pool;     /* ROOT/_berth/blobs */
    char *uploads;  /* ROOT/_berth/uploads */
    char *tmp;      /* ROOT/_berth/tmp */
    berth_fs_options opts;
    int lock_fd; /* flock on _berth/lock when opts.lock, else -1 */
    /* a session file was cut back and the fsync of the cut failed (blob.c): from then on no
       writer trusts that a session file it opens is durable as it finds it */
    atomic_bool cut_unsynced;
    struct timespec opened; /* CLOCK_REALTIME at open: files changed before are of another run */
    /* fsyncs of ROOT/_berth/uploads (berth__fsb_uploads_synced): an entry made there when
       uploads_gen was g is durable once uploads_synced >= g */
    _Atomic uint64_t uploads_gen, uploads_synced;

    /* Claims of garbage collection (meta.c): digests being deleted, and digests being
       linked or touched right now. gc_blob_claim skips the busy ones; blob_link and
       blob_touch wait for the claimed ones. */
    pthread_mutex_t claim_lock;
    pthread_cond_t claim_cond;
    berth__htab claimed;  /* digest -> claim */
    berth__htab linking;  /* digest -> counter (heap size_t) */
    berth__htab loosened; /* digests that may have lost their last link since the last walk of
                             the pool (commits, unlinks): gc_blob_claim adds them to its list */

    /* The age of a link is its inode's ctime, which every link and unlink of the blob changes:
       removing one repository's link would make the other links (and the pool copy) look
       young. So after an unlink of ours the inode's new ctime is recorded with the age it
       had before; while the ctime is still that one (nobody linked, touched or unlinked it
       since), the blob keeps its age (berth__fsb_link_time). */
    pthread_mutex_t ages_lock;
    berth__htab ages; /* digest -> struct berth__fsb_age */
} berth__fsb_root;

/* The time a link of `d` (stat `st`) was made, as berth__fsb_root.ages describes. */
int64_t berth__fsb_link_time(berth__fsb_root *r, const berth_digest *d, const struct stat *st);
/* After our own unlink of a link of `d` whose age was `linked`: keep that age while the pool
   inode is as the unlink left it. */
void berth__fsb_keep_age(berth__fsb_root *r, const berth_digest *d, int64_t linked);

/* The generation of ROOT/_berth/uploads: read it after making an entry there. */
uint64_t berth__fsb_uploads_gen(berth__fsb_root *r);
/* Before an fsync of ROOT/_berth/uploads (or of a file there that syncs it): the generation
   it will cover; after the fsync succeeded, berth__fsb_uploads_synced() with it. */
uint64_t berth__fsb_uploads_sync_begin(berth__fsb_root *r);
void berth__fsb_uploads_synced(berth__fsb_root *r, uint64_t gen);
/* Whether an entry of ROOT/_berth/uploads made at generation `gen` is durable. */
bool berth__fsb_uploads_durable(berth__fsb_root *r, uint64_t gen);
/* fsync ROOT/_berth/uploads, noting the generation. */
int berth__fsb_uploads_fsync(berth__fsb_root *r);

/* Open the shared root (creating its directories unless read-only). @return as
   berth_fs_backends_open() */
int berth__fsb_root_open(berth__fsb_root **out, const char *root, const berth_fs_options *opts);
berth__fsb_root *berth__fsb_root_ref(berth__fsb_root *r);
void berth__fsb_root_unref(berth__fsb_root *r);
/* Note that pool blob `d` may now be linked by no repository (claim_lock taken here). */
void berth__fsb_note_loose(berth__fsb_root *r, const berth_digest *d);
/* BERTH_EIO when the root is read-only, else 0. */
int berth__fsb_writable(const berth__fsb_root *r);
/* ROOT/_berth/blobs/<alg>/<hex> */
int berth__fsb_pool_path(berth_buf *out, const berth__fsb_root *r, const berth_digest *d);
/* <dir>/blobs/<alg>/<hex> */
int berth__fsb_blob_path(berth_buf *out, const char *dir, const berth_digest *d);

/* ---- filesystem primitives (fsio.c) ---------------------------------------------------- */

/* An errno as a berth code: ENOENT/ENOTDIR not found, a full disk BERTH_ENOSPACE, else EIO. */
int berth__fsb_code(int err);
/* Log `what path: strerror` and set the error without the path. @return its code */
int berth__fsb_io_error(const char *what, const char *path);
/* The directory of repository `name` relative to ROOT (components equal to a layout entry
   get a leading '_'). @return 0, BERTH_EINVALID (a name that could escape), BERTH_ENOMEM */
int berth__fsb_repo_path(berth_buf *out, const char *name);
/* A cheap guard: names reach the backend validated, but none may leave ROOT. */
int berth__fsb_check_name(const char *name);
bool berth__fsb_is_escaped(const char *entry);
bool berth__fsb_is_layout_entry(const char *entry);

/* Called per blob file under <blobs_dir>/<alg>/: its path, digest and lstat. */
typedef int (*berth__fsb_blob_visit)(const char *path, const berth_digest *digest,
                                     const struct stat *st, void *payload);
/* Visit every regular file named by a valid digest; non-zero from `visit` stops and is
   returned. A missing directory has none. */
int berth__fsb_each_blob(const char *blobs_dir, berth__fsb_blob_visit visit, void *payload);

/* ---- a repository in memory (index.c) --------------------------------------------------- */

/* A manifest's bytes in memory, shared by reference (the LRU cache of meta.c), and lent as
   they are (manifest_lend): `loan` points into the entry, its release drops a reference. */
typedef struct berth__fsb_cached {
    atomic_int refs;
    char *bytes; /* len bytes, a NUL, then the media type */
    size_t len;
    berth_meta_loan loan;
    size_t charge;
    struct berth__fsb_cached *prev, *next;
    struct berth__fsb_cached *_Atomic *slot; /* the entry's slot while listed */
    bool listed;
} berth__fsb_cached;

typedef struct berth__fsb_manifest {
    berth_digest digest;
    char *media_type;
    char *artifact_type; /* NULL when none */
    bool has_subject;
    berth_digest subject;
    int64_t size;
    int64_t pushed;
    unsigned ntags;
    bool sparse;
    /* What it references, packed (per digest: its algorithm, then its raw bytes): the blobs,
       then the children. Given by a put; for one loaded from index.json, read from its bytes
       on first need (reference checks, listings). */
    bool refs_known;
    unsigned char *refs;
    uint32_t nblobs, nchildren;
    berth__fsb_cached *_Atomic cached; /* one reference held here; NULL when not in memory */
} berth__fsb_manifest;

typedef struct berth__fsb_tag {
    char *name;
    berth__fsb_manifest *manifest;
    int64_t pushed;
} berth__fsb_tag;

typedef struct berth__fsb_repo {
    char *name;
    char *dir; /* absolute */
    pthread_rwlock_t lock;
    bool loaded;
    berth__htab manifests; /* digest string -> berth__fsb_manifest */
    berth__fsb_tag *tags;  /* sorted (strcmp) */
    size_t ntags, tags_cap;
    /* Set when the repository may hold nothing (found with an empty index.json, or after a
       delete or unlink left it no manifest), cleared when content is added (under its lock,
       read or write): a repository holding nothing is no repository (repo_exists, the
       catalog, lookups), though its layout stays on disk. */
    atomic_bool maybe_empty;
    atomic_bool known_empty; /* with maybe_empty: a walk found no blob since it was set */
} berth__fsb_repo;

/* The LRU cache of manifest bytes; `drop` releases a cached entry from its slot. */
typedef struct berth__fsb_cache {
    pthread_mutex_t lock;
    berth__fsb_cached *head, *tail;
    size_t bytes, budget;
} berth__fsb_cache;

#define BERTH__FSB_PUSHED_ANNOTATION "io.berth.pushed"

berth__fsb_repo *berth__fsb_repo_new(const berth__fsb_root *root, const char *name);
void berth__fsb_repo_free(berth__fsb_repo *r, berth__fsb_cache *cache);
void berth__fsb_repo_free_state(berth__fsb_repo *r, berth__fsb_cache *cache);
void berth__fsb_manifest_free(berth__fsb_manifest *m, berth__fsb_cache *cache);
/* Read index.json into memory (r->lock held for writing). */
int berth__fsb_repo_load(berth__fsb_repo *r, berth__fsb_cache *cache);
/* Write index.json from memory, atomically (r->lock held for writing). */
int berth__fsb_repo_save(const berth__fsb_root *root, berth__fsb_repo *r);
size_t berth__fsb_tag_index(const berth__fsb_repo *r, const char *name, bool *found);
int berth__fsb_set_tag(berth__fsb_repo *r, const char *tag, berth__fsb_manifest *m, int64_t pushed);
/* Read a stored manifest's bytes from the layout (no lock needed). */
int berth__fsb_read_manifest(berth_buf *out, const berth__fsb_repo *r, const berth_digest *d);
/* Create the layout of a new repository on disk (oci-layout, blobs/, index.json last). */
int berth__fsb_create_layout(const berth__fsb_root *root, const char *dir);

void berth__fsb_cache_release(berth__fsb_cached *c);
/* The cached bytes of `m` with a reference the caller releases, or NULL (a miss). */
berth__fsb_cached *berth__fsb_cache_get(berth__fsb_cache *cache, berth__fsb_manifest *m);
/* Cache `bytes` (len of them, copied, with m->media_type) for `m` unless over the budget or
   cached meanwhile. @return an entry of those bytes with a reference the caller releases
   (listed in the cache or not), NULL when out of memory */
berth__fsb_cached *berth__fsb_cache_put(berth__fsb_cache *cache, berth__fsb_manifest *m,
                                        const void *bytes, size_t len);
/* Drop `m`'s cached bytes (before the entry is freed). */
void berth__fsb_cache_drop(berth__fsb_cache *cache, berth__fsb_manifest *m);

/* Scan ROOT for layouts; `add` is called per repository name found. */
int berth__fsb_scan(const berth__fsb_root *root, int (*add)(const char *name, void *payload),
                    void *payload);

/* Internal entry for the tools (tools.c): the metadata backend's repositories. */
typedef struct berth__fsb_meta berth__fsb_meta;
int berth__fsb_meta_new(berth_meta_backend **out, berth__fsb_root *root);
/* The manifest cache of a metadata backend made by berth__fsb_meta_new() (tests). */
berth__fsb_cache *berth__fsb_meta_cache(berth_meta_backend *b);
/* The root of a metadata backend made by berth__fsb_meta_new() (borrowed). */
berth__fsb_root *berth__fsb_meta_root(berth_meta_backend *b);
/* Call `fn` per repository of a metadata backend made by berth__fsb_meta_new(), in catalog
   order; a non-zero return stops and is returned. */
int berth__fsb_meta_each_repo(berth_meta_backend *b,
                              int (*fn)(berth__fsb_repo *r, berth__fsb_cache *cache, void *payload),
                              void *payload);

#endif
