/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The in-memory metadata backend. One mutex guards everything; one condition variable wakes
 * blob_touch() and blob_link() callers waiting for a garbage collection claim to end.
 *
 * Invariants (under the lock): a repository record exists while it holds a link or a manifest
 * (an empty one is freed at once, so the catalog never shows it); every tag points at a
 * manifest of its repository, whose `ntags` counts them; a known blob's `nlinks` counts the
 * repositories linking it. Manifest records are reference-counted so that listings hand them
 * to callbacks without the lock (a callback may call the backend). Orders are strcmp orders;
 * paging sorts the candidates, which is fine for tests (cost in the number of names, not n).
 */
#include "backend/mem/mem.h"

#include "base/htab.h"

#include <berth/errors.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct mem_gblob {
    char key[BERTH_DIGEST_MAXLEN + 1];
    berth_digest digest;
    uint64_t size;
    int64_t touched; /* last touched or linked */
    unsigned nlinks;
    bool claimed;
} mem_gblob;

typedef struct mem_link {
    char key[BERTH_DIGEST_MAXLEN + 1];
    berth_digest digest;
    int64_t linked;
} mem_link;

typedef struct mem_manifest {
    char key[BERTH_DIGEST_MAXLEN + 1];
    unsigned refs;
    berth_digest digest;
    char *media_type, *artifact_type;
    bool has_subject;
    berth_digest subject;
    uint64_t size;
    char *data;
    berth_digest *blobs, *children;
    size_t nblobs, nchildren;
    int64_t pushed;
    unsigned ntags;
} mem_manifest;

typedef struct mem_tag {
    char name[129];
    mem_manifest *target;
    int64_t pushed;
} mem_tag;

typedef struct mem_repo {
    char *name;
    berth__htab links;     /* digest -> mem_link */
    berth__htab manifests; /* digest -> mem_manifest */
    berth__htab tags;      /* tag -> mem_tag */
} mem_repo;

typedef struct mem_upload {
    berth_meta_upload u; /* owned strings */
    bool held;
} mem_upload;

struct berth_meta_claim {
    berth_digest digest;
};

typedef struct mem_meta {
    berth_meta_backend base;
    pthread_mutex_t lock;
    pthread_cond_t claims_changed;
    berth__htab blobs;   /* digest -> mem_gblob */
    berth__htab repos;   /* name -> mem_repo */
    berth__htab uploads; /* id -> mem_upload */
} mem_meta;

static int64_t now(void)
{
    return (int64_t)time(NULL);
}

static int oom(void)
{
    return berth_error_set(BERTH_ENOMEM, "out of memory");
}

/* ---- small collections ------------------------------------------------------------------ */

/* A growable array of pointers, filled from a table walk. */
typedef struct ptrs {
    void **v;
    size_t n, cap;
    bool failed;
} ptrs;

/*
 * Room for one more element in the array `v` of `n` elements of `size` bytes, with room for
 * `*cap`: the array, moved or not, or NULL when out of memory (`v` is then as it was).
 * ptrs_add() and snap_next() grow their arrays with it while a table walk fills them.
 */
static void *room_for_one(void *v, size_t n, size_t *cap, size_t size)
{
    size_t grown = *cap ? *cap * 2 : 16;
    void *w = NULL;

    if (n < *cap) {
        return v;
    }
    w = realloc(v, grown * size);
    if (w) {
        *cap = grown;
    }
    return w;
}

static void ptrs_add(ptrs *p, void *x)
{
    void **v = p->failed ? NULL : room_for_one(p->v, p->n, &p->cap, sizeof(*v));
    if (!v) {
        p->failed = true;
        return;
    }
    p->v = v;
    p->v[p->n++] = x;
}

/* An array of `size`-byte elements filled from a table walk: `n` of them, room for `cap`. */
typedef struct snap {
    void *v;
    size_t n, cap, size;
    bool failed;
} snap;

/* Room for the next element of `s`, which the caller counts (s->n++) once it is filled; NULL
 * when out of memory, now or before (then `failed` is set). */
static void *snap_next(snap *s)
{
    void *v = s->failed ? NULL : room_for_one(s->v, s->n, &s->cap, s->size);
    if (!v) {
        s->failed = true;
        return NULL;
    }
    s->v = v;
    return (char *)v + s->n * s->size;
}

static void ptrs_add_cb(void *value, void *payload)
{
    ptrs_add(payload, value);
}

