/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's maintenance commands, run on a store directory: gc (garbage collection and
 * retention), fsck (verification and repair) and du (space per repository). gc and fsck
 * --repair take the store's lock, so they refuse to run beside a `berth serve` on the same
 * root: a running server collects garbage itself (berth serve --gc-interval). du and fsck
 * without --repair open the store read-only: they write nothing, so they are safe beside a
 * live server.
 */
#include "cli/cli.h"

#include <berth/config.h>
#include <berth/errors.h>
#include <berth/store.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    printf("%s %-8s %s%s%s%s%s\n", dry ? "would remove" : "removed", kind, repo ? repo : "",
           repo ? (strcmp(kind, "tag") == 0 ? ":" : "@") : "", what, size ? "  " : "",
           size ? sz : "");
}

static void gc_usage(FILE *f)
{
    fprintf(f, "usage: berth gc [--root DIR | --config FILE] [--dry-run] [--grace DURATION]\n"
               "                [--repos GLOB] [--tags GLOB] [--keep-last N]\n"
               "                [--max-tag-age DURATION] [--max-untagged-age DURATION]\n"
               "                [--upload-ttl DURATION]\n\n"
               "Remove what no tag needs: untagged content a retention rule drops, referrers\n"
               "whose subject is gone, blobs no kept manifest references, stale upload sessions.\n"
               "Content linked within the grace period is kept (a running server's pushes in\n"
               "flight); gc holds the store's lock, so no push is in flight and the default\n"
               "grace is 0: deleted content is freed at once. --grace keeps younger content.\n"
               "The retention flags make one rule: among the tags matching --tags (default all)\n"
               "of the repositories matching --repos (default all), keep the --keep-last N most\n"
               "recently pushed, drop those older than --max-tag-age, and drop untagged manifests\n"
               "older than --max-untagged-age. Upload sessions idle longer than --upload-ttl\n"
               "(default 1h) are removed. Durations: 90s, 30m, 12h, 7d.\n"
               "Run it on a stopped server's root; a running server uses --gc-interval.\n"
               "With --config FILE it collects the storage the configuration names; over S3 +\n"
               "PostgreSQL that is safe beside running servers, and the grace defaults to 1h.\n");
}

/*
 * The store of `berth gc --config FILE`: what the configuration names (over S3 + PostgreSQL,
 * beside running servers: the protocol is safe with concurrent pushes), with its limits.
 */
static int open_store_config(berth_store **out, const char *path, int64_t upload_ttl, bool *shared)
{
    berth_store_options opts;
    berth_config *cfg = NULL;
    int rc;

    if (berth_config_new(&cfg) < 0 || berth_config_load_file(cfg, path) < 0 ||
        berth_config_apply_env(cfg, NULL) < 0 || berth_config_validate(cfg) < 0) {
        fprintf(stderr, "berth gc: %s: %s\n", path, berth_error_last());
        berth_config_free(cfg);
        return 2;
    }
    berth_store_options_init(&opts);
    opts.sparse_repositories = cfg->sparse_manifests;
    opts.upload_ttl_seconds = upload_ttl > 0
                                  ? (unsigned)(upload_ttl < UINT32_MAX ? upload_ttl : UINT32_MAX)
                                  : (unsigned)cfg->limits.upload_idle_ttl;
    *shared = cfg->storage.s3.bucket != NULL;
    rc = berth_store_open_config(out, cfg, &opts);
    if (rc < 0) {
        fprintf(stderr, "berth gc: %s\n", berth_error_last());
    }
    berth_config_free(cfg);
    return rc < 0 ? 1 : 0;
}

