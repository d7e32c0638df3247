/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth import: load a stopped fs root into the storage a configuration names (S3 +
 * PostgreSQL, or another fs root), keeping every digest and every byte. Per repository of the
 * source's catalog: its blobs (those the target repository holds already are skipped, those
 * another repository of the target holds are mounted, the others streamed into an upload),
 * then its manifests by digest (an index's children before it), then its tags. Only the public
 * store API is used, so the target's rules apply as to any push: what it refuses (a sparse
 * manifest in a repository its sparse_manifests setting does not name) is reported, and the
 * import goes on and ends with exit status 1. A second run copies nothing new.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include "cli/cli.h"

#include <berth/config.h>
#include <berth/errors.h>
#include <berth/store.h>

#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define IMPORT_OWNER "berth-import"
#define JOBS_DEFAULT 8
#define JOBS_MAX     64

enum { MF_TODO, MF_BUSY, MF_DONE, MF_FAILED };

/* A manifest of the repository being imported, with the children it needs first. */
typedef struct mf_entry {
    berth_digest digest;
    berth_digest *children;
    size_t nchildren;
    int state;
} mf_entry;

typedef struct blob_entry {
    berth_digest digest;
    uint64_t size;
} blob_entry;

/* A growable list of strings (repository names, tags). */
typedef struct names {
    char **v;
    size_t n, cap;
    int rc;
} names;

typedef struct counts {
    uint64_t blobs, blobs_present, blobs_copied, blobs_mounted, bytes_copied;
    uint64_t manifests, manifests_copied;
    uint64_t tags, tags_set;
    uint64_t problems;
} counts;

typedef struct import_ctx {
    berth_store *src, *dst;
    const char *repo;
    counts total, repo_counts;
    mf_entry *mf;
    size_t nmf, capmf;
    blob_entry *blobs;
    size_t nblobs, capblobs;
    size_t next_blob;   /* the next one a worker takes */
    size_t jobs;        /* blobs copied at once */
    pthread_mutex_t mu; /* counts, next_blob, stderr lines */
    int rc;             /* a callback's failure */
} import_ctx;

static void usage(FILE *f)
{
    fprintf(f, "usage: berth import --root DIR --config FILE [--jobs N]\n\n"
               "Load the fs store at DIR (a stopped server's root, opened read-only) into the\n"
               "storage the configuration FILE names: S3 + PostgreSQL (storage.s3.* with\n"
               "database.url, or the BERTH_* environment settings), or another fs root. Every\n"
               "repository is copied with every digest and byte kept: its blobs (those another\n"
               "repository of the target holds already are mounted, so shared blobs are stored\n"
               "once), its manifests by digest (tagged, untagged, indexes after their children,\n"
               "referrers) and its tags. What the target holds already is skipped, so the import\n"
               "can be run again (after an interruption: it goes on; a second run copies nothing\n"
               "new). The target applies its own rules: a sparse manifest (content absent) is\n"
               "copied only into a repository its sparse_manifests setting names; otherwise it\n"
               "(with the tags and indexes that need it) is reported and the import goes on.\n"
               "--jobs N: blobs copied at once (default 8, at most 64).\n"
               "Progress goes to stderr, a summary to stdout. Upload timestamps are not kept:\n"
               "imported content counts as pushed now (gc grace and age-based retention).\n"
               "Exit status: 0 all copied; 1 something was not copied, or a store failed;\n"
               "2 a usage or configuration error, or a target that is the fs root DIR itself.\n");
}

static void human(char *out, size_t len, uint64_t bytes)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(out, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

/* Report what was not copied ("blob DIGEST not stored: why") and count it. */
static void problem(import_ctx *ctx, const char *kind, const char *name, const char *verb)
{
    pthread_mutex_lock(&ctx->mu);
    fprintf(stderr, "berth import: %s: %s%s%s %s: %s\n", ctx->repo, kind, *name ? " " : "", name,
            verb, berth_error_last());
    ctx->repo_counts.problems++;
    pthread_mutex_unlock(&ctx->mu);
}

static int add_name(const char *name, void *payload)
{
    names *l = payload;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v) {
            l->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name))) {
        l->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return 1;
    }
    l->n++;
    return 0;
}

