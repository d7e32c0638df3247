/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The berth program's side of berth-remote.so (remote.h): the functions of the registry
 * client, the copy engine, the s3 and postgres backends and berth/db.h, each handing its call
 * to the module's function of the same name. The module is loaded (dlopen) by the first call
 * that needs it: a client command, `berth db`, or `berth serve` whose configuration names S3,
 * PostgreSQL or proxy upstreams. A server without them never loads it, and so maps none of
 * libcurl, libpq and the libraries they pull in (krb5, LDAP, ssh2, nghttp2, ...): about 2 MB of
 * its resident memory at rest.
 *
 * The module is BERTH_MODULE_DIR/berth-remote.so, or beside the program when BERTH_MODULE_DIR
 * is empty (the build directory's layout), and only one built from the same sources as the
 * program (remote.h: its build). When it cannot be loaded, the functions that create
 * something (a client, a backend, a copy, a database call) fail with BERTH_EUNSUPPORTED and a
 * message that says why; the others can only be reached through what those created, except
 * the per-thread and per-process queries, which answer as a client that did nothing.
 *
 * This file is linked into the program only; libberth.a holds the real functions.
 */
#include "remote/remote.h"
#include "remote_build.h"

#include <berth/errors.h>

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#ifndef BERTH_MODULE_DIR
#define BERTH_MODULE_DIR ""
#endif

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static _Atomic(const berth__remote_ops *) loaded; /* NULL until loaded, or for good on failure */
static char load_error[PATH_MAX + 256];           /* why it could not be loaded */
static volatile sig_atomic_t interrupt_pending;   /* berth_client_interrupt() before the load */

/* The module's path: BERTH_MODULE_DIR, else the program's own directory. */
static int module_path(char *out, size_t size)
{
    char exe[PATH_MAX];
    ssize_t n;
    char *slash;

    if (BERTH_MODULE_DIR[0]) {
        n = snprintf(out, size, "%s/%s", BERTH_MODULE_DIR, BERTH__REMOTE_FILE);
        return n > 0 && (size_t)n < size ? 0 : -1;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0) {
        return -1;
    }
    exe[n] = '\0';
    if (!(slash = strrchr(exe, '/'))) {
        return -1;
    }
    *slash = '\0';
    n = snprintf(out, size, "%s/%s", exe, BERTH__REMOTE_FILE);
    return n > 0 && (size_t)n < size ? 0 : -1;
}

static void load(void)
{
    char path[PATH_MAX];
    const berth__remote_ops *ops;
    void *h;

    if (module_path(path, sizeof(path)) < 0) {
        snprintf(load_error, sizeof(load_error), "cannot tell where %s is", BERTH__REMOTE_FILE);
        return;
    }
    if (!(h = dlopen(path, RTLD_NOW | RTLD_LOCAL))) {
        snprintf(load_error, sizeof(load_error), "%s", dlerror());
        return;
    }
    ops = dlsym(h, "berth__remote");
    if (!ops || ops->version != BERTH__REMOTE_VERSION || ops->size != sizeof(*ops) || !ops->build ||
        strcmp(ops->build, BERTH__REMOTE_BUILD) != 0) {
        snprintf(load_error, sizeof(load_error), "%s is from another build of berth", path);
        dlclose(h);
        return;
    }
    atomic_store(&loaded, ops);
    if (interrupt_pending) {
        ops->client_interrupt();
    }
}

/* The module's table, loading it on first use; NULL with the error set when it cannot be. */
static const berth__remote_ops *remote(void)
{
    const berth__remote_ops *ops;

    pthread_once(&load_once, load);
    if (!(ops = atomic_load(&loaded))) {
        berth_error_set(BERTH_EUNSUPPORTED,
                        "the registry client, S3 and PostgreSQL need %s, which did not load: %s",
                        BERTH__REMOTE_FILE, load_error);
    }
    return ops;
}

/* The table, for calls that only a loaded module can lead to (a client exists). */
static const berth__remote_ops *have(void)
{
    return atomic_load(&loaded);
}

/* ---- berth/client.h ---- */

int berth_client_new(berth_client **out, const berth_client_options *opts)
{
    const berth__remote_ops *ops = remote();

    if (!ops) {
        *out = NULL;
        return berth_error_last_code();
    }
    return ops->client_new(out, opts);
}

void berth_client_free(berth_client *c)
{
    if (c) {
        have()->client_free(c);
    }
}

void berth_client_interrupt(void)
{
    const berth__remote_ops *ops = atomic_load(&loaded); /* async-signal-safe: no load here */

    interrupt_pending = 1;
    if (ops) {
        ops->client_interrupt();
    }
}

bool berth_client_interrupted(void)
{
    const berth__remote_ops *ops = have();

    return ops ? ops->client_interrupted() : interrupt_pending != 0;
}

uint64_t berth_client_retry_after(void)
{
    const berth__remote_ops *ops = have();

    return ops ? ops->client_retry_after() : 0;
}

int64_t berth_client_content_length(void)
{
    const berth__remote_ops *ops = have();

    return ops ? ops->client_content_length() : -1;
}

const char *berth_client_transport_version(void)
{
    const berth__remote_ops *ops = remote();

    return ops ? ops->client_transport_version() : NULL;
}

int berth_client_ping(berth_client *c, const char *registry)
{
    return have()->client_ping(c, registry);
}

int berth_client_get_manifest(berth_client *c, const char *registry, const char *repo,
                              const char *ref, berth_buf *body, char **content_type,
                              berth_digest *digest_out)
{
    return have()->client_get_manifest(c, registry, repo, ref, body, content_type, digest_out);
}

int berth_client_head_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, berth_digest *digest_out, uint64_t *size_out)
{
    return have()->client_head_manifest(c, registry, repo, ref, digest_out, size_out);
}