int cmd_gc(int argc, char **argv)
{
    const char *root = "./data", *config = NULL;
    bool grace_given = false, shared = false;
    berth_retention_rule rule = {NULL, NULL, 0, 0, 0};
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
            rule.repositories = v;
        } else if (strcmp(a, "--tags") == 0) {
            rule.tags = v;
        } else if (strcmp(a, "--keep-last") == 0 &&
                   berth_parse_u64(&n, v, strlen(v), 1000000) == 0) {
            rule.keep_last = (unsigned)n;
            have_rule = true;
        } else if (strcmp(a, "--max-tag-age") == 0 &&
                   cli_parse_duration(&rule.max_tag_age, v) == 0) {
            have_rule = true;
        } else if (strcmp(a, "--max-untagged-age") == 0 &&
                   cli_parse_duration(&rule.max_untagged_age, v) == 0) {
            have_rule = true;
        } else {
            /* the grammar's reason when a value was refused ("invalid duration ...") */
            fprintf(stderr, "berth gc: bad option or value: %s %s%s%s\n", a, v,
                    berth_error_last()[0] ? ": " : "", berth_error_last());
            return 2;
        }
    }
    if (have_rule) {
        opts.rules = &rule;
        opts.nrules = 1;
    }
    if (config) {
        if ((rc = open_store_config(&s, config, upload_ttl, &shared)) != 0) {
            return rc;
        }
        if (shared && !grace_given) {
            /* servers may be pushing beside it: their content in flight needs the grace */
            opts.grace_seconds = 3600;
        }
    } else if (open_store_ttl(&s, root, true, upload_ttl) != 0) {
        return 1;
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
    const char *root = "./data";
    berth_fsck_stats stats;
    berth_store *s = NULL;
    bool repair = false;
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: berth fsck [--root DIR] [--repair]\n\n"
                   "Verify every blob's digest and size, every index.json and every manifest's\n"
                   "references. With --repair, corrupt blobs are moved to _berth/corrupt/ and\n"
                   "the manifests that needed them are reported. Exit 1 when problems remain.\n");
            return 0;
        } else if (strcmp(argv[i], "--repair") == 0) {
            repair = true;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else {
            fprintf(stderr, "berth fsck: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (open_store(&s, root, repair) != 0) {
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
           repair ? "" : (stats.problems ? " (--repair moves corrupt blobs aside)" : ""));
    if (repair && stats.repaired) {
        printf("moved %llu corrupt blobs aside\n", (unsigned long long)stats.repaired);
    }
    return stats.problems ? 1 : 0;
}

static void du_report(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                      void *payload)
{
    char e[32], sh[32];
    (void)payload;
    human(e, sizeof(e), exclusive);
    human(sh, sizeof(sh), shared);
    printf("%12s %12s %8llu  %s\n", e, sh, (unsigned long long)blobs, repo);
}

int cmd_du(int argc, char **argv)
{
    const char *root = "./data";
    berth_store *s = NULL;
    uint64_t total = 0, sessions = 0, session_bytes = 0;
    char t[32];
    int rc;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: berth du [--root DIR]\n\n"
                   "Space used per repository: bytes it alone holds (exclusive) and bytes it\n"
                   "shares with other repositories; the total counts every blob once; then\n"
                   "the upload sessions in progress (count and bytes).\n");
            return 0;
        } else if (strcmp(argv[i], "--root") == 0 && i + 1 < argc) {
            root = argv[++i];
        } else {
            fprintf(stderr, "berth du: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (open_store(&s, root, false) != 0) {
        return 1;
    }
    printf("%12s %12s %8s  %s\n", "EXCLUSIVE", "SHARED", "BLOBS", "REPOSITORY");
    rc = berth_store_du(s, du_report, NULL, &total);
    if (rc == 0) {
        rc = berth_store_uploads_usage(s, &sessions, &session_bytes);
    }
    berth_store_free(s);
    if (rc < 0) {
        fprintf(stderr, "berth du: %s\n", berth_error_last());
        return 1;
    }
    human(t, sizeof(t), total);
    printf("total %s\n", t);
    human(t, sizeof(t), session_bytes);
    printf("%llu upload sessions, %s\n", (unsigned long long)sessions, t);
    return 0;
}
