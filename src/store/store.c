/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store: the registry's rules, written once over a blob backend (bytes by digest) and a
 * metadata backend (names, manifests, links, uploads); include/berth/sys/ has both interfaces.
 *
 * What is decided here: which names and tags are valid, what a manifest is (parsed and
 * validated once, berth_document_inspect), what it must reference and how big it may be, the
 * digest the bytes have, what garbage collection keeps (gc.c), how an upload is hashed and
 * verified (upload.c). What the backends do: store, look up, and make each change atomic with
 * the check it needs (a manifest only while what it references is there), since only they
 * can do that across the processes that share them.
 *
 * berth_store_open() gives the embedded default, the fs backends over one root (an OCI image
 * layout per repository, docs/design.md); berth_store_open_backends() any other pair.
 */
#include "store/store_internal.h"

#include "backend/fs/fs.h"
#include "base/log.h"

#include <berth/document.h>
#include <berth/errors.h>
#include <berth/reference.h>

#include <fnmatch.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MIB (1024 * 1024)

void berth_store_options_init(berth_store_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->manifest_max = BERTH_MANIFEST_MAX_DEFAULT;
    opts->cache_bytes = 8 * MIB;
    opts->upload_ttl_seconds = 3600;
    opts->upload_sessions_max = 4096;
    opts->upload_sessions_per_repo = 256;
    opts->upload_sessions_per_owner = 128;
    opts->fsync = true;
    opts->lock = true;
}

static void free_backends(berth_blob_backend *blobs, berth_meta_backend *meta)
{
    if (meta) {
        meta->free(meta);
    }
    if (blobs) {
        blobs->free(blobs);
    }
}

