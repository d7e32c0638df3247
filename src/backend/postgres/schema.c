/* SPDX-License-Identifier: Apache-2.0 */
/*
 * backend/postgres/schema.c: the schema as versioned migrations compiled into berth. Tables
 * follow GitLab's container registry (repositories, blobs, repository_blobs, manifests,
 * manifest_references, tags), without its partitioning by namespace and without review-queue
 * tables: a blob's link count and last touch live on its row, and a gc claim is a row lock
 * held in an open transaction (FOR UPDATE SKIP LOCKED), which also makes blob_touch and
 * blob_link of that digest wait for the claim to end. Text that is ordered or paged on is
 * COLLATE "C" (byte order), so that keyset paging walks an index.
 *
 * Migrations are only ever appended: a released step is never edited.
 */
#include "backend/postgres/pg_internal.h"

#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct migration {
    int version;
    const char *what;
    const char *sql;
} migration;

static const migration migrations[] = {
    {1, "repositories, blobs, links, manifests, references, tags",
     "CREATE TABLE repositories (\n"
     "    id bigserial PRIMARY KEY,\n"
     "    name text COLLATE \"C\" NOT NULL UNIQUE,\n"
     "    created bigint NOT NULL\n"
     ");\n"
     /* every blob berth knows, linked or not; gc looks for nlinks = 0 and an old touch */
     "CREATE TABLE blobs (\n"
     "    digest text COLLATE \"C\" PRIMARY KEY,\n"
     "    size bigint NOT NULL,\n"
     "    touched bigint NOT NULL,\n"
     "    nlinks bigint NOT NULL DEFAULT 0\n"
     ");\n"
     "CREATE INDEX blobs_unlinked ON blobs (digest) WHERE nlinks = 0;\n"
     "CREATE TABLE repository_blobs (\n"
     "    repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,\n"
     "    digest text COLLATE \"C\" NOT NULL REFERENCES blobs (digest),\n"
     "    linked bigint NOT NULL,\n"
     "    PRIMARY KEY (repository_id, digest)\n"
     ");\n"
     "CREATE INDEX repository_blobs_digest ON repository_blobs (digest);\n"
     /* the link count, kept by the database on the blob's row: a link changes that row, so
        that a gc claim (FOR UPDATE on it) and a link exclude each other */
     "CREATE FUNCTION berth_count_links() RETURNS trigger LANGUAGE plpgsql AS $$\n"
     "BEGIN\n"
     "    IF TG_OP = 'INSERT' THEN\n"
     "        UPDATE blobs SET nlinks = nlinks + 1, touched = GREATEST(touched, NEW.linked)\n"
     "            WHERE digest = NEW.digest;\n"
     "    ELSE\n"
     "        UPDATE blobs SET nlinks = nlinks - 1 WHERE digest = OLD.digest;\n"
     "    END IF;\n"
     "    RETURN NULL;\n"
     "END $$;\n"
     "CREATE TRIGGER repository_blobs_count AFTER INSERT OR DELETE ON repository_blobs\n"
     "    FOR EACH ROW EXECUTE FUNCTION berth_count_links();\n"
     "CREATE TABLE manifests (\n"
     "    id bigserial PRIMARY KEY,\n"
     "    repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,\n"
     "    digest text COLLATE \"C\" NOT NULL,\n"
     "    media_type text NOT NULL,\n"
     "    artifact_type text,\n"
     "    subject text COLLATE \"C\",\n"
     "    size bigint NOT NULL,\n"
     "    data bytea NOT NULL,\n"
     "    pushed bigint NOT NULL,\n"
     "    UNIQUE (repository_id, digest)\n"
     ");\n"
     "CREATE INDEX manifests_subject ON manifests (repository_id, subject, digest)\n"
     "    WHERE subject IS NOT NULL;\n"
     /* GitLab's layers + configuration: the blobs a manifest references, in order */
     "CREATE TABLE manifest_blobs (\n"
     "    manifest_id bigint NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,\n"
     "    position integer NOT NULL,\n"
     "    repository_id bigint NOT NULL,\n"
     "    digest text COLLATE \"C\" NOT NULL,\n"
     "    PRIMARY KEY (manifest_id, position)\n"
     ");\n"
     "CREATE INDEX manifest_blobs_digest ON manifest_blobs (repository_id, digest);\n"
     /* an index's children, by digest (a sparse index may name absent ones) */
     "CREATE TABLE manifest_references (\n"
     "    parent_id bigint NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,\n"
     "    position integer NOT NULL,\n"
     "    repository_id bigint NOT NULL,\n"
     "    child_digest text COLLATE \"C\" NOT NULL,\n"
     "    PRIMARY KEY (parent_id, position)\n"
     ");\n"
     "CREATE INDEX manifest_references_child ON manifest_references (repository_id, "
     "child_digest);\n"
     "CREATE TABLE tags (\n"
     "    repository_id bigint NOT NULL REFERENCES repositories (id) ON DELETE CASCADE,\n"
     "    name text COLLATE \"C\" NOT NULL,\n"
     "    manifest_id bigint NOT NULL REFERENCES manifests (id) ON DELETE CASCADE,\n"
     "    pushed bigint NOT NULL,\n"
     "    PRIMARY KEY (repository_id, name)\n"
     ");\n"
     "CREATE INDEX tags_manifest ON tags (manifest_id);\n"
     /* find or create a repository without locking its row (GitLab's create-or-find) */
     "CREATE FUNCTION berth_repository_id(p_name text, p_now bigint) RETURNS bigint\n"
     "LANGUAGE plpgsql AS $$\n"
     "DECLARE r bigint;\n"
     "BEGIN\n"
     "    SELECT id INTO r FROM repositories WHERE name = p_name;\n"
     "    IF FOUND THEN RETURN r; END IF;\n"
     "    INSERT INTO repositories (name, created) VALUES (p_name, p_now)\n"
     "        ON CONFLICT (name) DO NOTHING RETURNING id INTO r;\n"
     "    IF r IS NULL THEN\n"
     "        SELECT id INTO r FROM repositories WHERE name = p_name;\n"
     "    END IF;\n"
     "    RETURN r;\n"
     "END $$;\n"},
    {2, "upload sessions",
     "CREATE TABLE uploads (\n"
     "    id text COLLATE \"C\" PRIMARY KEY,\n"
     "    repository text COLLATE \"C\" NOT NULL,\n"
     "    owner text NOT NULL,\n"
     "    size bigint NOT NULL DEFAULT 0,\n"
     "    hash_state text NOT NULL DEFAULT '',\n"
     "    backend_state text,\n"
     "    created bigint NOT NULL,\n"
     "    updated bigint NOT NULL\n"
     ");\n"
     "CREATE INDEX uploads_repository ON uploads (repository);\n"
     "CREATE INDEX uploads_owner ON uploads (owner);\n"},
};

