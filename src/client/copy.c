/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The copy engine: an image manifest, an index (whole or one platform) and optionally the
 * referrers of what it copies, from one end to another. An end is a registry repository or an
 * OCI image layout.
 *
 * Order is what keeps a failed copy harmless: the blobs of a manifest are copied (in parallel,
 * each verified against its digest) before the manifest; the children of an index before the
 * index; every manifest is first written by digest, and the destination tag is written last of
 * all. So an interrupted copy can leave unreferenced blobs or untagged manifests, which garbage
 * collection removes, but never a tag that names incomplete content. Blobs the destination
 * has are skipped after a HEAD; between repositories of one registry a mount is tried first.
 * Blobs from a registry are staged in a private temp directory and verified; towards another
 * registry the upload reads the staged file while the download still writes it, and commits
 * only once the download verified.
 *
 * One digest may be met more than once in one copy (a config that is also a layer, as the
 * empty descriptor of an artifact is; a layer two platforms share; a blob a referrer shares
 * with its subject). Each is claimed in a table of the copy: the first job to meet it copies
 * it, a parallel job meeting it waits for that verdict, so a blob is fetched and pushed once
 * and no two jobs write one staging file.
 *
 * A manifest with a subject written to a registry without the referrers API (Distribution
 * 2.8 answers 404 on it) is also listed in its subject's fallback tag `<alg>-<hex>`, the
 * referrers tag schema of the distribution spec: the index is fetched, the descriptor added
 * unless present, and the index pushed back.
 */
#include "client/client_internal.h"

#include <berth/errors.h>
#include <berth/reference.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_DEPTH 8

typedef struct end {
    bool layout;
    berth_reference *ref;   /* registry end */
    berth_layout_ref *lref; /* layout end */
} end;

/* A digest met in this copy: 0 being copied, 1 done, < 0 failed (a berth error code). */
typedef struct seen_entry {
    berth_digest d;
    bool manifest;
    int state;
} seen_entry;

typedef struct copy_ctx {
    berth_client *c;
    end src, dst;
    const berth_copy_options *o;
    unsigned jobs;
    berth_buf tmpdir;
    bool same_registry;
    int dst_referrers_api; /* 0 not asked yet, 1 it has one, -1 it has none */
    pthread_mutex_t mu;    /* guards seen */
    pthread_cond_t cv;     /* a seen entry got its verdict */
    seen_entry *seen;
    size_t nseen, seencap;
} copy_ctx;

static void note(const copy_ctx *x, const char *fmt, ...) BERTH_PRINTF(2, 3);

static void note(const copy_ctx *x, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    if (!x->o->note) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    x->o->note(line, x->o->note_payload);
}

static void progress(const copy_ctx *x, const berth_digest *d, uint64_t done, uint64_t total,
                     bool finished)
{
    if (x->o->progress) {
        x->o->progress(d->str, done, total, finished, x->o->progress_payload);
    }
}

/*
 * Claim digest `d` (a blob, or with `manifest` a manifest) for this copy.
 * @return 1: the caller copies it and then calls settle(); 0: it is copied already in this
 *         copy (or, without `wait`, being copied by an ancestor in the walk); < 0: it failed
 *         in another job (that job's code)
 */
static int claim(copy_ctx *x, const berth_digest *d, bool manifest, bool wait)
{
    int rc = 1;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        seen_entry *e = NULL;
        for (size_t i = 0; i < x->nseen && !e; i++) {
            if (x->seen[i].manifest == manifest && berth_digest_equal(&x->seen[i].d, d)) {
                e = &x->seen[i];
            }
        }
        if (!e) {
            if (x->nseen == x->seencap) {
                size_t cap = x->seencap ? x->seencap * 2 : 32;
                seen_entry *grown = realloc(x->seen, cap * sizeof(*grown));
                if (!grown) {
                    rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                    break;
                }
                x->seen = grown;
                x->seencap = cap;
            }
            x->seen[x->nseen++] = (seen_entry){*d, manifest, 0};
            break;
        }
        if (e->state == 0 && wait) {
            pthread_cond_wait(&x->cv, &x->mu);
            continue;
        }
        rc = e->state < 0 ? e->state : 0;
        break;
    }
    pthread_mutex_unlock(&x->mu);
    if (rc < 0 && rc != BERTH_ENOMEM) {
        berth_error_set(rc, "failed in another job of this copy");
    }
    return rc;
}

