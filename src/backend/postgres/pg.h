/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/pg.h: the PostgreSQL metadata backend (berth/sys/meta_backend.h over libpq)
 * and its schema migrations.
 *
 * The schema is a list of versioned migrations compiled into berth; the table
 * berth_schema_migrations records the versions applied. A backend opened on an empty database
 * creates the schema (every migration, in one transaction, under an advisory lock, so that N
 * replicas starting at once create it once); it refuses a database whose schema is older
 * (`berth db upgrade` applies the newer migrations) or newer than this berth knows.
 *
 * Connection strings are libpq's (a "key=value" string or a postgresql:// URI); passwords come
 * from PGPASSWORD or ~/.pgpass as libpq reads them. No error message holds the connection
 * string. A database that cannot be reached, or does not answer in time, gives BERTH_ENETWORK.
 */
#ifndef BERTH_BACKEND_POSTGRES_PG_H
#define BERTH_BACKEND_POSTGRES_PG_H

#include <berth/db.h>
#include <berth/sys/meta_backend.h>

/** Settings of a PostgreSQL metadata backend; 0 (or NULL) picks the default. */
typedef struct berth_pg_options {
    const char *conninfo;          /* libpq connection string or URI; required */
    unsigned pool_size;            /* connections kept for requests (default 8); upload
                                      sessions held and gc claims take their own */
    unsigned connect_timeout;      /* seconds to establish a connection (default 5) */
    unsigned statement_timeout_ms; /* longest statement, lock waits included (default 15000) */
} berth_pg_options;

/**
 * Open a PostgreSQL metadata backend: connect, check the schema version (creating the schema in
 * an empty database), and keep a pool of connections (thread-safe).
 * @param out   receives the backend; free it with (*out)->free(*out)
 * @param opts  settings; opts->conninfo is copied
 * @return 0; BERTH_ENETWORK (the database cannot be reached); BERTH_EUNSUPPORTED (the schema
 *         is older than this berth: run `berth db upgrade --config FILE`; or newer: this berth
 *         is older than the database); BERTH_EINVALID (no conninfo); BERTH_EIO; BERTH_ENOMEM
 */
int berth_pg_meta_backend_new(berth_meta_backend **out, const berth_pg_options *opts);

/* The schema's version and migrations: berth_db_schema_latest(), berth_db_schema_version() and
 * berth_db_migrate() of berth/db.h. */

/**
 * For tests: apply migrations up to `target` only (an older schema to refuse and upgrade).
 * @return as berth_db_migrate()
 */
int berth__pg_migrate_to(const char *conninfo, int target, int *from, int *to);

#endif