static void ptrs_dispose(ptrs *p)
{
    free(p->v);
    memset(p, 0, sizeof(*p));
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* ---- records ---------------------------------------------------------------------------- */

static void manifest_unref(mem_manifest *m)
{
    if (!m || --m->refs > 0) {
        return;
    }
    free(m->media_type);
    free(m->artifact_type);
    free(m->data);
    free(m->blobs);
    free(m->children);
    free(m);
}

/* Drop, under the lock, the references taken on the first `n` manifests of `p` so that their
 * callbacks could run without it. */
static void unref_first(mem_meta *mm, ptrs *p, size_t n)
{
    if (n == 0) {
        return;
    }
    pthread_mutex_lock(&mm->lock);
    for (size_t i = 0; i < n; i++) {
        manifest_unref(p->v[i]);
    }
    pthread_mutex_unlock(&mm->lock);
}

static void free_value_cb(void *value, void *payload)
{
    free(value);
}

static void unref_manifest_cb(void *value, void *payload)
{
    manifest_unref(value);
}

static void repo_free(mem_repo *r)
{
    berth__htab_foreach(&r->tags, free_value_cb, NULL);
    berth__htab_foreach(&r->links, free_value_cb, NULL);
    berth__htab_foreach(&r->manifests, unref_manifest_cb, NULL);
    berth__htab_dispose(&r->tags);
    berth__htab_dispose(&r->links);
    berth__htab_dispose(&r->manifests);
    free(r->name);
    free(r);
}

static bool repo_empty(const mem_repo *r)
{
    return r->links.count == 0 && r->manifests.count == 0;
}

/* The repository, or NULL when it holds nothing. */
static mem_repo *repo_get(mem_meta *mm, const char *name)
{
    mem_repo *r = berth__htab_get(&mm->repos, name);
    return r && !repo_empty(r) ? r : NULL;
}

static int repo_get_or_create(mem_meta *mm, const char *name, mem_repo **out)
{
    mem_repo *r = berth__htab_get(&mm->repos, name);
    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r || !(r->name = strdup(name))) {
            free(r);
            return oom();
        }
        if (berth__htab_put(&mm->repos, r->name, r) != 0) {
            repo_free(r);
            return oom();
        }
    }
    *out = r;
    return 0;
}

/* Free a repository that holds nothing any more. */
static void repo_drop_if_empty(mem_meta *mm, mem_repo *r)
{
    if (r && repo_empty(r)) {
        berth__htab_remove(&mm->repos, r->name);
        repo_free(r);
    }
}

static bool has_digest(const berth_digest *set, size_t n, const berth_digest *d)
{
    for (size_t i = 0; i < n; i++) {
        if (berth_digest_equal(&set[i], d)) {
            return true;
        }
    }
    return false;
}

/* A manifest of `r` (other than `except`) that references `d` as blob or child, or NULL. */
typedef struct find_ref {
    const berth_digest *d;
    const mem_manifest *except;
    bool children_only;
    mem_manifest *found;
} find_ref;

static void find_ref_cb(void *value, void *payload)
{
    find_ref *f = payload;
    mem_manifest *m = value;
    if (f->found || m == f->except) {
        return;
    }
    if ((!f->children_only && has_digest(m->blobs, m->nblobs, f->d)) ||
        has_digest(m->children, m->nchildren, f->d)) {
        f->found = m;
    }
}

/* ---- repositories ----------------------------------------------------------------------- */

static int mm_repo_exists(berth_meta_backend *b, const char *repo)
{
    mem_meta *mm = (mem_meta *)b;
    pthread_mutex_lock(&mm->lock);
    int rc = repo_get(mm, repo) ? 1 : 0;
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static void repo_name_cb(void *value, void *payload)
{
    mem_repo *r = value;
    if (!repo_empty(r)) {
        ptrs_add(payload, r->name);
    }
}

/*
 * From `all` (sorted strings), those after `last`, at most `n`: copied into *page (strdup'ed),
 * with *more set when more remain. Call under the lock.
 */
static int page_of(ptrs *all, const char *last, size_t n, ptrs *page, bool *more)
{
    size_t i = 0;
    if (all->n) {
        qsort(all->v, all->n, sizeof(*all->v), cmp_strp);
    }
    while (last && i < all->n && strcmp(all->v[i], last) <= 0) {
        i++;
    }
    *more = false;
    for (; i < all->n; i++) {
        if (n && page->n == n) {
            *more = true;
            break;
        }
        char *s = strdup(all->v[i]);
        if (!s) {
            return oom();
        }
        ptrs_add(page, s);
        if (page->failed) {
            free(s);
            return oom();
        }
    }
    return 0;
}

static void free_strings(ptrs *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->v[i]);
    }
    ptrs_dispose(p);
}

static int mm_catalog(berth_meta_backend *b, const char *last, size_t n, berth_meta_name_cb cb,
                      void *payload, bool *more_out)
{
    mem_meta *mm = (mem_meta *)b;
    ptrs all = {0}, page = {0};
    bool more = false;
    int rc;
    pthread_mutex_lock(&mm->lock);
    berth__htab_foreach(&mm->repos, repo_name_cb, &all);
    rc = all.failed ? oom() : page_of(&all, last, n, &page, &more);
    pthread_mutex_unlock(&mm->lock);
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        rc = cb(page.v[i], payload);
    }
    if (more_out) {
        *more_out = rc == 0 && more;
    }
    ptrs_dispose(&all);
    free_strings(&page);
    return rc;
}

/* ---- blobs of a repository -------------------------------------------------------------- */

