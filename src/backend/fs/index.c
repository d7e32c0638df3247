/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A repository in memory: its manifests (by digest) and tags (sorted), loaded from the
 * layout's index.json and written back as index.json after every change, in the form berth
 * has always written (src/store/repo.c before the backends): one entry per tag carrying
 * org.opencontainers.image.ref.name, one entry without it per untagged manifest, each with
 * io.berth.pushed, io.berth.subject, io.berth.sparse when sparse, and the descriptor's
 * artifactType, so that loading reads no manifest and the layout alone says everything.
 *
 * The cache of manifest bytes: reference-counted buffers charged what they cost, on an LRU
 * list under one mutex, evicted least recently used beyond the budget. A manifest's entry
 * holds one reference in its slot; whoever clears the slot (eviction, the entry's free) drops
 * it, under the cache's mutex.
 */
#include "backend/fs/fs_internal.h"

#include "base/log.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <jansson.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define REF_NAME           "org.opencontainers.image.ref.name"
#define SUBJECT_ANNOTATION "io.berth.subject"
#define SPARSE_ANNOTATION  "io.berth.sparse"
#define INDEX_MAX          (256u * 1024 * 1024)
/* stored manifests are read whatever the limit is now */
#define STORED_MANIFEST_MAX (256u * 1024 * 1024)

static const char empty_index[] =
    "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","
    "\"manifests\":[]}";
static const char layout_header[] = "{\"imageLayoutVersion\":\"1.0.0\"}";

/* ---- the cache ---------------------------------------------------------------------------- */

static void lru_unlink(berth__fsb_cache *cache, berth__fsb_cached *c)
{
    if (!c->listed) {
        return;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        cache->head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        cache->tail = c->prev;
    }
    c->prev = c->next = NULL;
    c->listed = false;
    cache->bytes -= c->charge;
}

static void lru_push_front(berth__fsb_cache *cache, berth__fsb_cached *c)
{
    c->prev = NULL;
    c->next = cache->head;
    if (cache->head) {
        cache->head->prev = c;
    } else {
        cache->tail = c;
    }
    cache->head = c;
    c->listed = true;
    cache->bytes += c->charge;
}

void berth__fsb_cache_release(berth__fsb_cached *c)
{
    if (c && atomic_fetch_sub(&c->refs, 1) == 1) {
        free(c->bytes);
        free(c);
    }
}

berth__fsb_cached *berth__fsb_cache_get(berth__fsb_cache *cache, berth__fsb_manifest *m)
{
    berth__fsb_cached *c;
    pthread_mutex_lock(&cache->lock);
    c = atomic_load(&m->cached);
    if (c) {
        /* the slot's reference keeps it alive while the lock is held */
        atomic_fetch_add(&c->refs, 1);
        lru_unlink(cache, c);
        lru_push_front(cache, c);
    }
    pthread_mutex_unlock(&cache->lock);
    return c;
}

static void loan_release(berth_meta_loan *loan)
{
    berth__fsb_cache_release(
        (berth__fsb_cached *)(void *)((char *)loan - offsetof(berth__fsb_cached, loan)));
}

berth__fsb_cached *berth__fsb_cache_put(berth__fsb_cache *cache, berth__fsb_manifest *m,
                                        const void *bytes, size_t len)
{
    size_t mt_len = strlen(m->media_type);
    berth__fsb_cached *c = calloc(1, sizeof(*c)), *had;

    if (!c || !(c->bytes = malloc(len + 1 + mt_len + 1))) {
        free(c);
        return NULL;
    }
    memcpy(c->bytes, bytes, len);
    c->bytes[len] = '\0';
    memcpy(c->bytes + len + 1, m->media_type, mt_len + 1);
    c->len = len;
    c->loan.data = c->bytes;
    c->loan.len = len;
    c->loan.media_type = c->bytes + len + 1;
    c->loan.release = loan_release;
    c->charge = sizeof(*c) + len + 1 + mt_len + 1 + 2 * 16; /* with malloc's overhead of each */
    atomic_init(&c->refs, 1);                               /* the caller's */
    if (c->charge > cache->budget) {
        return c; /* too big to cache: the caller's copy */
    }
    pthread_mutex_lock(&cache->lock);
    if ((had = atomic_load(&m->cached))) {
        /* another reader cached it first: that one, and ours goes */
        atomic_fetch_add(&had->refs, 1);
        pthread_mutex_unlock(&cache->lock);
        berth__fsb_cache_release(c);
        return had;
    }
    while (cache->tail && cache->bytes + c->charge > cache->budget) {
        berth__fsb_cached *old = cache->tail, *expected = old;
        berth__fsb_cached *_Atomic *slot = old->slot;
        lru_unlink(cache, old);
        old->slot = NULL; /* before the release, which may free it */
        if (slot && atomic_compare_exchange_strong(slot, &expected, NULL)) {
            berth__fsb_cache_release(old);
        }
    }
    atomic_fetch_add(&c->refs, 1); /* the slot's */
    c->slot = &m->cached;
    atomic_store(&m->cached, c);
    lru_push_front(cache, c);
    pthread_mutex_unlock(&cache->lock);
    return c;
}

void berth__fsb_cache_drop(berth__fsb_cache *cache, berth__fsb_manifest *m)
{
    berth__fsb_cached *c;
    pthread_mutex_lock(&cache->lock);
    c = atomic_exchange(&m->cached, NULL);
    if (c) {
        lru_unlink(cache, c);
        c->slot = NULL;
    }
    pthread_mutex_unlock(&cache->lock);
    berth__fsb_cache_release(c);
}

/* ---- entries ------------------------------------------------------------------------------ */

void berth__fsb_manifest_free(berth__fsb_manifest *m, berth__fsb_cache *cache)
{
    if (!m) {
        return;
    }
    if (cache) {
        berth__fsb_cache_drop(cache, m);
    }
    free(m->media_type);
    free(m->artifact_type);
    free(m->refs);
    free(m);
}

typedef struct free_ctx {
    berth__fsb_cache *cache;
} free_ctx;

static void free_entry_cb(void *value, void *payload)
{
    berth__fsb_manifest_free(value, ((free_ctx *)payload)->cache);
}

void berth__fsb_repo_free_state(berth__fsb_repo *r, berth__fsb_cache *cache)
{
    free_ctx ctx = {cache};
    berth__htab_foreach(&r->manifests, free_entry_cb, &ctx);
    berth__htab_dispose(&r->manifests);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i].name);
    }
    free(r->tags);
    r->tags = NULL;
    r->ntags = r->tags_cap = 0;
    r->loaded = false;
}

