/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Online garbage collection and retention (the protocol is in docs/design.md).
 *
 * Per repository, under its write lock, so that no manifest PUT (which checks references under
 * the same lock) interleaves: retention drops tags; the manifests to keep are found from roots
 * (tagged; untagged without a subject unless retention drops them by age; anything pushed
 * within the grace period) through an index's children and the referrers of kept manifests;
 * the rest are dropped and index.json rewritten; then blob links that no kept manifest
 * references and that were linked before the grace period are removed. Blobs that uploads
 * just committed are young and so survive until their manifest arrives.
 *
 * Then the pool: a blob whose only link is the pool's goes. A commit that finds the blob in the
 * pool links to it; if that copy is removed between its two links, it links its own copy again
 * (berth__store_publish_blob), so a pool sweep never loses a commit.
 */
#include "store/store_internal.h"

#include "base/log.h"
#include "base/fs.h"
#include "store/fs/tree.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void berth_gc_options_init(berth_gc_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->grace_seconds = 3600;
}

typedef struct gc_run {
    berth_store *s;
    const berth_gc_options *opts;
    berth_gc_stats *stats;
    int64_t now;
    berth__htab inodes; /* digest -> pool_inode, as the pool stood when the run began */
    struct pool_inode *pool;
    size_t npool, pool_cap;
} gc_run;

/*
 * A pool blob as the run found it. The grace period is judged on the ctime of the blob's
 * inode, which every link and unlink changes: removing one repository's link would make the
 * links of the others look young. So the run judges each blob by its state when the run
 * began, and by the state its own unlinks left; any other change (a push linked or unlinked
 * it meanwhile) keeps the link.
 */
typedef struct pool_inode {
    char digest[BERTH_DIGEST_MAXLEN + 1];
    int64_t ctime_ns; /* at the start, or after this run's last unlink of it */
    uint64_t nlink;
    bool young;     /* linked within the grace period before the run began */
    uint64_t going; /* dry run: links of it that would be removed */
} pool_inode;

static void report(gc_run *g, const char *kind, const char *repo_name, const char *what,
                   uint64_t size)
{
    if (g->opts->report) {
        g->opts->report(kind, repo_name, what, size, g->opts->payload);
    }
}

static bool matches(const char *pattern, const char *text)
{
    return !pattern || fnmatch(pattern, text, 0) == 0;
}

typedef struct tag_ref {
    size_t index;
    int64_t pushed;
} tag_ref;

static int newest_first(const void *a, const void *b)
{
    const tag_ref *x = a, *y = b;
    return x->pushed < y->pushed ? 1 : x->pushed > y->pushed ? -1 : 0;
}

/* Retention of tags: mark the tags to drop in `drop` (r->lock held for writing). */
static int retention_tags(gc_run *g, repo *r, bool *drop)
{
    tag_ref *governed = calloc(r->ntags ? r->ntags : 1, sizeof(*governed));
    if (!governed) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < g->opts->nrules; k++) {
        const berth_retention_rule *rule = &g->opts->rules[k];
        size_t n = 0;
        if (!matches(rule->repositories, r->name)) {
            continue;
        }
        for (size_t i = 0; i < r->ntags; i++) {
            if (matches(rule->tags, r->tags[i].name)) {
                governed[n].index = i;
                governed[n].pushed = r->tags[i].pushed;
                n++;
            }
        }
        qsort(governed, n, sizeof(*governed), newest_first);
        for (size_t j = 0; j < n; j++) {
            bool too_many = rule->keep_last && j >= rule->keep_last;
            bool too_old = rule->max_tag_age && g->now - governed[j].pushed > rule->max_tag_age;
            if (too_many || too_old) {
                drop[governed[j].index] = true;
            }
        }
    }
    free(governed);
    return 0;
}

static bool untagged_expired(gc_run *g, repo *r, const manifest_entry *m)
{
    for (size_t k = 0; k < g->opts->nrules; k++) {
        const berth_retention_rule *rule = &g->opts->rules[k];
        if (rule->max_untagged_age && matches(rule->repositories, r->name) &&
            g->now - m->pushed > rule->max_untagged_age) {
            return true;
        }
    }
    return false;
}

/* One manifest during marking: its entry, whether kept, and the digests it references. */
typedef struct mark_item {
    manifest_entry *m;
    bool kept;
    berth_document_info *info; /* NULL when the bytes cannot be read or parsed */
} mark_item;

typedef struct mark_ctx {
    mark_item *items;
    size_t count;
    berth__htab by_digest; /* digest -> mark_item */
    bool unreadable;       /* some manifest could not be read: sweep no blobs */
} mark_ctx;

