/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A repository's state: its manifests (by digest) and tags (sorted), loaded from the
 * layout's index.json and the manifests it lists, and written back as index.json after every
 * change. index.json has one entry per tag, carrying org.opencontainers.image.ref.name, and
 * one entry without that annotation for each untagged manifest, so that the layout alone
 * says everything the registry knows.
 *
 * Manifest bytes are cached in memory up to a budget (opts.cache_bytes), each charged what it
 * really costs (its exact allocations); the least recently used are evicted to make room, and
 * one too big for the budget is handed out as an uncached copy. A cached_manifest is reference
 * counted: readers keep the bytes alive while a response is being sent, even if the manifest
 * is evicted or deleted meanwhile. Per manifest, memory keeps what listing needs (media type,
 * size, subject, artifactType), never its annotations, which can be megabytes.
 */
#include "store/store_internal.h"

#include "base/log.h"
#include "base/fs.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REF_NAME "org.opencontainers.image.ref.name"
/* index.json records each manifest's subject ("" for none), and its artifactType as the
   descriptor's own field: the repository loads without reading its manifests */
#define SUBJECT_ANNOTATION "io.berth.subject"
/* a manifest accepted with content absent (opts.sparse_repositories) */
#define SPARSE_ANNOTATION "io.berth.sparse"
#define INDEX_MAX         (256u * 1024 * 1024)
/* Stored manifests are read whatever the limit is now: one pushed under a larger
   limits.manifest_size stays readable after the limit is lowered. */
#define STORED_MANIFEST_MAX (256u * 1024 * 1024)

size_t berth__repo_tag_index(const repo *r, const char *name, bool *found)
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

manifest_entry *berth__repo_find_manifest(repo *r, const char *reference)
{
    bool found;
    size_t i;
    if (strchr(reference, ':')) {
        return berth__htab_get(&r->manifests, reference);
    }
    i = berth__repo_tag_index(r, reference, &found);
    return found ? r->tags[i].manifest : NULL;
}

/* Take a cached manifest off the LRU list (store->cache_lock held). */
static void lru_unlink(berth_store *s, cached_manifest *c)
{
    if (!c->listed) {
        return;
    }
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->lru_head = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    } else {
        s->lru_tail = c->prev;
    }
    c->prev = c->next = NULL;
    c->listed = false;
    s->cached_bytes -= c->charge;
}

static void lru_push_front(berth_store *s, cached_manifest *c)
{
    c->prev = NULL;
    c->next = s->lru_head;
    if (s->lru_head) {
        s->lru_head->prev = c;
    } else {
        s->lru_tail = c;
    }
    s->lru_head = c;
    c->listed = true;
    s->cached_bytes += c->charge;
}

void berth__manifest_entry_free(manifest_entry *m)
{
    cached_manifest *c;

    if (!m) {
        return;
    }
    /* whoever clears the slot owns its reference; the list must not point into a freed entry */
    c = atomic_exchange(&m->cached, NULL);
    if (c) {
        pthread_mutex_lock(&c->store->cache_lock);
        lru_unlink(c->store, c);
        c->slot = NULL;
        pthread_mutex_unlock(&c->store->cache_lock);
        berth_manifest_release(&c->pub);
    }
    free(m->media_type);
    free(m->artifact_type);
    free(m);
}

static void free_entry_cb(void *value, void *payload)
{
    (void)payload;
    berth__manifest_entry_free(value);
}

void berth__repo_free_state(repo *r)
{
    berth__htab_foreach(&r->manifests, free_entry_cb, NULL);
    berth__htab_dispose(&r->manifests);
    for (size_t i = 0; i < r->ntags; i++) {
        free(r->tags[i].name);
    }
    free(r->tags);
    r->tags = NULL;
    r->ntags = r->tags_cap = 0;
    r->loaded = false;
}