berth__fsb_repo *berth__fsb_repo_new(const berth__fsb_root *root, const char *name)
{
    berth__fsb_repo *r = calloc(1, sizeof(*r));
    berth_buf dir = BERTH_BUF_INIT;

    if (!r || berth_buf_puts(&dir, root->root) < 0 || berth_buf_puts(&dir, "/") < 0 ||
        berth__fsb_repo_path(&dir, name) < 0 || !(r->name = strdup(name))) {
        free(r ? r->name : NULL);
        free(r);
        berth_buf_dispose(&dir);
        return NULL;
    }
    r->dir = berth_buf_detach(&dir);
    pthread_rwlock_init(&r->lock, NULL);
    return r;
}

void berth__fsb_repo_free(berth__fsb_repo *r, berth__fsb_cache *cache)
{
    if (!r) {
        return;
    }
    berth__fsb_repo_free_state(r, cache);
    pthread_rwlock_destroy(&r->lock);
    free(r->name);
    free(r->dir);
    free(r);
}

size_t berth__fsb_tag_index(const berth__fsb_repo *r, const char *name, bool *found)
{
    size_t lo = 0, hi = r->ntags;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->tags[mid].name, name);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

int berth__fsb_set_tag(berth__fsb_repo *r, const char *tag, berth__fsb_manifest *m, int64_t pushed)
{
    bool found;
    size_t i = berth__fsb_tag_index(r, tag, &found);
    char *name;

    if (found) {
        r->tags[i].manifest->ntags--;
        r->tags[i].manifest = m;
        r->tags[i].pushed = pushed;
        m->ntags++;
        return 0;
    }
    if (r->ntags == r->tags_cap) {
        size_t cap = r->tags_cap ? r->tags_cap * 2 : 16;
        berth__fsb_tag *t = realloc(r->tags, cap * sizeof(*t));
        if (!t) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        r->tags = t;
        r->tags_cap = cap;
    }
    name = strdup(tag);
    if (!name) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    memmove(r->tags + i + 1, r->tags + i, (r->ntags - i) * sizeof(*r->tags));
    r->tags[i].name = name;
    r->tags[i].manifest = m;
    r->tags[i].pushed = pushed;
    r->ntags++;
    m->ntags++;
    return 0;
}