static void gather(void *value, void *payload)
{
    mark_ctx *ctx = payload;
    ctx->items[ctx->count++].m = value;
}

static mark_item *find_item(mark_ctx *ctx, const berth_digest *d)
{
    return berth__htab_get(&ctx->by_digest, d->str);
}

static int inspect_item(gc_run *g, repo *r, mark_item *it)
{
    const cached_manifest *c = NULL;
    int rc = berth__repo_peek_bytes(&c, g->s, r, it->m);
    if (rc == 0) {
        rc = berth_document_inspect(&it->info, it->m->media_type, c->pub.data, c->pub.len);
        berth_manifest_release(&c->pub);
    }
    if (rc < 0) {
        /* unreadable: keep it and everything it might need; fsck reports it */
        berth__log(BERTH_LOG_WARN, "gc: %s@%s: %s", r->name, it->m->digest.str, berth_error_last());
        it->info = NULL;
    }
    return rc == BERTH_ENOMEM ? rc : 0;
}

/* Mark kept manifests: roots, then closure through index children and referrers. */
static void mark(gc_run *g, repo *r, mark_ctx *ctx)
{
    bool changed = true;
    for (size_t i = 0; i < ctx->count; i++) {
        mark_item *it = &ctx->items[i];
        bool young = g->now - it->m->pushed < g->opts->grace_seconds;
        it->kept = it->m->ntags > 0 || young || !it->info ||
                   (!it->m->has_subject && !untagged_expired(g, r, it->m));
    }
    while (changed) {
        changed = false;
        for (size_t i = 0; i < ctx->count; i++) {
            mark_item *it = &ctx->items[i];
            if (!it->kept) {
                /* a referrer of a kept manifest is kept */
                mark_item *subject = it->m->has_subject ? find_item(ctx, &it->m->subject) : NULL;
                if (subject && subject->kept) {
                    it->kept = changed = true;
                }
                continue;
            }
            if (it->info && berth_document_kind_is_index(it->info->kind)) {
                for (size_t k = 0; k < it->info->nrefs; k++) {
                    mark_item *child = find_item(ctx, &it->info->refs[k].digest);
                    if (child && !child->kept) {
                        child->kept = changed = true;
                    }
                }
            }
        }
    }
}

static char live_mark;

static int live_add(berth__htab *live, const berth_digest *d)
{
    return berth__htab_put(live, d->str, &live_mark);
}

/* Count, in a dry run, a link that would go, so the pool pass can tell what would be freed. */
static void note_unlinked(gc_run *g, const char *digest)
{
    pool_inode *p = berth__htab_get(&g->inodes, digest);
    if (p) {
        p->going++;
    }
}

typedef struct sweep_ctx {
    gc_run *g;
    repo *r;
    berth__htab *live;
} sweep_ctx;

static int64_t ctime_ns(const struct stat *st)
{
    return (int64_t)st->st_ctim.tv_sec * 1000000000 + (int64_t)st->st_ctim.tv_nsec;
}

/* Is a repository's link young, so that a push in flight may be about to reference it? */
static bool young_link(gc_run *g, const char *digest, const struct stat *st)
{
    pool_inode *p = berth__htab_get(&g->inodes, digest);
    if (!p) {
        /* not in the pool when the run began: linked since */
        return g->now - (int64_t)st->st_ctime < g->opts->grace_seconds;
    }
    /* changed by someone else since the run began (or since our own unlink): young */
    return p->young || ctime_ns(st) != p->ctime_ns || (uint64_t)st->st_nlink != p->nlink;
}

/* After unlinking a repository's link: remember the state the unlink left the inode in. */
static void note_own_unlink(gc_run *g, const char *digest)
{
    pool_inode *p = berth__htab_get(&g->inodes, digest);
    char path[4096];
    const char *colon = strchr(digest, ':');
    struct stat st;

    if (!p || !colon) {
        return;
    }
    snprintf(path, sizeof(path), "%s/%.*s/%s", g->s->pool, (int)(colon - digest), digest,
             colon + 1);
    if (lstat(path, &st) == 0) {
        p->ctime_ns = ctime_ns(&st);
        p->nlink = (uint64_t)st.st_nlink;
    }
}