/* The verdict on a digest claimed with claim(): wakes the jobs waiting for it. */
static void settle(copy_ctx *x, const berth_digest *d, bool manifest, int rc)
{
    pthread_mutex_lock(&x->mu);
    for (size_t i = 0; i < x->nseen; i++) {
        if (x->seen[i].manifest == manifest && berth_digest_equal(&x->seen[i].d, d)) {
            x->seen[i].state = rc < 0 ? rc : 1;
        }
    }
    pthread_cond_broadcast(&x->cv);
    pthread_mutex_unlock(&x->mu);
}

/* Upload progress: the transport reports how far it read the file of the blob it pushes
 * (berth__upload_progress, called on the pushing thread); a job pushing a blob points this
 * thread's hook at it for the time of the push. */
typedef struct upload_hook {
    const copy_ctx *x;
    const berth_digest *d;
    uint64_t total;
} upload_hook;

static _Thread_local const upload_hook *tl_upload;

void berth__upload_progress(uint64_t offset)
{
    const upload_hook *h = tl_upload;
    if (h) {
        progress(h->x, h->d, offset < h->total ? offset : h->total, h->total, false);
    }
}

static void end_dispose(end *e)
{
    berth_reference_free(e->ref);
    berth_layout_ref_free(e->lref);
    memset(e, 0, sizeof(*e));
}

static int end_open(end *e, const char *text, bool dest)
{
    int rc;
    memset(e, 0, sizeof(*e));
    if ((rc = berth_transport_of(text, &text)) < 0) {
        return rc;
    }
    if (rc == BERTH_TRANSPORT_LAYOUT) {
        e->layout = true;
        if ((rc = berth_layout_ref_parse(&e->lref, text)) < 0) {
            return rc;
        }
        return berth__layout_open(e->lref->path, dest);
    }
    return berth_reference_parse(&e->ref, text);
}

/* A manifest of the end by digest (`d` not NULL) or the end's own reference. */
static int end_get_manifest(copy_ctx *x, end *e, const berth_digest *d, berth_buf *body,
                            char **ctype, berth_digest *digest_out)
{
    int rc;
    *ctype = NULL;
    if (e->layout) {
        if (d) {
            if ((rc = berth__layout_read_blob(e->lref->path, d, body)) == 0) {
                *digest_out = *d;
            }
            return rc;
        }
        return berth__layout_get_manifest(e->lref->path, e->lref->tag, body, ctype, digest_out);
    }
    const char *ref = d ? d->str : (e->ref->has_digest ? e->ref->digest.str : e->ref->tag);
    return berth_client_get_manifest(x->c, e->ref->registry, e->ref->repository, ref, body, ctype,
                                     digest_out);
}

static int end_has_blob(copy_ctx *x, end *e, const berth_digest *d)
{
    if (e->layout) {
        return berth__layout_has_blob(e->lref->path, d);
    }
    return berth_client_head_blob(x->c, e->ref->registry, e->ref->repository, d, NULL);
}

static int end_has_manifest(copy_ctx *x, end *e, const berth_digest *d)
{
    if (e->layout) {
        return berth__layout_has_blob(e->lref->path, d);
    }
    return berth_client_head_manifest(x->c, e->ref->registry, e->ref->repository, d->str, NULL,
                                      NULL);
}

/* ---- blobs ---- */

typedef struct dl_ctx {
    FILE *f;
    const copy_ctx *x;
    const berth_digest *d;
    uint64_t done, total;
} dl_ctx;

static int dl_sink(const void *data, size_t len, void *p)
{
    dl_ctx *dl = p;
    if (fwrite(data, 1, len, dl->f) != len) {
        return berth_error_set(BERTH_EIO, "writing a staged blob: %s", strerror(errno));
    }
    dl->done += len;
    progress(dl->x, dl->d, dl->done, dl->total, false);
    return 0;
}

/* Registry to registry: the download writes a staged file that the upload reads as it grows,
 * so the two overlap; the upload is committed only once the download verified. */
typedef struct stream_dl {
    copy_ctx *x;
    const berth__doc_ref *r;
    int fd;
    uint64_t done;
    berth__growing grow;
    int rc;
    char msg[512]; /* the download thread's error message */
} stream_dl;