int berth__fsb_read_manifest(berth_buf *out, const berth__fsb_repo *r, const berth_digest *d)
{
    berth_buf path = BERTH_BUF_INIT;
    int rc = berth__fsb_blob_path(&path, r->dir, d);
    if (rc == 0) {
        rc = berth__fs_read_file(out, path.ptr, STORED_MANIFEST_MAX);
    }
    berth_buf_dispose(&path);
    return rc;
}

/* Describe a manifest from its bytes: artifactType and subject (an index.json written before
   berth recorded them there). */
static int describe(berth__fsb_repo *r, berth__fsb_manifest *m)
{
    berth_buf bytes = BERTH_BUF_INIT;
    berth_document_info *info = NULL;
    int rc = berth__fsb_read_manifest(&bytes, r, &m->digest);

    if (rc == 0) {
        rc = berth_document_inspect(&info, m->media_type, bytes.ptr, bytes.len);
    }
    if (rc == 0) {
        if (info->artifact_type && !(m->artifact_type = strdup(info->artifact_type))) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        if (info->subject) {
            m->has_subject = true;
            m->subject = info->subject->digest;
        }
    }
    berth_document_info_free(info);
    berth_buf_dispose(&bytes);
    return rc;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;
    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* An RFC 3339 UTC time as berth writes it ("2006-01-02T15:04:05Z"), or `fallback`. */
static int64_t parse_time(const char *text, int64_t fallback)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    uint64_t v[6];
    static const size_t at[6] = {0, 5, 8, 11, 14, 17}, len[6] = {4, 2, 2, 2, 2, 2};

    if (!text || strlen(text) != sizeof(shape) - 1) {
        return fallback;
    }
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] != 'd' && text[i] != shape[i]) {
            return fallback;
        }
    }
    for (size_t i = 0; i < 6; i++) {
        if (berth_parse_u64(&v[i], text + at[i], len[i], 9999) < 0) {
            berth_error_clear();
            return fallback;
        }
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60) {
        return fallback;
    }
    return days_from_civil((int64_t)v[0], (unsigned)v[1], (unsigned)v[2]) * 86400 +
           (int64_t)(v[3] * 3600 + v[4] * 60 + v[5]);
}