#define NMIGRATIONS (sizeof(migrations) / sizeof(migrations[0]))

/* The key of the advisory lock every schema check and migration takes. */
#define MIGRATION_LOCK "7310594371126116401"

int berth_db_schema_latest(void)
{
    return migrations[NMIGRATIONS - 1].version;
}

/* The version recorded in the database (0 when berth's table is not there). */
static int read_version(int *out, PGconn *c)
{
    PGresult *r = NULL;
    int rc = berth__pg_exec(&r, c, "SELECT to_regclass('berth_schema_migrations') IS NOT NULL", 0,
                            NULL, 0);
    if (rc < 0) {
        return rc;
    }
    bool exists = PQgetvalue(r, 0, 0)[0] == 't';
    PQclear(r);
    *out = 0;
    if (!exists) {
        return 0;
    }
    rc = berth__pg_exec(&r, c, "SELECT coalesce(max(version), 0) FROM berth_schema_migrations", 0,
                        NULL, 0);
    if (rc < 0) {
        return rc;
    }
    *out = (int)berth__pg_int(r, 0, 0);
    PQclear(r);
    return 0;
}

/* Apply the migrations after `from` up to `target`, inside the caller's transaction. */
static int apply(PGconn *c, int from, int target)
{
    int rc = 0;
    if (from == 0) {
        rc = berth__pg_exec(NULL, c,
                            "CREATE TABLE berth_schema_migrations (\n"
                            "    version integer PRIMARY KEY,\n"
                            "    applied bigint NOT NULL\n"
                            ")",
                            0, NULL, 0);
    }
    for (size_t i = 0; rc == 0 && i < NMIGRATIONS; i++) {
        const migration *m = &migrations[i];
        if (m->version <= from || m->version > target) {
            continue;
        }
        PGresult *r = PQexec(c, m->sql); /* several statements: the simple protocol */
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            rc = berth__pg_error(c, r);
            berth_error_prefix("schema migration %d (%s): ", m->version, m->what);
        }
        PQclear(r);
        if (rc == 0) {
            char v[16];
            snprintf(v, sizeof(v), "%d", m->version);
            const char *p[] = {v};
            rc = berth__pg_exec(NULL, c,
                                "INSERT INTO berth_schema_migrations (version, applied) "
                                "VALUES ($1::integer, extract(epoch FROM now())::bigint)",
                                1, p, 0);
        }
    }
    return rc;
}