/* The known blob `d`, after any claim on it ended (NULL when unknown). Call under the lock. */
static mem_gblob *blob_wait(mem_meta *mm, const berth_digest *d)
{
    mem_gblob *gb;
    while ((gb = berth__htab_get(&mm->blobs, d->str)) && gb->claimed) {
        pthread_cond_wait(&mm->claims_changed, &mm->lock);
    }
    return gb;
}

static int mm_blob_touch(berth_meta_backend *b, const berth_digest *digest, uint64_t size)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_gblob *gb = blob_wait(mm, digest);
    if (!gb) {
        gb = calloc(1, sizeof(*gb));
        if (!gb) {
            rc = oom();
            goto out;
        }
        snprintf(gb->key, sizeof(gb->key), "%s", digest->str);
        gb->digest = *digest;
        gb->size = size;
        if (berth__htab_put(&mm->blobs, gb->key, gb) != 0) {
            free(gb);
            rc = oom();
            goto out;
        }
    }
    gb->touched = now();
out:
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static int mm_blob_link(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                        uint64_t size)
{
    mem_meta *mm = (mem_meta *)b;
    mem_repo *r = NULL;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_gblob *gb = blob_wait(mm, digest);
    if (!gb) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s unknown", digest->str);
        goto out;
    }
    if ((rc = repo_get_or_create(mm, repo, &r)) != 0) {
        goto out;
    }
    mem_link *l = berth__htab_get(&r->links, digest->str);
    if (!l) {
        l = calloc(1, sizeof(*l));
        if (!l) {
            rc = oom();
            goto out;
        }
        snprintf(l->key, sizeof(l->key), "%s", digest->str);
        l->digest = *digest;
        if (berth__htab_put(&r->links, l->key, l) != 0) {
            free(l);
            rc = oom();
            goto out;
        }
        gb->nlinks++;
    }
    l->linked = now();
    gb->touched = l->linked;
out:
    repo_drop_if_empty(mm, r);
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static int mm_blob_stat(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                        uint64_t *size_out)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_gblob *gb = berth__htab_get(&mm->blobs, digest->str);
    bool in = false;
    if (gb && repo) {
        mem_repo *r = repo_get(mm, repo);
        in = r && berth__htab_get(&r->links, digest->str);
    } else if (gb) {
        in = gb->nlinks > 0;
    }
    if (in) {
        *size_out = gb->size;
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not found", digest->str);
    }
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static int mm_blob_unlink(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                          int64_t older_than)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    mem_link *l = r ? berth__htab_get(&r->links, digest->str) : NULL;
    if (!l) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not found", digest->str);
        goto out;
    }
    find_ref f = {digest, NULL, false, NULL};
    berth__htab_foreach(&r->manifests, find_ref_cb, &f);
    if (f.found) {
        rc = berth_error_set(BERTH_EINUSE, "blob %s is referenced by manifest %s", digest->str,
                             f.found->digest.str);
        goto out;
    }
    if (older_than > 0 && l->linked >= older_than) {
        rc = berth_error_set(BERTH_EBUSY, "blob %s was linked again", digest->str);
        goto out;
    }
    berth__htab_remove(&r->links, l->key);
    free(l);
    mem_gblob *gb = berth__htab_get(&mm->blobs, digest->str);
    if (gb && gb->nlinks) {
        gb->nlinks--;
    }
    repo_drop_if_empty(mm, r);
out:
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

typedef struct link_row {
    berth_digest digest;
    uint64_t size;
    int64_t linked;
} link_row;

typedef struct link_snap {
    mem_meta *mm;
    snap rows; /* of link_row */
} link_snap;

static void link_snap_cb(void *value, void *payload)
{
    link_snap *s = payload;
    mem_link *l = value;
    link_row *row = snap_next(&s->rows);
    if (row) {
        mem_gblob *gb = berth__htab_get(&s->mm->blobs, l->key);
        row->digest = l->digest;
        row->size = gb ? gb->size : 0;
        row->linked = l->linked;
        s->rows.n++;
    }
}

static int mm_links(berth_meta_backend *b, const char *repo, berth_meta_link_cb cb, void *payload)
{
    mem_meta *mm = (mem_meta *)b;
    link_snap s = {mm, {.size = sizeof(link_row)}};
    link_row *rows = NULL;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    if (r) {
        berth__htab_foreach(&r->links, link_snap_cb, &s);
    }
    pthread_mutex_unlock(&mm->lock);
    if (s.rows.failed) {
        rc = oom();
    }
    rows = s.rows.v;
    for (size_t i = 0; rc == 0 && i < s.rows.n; i++) {
        rc = cb(&rows[i].digest, rows[i].size, rows[i].linked, payload);
    }
    free(rows);
    return rc;
}