int berth_client_get_blob(berth_client *c, const char *registry, const char *repo,
                          const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                          void *payload)
{
    return have()->client_get_blob(c, registry, repo, digest, size, sink, payload);
}

int berth_client_get_blob_unhashed(berth_client *c, const char *registry, const char *repo,
                                   const berth_digest *digest, int64_t size,
                                   berth_client_sink_cb sink, void *payload)
{
    return have()->client_get_blob_unhashed(c, registry, repo, digest, size, sink, payload);
}

int berth_client_head_blob(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, uint64_t *size_out)
{
    return have()->client_head_blob(c, registry, repo, digest, size_out);
}

int berth_client_push_blob_file(berth_client *c, const char *registry, const char *repo,
                                const berth_digest *digest, uint64_t size, const char *path,
                                const char *mount_from)
{
    return have()->client_push_blob_file(c, registry, repo, digest, size, path, mount_from);
}

int berth_client_push_blob_mem(berth_client *c, const char *registry, const char *repo,
                               const berth_digest *digest, const void *data, size_t len)
{
    return have()->client_push_blob_mem(c, registry, repo, digest, data, len);
}

int berth_client_push_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, const char *media_type, const void *data,
                               size_t len)
{
    return have()->client_push_manifest(c, registry, repo, ref, media_type, data, len);
}

int berth_client_list_tags(berth_client *c, const char *registry, const char *repo,
                           berth_client_name_cb cb, void *payload)
{
    return have()->client_list_tags(c, registry, repo, cb, payload);
}

int berth_client_catalog(berth_client *c, const char *registry, berth_client_name_cb cb,
                         void *payload)
{
    return have()->client_catalog(c, registry, cb, payload);
}

int berth_client_delete_manifest(berth_client *c, const char *registry, const char *repo,
                                 const char *ref)
{
    return have()->client_delete_manifest(c, registry, repo, ref);
}

int berth_client_referrers(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, berth_buf *body)
{
    return have()->client_referrers(c, registry, repo, digest, body);
}

int berth_copy(berth_client *c, const char *src, const char *dst, const berth_copy_options *opts,
               berth_digest *digest_out)
{
    const berth__remote_ops *ops = remote();

    return ops ? ops->copy(c, src, dst, opts, digest_out) : berth_error_last_code();
}

/* ---- the backends over other servers ---- */

int berth_s3_blob_backend_new(berth_blob_backend **out, const berth_s3_options *opts)
{
    const berth__remote_ops *ops = remote();

    if (!ops) {
        *out = NULL;
        return berth_error_last_code();
    }
    return ops->s3_blob_backend_new(out, opts);
}

int berth_pg_meta_backend_new(berth_meta_backend **out, const berth_pg_options *opts)
{
    const berth__remote_ops *ops = remote();

    if (!ops) {
        *out = NULL;
        return berth_error_last_code();
    }
    return ops->pg_meta_backend_new(out, opts);
}

int berth_db_schema_latest(void)
{
    const berth__remote_ops *ops = remote();

    return ops ? ops->db_schema_latest() : berth_error_last_code();
}

int berth_db_schema_version(int *version_out, const char *conninfo)
{
    const berth__remote_ops *ops = remote();

    return ops ? ops->db_schema_version(version_out, conninfo) : berth_error_last_code();
}

int berth_db_migrate(int *from_out, int *to_out, const char *conninfo)
{
    const berth__remote_ops *ops = remote();

    return ops ? ops->db_migrate(from_out, to_out, conninfo) : berth_error_last_code();
}