void berth__repo_free(repo *r)
{
    if (!r) {
        return;
    }
    berth__repo_free_state(r);
    pthread_rwlock_destroy(&r->lock);
    free(r->name);
    free(r->dir);
    free(r);
}

static int read_manifest(berth_buf *out, berth_store *s, repo *r, const manifest_entry *m)
{
    berth_buf path = BERTH_BUF_INIT;
    int rc = berth__store_blob_path(&path, r->dir, &m->digest);
    if (rc == 0) {
        rc = berth__fs_read_file(out, path.ptr, STORED_MANIFEST_MAX);
    }
    berth_buf_dispose(&path);
    return rc;
}

/* What a cached manifest costs: its allocations, with malloc's overhead of each. */
static size_t charge_of(const cached_manifest *c)
{
    return sizeof(*c) + c->pub.len + 1 + strlen(c->media_type) + 1 + 3 * 16;
}

static int get_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m,
                     bool keep)
{
    berth_buf bytes = BERTH_BUF_INIT;
    cached_manifest *c, *victim;
    char *exact;
    int rc;

    pthread_mutex_lock(&s->cache_lock);
    c = atomic_load(&m->cached);
    if (c) {
        /* a hit: the slot's reference keeps it alive while we hold the lock */
        atomic_fetch_add(&c->refs, 1);
        lru_unlink(s, c);
        lru_push_front(s, c);
        pthread_mutex_unlock(&s->cache_lock);
        *out = c;
        return 0;
    }
    pthread_mutex_unlock(&s->cache_lock);

    rc = read_manifest(&bytes, s, r, m);
    if (rc < 0) {
        return rc;
    }
    c = calloc(1, sizeof(*c));
    if (!c || !(c->media_type = strdup(m->media_type))) {
        free(c);
        berth_buf_dispose(&bytes);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    c->pub.len = bytes.len;
    c->bytes = berth_buf_detach(&bytes);
    /* the read buffer grew in steps: keep only what the bytes need */
    exact = c->bytes ? realloc(c->bytes, c->pub.len + 1) : NULL;
    if (exact) {
        c->bytes = exact;
    }
    c->pub.data = c->bytes ? c->bytes : "";
    c->pub.media_type = c->media_type;
    c->pub.digest = m->digest;
    c->charge = charge_of(c);
    atomic_init(&c->refs, 1);
    if (!keep || c->charge > s->opts.cache_bytes) {
        *out = c; /* an uncached copy */
        return 0;
    }
    pthread_mutex_lock(&s->cache_lock);
    victim = atomic_load(&m->cached);
    if (victim) {
        /* another reader cached it first (r->lock is held for reading): use theirs */
        atomic_fetch_add(&victim->refs, 1);
        pthread_mutex_unlock(&s->cache_lock);
        berth_manifest_release(&c->pub);
        *out = victim;
        return 0;
    }
    /* evict the least recently used until it fits */
    while (s->lru_tail && s->cached_bytes + c->charge > s->opts.cache_bytes) {
        cached_manifest *old = s->lru_tail;
        cached_manifest *expected = old;
        lru_unlink(s, old);
        /* the entry is alive while its manifest is listed (its free unlinks under this lock);
           if its free already cleared the slot, the reference is the free's to drop */
        if (old->slot && atomic_compare_exchange_strong(old->slot, &expected, NULL)) {
            old->slot = NULL;
            berth_manifest_release(&old->pub);
        } else {
            old->slot = NULL;
        }
    }
    c->store = s;
    c->slot = &m->cached;
    atomic_store(&c->refs, 2); /* one for the slot, one for the caller */
    atomic_store(&m->cached, c);
    lru_push_front(s, c);
    pthread_mutex_unlock(&s->cache_lock);
    *out = c;
    return 0;
}

int berth__repo_get_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m)
{
    return get_bytes(out, s, r, m, true);
}

int berth__repo_peek_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m)
{
    return get_bytes(out, s, r, m, false);
}