/* ---- manifests and tags ----------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *failed)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d) {
        *failed = true;
    }
    return d;
}

static void *dup_mem(const void *p, size_t len, bool *failed)
{
    void *d;
    if (!len) {
        return NULL;
    }
    d = malloc(len);
    if (!d) {
        *failed = true;
        return NULL;
    }
    memcpy(d, p, len);
    return d;
}

static mem_manifest *manifest_new(const berth_meta_manifest *m)
{
    bool failed = false;
    mem_manifest *x = calloc(1, sizeof(*x));
    if (!x) {
        return NULL;
    }
    x->refs = 1;
    snprintf(x->key, sizeof(x->key), "%s", m->digest.str);
    x->digest = m->digest;
    x->media_type = dup_or_null(m->media_type ? m->media_type : "", &failed);
    x->artifact_type = dup_or_null(m->artifact_type, &failed);
    x->has_subject = m->has_subject;
    x->subject = m->subject;
    x->size = m->size;
    x->data = malloc(m->size + 1);
    if (x->data) {
        if (m->size) {
            memcpy(x->data, m->data, m->size);
        }
        x->data[m->size] = '\0';
    } else {
        failed = true;
    }
    x->blobs = dup_mem(m->blobs, m->nblobs * sizeof(*m->blobs), &failed);
    x->nblobs = m->nblobs;
    x->children = dup_mem(m->children, m->nchildren * sizeof(*m->children), &failed);
    x->nchildren = m->nchildren;
    x->pushed = m->pushed;
    if (failed) {
        manifest_unref(x);
        return NULL;
    }
    return x;
}

static int mm_manifest_put(berth_meta_backend *b, const char *repo, const berth_meta_manifest *m,
                           const char *const *tags, size_t ntags, berth_digest *missing_out)
{
    mem_meta *mm = (mem_meta *)b;
    mem_manifest *fresh = manifest_new(m);
    mem_tag **newtags = ntags ? calloc(ntags, sizeof(*newtags)) : NULL;
    mem_repo *r = NULL;
    int rc = 0;

    if (!fresh || (ntags && !newtags)) {
        rc = oom();
        goto out_unlocked;
    }
    for (size_t i = 0; i < ntags; i++) {
        if (!(newtags[i] = calloc(1, sizeof(**newtags)))) {
            rc = oom();
            goto out_unlocked;
        }
    }

    pthread_mutex_lock(&mm->lock);
    r = berth__htab_get(&mm->repos, repo);
    if (!m->sparse) {
        for (size_t i = 0; i < m->nblobs; i++) {
            if (!r || !berth__htab_get(&r->links, m->blobs[i].str)) {
                *missing_out = m->blobs[i];
                rc = berth_error_set(BERTH_ENOTFOUND, "blob %s is not in the repository",
                                     m->blobs[i].str);
                goto out;
            }
        }
        for (size_t i = 0; i < m->nchildren; i++) {
            if (!r || !berth__htab_get(&r->manifests, m->children[i].str)) {
                *missing_out = m->children[i];
                rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s is not in the repository",
                                     m->children[i].str);
                goto out;
            }
        }
    }
    if ((rc = repo_get_or_create(mm, repo, &r)) != 0) {
        goto out;
    }
    mem_manifest *target = berth__htab_get(&r->manifests, fresh->key);
    if (!target) {
        if (berth__htab_put(&r->manifests, fresh->key, fresh) != 0) {
            rc = oom();
            goto out;
        }
        target = fresh;
        fresh = NULL;
    } else if (m->pushed > target->pushed) {
        target->pushed = m->pushed; /* pushed again: as young as its last push (gc's grace) */
    }
    for (size_t i = 0; i < ntags; i++) {
        mem_tag *t = berth__htab_get(&r->tags, tags[i]);
        if (!t) {
            t = newtags[i];
            snprintf(t->name, sizeof(t->name), "%s", tags[i]);
            if (berth__htab_put(&r->tags, t->name, t) != 0) {
                rc = oom(); /* the manifest and earlier tags stay: in memory, only in tests */
                goto out;
            }
            newtags[i] = NULL;
        } else {
            t->target->ntags--;
        }
        t->target = target;
        t->pushed = m->pushed;
        target->ntags++;
    }
out:
    repo_drop_if_empty(mm, r);
    pthread_mutex_unlock(&mm->lock);
out_unlocked:
    manifest_unref(fresh);
    for (size_t i = 0; newtags && i < ntags; i++) {
        free(newtags[i]);
    }
    free(newtags);
    return rc;
}

static int mm_tag_get(berth_meta_backend *b, const char *repo, const char *tag,
                      berth_digest *digest_out)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    mem_tag *t = r ? berth__htab_get(&r->tags, tag) : NULL;
    if (t) {
        *digest_out = t->target->digest;
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not found", tag);
    }
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static int mm_manifest_get(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                           berth_meta_blob_doc *out)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    mem_manifest *m = r ? berth__htab_get(&r->manifests, digest->str) : NULL;
    if (!m) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not found", digest->str);
        goto out;
    }
    char *data = malloc(m->size + 1);
    char *mt = strdup(m->media_type);
    if (!data || !mt) {
        free(data);
        free(mt);
        rc = oom();
        goto out;
    }
    memcpy(data, m->data, m->size + 1);
    out->data = data;
    out->len = m->size;
    out->media_type = mt;