int berth__fsb_repo_load(berth__fsb_repo *r, berth__fsb_cache *cache)
{
    berth_buf path = BERTH_BUF_INIT, text = BERTH_BUF_INIT;
    json_t *doc = NULL, *list, *item;
    json_error_t jerr;
    int64_t loaded_at = (int64_t)time(NULL); /* the time of entries that have none */
    size_t i;
    int rc;

    berth__fsb_repo_free_state(r, cache);
    rc = berth_buf_printf(&path, "%s/index.json", r->dir);
    if (rc == 0) {
        rc = berth__fs_read_file(&text, path.ptr, INDEX_MAX);
    }
    if (rc == BERTH_ENOTFOUND) {
        /* a repository is known only once its layout exists: a vanished index.json is the
           storage's failure, never a "not found" that a caller would blame on the client */
        rc = berth_error_set(BERTH_EIO, "%s: index.json vanished", r->name);
    }
    if (rc < 0) {
        goto out;
    }
    doc = json_loadb(text.ptr, text.len, 0, &jerr);
    list = doc ? json_object_get(doc, "manifests") : NULL;
    if (!json_is_array(list)) {
        rc = berth_error_set(BERTH_EIO, "%s: index.json is not an OCI index (%s)", r->name,
                             doc ? "no manifests" : jerr.text);
        goto out;
    }
    json_array_foreach(list, i, item)
    {
        const char *digest = json_string_value(json_object_get(item, "digest"));
        const char *media = json_string_value(json_object_get(item, "mediaType"));
        json_t *size = json_object_get(item, "size");
        json_t *annotations = json_object_get(item, "annotations");
        const char *tag = json_string_value(json_object_get(annotations, REF_NAME));
        const char *subject = json_string_value(json_object_get(annotations, SUBJECT_ANNOTATION));
        int64_t pushed = parse_time(
            json_string_value(json_object_get(annotations, BERTH__FSB_PUSHED_ANNOTATION)),
            loaded_at);
        berth_digest d;
        berth__fsb_manifest *m;

        if (!digest || !media || !json_is_integer(size) || berth_digest_parse_str(&d, digest) < 0) {
            berth_error_clear();
            berth__log(BERTH_LOG_WARN, "%s: manifests[%zu] skipped: not a valid descriptor",
                       path.ptr, i);
            continue;
        }
        m = berth__htab_get(&r->manifests, d.str);
        if (!m) {
            m = calloc(1, sizeof(*m));
            if (!m || !(m->media_type = strdup(media))) {
                free(m);
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                goto out;
            }
            m->digest = d;
            m->size = (int64_t)json_integer_value(size);
            m->pushed = pushed;
            m->sparse = json_string_value(json_object_get(annotations, SPARSE_ANNOTATION)) != NULL;
            if (subject && (!*subject || berth_digest_parse_str(&m->subject, subject) == 0)) {
                const char *at = json_string_value(json_object_get(item, "artifactType"));
                m->has_subject = *subject != '\0';
                if (at && !(m->artifact_type = strdup(at))) {
                    berth__fsb_manifest_free(m, NULL);
                    rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                    goto out;
                }
            } else if (describe(r, m) < 0) {
                berth__log(BERTH_LOG_WARN, "%s: manifest %s: %s", r->name, d.str,
                           berth_error_last());
                berth_error_clear();
            }
            rc = berth__htab_put(&r->manifests, m->digest.str, m);
            if (rc < 0) {
                berth__fsb_manifest_free(m, NULL);
                goto out;
            }
        }
        if (tag && (rc = berth__fsb_set_tag(r, tag, m, pushed)) < 0) {
            goto out;
        }
    }
    r->loaded = true;
out:
    if (rc < 0) {
        berth__fsb_repo_free_state(r, cache);
    }
    json_decref(doc);
    berth_buf_dispose(&path);
    berth_buf_dispose(&text);
    return rc;
}

/* Append a JSON string; media types come from clients, so escape what JSON requires. */
static int put_string(berth_buf *out, const char *s)
{
    int rc = berth_buf_puts(out, "\"");
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            rc = berth_buf_printf(out, "\\%c", c);
        } else if (c < 0x20) {
            rc = berth_buf_printf(out, "\\u%04x", c);
        } else {
            rc = berth_buf_put(out, s, 1);
        }
    }
    return rc == 0 ? berth_buf_puts(out, "\"") : rc;
}

static int put_descriptor(berth_buf *out, const berth__fsb_manifest *m, const char *tag,
                          int64_t pushed, bool first)
{
    char when[32];
    time_t t = (time_t)pushed;
    struct tm tm;
    int rc = berth_buf_puts(out, first ? "{\"mediaType\":" : ",{\"mediaType\":");
    if (rc == 0) {
        rc = put_string(out, m->media_type);
    }
    if (rc == 0) {
        rc = berth_buf_printf(out, ",\"digest\":\"%s\",\"size\":%lld", m->digest.str,
                              (long long)m->size);
    }
    if (rc == 0 && m->artifact_type) {
        rc = berth_buf_puts(out, ",\"artifactType\":");
        if (rc == 0) {
            rc = put_string(out, m->artifact_type);
        }
    }
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (rc == 0) {
        rc = berth_buf_printf(out, ",\"annotations\":{\"" BERTH__FSB_PUSHED_ANNOTATION "\":\"%s\"",
                              when);
    }
    if (rc == 0) {
        /* what referrers need, so that loading the repository reads no manifest */
        rc = berth_buf_printf(out, ",\"" SUBJECT_ANNOTATION "\":\"%s\"",
                              m->has_subject ? m->subject.str : "");
    }
    if (rc == 0 && m->sparse) {
        rc = berth_buf_puts(out, ",\"" SPARSE_ANNOTATION "\":\"true\"");
    }
    if (rc == 0 && tag) {
        rc = berth_buf_puts(out, ",\"" REF_NAME "\":");
        if (rc == 0) {
            rc = put_string(out, tag);
        }
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "}}");
    }
    return rc;
}

