/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fs backends (src/backend/fs/) on fresh temporary roots: the blob backend (pool, ranged
 * reads, writers that survive a reopen, commit, reap), the metadata backend (links, manifests,
 * tags, referrers, listings, upload records, garbage collection's claims, read-only), the
 * on-disk format shared with the store of earlier versions in both directions, and a
 * repository read by umoci and skopeo as the OCI image layout it is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/store.h>

#include "backend/fs/fs.h"
#include "helpers/blob_contract.h"
#include "helpers/meta_contract.h"
#include "helpers/store_helpers.h"
#include "backend/fs/fs_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture {
    char root[256];
    berth_blob_backend *blobs;
    berth_meta_backend *meta;
} fixture;

static void open_backends(fixture *f, bool read_only)
{
    berth_fs_options opts = {false, !read_only, read_only, 0};
    f->blobs = NULL;
    f->meta = NULL;
    assert_int_equal(berth_fs_backends_open(&f->blobs, &f->meta, f->root, &opts), 0);
    assert_non_null(f->blobs);
    assert_non_null(f->meta);
}

static void close_backends(fixture *f)
{
    if (f->meta) {
        f->meta->free(f->meta);
    }
    if (f->blobs) {
        f->blobs->free(f->blobs);
    }
    f->meta = NULL;
    f->blobs = NULL;
}

static void reopen(fixture *f)
{
    close_backends(f);
    open_backends(f, false);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    snprintf(f->root, sizeof(f->root), "/tmp/berth-test-fsb-XXXXXX");
    assert_non_null(mkdtemp(f->root));
    open_backends(f, false);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close_backends(f);
    berth__fs_rmtree(f->root);
    free(f);
    return 0;
}

static berth_digest digest_of(const char *data)
{
    berth_digest d;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, strlen(data)), 0);
    return d;
}

/* Store bytes as the store does: touch, write a session, commit it, link it into `repo`. */
static berth_digest put_blob(fixture *f, const char *repo, const char *data)
{
    static unsigned n;
    berth_digest d = digest_of(data);
    berth_blob_writer *w = NULL;
    char id[32];

    snprintf(id, sizeof(id), "c0ffee-%u", n++);
    assert_int_equal(f->meta->blob_touch(f->meta, &d, strlen(data)), 0);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, id, NULL, 0), 0);
    assert_int_equal(w->write(w, data, strlen(data)), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    if (repo) {
        assert_int_equal(f->meta->blob_link(f->meta, repo, &d, strlen(data)), 0);
    }
    return d;
}

typedef struct collect {
    char text[8192];
    size_t n;
} collect;

static int sink(const void *data, size_t len, void *payload)
{
    collect *c = payload;
    assert_true(c->n + len < sizeof(c->text));
    memcpy(c->text + c->n, data, len);
    c->n += len;
    c->text[c->n] = '\0';
    return 0;
}

/* ---- the blob backend ------------------------------------------------------------------- */

static void test_fs_backends__blob_read_ranges(void **state)
{
    fixture *f = *state;
    berth_digest d = put_blob(f, NULL, "0123456789");
    collect c = {{0}, 0};
    uint64_t size = 0;
    int fd = -1;

    assert_int_equal(f->blobs->stat(f->blobs, &d, &size), 0);
    assert_int_equal(size, 10);
    assert_int_equal(f->blobs->read(f->blobs, &d, 3, 4, sink, &c), 0);
    assert_string_equal(c.text, "3456");
    c.n = 0;
    assert_int_equal(f->blobs->read(f->blobs, &d, 7, UINT64_MAX, sink, &c), 0);
    assert_string_equal(c.text, "789");
    assert_int_equal(f->blobs->read(f->blobs, &d, 11, 1, sink, &c), BERTH_ERANGE);
    assert_int_equal(f->blobs->open_fd(f->blobs, &d, &fd, &size), 0);
    assert_true(fd >= 0);
    assert_int_equal(size, 10);
    close(fd);
    assert_null(f->blobs->url);
    assert_int_equal(f->blobs->remove(f->blobs, &d), 0);
    assert_int_equal(f->blobs->stat(f->blobs, &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(f->blobs->remove(f->blobs, &d), BERTH_ENOTFOUND);
}

static void test_fs_backends__writer_resumes_after_reopen(void **state)
{
    fixture *f = *state;
    berth_blob_writer *w = NULL;
    berth_digest d = digest_of("hello, world");
    char *st = NULL, path[512];
    collect c = {{0}, 0};
    struct stat sb;

    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "abc-1", NULL, 0), 0);
    assert_int_equal(w->write(w, "hello", 5), 0);
    assert_int_equal(w->sync(w, &st), 0);
    assert_string_equal(st, "fs");
    /* written but never synced: not part of the session */
    assert_int_equal(w->write(w, "XXXX", 4), 0);
    assert_int_equal(w->size(w), 9);
    w->close(w);
    snprintf(path, sizeof(path), "%s/_berth/uploads/abc-1", f->root);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 5);

    reopen(f);
    /* a crashed writer's bytes past the last sync are cut off at open */
    {
        FILE *fp = fopen(path, "a");
        assert_non_null(fp);
        fputs("garbage", fp);
        fclose(fp);
    }
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "abc-1", st, 5), 0);
    assert_int_equal(w->size(w), 5);
    assert_int_equal(w->write(w, ", world", 7), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    assert_int_equal(stat(path, &sb), -1);
    assert_int_equal(f->blobs->read(f->blobs, &d, 0, UINT64_MAX, sink, &c), 0);
    assert_string_equal(c.text, "hello, world");
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "abc-1", st, 5), BERTH_ENOTFOUND);
    free(st);
}

/* read_fd() reads a session's bytes as soon as they are written, and still after the commit;
 * expect() allocates ahead of the writes, but never more than a few MiB past them whatever
 * length it is told (an upstream's Content-Length may lie). */
static void test_fs_backends__read_fd_and_expect(void **state)
{
    fixture *f = *state;
    berth_blob_writer *w = NULL;
    const size_t big = 1024 * 1024;
    char *data = malloc(big + 5), got[8], path[512];
    berth_digest d;
    struct stat sb;
    int fd;

    assert_non_null(data);
    memcpy(data, "hello", 5);
    memset(data + 5, 'x', big);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, data, big + 5), 0);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "abc-fd", NULL, 0), 0);
    assert_non_null(w->read_fd);
    assert_non_null(w->expect);
    fd = w->read_fd(w);
    assert_true(fd >= 0);
    assert_int_equal(w->write(w, data, 5), 0);
    assert_int_equal(pread(fd, got, sizeof(got), 0), 5);
    assert_memory_equal(got, "hello", 5);

    w->expect(w, (uint64_t)256 << 20); /* a lie: 256 MiB */
    assert_int_equal(w->write(w, data + 5, big), 0);
    snprintf(path, sizeof(path), "%s/_berth/uploads/abc-fd", f->root);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal((uint64_t)sb.st_size, big + 5);
    assert_true((uint64_t)sb.st_blocks * 512 <= big + 5 + 9u * 1024 * 1024);

    assert_int_equal(f->meta->blob_touch(f->meta, &d, big + 5), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    /* committed: the same bytes, through the same descriptor */
    assert_int_equal(pread(fd, got, 5, (off_t)big), 5);
    assert_memory_equal(got, "xxxxx", 5);
    assert_int_equal(pread(fd, got, sizeof(got), (off_t)big + 5), 0);
    close(fd);
    free(data);
}

typedef struct check_ctx {
    size_t seen;
    int verdict;
} check_ctx;

static int check_update(const void *data, size_t len, void *payload)
{
    (void)data;
    ((check_ctx *)payload)->seen += len;
    return 0;
}

static int check_final(void *payload)
{
    return ((check_ctx *)payload)->verdict;
}