out:
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static void collect_tags_of_cb(void *value, void *payload)
{
    ptrs *p = payload;
    mem_tag *t = value;
    /* p->v[0] is the target (set by the caller before the walk) */
    if (t->target == p->v[0]) {
        ptrs_add(p, t);
    }
}

static int mm_manifest_delete(berth_meta_backend *b, const char *repo, const berth_digest *digest,
                              int64_t older_than)
{
    mem_meta *mm = (mem_meta *)b;
    ptrs doomed = {0};
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    mem_manifest *m = r ? berth__htab_get(&r->manifests, digest->str) : NULL;
    if (!m) {
        rc = berth_error_set(BERTH_ENOTFOUND, "manifest %s not found", digest->str);
        goto out;
    }
    find_ref f = {digest, m, true, NULL};
    berth__htab_foreach(&r->manifests, find_ref_cb, &f);
    if (f.found) {
        rc = berth_error_set(BERTH_EINUSE, "manifest %s is a child of index %s", digest->str,
                             f.found->digest.str);
        goto out;
    }
    if (older_than > 0 && (m->ntags > 0 || m->pushed >= older_than)) {
        rc = berth_error_set(BERTH_EBUSY, "manifest %s is tagged or young", digest->str);
        goto out;
    }
    ptrs_add(&doomed, m);
    berth__htab_foreach(&r->tags, collect_tags_of_cb, &doomed);
    if (doomed.failed) {
        rc = oom();
        goto out;
    }
    for (size_t i = 1; i < doomed.n; i++) {
        mem_tag *t = doomed.v[i];
        berth__htab_remove(&r->tags, t->name);
        free(t);
    }
    berth__htab_remove(&r->manifests, m->key);
    manifest_unref(m);
    repo_drop_if_empty(mm, r);
out:
    pthread_mutex_unlock(&mm->lock);
    ptrs_dispose(&doomed);
    return rc;
}

static int mm_tag_delete(berth_meta_backend *b, const char *repo, const char *tag,
                         const berth_digest *digest)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    mem_tag *t = r ? berth__htab_get(&r->tags, tag) : NULL;
    if (!t) {
        rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not found", tag);
    } else if (digest && !berth_digest_equal(digest, &t->target->digest)) {
        rc = berth_error_set(BERTH_EBUSY, "tag %s points at another manifest now", tag);
    } else {
        berth__htab_remove(&r->tags, t->name);
        t->target->ntags--;
        free(t);
    }
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

typedef struct tag_row {
    char *name; /* first: sorted as a string */
    berth_digest digest;
    int64_t pushed;
} tag_row;

static void tag_name_cb(void *value, void *payload)
{
    ptrs_add(payload, ((mem_tag *)value)->name);
}

static int mm_tags(berth_meta_backend *b, const char *repo, const char *last, size_t n,
                   berth_meta_tag_cb cb, void *payload, bool *more_out)
{
    mem_meta *mm = (mem_meta *)b;
    ptrs all = {0}, page = {0};
    tag_row *rows = NULL;
    bool more = false;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    if (!r) {
        rc = berth_error_set(BERTH_ENOTFOUND, "repository not found");
        pthread_mutex_unlock(&mm->lock);
        goto out;
    }
    berth__htab_foreach(&r->tags, tag_name_cb, &all);
    rc = all.failed ? oom() : page_of(&all, last, n, &page, &more);
    if (rc == 0 && page.n && !(rows = calloc(page.n, sizeof(*rows)))) {
        rc = oom();
    }
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        mem_tag *t = berth__htab_get(&r->tags, page.v[i]);
        rows[i].name = page.v[i];
        rows[i].digest = t->target->digest;
        rows[i].pushed = t->pushed;
    }
    pthread_mutex_unlock(&mm->lock);
    for (size_t i = 0; rc == 0 && i < page.n; i++) {
        rc = cb(rows[i].name, &rows[i].digest, rows[i].pushed, payload);
    }
out:
    if (more_out) {
        *more_out = rc == 0 && more;
    }
    free(rows);
    ptrs_dispose(&all);
    free_strings(&page);
    return rc;
}

static int cmp_manifest(const void *a, const void *b)
{
    return strcmp((*(mem_manifest *const *)a)->key, (*(mem_manifest *const *)b)->key);
}

typedef struct ref_filter {
    ptrs out;
    const berth_digest *subject;
    const char *artifact_type;
    const char *last;
} ref_filter;

static void ref_filter_cb(void *value, void *payload)
{
    ref_filter *f = payload;
    mem_manifest *m = value;
    if (!m->has_subject || !berth_digest_equal(&m->subject, f->subject)) {
        return;
    }
    if (f->artifact_type &&
        (!m->artifact_type || strcmp(m->artifact_type, f->artifact_type) != 0)) {
        return;
    }
    if (f->last && strcmp(m->key, f->last) <= 0) {
        return;
    }
    ptrs_add(&f->out, m);
}