json_t *berth__repo_annotations(berth_store *s, repo *r, manifest_entry *m)
{
    const cached_manifest *c = NULL;
    json_t *doc, *a = NULL;

    if (berth__repo_peek_bytes(&c, s, r, m) < 0) {
        berth_error_clear();
        return NULL;
    }
    doc = json_loadb(c->pub.data, c->pub.len, 0, NULL);
    berth_manifest_release(&c->pub);
    if (json_is_object(json_object_get(doc, "annotations"))) {
        a = json_incref(json_object_get(doc, "annotations"));
    }
    json_decref(doc);
    return a;
}

/* Describe a manifest from its bytes: artifactType and subject, for referrers (an index.json
   written before berth recorded them there). */
static int describe(berth_store *s, repo *r, manifest_entry *m)
{
    berth_buf bytes = BERTH_BUF_INIT;
    berth_document_info *info = NULL;
    int rc = read_manifest(&bytes, s, r, m);

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

int berth__repo_set_tag(repo *r, const char *tag, manifest_entry *m, int64_t pushed)
{
    bool found;
    size_t i = berth__repo_tag_index(r, tag, &found);
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
        tag_entry *t = realloc(r->tags, cap * sizeof(*t));
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

int berth__repo_load(berth_store *s, repo *r)
{
    berth_buf path = BERTH_BUF_INIT, text = BERTH_BUF_INIT;
    json_t *doc = NULL, *list, *item;
    json_error_t jerr;
    int64_t loaded_at = (int64_t)time(NULL); /* the time of entries that have none */
    size_t i;
    int rc;

    berth__repo_free_state(r);
    rc = berth_buf_printf(&path, "%s/index.json", r->dir);
    if (rc == 0) {
        rc = berth__fs_read_file(&text, path.ptr, INDEX_MAX);
    }
    if (rc == BERTH_ENOTFOUND) {
        /* a repository is known only once its layout exists: a vanished index.json is the
           store's failure, never a "not found" that a caller would blame on the client */
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
            json_string_value(json_object_get(annotations, BERTH__PUSHED_ANNOTATION)), loaded_at);
        berth_digest d;
        manifest_entry *m;

        if (!digest || !media || !json_is_integer(size) || berth_digest_parse_str(&d, digest) < 0) {
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
                    berth__manifest_entry_free(m);
                    rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                    goto out;
                }
            } else if (describe(s, r, m) < 0) {
                berth__log(BERTH_LOG_WARN, "%s: manifest %s: %s", r->name, d.str,
                           berth_error_last());
            }
            rc = berth__htab_put(&r->manifests, m->digest.str, m);
            if (rc < 0) {
                berth__manifest_entry_free(m);
                goto out;
            }
        }
        if (tag && (rc = berth__repo_set_tag(r, tag, m, pushed)) < 0) {
            goto out;
        }
    }
    r->loaded = true;
out:
    if (rc < 0) {
        berth__repo_free_state(r);
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

static int put_descriptor(berth_buf *out, const manifest_entry *m, const char *tag, int64_t pushed,
                          bool first)
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
        rc = berth_buf_printf(out, ",\"annotations\":{\"" BERTH__PUSHED_ANNOTATION "\":\"%s\"",
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
        rc = berth_buf_puts(out, "}");
    }
    if (rc == 0) {
        rc = berth_buf_puts(out, "}");
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
    manifest_entry *m = value;
    save_ctx *ctx = payload;
    if (ctx->rc == 0 && m->ntags == 0) {
        ctx->rc = put_descriptor(ctx->out, m, NULL, m->pushed, ctx->first);
        ctx->first = false;
    }
}

int berth__repo_save(berth_store *s, repo *r)
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
        rc = berth__fs_write_atomic(s->tmp, path.ptr, out.ptr, out.len, s->opts.fsync);
    }
    berth_buf_dispose(&out);
    berth_buf_dispose(&path);
    return rc;
}