static void test_fs_backends__commit_check_and_abort(void **state)
{
    fixture *f = *state;
    berth_blob_writer *w = NULL;
    berth_digest d = digest_of("abcdef");
    check_ctx ctx = {0, BERTH_EMISMATCH};
    berth_blob_check check = {check_update, check_final, &ctx};
    uint64_t size;
    char *st = NULL;

    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "0a2", NULL, 0), 0);
    assert_int_equal(w->write(w, "abc", 3), 0);
    assert_int_equal(w->sync(w, &st), 0);
    assert_int_equal(w->write(w, "def", 3), 0);
    /* refused by the check: nothing published, the session as at its last sync */
    assert_int_equal(w->commit(w, &d, &check), BERTH_EMISMATCH);
    assert_int_equal(ctx.seen, 6);
    assert_int_equal(f->blobs->stat(f->blobs, &d, &size), BERTH_ENOTFOUND);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "0a2", st, 3), 0);
    assert_int_equal(w->size(w), 3);
    assert_int_equal(w->write(w, "def", 3), 0);
    ctx.verdict = 0;
    ctx.seen = 0;
    assert_int_equal(w->commit(w, &d, &check), 0);
    assert_int_equal(ctx.seen, 6);
    assert_int_equal(f->blobs->stat(f->blobs, &d, &size), 0);
    /* abort drops the session */
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "0a3", NULL, 0), 0);
    assert_int_equal(w->write(w, "zz", 2), 0);
    assert_int_equal(w->abort(w), 0);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "0a3", "fs", 2), BERTH_ENOTFOUND);
    /* the file of a session of no bytes needs not be durable: missing, it is made again */
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "0a3", "fs", 0), 0);
    assert_int_equal(w->size(w), 0);
    assert_int_equal(w->abort(w), 0);
    free(st);
}

static int count_blob(const berth_digest *d, uint64_t size, int64_t mtime, void *payload)
{
    (void)d;
    (void)size;
    (void)mtime;
    (*(int *)payload)++;
    return 0;
}

static void test_fs_backends__foreach_and_reap(void **state)
{
    fixture *f = *state;
    berth_blob_writer *w = NULL;
    const char *live[] = {"beef"};
    uint64_t removed = 0;
    char path[512];
    int n = 0;

    put_blob(f, NULL, "one");
    put_blob(f, NULL, "two");
    assert_int_equal(f->blobs->foreach (f->blobs, count_blob, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "beef", NULL, 0), 0);
    w->close(w);
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, "dead", NULL, 0), 0);
    w->close(w);
    sleep(1); /* sessions written more than 0 seconds ago */
    assert_int_equal(f->blobs->reap(f->blobs, live, 1, 0, &removed), 0);
    assert_int_equal(removed, 1);
    snprintf(path, sizeof(path), "%s/_berth/uploads/beef", f->root);
    assert_int_equal(access(path, F_OK), 0);
    snprintf(path, sizeof(path), "%s/_berth/uploads/dead", f->root);
    assert_int_equal(access(path, F_OK), -1);
}

/* ---- the metadata backend --------------------------------------------------------------- */

/* Put a manifest through the metadata backend as the store would. */
static int put_manifest(fixture *f, const char *repo, const char *media_type, const char *data,
                        const berth_digest *blobs, size_t nblobs, const berth_digest *children,
                        size_t nchildren, const berth_digest *subject, const char *artifact_type,
                        const char *tag, berth_digest *digest_out)
{
    berth_meta_manifest m;
    berth_digest missing;
    const char *tags[1] = {tag};

    memset(&m, 0, sizeof(m));
    m.digest = digest_of(data);
    m.media_type = media_type;
    m.artifact_type = artifact_type;
    m.has_subject = subject != NULL;
    if (subject) {
        m.subject = *subject;
    }
    m.size = strlen(data);
    m.data = data;
    m.blobs = blobs;
    m.nblobs = nblobs;
    m.children = children;
    m.nchildren = nchildren;
    m.pushed = (int64_t)time(NULL);
    if (digest_out) {
        *digest_out = m.digest;
    }
    return f->meta->manifest_put(f->meta, repo, &m, tags, tag ? 1 : 0, &missing);
}

#define OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define OCI_INDEX    "application/vnd.oci.image.index.v1+json"

static const char config_text[] =
    "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
    "\"diff_ids\":[\"%s\"]}}";

typedef struct image {
    berth_digest config, layer, manifest;
    char config_json[512];
    char manifest_json[4096];
} image;

static void push_image(fixture *f, const char *repo, const char *layer_text, const char *tag,
                       image *img)
{
    berth_digest refs[2];
    img->layer = put_blob(f, repo, layer_text);
    snprintf(img->config_json, sizeof(img->config_json), config_text, img->layer.str);
    img->config = put_blob(f, repo, img->config_json);
    snprintf(img->manifest_json, sizeof(img->manifest_json), "%s",
             oci_image_manifest(&img->config, strlen(img->config_json), &img->layer,
                                strlen(layer_text), NULL));
    refs[0] = img->config;
    refs[1] = img->layer;
    assert_int_equal(put_manifest(f, repo, OCI_MANIFEST, img->manifest_json, refs, 2, NULL, 0, NULL,
                                  NULL, tag, &img->manifest),
                     0);
}

static void test_fs_backends__manifest_put_get_tags(void **state)
{
    fixture *f = *state;
    berth_meta_blob_doc doc;
    berth_digest got, missing_refs[1];
    image img;
    uint64_t size;

    push_image(f, "library/app", "layer one", "v1", &img);
    assert_int_equal(f->meta->repo_exists(f->meta, "library/app"), 1);
    assert_int_equal(f->meta->repo_exists(f->meta, "library/none"), 0);
    assert_int_equal(f->meta->tag_get(f->meta, "library/app", "v1", &got), 0);
    assert_string_equal(got.str, img.manifest.str);
    assert_int_equal(f->meta->manifest_get(f->meta, "library/app", &img.manifest, &doc), 0);
    assert_int_equal(doc.len, strlen(img.manifest_json));
    assert_memory_equal(doc.data, img.manifest_json, doc.len);
    assert_string_equal(doc.media_type, OCI_MANIFEST);
    free(doc.data);
    free(doc.media_type);
    assert_int_equal(f->meta->blob_stat(f->meta, "library/app", &img.layer, &size), 0);
    assert_int_equal(size, strlen("layer one"));
    assert_int_equal(f->meta->blob_stat(f->meta, NULL, &img.layer, &size), 0);
    assert_int_equal(f->meta->blob_stat(f->meta, "other", &img.layer, &size), BERTH_ENOTFOUND);

    /* a manifest whose blob is absent is refused, naming it, and the tag stays */
    missing_refs[0] = digest_of("not there");
    {
        berth_meta_manifest m;
        berth_digest missing;
        const char *tags[] = {"v1"};
        const char *text = "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\"}";
        memset(&m, 0, sizeof(m));
        m.digest = digest_of(text);
        m.media_type = OCI_MANIFEST;
        m.size = strlen(text);
        m.data = text;
        m.blobs = missing_refs;
        m.nblobs = 1;
        assert_int_equal(f->meta->manifest_put(f->meta, "library/app", &m, tags, 1, &missing),
                         BERTH_ENOTFOUND);
        assert_string_equal(missing.str, missing_refs[0].str);
    }
    assert_int_equal(f->meta->tag_get(f->meta, "library/app", "v1", &got), 0);
    assert_string_equal(got.str, img.manifest.str);

    /* the blob endpoint refuses a referenced blob, and a manifest digest */
    assert_int_equal(f->meta->blob_unlink(f->meta, "library/app", &img.layer, 0), BERTH_EINUSE);
    assert_int_equal(f->meta->blob_unlink(f->meta, "library/app", &img.manifest, 0),
                     BERTH_ENOTFOUND);

    /* persisted: a reopen reads index.json */
    reopen(f);
    assert_int_equal(f->meta->tag_get(f->meta, "library/app", "v1", &got), 0);
    assert_string_equal(got.str, img.manifest.str);
    assert_int_equal(f->meta->manifest_get(f->meta, "library/app", &img.manifest, &doc), 0);
    assert_memory_equal(doc.data, img.manifest_json, doc.len);
    free(doc.data);
    free(doc.media_type);

    /* tag delete (conditional), manifest delete, then the blobs may go */
    assert_int_equal(f->meta->tag_delete(f->meta, "library/app", "v1", &img.layer), BERTH_EBUSY);
    assert_int_equal(f->meta->tag_delete(f->meta, "library/app", "v1", &img.manifest), 0);
    assert_int_equal(f->meta->tag_get(f->meta, "library/app", "v1", &got), BERTH_ENOTFOUND);
    assert_int_equal(f->meta->manifest_delete(f->meta, "library/app", &img.manifest, 0), 0);
    assert_int_equal(f->meta->manifest_get(f->meta, "library/app", &img.manifest, &doc),
                     BERTH_ENOTFOUND);
    assert_int_equal(f->meta->blob_unlink(f->meta, "library/app", &img.layer, 0), 0);
    assert_int_equal(f->meta->blob_stat(f->meta, "library/app", &img.layer, &size),
                     BERTH_ENOTFOUND);
}