static int mm_referrers(berth_meta_backend *b, const char *repo, const berth_digest *subject,
                        const char *artifact_type, const char *last, size_t n,
                        berth_meta_referrer_cb cb, void *payload, bool *more_out)
{
    mem_meta *mm = (mem_meta *)b;
    ref_filter f = {{0}, subject, artifact_type, last};
    bool more = false;
    size_t count = 0;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    if (!r) {
        rc = berth_error_set(BERTH_ENOTFOUND, "repository not found");
    } else {
        berth__htab_foreach(&r->manifests, ref_filter_cb, &f);
        if (f.out.failed) {
            rc = oom();
        }
    }
    if (rc == 0) {
        if (f.out.n) {
            qsort(f.out.v, f.out.n, sizeof(*f.out.v), cmp_manifest);
        }
        count = n && f.out.n > n ? n : f.out.n;
        more = count < f.out.n;
        for (size_t i = 0; i < count; i++) {
            ((mem_manifest *)f.out.v[i])->refs++;
        }
    }
    pthread_mutex_unlock(&mm->lock);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        mem_manifest *m = f.out.v[i];
        berth_meta_referrer ref = {m->digest, m->media_type, m->artifact_type, m->size};
        rc = cb(&ref, payload);
    }
    if (more_out) {
        *more_out = rc == 0 && more;
    }
    unref_first(mm, &f.out, count);
    ptrs_dispose(&f.out);
    return rc;
}

static int mm_manifests(berth_meta_backend *b, const char *repo, berth_meta_manifest_cb cb,
                        void *payload)
{
    mem_meta *mm = (mem_meta *)b;
    ptrs all = {0};
    unsigned *ntags = NULL;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_repo *r = repo_get(mm, repo);
    if (!r) {
        rc = berth_error_set(BERTH_ENOTFOUND, "repository not found");
    } else {
        berth__htab_foreach(&r->manifests, ptrs_add_cb, &all);
        if (all.failed || (all.n && !(ntags = calloc(all.n, sizeof(*ntags))))) {
            rc = oom();
        }
    }
    for (size_t i = 0; rc == 0 && i < all.n; i++) {
        mem_manifest *m = all.v[i];
        m->refs++;
        ntags[i] = m->ntags;
    }
    pthread_mutex_unlock(&mm->lock);
    if (rc != 0) {
        ptrs_dispose(&all);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < all.n; i++) {
        mem_manifest *m = all.v[i];
        berth_meta_manifest out;
        memset(&out, 0, sizeof(out));
        out.digest = m->digest;
        out.media_type = m->media_type;
        out.artifact_type = m->artifact_type;
        out.has_subject = m->has_subject;
        out.subject = m->subject;
        out.size = m->size;
        out.data = NULL;
        out.blobs = m->blobs;
        out.nblobs = m->nblobs;
        out.children = m->children;
        out.nchildren = m->nchildren;
        out.pushed = m->pushed;
        out.ntags = ntags[i];
        rc = cb(&out, payload);
    }
    unref_first(mm, &all, all.n);
    free(ntags);
    ptrs_dispose(&all);
    return rc;
}

/* ---- upload sessions -------------------------------------------------------------------- */

/* A copy of an upload record with strings of its own. */
static int upload_copy(berth_meta_upload *out, const berth_meta_upload *u)
{
    bool failed = false;
    memset(out, 0, sizeof(*out));
    memcpy(out->id, u->id, sizeof(out->id));
    out->repo = dup_or_null(u->repo ? u->repo : "", &failed);
    out->owner = dup_or_null(u->owner ? u->owner : "", &failed);
    out->hash_state = dup_or_null(u->hash_state ? u->hash_state : "", &failed);
    out->backend_state = dup_or_null(u->backend_state, &failed);
    out->size = u->size;
    out->created = u->created;
    out->updated = u->updated;
    if (failed) {
        berth_meta_upload_dispose(out);
        return oom();
    }
    return 0;
}

typedef struct upload_count {
    const berth_meta_upload *u;
    size_t total, repo, owner;
} upload_count;

static void upload_count_cb(void *value, void *payload)
{
    upload_count *c = payload;
    const mem_upload *x = value;
    c->total++;
    c->repo += strcmp(x->u.repo, c->u->repo) == 0;
    c->owner += strcmp(x->u.owner, c->u->owner ? c->u->owner : "") == 0;
}

static void upload_free(mem_upload *x)
{
    berth_meta_upload_dispose(&x->u);
    free(x);
}

