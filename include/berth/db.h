/* SPDX-License-Identifier: Apache-2.0 */
/*
 * berth/db.h: the schema of the metadata database (PostgreSQL), as `berth db` and a deployment
 * tool see it. The schema is a list of versioned migrations compiled into berth; the table
 * berth_schema_migrations records those applied. `berth serve` creates the schema in an empty
 * database and refuses one older or newer than it knows; berth_db_migrate() (`berth db upgrade`)
 * applies the newer migrations.
 *
 * `conninfo` is a libpq connection string or URI; the password comes from PGPASSWORD or
 * ~/.pgpass as libpq reads them. No message holds the connection string.
 */
#ifndef BERTH_DB_H
#define BERTH_DB_H

#include "common.h"

/** The schema version this berth knows (that of its newest migration). */
int berth_db_schema_latest(void);

/**
 * The schema version of the database at `conninfo` (0: no berth schema, an empty database).
 * @param version_out  receives it
 * @return 0, BERTH_ENETWORK (unreachable), BERTH_EIO, BERTH_ENOMEM
 */
int berth_db_schema_version(int *version_out, const char *conninfo);

/**
 * Apply every migration newer than the database's schema, in one transaction (all or none)
 * under the lock `berth serve` takes to check the schema. A database already at the latest
 * version is left as it is (from == to).
 * @param from_out  receives the version before (may be NULL)
 * @param to_out    receives the version after (may be NULL)
 * @return 0; BERTH_EUNSUPPORTED (the database is newer than this berth); BERTH_ENETWORK;
 *         BERTH_EIO (a migration failed: nothing was applied)
 */
int berth_db_migrate(int *from_out, int *to_out, const char *conninfo);

#endif
