/* SPDX-License-Identifier: Apache-2.0 */
/* Internal: the store's in-memory state, shared by store.c, repo.c and upload.c. */
#ifndef BERTH_STORE_INTERNAL_H
#define BERTH_STORE_INTERNAL_H

#include <berth/store.h>

#include "base/htab.h"

#include <pthread.h>
#include <stdatomic.h>

/*
 * A manifest's bytes in memory, shared by reference with readers (berth_stored_manifest).
 * A cached one is also on the store's LRU list and referenced from its manifest_entry's slot:
 * the slot's reference is dropped by whoever clears the slot (eviction, or the entry's free),
 * which also takes it off the list under store->cache_lock.
 */
typedef struct cached_manifest {
    berth_stored_manifest pub; /* first member: the public view */
    atomic_int refs;
    struct berth_store *store; /* the cache it is in; NULL for an uncached copy */
    char *bytes;
    char *media_type;
    size_t charge; /* bytes charged to the cache budget: everything allocated for it */
    struct cached_manifest *prev, *next;   /* LRU list (store->cache_lock) */
    struct cached_manifest *_Atomic *slot; /* the entry's slot, while on the list */
    bool listed;
} cached_manifest;

/* What a repository knows of one of its manifests. */
typedef struct manifest_entry {
    berth_digest digest;
    char *media_type;
    int64_t size;
    char *artifact_type; /* for referrers; NULL when none. Annotations are not kept: referrers
                            read them from the stored bytes (unbounded in size) */
    bool has_subject;
    berth_digest subject;
    cached_manifest *_Atomic cached; /* NULL when not in memory; one reference held here */
    unsigned ntags;                  /* tags pointing here */
    bool sparse;                     /* accepted with content absent (sparse_repositories) */
    int64_t pushed;                  /* when it was pushed (Unix seconds) */
} manifest_entry;

typedef struct tag_entry {
    char *name;
    manifest_entry *manifest;
    int64_t pushed; /* when the tag was last set (Unix seconds) */
} tag_entry;

typedef struct repo {
    char *name;
    char *dir; /* absolute directory of the layout */
    pthread_rwlock_t lock;
    bool loaded;           /* manifests and tags read from disk */
    bool on_disk;          /* the layout exists */
    berth__htab manifests; /* digest string -> manifest_entry */
    tag_entry *tags;       /* sorted by name (strcmp) */
    size_t ntags, tags_cap;
} repo;

struct berth_store {
    char *root;
    char *internal; /* root/_berth */
    char *pool;     /* root/_berth/blobs */
    char *uploads;  /* root/_berth/uploads */
    char *tmp;      /* root/_berth/tmp */
    berth_store_options opts;
    pthread_mutex_t lock; /* guards repos, catalog, sessions */
    berth__htab repos;    /* name -> repo */
    char **catalog;       /* sorted repository names (borrowed from repos) */
    size_t ncatalog, catalog_cap;
    berth__htab sessions;                    /* upload id -> struct upload_session */
    berth__htab upload_repos, upload_owners; /* sessions per repository / owner key (upload.c) */
    pthread_mutex_t cache_lock;              /* the LRU list of cached manifests and its bytes */
    cached_manifest *lru_head, *lru_tail;    /* most recently used first */
    size_t cached_bytes;                     /* sum of the charges of the listed ones */
    int lock_fd;                             /* flock on _berth/lock when opts.lock, else -1 */
};

/* store.c */
/* Every repository, in catalog order (free the array, not the repositories: those live as
 * long as the store). NULL when out of memory. */
repo **berth__store_repos(berth_store *s, size_t *n_out);
int berth__store_repo(repo **out, berth_store *s, const char *name, bool create);
int berth__store_blob_path(berth_buf *out, const char *dir, const berth_digest *d);
int berth__store_publish_blob(berth_store *s, repo *r, const char *staged, const berth_digest *d);

/* repo.c: callers hold r->lock (read for lookups, write for changes) */
int berth__repo_load(berth_store *s, repo *r);
int berth__repo_save(berth_store *s, repo *r);
void berth__repo_free(repo *r);
void berth__repo_free_state(repo *r);
void berth__manifest_entry_free(manifest_entry *m);
manifest_entry *berth__repo_find_manifest(repo *r, const char *reference);
int berth__repo_get_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m);
/* As berth__repo_get_bytes, but a miss is not cached: for scans (gc, fsck, reference checks,
   referrers' annotations) that must not flush the cache of what clients pull. */
int berth__repo_peek_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m);
/* The annotations of a stored manifest as a JSON object (new reference), NULL when none or
   unreadable. r->lock held. */
struct json_t *berth__repo_annotations(berth_store *s, repo *r, manifest_entry *m);
size_t berth__repo_tag_index(const repo *r, const char *name, bool *found);
int berth__repo_set_tag(repo *r, const char *tag, manifest_entry *m, int64_t pushed);

/* Annotation of index.json entries that records when a tag or manifest was pushed. */
#define BERTH__PUSHED_ANNOTATION "io.berth.pushed"

/* upload.c */
void berth__uploads_free(berth_store *s);
int berth__uploads_gc(berth_store *s, bool dry_run, uint64_t *removed);
/* Register the sessions found on disk (at open; moves sessions of the earlier layout). */
int berth__uploads_scan(berth_store *s);

#endif