static int mm_upload_create(berth_meta_backend *b, const berth_meta_upload *u,
                            const berth_meta_upload_limits *limits)
{
    mem_meta *mm = (mem_meta *)b;
    mem_upload *x = calloc(1, sizeof(*x));
    int rc;
    if (!x) {
        return oom();
    }
    berth_meta_upload rec = *u;
    rec.size = 0;
    rec.hash_state = u->hash_state;
    if (!rec.updated) {
        rec.updated = rec.created;
    }
    if ((rc = upload_copy(&x->u, &rec)) != 0) {
        free(x);
        return rc;
    }
    pthread_mutex_lock(&mm->lock);
    if (berth__htab_get(&mm->uploads, x->u.id)) {
        rc = berth_error_set(BERTH_EEXISTS, "upload session %s exists", x->u.id);
        goto out;
    }
    if (limits) {
        upload_count c = {u, 0, 0, 0};
        berth__htab_foreach(&mm->uploads, upload_count_cb, &c);
        if ((limits->total && c.total >= limits->total) ||
            (limits->per_repo && c.repo >= limits->per_repo) ||
            (limits->per_owner && c.owner >= limits->per_owner)) {
            rc = berth_error_set(BERTH_EBUSY, "too many upload sessions");
            goto out;
        }
    }
    if (berth__htab_put(&mm->uploads, x->u.id, x) != 0) {
        rc = oom();
        goto out;
    }
    x = NULL;
out:
    pthread_mutex_unlock(&mm->lock);
    if (x) {
        upload_free(x);
    }
    return rc;
}

static int upload_lookup(mem_meta *mm, const char *repo, const char *id, bool acquire,
                         berth_meta_upload *out)
{
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    mem_upload *x = berth__htab_get(&mm->uploads, id);
    if (!x || strcmp(x->u.repo, repo) != 0) {
        rc = berth_error_set(BERTH_ENOTFOUND, "no upload session %s in the repository", id);
    } else if (acquire && x->held) {
        rc = berth_error_set(BERTH_EBUSY, "upload session %s is in use", id);
    } else if ((rc = upload_copy(out, &x->u)) == 0 && acquire) {
        x->held = true;
    }
    pthread_mutex_unlock(&mm->lock);
    return rc;
}

static int mm_upload_get(berth_meta_backend *b, const char *repo, const char *id,
                         berth_meta_upload *out)
{
    return upload_lookup((mem_meta *)b, repo, id, false, out);
}

static int mm_upload_acquire(berth_meta_backend *b, const char *repo, const char *id,
                             berth_meta_upload *out)
{
    return upload_lookup((mem_meta *)b, repo, id, true, out);
}

static int mm_upload_update(berth_meta_backend *b, const berth_meta_upload *u)
{
    mem_meta *mm = (mem_meta *)b;
    bool failed = false;
    char *hs = dup_or_null(u->hash_state ? u->hash_state : "", &failed);
    char *bs = dup_or_null(u->backend_state, &failed);
    int rc = 0;
    if (failed) {
        free(hs);
        free(bs);
        return oom();
    }
    pthread_mutex_lock(&mm->lock);
    mem_upload *x = berth__htab_get(&mm->uploads, u->id);
    if (!x) {
        rc = berth_error_set(BERTH_ENOTFOUND, "no upload session %s", u->id);
    } else {
        x->u.size = u->size;
        x->u.updated = u->updated;
        free(x->u.hash_state);
        free(x->u.backend_state);
        x->u.hash_state = hs;
        x->u.backend_state = bs;
        hs = bs = NULL;
    }
    pthread_mutex_unlock(&mm->lock);
    free(hs);
    free(bs);
    return rc;
}

static void mm_upload_release(berth_meta_backend *b, const char *id)
{
    mem_meta *mm = (mem_meta *)b;
    pthread_mutex_lock(&mm->lock);
    mem_upload *x = berth__htab_get(&mm->uploads, id);
    if (x) {
        x->held = false;
    }
    pthread_mutex_unlock(&mm->lock);
}

static int mm_upload_delete(berth_meta_backend *b, const char *id)
{
    mem_meta *mm = (mem_meta *)b;
    pthread_mutex_lock(&mm->lock);
    mem_upload *x = berth__htab_remove(&mm->uploads, id);
    pthread_mutex_unlock(&mm->lock);
    if (!x) {
        return berth_error_set(BERTH_ENOTFOUND, "no upload session %s", id);
    }
    upload_free(x);
    return 0;
}

/* Into a snap of berth_meta_upload: a copy of the session. */
static void upload_snap_cb(void *value, void *payload)
{
    snap *s = payload;
    mem_upload *x = value;
    berth_meta_upload *u = snap_next(s);
    if (!u) {
        return;
    }
    if (upload_copy(u, &x->u) != 0) {
        s->failed = true;
        return;
    }
    s->n++;
}

static int mm_uploads(berth_meta_backend *b, berth_meta_upload_cb cb, void *payload)
{
    mem_meta *mm = (mem_meta *)b;
    snap s = {.size = sizeof(berth_meta_upload)};
    berth_meta_upload *v = NULL;
    int rc = 0;
    pthread_mutex_lock(&mm->lock);
    berth__htab_foreach(&mm->uploads, upload_snap_cb, &s);
    pthread_mutex_unlock(&mm->lock);
    if (s.failed) {
        rc = oom();
    }
    v = s.v;
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        rc = cb(&v[i], payload);
    }
    for (size_t i = 0; i < s.n; i++) {
        berth_meta_upload_dispose(&v[i]);
    }
    free(v);
    return rc;
}

/* ---- garbage collection of blobs -------------------------------------------------------- */