typedef struct names {
    char list[16][64];
    size_t n;
} names;

static int name_cb(const char *name, void *payload)
{
    names *ns = payload;
    snprintf(ns->list[ns->n++], 64, "%s", name);
    return 0;
}

static int tag_cb(const char *tag, const berth_digest *d, int64_t pushed, void *payload)
{
    (void)d;
    assert_true(pushed > 0);
    return name_cb(tag, payload);
}

static void test_fs_backends__catalog_and_tags_paging(void **state)
{
    fixture *f = *state;
    const char *repos[] = {"b/x", "a", "c", "a/blobs"};
    names ns;
    bool more;
    image img;

    for (size_t i = 0; i < 4; i++) {
        push_image(f, repos[i], "layer", "t1", &img);
    }
    for (size_t i = 2; i <= 5; i++) {
        char tag[8];
        snprintf(tag, sizeof(tag), "t%zu", i);
        assert_int_equal(put_manifest(f, "a", OCI_MANIFEST, img.manifest_json, NULL, 0, NULL, 0,
                                      NULL, NULL, tag, NULL),
                         0);
    }
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(f->meta->catalog(f->meta, NULL, 2, name_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 2);
    assert_true(more);
    assert_string_equal(ns.list[0], "a");
    assert_string_equal(ns.list[1], "a/blobs");
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(f->meta->catalog(f->meta, "a/blobs", 0, name_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 2);
    assert_false(more);
    assert_string_equal(ns.list[0], "b/x");
    assert_string_equal(ns.list[1], "c");
    /* a/blobs lives in ROOT/a/_blobs, beside the layout of a */
    {
        char path[512];
        snprintf(path, sizeof(path), "%s/a/_blobs/index.json", f->root);
        assert_int_equal(access(path, F_OK), 0);
    }
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(f->meta->tags(f->meta, "a", "t2", 2, tag_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 2);
    assert_true(more);
    assert_string_equal(ns.list[0], "t3");
    assert_string_equal(ns.list[1], "t4");
    assert_int_equal(f->meta->tags(f->meta, "nope", NULL, 0, tag_cb, &ns, &more), BERTH_ENOTFOUND);
    reopen(f);
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(f->meta->catalog(f->meta, NULL, 0, name_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 4);
}

typedef struct refs_seen {
    berth_meta_referrer list[8];
    char at[8][64];
    size_t n;
} refs_seen;

static int referrer_cb(const berth_meta_referrer *r, void *payload)
{
    refs_seen *s = payload;
    s->list[s->n] = *r;
    snprintf(s->at[s->n], 64, "%s", r->artifact_type ? r->artifact_type : "");
    s->n++;
    return 0;
}

static const char *make_referrer(char *buf, size_t len, const image *subject, const char *type,
                                 const berth_digest *config, int n)
{
    snprintf(buf, len,
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\",\"artifactType\":\"%s\","
             "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"%s\","
             "\"size\":2},\"layers\":[],\"subject\":{\"mediaType\":\"" OCI_MANIFEST "\","
             "\"digest\":\"%s\",\"size\":%zu},\"annotations\":{\"n\":\"%d\"}}",
             type, config->str, subject->manifest.str, strlen(subject->manifest_json), n);
    return buf;
}

static void test_fs_backends__referrers_and_manifests(void **state)
{
    fixture *f = *state;
    image img;
    berth_digest empty, r1, r2, idx;
    char b1[1024], b2[1024], index[1024];
    refs_seen seen;
    bool more;

    push_image(f, "app", "layer", "v1", &img);
    empty = put_blob(f, "app", "{}");
    make_referrer(b1, sizeof(b1), &img, "application/x-sig", &empty, 1);
    make_referrer(b2, sizeof(b2), &img, "application/x-sbom", &empty, 2);
    assert_int_equal(put_manifest(f, "app", OCI_MANIFEST, b1, &empty, 1, NULL, 0, &img.manifest,
                                  "application/x-sig", NULL, &r1),
                     0);
    assert_int_equal(put_manifest(f, "app", OCI_MANIFEST, b2, &empty, 1, NULL, 0, &img.manifest,
                                  "application/x-sbom", NULL, &r2),
                     0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(
        f->meta->referrers(f->meta, "app", &img.manifest, NULL, NULL, 0, referrer_cb, &seen, &more),
        0);
    assert_int_equal(seen.n, 2);
    assert_true(strcmp(seen.list[0].digest.str, seen.list[1].digest.str) < 0);
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(f->meta->referrers(f->meta, "app", &img.manifest, "application/x-sbom", NULL,
                                        0, referrer_cb, &seen, &more),
                     0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.list[0].digest.str, r2.str);
    assert_string_equal(seen.at[0], "application/x-sbom");
    assert_int_equal(seen.list[0].size, strlen(b2));

    /* an index whose child is the image: the image cannot go while the index is there */
    snprintf(index, sizeof(index),
             "{\"schemaVersion\":2,\"mediaType\":\"" OCI_INDEX "\",\"manifests\":[{\"mediaType\":"
             "\"" OCI_MANIFEST "\",\"digest\":\"%s\",\"size\":%zu}]}",
             img.manifest.str, strlen(img.manifest_json));
    assert_int_equal(put_manifest(f, "app", OCI_INDEX, index, NULL, 0, &img.manifest, 1, NULL, NULL,
                                  "multi", &idx),
                     0);
    reopen(f); /* the children are read from the stored index */
    assert_int_equal(f->meta->manifest_delete(f->meta, "app", &img.manifest, 0), BERTH_EINUSE);
    /* a tagged or young manifest is not garbage collection's to delete */
    assert_int_equal(f->meta->manifest_delete(f->meta, "app", &idx, (int64_t)time(NULL) + 10),
                     BERTH_EBUSY);
    assert_int_equal(f->meta->manifest_delete(f->meta, "app", &r1, (int64_t)time(NULL) - 3600),
                     BERTH_EBUSY);
    /* referrers survive a reopen: subject and artifactType are in index.json */
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(
        f->meta->referrers(f->meta, "app", &img.manifest, NULL, NULL, 1, referrer_cb, &seen, &more),
        0);
    assert_int_equal(seen.n, 1);
    assert_true(more);
}

typedef struct mf_seen {
    size_t n, blobs, children, tagged;
} mf_seen;

static int manifest_cb(const berth_meta_manifest *m, void *payload)
{
    mf_seen *s = payload;
    s->n++;
    s->blobs += m->nblobs;
    s->children += m->nchildren;
    s->tagged += m->ntags;
    assert_null(m->data);
    assert_true(m->pushed > 0);
    return 0;
}

static int link_cb(const berth_digest *d, uint64_t size, int64_t linked, void *payload)
{
    (void)d;
    (void)size;
    assert_true(linked > 0);
    (*(size_t *)payload)++;
    return 0;
}

#define NONDIST                                                                                    \
    "{\"schemaVersion\":2,\"mediaType\":\"" OCI_MANIFEST "\",\"config\":{\"mediaType\":"           \
    "\"application/vnd.oci.image.config.v1+json\",\"digest\":\"%s\",\"size\":%zu},"                \
    "\"layers\":[{\"mediaType\":\"application/vnd.oci.image.layer.nondistributable.v1.tar\","      \
    "\"digest\":\"sha256:1111111111111111111111111111111111111111111111111111111111111111\","      \
    "\"size\":5}]}"

static void test_fs_backends__manifests_and_links_listing(void **state)
{
    fixture *f = *state;
    image img;
    mf_seen seen = {0, 0, 0, 0};
    size_t nlinks = 0;

    char text[1024];

    push_image(f, "app", "layer", "v1", &img);
    snprintf(text, sizeof(text), NONDIST, img.config.str, strlen(img.config_json));
    assert_int_equal(
        put_manifest(f, "app", OCI_MANIFEST, text, &img.config, 1, NULL, 0, NULL, NULL, NULL, NULL),
        0);
    assert_int_equal(f->meta->manifests(f->meta, "app", manifest_cb, &seen), 0);
    assert_int_equal(seen.n, 2);
    assert_int_equal(seen.blobs, 3); /* config + layer, config (the foreign layer left out) */
    assert_int_equal(seen.tagged, 1);
    /* links: config and layer, not the manifests stored beside them */
    assert_int_equal(f->meta->links(f->meta, "app", link_cb, &nlinks), 0);
    assert_int_equal(nlinks, 2);
}

static void test_fs_backends__upload_records(void **state)
{
    fixture *f = *state;
    berth_meta_upload u, got, other;
    berth_meta_upload_limits limits = {0, 2, 1};

    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "0123abcd");
    u.repo = "app";
    u.owner = "alice";
    u.hash_state = "";
    u.created = u.updated = 1000;
    assert_int_equal(f->meta->upload_create(f->meta, &u, &limits), 0);
    assert_int_equal(f->meta->upload_create(f->meta, &u, &limits), BERTH_EEXISTS);
    other = u;
    snprintf(other.id, sizeof(other.id), "0123abce");
    assert_int_equal(f->meta->upload_create(f->meta, &other, &limits), BERTH_EBUSY); /* owner */
    other.owner = "";
    assert_int_equal(f->meta->upload_create(f->meta, &other, &limits), 0);
    snprintf(other.id, sizeof(other.id), "0123abcf");
    assert_int_equal(f->meta->upload_create(f->meta, &other, &limits), BERTH_EBUSY); /* repo */

    assert_int_equal(f->meta->upload_get(f->meta, "other", "0123abcd", &got), BERTH_ENOTFOUND);
    assert_int_equal(f->meta->upload_acquire(f->meta, "app", "0123abcd", &got), 0);
    assert_int_equal(got.size, 0);
    assert_null(got.backend_state);
    berth_meta_upload_dispose(&got);
    assert_int_equal(f->meta->upload_acquire(f->meta, "app", "0123abcd", &got), BERTH_EBUSY);
    u.size = 42;
    u.hash_state = "state-text";
    u.backend_state = "fs";
    u.updated = 2000;
    assert_int_equal(f->meta->upload_update(f->meta, &u), 0);
    f->meta->upload_release(f->meta, "0123abcd");

    /* records are durable: rebuilt at open, not held by anybody */
    reopen(f);
    assert_int_equal(f->meta->upload_acquire(f->meta, "app", "0123abcd", &got), 0);
    assert_int_equal(got.size, 42);
    assert_string_equal(got.hash_state, "state-text");
    assert_string_equal(got.backend_state, "fs");
    assert_string_equal(got.owner, "alice");
    assert_int_equal(got.created, 1000);
    assert_int_equal(got.updated, 2000);
    berth_meta_upload_dispose(&got);
    assert_int_equal(f->meta->upload_delete(f->meta, "0123abcd"), 0);
    assert_int_equal(f->meta->upload_get(f->meta, "app", "0123abcd", &got), BERTH_ENOTFOUND);
    assert_int_equal(f->meta->upload_delete(f->meta, "0123abcd"), BERTH_ENOTFOUND);
}

static void test_fs_backends__torn_record_update_keeps_the_previous(void **state)
{
    fixture *f = *state;
    berth_meta_upload u, got;
    char path[512];
    FILE *fp;

    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "feed");
    u.repo = "app";
    u.owner = "";
    u.hash_state = "";
    u.created = u.updated = 1000;
    assert_int_equal(f->meta->upload_create(f->meta, &u, NULL), 0);
    u.size = 10;
    u.hash_state = "h10";
    u.backend_state = "fs";
    assert_int_equal(f->meta->upload_update(f->meta, &u), 0);
    u.size = 20;
    u.hash_state = "h20";
    assert_int_equal(f->meta->upload_update(f->meta, &u), 0);
    reopen(f);
    assert_int_equal(f->meta->upload_get(f->meta, "app", "feed", &got), 0);
    assert_int_equal(got.size, 20);
    assert_string_equal(got.hash_state, "h20");
    berth_meta_upload_dispose(&got);

    /* a crash in the middle of the next update spoils the slot it writes, not the other */
    u.size = 30;
    u.hash_state = "h30";
    assert_int_equal(f->meta->upload_update(f->meta, &u), 0);
    close_backends(f);
    snprintf(path, sizeof(path), "%s/_berth/uploads/feed.json", f->root);
    fp = fopen(path, "r+");
    assert_non_null(fp);
    /* seq 4 went to slot 0: tear it after its checksum line */
    assert_int_equal(fseek(fp, 100, SEEK_SET), 0);
    fputs("torn", fp);
    fclose(fp);
    open_backends(f, false);
    assert_int_equal(f->meta->upload_get(f->meta, "app", "feed", &got), 0);
    assert_int_equal(got.size, 20);
    assert_string_equal(got.hash_state, "h20");
    berth_meta_upload_dispose(&got);
}

typedef struct waiter {
    fixture *f;
    berth_digest d;
    int rc;
    atomic_bool done;
} waiter;

static void *link_waiter(void *arg)
{
    waiter *w = arg;
    w->rc = w->f->meta->blob_link(w->f->meta, "app", &w->d, 12);
    atomic_store(&w->done, true);
    return NULL;
}

static void test_fs_backends__gc_claims(void **state)
{
    fixture *f = *state;
    berth_digest loose = put_blob(f, NULL, "loose bytes");
    berth_digest linked = put_blob(f, "app", "linked bytes"), d;
    berth_meta_claim *claim = NULL, *second = NULL;
    int64_t later = (int64_t)time(NULL) + 10;
    uint64_t size;

    /* young blobs are not claimed */
    assert_int_equal(
        f->meta->gc_blob_claim(f->meta, NULL, (int64_t)time(NULL) - 3600, &d, &size, &claim),
        BERTH_ENOTFOUND);
    /* only the blob no repository links */
    assert_int_equal(f->meta->gc_blob_claim(f->meta, NULL, later, &d, &size, &claim), 0);
    assert_string_equal(d.str, loose.str);
    assert_int_equal(size, strlen("loose bytes"));
    /* the claimed one is skipped by another claim, and the linked one is never a candidate */
    assert_int_equal(f->meta->gc_blob_claim(f->meta, NULL, later, &d, &size, &second),
                     BERTH_ENOTFOUND);
    assert_int_equal(f->blobs->remove(f->blobs, &loose), 0);
    assert_int_equal(f->meta->gc_blob_release(f->meta, claim, true), 0);
    /* a link of a removed blob: not found */
    assert_int_equal(f->meta->blob_link(f->meta, "app", &loose, 11), BERTH_ENOTFOUND);
    /* a blob that loses its last link during a pass is found by the pass's next claims */
    assert_int_equal(f->meta->blob_unlink(f->meta, "app", &linked, 0), 0);
    assert_int_equal(f->meta->gc_blob_claim(f->meta, "sha256:0", later, &d, &size, &claim), 0);
    assert_string_equal(d.str, linked.str);
    /* a claimed blob makes a link wait; released (not deleted), the link is made */
    {
        waiter wt = {f, linked, 1, false};
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, link_waiter, &wt), 0);
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
        assert_false(atomic_load(&wt.done));
        assert_int_equal(f->meta->gc_blob_release(f->meta, claim, false), 0);
        pthread_join(th, NULL);
        assert_int_equal(wt.rc, 0);
        assert_int_equal(f->meta->blob_stat(f->meta, "app", &linked, &size), 0);
    }
}

static void test_fs_backends__read_only_and_lock(void **state)
{
    fixture *f = *state;
    berth_blob_backend *b2 = NULL;
    berth_meta_backend *m2 = NULL;
    berth_fs_options locked = {false, true, false, 0};
    berth_fs_options ro = {false, false, true, 0};
    berth_blob_writer *w = NULL;
    berth_digest d, got;
    image img;

    push_image(f, "app", "layer", "v1", &img);
    /* one writer per root */
    assert_int_equal(berth_fs_backends_open(&b2, &m2, f->root, &locked), BERTH_EBUSY);
    /* a reader beside it sees everything and writes nothing */
    assert_int_equal(berth_fs_backends_open(&b2, &m2, f->root, &ro), 0);
    assert_int_equal(m2->tag_get(m2, "app", "v1", &got), 0);
    assert_string_equal(got.str, img.manifest.str);
    d = digest_of("x");
    assert_int_equal(b2->writer_open(&w, b2, "ro-1", NULL, 0), BERTH_EIO);
    assert_int_equal(m2->blob_link(m2, "app", &img.layer, 5), BERTH_EIO);
    assert_int_equal(m2->tag_delete(m2, "app", "v1", NULL), BERTH_EIO);
    assert_int_equal(m2->manifest_delete(m2, "app", &img.manifest, 0), BERTH_EIO);
    assert_int_equal(b2->remove(b2, &img.layer), BERTH_EIO);
    assert_int_equal(m2->blob_touch(m2, &d, 1), BERTH_EIO);
    /* either order of free */
    b2->free(b2);
    m2->free(m2);
    /* a missing root is not found when read-only */
    assert_int_equal(berth_fs_backends_open(&b2, &m2, "/nonexistent/berth-root", &ro),
                     BERTH_ENOTFOUND);
}

/* ---- concurrency --------------------------------------------------------------------------- */

typedef struct race {
    fixture *f;
    image a, b;
    atomic_bool stop;
    atomic_int links, reads, claims;
} race;

static void *race_pusher(void *arg)
{
    race *r = arg;
    berth_digest refs[2];
    /* at least 300 puts, and on until every other thread has done its work once (a loaded
       machine may not schedule them before 300 puts are done) */
    for (int i = 0; i < 300 || ((atomic_load(&r->reads) == 0 || atomic_load(&r->links) == 0 ||
                                 atomic_load(&r->claims) == 0) &&
                                i < 1000000);
         i++) {
        const image *img = i % 2 ? &r->a : &r->b;
        refs[0] = img->config;
        refs[1] = img->layer;
        assert_int_equal(put_manifest(r->f, "race", OCI_MANIFEST, img->manifest_json, refs, 2, NULL,
                                      0, NULL, NULL, "latest", NULL),
                         0);
    }
    atomic_store(&r->stop, true);
    return NULL;
}

static void *race_reader(void *arg)
{
    race *r = arg;
    while (!atomic_load(&r->stop)) {
        berth_meta_blob_doc doc;
        berth_digest d, got;
        assert_int_equal(r->f->meta->tag_get(r->f->meta, "race", "latest", &d), 0);
        assert_int_equal(r->f->meta->manifest_get(r->f->meta, "race", &d, &doc), 0);
        assert_int_equal(berth_digest_buffer(&got, BERTH_DIGEST_SHA256, doc.data, doc.len), 0);
        assert_string_equal(got.str, d.str);
        free(doc.data);
        free(doc.media_type);
        atomic_fetch_add(&r->reads, 1);
    }
    return NULL;
}

/* Link and unlink a blob no manifest needs, while garbage collection claims what is loose. */
static void *race_linker(void *arg)
{
    race *r = arg;
    fixture *f = r->f;
    const char *text = "a blob that comes and goes";
    berth_digest d = digest_of(text);
    uint64_t size;
    unsigned n = 0;

    while (!atomic_load(&r->stop)) {
        berth_blob_writer *w = NULL;
        char id[32];
        int rc;

        snprintf(id, sizeof(id), "aaaa-%u", n++);
        assert_int_equal(f->meta->blob_touch(f->meta, &d, strlen(text)), 0);
        assert_int_equal(f->blobs->writer_open(&w, f->blobs, id, NULL, 0), 0);
        assert_int_equal(w->write(w, text, strlen(text)), 0);
        assert_int_equal(w->commit(w, &d, NULL), 0);
        rc = f->meta->blob_link(f->meta, "race2", &d, strlen(text));
        /* garbage collection (with no grace here) may take the pooled bytes between the commit
           and the link: then the link fails whole, else it holds the bytes */
        if (rc == BERTH_ENOTFOUND) {
            assert_int_equal(f->meta->blob_stat(f->meta, "race2", &d, &size), BERTH_ENOTFOUND);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(f->meta->blob_stat(f->meta, "race2", &d, &size), 0);
        assert_int_equal(size, strlen(text));
        assert_int_equal(f->meta->blob_unlink(f->meta, "race2", &d, 0), 0);
        atomic_fetch_add(&r->links, 1);
    }
    return NULL;
}

static void *race_collector(void *arg)
{
    race *r = arg;
    fixture *f = r->f;
    while (!atomic_load(&r->stop)) {
        berth_meta_claim *claim = NULL;
        berth_digest d;
        uint64_t size;
        /* no grace: everything loose counts as old */
        int rc = f->meta->gc_blob_claim(f->meta, NULL, (int64_t)time(NULL) + 10, &d, &size, &claim);
        if (rc == BERTH_ENOTFOUND) {
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(f->blobs->remove(f->blobs, &d), 0);
        assert_int_equal(f->meta->gc_blob_release(f->meta, claim, true), 0);
        atomic_fetch_add(&r->claims, 1);
    }
    return NULL;
}

static void test_fs_backends__concurrent_pushes_reads_links_and_claims(void **state)
{
    fixture *f = *state;
    race r;
    pthread_t threads[5];

    memset(&r, 0, sizeof(r));
    r.f = f;
    push_image(f, "race", "layer a", "latest", &r.a);
    push_image(f, "race", "layer b", "latest", &r.b);
    assert_int_equal(pthread_create(&threads[0], NULL, race_pusher, &r), 0);
    assert_int_equal(pthread_create(&threads[1], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&threads[2], NULL, race_reader, &r), 0);
    assert_int_equal(pthread_create(&threads[3], NULL, race_linker, &r), 0);
    assert_int_equal(pthread_create(&threads[4], NULL, race_collector, &r), 0);
    for (size_t i = 0; i < 5; i++) {
        pthread_join(threads[i], NULL);
    }
    assert_true(atomic_load(&r.reads) > 0);
    assert_true(atomic_load(&r.links) > 0);
    assert_true(atomic_load(&r.claims) > 0);
}

/* ---- compatibility with the store of earlier versions ----------------------------------- */

static berth_store *open_store(const char *root)
{
    berth_store_options opts;
    berth_store *s = NULL;
    berth_store_options_init(&opts);
    opts.fsync = false;
    assert_int_equal(berth_store_open(&s, root, &opts), 0);
    return s;
}

static void test_fs_backends__reads_a_root_of_the_store(void **state)
{
    fixture *f = *state;
    berth_store *s;
    berth_put_result res, sig;
    berth_digest config, layer, empty, got;
    berth_meta_blob_doc doc;
    char cfg[512], text[4096], ref[1024];
    refs_seen seen;
    image subject;
    uint64_t size;
    bool more;

    close_backends(f);
    s = open_store(f->root);
    layer = store_push_blob(s, "lib/app", "store layer");
    snprintf(cfg, sizeof(cfg), config_text, layer.str);
    config = store_push_blob(s, "lib/app", cfg);
    snprintf(text, sizeof(text), "%s",
             oci_image_manifest(&config, strlen(cfg), &layer, strlen("store layer"), NULL));
    assert_int_equal(
        berth_store_manifest_put(&res, s, "lib/app", "v1", OCI_MANIFEST, text, strlen(text)), 0);
    empty = store_push_blob(s, "lib/app", "{}");
    subject.manifest = res.digest;
    snprintf(subject.manifest_json, sizeof(subject.manifest_json), "%s", text);
    make_referrer(ref, sizeof(ref), &subject, "application/x-sig", &empty, 7);
    assert_int_equal(berth_store_manifest_put(&sig, s, "lib/app", digest_of(ref).str, OCI_MANIFEST,
                                              ref, strlen(ref)),
                     0);
    berth_store_free(s);

    open_backends(f, false);
    assert_int_equal(f->meta->tag_get(f->meta, "lib/app", "v1", &got), 0);
    assert_string_equal(got.str, res.digest.str);
    assert_int_equal(f->meta->manifest_get(f->meta, "lib/app", &res.digest, &doc), 0);
    assert_int_equal(doc.len, strlen(text));
    assert_memory_equal(doc.data, text, doc.len);
    assert_string_equal(doc.media_type, OCI_MANIFEST);
    free(doc.data);
    free(doc.media_type);
    assert_int_equal(f->meta->blob_stat(f->meta, "lib/app", &layer, &size), 0);
    assert_int_equal(size, strlen("store layer"));
    assert_int_equal(f->blobs->stat(f->blobs, &config, &size), 0);
    assert_int_equal(size, strlen(cfg));
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(f->meta->referrers(f->meta, "lib/app", &res.digest, NULL, NULL, 0, referrer_cb,
                                        &seen, &more),
                     0);
    assert_int_equal(seen.n, 1);
    assert_string_equal(seen.list[0].digest.str, sig.digest.str);
    assert_string_equal(seen.at[0], "application/x-sig");
}

typedef struct store_names {
    char list[8][64];
    size_t n;
} store_names;

static int store_name_cb(const char *name, void *payload)
{
    store_names *ns = payload;
    snprintf(ns->list[ns->n++], 64, "%s", name);
    return 0;
}

static void test_fs_backends__the_store_reads_what_fs_writes(void **state)
{
    fixture *f = *state;
    const berth_stored_manifest *m = NULL;
    berth_buf refs = BERTH_BUF_INIT;
    berth_digest empty, r1;
    store_names ns;
    berth_store *s;
    image img;
    char ref[1024];
    uint64_t size;
    bool more;
    int fd = -1;

    push_image(f, "lib/app", "fs layer", "v1", &img);
    empty = put_blob(f, "lib/app", "{}");
    make_referrer(ref, sizeof(ref), &img, "application/x-sig", &empty, 1);
    assert_int_equal(put_manifest(f, "lib/app", OCI_MANIFEST, ref, &empty, 1, NULL, 0,
                                  &img.manifest, "application/x-sig", NULL, &r1),
                     0);
    close_backends(f);

    s = open_store(f->root);
    assert_int_equal(berth_store_manifest_get(&m, s, "lib/app", "v1"), 0);
    assert_string_equal(m->digest.str, img.manifest.str);
    assert_int_equal(m->len, strlen(img.manifest_json));
    assert_memory_equal(m->data, img.manifest_json, m->len);
    assert_string_equal(m->media_type, OCI_MANIFEST);
    berth_manifest_release(m);
    assert_int_equal(berth_store_blob_open(s, "lib/app", &img.layer, &fd, &size), 0);
    assert_int_equal(size, strlen("fs layer"));
    close(fd);
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(berth_store_tags(s, "lib/app", NULL, 0, store_name_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.list[0], "v1");
    assert_int_equal(berth_store_referrers(&refs, s, "lib/app", &img.manifest, NULL, NULL), 0);
    assert_non_null(strstr(refs.ptr, r1.str));
    assert_non_null(strstr(refs.ptr, "application/x-sig"));
    assert_non_null(strstr(refs.ptr, "\"n\":\"1\""));
    berth_buf_dispose(&refs);
    berth_store_free(s);
    open_backends(f, false); /* for the teardown */
}

/* Counts what a blob GET asks the backends (blob_open_one_step). */
static atomic_int stat_calls, open_fd_calls;
static int (*real_blob_stat)(berth_meta_backend *, const char *, const berth_digest *, uint64_t *);
static int (*real_open_fd)(berth_blob_backend *, const berth_digest *, int *, uint64_t *);

static int counting_blob_stat(berth_meta_backend *b, const char *repo, const berth_digest *d,
                              uint64_t *size_out)
{
    atomic_fetch_add(&stat_calls, 1);
    return real_blob_stat(b, repo, d, size_out);
}

static int counting_open_fd(berth_blob_backend *b, const berth_digest *d, int *fd_out,
                            uint64_t *size_out)
{
    atomic_fetch_add(&open_fd_calls, 1);
    return real_open_fd(b, d, fd_out, size_out);
}

/*
 * A blob GET on fs opens the repository's link, the pool file's hard link, once: no
 * blob_stat() then open_fd() of the pool (two path walks). The checks stay: a blob of another
 * repository is not found, nor one whose link was deleted.
 */
static void test_fs_backends__blob_open_one_step(void **state)
{
    fixture *f = *state;
    berth_digest d = put_blob(f, "lib/app", "one open per GET"), other;
    berth_blob_location where;
    berth_store *s = NULL;
    uint64_t size = 0;
    char text[64] = {0};
    int fd = -1;

    other = put_blob(f, "lib/other", "only in lib/other");
    assert_non_null(f->meta->blob_open_fd);
    real_blob_stat = f->meta->blob_stat;
    real_open_fd = f->blobs->open_fd;
    f->meta->blob_stat = counting_blob_stat;
    f->blobs->open_fd = counting_open_fd;
    atomic_store(&stat_calls, 0);
    atomic_store(&open_fd_calls, 0);
    assert_int_equal(berth_store_open_backends(&s, f->blobs, f->meta, NULL), 0);
    f->blobs = NULL; /* the store frees them */
    f->meta = NULL;

    assert_int_equal(berth_store_blob_locate(s, "lib/app", &d, &where), 0);
    assert_null(where.url);
    assert_true(where.fd >= 0);
    assert_int_equal(where.size, strlen("one open per GET"));
    assert_int_equal(pread(where.fd, text, sizeof(text) - 1, 0), (ssize_t)where.size);
    assert_string_equal(text, "one open per GET");
    close(where.fd);
    assert_int_equal(berth_store_blob_open(s, "lib/app", &d, &fd, &size), 0);
    assert_int_equal(size, strlen("one open per GET"));
    close(fd);
    assert_int_equal(atomic_load(&stat_calls), 0);
    assert_int_equal(atomic_load(&open_fd_calls), 0);

    /* a blob of another repository stays unknown here */
    assert_int_equal(berth_store_blob_locate(s, "lib/app", &other, &where), BERTH_ENOTFOUND);
    assert_int_equal(where.fd, -1);
    assert_null(strstr(berth_error_last(), f->root));
    assert_int_equal(berth_store_blob_open(s, "lib/app", &other, &fd, &size), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_locate(s, "no/such", &d, &where), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_locate(s, "Invalid", &d, &where), BERTH_EINVALID);
    /* nor is a deleted link served */
    assert_int_equal(berth_store_blob_delete(s, "lib/app", &d), 0);
    assert_int_equal(berth_store_blob_locate(s, "lib/app", &d, &where), BERTH_ENOTFOUND);
    assert_int_equal(berth_store_blob_open(s, "lib/app", &d, &fd, &size), BERTH_ENOTFOUND);
    berth_store_free(s);
    open_backends(f, false); /* for the teardown */
}

/*
 * A manifest GET on fs is lent the cache's bytes: no copy per request (two GETs get the same
 * bytes, not two copies), and the loan outlives a delete of the manifest and the store itself.
 * A manifest too big for the cache is lent a copy of its own.
 */
static void test_fs_backends__manifest_get_lends_the_cached_bytes(void **state)
{
    fixture *f = *state;
    const berth_stored_manifest *a = NULL, *b = NULL;
    berth_store_options opts;
    berth_store *s = NULL;
    image img;

    push_image(f, "lib/app", "lent layer", "v1", &img);
    close_backends(f);
    s = open_store(f->root);
    assert_int_equal(berth_store_manifest_get(&a, s, "lib/app", "v1"), 0);
    assert_int_equal(berth_store_manifest_get(&b, s, "lib/app", img.manifest.str), 0);
    assert_ptr_equal(a->data, b->data);
    assert_ptr_equal(a->media_type, b->media_type);
    assert_int_equal(a->len, strlen(img.manifest_json));
    berth_manifest_release(b);
    assert_int_equal(berth_store_manifest_delete(s, "lib/app", &img.manifest), 0);
    assert_int_equal(berth_store_manifest_get(&b, s, "lib/app", "v1"), BERTH_ENOTFOUND);
    berth_store_free(s);
    assert_memory_equal(a->data, img.manifest_json, a->len);
    assert_int_equal(a->data[a->len], '\0');
    assert_string_equal(a->media_type, OCI_MANIFEST);
    assert_string_equal(a->digest.str, img.manifest.str);
    berth_manifest_release(a);

    /* over the cache's budget: each GET its own copy, the same bytes */
    berth_store_options_init(&opts);
    opts.fsync = false;
    opts.cache_bytes = 64;
    assert_int_equal(berth_store_open(&s, f->root, &opts), 0);
    assert_int_equal(berth_store_manifest_put(&(berth_put_result){0}, s, "lib/app", "v2",
                                              OCI_MANIFEST, img.manifest_json,
                                              strlen(img.manifest_json)),
                     0);
    assert_int_equal(berth_store_manifest_get(&a, s, "lib/app", "v2"), 0);
    assert_int_equal(berth_store_manifest_get(&b, s, "lib/app", "v2"), 0);
    assert_ptr_not_equal(a->data, b->data);
    assert_int_equal(a->len, strlen(img.manifest_json));
    assert_memory_equal(a->data, img.manifest_json, a->len);
    assert_memory_equal(b->data, img.manifest_json, b->len);
    assert_string_equal(b->media_type, OCI_MANIFEST);
    berth_manifest_release(a);
    berth_manifest_release(b);
    berth_store_free(s);
    open_backends(f, false); /* for the teardown */
}

static void test_fs_backends__adopts_sessions_of_the_store(void **state)
{
    fixture *f = *state;
    berth_blob_writer *w = NULL;
    berth_meta_upload rec;
    berth_digest d = digest_of("first part, second part");
    berth_digest repo_key = digest_of("lib/app"), owner_key = digest_of("");
    berth_store *s;
    const char *id = "0123456789abcdef0123456789abcdef";
    char path[1024];
    uint64_t size;
    FILE *fp;

    close_backends(f);
    s = open_store(f->root);
    store_push_blob(s, "lib/app", "makes the repository");
    berth_store_free(s);
    /* a session as berth wrote it before the backends: <id>.<repo key>.<owner key>, the keys
       the first 16 hex digits of the SHA-256 of the repository's name and of the owner */
    snprintf(path, sizeof(path), "%s/_berth/uploads/%s.%.16s.%.16s", f->root, id, repo_key.str + 7,
             owner_key.str + 7);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fwrite("first part, ", 1, 12, fp), 12);
    fclose(fp);

    /* the session of the earlier layout gets a record and its bytes go on */
    open_backends(f, false);
    assert_int_equal(f->meta->upload_acquire(f->meta, "lib/app", id, &rec), 0);
    assert_int_equal(rec.size, 12);
    assert_string_equal(rec.owner, "");
    assert_string_equal(rec.hash_state, "");
    assert_int_equal(f->blobs->writer_open(&w, f->blobs, id, rec.backend_state, rec.size), 0);
    assert_int_equal(w->write(w, "second part", 11), 0);
    assert_int_equal(w->commit(w, &d, NULL), 0);
    assert_int_equal(f->meta->blob_link(f->meta, "lib/app", &d, 23), 0);
    assert_int_equal(f->meta->upload_delete(f->meta, id), 0);
    assert_int_equal(f->meta->blob_stat(f->meta, "lib/app", &d, &size), 0);
    assert_int_equal(size, 23);
    berth_meta_upload_dispose(&rec);
}

typedef struct problems {
    int corrupt, missing;
} problems;

static void problem_cb(berth_fsck_kind kind, const char *repo, const char *digest,
                       const char *detail, void *payload)
{
    problems *p = payload;
    (void)repo;
    (void)digest;
    (void)detail;
    p->corrupt += kind == BERTH_FSCK_CORRUPT_BLOB;
    p->missing += kind == BERTH_FSCK_MISSING_BLOB;
}

typedef struct du_seen {
    char repo[8][64];
    uint64_t exclusive[8], shared[8], blobs[8];
    size_t n;
} du_seen;

static void du_cb(const char *repo, uint64_t exclusive, uint64_t shared, uint64_t blobs,
                  void *payload)
{
    du_seen *d = payload;
    snprintf(d->repo[d->n], 64, "%s", repo);
    d->exclusive[d->n] = exclusive;
    d->shared[d->n] = shared;
    d->blobs[d->n] = blobs;
    d->n++;
}

static void test_fs_backends__fsck_du_usage(void **state)
{
    fixture *f = *state;
    berth_fsck_stats stats;
    problems p = {0, 0};
    du_seen du;
    image img;
    uint64_t total = 0, bytes = 0, blobs = 0;
    char path[512];
    FILE *fp;

    push_image(f, "a", "shared layer", "v1", &img);
    assert_int_equal(f->meta->blob_link(f->meta, "b", &img.layer, 12), 0);
    /* beside a live server (the lock held): read-only tools work, repairs wait */
    assert_int_equal(berth_fs_fsck(f->root, false, problem_cb, &p, &stats), 0);
    assert_int_equal(stats.problems, 0);
    assert_int_equal(stats.manifests_checked, 1);
    assert_int_equal(berth_fs_fsck(f->root, true, problem_cb, &p, &stats), BERTH_EBUSY);
    memset(&du, 0, sizeof(du));
    assert_int_equal(berth_fs_du(f->root, du_cb, &du, &total), 0);
    assert_int_equal(du.n, 2);
    assert_string_equal(du.repo[0], "a");
    assert_int_equal(du.shared[0], 12); /* the layer, also in b */
    assert_int_equal(du.blobs[0], 3);   /* layer, config, manifest */
    assert_int_equal(du.shared[1], 12);
    assert_int_equal(du.exclusive[1], 0);
    assert_int_equal(berth_fs_usage(f->root, &bytes, &blobs), 0);
    assert_int_equal(blobs, 3);
    assert_int_equal(bytes, total);
    assert_int_equal(bytes, 12 + strlen(img.config_json) + strlen(img.manifest_json));

    /* a corrupt layer is found, and with repair moved aside */
    snprintf(path, sizeof(path), "%s/_berth/blobs/sha256/%s", f->root,
             berth_digest_hex(&img.layer));
    fp = fopen(path, "r+");
    assert_non_null(fp);
    fputc('X', fp);
    fclose(fp);
    assert_int_equal(berth_fs_fsck(f->root, false, problem_cb, &p, &stats), 0);
    assert_true(p.corrupt >= 1);
    assert_int_equal(p.missing, 1); /* the manifest's layer is corrupt */
    close_backends(f);
    memset(&p, 0, sizeof(p));
    assert_int_equal(berth_fs_fsck(f->root, true, problem_cb, &p, &stats), 0);
    assert_int_equal(stats.repaired, 1);
    snprintf(path, sizeof(path), "%s/_berth/corrupt/%s", f->root, img.layer.str);
    assert_int_equal(access(path, F_OK), 0);
    assert_int_equal(berth_fs_usage("/nonexistent/berth-root", &bytes, &blobs), BERTH_ENOTFOUND);
    open_backends(f, false);
}

static void test_fs_backends__emptied_repository_stays_gone_after_reopen(void **state)
{
    fixture *f = *state;
    names ns;
    bool more;
    image img;
    berth_store *s;
    berth_digest d;

    push_image(f, "gone", "layer", "v1", &img);
    push_image(f, "kept", "layer", "v1", &img);
    assert_int_equal(f->meta->manifest_delete(f->meta, "gone", &img.manifest, 0), 0);
    assert_int_equal(f->meta->blob_unlink(f->meta, "gone", &img.layer, 0), 0);
    assert_int_equal(f->meta->repo_exists(f->meta, "gone"), 1); /* the config is still there */
    assert_int_equal(f->meta->blob_unlink(f->meta, "gone", &img.config, 0), 0);
    assert_int_equal(f->meta->repo_exists(f->meta, "gone"), 0);
    reopen(f);
    assert_int_equal(f->meta->repo_exists(f->meta, "gone"), 0);
    memset(&ns, 0, sizeof(ns));
    assert_int_equal(f->meta->catalog(f->meta, NULL, 0, name_cb, &ns, &more), 0);
    assert_int_equal(ns.n, 1);
    assert_string_equal(ns.list[0], "kept");
    assert_int_equal(f->meta->tags(f->meta, "gone", NULL, 0, tag_cb, &ns, &more), BERTH_ENOTFOUND);
    /* pushed again, it is back */
    push_image(f, "gone", "layer", "v2", &img);
    assert_int_equal(f->meta->tag_get(f->meta, "gone", "v2", &d), 0);

    /* the same for a repository the store of earlier versions emptied */
    close_backends(f);
    s = open_store(f->root);
    d = store_push_blob(s, "old", "bytes");
    assert_int_equal(berth_store_blob_delete(s, "old", &d), 0);
    berth_store_free(s);
    open_backends(f, false);
    assert_int_equal(f->meta->repo_exists(f->meta, "old"), 0);
}

static void test_fs_backends__durable_writes(void **state)
{
    fixture *f = *state;
    berth_fs_options opts = {true, true, false, 0};
    berth_meta_upload u;
    image img;
    berth_digest got;

    /* the same operations with every fsync on */
    close_backends(f);
    assert_int_equal(berth_fs_backends_open(&f->blobs, &f->meta, f->root, &opts), 0);
    push_image(f, "durable", "layer", "v1", &img);
    assert_int_equal(f->meta->tag_get(f->meta, "durable", "v1", &got), 0);
    assert_string_equal(got.str, img.manifest.str);
    memset(&u, 0, sizeof(u));
    snprintf(u.id, sizeof(u.id), "d0d0");
    u.repo = "durable";
    u.owner = "";
    u.hash_state = "";
    u.created = u.updated = 1;
    assert_int_equal(f->meta->upload_create(f->meta, &u, NULL), 0);
    u.size = 3;
    assert_int_equal(f->meta->upload_update(f->meta, &u), 0);
    assert_int_equal(f->meta->upload_delete(f->meta, "d0d0"), 0);
    assert_int_equal(f->meta->manifest_delete(f->meta, "durable", &img.manifest, 0), 0);
    assert_int_equal(f->meta->blob_unlink(f->meta, "durable", &img.layer, 0), 0);
    assert_int_equal(f->blobs->remove(f->blobs, &img.layer), 0);
}

static void test_fs_backends__messages_name_no_path(void **state)
{
    fixture *f = *state;
    berth_meta_blob_doc doc;
    berth_digest d = put_blob(f, NULL, "some bytes");
    char path[512];
    image img;
    FILE *fp;

    /* a repository whose blobs/sha256 is a file: the link fails */
    push_image(f, "broken", "layer", "v1", &img);
    snprintf(path, sizeof(path), "%s/broken/blobs/sha256", f->root);
    assert_int_equal(berth__fs_rmtree(path), 0);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    assert_true(f->meta->blob_link(f->meta, "broken", &d, 10) < 0);
    assert_null(strstr(berth_error_last(), f->root));
    assert_null(strstr(berth_error_last(), "/tmp/"));
    /* a manifest whose bytes are gone is the storage's failure, not the client's */
    close_backends(f);
    open_backends(f, false);
    assert_int_equal(f->meta->manifest_get(f->meta, "broken", &img.manifest, &doc), BERTH_EIO);
    assert_null(strstr(berth_error_last(), f->root));
    /* a staging directory that vanished */
    snprintf(path, sizeof(path), "%s/_berth/tmp", f->root);
    assert_int_equal(berth__fs_rmtree(path), 0);
    assert_int_equal(f->meta->tag_delete(f->meta, "broken", "v1", NULL), BERTH_EIO);
    assert_null(strstr(berth_error_last(), f->root));
    assert_int_equal(berth__fs_mkdirs(path), 0);
}

/* ---- the layout as other tools read it --------------------------------------------------- */

static bool have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* Run a command and capture its output. */
static int run(char *out, size_t len, const char *cmd)
{
    FILE *p = popen(cmd, "r");
    size_t n = 0;
    assert_non_null(p);
    while (n + 1 < len) {
        size_t k = fread(out + n, 1, len - 1 - n, p);
        if (k == 0) {
            break;
        }
        n += k;
    }
    out[n] = '\0';
    return pclose(p);
}

static void test_fs_backends__umoci_and_skopeo_read_a_repository(void **state)
{
    fixture *f = *state;
    char cmd[1024], out[8192];
    image img;
    bool ran = false;

    push_image(f, "library/app", "a layer", "v1", &img);
    push_image(f, "library/app", "another layer", "v2", &img);
    if (have("umoci")) {
        snprintf(cmd, sizeof(cmd), "umoci ls --layout %s/library/app 2>&1", f->root);
        assert_int_equal(run(out, sizeof(out), cmd), 0);
        assert_non_null(strstr(out, "v1"));
        assert_non_null(strstr(out, "v2"));
        ran = true;
    }
    if (have("skopeo")) {
        snprintf(cmd, sizeof(cmd), "skopeo inspect --raw oci:%s/library/app:v2 2>&1", f->root);
        assert_int_equal(run(out, sizeof(out), cmd), 0);
        assert_string_equal(out, img.manifest_json);
        snprintf(cmd, sizeof(cmd), "skopeo inspect oci:%s/library/app:v2 2>&1", f->root);
        assert_int_equal(run(out, sizeof(out), cmd), 0);
        assert_non_null(strstr(out, img.manifest.str));
        assert_non_null(strstr(out, "amd64"));
        ran = true;
    }
    if (!ran) {
        skip();
    }
}

/* ---- the contract suites (tests/unit/helpers/) ----------------------------------------- */

/* Roots made for the suites, removed at the end. */
static char contract_roots[256][64];
static size_t ncontract_roots;

static int contract_pair(berth_blob_backend **blobs, berth_meta_backend **meta)
{
    berth_fs_options opts = {false, true, false, 0};
    char *root = contract_roots[ncontract_roots];
    if (ncontract_roots == 256) {
        return -1;
    }
    snprintf(root, 64, "/tmp/berth-fsb-contract-XXXXXX");
    if (!mkdtemp(root)) {
        return -1;
    }
    ncontract_roots++;
    return berth_fs_backends_open(blobs, meta, root, &opts);
}

static int contract_blobs(berth_blob_backend **out, void *payload)
{
    berth_meta_backend *meta = NULL;
    int rc = contract_pair(out, &meta);
    (void)payload;
    if (rc == 0) {
        meta->free(meta); /* the blob backend keeps the root */
    }
    return rc;
}

/*
 * The metadata suite gives a blob_touch() no bytes ever follow; the store's upload writes them
 * between its touch and its link. On fs a link is a hard link to the pool's bytes, so the
 * harness plays the upload: its touch of a blob the pool lacks first commits `size` bytes
 * under that digest through the blob backend, then touches. (Its free member frees the blob
 * backend too.)
 */
typedef struct contract_meta {
    berth_meta_backend *meta;
    berth_blob_backend *blobs;
    int (*touch)(berth_meta_backend *b, const berth_digest *digest, uint64_t size);
    void (*free)(berth_meta_backend *b);
} contract_meta;

static contract_meta contract_metas[256];
static size_t ncontract_metas;
static pthread_mutex_t contract_lock = PTHREAD_MUTEX_INITIALIZER;

static contract_meta *contract_find(berth_meta_backend *b)
{
    contract_meta *found = NULL;
    pthread_mutex_lock(&contract_lock);
    for (size_t i = 0; i < ncontract_metas && !found; i++) {
        if (contract_metas[i].meta == b) {
            found = &contract_metas[i];
        }
    }
    pthread_mutex_unlock(&contract_lock);
    return found;
}

static int contract_touch(berth_meta_backend *b, const berth_digest *digest, uint64_t size)
{
    contract_meta *c = contract_find(b);
    berth_blob_writer *w = NULL;
    uint64_t have;
    static atomic_uint n;
    char id[32], zeros[4096] = {0};
    int rc = c->touch(b, digest, size);

    /* then the upload's commit, when the bytes are not there yet */
    if (rc == 0 && c->blobs->stat(c->blobs, digest, &have) == BERTH_ENOTFOUND) {
        snprintf(id, sizeof(id), "7041c4-%u", atomic_fetch_add(&n, 1));
        rc = c->blobs->writer_open(&w, c->blobs, id, NULL, 0);
        for (uint64_t done = 0; rc == 0 && done < size; done += sizeof(zeros)) {
            rc = w->write(w, zeros, size - done < sizeof(zeros) ? size - done : sizeof(zeros));
        }
        if (rc == 0) {
            rc = w->commit(w, digest, NULL);
        } else if (w) {
            w->abort(w);
        }
    }
    return rc;
}

static void contract_free(berth_meta_backend *b)
{
    contract_meta *c = contract_find(b);
    c->blobs->free(c->blobs);
    c->free(b);
    c->meta = NULL;
}

static int contract_meta_open(berth_meta_backend **out, void *payload)
{
    contract_meta *c;
    int rc;
    (void)payload;
    pthread_mutex_lock(&contract_lock);
    c = ncontract_metas < 256 ? &contract_metas[ncontract_metas++] : NULL;
    pthread_mutex_unlock(&contract_lock);
    if (!c) {
        return -1;
    }
    rc = contract_pair(&c->blobs, &c->meta);
    if (rc == 0) {
        c->touch = c->meta->blob_touch;
        c->free = c->meta->free;
        c->meta->blob_touch = contract_touch;
        c->meta->free = contract_free;
        *out = c->meta;
    }
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fs_backends__blob_read_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__writer_resumes_after_reopen, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__commit_check_and_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__foreach_and_reap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__manifest_put_get_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__catalog_and_tags_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__referrers_and_manifests, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__manifests_and_links_listing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__upload_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__torn_record_update_keeps_the_previous,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__gc_claims, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__read_only_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__concurrent_pushes_reads_links_and_claims,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__reads_a_root_of_the_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__the_store_reads_what_fs_writes, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__blob_open_one_step, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__manifest_get_lends_the_cached_bytes,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__adopts_sessions_of_the_store, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__fsck_du_usage, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_fs_backends__emptied_repository_stays_gone_after_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__durable_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__messages_name_no_path, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__read_fd_and_expect, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fs_backends__umoci_and_skopeo_read_a_repository, setup,
                                        teardown),
    };
    int failed = cmocka_run_group_tests(tests, NULL, NULL);

    failed += blob_contract_run("blob_contract/fs", contract_blobs, NULL);
    failed += meta_contract_run("meta_contract/fs", contract_meta_open, NULL);
    for (size_t i = 0; i < ncontract_roots; i++) {
        berth__fs_rmtree(contract_roots[i]);
    }
    return failed;
}