int berth_store_open_backends(berth_store **out, berth_blob_backend *blobs,
                              berth_meta_backend *meta, const berth_store_options *opts)
{
    berth_store *s;

    berth_error_clear();
    if (!blobs || !meta || blobs->version != BERTH_BLOB_BACKEND_VERSION ||
        meta->version != BERTH_META_BACKEND_VERSION) {
        free_backends(blobs, meta);
        return berth_error_set(BERTH_EUNSUPPORTED, "a storage backend of another version");
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        free_backends(blobs, meta);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (opts) {
        s->opts = *opts;
    } else {
        berth_store_options_init(&s->opts);
    }
    if (!s->opts.manifest_max) {
        s->opts.manifest_max = BERTH_MANIFEST_MAX_DEFAULT;
    }
    if (!s->opts.cache_bytes) {
        s->opts.cache_bytes = 8 * MIB;
    }
    if (!s->opts.upload_ttl_seconds) {
        s->opts.upload_ttl_seconds = 3600;
    }
    /* the store keeps its own copy: the caller's string may go before the store */
    if (s->opts.sparse_repositories && !(s->sparse = strdup(s->opts.sparse_repositories))) {
        free(s);
        free_backends(blobs, meta);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    s->opts.sparse_repositories = s->sparse;
    s->blobs = blobs;
    s->meta = meta;
    s->opened = (int64_t)time(NULL);
    *out = s;
    return 0;
}

int berth_store_open(berth_store **out, const char *root, const berth_store_options *opts)
{
    berth_store_options defaults;
    berth_blob_backend *blobs = NULL;
    berth_meta_backend *meta = NULL;
    berth_fs_options fo;
    berth_store *s = NULL;
    int rc;

    berth_error_clear();
    if (!opts) {
        berth_store_options_init(&defaults);
        opts = &defaults;
    }
    memset(&fo, 0, sizeof(fo));
    fo.fsync = opts->fsync;
    fo.lock = opts->lock && !opts->read_only;
    fo.read_only = opts->read_only;
    fo.cache_bytes = opts->cache_bytes ? opts->cache_bytes : 8 * MIB;
    rc = berth_fs_backends_open(&blobs, &meta, root, &fo);
    if (rc < 0) {
        return rc;
    }
    rc = berth_store_open_backends(&s, blobs, meta, opts);
    if (rc < 0) {
        return rc;
    }
    if (!(s->root = strdup(root))) {
        berth_store_free(s);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (fo.lock) {
        /* only the one writer of the root reaps (a du beside a server does not) */
        rc = berth__uploads_gc(s, false, NULL);
        if (rc < 0) {
            berth_store_free(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

void berth_store_free(berth_store *s)
{
    if (!s) {
        return;
    }
    free_backends(s->blobs, s->meta);
    free(s->sparse);
    free(s->root);
    free(s);
}

int berth__store_writable(const berth_store *s)
{
    return s->opts.read_only ? berth_error_set(BERTH_EIO, "the store is open read-only") : 0;
}

/* Names reach the backends only when valid: the grammar is the distribution spec's. */
static int check_repo(const char *name)
{
    return berth_name_validate(name) < 0
               ? berth_error_set(BERTH_EINVALID, "invalid repository name")
               : 0;
}

int berth_store_ready(berth_store *s)
{
    static const char probe[] =
        "sha256:0000000000000000000000000000000000000000000000000000000000000000";
    berth_digest d;
    uint64_t size;
    int rc;

    berth_error_clear();
    rc = s->meta->repo_exists(s->meta, "berth-readiness-probe");
    if (rc >= 0 && berth_digest_parse_str(&d, probe) == 0) {
        rc = s->blobs->stat(s->blobs, &d, &size);
        rc = rc == BERTH_ENOTFOUND ? 0 : rc;
    }
    return rc < 0 ? rc : 0;
}

int berth_store_lock(berth_store *s, const char *key, unsigned wait_ms, berth_meta_lock **out)
{
    *out = NULL;
    if (!s->meta->lock_acquire) {
        return 0;
    }
    return s->meta->lock_acquire(s->meta, key, wait_ms, out);
}

void berth_store_unlock(berth_store *s, berth_meta_lock *lock)
{
    if (lock && s->meta->lock_release) {
        s->meta->lock_release(s->meta, lock);
    }
}

bool berth_store_repo_exists(berth_store *s, const char *repo)
{
    return check_repo(repo) == 0 && s->meta->repo_exists(s->meta, repo) == 1;
}

/* ---- blobs ---------------------------------------------------------------------------- */

static int blob_in_repo(berth_store *s, const char *repo, const berth_digest *digest,
                        uint64_t *size)
{
    int rc = check_repo(repo);
    if (rc == 0) {
        rc = s->meta->blob_stat(s->meta, repo, digest, size);
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo);
    }
    return rc;
}

/* A descriptor of the bytes of a blob found in `repo`. */
static int open_bytes(berth_store *s, const char *repo, const berth_digest *digest, int *fd_out,
                      uint64_t *size_out)
{
    int rc;

    if (!s->blobs->open_fd) {
        return berth_error_set(BERTH_EUNSUPPORTED, "the %s blob backend has no descriptors",
                               s->blobs->name);
    }
    rc = s->blobs->open_fd(s->blobs, digest, fd_out, size_out);
    if (rc == BERTH_ENOTFOUND) {
        /* linked but its bytes are gone: the store is damaged, not the request */
        berth__log(BERTH_LOG_ERROR, "blob %s of %s is linked but its bytes are missing",
                   digest->str, repo);
        rc = berth_error_set(BERTH_EIO, "blob %s: its bytes are missing", digest->str);
    }
    return rc;
}

/*
 * A descriptor of blob `digest` of `repo`: in one step when the metadata backend opens its
 * links (fs, where a link is the pool file), else found there and opened in the blob backend.
 */
static int open_in_repo(berth_store *s, const char *repo, const berth_digest *digest, int *fd_out,
                        uint64_t *size_out)
{
    uint64_t size;
    int rc;

    if (!s->meta->blob_open_fd) {
        rc = blob_in_repo(s, repo, digest, &size);
        return rc < 0 ? rc : open_bytes(s, repo, digest, fd_out, size_out);
    }
    if ((rc = check_repo(repo)) == 0) {
        rc = s->meta->blob_open_fd(s->meta, repo, digest, fd_out, size_out);
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str, repo);
    }
    return rc;
}

int berth_store_blob_open(berth_store *s, const char *repo, const berth_digest *digest, int *fd_out,
                          uint64_t *size_out)
{
    berth_error_clear();
    return open_in_repo(s, repo, digest, fd_out, size_out);
}

int berth_store_blob_locate(berth_store *s, const char *repo, const berth_digest *digest,
                            berth_blob_location *out)
{
    int rc;

    berth_error_clear();
    memset(out, 0, sizeof(*out));
    out->fd = -1;
    if (!s->blobs->url && s->meta->blob_open_fd) {
        return open_in_repo(s, repo, digest, &out->fd, &out->size);
    }
    if ((rc = blob_in_repo(s, repo, digest, &out->size)) < 0) {
        return rc;
    }
    if (s->blobs->url && s->blobs->url(s->blobs, digest, 900, &out->url) == 0) {
        return 0;
    }
    if (s->blobs->open_fd) {
        /* found in the repository above: only the bytes are left to open */
        return open_bytes(s, repo, digest, &out->fd, &out->size);
    }
    return 0; /* neither: stream it with berth_store_blob_read() */
}

int berth_store_blob_read(berth_store *s, const berth_digest *digest, uint64_t offset, uint64_t len,
                          berth_blob_sink sink, void *payload)
{
    return s->blobs->read(s->blobs, digest, offset, len, sink, payload);
}

int berth_store_blob_stat(berth_store *s, const char *repo, const berth_digest *digest,
                          uint64_t *size_out)
{
    berth_error_clear();
    return blob_in_repo(s, repo, digest, size_out);
}

int berth_store_blob_delete(berth_store *s, const char *repo, const berth_digest *digest)
{
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0 || (rc = check_repo(repo)) < 0) {
        return rc;
    }
    return s->meta->blob_unlink(s->meta, repo, digest, 0);
}

int berth_store_blob_mount(berth_store *s, const char *repo, const char *from,
                           const berth_digest *digest)
{
    uint64_t size;
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0 || (rc = check_repo(repo)) < 0 ||
        (from && (rc = check_repo(from)) < 0)) {
        return rc;
    }
    rc = s->meta->blob_stat(s->meta, from, digest, &size);
    if (rc == 0) {
        /* the backend links it only while it is known: a blob collected since is not found */
        rc = s->meta->blob_link(s->meta, repo, digest, size);
    }
    if (rc == BERTH_ENOTFOUND) {
        rc = berth_error_set(BERTH_ENOTFOUND, "blob %s not in %s", digest->str,
                             from ? from : "the store");
    }
    return rc;
}

typedef struct blob_adapter {
    berth_store_blob_cb cb;
    void *payload;
    int stopped; /* the callback's own non-zero return */
} blob_adapter;

static int link_to_blob(const berth_digest *digest, uint64_t size, int64_t linked, void *payload)
{
    blob_adapter *a = payload;
    (void)linked;
    a->stopped = a->cb(digest, size, a->payload);
    return a->stopped ? 1 : 0;
}

int berth_store_blobs(berth_store *s, const char *repo, berth_store_blob_cb cb, void *payload)
{
    blob_adapter a = {cb, payload, 0};
    int rc;

    berth_error_clear();
    if ((rc = check_repo(repo)) < 0) {
        return rc;
    }
    rc = s->meta->links(s->meta, repo, link_to_blob, &a);
    return a.stopped ? a.stopped : rc;
}

/* ---- manifests ------------------------------------------------------------------------ */

/* A manifest handed to a reader: the backend's loan (no copy) or its own copy of the bytes,
   ended at release. */
typedef struct stored_copy {
    berth_stored_manifest pub; /* first member */
    berth_meta_loan *loan;     /* manifest_lend() */
    berth_meta_blob_doc doc;   /* else manifest_get() */
} stored_copy;

/* The bytes of manifest `digest` of `repo` into `c`: lent by the backend when it can. */
static int fetch_manifest(stored_copy *c, berth_store *s, const char *repo,
                          const berth_digest *digest)
{
    int rc;

    if (s->meta->manifest_lend) {
        rc = s->meta->manifest_lend(s->meta, repo, digest, &c->loan);
        if (rc == 0) {
            c->pub.data = c->loan->data;
            c->pub.len = c->loan->len;
            c->pub.media_type = c->loan->media_type;
        }
        return rc;
    }
    rc = s->meta->manifest_get(s->meta, repo, digest, &c->doc);
    if (rc == 0) {
        c->pub.data = c->doc.data;
        c->pub.len = c->doc.len;
        c->pub.media_type = c->doc.media_type;
    }
    return rc;
}

static bool is_tag(const char *s)
{
    return berth_tag_validate(s) == 0;
}

int berth_store_manifest_get(const berth_stored_manifest **out, berth_store *s, const char *repo,
                             const char *reference)
{
    berth_digest digest;
    stored_copy *c;
    int rc;

    berth_error_clear();
    *out = NULL;
    if ((rc = check_repo(repo)) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no repository %s", repo);
    }
    if (strchr(reference, ':')) {
        rc = berth_digest_parse_str(&digest, reference);
    } else if (is_tag(reference) && s->meta->tag_manifest_get) {
        /* one lookup for tag and bytes (the backend's fast path) */
        if (!(c = calloc(1, sizeof(*c)))) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        rc = s->meta->tag_manifest_get(s->meta, repo, reference, &digest, &c->doc);
        if (rc < 0) {
            free(c);
            return rc == BERTH_ENOTFOUND
                       ? berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", reference, repo)
                       : rc;
        }
        c->pub.data = c->doc.data;
        c->pub.len = c->doc.len;
        c->pub.media_type = c->doc.media_type;
        goto found;
    } else if (is_tag(reference)) {
        rc = s->meta->tag_get(s->meta, repo, reference, &digest);
        if (rc == BERTH_ENOTFOUND) {
            rc = berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", reference, repo);
        }
    } else {
        rc = berth_error_set(BERTH_EINVALID, "invalid reference '%s'", reference);
    }
    if (rc < 0) {
        return rc;
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    rc = fetch_manifest(c, s, repo, &digest);
    if (rc < 0) {
        free(c);
        return rc == BERTH_ENOTFOUND
                   ? berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", digest.str, repo)
                   : rc;
    }
found:
    c->pub.digest = digest;
    *out = &c->pub;
    return 0;
}

void berth_manifest_release(const berth_stored_manifest *m)
{
    stored_copy *c = (stored_copy *)(uintptr_t)m;
    if (c) {
        if (c->loan) {
            c->loan->release(c->loan);
        }
        free(c->doc.data);
        free(c->doc.media_type);
        free(c);
    }
}

static bool exempt_layer(const char *media_type)
{
    return media_type && (strstr(media_type, ".nondistributable.") != NULL ||
                          strstr(media_type, ".foreign.") != NULL);
}

/* Does the repository accept sparse manifests (opts.sparse_repositories)? */
static bool sparse_allowed(const berth_store *s, const char *name)
{
    const char *p = s->opts.sparse_repositories;
    while (p && *p) {
        char glob[512];
        size_t len = strcspn(p, ",");
        if (len > 0 && len < sizeof(glob)) {
            memcpy(glob, p, len);
            glob[len] = '\0';
            if (fnmatch(glob, name, 0) == 0) {
                return true;
            }
        }
        p += len + (p[len] == ',');
    }
    return false;
}

int berth_store_manifest_put(berth_put_result *result, berth_store *s, const char *repo,
                             const char *reference, const char *content_type, const void *data,
                             size_t len)
{
    return berth_store_manifest_put_tags(result, s, repo, reference, NULL, 0, content_type, data,
                                         len);
}

/* What a manifest references, as the metadata backend checks it. */
typedef struct refs {
    berth_digest *blobs, *children;
    size_t nblobs, nchildren;
    size_t *blob_at; /* index in info->refs of each blob */
    size_t absent;   /* sparse: references not there */
} refs;

static void refs_dispose(refs *r)
{
    free(r->blobs);
    free(r->children);
    free(r->blob_at);
}

/*
 * Sort the references of a document into blobs and children, and check each blob's presence
 * and size in the repository (the backend checks presence again, atomically with the put; the
 * size a blob has never changes). With `sparse`, absent ones are counted instead.
 */
static int gather_refs(refs *out, berth_store *s, const char *repo, const berth_document_info *info,
                       bool sparse)
{
    bool index = berth_document_kind_is_index(info->kind);
    size_t n = info->nrefs ? info->nrefs : 1;

    memset(out, 0, sizeof(*out));
    out->blobs = calloc(n, sizeof(*out->blobs));
    out->children = calloc(n, sizeof(*out->children));
    out->blob_at = calloc(n, sizeof(*out->blob_at));
    if (!out->blobs || !out->children || !out->blob_at) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < info->nrefs; i++) {
        const berth_descriptor *d = &info->refs[i];
        uint64_t size;
        int rc;
        if (index) {
            out->children[out->nchildren++] = d->digest;
            continue;
        }
        if (i > 0 && exempt_layer(d->media_type)) {
            continue;
        }
        rc = s->meta->blob_stat(s->meta, repo, &d->digest, &size);
        if (rc == BERTH_ENOTFOUND && sparse) {
            /* the backend records the manifest sparse when a reference is really absent */
            out->absent++;
            out->blob_at[out->nblobs] = i;
            out->blobs[out->nblobs++] = d->digest;
            continue;
        }
        if (rc == BERTH_ENOTFOUND) {
            return berth_error_set(BERTH_ENOTFOUND, "%s: blob %s not in %s",
                                   i == 0 ? "config" : "layers", d->digest.str, repo);
        }
        if (rc < 0) {
            return rc;
        }
        if ((int64_t)size != d->size) {
            return berth_error_set(BERTH_EINVALID, "%s: blob %s has size %llu, not %lld",
                                   i == 0 ? "config" : "layers", d->digest.str,
                                   (unsigned long long)size, (long long)d->size);
        }
        out->blob_at[out->nblobs] = i;
        out->blobs[out->nblobs++] = d->digest;
    }
    return 0;
}

/* The message for a reference the backend found absent. */
static int missing_error(const refs *r, const char *repo, const berth_digest *missing)
{
    for (size_t i = 0; i < r->nblobs; i++) {
        if (berth_digest_equal(&r->blobs[i], missing)) {
            return berth_error_set(BERTH_ENOTFOUND, "%s: blob %s not in %s",
                                   r->blob_at[i] == 0 ? "config" : "layers", missing->str, repo);
        }
    }
    for (size_t i = 0; i < r->nchildren; i++) {
        if (berth_digest_equal(&r->children[i], missing)) {
            return berth_error_set(BERTH_ENOTFOUND, "manifests[%zu]: manifest %s not in %s", i,
                                   missing->str, repo);
        }
    }
    return berth_error_set(BERTH_ENOTFOUND, "%s not in %s", missing->str, repo);
}

int berth_store_manifest_put_tags(berth_put_result *result, berth_store *s, const char *repo,
                                  const char *reference, const char *const *tags, size_t ntags,
                                  const char *content_type, const void *data, size_t len)
{
    berth_document_info *info = NULL;
    const char **all_tags = NULL;
    size_t nall = 0;
    berth_meta_manifest m;
    berth_digest want, got, missing;
    bool by_digest = strchr(reference, ':') != NULL, sparse;
    refs r;
    int rc;

    berth_error_clear();
    memset(result, 0, sizeof(*result));
    memset(&r, 0, sizeof(r));
    if ((rc = berth__store_writable(s)) < 0 || (rc = check_repo(repo)) < 0) {
        return rc;
    }
    if (len > s->opts.manifest_max) {
        return berth_error_set(BERTH_ETOOBIG, "manifest of %zu bytes is over the limit of %zu", len,
                               s->opts.manifest_max);
    }
    if (by_digest) {
        if ((rc = berth_digest_parse_str(&want, reference)) < 0) {
            return rc;
        }
    } else if (!is_tag(reference)) {
        return berth_error_set(BERTH_EINVALID, "invalid tag '%s'", reference);
    }
    for (size_t i = 0; i < ntags; i++) {
        if (!is_tag(tags[i])) {
            return berth_error_set(BERTH_EINVALID, "invalid tag '%s'", tags[i]);
        }
    }
    rc = berth_digest_buffer(&got, by_digest ? want.alg : BERTH_DIGEST_SHA256, data, len);
    if (rc < 0) {
        return rc;
    }
    if (by_digest && !berth_digest_equal(&want, &got)) {
        return berth_error_set(BERTH_EMISMATCH, "manifest digest is %s, not %s", got.str, want.str);
    }
    rc = berth_document_inspect(&info, content_type, data, len);
    if (rc < 0) {
        return rc;
    }
    sparse = sparse_allowed(s, repo);
    if ((rc = gather_refs(&r, s, repo, info, sparse)) < 0) {
        goto out;
    }
    all_tags = calloc(ntags + 1, sizeof(*all_tags));
    if (!all_tags) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if (!by_digest) {
        all_tags[nall++] = reference;
    }
    for (size_t i = 0; i < ntags; i++) {
        all_tags[nall++] = tags[i];
    }
    memset(&m, 0, sizeof(m));
    m.digest = got;
    m.media_type = info->media_type;
    m.artifact_type = info->artifact_type;
    if (info->subject) {
        m.has_subject = true;
        m.subject = info->subject->digest;
    }
    m.size = len;
    m.data = data;
    m.blobs = r.blobs;
    m.nblobs = r.nblobs;
    m.children = r.children;
    m.nchildren = r.nchildren;
    m.sparse = sparse;
    m.pushed = (int64_t)time(NULL);
    rc = s->meta->manifest_put(s->meta, repo, &m, all_tags, nall, &missing);
    if (rc == BERTH_ENOTFOUND) {
        rc = missing_error(&r, repo, &missing);
    }
    if (rc == 0) {
        result->digest = got;
        result->has_subject = m.has_subject;
        result->subject = m.subject;
    }
out:
    free(all_tags);
    refs_dispose(&r);
    berth_document_info_free(info);
    return rc;
}

int berth_store_manifest_delete(berth_store *s, const char *repo, const berth_digest *digest)
{
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0) {
        return rc;
    }
    if (check_repo(repo) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "manifest %s not in %s", digest->str, repo);
    }
    return s->meta->manifest_delete(s->meta, repo, digest, 0);
}

int berth_store_tag_delete(berth_store *s, const char *repo, const char *tag)
{
    int rc;

    berth_error_clear();
    if ((rc = berth__store_writable(s)) < 0) {
        return rc;
    }
    if (check_repo(repo) < 0 || !is_tag(tag)) {
        return berth_error_set(BERTH_ENOTFOUND, "tag %s not in %s", tag, repo);
    }
    return s->meta->tag_delete(s->meta, repo, tag, NULL);
}

/* ---- lists ---------------------------------------------------------------------------- */

typedef struct manifest_adapter {
    berth_store_manifest_cb cb;
    void *payload;
    int stopped; /* the callback's own non-zero return */
} manifest_adapter;

static int manifest_to_cb(const berth_meta_manifest *m, void *payload)
{
    manifest_adapter *a = payload;
    a->stopped = a->cb(m, a->payload);
    return a->stopped ? 1 : 0;
}

int berth_store_manifests(berth_store *s, const char *repo, berth_store_manifest_cb cb,
                          void *payload)
{
    manifest_adapter a = {cb, payload, 0};
    int rc;

    berth_error_clear();
    if (check_repo(repo) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no repository %s", repo);
    }
    rc = s->meta->manifests(s->meta, repo, manifest_to_cb, &a);
    return a.stopped ? a.stopped : rc;
}

typedef struct name_adapter {
    berth_store_name_cb cb;
    void *payload;
} name_adapter;

static int tag_to_name(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    name_adapter *a = payload;
    (void)digest;
    (void)pushed;
    return a->cb(tag, a->payload) != 0 ? 1 : 0;
}

static int name_to_name(const char *name, void *payload)
{
    name_adapter *a = payload;
    return a->cb(name, a->payload) != 0 ? 1 : 0;
}

int berth_store_tags(berth_store *s, const char *repo, const char *last, size_t n,
                     berth_store_name_cb cb, void *payload, bool *more_out)
{
    name_adapter a = {cb, payload};
    int rc;

    berth_error_clear();
    *more_out = false;
    if (check_repo(repo) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no repository %s", repo);
    }
    if (s->meta->tag_names) { /* the names alone, when the backend lists them so */
        rc = s->meta->tag_names(s->meta, repo, last, n, name_to_name, &a, more_out);
    } else {
        rc = s->meta->tags(s->meta, repo, last, n, tag_to_name, &a, more_out);
    }
    return rc == 1 ? 0 : rc; /* the callback stopped the walk */
}

typedef struct tag_adapter {
    berth_store_tag_cb cb;
    void *payload;
} tag_adapter;

static int tag_to_tag(const char *tag, const berth_digest *digest, int64_t pushed, void *payload)
{
    tag_adapter *a = payload;
    return a->cb(tag, digest, pushed, a->payload) != 0 ? 1 : 0;
}

int berth_store_tag_list(berth_store *s, const char *repo, const char *last, size_t n,
                         berth_store_tag_cb cb, void *payload, bool *more_out)
{
    tag_adapter a = {cb, payload};
    int rc;

    berth_error_clear();
    *more_out = false;
    if (check_repo(repo) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no repository %s", repo);
    }
    rc = s->meta->tags(s->meta, repo, last, n, tag_to_tag, &a, more_out);
    return rc == 1 ? 0 : rc; /* the callback stopped the walk */
}

int berth_store_catalog(berth_store *s, const char *last, size_t n, berth_store_name_cb cb,
                        void *payload, bool *more_out)
{
    name_adapter a = {cb, payload};
    int rc;

    berth_error_clear();
    *more_out = false;
    rc = s->meta->catalog(s->meta, last, n, name_to_name, &a, more_out);
    return rc == 1 ? 0 : rc;
}

/* ---- referrers ------------------------------------------------------------------------ */

typedef struct referrers_ctx {
    berth_store *s;
    const char *repo;
    berth_buf *out;
    size_t start;
    berth_referrers_page *page;
    size_t given;
    berth_digest last_given;
    bool full;
    int rc;
} referrers_ctx;

#define REFERRERS_STOP 1

/* The annotations of a stored manifest (a new reference), NULL when none or unreadable. */
static json_t *annotations_of(berth_store *s, const char *repo, const berth_digest *digest)
{
    berth_meta_blob_doc doc = {NULL, 0, NULL};
    json_t *root, *a = NULL;

    if (s->meta->manifest_get(s->meta, repo, digest, &doc) < 0) {
        return NULL;
    }
    root = json_loadb(doc.data, doc.len, 0, NULL);
    a = root ? json_object_get(root, "annotations") : NULL;
    if (a && json_is_object(a) && json_object_size(a) > 0) {
        json_incref(a);
    } else {
        a = NULL;
    }
    json_decref(root);
    free(doc.data);
    free(doc.media_type);
    return a;
}

static int add_referrer(const berth_meta_referrer *m, void *payload)
{
    referrers_ctx *ctx = payload;
    berth_referrers_page *page = ctx->page;
    json_t *d, *a;
    char *text;
    int rc;

    if (page && ctx->given > 0 &&
        ((page->n && ctx->given == page->n) ||
         (page->max_bytes && ctx->out->len - ctx->start >= page->max_bytes))) {
        /* a full page; the next starts after the last one given */
        ctx->full = true;
        return REFERRERS_STOP;
    }
    d = json_pack("{s:s, s:s, s:I}", "mediaType", m->media_type, "digest", m->digest.str, "size",
                  (json_int_t)m->size);
    if (d && m->artifact_type) {
        json_object_set_new(d, "artifactType", json_string(m->artifact_type));
    }
    if (d && (a = annotations_of(ctx->s, ctx->repo, &m->digest))) {
        /* read from the stored manifest: backends do not keep annotations */
        json_object_set_new(d, "annotations", a);
    }
    text = d ? json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(d);
    if (!text) {
        ctx->rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        return REFERRERS_STOP;
    }
    rc = ctx->given ? berth_buf_puts(ctx->out, ",") : 0;
    if (rc == 0) {
        rc = berth_buf_puts(ctx->out, text);
    }
    free(text);
    if (rc < 0) {
        ctx->rc = rc;
        return REFERRERS_STOP;
    }
    ctx->given++;
    ctx->last_given = m->digest;
    return 0;
}

int berth_store_referrers(berth_buf *out, berth_store *s, const char *repo,
                          const berth_digest *digest, const char *artifact_type,
                          berth_referrers_page *page)
{
    referrers_ctx ctx;
    bool more = false;
    size_t ask = 0;
    int rc;

    berth_error_clear();
    memset(&ctx, 0, sizeof(ctx));
    ctx.s = s;
    ctx.repo = repo;
    ctx.out = out;
    ctx.start = out->len;
    ctx.page = page;
    if (page) {
        page->more = false;
        /* one more than a page, to learn whether another follows; with a byte bound the
           page may end sooner */
        ask = page->n && !page->max_bytes ? page->n + 1 : 0;
    }
    if (check_repo(repo) < 0) {
        return berth_error_set(BERTH_ENOTFOUND, "no repository %s", repo);
    }
    rc = berth_buf_puts(out, "{\"schemaVersion\":2,\"mediaType\":"
                             "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[");
    if (rc == 0) {
        rc = s->meta->referrers(s->meta, repo, digest, artifact_type, page ? page->last : NULL, ask,
                                add_referrer, &ctx, &more);
    }
    if (rc == REFERRERS_STOP) {
        rc = ctx.rc;
    }
    if (rc < 0) {
        out->len = ctx.start;
        if (out->ptr) {
            out->ptr[out->len] = '\0';
        }
        return rc;
    }
    if (page && ctx.full) {
        page->more = true;
        page->next_last = ctx.last_given;
    }
    return berth_buf_puts(out, "]}");
}