typedef struct claim_scan {
    const char *after;
    int64_t older_than;
    mem_gblob *best;
} claim_scan;

static void claim_scan_cb(void *value, void *payload)
{
    claim_scan *c = payload;
    mem_gblob *gb = value;
    if (gb->claimed || gb->nlinks > 0 || gb->touched >= c->older_than) {
        return;
    }
    if (c->after && strcmp(gb->key, c->after) <= 0) {
        return;
    }
    if (!c->best || strcmp(gb->key, c->best->key) < 0) {
        c->best = gb;
    }
}

static int mm_gc_blob_claim(berth_meta_backend *b, const char *after, int64_t older_than,
                            berth_digest *digest_out, uint64_t *size_out,
                            berth_meta_claim **claim_out)
{
    mem_meta *mm = (mem_meta *)b;
    berth_meta_claim *claim = malloc(sizeof(*claim));
    int rc = 0;
    if (!claim) {
        return oom();
    }
    pthread_mutex_lock(&mm->lock);
    claim_scan c = {after, older_than, NULL};
    berth__htab_foreach(&mm->blobs, claim_scan_cb, &c);
    if (c.best) {
        c.best->claimed = true;
        claim->digest = c.best->digest;
        *digest_out = c.best->digest;
        *size_out = c.best->size;
        *claim_out = claim;
        claim = NULL;
    } else {
        rc = berth_error_set(BERTH_ENOTFOUND, "no blob to collect");
    }
    pthread_mutex_unlock(&mm->lock);
    free(claim);
    return rc;
}

static int mm_gc_blob_release(berth_meta_backend *b, berth_meta_claim *claim, bool deleted)
{
    mem_meta *mm = (mem_meta *)b;
    int rc = 0;
    if (!claim) {
        return 0;
    }
    pthread_mutex_lock(&mm->lock);
    mem_gblob *gb = berth__htab_get(&mm->blobs, claim->digest.str);
    if (!gb || !gb->claimed) {
        rc = berth_error_set(BERTH_EIO, "the claim on blob %s was lost", claim->digest.str);
    } else if (deleted) {
        berth__htab_remove(&mm->blobs, gb->key);
        free(gb);
    } else {
        gb->claimed = false;
    }
    pthread_cond_broadcast(&mm->claims_changed);
    pthread_mutex_unlock(&mm->lock);
    free(claim);
    return rc;
}

/* ---- life ------------------------------------------------------------------------------- */

static void free_repo_cb(void *value, void *payload)
{
    repo_free(value);
}

static void free_upload_cb(void *value, void *payload)
{
    upload_free(value);
}

static void mm_free(berth_meta_backend *b)
{
    mem_meta *mm = (mem_meta *)b;
    if (!mm) {
        return;
    }
    berth__htab_foreach(&mm->blobs, free_value_cb, NULL);
    berth__htab_foreach(&mm->repos, free_repo_cb, NULL);
    berth__htab_foreach(&mm->uploads, free_upload_cb, NULL);
    berth__htab_dispose(&mm->blobs);
    berth__htab_dispose(&mm->repos);
    berth__htab_dispose(&mm->uploads);
    pthread_cond_destroy(&mm->claims_changed);
    pthread_mutex_destroy(&mm->lock);
    free(mm);
}

int berth_mem_meta_backend_new(berth_meta_backend **out)
{
    mem_meta *mm = calloc(1, sizeof(*mm));
    if (!mm) {
        return oom();
    }
    mm->base.version = BERTH_META_BACKEND_VERSION;
    mm->base.name = "mem";
    mm->base.repo_exists = mm_repo_exists;
    mm->base.catalog = mm_catalog;
    mm->base.blob_touch = mm_blob_touch;
    mm->base.blob_link = mm_blob_link;
    mm->base.blob_stat = mm_blob_stat;
    mm->base.blob_unlink = mm_blob_unlink;
    mm->base.links = mm_links;
    mm->base.manifest_put = mm_manifest_put;
    mm->base.tag_get = mm_tag_get;
    mm->base.manifest_get = mm_manifest_get;
    mm->base.manifest_delete = mm_manifest_delete;
    mm->base.tag_delete = mm_tag_delete;
    mm->base.tags = mm_tags;
    mm->base.referrers = mm_referrers;
    mm->base.manifests = mm_manifests;
    mm->base.upload_create = mm_upload_create;
    mm->base.upload_get = mm_upload_get;
    mm->base.upload_acquire = mm_upload_acquire;
    mm->base.upload_update = mm_upload_update;
    mm->base.upload_release = mm_upload_release;
    mm->base.upload_delete = mm_upload_delete;
    mm->base.uploads = mm_uploads;
    mm->base.gc_blob_claim = mm_gc_blob_claim;
    mm->base.gc_blob_release = mm_gc_blob_release;
    mm->base.free = mm_free;
    pthread_mutex_init(&mm->lock, NULL);
    pthread_cond_init(&mm->claims_changed, NULL);
    *out = &mm->base;
    return 0;
}