static int stream_sink(const void *data, size_t len, void *p)
{
    stream_dl *s = p;
    const char *b = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(s->fd, b, left);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return berth_error_set(BERTH_EIO, "writing a staged blob: %s", strerror(errno));
        }
        b += n;
        left -= (size_t)n;
    }
    s->done += len;
    berth__growing_advance(&s->grow, s->done); /* progress is the upload's, which follows */
    return 0;
}

static void *stream_download(void *p)
{
    stream_dl *s = p;
    s->rc = berth_client_get_blob(s->x->c, s->x->src.ref->registry, s->x->src.ref->repository,
                                  &s->r->digest, s->r->size, stream_sink, s);
    if (s->rc < 0) {
        snprintf(s->msg, sizeof(s->msg), "%s", berth_error_last());
    }
    berth__growing_end(&s->grow, s->rc < 0 ? s->rc : 1);
    return NULL;
}

static int stream_blob(copy_ctx *x, const berth__doc_ref *r, const char *path)
{
    stream_dl s;
    pthread_t th;
    int rfd, rc;

    memset(&s, 0, sizeof(s));
    s.x = x;
    s.r = r;
    s.fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    rfd = s.fd >= 0 ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (rfd < 0) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
        if (s.fd >= 0) {
            close(s.fd);
        }
        return rc;
    }
    berth__growing_init(&s.grow);
    if (pthread_create(&th, NULL, stream_download, &s) != 0) {
        rc = berth_error_set(BERTH_ERROR, "cannot start a download thread");
    } else {
        upload_hook hook = {x, &r->digest, (uint64_t)r->size};
        tl_upload = &hook;
        rc = berth__client_push_blob_growing(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                             &r->digest, (uint64_t)r->size, rfd, &s.grow);
        tl_upload = NULL;
        pthread_join(th, NULL);
        if (s.rc < 0) {
            rc = berth_error_set(s.rc, "%s", s.msg); /* the download's failure is the cause */
        }
    }
    berth__growing_dispose(&s.grow);
    close(s.fd);
    close(rfd);
    return rc;
}

static int copy_blob_once(copy_ctx *x, const berth__doc_ref *r);

/* A blob, once per copy: a job meeting a digest another job copies waits for its verdict. */
static int copy_blob(copy_ctx *x, const berth__doc_ref *r)
{
    int rc = claim(x, &r->digest, false, true);
    if (rc == 0) {
        note(x, "blob %s: copied already in this copy", r->digest.str);
        return 0;
    }
    if (rc < 0) {
        berth_error_prefix("blob %s: ", r->digest.str);
        return rc;
    }
    rc = copy_blob_once(x, r);
    settle(x, &r->digest, false, rc);
    return rc;
}