static void names_dispose(names *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- blobs ---------------------------------------------------------------------------- */

static int add_blob(const berth_digest *digest, uint64_t size, void *payload)
{
    import_ctx *ctx = payload;
    if (ctx->nblobs == ctx->capblobs) {
        size_t cap = ctx->capblobs ? ctx->capblobs * 2 : 64;
        blob_entry *v = realloc(ctx->blobs, cap * sizeof(*v));
        if (!v) {
            ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        ctx->blobs = v;
        ctx->capblobs = cap;
    }
    ctx->blobs[ctx->nblobs].digest = *digest;
    ctx->blobs[ctx->nblobs].size = size;
    ctx->nblobs++;
    return 0;
}

static int to_upload(const void *data, size_t len, void *payload)
{
    return berth_upload_write(payload, data, len);
}

enum { BLOB_PRESENT, BLOB_MOUNTED, BLOB_COPIED, BLOB_FAILED };

/* One blob into the target repository: there already, mounted, or streamed. */
static int copy_blob(import_ctx *ctx, const blob_entry *b)
{
    berth_upload *u = NULL;
    uint64_t size;
    int rc;

    if (berth_store_blob_stat(ctx->dst, ctx->repo, &b->digest, &size) == 0) {
        return BLOB_PRESENT;
    }
    rc = berth_store_blob_mount(ctx->dst, ctx->repo, NULL, &b->digest);
    if (rc == 0) {
        return BLOB_MOUNTED;
    }
    if (rc != BERTH_ENOTFOUND) {
        problem(ctx, "blob", b->digest.str, "not mounted");
        return BLOB_FAILED;
    }
    if (berth_store_upload_new(&u, ctx->dst, ctx->repo, IMPORT_OWNER) < 0) {
        problem(ctx, "blob", b->digest.str, "not started");
        return BLOB_FAILED;
    }
    rc = berth_store_blob_read(ctx->src, &b->digest, 0, UINT64_MAX, to_upload, u);
    if (rc < 0) {
        problem(ctx, "blob", b->digest.str, "not read");
        berth_upload_cancel(u);
        return BLOB_FAILED;
    }
    if (berth_upload_commit(u, &b->digest) < 0) {
        /* the commit releases the handle; the session stays, to be reaped */
        problem(ctx, "blob", b->digest.str, "not stored");
        return BLOB_FAILED;
    }
    return BLOB_COPIED;
}

static void count_blob(import_ctx *ctx, const blob_entry *b, int outcome)
{
    char bytes[32];

    pthread_mutex_lock(&ctx->mu);
    ctx->repo_counts.blobs++;
    if (outcome == BLOB_PRESENT) {
        ctx->repo_counts.blobs_present++;
    } else if (outcome == BLOB_MOUNTED) {
        ctx->repo_counts.blobs_mounted++;
    } else if (outcome == BLOB_COPIED) {
        ctx->repo_counts.blobs_copied++;
        ctx->repo_counts.bytes_copied += b->size;
        human(bytes, sizeof(bytes), b->size);
        fprintf(stderr, "berth import: %s: blob %s copied (%s)\n", ctx->repo, b->digest.str, bytes);
    }
    pthread_mutex_unlock(&ctx->mu);
}

/* A worker: takes the next blob of the repository until none is left. */
static void *blob_worker(void *arg)
{
    import_ctx *ctx = arg;
    for (;;) {
        size_t i;
        pthread_mutex_lock(&ctx->mu);
        i = ctx->next_blob++;
        pthread_mutex_unlock(&ctx->mu);
        if (i >= ctx->nblobs) {
            return NULL;
        }
        count_blob(ctx, &ctx->blobs[i], copy_blob(ctx, &ctx->blobs[i]));
    }
}

/*
 * The blobs of one repository, `jobs` at a time (a blob is a few round trips to each engine:
 * latency, not bandwidth, bounds small ones). Digests are distinct within a repository, so
 * workers never race on one; a blob another repository shares was stored by an earlier one,
 * so it is mounted.
 */
static void copy_blobs(import_ctx *ctx)
{
    pthread_t threads[JOBS_MAX];
    size_t started = 0, want = ctx->jobs < ctx->nblobs ? ctx->jobs : ctx->nblobs;

    ctx->next_blob = 0;
    for (size_t k = 1; k < want; k++) {
        if (pthread_create(&threads[started], NULL, blob_worker, ctx) == 0) {
            started++;
        }
    }
    blob_worker(ctx);
    for (size_t k = 0; k < started; k++) {
        pthread_join(threads[k], NULL);
    }
}

/* ---- manifests ------------------------------------------------------------------------ */

static int add_manifest(const berth_meta_manifest *m, void *payload)
{
    import_ctx *ctx = payload;
    mf_entry *e;

    if (ctx->nmf == ctx->capmf) {
        size_t cap = ctx->capmf ? ctx->capmf * 2 : 64;
        mf_entry *v = realloc(ctx->mf, cap * sizeof(*v));
        if (!v) {
            ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        ctx->mf = v;
        ctx->capmf = cap;
    }
    e = &ctx->mf[ctx->nmf];
    memset(e, 0, sizeof(*e));
    e->digest = m->digest;
    if (m->nchildren) {
        e->children = malloc(m->nchildren * sizeof(*e->children));
        if (!e->children) {
            ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            return 1;
        }
        memcpy(e->children, m->children, m->nchildren * sizeof(*e->children));
        e->nchildren = m->nchildren;
    }
    ctx->nmf++;
    return 0;
}

static int cmp_mf(const void *a, const void *b)
{
    return strcmp(((const mf_entry *)a)->digest.str, ((const mf_entry *)b)->digest.str);
}

static mf_entry *find_mf(import_ctx *ctx, const berth_digest *d)
{
    mf_entry key;
    if (!ctx->nmf) {
        return NULL;
    }
    memset(&key, 0, sizeof(key));
    key.digest = *d;
    return bsearch(&key, ctx->mf, ctx->nmf, sizeof(*ctx->mf), cmp_mf);
}

static void mf_dispose(import_ctx *ctx)
{
    for (size_t i = 0; i < ctx->nmf; i++) {
        free(ctx->mf[i].children);
    }
    ctx->nmf = 0;
}

/* A manifest by digest, after the children of the source that it needs. */
static int copy_manifest(import_ctx *ctx, mf_entry *e)
{
    const berth_stored_manifest *m = NULL;
    berth_put_result res;
    int rc;

    if (e->state == MF_DONE || e->state == MF_FAILED || e->state == MF_BUSY) {
        /* BUSY: a cycle, impossible by digest; the put below reports the absent child */
        return e->state == MF_DONE ? 0 : -1;
    }
    e->state = MF_BUSY;
    ctx->repo_counts.manifests++;
    for (size_t i = 0; i < e->nchildren; i++) {
        mf_entry *child = find_mf(ctx, &e->children[i]);
        if (child) {
            copy_manifest(ctx, child); /* a failed child is reported with the index below */
        }
    }
    if (berth_store_manifest_get(&m, ctx->dst, ctx->repo, e->digest.str) == 0) {
        berth_manifest_release(m);
        e->state = MF_DONE;
        return 0;
    }
    if (berth_store_manifest_get(&m, ctx->src, ctx->repo, e->digest.str) < 0) {
        problem(ctx, "manifest", e->digest.str, "not read");
        e->state = MF_FAILED;
        return -1;
    }
    rc = berth_store_manifest_put(&res, ctx->dst, ctx->repo, e->digest.str, m->media_type, m->data,
                                  m->len);
    berth_manifest_release(m);
    if (rc < 0) {
        problem(ctx, "manifest", e->digest.str, "not imported");
        e->state = MF_FAILED;
        return -1;
    }
    ctx->repo_counts.manifests_copied++;
    e->state = MF_DONE;
    return 0;
}

/* ---- tags ----------------------------------------------------------------------------- */

static void copy_tag(import_ctx *ctx, const char *tag)
{
    const berth_stored_manifest *m = NULL, *have = NULL;
    berth_put_result res;
    mf_entry *e;
    bool same;
    int rc;

    ctx->repo_counts.tags++;
    if (berth_store_manifest_get(&m, ctx->src, ctx->repo, tag) < 0) {
        problem(ctx, "tag", tag, "not read");
        return;
    }
    e = find_mf(ctx, &m->digest);
    if (e && e->state == MF_FAILED) {
        berth_error_set(BERTH_ENOTFOUND, "its manifest %s was not imported", m->digest.str);
        problem(ctx, "tag", tag, "not imported");
        berth_manifest_release(m);
        return;
    }
    same = berth_store_manifest_get(&have, ctx->dst, ctx->repo, tag) == 0 &&
           berth_digest_equal(&have->digest, &m->digest);
    berth_manifest_release(have);
    if (!same) {
        /* by digest, so a manifest pushed by a sha512 digest keeps it */
        rc = berth_store_manifest_put_tags(&res, ctx->dst, ctx->repo, m->digest.str, &tag, 1,
                                           m->media_type, m->data, m->len);
        if (rc < 0) {
            problem(ctx, "tag", tag, "not imported");
        } else {
            ctx->repo_counts.tags_set++;
        }
    }
    berth_manifest_release(m);
}

/* ---- repositories --------------------------------------------------------------------- */

static void add_counts(counts *to, const counts *c)
{
    to->blobs += c->blobs;
    to->blobs_present += c->blobs_present;
    to->blobs_copied += c->blobs_copied;
    to->blobs_mounted += c->blobs_mounted;
    to->bytes_copied += c->bytes_copied;
    to->manifests += c->manifests;
    to->manifests_copied += c->manifests_copied;
    to->tags += c->tags;
    to->tags_set += c->tags_set;
    to->problems += c->problems;
}

/* @return 0, or -1 when a store failed as a whole (the message is printed) */
static int import_repo(import_ctx *ctx, const char *repo, size_t at, size_t of)
{
    names tags = {NULL, 0, 0, 0};
    char bytes[32];
    bool more;
    int rc;

    ctx->repo = repo;
    memset(&ctx->repo_counts, 0, sizeof(ctx->repo_counts));
    ctx->nblobs = 0;
    ctx->rc = 0;
    rc = berth_store_blobs(ctx->src, repo, add_blob, ctx);
    if (rc < 0 || ctx->rc < 0) {
        problem(ctx, "its blobs", "", "cannot be listed");
        goto out;
    }
    copy_blobs(ctx);
    rc = berth_store_manifests(ctx->src, repo, add_manifest, ctx);
    if ((rc < 0 && rc != BERTH_ENOTFOUND) || ctx->rc < 0) {
        problem(ctx, "its manifests", "", "cannot be listed");
        goto out;
    }
    qsort(ctx->mf, ctx->nmf, sizeof(*ctx->mf), cmp_mf);
    for (size_t i = 0; i < ctx->nmf; i++) {
        copy_manifest(ctx, &ctx->mf[i]);
    }
    rc = berth_store_tags(ctx->src, repo, NULL, 0, add_name, &tags, &more);
    if ((rc < 0 && rc != BERTH_ENOTFOUND) || tags.rc < 0) {
        problem(ctx, "its tags", "", "cannot be listed");
        goto out;
    }
    for (size_t i = 0; i < tags.n; i++) {
        copy_tag(ctx, tags.v[i]);
    }
out:
    human(bytes, sizeof(bytes), ctx->repo_counts.bytes_copied);
    fprintf(stderr,
            "berth import: [%zu/%zu] %s: %llu blobs (%llu copied, %s; %llu mounted), "
            "%llu manifests (%llu new), %llu tags (%llu set)%s\n",
            at, of, repo, (unsigned long long)ctx->repo_counts.blobs,
            (unsigned long long)ctx->repo_counts.blobs_copied, bytes,
            (unsigned long long)ctx->repo_counts.blobs_mounted,
            (unsigned long long)ctx->repo_counts.manifests,
            (unsigned long long)ctx->repo_counts.manifests_copied,
            (unsigned long long)ctx->repo_counts.tags,
            (unsigned long long)ctx->repo_counts.tags_set,
            ctx->repo_counts.problems ? "; with problems" : "");
    add_counts(&ctx->total, &ctx->repo_counts);
    mf_dispose(ctx);
    names_dispose(&tags);
    ctx->repo = NULL;
    return 0;
}

/* ---- the command ---------------------------------------------------------------------- */

/*
 * The target: the configuration's storage, refused when it is the fs root `root` itself.
 * `*cfg_out` outlives the store (which keeps pointers into it: sparse_repositories).
 */
static int open_target(berth_store **out, berth_config **cfg_out, const char *path,
                       const char *root)
{
    berth_store_options opts;
    berth_config *cfg = NULL;
    char *a = NULL, *b = NULL;
    int rc = 0;

    if (berth_config_new(&cfg) < 0 || berth_config_load_file(cfg, path) < 0 ||
        berth_config_apply_env(cfg, NULL) < 0 || berth_config_validate(cfg) < 0) {
        fprintf(stderr, "berth import: %s: %s\n", path, berth_error_last());
        rc = 2;
        goto out;
    }
    if (!cfg->storage.s3.bucket) {
        a = realpath(root, NULL);
        b = realpath(cfg->root, NULL);
        if (a && b && strcmp(a, b) == 0) {
            fprintf(stderr, "berth import: the configuration's storage is the fs root being "
                            "imported; name S3 + PostgreSQL or another root\n");
            rc = 2;
            goto out;
        }
    }
    berth_store_options_init(&opts);
    opts.sparse_repositories = cfg->sparse_manifests;
    /* every manifest the source holds is kept, whatever limits.manifest_size says */
    opts.manifest_max = SIZE_MAX;
    if (berth_store_open_config(out, cfg, &opts) < 0) {
        fprintf(stderr, "berth import: the target storage: %s\n", berth_error_last());
        rc = 1;
    }
out:
    free(a);
    free(b);
    *cfg_out = cfg;
    return rc;
}

int cmd_import(int argc, char **argv)
{
    const char *root = NULL, *config = NULL;
    size_t jobs = JOBS_DEFAULT;
    berth_store_options opts;
    import_ctx ctx;
    names repos = {NULL, 0, 0, 0};
    berth_config *cfg = NULL;
    struct timespec t0, t1;
    char bytes[32];
    bool more;
    int rc = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--jobs") == 0 && i + 1 < argc) {
            uint64_t n = 0;
            i++;
            if (berth_parse_u64(&n, argv[i], strlen(argv[i]), JOBS_MAX) < 0 || n < 1) {
                fprintf(stderr, "berth import: --jobs takes 1 to %d\n", JOBS_MAX);
                return 2;
            }
            jobs = (size_t)n;
        } else {
            fprintf(stderr, "berth import: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!root || !config) {
        usage(stderr);
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    memset(&ctx, 0, sizeof(ctx));
    ctx.jobs = jobs;
    pthread_mutex_init(&ctx.mu, NULL);
    berth_store_options_init(&opts);
    opts.read_only = true;
    opts.lock = false;
    if (berth_store_open(&ctx.src, root, &opts) < 0) {
        fprintf(stderr, "berth import: %s: %s\n", root, berth_error_last());
        return 1;
    }
    if ((rc = open_target(&ctx.dst, &cfg, config, root)) != 0) {
        goto out;
    }
    if (berth_store_catalog(ctx.src, NULL, 0, add_name, &repos, &more) < 0 || repos.rc < 0) {
        fprintf(stderr, "berth import: the catalog of %s: %s\n", root, berth_error_last());
        rc = 1;
        goto out;
    }
    fprintf(stderr, "berth import: %zu repositories\n", repos.n);
    for (size_t i = 0; i < repos.n; i++) {
        import_repo(&ctx, repos.v[i], i + 1, repos.n);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    human(bytes, sizeof(bytes), ctx.total.bytes_copied);
    printf("imported %zu repositories in %.2f s: %llu blobs (%llu copied, %s; %llu mounted; "
           "%llu there already), %llu manifests (%llu new), %llu tags (%llu set); "
           "%llu problems\n",
           repos.n, (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
           (unsigned long long)ctx.total.blobs, (unsigned long long)ctx.total.blobs_copied, bytes,
           (unsigned long long)ctx.total.blobs_mounted, (unsigned long long)ctx.total.blobs_present,
           (unsigned long long)ctx.total.manifests, (unsigned long long)ctx.total.manifests_copied,
           (unsigned long long)ctx.total.tags, (unsigned long long)ctx.total.tags_set,
           (unsigned long long)ctx.total.problems);
    rc = ctx.total.problems ? 1 : 0;
out:
    names_dispose(&repos);
    free(ctx.mf);
    free(ctx.blobs);
    berth_store_free(ctx.dst);
    berth_store_free(ctx.src);
    berth_config_free(cfg);
    pthread_mutex_destroy(&ctx.mu);
    return rc;
}