/* BEGIN and the migration lock: one process at a time checks or changes the schema. */
static int begin_locked(PGconn *c)
{
    int rc = berth__pg_exec(NULL, c, "BEGIN", 0, NULL, 0);
    if (rc == 0) {
        rc =
            berth__pg_exec(NULL, c, "SELECT pg_advisory_xact_lock(" MIGRATION_LOCK ")", 0, NULL, 0);
    }
    return rc;
}

static int finish(PGconn *c, int rc)
{
    if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) != PQTRANS_IDLE) {
        if (rc == 0) {
            return berth__pg_exec(NULL, c, "COMMIT", 0, NULL, 0);
        }
        PGresult *r = PQexec(c, "ROLLBACK");
        PQclear(r);
    }
    return rc;
}

int berth__pg_schema_open(PGconn *c)
{
    int version = 0, latest = berth_db_schema_latest();
    int rc = begin_locked(c);
    if (rc == 0) {
        rc = read_version(&version, c);
    }
    if (rc == 0 && version == 0) {
        rc = apply(c, 0, latest);
    } else if (rc == 0 && version < latest) {
        rc = berth_error_set(BERTH_EUNSUPPORTED,
                             "the metadata database schema is version %d, this berth needs %d: "
                             "run `berth db upgrade --config FILE`",
                             version, latest);
    } else if (rc == 0 && version > latest) {
        rc = berth_error_set(BERTH_EUNSUPPORTED,
                             "the metadata database schema is version %d, newer than this berth "
                             "knows (%d): this berth is older than the database; run a newer "
                             "berth",
                             version, latest);
    }
    return finish(c, rc);
}

int berth_db_schema_version(int *version_out, const char *conninfo)
{
    PGconn *c = NULL;
    berth_error_clear();
    int rc = berth__pg_connect(&c, conninfo, 5, 15000);
    if (rc == 0) {
        rc = read_version(version_out, c);
    }
    PQfinish(c);
    return rc;
}

int berth__pg_migrate_to(const char *conninfo, int target, int *from, int *to)
{
    PGconn *c = NULL;
    int version = 0;
    berth_error_clear();
    int rc = berth__pg_connect(&c, conninfo, 5, 0);
    if (rc == 0) {
        rc = begin_locked(c);
    }
    if (rc == 0) {
        rc = read_version(&version, c);
    }
    if (rc == 0 && version > berth_db_schema_latest()) {
        rc = berth_error_set(BERTH_EUNSUPPORTED,
                             "the metadata database schema is version %d, newer than this berth "
                             "knows (%d): this berth is older than the database",
                             version, berth_db_schema_latest());
    }
    if (rc == 0 && version < target) {
        rc = apply(c, version, target);
    }
    if (c) {
        rc = finish(c, rc);
    }
    PQfinish(c);
    if (rc == 0) {
        if (from) {
            *from = version;
        }
        if (to) {
            *to = version < target ? target : version;
        }
    }
    return rc;
}

int berth_db_migrate(int *from_out, int *to_out, const char *conninfo)
{
    return berth__pg_migrate_to(conninfo, berth_db_schema_latest(), from_out, to_out);
}