static int copy_blob_once(copy_ctx *x, const berth__doc_ref *r)
{
    berth_buf path = BERTH_BUF_INIT;
    bool staged = false;
    int rc;

    rc = end_has_blob(x, &x->dst, &r->digest);
    if (rc == 0) {
        note(x, "blob %s: already present", r->digest.str);
        progress(x, &r->digest, (uint64_t)r->size, (uint64_t)r->size, true);
        goto out;
    }
    if (rc != BERTH_ENOTFOUND) {
        goto out;
    }
    berth_error_clear();
    if (x->same_registry && strcmp(x->src.ref->repository, x->dst.ref->repository) != 0) {
        rc = berth__client_mount(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                 x->src.ref->repository, &r->digest);
        if (rc == 0) {
            note(x, "blob %s: mounted from %s", r->digest.str, x->src.ref->repository);
            progress(x, &r->digest, (uint64_t)r->size, (uint64_t)r->size, true);
            goto out;
        }
        berth_error_clear();
    }
    progress(x, &r->digest, 0, (uint64_t)r->size, false);
    if (x->src.layout) {
        berth_digest got;
        uint64_t size;
        if ((rc = berth__layout_blob_path(&path, x->src.lref->path, &r->digest)) < 0) {
            goto out;
        }
        if (!x->dst.layout) {
            /* the layout put verifies by itself; a registry push is checked here first */
            if ((rc = berth_digest_file(&got, r->digest.alg, path.ptr, &size)) < 0) {
                goto out;
            }
            if (!berth_digest_equal(&got, &r->digest) || size != (uint64_t)r->size) {
                rc = berth_error_set(BERTH_EMISMATCH, "%s: content has digest %s, %llu bytes",
                                     path.ptr, got.str, (unsigned long long)size);
                goto out;
            }
        }
    } else if (!x->dst.layout) {
        if ((rc = berth_buf_printf(&path, "%s/%s", x->tmpdir.ptr, berth_digest_hex(&r->digest))) <
            0) {
            goto out;
        }
        staged = true;
        rc = stream_blob(x, r, path.ptr);
        if (rc == 0) {
            note(x, "blob %s: copied (%lld bytes)", r->digest.str, (long long)r->size);
            progress(x, &r->digest, (uint64_t)r->size, (uint64_t)r->size, true);
        }
        goto out;
    } else {
        dl_ctx dl = {NULL, x, &r->digest, 0, (uint64_t)r->size};
        if ((rc = berth_buf_printf(&path, "%s/%s", x->tmpdir.ptr, berth_digest_hex(&r->digest))) <
            0) {
            goto out;
        }
        if (!(dl.f = fopen(path.ptr, "wb"))) {
            rc = berth_error_set(BERTH_EIO, "%s: %s", path.ptr, strerror(errno));
            goto out;
        }
        staged = true;
        rc = berth_client_get_blob(x->c, x->src.ref->registry, x->src.ref->repository, &r->digest,
                                   r->size, dl_sink, &dl);
        if (fclose(dl.f) != 0 && rc == 0) {
            rc = berth_error_set(BERTH_EIO, "%s: %s", path.ptr, strerror(errno));
        }
        if (rc < 0) {
            goto out;
        }
    }
    if (x->dst.layout) {
        rc = berth__layout_put_blob_file(x->dst.lref->path, &r->digest, r->size, path.ptr);
    } else {
        upload_hook hook = {x, &r->digest, (uint64_t)r->size};
        tl_upload = &hook;
        rc = berth_client_push_blob_file(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                         &r->digest, (uint64_t)r->size, path.ptr, NULL);
        tl_upload = NULL;
    }
    if (rc == 0) {
        note(x, "blob %s: copied (%lld bytes)", r->digest.str, (long long)r->size);
        progress(x, &r->digest, (uint64_t)r->size, (uint64_t)r->size, true);
    }
out:
    if (rc < 0) {
        berth_error_prefix("blob %s: ", r->digest.str);
    }
    if (staged) {
        unlink(path.ptr);
    }
    berth_buf_dispose(&path);
    return rc;
}

typedef struct pool {
    copy_ctx *x;
    const berth__doc_ref *refs;
    size_t n, next;
    int failed;
    char *message;
    pthread_mutex_t mu;
} pool;

static void *worker(void *p)
{
    pool *pl = p;
    for (;;) {
        size_t i;
        pthread_mutex_lock(&pl->mu);
        if (pl->failed || pl->next >= pl->n) {
            pthread_mutex_unlock(&pl->mu);
            break;
        }
        i = pl->next++;
        pthread_mutex_unlock(&pl->mu);
        int rc = copy_blob(pl->x, &pl->refs[i]);
        if (rc < 0) {
            pthread_mutex_lock(&pl->mu);
            if (!pl->failed) {
                pl->failed = rc;
                pl->message = strdup(berth_error_last());
            }
            pthread_mutex_unlock(&pl->mu);
        }
    }
    return NULL;
}

static int copy_blobs(copy_ctx *x, const berth__doc_ref *refs, size_t n)
{
    pool pl = {x, refs, n, 0, 0, NULL, PTHREAD_MUTEX_INITIALIZER};
    pthread_t th[64];
    size_t nth = x->jobs < n ? x->jobs : n, started = 0;
    int rc = 0;

    if (nth > 64) {
        nth = 64;
    }
    if (nth <= 1) {
        worker(&pl);
    } else {
        for (size_t i = 0; i < nth; i++) {
            if (pthread_create(&th[i], NULL, worker, &pl) != 0) {
                break;
            }
            started++;
        }
        if (started == 0) {
            worker(&pl);
        }
        for (size_t i = 0; i < started; i++) {
            pthread_join(th[i], NULL);
        }
    }
    if (pl.failed) {
        rc = berth_error_set(pl.failed, "%s", pl.message ? pl.message : "blob copy failed");
    }
    free(pl.message);
    pthread_mutex_destroy(&pl.mu);
    return rc;
}

/* ---- manifests ---- */

static int copy_manifest(copy_ctx *x, const berth_buf *body, const char *ctype,
                         const berth_digest *d, const char *tag, int depth);

