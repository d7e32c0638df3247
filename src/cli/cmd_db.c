/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth db: the metadata database's schema. `berth db version` shows the schema version of the
 * database and the one this berth knows; `berth db upgrade` applies the newer migrations (in
 * one transaction, under the lock `berth serve` takes to check the schema, so it is safe beside
 * running replicas, which refuse an older schema until it is done).
 */
#include "cli/cli.h"

#include <berth/config.h>
#include <berth/db.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void db_usage(FILE *f)
{
    fprintf(f, "usage: berth db upgrade [--config FILE] [--database-url URL]\n"
               "       berth db version [--config FILE] [--database-url URL]\n\n"
               "The PostgreSQL metadata database's schema. `upgrade` applies the migrations\n"
               "newer than the database's schema (all in one transaction: all or none) and\n"
               "prints the versions before and after; `version` prints the database's schema\n"
               "version and the one this berth needs. The database is `database.url` of the\n"
               "configuration FILE; --database-url or the environment variable\n"
               "BERTH_DATABASE_URL give it instead (a libpq connection string or URI; the\n"
               "password from PGPASSWORD or ~/.pgpass).\n");
}

/* The database URL of the loaded configuration, NULL when it has none. */
static const char *config_database_url(const berth_config *cfg)
{
    return cfg->database.url;
}

int cmd_db(int argc, char **argv)
{
    const char *sub = NULL, *config_path = NULL, *url = NULL;
    berth_config *cfg = NULL;
    int ret = 1;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            db_usage(stdout);
            return 0;
        } else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(a, "--database-url") == 0 && i + 1 < argc) {
            url = argv[++i];
        } else if (!sub && (strcmp(a, "upgrade") == 0 || strcmp(a, "version") == 0)) {
            sub = a;
        } else {
            db_usage(stderr);
            return 2;
        }
    }
    if (!sub) {
        db_usage(stderr);
        return 2;
    }
    if (config_path) {
        if (berth_config_new(&cfg) < 0 || berth_config_load_file(cfg, config_path) < 0 ||
            berth_config_apply_env(cfg, NULL) < 0) {
            fprintf(stderr, "berth db: %s\n", berth_error_last());
            berth_config_free(cfg);
            return 2;
        }
    }
    if (!url) {
        url = getenv("BERTH_DATABASE_URL");
    }
    if ((!url || !url[0]) && cfg) {
        url = config_database_url(cfg);
    }
    if (!url || !url[0]) {
        fprintf(stderr, "berth db: no database: set database.url in the configuration, "
                        "--database-url or BERTH_DATABASE_URL\n");
        berth_config_free(cfg);
        return 2;
    }

    int latest = berth_db_schema_latest();
    if (strcmp(sub, "version") == 0) {
        int v = 0;
        if (berth_db_schema_version(&v, url) < 0) {
            fprintf(stderr, "berth db version: %s\n", berth_error_last());
            goto out;
        }
        printf("database schema version %d; this berth needs %d", v, latest);
        if (v == 0) {
            printf(" (an empty database: `berth serve` or `berth db upgrade` creates it)\n");
        } else if (v < latest) {
            printf(" (older: run `berth db upgrade`)\n");
        } else if (v > latest) {
            printf(" (newer: this berth is older than the database)\n");
        } else {
            printf(" (up to date)\n");
        }
        ret = 0;
    } else {
        int from = 0, to = 0;
        if (berth_db_migrate(&from, &to, url) < 0) {
            fprintf(stderr, "berth db upgrade: %s\n", berth_error_last());
            goto out;
        }
        if (from == to) {
            printf("database schema version %d: up to date, nothing to do\n", to);
        } else {
            printf("database schema upgraded from version %d to %d\n", from, to);
        }
        ret = 0;
    }
out:
    berth_config_free(cfg);
    return ret;
}