typedef struct save_ctx {
    berth_buf *out;
    bool first;
    int rc;
} save_ctx;

static void put_untagged(void *value, void *payload)
{
    berth__fsb_manifest *m = value;
    save_ctx *ctx = payload;
    if (ctx->rc == 0 && m->ntags == 0) {
        ctx->rc = put_descriptor(ctx->out, m, NULL, m->pushed, ctx->first);
        ctx->first = false;
    }
}

int berth__fsb_repo_save(const berth__fsb_root *root, berth__fsb_repo *r)
{
    berth_buf out = BERTH_BUF_INIT, path = BERTH_BUF_INIT;
    save_ctx ctx = {&out, true, 0};
    int rc;

    rc = berth_buf_puts(&out, "{\"schemaVersion\":2,\"mediaType\":"
                              "\"application/vnd.oci.image.index.v1+json\",\"manifests\":[");
    for (size_t i = 0; rc == 0 && i < r->ntags; i++) {
        rc = put_descriptor(&out, r->tags[i].manifest, r->tags[i].name, r->tags[i].pushed,
                            ctx.first);
        ctx.first = false;
    }
    ctx.rc = rc;
    berth__htab_foreach(&r->manifests, put_untagged, &ctx);
    rc = ctx.rc;
    if (rc == 0) {
        rc = berth_buf_puts(&out, "]}\n");
    }
    if (rc == 0) {
        rc = berth_buf_printf(&path, "%s/index.json", r->dir);
    }
    if (rc == 0) {
        rc = berth__fs_write_atomic(root->tmp, path.ptr, out.ptr, out.len, root->opts.fsync);
    }
    berth_buf_dispose(&out);
    berth_buf_dispose(&path);
    return rc;
}

int berth__fsb_create_layout(const berth__fsb_root *root, const char *dir)
{
    berth_buf path = BERTH_BUF_INIT;
    int rc;

    rc = berth_buf_printf(&path, "%s/blobs/sha256", dir);
    if (rc == 0) {
        rc = berth__fs_mkdirs(path.ptr);
    }
    berth_buf_clear(&path);
    if (rc == 0) {
        rc = berth_buf_printf(&path, "%s/oci-layout", dir);
    }
    if (rc == 0) {
        rc = berth__fs_write_atomic(root->tmp, path.ptr, layout_header, sizeof(layout_header) - 1,
                                    root->opts.fsync);
    }
    berth_buf_clear(&path);
    if (rc == 0) {
        rc = berth_buf_printf(&path, "%s/index.json", dir);
    }
    if (rc == 0) {
        rc = berth__fs_write_atomic(root->tmp, path.ptr, empty_index, sizeof(empty_index) - 1,
                                    root->opts.fsync);
    }
    if (rc == 0 && root->opts.fsync) {
        /* make the new directories themselves durable, up to the root */
        berth_buf_clear(&path);
        rc = berth_buf_puts(&path, dir);
        while (rc == 0 && path.len > strlen(root->root)) {
            char *slash = strrchr(path.ptr, '/');
            *slash = '\0';
            path.len = (size_t)(slash - path.ptr);
            rc = berth__fs_fsync_dir(path.ptr);
        }
    }
    if (rc < 0) {
        /* no layout on disk that memory does not know of: without index.json, no repository */
        berth_buf_clear(&path);
        if (berth_buf_printf(&path, "%s/index.json", dir) == 0) {
            unlink(path.ptr);
        }
    }
    berth_buf_dispose(&path);
    return rc;
}