static int put_manifest(copy_ctx *x, const berth_buf *body, const char *media_type,
                        const berth_digest *d, const char *tag)
{
    int rc;
    if (x->dst.layout) {
        if (!tag && (rc = berth__layout_has_blob(x->dst.lref->path, d)) == 0) {
            return 0;
        }
        berth_error_clear();
        if ((rc = berth__layout_put_blob_mem(x->dst.lref->path, d, body->ptr, body->len)) < 0) {
            return rc;
        }
        return tag ? berth__layout_set_ref(x->dst.lref->path, media_type, d, body->len, tag) : 0;
    }
    return berth_client_push_manifest(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                      tag ? tag : d->str, media_type, body->ptr, body->len);
}

/* Does the destination registry answer the referrers API? Asked once per copy. */
static int dst_referrers_api(copy_ctx *x, const berth_digest *subject, bool *out)
{
    if (x->dst_referrers_api == 0) {
        berth_buf b = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
        int rc =
            berth_client_referrers(x->c, x->dst.ref->registry, x->dst.ref->repository, subject, &b);
        berth_buf_dispose(&b);
        if (rc == BERTH_EUNSUPPORTED) {
            berth_error_clear();
            x->dst_referrers_api = -1;
        } else if (rc < 0) {
            return rc;
        } else {
            x->dst_referrers_api = 1;
        }
    }
    *out = x->dst_referrers_api > 0;
    return 0;
}

/* The descriptor a referrers list gives manifest `d`: its mediaType, digest and size, its
 * artifactType (else its config's mediaType) and its annotations, as the spec asks. */
static json_t *referrer_descriptor(const berth_buf *body, const char *media_type,
                                   const berth_digest *d)
{
    json_t *m = json_loadb(body->ptr ? body->ptr : "", body->len, 0, NULL);
    json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", d->str, "size",
                             (json_int_t)body->len);
    const char *at = json_string_value(json_object_get(m, "artifactType"));
    json_t *ann = json_object_get(m, "annotations");
    if (!at) {
        at = json_string_value(json_object_get(json_object_get(m, "config"), "mediaType"));
    }
    if (desc && at) {
        json_object_set_new(desc, "artifactType", json_string(at));
    }
    if (desc && json_is_object(ann) && json_object_size(ann) > 0) {
        json_object_set(desc, "annotations", ann);
    }
    json_decref(m);
    return desc;
}

/*
 * The referrers tag schema, for a destination without the referrers API: list manifest `d`
 * (with subject `subject`) in the index tagged `<alg>-<hex>` of the subject: fetch it (none
 * yet: an empty index), add the descriptor unless it is there, push it back.
 */