static int sweep_link(const char *path, const char *digest, const struct stat *st, void *payload)
{
    sweep_ctx *ctx = payload;
    gc_run *g = ctx->g;

    if (berth__htab_get(ctx->live, digest) || young_link(g, digest, st)) {
        return 0; /* referenced, or linked recently: a push may be about to reference it */
    }
    report(g, "blob", ctx->r->name, digest, (uint64_t)st->st_size);
    g->stats->links_removed++;
    if (g->opts->dry_run) {
        note_unlinked(g, digest);
        return 0;
    }
    if (unlink(path) != 0 && errno != ENOENT) {
        return berth_error_set(BERTH_EIO, "unlink %s: %s", digest, strerror(errno));
    }
    note_own_unlink(g, digest);
    return 0;
}

/* Record a pool blob's state as the run begins. */
static int snapshot_pool_blob(const char *path, const char *digest, const struct stat *st,
                              void *payload)
{
    gc_run *g = payload;
    pool_inode *p;
    (void)path;

    if (g->npool == g->pool_cap) {
        /* committed since the count (the table points into the array, which cannot grow):
           judged by its own ctime, as young */
        return 0;
    }
    p = &g->pool[g->npool++];
    snprintf(p->digest, sizeof(p->digest), "%s", digest);
    p->ctime_ns = ctime_ns(st);
    p->nlink = (uint64_t)st->st_nlink;
    p->young = g->now - (int64_t)st->st_ctime < g->opts->grace_seconds;
    return berth__htab_put(&g->inodes, p->digest, p);
}

static int count_blob(const char *path, const char *digest, const struct stat *st, void *payload)
{
    (void)path;
    (void)digest;
    (void)st;
    (*(size_t *)payload)++;
    return 0;
}

/* The pool's state when the run begins (pool_inode). */
static int snapshot_pool(gc_run *g)
{
    size_t n = 0;
    int rc = berth__fs_each_blob(g->s->pool, count_blob, &n);
    if (rc < 0) {
        return rc;
    }
    /* blobs committed between the count and the walk are left out: they are judged by their
       own ctime, as young */
    g->pool_cap = n;
    g->pool = calloc(n ? n : 1, sizeof(*g->pool));
    if (!g->pool) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return berth__fs_each_blob(g->s->pool, snapshot_pool_blob, g);
}

/* Remove blob links of the repository that nothing kept references. */
static int sweep_links(gc_run *g, repo *r, berth__htab *live)
{
    sweep_ctx ctx = {g, r, live};
    char dir[4096];
    int rc;

    if (snprintf(dir, sizeof(dir), "%s/blobs", r->dir) >= (int)sizeof(dir)) {
        return berth_error_set(BERTH_EIO, "path too long: %s", r->name);
    }
    rc = berth__fs_each_blob(dir, sweep_link, &ctx);
    for (int alg = BERTH_DIGEST_SHA256;
         rc == 0 && !g->opts->dry_run && g->s->opts.fsync && alg <= BERTH_DIGEST_SHA512; alg++) {
        char sub[4096 + 16];
        snprintf(sub, sizeof(sub), "%s/%s", dir, berth_digest_alg_name((berth_digest_alg)alg));
        berth__fs_fsync_dir(sub);
    }
    return rc;
}

