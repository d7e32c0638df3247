/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A repository's state: its manifests (by digest) and tags (sorted), loaded from the
 * layout's index.json and the manifests it lists, and written back as index.json after every
 * change. index.json has one entry per tag, carrying org.opencontainers.image.ref.name, and
 * one entry without that annotation for each untagged manifest, so that the layout alone
 * says everything the registry knows.
 *
 * Manifest bytes are cached in memory up to a budget (opts.cache_bytes); beyond it a read
 * hands out an uncached copy. A cached_manifest is reference counted: readers keep the bytes
 * alive while a response is being sent, even if the manifest is deleted meanwhile.
 */
#include "store/store_internal.h"

#include "base/log.h"
#include "store/fs/fs.h"

#include <berth/document.h>
#include <berth/errors.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REF_NAME  "org.opencontainers.image.ref.name"
#define INDEX_MAX (256u * 1024 * 1024)
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

void berth__manifest_entry_free(manifest_entry *m)
{
    if (!m) {
        return;
    }
    berth_manifest_release(m->cached ? &m->cached->pub : NULL);
    free(m->media_type);
    free(m->artifact_type);
    free(m->annotations_json);
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

int berth__repo_get_bytes(const cached_manifest **out, berth_store *s, repo *r, manifest_entry *m)
{
    berth_buf bytes = BERTH_BUF_INIT;
    cached_manifest *c, *expected = NULL;
    cached_manifest *_Atomic *slot = &m->cached;
    int rc;

    c = atomic_load(slot);
    if (c) {
        atomic_fetch_add(&c->refs, 1);
        *out = c;
        return 0;
    }
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
    c->pub.data = c->bytes;
    c->pub.media_type = c->media_type;
    c->pub.digest = m->digest;
    atomic_init(&c->refs, 1);
    if (atomic_load(&s->cached_bytes) + c->pub.len <= s->opts.cache_bytes) {
        /* one reference for the cache slot, one for the caller */
        c->store = s;
        atomic_fetch_add(&s->cached_bytes, c->pub.len);
        atomic_store(&c->refs, 2);
        if (!atomic_compare_exchange_strong(slot, &expected, c)) {
            /* another reader cached it first: use theirs */
            atomic_store(&c->refs, 1);
            berth_manifest_release(&c->pub);
            atomic_fetch_add(&expected->refs, 1);
            c = expected;
        }
    }
    *out = c;
    return 0;
}

/* Describe a manifest from its bytes: artifactType, subject, annotations for referrers. */
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
        if (info->annotations.count) {
            json_t *obj = json_object();
            for (size_t i = 0; obj && i < info->annotations.count; i++) {
                json_object_set_new(obj, info->annotations.items[i].key,
                                    json_string(info->annotations.items[i].value));
            }
            m->annotations_json = obj ? json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
            json_decref(obj);
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
    if (rc == BERTH_ENOTFOUND && !r->on_disk) {
        r->loaded = true; /* known in memory, not created yet */
        rc = 0;
        goto out;
    }
    if (rc < 0) {
        goto out;
    }
    doc = json_loadb(text.ptr, text.len, 0, &jerr);
    list = doc ? json_object_get(doc, "manifests") : NULL;
    if (!json_is_array(list)) {
        rc = berth_error_set(BERTH_EIO, "%s: not an OCI index (%s)", path.ptr,
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
            if (describe(s, r, m) < 0) {
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
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (rc == 0) {
        rc = berth_buf_printf(out, ",\"annotations\":{\"" BERTH__PUSHED_ANNOTATION "\":\"%s\"",
                              when);
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