static int fallback_tag_add(copy_ctx *x, const berth_digest *subject, const berth_buf *body,
                            const char *media_type, const berth_digest *d)
{
    berth_buf cur = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    char tag[BERTH_DIGEST_MAXLEN + 1];
    char *ct = NULL, *text = NULL;
    json_t *idx = NULL, *list, *e;
    size_t i;
    int rc;

    snprintf(tag, sizeof(tag), "%s-%s", berth_digest_alg_name(subject->alg),
             berth_digest_hex(subject));
    rc = berth_client_get_manifest(x->c, x->dst.ref->registry, x->dst.ref->repository, tag, &cur,
                                   &ct, NULL);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        idx = json_pack("{s:i, s:s, s:[]}", "schemaVersion", 2, "mediaType",
                        "application/vnd.oci.image.index.v1+json", "manifests");
        rc = idx ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
    } else if (rc == 0) {
        idx = json_loadb(berth_buf_cstr(&cur), cur.len, 0, NULL);
        const char *mt = json_string_value(json_object_get(idx, "mediaType"));
        if (!json_is_array(json_object_get(idx, "manifests")) ||
            (mt && strcmp(mt, "application/vnd.oci.image.index.v1+json") != 0)) {
            rc = berth_error_set(BERTH_EINVALID, "tag %s is not an image index", tag);
        }
    }
    if (rc < 0) {
        goto out;
    }
    list = json_object_get(idx, "manifests");
    json_array_foreach(list, i, e)
    {
        const char *dg = json_string_value(json_object_get(e, "digest"));
        if (dg && strcmp(dg, d->str) == 0) {
            note(x, "referrer %s: listed in tag %s already", d->str, tag);
            goto out;
        }
    }
    if (json_array_append_new(list, referrer_descriptor(body, media_type, d)) < 0 ||
        !(text = json_dumps(idx, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    rc = berth_client_push_manifest(x->c, x->dst.ref->registry, x->dst.ref->repository, tag,
                                    "application/vnd.oci.image.index.v1+json", text, strlen(text));
    if (rc == 0) {
        note(x, "referrer %s: listed in tag %s (the registry has no referrers API)", d->str, tag);
    }
out:
    if (rc < 0) {
        berth_error_prefix("referrers tag %s: ", tag);
    }
    free(text);
    free(ct);
    json_decref(idx);
    berth_buf_dispose(&cur);
    return rc;
}

/* Copy the manifest `d` of the source (children, referrers). */
static int copy_by_digest(copy_ctx *x, const berth_digest *d, int depth)
{
    berth_buf body = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    char *ctype = NULL;
    berth_digest got;
    int rc;

    if ((rc = end_get_manifest(x, &x->src, d, &body, &ctype, &got)) == 0) {
        rc = copy_manifest(x, &body, ctype, d, NULL, depth);
    }
    free(ctype);
    berth_buf_dispose(&body);
    return rc;
}

static int copy_referrers(copy_ctx *x, const berth_digest *d, int depth)
{
    berth_buf body = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    berth__doc idx = {0};
    int rc;

    if (x->src.layout) {
        rc = berth__layout_referrers(x->src.lref->path, d, &body);
    } else {
        rc = berth_client_referrers(x->c, x->src.ref->registry, x->src.ref->repository, d, &body);
    }
    if (rc == BERTH_EUNSUPPORTED) {
        /* the referrers tag schema: an index tagged <alg>-<hex> */
        char tag[BERTH_DIGEST_MAXLEN + 1];
        char *ct = NULL;
        berth_error_clear();
        snprintf(tag, sizeof(tag), "%s-%s", berth_digest_alg_name(d->alg), berth_digest_hex(d));
        berth_buf_clear(&body);
        rc = berth_client_get_manifest(x->c, x->src.ref->registry, x->src.ref->repository, tag,
                                       &body, &ct, NULL);
        free(ct);
        if (rc == BERTH_ENOTFOUND) {
            berth_error_clear();
            rc = 0;
            goto out;
        }
    }
    if (rc < 0 || (rc = berth__doc_parse(&idx, "application/vnd.oci.image.index.v1+json", body.ptr,
                                         body.len)) < 0) {
        goto out;
    }
    for (size_t i = 0; i < idx.nrefs; i++) {
        note(x, "referrer %s of %s", idx.refs[i].digest.str, d->str);
        if ((rc = copy_by_digest(x, &idx.refs[i].digest, depth + 1)) < 0) {
            goto out;
        }
        /* in a layout, a referrer is listed untagged in index.json, where tools look for it */
        if (x->dst.layout &&
            (rc = berth__layout_set_ref(
                 x->dst.lref->path,
                 idx.refs[i].media_type ? idx.refs[i].media_type
                                        : "application/vnd.oci.image.manifest.v1+json",
                 &idx.refs[i].digest, (uint64_t)idx.refs[i].size, NULL)) < 0) {
            goto out;
        }
    }
out:
    if (rc < 0) {
        berth_error_prefix("referrers of %s: ", d->str);
    }
    berth__doc_dispose(&idx);
    berth_buf_dispose(&body);
    return rc;
}

static int copy_manifest(copy_ctx *x, const berth_buf *body, const char *ctype,
                         const berth_digest *d, const char *tag, int depth)
{
    berth__doc doc = {0};
    int rc;

    if (depth > MAX_DEPTH) {
        return berth_error_set(BERTH_EINVALID, "manifest %s: nested too deep", d->str);
    }
    /* sequential: a manifest being copied is an ancestor in the walk, which writes it */
    if ((rc = claim(x, d, true, false)) <= 0) {
        if (rc == 0) {
            note(x, "manifest %s: copied already in this copy", d->str);
        }
        return rc;
    }
    if ((rc = berth__doc_parse(&doc, ctype, body->ptr ? body->ptr : "", body->len)) < 0) {
        berth_error_prefix("manifest %s: ", d->str);
        goto out;
    }
    if (!tag && end_has_manifest(x, &x->dst, d) == 0 && !x->o->referrers) {
        note(x, "manifest %s: already present", d->str);
        goto out;
    }
    berth_error_clear();
    if (doc.is_index) {
        for (size_t i = 0; i < doc.nrefs; i++) {
            if ((rc = copy_by_digest(x, &doc.refs[i].digest, depth + 1)) < 0) {
                goto out;
            }
        }
    } else if ((rc = copy_blobs(x, doc.refs, doc.nrefs)) < 0) {
        goto out;
    }
    /* by digest first; the tag is written only once everything below it is in place */
    if ((rc = put_manifest(x, body, doc.media_type, d, NULL)) < 0) {
        berth_error_prefix("manifest %s: ", d->str);
        goto out;
    }
    note(x, "manifest %s: written", d->str);
    if (doc.has_subject && !x->dst.layout) {
        bool api = true;
        if ((rc = dst_referrers_api(x, &doc.subject, &api)) < 0 ||
            (!api && (rc = fallback_tag_add(x, &doc.subject, body, doc.media_type, d)) < 0)) {
            berth_error_prefix("manifest %s: ", d->str);
            goto out;
        }
    }
    if (x->o->referrers && (rc = copy_referrers(x, d, depth)) < 0) {
        goto out;
    }
    if (tag) {
        if ((rc = put_manifest(x, body, doc.media_type, d, tag)) < 0) {
            berth_error_prefix("tag %s: ", tag);
            goto out;
        }
        note(x, "tag %s -> %s", tag, d->str);
    }
out:
    settle(x, d, true, rc);
    berth__doc_dispose(&doc);
    return rc;
}

static int make_tmpdir(berth_buf *out)
{
    const char *base = getenv("TMPDIR");
    int rc = berth_buf_printf(out, "%s/berth-copy-XXXXXX", base && *base ? base : "/tmp");
    if (rc == 0 && !mkdtemp(out->ptr)) {
        rc = berth_error_set(BERTH_EIO, "%s: %s", out->ptr, strerror(errno));
        berth_buf_clear(out);
    }
    return rc;
}

static void platforms_list(berth_buf *out, const berth__doc *doc)
{
    for (size_t i = 0; i < doc->nrefs; i++) {
        const berth__doc_ref *r = &doc->refs[i];
        if (r->os && r->arch) {
            (void)berth_buf_printf(out, "%s%s/%s%s%s", out->len ? ", " : "", r->os, r->arch,
                                   r->variant ? "/" : "", r->variant ? r->variant : "");
        }
    }
}

static const char *last_of(const char *s, size_t n, char c)
{
    const char *found = NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == c) {
            found = s + i;
        }
    }
    return found;
}

