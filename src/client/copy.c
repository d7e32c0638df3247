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

typedef struct copy_ctx {
    berth_client *c;
    end src, dst;
    const berth_copy_options *o;
    unsigned jobs;
    berth_buf tmpdir;
    bool same_registry;
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
    if (berth_layout_ref_is(text)) {
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
    berth__growing_advance(&s->grow, s->done);
    progress(s->x, &s->r->digest, s->done, (uint64_t)s->r->size, false);
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
        rc = berth__client_push_blob_growing(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                             &r->digest, (uint64_t)r->size, rfd, &s.grow);
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

static int copy_blob(copy_ctx *x, const berth__doc_ref *r)
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
        rc = berth_client_push_blob_file(x->c, x->dst.ref->registry, x->dst.ref->repository,
                                         &r->digest, (uint64_t)r->size, path.ptr, NULL);
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
        note(x, "referrers of %s: not looked up in an OCI layout source", d->str);
        return 0;
    }
    rc = berth_client_referrers(x->c, x->src.ref->registry, x->src.ref->repository, d, &body);
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
    int rc;

    berth_error_clear();
    x.c = c;
    x.o = opts ? opts : &none;
    x.jobs = x.o->jobs ? x.o->jobs : 4;
    if (x.o->all && x.o->platform) {
        return berth_error_set(BERTH_EINVALID, "--all and --platform exclude each other");
    }
    if ((rc = end_open(&x.src, src, false)) < 0) {
        berth_error_prefix("source %s: ", src);
        goto out;
    }
    if ((rc = end_open(&x.dst, dst, true)) < 0) {
        berth_error_prefix("destination %s: ", dst);
        goto out;
    }
    if (x.dst.layout) {
        tag = x.dst.lref->tag;
        if (!tag) {
            tag = x.src.layout ? x.src.lref->tag : x.src.ref->tag;
        }
    } else {
        tag = x.dst.ref->tag;
        if (x.dst.ref->has_digest && !x.dst.ref->tag) {
            tag = NULL;
        }
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
    return rc;
}
