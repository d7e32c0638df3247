/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Online garbage collection and retention, written once over the metadata backend (the
 * protocol is in docs/design.md, "Garbage collection").
 *
 * Per repository: retention drops tags (each only while it still points where it did); the
 * manifests to keep are found from roots (tagged; untagged without a subject unless retention
 * drops them by age; anything pushed within the grace period) through an index's children and
 * the referrers of kept manifests; the rest are deleted, each by a call that re-checks, in the
 * backend and atomically, that it is still untagged, old and no index's child. Then the blob
 * links no kept manifest references and made before the grace period are removed, each by a
 * call that re-checks, atomically, that no manifest references it (a manifest PUT checks its
 * references under the same lock: see meta_backend.h). Nothing here holds a lock across
 * repositories, and any number of processes may run it at once.
 *
 * Then the blobs no repository links: each is claimed (gc_blob_claim: skipped by the other
 * collectors, and an upload's commit or a mount of it waits), its bytes removed, the claim
 * released. A commit notes its digest first (blob_touch), which keeps the claim off it for the
 * grace period, so a commit that finds its bytes already stored never loses them.
 *
 * Last, bytes in the blob backend that no metadata recorded (orphans) are recorded, to be
 * collected by a later run (adopt_orphans).
 */
#include "store/store_internal.h"

#include "base/htab.h"
#include "base/log.h"

#include <berth/errors.h>

#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void berth_gc_options_init(berth_gc_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->grace_seconds = 3600;
}

/*
 * How long after a blob is linked into a repository gc leaves that repository's unreferenced
 * blobs alone (at most the grace period): a client sends the manifest right after its last
 * blob, when no upload session of the push is open any more, and the first layers of a push
 * longer than the grace would otherwise go just before the manifest PUT that references them.
 */
#define PUSH_SETTLE_SECONDS 60

typedef struct gc_run {
    berth_store *s;
    const berth_gc_options *opts;
    berth_gc_stats *stats;
    int64_t now;
    int64_t before; /* now - grace + 1: what is older than the grace period came before */
    /* now - min(grace, PUSH_SETTLE_SECONDS) + 1: a repository with a blob linked since then is
       taken to be between a push's last blob and its manifest */
    int64_t settling;
    /* a dry run: links it would remove, per digest (a going_link), to tell which blobs would
       lose their last one */
    berth__htab going;
    /* with a grace (pushes may be in flight): repositories with an open upload session, whose
       unreferenced blobs may be the first layers of a push longer than the grace */
    berth__htab pushing;
} gc_run;

typedef struct going_link {
    berth_digest digest;
    uint64_t size;
    size_t going, links;
} going_link;

static void report(gc_run *g, const char *kind, const char *repo, const char *what, uint64_t size)
{
    if (g->opts->report) {
        g->opts->report(kind, repo, what, size, g->opts->payload);
    }
}

static bool matches(const char *pattern, const char *text)
{
    return !pattern || fnmatch(pattern, text, 0) == 0;
}

/* ---- what a repository holds, as the backend lists it ---------------------------------- */

typedef struct tag_item {
    char *name;
    berth_digest digest;
    int64_t pushed;
    bool drop;
} tag_item;

typedef struct manifest_item {
    berth_digest digest;
    int64_t pushed;
    uint64_t size;
    bool has_subject;
    berth_digest subject;
    unsigned ntags;
    berth_digest *refs; /* blobs, then children */
    size_t nblobs, nchildren;
    bool kept, gone;
} manifest_item;

typedef struct repo_view {
    tag_item *tags;
    size_t ntags, tags_cap;
    manifest_item *items;
    size_t count, cap;
    berth__htab by_digest; /* digest -> manifest_item (filled after listing) */
    int rc;
} repo_view;

static int grow(void **array, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) {
        return 0;
    }
    size_t next = *cap ? 2 * *cap : 64;
    void *p = realloc(*array, next * size);
    if (!p) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    *array = p;
    *cap = next;
    return 0;
}

