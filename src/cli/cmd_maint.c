/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's maintenance commands, run on a store directory: gc (garbage collection and
 * retention), fsck (verification and repair) and du (space per repository). gc and fsck
 * --repair take the store's lock, so they refuse to run beside a `berth serve` on the same
 * root: a running server collects garbage itself (berth serve --gc-interval). du and fsck
 * without --repair open the store read-only: they write nothing, so they are safe beside a
 * live server.
 */
#define _GNU_SOURCE /* nftw */
#include "cli/cli.h"

#include <berth/buf.h>
#include <berth/config.h>
#include <berth/errors.h>
#include <berth/store.h>

#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * Is `root` a berth store (a directory with _berth/ in it)? Else say so and return 2: a
 * command that reads or collects a store creates nothing where there is none (a mistyped
 * --root, or no --root in the wrong directory).
 */
static int check_store_dir(const char *cmd, const char *root)
{
    struct stat st;
    char internal[4096];

    if (stat(root, &st) != 0) {
        fprintf(stderr, "berth %s: not a berth store: %s (%s)\n", cmd, root,
                errno == ENOENT ? "no such directory" : strerror(errno));
        return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "berth %s: not a berth store: %s (not a directory)\n", cmd, root);
        return 2;
    }
    snprintf(internal, sizeof(internal), "%s/_berth", root);
    if (stat(internal, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr,
                "berth %s: not a berth store: %s (no _berth directory; berth serve --root "
                "creates a store)\n",
                cmd, root);
        return 2;
    }
    return 0;
}

/*
 * Open the store for writing (holding its lock) or read-only (no lock, no writes); an upload
 * TTL of 0 keeps the default (1 hour).
 */
static int open_store_ttl(berth_store **out, const char *root, bool write, int64_t upload_ttl)
{
    berth_store_options opts;
    berth_store_options_init(&opts);
    opts.lock = write;
    opts.read_only = !write;
    if (upload_ttl > 0) {
        opts.upload_ttl_seconds = upload_ttl < UINT32_MAX ? (unsigned)upload_ttl : UINT32_MAX;
    }
    if (berth_store_open(out, root, &opts) < 0) {
        fprintf(stderr, "berth: %s: %s\n", root, berth_error_last());
        return 1;
    }
    return 0;
}

static int open_store(berth_store **out, const char *root, bool write)
{
    return open_store_ttl(out, root, write, 0);
}

char *cli_root_missing(const char *root)
{
    struct stat st;
    size_t len = strlen(root);
    char *p, *missing = NULL;

    if (stat(root, &st) == 0) {
        /* an existing directory: the store is its _berth */
        berth_buf internal = BERTH_BUF_INIT;
        if (S_ISDIR(st.st_mode) && berth_buf_printf(&internal, "%s/_berth", root) == 0 &&
            stat(internal.ptr, &st) != 0 && errno == ENOENT) {
            return berth_buf_detach(&internal);
        }
        berth_buf_dispose(&internal);
        return NULL;
    }
    if (errno != ENOENT || !(p = strdup(root))) {
        return NULL;
    }
    while (len > 1 && p[len - 1] == '/') {
        p[--len] = '\0';
    }
    for (;;) {
        char *slash;
        free(missing);
        if (!(missing = strdup(p))) {
            break;
        }
        slash = strrchr(p, '/');
        if (!slash || slash == p) {
            break;
        }
        *slash = '\0';
        if (stat(p, &st) == 0) {
            break;
        }
    }
    free(p);
    return missing;
}