static int gc_repo(gc_run *g, repo *r)
{
    mark_ctx ctx = {NULL, 0, BERTH__HTAB_INIT, false};
    berth__htab live = BERTH__HTAB_INIT;
    bool *drop = NULL, changed = false;
    size_t j = 0;
    int rc;

    pthread_rwlock_wrlock(&r->lock);
    rc = r->loaded ? 0 : berth__repo_load(g->s, r);
    if (rc < 0) {
        goto out;
    }
    /* retention of tags */
    drop = calloc(r->ntags ? r->ntags : 1, sizeof(*drop));
    if (!drop) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    rc = retention_tags(g, r, drop);
    for (size_t i = 0; rc == 0 && i < r->ntags; i++) {
        if (!drop[i]) {
            r->tags[j++] = r->tags[i];
            continue;
        }
        report(g, "tag", r->name, r->tags[i].name, 0);
        g->stats->tags_removed++;
        if (g->opts->dry_run) {
            r->tags[j++] = r->tags[i]; /* kept in memory, but marked below as if gone */
            continue;
        }
        r->tags[i].manifest->ntags--;
        free(r->tags[i].name);
        changed = true;
    }
    if (rc < 0) {
        goto out;
    }
    r->ntags = j;
    /* marking */
    ctx.items = calloc(r->manifests.count ? r->manifests.count : 1, sizeof(*ctx.items));
    if (!ctx.items) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    berth__htab_foreach(&r->manifests, gather, &ctx);
    for (size_t i = 0; i < ctx.count && rc == 0; i++) {
        rc = inspect_item(g, r, &ctx.items[i]);
        if (rc == 0) {
            rc = berth__htab_put(&ctx.by_digest, ctx.items[i].m->digest.str, &ctx.items[i]);
        }
        ctx.unreadable |= !ctx.items[i].info;
    }
    if (rc < 0) {
        goto out;
    }
    if (g->opts->dry_run) {
        /* count the tags a dry run would drop as gone, for marking only */
        for (size_t i = 0; i < r->ntags; i++) {
            if (drop[i]) {
                r->tags[i].manifest->ntags--;
            }
        }
        mark(g, r, &ctx);
        for (size_t i = 0; i < r->ntags; i++) {
            if (drop[i]) {
                r->tags[i].manifest->ntags++;
            }
        }
    } else {
        mark(g, r, &ctx);
    }
    /* sweep manifests; collect what the kept ones reference */
    for (size_t i = 0; i < ctx.count && rc == 0; i++) {
        mark_item *it = &ctx.items[i];
        if (it->kept) {
            rc = live_add(&live, &it->m->digest);
            for (size_t k = 0; rc == 0 && it->info && k < it->info->nrefs; k++) {
                rc = live_add(&live, &it->info->refs[k].digest);
            }
            continue;
        }
        report(g, "manifest", r->name, it->m->digest.str, (uint64_t)it->m->size);
        g->stats->manifests_removed++;
        if (!g->opts->dry_run) {
            /* its tags were all dropped above, or it would be a root; its blob link is not
               live, so the link sweep below removes it */
            berth__htab_remove(&r->manifests, it->m->digest.str);
            berth__manifest_entry_free(it->m);
            it->m = NULL;
            changed = true;
        }
    }
    if (rc == 0 && changed) {
        rc = berth__repo_save(g->s, r);
        if (rc < 0) {
            berth__repo_free_state(r); /* reload from disk on next use */
        }
    }
    if (rc == 0 && ctx.unreadable) {
        berth__log(BERTH_LOG_WARN, "gc: %s has unreadable manifests: no blob removed there",
                   r->name);
    } else if (rc == 0) {
        rc = sweep_links(g, r, &live);
    }
out:
    for (size_t i = 0; i < ctx.count; i++) {
        berth_document_info_free(ctx.items[i].info);
    }
    berth__htab_dispose(&ctx.by_digest);
    pthread_rwlock_unlock(&r->lock);
    berth__htab_dispose(&live);
    free(ctx.items);
    free(drop);
    return rc;
}

static int sweep_pool_blob(const char *path, const char *digest, const struct stat *st,
                           void *payload)
{
    gc_run *g = payload;
    pool_inode *p = g->opts->dry_run ? berth__htab_get(&g->inodes, digest) : NULL;
    uint64_t going = p ? p->going : 0;

    if ((uint64_t)st->st_nlink - going != 1) {
        return 0; /* some repository still links it */
    }
    report(g, "pool", NULL, digest, (uint64_t)st->st_size);
    g->stats->blobs_removed++;
    g->stats->bytes_freed += (uint64_t)st->st_size;
    if (!g->opts->dry_run && unlink(path) != 0 && errno != ENOENT) {
        return berth_error_set(BERTH_EIO, "unlink %s: %s", digest, strerror(errno));
    }
    return 0;
}

int berth_store_gc(berth_store *s, const berth_gc_options *opts, berth_gc_stats *stats)
{
    berth_gc_options defaults;
    berth_gc_stats local;
    gc_run g;
    repo **repos = NULL;
    size_t n = 0;
    int rc = 0;

    berth_error_clear();
    if (!opts) {
        berth_gc_options_init(&defaults);
        opts = &defaults;
    }
    if (s->opts.read_only && !opts->dry_run) {
        return berth_error_set(BERTH_EIO, "the store is open read-only");
    }
    memset(&local, 0, sizeof(local));
    memset(&g, 0, sizeof(g));
    g.s = s;
    g.opts = opts;
    g.stats = stats ? stats : &local;
    memset(g.stats, 0, sizeof(*g.stats));
    g.now = (int64_t)time(NULL);

    repos = berth__store_repos(s, &n);
    if (!repos) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = snapshot_pool(&g);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (repos[i]->on_disk) {
            rc = gc_repo(&g, repos[i]);
        }
    }
    if (rc == 0) {
        rc = berth__fs_each_blob(s->pool, sweep_pool_blob, &g);
    }
    if (rc == 0) {
        rc = berth__uploads_gc(s, opts->dry_run, &g.stats->uploads_removed);
    }
    berth__htab_dispose(&g.inodes);
    free(g.pool);
    free(repos);
    return rc;
}
