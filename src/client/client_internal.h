/* SPDX-License-Identifier: Apache-2.0 */
/* Internal interfaces of the client layer: the manifest walker, the OCI layout end, and the
 * cross-repository mount used by the copy engine. */
#ifndef BERTH_CLIENT_INTERNAL_H
#define BERTH_CLIENT_INTERNAL_H

#include <berth/buf.h>
#include <berth/client.h>
#include <berth/digest.h>

#include <pthread.h>

/* ---- documents (doc.c) ---- */

/** One descriptor a manifest-like document references, with its platform when it has one. */
typedef struct berth__doc_ref {
    char *media_type;
    berth_digest digest;
    int64_t size;
    char *os, *arch, *variant; /* NULL when the descriptor has no platform */
} berth__doc_ref;

typedef struct berth__doc {
    bool is_index;
    char *media_type;     /* effective: mediaType member, else Content-Type, else by shape */
    berth__doc_ref *refs; /* index: manifests; image: config then layers */
    size_t nrefs;
    bool has_subject;
    berth_digest subject;
} berth__doc;

/**
 * Read and validate a manifest, index, Docker manifest or manifest list (through
 * berth_document_inspect()) and keep what the copy engine needs.
 * @param out  filled; the caller frees it with berth__doc_dispose()
 * @return 0, BERTH_EINVALID (message names the field), BERTH_EUNSUPPORTED, BERTH_ENOMEM
 */
int berth__doc_parse(berth__doc *out, const char *content_type, const char *data, size_t len);

/** Free what a parsed document holds and zero it. */
void berth__doc_dispose(berth__doc *d);

/** True when the ref's platform matches "os/arch[/variant]" (no variant given: any variant). */
bool berth__doc_ref_matches(const berth__doc_ref *r, const char *platform);

/* ---- OCI image layout (layout.c) ---- */

/**
 * Make sure `path` is an OCI layout: with `create`, make the directory, `oci-layout`,
 * `index.json` and `blobs/` when missing. @return 0, BERTH_ENOTFOUND (not a layout), BERTH_EIO
 */
int berth__layout_open(const char *path, bool create);

/** Append `path/blobs/<alg>/<hex>` to `out`. @return 0 or BERTH_ENOMEM */
int berth__layout_blob_path(berth_buf *out, const char *path, const berth_digest *d);

/** 0 when the blob file exists, BERTH_ENOTFOUND otherwise. */
int berth__layout_has_blob(const char *path, const berth_digest *d);

/**
 * Find the manifest a tag names in index.json (with `tag` NULL: the only entry), and read its
 * bytes, verified against the entry's digest and size.
 * @param media_type  receives the entry's mediaType (free())
 * @return 0, BERTH_ENOTFOUND, BERTH_EINVALID, BERTH_EMISMATCH, BERTH_EIO
 */
int berth__layout_get_manifest(const char *path, const char *tag, berth_buf *body,
                               char **media_type, berth_digest *digest_out);

/** Read a blob of the layout into `body`, verified. @return 0, BERTH_ENOTFOUND, ... */
int berth__layout_read_blob(const char *path, const berth_digest *d, berth_buf *body);

/**
 * Store the file at `src` as a blob: copied to a temp file in the layout while hashed, checked
 * against `d` and `size`, fsynced and renamed into place. @return 0, BERTH_EMISMATCH, BERTH_EIO
 */
int berth__layout_put_blob_file(const char *path, const berth_digest *d, int64_t size,
                                const char *src);

/** Store bytes as a blob (verified), as berth__layout_put_blob_file(). */
int berth__layout_put_blob_mem(const char *path, const berth_digest *d, const void *data,
                               size_t len);

/**
 * Add to index.json a descriptor of the manifest (`media_type`, `d`, `size`), named `tag`
 * (org.opencontainers.image.ref.name) when not NULL, replacing an entry with the same name;
 * written to a temp file, fsynced and renamed. @return 0, BERTH_EIO, BERTH_EINVALID
 */
int berth__layout_set_ref(const char *path, const char *media_type, const berth_digest *d,
                          uint64_t size, const char *tag);

/**
 * The referrers of `subject` in the layout at `path`: the manifests listed in index.json
 * whose subject it is, as an OCI index (appended to `body`) like the referrers API gives.
 * @return 0, BERTH_EINVALID (index.json), BERTH_EIO, BERTH_ENOMEM
 */
int berth__layout_referrers(const char *path, const berth_digest *subject, berth_buf *body);

/* ---- registry extras (client.c) ---- */

