/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The table of berth-remote.so: the code that talks to other servers (the registry client and
 * the copy engine over libcurl, the s3 blob backend over libcurl, the postgres metadata backend
 * over libpq), which the berth program loads only when a command or the configuration needs it
 * (loader.c), so that a plain `berth serve` maps neither libcurl nor libpq nor what they pull
 * in. libberth.a holds the same code linked in the usual way; only the program splits it.
 *
 * The module exports one symbol, `berth__remote` (module.c), this table. The program checks
 * its version, its size and its build (the fingerprint of the sources and build options both
 * were built from, BERTH__REMOTE_BUILD of the generated remote_build.h) before using it: a
 * module from another build is refused, as the structures the two pass each other and the
 * functions the module calls back may differ.
 */
#ifndef BERTH_REMOTE_REMOTE_H
#define BERTH_REMOTE_REMOTE_H

#include "backend/postgres/pg.h"
#include "backend/s3/s3.h"

#include <berth/client.h>
#include <berth/db.h>

/** The file name of the module, looked for in BERTH_MODULE_DIR or beside the program. */
#define BERTH__REMOTE_FILE "berth-remote.so"

/** Bumped whenever a member of berth__remote_ops changes. */
#define BERTH__REMOTE_VERSION 2u

/** What berth-remote.so gives the program: its functions of the same names. */
typedef struct berth__remote_ops {
    unsigned version;  /* BERTH__REMOTE_VERSION */
    size_t size;       /* sizeof(berth__remote_ops) */
    const char *build; /* BERTH__REMOTE_BUILD */

    /* berth/client.h: the registry client (client/client.c) and the copy engine (copy.c) */
    int (*client_new)(berth_client **out, const berth_client_options *opts);
    void (*client_free)(berth_client *c);
    void (*client_interrupt)(void);
    bool (*client_interrupted)(void);
    uint64_t (*client_retry_after)(void);
    int64_t (*client_content_length)(void);
    const char *(*client_transport_version)(void);
    int (*client_ping)(berth_client *c, const char *registry);
    int (*client_get_manifest)(berth_client *c, const char *registry, const char *repo,
                               const char *ref, berth_buf *body, char **content_type,
                               berth_digest *digest_out);
    int (*client_head_manifest)(berth_client *c, const char *registry, const char *repo,
                                const char *ref, berth_digest *digest_out, uint64_t *size_out);
    int (*client_get_blob)(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                           void *payload);
    int (*client_get_blob_unhashed)(berth_client *c, const char *registry, const char *repo,
                                    const berth_digest *digest, int64_t size,
                                    berth_client_sink_cb sink, void *payload);
    int (*client_head_blob)(berth_client *c, const char *registry, const char *repo,
                            const berth_digest *digest, uint64_t *size_out);
    int (*client_push_blob_file)(berth_client *c, const char *registry, const char *repo,
                                 const berth_digest *digest, uint64_t size, const char *path,
                                 const char *mount_from);
    int (*client_push_blob_mem)(berth_client *c, const char *registry, const char *repo,
                                const berth_digest *digest, const void *data, size_t len);
    int (*client_push_manifest)(berth_client *c, const char *registry, const char *repo,
                                const char *ref, const char *media_type, const void *data,
                                size_t len);
    int (*client_list_tags)(berth_client *c, const char *registry, const char *repo,
                            berth_client_name_cb cb, void *payload);
    int (*client_catalog)(berth_client *c, const char *registry, berth_client_name_cb cb,
                          void *payload);
    int (*client_delete_manifest)(berth_client *c, const char *registry, const char *repo,
                                  const char *ref);
    int (*client_referrers)(berth_client *c, const char *registry, const char *repo,
                            const berth_digest *digest, berth_buf *body);
    int (*copy)(berth_client *c, const char *src, const char *dst, const berth_copy_options *opts,
                berth_digest *digest_out);

    /* backend/s3/s3.h */
    int (*s3_blob_backend_new)(berth_blob_backend **out, const berth_s3_options *opts);

    /* backend/postgres/pg.h and berth/db.h */
    int (*pg_meta_backend_new)(berth_meta_backend **out, const berth_pg_options *opts);
    int (*db_schema_latest)(void);
    int (*db_schema_version)(int *version_out, const char *conninfo);
    int (*db_migrate)(int *from_out, int *to_out, const char *conninfo);
} berth__remote_ops;

#endif