static int collect_tag(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    repo_view *v = payload;
    tag_item *t;
    if ((v->rc = grow((void **)&v->tags, &v->tags_cap, v->ntags, sizeof(*v->tags))) < 0) {
        return 1;
    }
    t = &v->tags[v->ntags];
    memset(t, 0, sizeof(*t));
    if (!(t->name = strdup(tag))) {
        v->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    t->digest = *digest;
    t->pushed = pushed;
    v->ntags++;
    return 0;
}

static int collect_manifest(const berth_meta_manifest *m, void *payload)
{
    repo_view *v = payload;
    manifest_item *it;
    size_t n = m->nblobs + m->nchildren;

    if ((v->rc = grow((void **)&v->items, &v->cap, v->count, sizeof(*v->items))) < 0) {
        return 1;
    }
    it = &v->items[v->count];
    memset(it, 0, sizeof(*it));
    it->refs = calloc(n ? n : 1, sizeof(*it->refs));
    if (!it->refs) {
        v->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    if (m->nblobs) {
        memcpy(it->refs, m->blobs, m->nblobs * sizeof(*it->refs));
    }
    if (m->nchildren) {
        memcpy(it->refs + m->nblobs, m->children, m->nchildren * sizeof(*it->refs));
    }
    it->nblobs = m->nblobs;
    it->nchildren = m->nchildren;
    it->digest = m->digest;
    it->pushed = m->pushed;
    it->size = m->size;
    it->has_subject = m->has_subject;
    it->subject = m->subject;
    it->ntags = m->ntags;
    v->count++;
    return 0;
}

static void view_dispose(repo_view *v)
{
    for (size_t i = 0; i < v->ntags; i++) {
        free(v->tags[i].name);
    }
    for (size_t i = 0; i < v->count; i++) {
        free(v->items[i].refs);
    }
    free(v->tags);
    free(v->items);
    berth__htab_dispose(&v->by_digest);
}

/* ---- retention and marking ------------------------------------------------------------ */

typedef struct tag_ref {
    size_t index;
    int64_t pushed;
} tag_ref;

static int newest_first(const void *a, const void *b)
{
    const tag_ref *x = a, *y = b;
    return x->pushed < y->pushed ? 1 : x->pushed > y->pushed ? -1 : 0;
}

static int retention_tags(gc_run *g, const char *repo, repo_view *v)
{
    tag_ref *governed = calloc(v->ntags ? v->ntags : 1, sizeof(*governed));
    if (!governed) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t k = 0; k < g->opts->nrules; k++) {
        const berth_retention_rule *rule = &g->opts->rules[k];
        size_t n = 0;
        if (!matches(rule->repositories, repo)) {
            continue;
        }
        for (size_t i = 0; i < v->ntags; i++) {
            if (matches(rule->tags, v->tags[i].name)) {
                governed[n].index = i;
                governed[n].pushed = v->tags[i].pushed;
                n++;
            }
        }
        qsort(governed, n, sizeof(*governed), newest_first);
        for (size_t j = 0; j < n; j++) {
            bool too_many = rule->keep_last && j >= rule->keep_last;
            bool too_old = rule->max_tag_age && g->now - governed[j].pushed > rule->max_tag_age;
            if (too_many || too_old) {
                v->tags[governed[j].index].drop = true;
            }
        }
    }
    free(governed);
    return 0;
}

static bool untagged_expired(gc_run *g, const char *repo, const manifest_item *m)
{
    for (size_t k = 0; k < g->opts->nrules; k++) {
        const berth_retention_rule *rule = &g->opts->rules[k];
        if (rule->max_untagged_age && matches(rule->repositories, repo) &&
            g->now - m->pushed > rule->max_untagged_age) {
            return true;
        }
    }
    return false;
}

static manifest_item *find_item(repo_view *v, const berth_digest *d)
{
    return berth__htab_get(&v->by_digest, d->str);
}

/* Kept manifests: roots, then the closure through index children and referrers. */
static void mark(gc_run *g, const char *repo, repo_view *v)
{
    bool changed = true;
    for (size_t i = 0; i < v->count; i++) {
        manifest_item *it = &v->items[i];
        bool young = g->now - it->pushed < g->opts->grace_seconds;
        it->kept = g->opts->keep_manifests || it->ntags > 0 || young ||
                   (!it->has_subject && !untagged_expired(g, repo, it));
    }
    while (changed) {
        changed = false;
        for (size_t i = 0; i < v->count; i++) {
            manifest_item *it = &v->items[i];
            if (!it->kept) {
                /* a referrer of a kept manifest is kept */
                manifest_item *subject = it->has_subject ? find_item(v, &it->subject) : NULL;
                if (subject && subject->kept) {
                    it->kept = changed = true;
                }
                continue;
            }
            for (size_t k = 0; k < it->nchildren; k++) {
                manifest_item *child = find_item(v, &it->refs[it->nblobs + k]);
                if (child && !child->kept) {
                    child->kept = changed = true;
                }
            }
        }
    }
}

/* ---- sweeping ------------------------------------------------------------------------- */

static char live_mark;

typedef struct link_ctx {
    gc_run *g;
    const char *repo;
    berth__htab *live;
    berth_digest *gone; /* links to remove */
    uint64_t *sizes;
    size_t n, cap;
    int64_t newest; /* when the newest link was made */
    int rc;
} link_ctx;

static int collect_link(const berth_digest *digest, uint64_t size, int64_t linked, void *payload)
{
    link_ctx *c = payload;
    if (linked > c->newest) {
        c->newest = linked;
    }
    if (berth__htab_get(c->live, digest->str) || linked >= c->g->before) {
        return 0; /* referenced, or linked recently: a push may be about to reference it */
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        berth_digest *d = realloc(c->gone, cap * sizeof(*d));
        uint64_t *s = d ? realloc(c->sizes, cap * sizeof(*s)) : NULL;
        if (d) {
            c->gone = d;
        }
        if (!s) {
            c->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        c->sizes = s;
        c->cap = cap;
    }
    c->gone[c->n] = *digest;
    c->sizes[c->n] = size;
    c->n++;
    return 0;
}

/* Delete the manifests not kept, parents before children (an index's child cannot go while
   the index stays). */
static int sweep_manifests(gc_run *g, const char *repo, repo_view *v)
{
    bool progress = true;
    size_t left = 0;

    for (size_t i = 0; i < v->count; i++) {
        if (!v->items[i].kept) {
            report(g, "manifest", repo, v->items[i].digest.str, v->items[i].size);
            g->stats->manifests_removed++;
            left++;
        }
    }
    if (g->opts->dry_run) {
        return 0;
    }
    while (left && progress) {
        progress = false;
        for (size_t i = 0; i < v->count; i++) {
            manifest_item *it = &v->items[i];
            int rc;
            if (it->kept || it->gone) {
                continue;
            }
            rc = g->s->meta->manifest_delete(g->s->meta, repo, &it->digest, g->before);
            if (rc == BERTH_EINUSE) {
                continue; /* its index goes first, in this pass or the next */
            }
            it->gone = true;
            left--;
            progress = true;
            if (rc == BERTH_EBUSY || rc == BERTH_ENOTFOUND) {
                /* tagged or pushed again meanwhile, or gone: kept, or not ours to count */
                g->stats->manifests_removed--;
                it->kept = rc == BERTH_EBUSY;
            } else if (rc < 0) {
                return rc;
            }
        }
    }
    /* what an index still in use kept (a child of a concurrent push) stays */
    for (size_t i = 0; i < v->count; i++) {
        if (!v->items[i].kept && !v->items[i].gone) {
            v->items[i].kept = true;
            g->stats->manifests_removed--;
        }
    }
    return 0;
}

static int gc_repo(gc_run *g, const char *repo)
{
    berth_meta_backend *meta = g->s->meta;
    berth__htab live = BERTH__HTAB_INIT;
    link_ctx links;
    repo_view v;
    int rc;

    memset(&v, 0, sizeof(v));
    memset(&links, 0, sizeof(links));
    rc = meta->tags(meta, repo, NULL, 0, collect_tag, &v, &(bool){false});
    if (rc == 0) {
        rc = meta->manifests(meta, repo, collect_manifest, &v);
    }
    if (rc == 1 || v.rc < 0) {
        rc = v.rc;
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = 0; /* deleted meanwhile */
        goto out;
    }
    if (rc < 0) {
        berth__log(BERTH_LOG_WARN, "gc: %s cannot be listed, nothing removed there: %s", repo,
                   berth_error_last());
        rc = rc == BERTH_ENOMEM ? rc : 0;
        goto out;
    }
    for (size_t i = 0; i < v.count && rc == 0; i++) {
        rc = berth__htab_put(&v.by_digest, v.items[i].digest.str, &v.items[i]);
    }
    /* retention of tags (none when the operator switched deletes off) */
    if (rc == 0 && !g->opts->keep_manifests) {
        rc = retention_tags(g, repo, &v);
    }
    for (size_t i = 0; rc == 0 && i < v.ntags; i++) {
        tag_item *t = &v.tags[i];
        manifest_item *m;
        int r2 = 0;
        if (!t->drop) {
            continue;
        }
        if (!g->opts->dry_run) {
            /* only while it still points where it did */
            r2 = meta->tag_delete(meta, repo, t->name, &t->digest);
        }
        if (r2 == BERTH_EBUSY || r2 == BERTH_ENOTFOUND) {
            continue;
        }
        if (r2 < 0) {
            rc = r2;
            break;
        }
        report(g, "tag", repo, t->name, 0);
        g->stats->tags_removed++;
        if ((m = find_item(&v, &t->digest)) && m->ntags > 0) {
            m->ntags--;
        }
    }
    if (rc < 0) {
        goto out;
    }
    mark(g, repo, &v);
    rc = sweep_manifests(g, repo, &v);
    /* the blobs and children of what is kept, and every manifest (a manifest's own bytes are
       not a blob link of the repository) */
    for (size_t i = 0; rc == 0 && i < v.count; i++) {
        manifest_item *it = &v.items[i];
        rc = berth__htab_put(&live, it->digest.str, &live_mark);
        for (size_t k = 0; rc == 0 && it->kept && k < it->nblobs + it->nchildren; k++) {
            rc = berth__htab_put(&live, it->refs[k].str, &live_mark);
        }
    }
    if (rc < 0) {
        goto out;
    }
    if (berth__htab_get(&g->pushing, repo)) {
        goto out; /* a push in progress: its blobs are referenced by nothing yet */
    }
    links.g = g;
    links.repo = repo;
    links.live = &live;
    rc = meta->links(meta, repo, collect_link, &links);
    if (rc == 1 || links.rc < 0) {
        rc = links.rc;
    }
    if (rc == 0 && links.newest >= g->settling) {
        /* a blob linked moments ago: the last layer of a push whose manifest is on its way
           (its upload session is closed now, so `pushing` does not show it); the push's first
           layers, older than the grace, stay until the next run */
        goto out;
    }
    for (size_t i = 0; rc == 0 && i < links.n; i++) {
        int r2 = g->opts->dry_run ? 0 : meta->blob_unlink(meta, repo, &links.gone[i], g->before);
        if (r2 == BERTH_EINUSE || r2 == BERTH_EBUSY || r2 == BERTH_ENOTFOUND) {
            continue; /* referenced or linked again meanwhile */
        }
        if (r2 < 0) {
            rc = r2;
            break;
        }
        report(g, "blob", repo, links.gone[i].str, links.sizes[i]);
        g->stats->links_removed++;
        if (g->opts->dry_run) {
            going_link *l = berth__htab_get(&g->going, links.gone[i].str);
            if (!l && (l = calloc(1, sizeof(*l))) != NULL) {
                l->digest = links.gone[i];
                l->size = links.sizes[i];
                if (berth__htab_put(&g->going, l->digest.str, l) < 0) {
                    free(l);
                    l = NULL;
                }
            }
            if (l) {
                l->going++;
            }
        }
    }
out:
    free(links.gone);
    free(links.sizes);
    berth__htab_dispose(&live);
    view_dispose(&v);
    return rc;
}

typedef struct repo_list {
    char **names;
    size_t n, cap;
    int rc;
} repo_list;

static int collect_repo(const char *name, void *payload)
{
    repo_list *l = payload;
    if ((l->rc = grow((void **)&l->names, &l->cap, l->n, sizeof(*l->names))) < 0) {
        return 1;
    }
    if (!(l->names[l->n] = strdup(name))) {
        l->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    l->n++;
    return 0;
}

/* A dry run: count every link of the blobs it would unlink somewhere. */
static int count_going(const berth_digest *digest, uint64_t size, int64_t linked, void *payload)
{
    going_link *l = berth__htab_get(payload, digest->str);
    (void)size;
    (void)linked;
    if (l) {
        l->links++;
    }
    return 0;
}

static void report_going(void *value, void *payload)
{
    gc_run *g = payload;
    going_link *l = value;
    if (l->links > 0 && l->links == l->going) {
        report(g, "pool", NULL, l->digest.str, l->size);
        g->stats->blobs_removed++;
        g->stats->bytes_freed += l->size;
    }
}

static void free_going(void *value, void *payload)
{
    (void)payload;
    free(value);
}

/* The blobs no repository links: claimed one at a time, their bytes removed. */
static int sweep_blobs(gc_run *g)
{
    berth_meta_backend *meta = g->s->meta;
    berth_digest after, d;
    bool started = false;
    int rc = 0;

    for (;;) {
        berth_meta_claim *claim = NULL;
        uint64_t size = 0;
        int r2;
        rc = meta->gc_blob_claim(meta, started ? after.str : NULL, g->before, &d, &size, &claim);
        if (rc == BERTH_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc < 0) {
            break;
        }
        after = d;
        started = true;
        r2 = g->opts->dry_run ? 0 : g->s->blobs->remove(g->s->blobs, &d);
        if (r2 == BERTH_ENOTFOUND) {
            r2 = 0; /* its bytes were gone already: forget it */
        }
        if (meta->gc_blob_release(meta, claim, r2 == 0 && !g->opts->dry_run) < 0) {
            berth__log(BERTH_LOG_WARN, "gc: the claim of %s was lost: %s", d.str,
                       berth_error_last());
        }
        if (r2 < 0) {
            berth__log(BERTH_LOG_WARN, "gc: %s stays: %s", d.str, berth_error_last());
            continue;
        }
        report(g, "pool", NULL, d.str, size);
        g->stats->blobs_removed++;
        g->stats->bytes_freed += size;
    }
    return rc;
}

/* ---- orphans: bytes in the blob backend that no metadata recorded ----------------------- */

/* A digest the metadata knows, by the first 16 bytes of its hash: two digests sharing them
   count as one, which can only keep an orphan, never take a blob that is needed. */
typedef struct link_key {
    unsigned char k[16];
} link_key;

typedef struct orphan_run {
    gc_run *g;
    link_key *linked;
    size_t nlinked, cap;
    berth_digest *found;
    uint64_t *sizes;
    size_t nfound, found_cap;
    berth_digest after; /* the last blob claimed while listing the known ones */
    int rc;
} orphan_run;

static void key_of(link_key *out, const berth_digest *d)
{
    const char *hex = berth_digest_hex(d);
    memset(out, 0, sizeof(*out));
    for (size_t i = 0; i < 2 * sizeof(out->k) && hex[i]; i++) {
        char c = hex[i];
        unsigned v = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                                            : (unsigned)c & 15u;
        out->k[i / 2] |= (unsigned char)(i % 2 ? v : v << 4);
    }
}

static int key_cmp(const void *a, const void *b)
{
    return memcmp(a, b, sizeof(link_key));
}

static int note_linked(const berth_digest *digest, uint64_t size, int64_t linked, void *payload)
{
    orphan_run *o = payload;
    (void)size;
    (void)linked;
    if ((o->rc = grow((void **)&o->linked, &o->cap, o->nlinked, sizeof(*o->linked))) < 0) {
        return 1;
    }
    key_of(&o->linked[o->nlinked++], digest);
    return 0;
}

static int note_orphan(const berth_digest *digest, uint64_t size, int64_t mtime, void *payload)
{
    orphan_run *o = payload;
    link_key key;
    if (mtime >= o->g->before) {
        return 0; /* young bytes: a commit may be about to record them */
    }
    key_of(&key, digest);
    if (o->nlinked && bsearch(&key, o->linked, o->nlinked, sizeof(key), key_cmp)) {
        return 0;
    }
    if (o->nfound == o->found_cap) {
        size_t cap = o->found_cap ? 2 * o->found_cap : 64;
        berth_digest *d = realloc(o->found, cap * sizeof(*d));
        uint64_t *sz = d ? realloc(o->sizes, cap * sizeof(*sz)) : NULL;
        if (d) {
            o->found = d;
        }
        if (!sz) {
            o->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        o->sizes = sz;
        o->found_cap = cap;
    }
    o->found[o->nfound] = *digest;
    o->sizes[o->nfound] = size;
    o->nfound++;
    return 0;
}

/*
 * Bytes that reached the blob backend but never the metadata (a process killed between the
 * two, a database restored from an older backup, a failed removal whose record was dropped)
 * are found by a walk of the blob backend against what the metadata knows (every repository's
 * links, and the unlinked blobs it records): those older than the grace period are recorded
 * with blob_touch(), as a commit records its digest. They are not removed here: a later collection,
 * once the grace period has passed, claims and removes them like any blob no repository links
 * (gc_blob_claim), with its re-check, so a commit of the same digest meanwhile keeps them. The fs
 * pool needs no walk: its claims walk the pool itself.
 */
static int adopt_orphans(gc_run *g, const repo_list *repos)
{
    berth_store *s = g->s;
    orphan_run o;
    int rc = 0;

    if (s->root || !s->blobs->foreach) {
        return 0;
    }
    memset(&o, 0, sizeof(o));
    o.g = g;
    for (size_t i = 0; i < repos->n && rc == 0; i++) {
        rc = s->meta->links(s->meta, repos->names[i], note_linked, &o);
        rc = rc == 1 ? o.rc : rc == BERTH_ENOTFOUND ? 0 : rc;
    }
    /* and the blobs it knows that no repository links (young ones, or those whose removal
       failed): each claimed and released at once, as the only way the metadata backend lists
       them. Recorded once, an orphan is not recorded again (which would put its collection
       off for ever). A blob another collector holds is skipped: recording it after its
       removal leaves a record the next collection forgets (its bytes are gone). */
    for (bool started = false; rc == 0;) {
        berth_meta_claim *claim = NULL;
        berth_digest d;
        uint64_t size;
        rc = s->meta->gc_blob_claim(s->meta, started ? o.after.str : NULL, g->now + 86400, &d,
                                    &size, &claim);
        if (rc == BERTH_ENOTFOUND) {
            rc = 0;
            break;
        }
        if (rc == 0) {
            if (s->meta->gc_blob_release(s->meta, claim, false) < 0) {
                berth__log(BERTH_LOG_WARN, "gc: the claim of %s was lost: %s", d.str,
                           berth_error_last());
            }
            o.after = d;
            started = true;
            rc = note_linked(&d, size, 0, &o) ? o.rc : 0;
        }
    }
    if (rc == 0) {
        if (o.nlinked > 1) {
            qsort(o.linked, o.nlinked, sizeof(*o.linked), key_cmp);
        }
        rc = s->blobs->foreach (s->blobs, note_orphan, &o);
        rc = rc == 1 ? o.rc : rc;
    }
    for (size_t i = 0; rc == 0 && i < o.nfound; i++) {
        if (!g->opts->dry_run && (rc = s->meta->blob_touch(s->meta, &o.found[i], o.sizes[i])) < 0) {
            break;
        }
        report(g, "orphan", NULL, o.found[i].str, o.sizes[i]);
        g->stats->orphans_found++;
    }
    free(o.linked);
    free(o.found);
    free(o.sizes);
    return rc;
}

int berth_store_gc(berth_store *s, const berth_gc_options *opts, berth_gc_stats *stats)
{
    berth_gc_options defaults;
    berth_gc_stats local;
    repo_list repos = {NULL, 0, 0, 0};
    bool more = false;
    gc_run g;
    int rc;

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
    g.before = g.now - opts->grace_seconds + 1;
    g.settling = opts->grace_seconds > 0
                     ? g.now -
                           (opts->grace_seconds < PUSH_SETTLE_SECONDS ? (int64_t)opts->grace_seconds
                                                                      : PUSH_SETTLE_SECONDS) +
                           1
                     : INT64_MAX;

    rc = s->meta->catalog(s->meta, NULL, 0, collect_repo, &repos, &more);
    if (rc == 1 || repos.rc < 0) {
        rc = repos.rc;
    }
    if (rc == 0 && opts->grace_seconds > 0) {
        rc = berth__uploads_repos(s, &g.pushing);
    }
    for (size_t i = 0; i < repos.n && rc == 0; i++) {
        rc = gc_repo(&g, repos.names[i]);
    }
    if (rc == 0) {
        rc = sweep_blobs(&g);
    }
    if (rc == 0) {
        rc = adopt_orphans(&g, &repos);
    }
    if (rc == 0 && opts->dry_run && g.going.count > 0) {
        /* blobs whose every link the run would remove would go too */
        for (size_t i = 0; i < repos.n && rc == 0; i++) {
            rc = s->meta->links(s->meta, repos.names[i], count_going, &g.going);
            rc = rc == BERTH_ENOTFOUND ? 0 : rc;
        }
        berth__htab_foreach(&g.going, report_going, &g);
    }
    berth__htab_foreach(&g.going, free_going, NULL);
    berth__htab_dispose(&g.going);
    berth__htab_foreach(&g.pushing, free_going, NULL);
    berth__htab_dispose(&g.pushing);
    if (rc == 0) {
        rc = berth__uploads_gc(s, opts->dry_run, &g.stats->uploads_removed);
    }
    for (size_t i = 0; i < repos.n; i++) {
        free(repos.names[i]);
    }
    free(repos.names);
    return rc;
}