/**
 * Upload progress (defined in copy.c): the transport calls it on the pushing thread as it
 * reads the file of a blob it uploads, with how far into the blob it has read; the copy
 * engine shows it as the progress of the blob that thread pushes (none: nothing happens).
 */
void berth__upload_progress(uint64_t offset);

/**
 * Try a cross-repository mount of `d` from `from` into `repo`.
 * @return 0 when mounted; BERTH_ENOTFOUND when the registry did not mount it (the upload
 *         session it opened instead is abandoned); another code on failure
 */
/**
 * A file being written by one thread while another reads it: the writer publishes how many
 * bytes are in the file (berth__growing_advance) and then its verdict (berth__growing_end); a
 * reader waits for bytes it needs, and gives up when the writer failed.
 */
typedef struct berth__growing {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint64_t avail; /* bytes written so far */
    int state;      /* 0 writing, 1 complete and verified, < 0 failed (a berth error code) */
} berth__growing;

void berth__growing_init(berth__growing *g);
void berth__growing_dispose(berth__growing *g);
void berth__growing_advance(berth__growing *g, uint64_t avail);
void berth__growing_end(berth__growing *g, int state);
/** Wait until `need` bytes are written or the writer ended; returns the bytes available (all
 * of `need` unless the writer failed, then 0). */
uint64_t berth__growing_wait(berth__growing *g, uint64_t need);
/** Wait for the writer's verdict: 1 verified, < 0 failed. */
int berth__growing_verdict(berth__growing *g);

/**
 * Push a blob from a file that another thread is still writing (`grow`): one upload session,
 * the bytes in one streamed PATCH as they arrive, then the closing PUT only once the writer
 * says they verified. @return as berth_client_push_blob_file(); the writer's error when it
 * failed
 */
int berth__client_push_blob_growing(berth_client *c, const char *registry, const char *repo,
                                    const berth_digest *digest, uint64_t size, int fd,
                                    berth__growing *grow);

/* ---- per-registry TLS settings and registries.conf (tls.c) ---- */

/** What a certs.d directory (or --cert-dir) gives a registry's connections. */
typedef struct berth__tls {
    char *ca_pem; /* the system's CAs followed by the directory's *.crt; NULL: none there */
    size_t ca_len;
    char *cert, *key; /* paths of the first *.cert and its *.key; NULL: none */
    char *dir;        /* the directory read */
} berth__tls;

/**
 * Read a containers-certs.d directory: *.crt are CAs (added to the system's), X.cert with
 * X.key a client certificate (the first pair by name; one without the other is an error).
 * @return 0; BERTH_ENOTFOUND (no such directory); BERTH_EINVALID (a lone .cert or .key);
 *         BERTH_EIO; BERTH_ENOMEM. The caller frees `t` with berth__tls_dispose().
 */
int berth__tls_load_dir(berth__tls *t, const char *dir);

/** Free what a berth__tls holds and zero it. */
void berth__tls_dispose(berth__tls *t);

/**
 * Find the certs.d directory of `registry`: BASE/REGISTRY for the first BASE where it exists,
 * BASEs from $BERTH_CERTS_D (colon-separated) or else ${XDG_CONFIG_HOME:-~/.config}/containers/
 * certs.d, /etc/containers/certs.d, /etc/docker/certs.d. @param out receives the path
 * (replaced) @return 0, BERTH_ENOTFOUND, BERTH_ENOMEM
 */
int berth__certs_d_find(berth_buf *out, const char *registry);

/**
 * Whether the registries.conf at `path` marks `registry` insecure: a `[[registry]]` table whose
 * `prefix` (else `location`) names it (host[:port], "*.domain" wildcards, a namespace after
 * '/' ignored) with `insecure = true`, or the v1 `[registries.insecure] registries = [...]`.
 * @return 0 (answer in *out), BERTH_ENOTFOUND (no such file)
 */
int berth__registries_conf_insecure(bool *out, const char *path, const char *registry);

/** berth__registries_conf_insecure() of the registries.conf podman reads:
 * $CONTAINERS_REGISTRIES_CONF, else ${XDG_CONFIG_HOME:-~/.config}/containers/registries.conf
 * when it exists, else /etc/containers/registries.conf. False when none says so. */
bool berth__registry_insecure(const char *registry);

int berth__client_mount(berth_client *c, const char *registry, const char *repo, const char *from,
                        const berth_digest *d);

/* What a JSON value is, for a message: "an array", "a number", "a string", ... (auth.c). */
struct json_t;
const char *berth__json_kind(const struct json_t *v);

#endif