/* Anything but directories and the lock file: content, which is not removed. */
static int find_content(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    const char *name = path + ftw->base;
    (void)st;
    return flag == FTW_D || flag == FTW_DP || (flag == FTW_F && strcmp(name, "lock") == 0) ? 0 : 1;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

void cli_root_remove(const char *dir)
{
    /* only an empty store: another process may have filled one at the same path meanwhile */
    if (nftw(dir, find_content, 16, FTW_PHYS) == 0) {
        nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    }
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

static void gc_report(const char *kind, const char *repo, const char *what, uint64_t size,
                      void *payload)
{
    char sz[32];
    bool dry = *(bool *)payload;
    human(sz, sizeof(sz), size);
    if (strcmp(kind, "orphan") == 0) {
        /* bytes no metadata knew: recorded now, removed by a run after the grace period */
        printf("%s orphan   %s  %s\n", dry ? "would record" : "recorded", what, sz);
        return;
    }
    printf("%s %-8s %s%s%s%s%s\n", dry ? "would remove" : "removed", kind, repo ? repo : "",
           repo ? (strcmp(kind, "tag") == 0 ? ":" : "@") : "", what, size ? "  " : "",
           size ? sz : "");
}

static void gc_usage(FILE *f)
{
    fprintf(f, "usage: berth gc [--root DIR | --config FILE] [--dry-run] [--grace DURATION]\n"
               "                [--repos GLOB] [--tags GLOB] [--keep-last N]\n"
               "                [--max-tag-age DURATION] [--max-untagged-age DURATION]\n"
               "                [--untagged-delay DURATION] [--upload-ttl DURATION]\n\n"
               "Remove what no tag needs: untagged content a retention rule drops, referrers\n"
               "whose subject is gone, blobs no kept manifest references, stale upload sessions.\n"
               "Content linked within the grace period is kept (a running server's pushes in\n"
               "flight); gc holds the store's lock, so no push is in flight and the default\n"
               "grace is 0: deleted content is freed at once. --grace keeps younger content.\n"
               "The retention flags make one rule: among the tags matching --tags (default all)\n"
               "of the repositories matching --repos (default all), keep the --keep-last N most\n"
               "recently pushed, drop those older than --max-tag-age, and drop untagged manifests\n"
               "older than --max-untagged-age. Whatever the rules, an untagged manifest nothing\n"
               "needs (no tag, no tagged index, no kept subject) goes once older than\n"
               "--untagged-delay (default 1d, as the server's gc.untagged_delay, or the\n"
               "configuration's with --config; 0 keeps them; --max-untagged-age alone replaces\n"
               "it).\n"
               "Upload sessions idle longer than --upload-ttl\n"
               "(default 1h) are removed. Durations: 90s, 30m, 12h, 7d.\n"
               "Run it on a stopped server's root; a running server uses --gc-interval.\n"
               "A DIR that is not a berth store is refused (exit 2); nothing is created.\n"
               "--dry-run opens the store read-only: it changes nothing, takes no lock and works\n"
               "on a read-only copy.\n"
               "With --config FILE it collects the storage the configuration names; over S3 +\n"
               "PostgreSQL that is safe beside running servers, and the grace defaults to 1h.\n");
}

/*
 * The store of `berth gc --config FILE`: what the configuration names (over S3 + PostgreSQL,
 * beside running servers: the protocol is safe with concurrent pushes), with its limits.
 */
static int open_store_config(berth_store **out, const char *cmd, const char *path,
                             int64_t upload_ttl, bool write, bool *shared, uint64_t *untagged_delay)
{
    berth_store_options opts;
    berth_config *cfg = NULL;
    int rc;

    if (berth_config_new(&cfg) < 0 || berth_config_load_file(cfg, path) < 0 ||
        berth_config_apply_env(cfg, NULL) < 0 || berth_config_validate(cfg) < 0) {
        fprintf(stderr, "berth %s: %s: %s\n", cmd, path, berth_error_last());
        berth_config_free(cfg);
        return 2;
    }
    *shared = cfg->storage.s3.bucket != NULL;
    if (untagged_delay) {
        *untagged_delay = cfg->gc.untagged_delay;
    }
    if (!*shared && (rc = check_store_dir(cmd, cfg->root)) != 0) {
        berth_config_free(cfg);
        return rc;
    }
    berth_store_options_init(&opts);
    opts.lock = write;
    opts.read_only = !write;
    opts.sparse_repositories = cfg->sparse_manifests;
    opts.upload_ttl_seconds = upload_ttl > 0
                                  ? (unsigned)(upload_ttl < UINT32_MAX ? upload_ttl : UINT32_MAX)
                                  : (unsigned)cfg->limits.upload_idle_ttl;
    rc = berth_store_open_config(out, cfg, &opts);
    if (rc < 0) {
        fprintf(stderr, "berth %s: %s\n", cmd, berth_error_last());
    }
    berth_config_free(cfg);
    return rc < 0 ? 1 : 0;
}

int cmd_gc(int argc, char **argv)
{
    const char *root = "./data", *config = NULL;
    bool grace_given = false, shared = false;
    berth_retention_rule rules[2] = {{NULL, NULL, 0, 0, 0}, {"*", "*", 0, 0, 0}};
    berth_retention_rule *rule = &rules[0];
    int64_t untagged_delay = 86400; /* the server's gc.untagged_delay default */
    bool untagged_delay_given = false, max_untagged_given = false;
    berth_gc_options opts;
    berth_gc_stats stats;
    berth_store *s = NULL;
    bool have_rule = false;
    int64_t upload_ttl = 0;
    char freed[32];
    int rc;

    berth_gc_options_init(&opts);
    /* offline, holding the lock: no push can be in flight, nothing needs a grace period */
    opts.grace_seconds = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        uint64_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            gc_usage(stdout);
            return 0;
        } else if (strcmp(a, "--dry-run") == 0) {
            opts.dry_run = true;
            continue;
        } else if (!v) {
            gc_usage(stderr);
            return 2;
        }
        i++;
        berth_error_clear();
        if (strcmp(a, "--root") == 0) {
            root = v;
        } else if (strcmp(a, "--config") == 0) {
            config = v;
        } else if (strcmp(a, "--grace") == 0 && cli_parse_duration(&opts.grace_seconds, v) == 0) {
            grace_given = true;
        } else if (strcmp(a, "--upload-ttl") == 0 && cli_parse_duration(&upload_ttl, v) == 0 &&
                   upload_ttl > 0) {
        } else if (strcmp(a, "--repos") == 0) {
            rule->repositories = v;
        } else if (strcmp(a, "--tags") == 0) {
            rule->tags = v;
        } else if (strcmp(a, "--keep-last") == 0 &&
                   berth_parse_u64(&n, v, strlen(v), 1000000) == 0) {
            rule->keep_last = (unsigned)n;
            have_rule = true;
        } else if (strcmp(a, "--max-tag-age") == 0 &&
                   cli_parse_duration(&rule->max_tag_age, v) == 0) {
            have_rule = true;
        } else if (strcmp(a, "--max-untagged-age") == 0 &&
                   cli_parse_duration(&rule->max_untagged_age, v) == 0) {
            have_rule = true;
            max_untagged_given = true;
        } else if (strcmp(a, "--untagged-delay") == 0 &&
                   cli_parse_duration(&untagged_delay, v) == 0) {
            untagged_delay_given = true;
        } else {
            /* the grammar's reason when a value was refused ("invalid duration ...") */
            fprintf(stderr, "berth gc: bad option or value: %s %s%s%s\n", a, v,
                    berth_error_last()[0] ? ": " : "", berth_error_last());
            return 2;
        }
    }
    /* a dry run opens the store read-only: it writes nothing (not even the staging cleanup an
     * open with the lock does), and works on a read-only copy */
    if (config) {
        uint64_t delay = 0;
        if ((rc = open_store_config(&s, "gc", config, upload_ttl, !opts.dry_run, &shared,
                                    &delay)) != 0) {
            return rc;
        }
        if (!untagged_delay_given) {
            untagged_delay = delay > INT64_MAX ? INT64_MAX : (int64_t)delay;
        }
    }
    if (max_untagged_given && !untagged_delay_given) {
        untagged_delay = 0; /* the user's --max-untagged-age is the whole rule */
    }
    if (config) {
        if (shared && !grace_given) {
            /* servers may be pushing beside it: their content in flight needs the grace */
            opts.grace_seconds = 3600;
        }
    } else if ((rc = check_store_dir("gc", root)) != 0) {
        return rc;
    } else if (open_store_ttl(&s, root, !opts.dry_run, upload_ttl) != 0) {
        return 1;
    }
    /* the user's rule first, then the untagged delay over every repository (as the server's
       gc section does: a rule's max_untagged_age can shorten the delay, never lengthen it) */
    rules[1].max_untagged_age = untagged_delay;
    if (have_rule) {
        opts.rules = rules;
        opts.nrules = untagged_delay > 0 ? 2 : 1;
    } else if (untagged_delay > 0) {
        opts.rules = &rules[1];
        opts.nrules = 1;
    }
    opts.report = gc_report;
    opts.payload = &opts.dry_run;
    rc = berth_store_gc(s, &opts, &stats);
    if (rc < 0) {
        fprintf(stderr, "berth gc: %s\n", berth_error_last());
    } else {
        human(freed, sizeof(freed), stats.bytes_freed);
        printf("%s: %llu tags, %llu manifests, %llu repository blobs, %llu pool blobs (%s), "
               "%llu upload sessions\n",
               opts.dry_run ? "would remove" : "removed", (unsigned long long)stats.tags_removed,
               (unsigned long long)stats.manifests_removed, (unsigned long long)stats.links_removed,
               (unsigned long long)stats.blobs_removed, freed,
               (unsigned long long)stats.uploads_removed);
        if (stats.orphans_found) {
            printf("%s %llu orphaned blobs (stored, never recorded): a run after the grace "
                   "period removes them\n",
                   opts.dry_run ? "would record" : "recorded",
                   (unsigned long long)stats.orphans_found);
        }
    }
    berth_store_free(s);
    return rc < 0 ? 1 : 0;
}