/* Does the registry reference text name a tag (and not only get the parser's latest)? */
static bool has_explicit_tag(const char *text)
{
    const char *at, *slash, *colon;
    size_t n;
    (void)berth_transport_of(text, &text);
    berth_error_clear();
    at = strchr(text, '@');
    n = at ? (size_t)(at - text) : strlen(text);
    slash = last_of(text, n, '/');
    colon = last_of(text, n, ':');
    return colon && (!slash || colon > slash);
}

static int collect_name(const char *name, void *payload)
{
    char **one = payload;
    if (*one) {
        free(*one);
        *one = NULL;
        return 1; /* more than one: no single name */
    }
    *one = strdup(name);
    return *one ? 0 : 1;
}

/*
 * The tag a destination without one takes: the source's tag; for a layout source named
 * without one, the name of its only image (none when that image has no name); none when the
 * source is named by digest only.
 */
static int source_tag(char **out, const end *src, const char *text)
{
    *out = NULL;
    if (!src->layout) {
        if (src->ref->tag && (has_explicit_tag(text) || !src->ref->has_digest)) {
            *out = strdup(src->ref->tag);
            return *out ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        return 0;
    }
    if (src->lref->tag) {
        *out = strdup(src->lref->tag);
        return *out ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    int rc = berth_layout_list_tags(src->lref->path, collect_name, out);
    if (rc < 0 && rc != BERTH_ENOTFOUND) {
        return rc;
    }
    berth_error_clear();
    return 0;
}

/*
 * The tag a registry destination takes from a source name: the name when it is a tag; the tag
 * of a full reference a layout names its image by ("example.com/app:v2" -> "v2"); else latest.
 */
static const char *registry_tag_of(const char *name)
{
    const char *slash = strrchr(name, '/');
    const char *colon = strchr(slash ? slash : name, ':');

    if (berth_tag_validate(name) == 0) {
        return name;
    }
    berth_error_clear();
    if (colon && berth_tag_validate(colon + 1) == 0) {
        return colon + 1;
    }
    berth_error_clear();
    return "latest";
}

int berth_copy(berth_client *c, const char *src, const char *dst, const berth_copy_options *opts,
               berth_digest *digest_out)
{
    berth_copy_options none = {0};
    copy_ctx x = {0};
    berth_buf body = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    berth_buf child = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    berth__doc doc = {0};
    char *ctype = NULL, *cctype = NULL;
    berth_digest d = {0};
    const char *tag = NULL;
    char *src_tag = NULL;
    int rc;

    berth_error_clear();
    pthread_mutex_init(&x.mu, NULL);
    pthread_cond_init(&x.cv, NULL);
    x.c = c;
    x.o = opts ? opts : &none;
    x.jobs = x.o->jobs ? x.o->jobs : 4;
    if (x.o->all && x.o->platform) {
        rc = berth_error_set(BERTH_EINVALID, "--all and --platform exclude each other");
        goto out;
    }
    if ((rc = end_open(&x.src, src, false)) < 0) {
        berth_error_prefix("source %s: ", src);
        goto out;
    }
    if ((rc = end_open(&x.dst, dst, true)) < 0) {
        berth_error_prefix("destination %s: ", dst);
        goto out;
    }
    if ((rc = source_tag(&src_tag, &x.src, src)) < 0) {
        berth_error_prefix("source %s: ", src);
        goto out;
    }
    if (x.dst.layout) {
        tag = x.dst.lref->tag ? x.dst.lref->tag : src_tag;
    } else if (has_explicit_tag(dst)) {
        tag = x.dst.ref->tag;
    } else if (x.dst.ref->has_digest) {
        tag = NULL;
    } else {
        tag = src_tag ? registry_tag_of(src_tag) : x.dst.ref->tag; /* the parser's latest */
    }
    x.same_registry =
        !x.src.layout && !x.dst.layout && strcmp(x.src.ref->registry, x.dst.ref->registry) == 0;
    if (!x.src.layout || !x.dst.layout) {
        if ((rc = make_tmpdir(&x.tmpdir)) < 0) {
            goto out;
        }
    }
    if ((rc = end_get_manifest(&x, &x.src, NULL, &body, &ctype, &d)) < 0) {
        berth_error_prefix("source %s: ", src);
        goto out;
    }
    if ((rc = berth__doc_parse(&doc, ctype, body.ptr, body.len)) < 0) {
        berth_error_prefix("source %s: ", src);
        goto out;
    }
    if (x.dst.ref && x.dst.ref->has_digest && !berth_digest_equal(&x.dst.ref->digest, &d)) {
        rc = berth_error_set(BERTH_EMISMATCH, "destination digest %s differs from the source's %s",
                             x.dst.ref->digest.str, d.str);
        goto out;
    }
    if (doc.is_index && x.o->platform) {
        const berth__doc_ref *pick = NULL;
        for (size_t i = 0; i < doc.nrefs && !pick; i++) {
            if (berth__doc_ref_matches(&doc.refs[i], x.o->platform)) {
                pick = &doc.refs[i];
            }
        }
        if (!pick) {
            berth_buf have = BERTH_BUF_INIT;
            platforms_list(&have, &doc);
            rc = berth_error_set(BERTH_ENOTFOUND, "source %s: no image for platform %s (has: %s)",
                                 src, x.o->platform, berth_buf_cstr(&have));
            berth_buf_dispose(&have);
            goto out;
        }
        berth_digest cd = pick->digest;
        if ((rc = end_get_manifest(&x, &x.src, &cd, &child, &cctype, &d)) < 0) {
            goto out;
        }
        rc = copy_manifest(&x, &child, pick->media_type, &cd, tag, 0);
        d = cd;
    } else {
        rc = copy_manifest(&x, &body, ctype, &d, tag, 0);
    }
    if (rc == 0 && digest_out) {
        *digest_out = d;
    }
out:
    if (x.tmpdir.len) {
        rmdir(x.tmpdir.ptr);
    }
    berth__doc_dispose(&doc);
    free(ctype);
    free(cctype);
    berth_buf_dispose(&body);
    berth_buf_dispose(&child);
    berth_buf_dispose(&x.tmpdir);
    end_dispose(&x.src);
    end_dispose(&x.dst);
    free(src_tag);
    free(x.seen);
    pthread_mutex_destroy(&x.mu);
    pthread_cond_destroy(&x.cv);
    return rc;
}