static void fsck_report(berth_fsck_kind kind, const char *repo, const char *digest,
                        const char *detail, void *payload)
{
    static const char *names[] = {"", "corrupt", "missing", "bad-manifest", "bad-index"};
    (void)payload;
    printf("%-12s %s%s%s: %s\n", names[kind], repo ? repo : "(pool)", digest ? "@" : "",
           digest ? digest : "", detail);
}

int cmd_fsck(int argc, char **argv)
{
    const char *root = "./data", *config = NULL;
    berth_fsck_stats stats;
    berth_store *s = NULL;
    bool repair = false, shared = false;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: berth fsck [--root DIR | --config FILE] [--repair]\n\n"
                   "Verify every blob's bytes against its digest, every index.json and every\n"
                   "manifest's references. With --repair (fs stores only), corrupt blobs are\n"
                   "moved to _berth/corrupt/ and the manifests that needed them are reported.\n"
                   "With --config FILE it checks the storage the configuration names (over S3 +\n"
                   "PostgreSQL: every object of the bucket read through its digest, every\n"
                   "repository's links and manifests), beside running servers.\n"
                   "Without --repair nothing is written: a read-only copy of a store will do.\n"
                   "Exit 0: no problems; 1: problems found, or the check failed; 2: a usage\n"
                   "error, an invalid configuration, or DIR is not a berth store.\n");
            return 0;
        } else if (strcmp(argv[i], "--repair") == 0) {
            repair = true;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else {
            fprintf(stderr, "berth fsck: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (config) {
        if ((rc = open_store_config(&s, "fsck", config, 0, repair, &shared, NULL)) != 0) {
            return rc;
        }
        if (repair && shared) {
            fprintf(stderr, "berth fsck: --repair works on an fs store only\n");
            berth_store_free(s);
            return 2;
        }
    } else if ((rc = check_store_dir("fsck", root)) != 0) {
        return rc;
    } else if (open_store(&s, root, repair) != 0) {
        return 1;
    }
    rc = berth_store_fsck(s, repair, fsck_report, NULL, &stats);
    berth_store_free(s);
    if (rc < 0) {
        fprintf(stderr, "berth fsck: %s\n", berth_error_last());
        return 1;
    }
    printf("checked %llu blobs (%llu bytes), %llu manifests: %llu problems%s\n",
           (unsigned long long)stats.blobs_checked, (unsigned long long)stats.bytes_checked,
           (unsigned long long)stats.manifests_checked, (unsigned long long)stats.problems,
           repair || shared ? "" : (stats.problems ? " (--repair moves corrupt blobs aside)" : ""));
    if (repair && stats.repaired) {
        printf("moved %llu corrupt blobs aside\n", (unsigned long long)stats.repaired);
    }
    return stats.problems ? 1 : 0;
}

/* berth du's groups: the pull-through cache per upstream prefix, and pushed content. */
typedef struct du_group {
    const char *prefix; /* NULL: pushed (outside every prefix) */
    uint64_t exclusive, shared, blobs, repos;
} du_group;

typedef struct du_groups {
    du_group *g; /* ngroups upstreams, then pushed */
    size_t n;
} du_groups;

static void du_report(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                      void *payload)
{
    du_groups *groups = payload;
    char e[32], sh[32];
    du_group *g = NULL;

    human(e, sizeof(e), exclusive);
    human(sh, sizeof(sh), shared);
    printf("%12s %12s %8llu  %s\n", e, sh, (unsigned long long)blobs, repo);
    for (size_t i = 0; groups && i + 1 < groups->n && !g; i++) {
        size_t n = strlen(groups->g[i].prefix);
        if (strncmp(repo, groups->g[i].prefix, n) == 0 && repo[n] == '/') {
            g = &groups->g[i];
        }
    }
    if (groups && groups->n) {
        g = g ? g : &groups->g[groups->n - 1];
        g->exclusive += exclusive;
        g->shared += shared;
        g->blobs += blobs;
        g->repos++;
    }
}

/* The prefixes of the configuration's proxy.upstreams, plus one group for pushed content
 * (none without upstreams). */
static int du_groups_load(du_groups *out, const char *path)
{
    berth_config *cfg = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (berth_config_new(&cfg) < 0 || berth_config_load_file(cfg, path) < 0 ||
        berth_config_apply_env(cfg, NULL) < 0) {
        rc = -1;
        goto done;
    }
    if (cfg->proxy.upstreams_count) {
        if (!(out->g = calloc(cfg->proxy.upstreams_count + 1, sizeof(*out->g)))) {
            rc = -1;
            goto done;
        }
        out->n = cfg->proxy.upstreams_count + 1;
        for (size_t i = 0; i < cfg->proxy.upstreams_count; i++) {
            if (!(out->g[i].prefix = strdup(cfg->proxy.upstreams[i].prefix))) {
                rc = -1;
            }
        }
    }
done:
    berth_config_free(cfg);
    return rc;
}

static void du_groups_print(du_groups *groups)
{
    char e[32], sh[32];

    if (!groups->n) {
        return;
    }
    printf("\n%12s %12s %8s  %s\n", "EXCLUSIVE", "SHARED", "BLOBS", "CONTENT (REPOSITORIES)");
    for (size_t i = 0; i < groups->n; i++) {
        du_group *g = &groups->g[i];
        human(e, sizeof(e), g->exclusive);
        human(sh, sizeof(sh), g->shared);
        if (g->prefix) {
            printf("%12s %12s %8llu  cache %s/ (%llu)\n", e, sh, (unsigned long long)g->blobs,
                   g->prefix, (unsigned long long)g->repos);
        } else {
            printf("%12s %12s %8llu  pushed (%llu)\n", e, sh, (unsigned long long)g->blobs,
                   (unsigned long long)g->repos);
        }
    }
}

static void du_groups_dispose(du_groups *groups)
{
    for (size_t i = 0; i < groups->n; i++) {
        free((char *)(uintptr_t)groups->g[i].prefix);
    }
    free(groups->g);
}

int cmd_du(int argc, char **argv)
{
    const char *root = "./data", *config = NULL;
    berth_store *s = NULL;
    uint64_t total = 0, sessions = 0, session_bytes = 0;
    du_groups groups = {NULL, 0};
    bool shared = false;
    char t[32];
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: berth du [--root DIR | --config FILE]\n\n"
                   "Space used per repository: bytes it alone holds (exclusive) and bytes it\n"
                   "shares with other repositories; the total counts every blob once; then\n"
                   "the upload sessions in progress (count and bytes). With --config FILE it\n"
                   "reports the storage the configuration names (over S3 + PostgreSQL: from the\n"
                   "database, blobs and manifests each repository holds; the bucket is not\n"
                   "listed). When the configuration has proxy.upstreams, a last table sums\n"
                   "the repositories of the pull-through cache per upstream prefix apart from\n"
                   "pushed content (the repositories outside every prefix).\n"
                   "Nothing is written: a read-only copy of a store will do.\n"
                   "Exit 0: ok; 1: the store could not be read; 2: a usage error, an invalid\n"
                   "configuration, or DIR is not a berth store.\n");
            return 0;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else {
            fprintf(stderr, "berth du: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (config) {
        if ((rc = open_store_config(&s, "du", config, 0, false, &shared, NULL)) != 0) {
            return rc;
        }
    } else if ((rc = check_store_dir("du", root)) != 0) {
        return rc;
    } else if (open_store(&s, root, false) != 0) {
        return 1;
    }
    if (config && du_groups_load(&groups, config) < 0) {
        fprintf(stderr, "berth du: %s: %s\n", config, berth_error_last());
        berth_store_free(s);
        du_groups_dispose(&groups);
        return 2;
    }
    printf("%12s %12s %8s  %s\n", "EXCLUSIVE", "SHARED", "BLOBS", "REPOSITORY");
    rc = berth_store_du(s, du_report, &groups, &total);
    if (rc == 0) {
        rc = berth_store_uploads_usage(s, &sessions, &session_bytes);
    }
    berth_store_free(s);
    if (rc < 0) {
        fprintf(stderr, "berth du: %s\n", berth_error_last());
        du_groups_dispose(&groups);
        return 1;
    }
    human(t, sizeof(t), total);
    printf("total %s\n", t);
    human(t, sizeof(t), session_bytes);
    printf("%llu upload sessions, %s\n", (unsigned long long)sessions, t);
    du_groups_print(&groups);
    du_groups_dispose(&groups);
    return 0;
}
