/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The OCI image layout end of the copy engine: `oci-layout`, `index.json` whose entries carry
 * the tag in `org.opencontainers.image.ref.name`, and `blobs/<alg>/<hex>`. Every write goes to
 * a temp file in the same directory, is fsynced and renamed into place, so a reader sees a
 * blob whole or not at all; index.json is rewritten the same way and is the last thing a copy
 * touches, so no tag ever names content that is not complete. A layout has no referrers API:
 * the referrers of a manifest are the entries of index.json whose manifest names it as subject.
 */
#include "client/client_internal.h"

#include "base/fs.h"

#include <berth/errors.h>
#include <berth/index.h>
#include <berth/layout.h>
#include <berth/mediatype.h>
#include <berth/reference.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REF_NAME  "org.opencontainers.image.ref.name"
#define INDEX_MAX (64u * 1024u * 1024u)

/* Write `data` to `dir/name` durably (base/fs.c): a hidden temp file beside it, fsync,
   rename, fsync of the directory. */
static int write_atomic(const char *dir, const char *name, const void *data, size_t len)
{
    berth_buf tmp = BERTH_BUF_INIT, dst = BERTH_BUF_INIT, prefix = BERTH_BUF_INIT;
    int fd = -1, rc;

    if ((rc = berth_buf_printf(&prefix, ".tmp-%s-", name)) < 0 ||
        (rc = berth_buf_printf(&dst, "%s/%s", dir, name)) < 0 ||
        (rc = berth__fs_tmpfile(&fd, &tmp, dir, prefix.ptr)) < 0) {
        goto out;
    }
    if ((rc = berth__fs_write_all(fd, tmp.ptr, data, len)) < 0) {
        berth_error_prefix("%s: ", tmp.ptr);
        close(fd);
        unlink(tmp.ptr);
        goto out;
    }
    rc = berth__fs_commit(fd, tmp.ptr, dst.ptr, true);
out:
    berth_buf_dispose(&tmp);
    berth_buf_dispose(&dst);
    berth_buf_dispose(&prefix);
    return rc;
}

/* Read a whole file; a missing one is BERTH_ENOTFOUND. The message names the path. */
static int read_all(berth_buf *out, const char *path, size_t max)
{
    int rc = berth__fs_read_file(out, path, max);
    if (rc < 0) {
        berth_error_prefix("%s: ", path);
    }
    return rc;
}

/* mkdir -p, with the path in the message (the user named the layout). */
static int mkdirs(const char *path)
{
    int rc = berth__fs_mkdirs(path);
    if (rc < 0) {
        berth_error_prefix("%s: ", path);
    }
    return rc;
}

int berth__layout_open(const char *path, bool create)
{
    berth_buf p = BERTH_BUF_INIT, doc = BERTH_BUF_INIT;
    struct stat st;
    int rc;

    if ((rc = berth_buf_printf(&p, "%s/oci-layout", path)) < 0) {
        goto out;
    }
    if (stat(p.ptr, &st) == 0) {
        goto out;
    }
    if (!create) {
        rc = berth_error_set(BERTH_ENOTFOUND, "%s: not an OCI image layout (no oci-layout)", path);
        goto out;
    }
    berth_buf_clear(&p);
    if ((rc = berth_buf_printf(&p, "%s/blobs", path)) < 0 || (rc = mkdirs(p.ptr)) < 0) {
        goto out;
    }
    berth_buf_clear(&p);
    if ((rc = berth_buf_printf(&p, "%s/index.json", path)) < 0) {
        goto out;
    }
    if (stat(p.ptr, &st) != 0) {
        berth_index index = {.schema_version = 2,
                             .media_type = (char *)(uintptr_t)BERTH_MEDIA_OCI_INDEX};
        if ((rc = berth_index_serialize(&doc, &index)) < 0 ||
            (rc = write_atomic(path, "index.json", doc.ptr, doc.len)) < 0) {
            goto out;
        }
    }
    berth_buf_clear(&doc);
    berth_layout_header header = {.image_layout_version = (char *)(uintptr_t)BERTH_LAYOUT_VERSION};
    if ((rc = berth_layout_header_serialize(&doc, &header)) == 0) {
        rc = write_atomic(path, "oci-layout", doc.ptr, doc.len);
    }
out:
    berth_buf_dispose(&p);
    berth_buf_dispose(&doc);
    return rc;
}

int berth__layout_blob_path(berth_buf *out, const char *path, const berth_digest *d)
{
    return berth_buf_printf(out, "%s/blobs/%s/%s", path, berth_digest_alg_name(d->alg),
                            berth_digest_hex(d));
}

int berth__layout_has_blob(const char *path, const berth_digest *d)
{
    berth_buf p = BERTH_BUF_INIT;
    struct stat st;
    int rc = berth__layout_blob_path(&p, path, d);
    if (rc == 0 && stat(p.ptr, &st) != 0) {
        rc = BERTH_ENOTFOUND;
    }
    berth_buf_dispose(&p);
    return rc;
}

int berth__layout_read_blob(const char *path, const berth_digest *d, berth_buf *body)
{
    berth_buf p = BERTH_BUF_INIT;
    berth_digest got;
    size_t start = body->len;
    int rc;

    if ((rc = berth__layout_blob_path(&p, path, d)) < 0 ||
        (rc = read_all(body, p.ptr, SIZE_MAX)) < 0) {
        goto out;
    }
    if ((rc = berth_digest_buffer(&got, d->alg, body->ptr + start, body->len - start)) < 0) {
        goto out;
    }
    if (!berth_digest_equal(&got, d)) {
        rc = berth_error_set(BERTH_EMISMATCH, "%s: content has digest %s", p.ptr, got.str);
    }
out:
    berth_buf_dispose(&p);
    return rc;
}

static int load_index(json_t **out, const char *path)
{
    berth_buf p = BERTH_BUF_INIT, body = BERTH_BUF_INIT_MAX(INDEX_MAX);
    json_error_t jerr;
    int rc;

    *out = NULL;
    if ((rc = berth_buf_printf(&p, "%s/index.json", path)) < 0 ||
        (rc = read_all(&body, p.ptr, INDEX_MAX)) < 0) {
        goto out;
    }
    *out = json_loadb(body.ptr ? body.ptr : "", body.len, 0, &jerr);
    if (!json_is_object(*out) || !json_is_array(json_object_get(*out, "manifests"))) {
        json_decref(*out);
        *out = NULL;
        rc = berth_error_set(BERTH_EINVALID, "%s: not an OCI index (%s)", p.ptr, jerr.text);
    }
out:
    berth_buf_dispose(&p);
    berth_buf_dispose(&body);
    return rc;
}

int berth__layout_get_manifest(const char *path, const char *tag, berth_buf *body,
                               char **media_type, berth_digest *digest_out)
{
    json_t *index = NULL, *found = NULL;
    berth_digest d;
    int rc;

    *media_type = NULL;
    if ((rc = berth__layout_open(path, false)) < 0 || (rc = load_index(&index, path)) < 0) {
        goto out;
    }
    json_t *arr = json_object_get(index, "manifests"), *e;
    size_t i, named = 0;
    json_t *only_named = NULL;
    json_array_foreach(arr, i, e)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
        if (tag ? (name && strcmp(name, tag) == 0) : json_array_size(arr) == 1) {
            found = e;
        }
        if (name) {
            named++;
            only_named = e;
        }
    }
    if (!found && !tag && named == 1) {
        found = only_named; /* the one image with a name; the others are its referrers */
    }
    if (!found) {
        rc = tag ? berth_error_set(BERTH_ENOTFOUND, "oci:%s: no tag %s", path, tag)
                 : berth_error_set(BERTH_ENOTFOUND,
                                   "oci:%s: give a tag (the layout holds %zu images)", path,
                                   json_array_size(arr));
        goto out;
    }
    const char *dg = json_string_value(json_object_get(found, "digest"));
    if (!dg || (rc = berth_digest_parse_str(&d, dg)) < 0) {
        rc = rc < 0 ? rc : berth_error_set(BERTH_EINVALID, "oci:%s: entry without digest", path);
        goto out;
    }
    size_t start = body->len;
    if ((rc = berth__layout_read_blob(path, &d, body)) < 0) {
        goto out;
    }
    json_t *size = json_object_get(found, "size");
    if (json_is_integer(size) && (size_t)json_integer_value(size) != body->len - start) {
        rc = berth_error_set(BERTH_EMISMATCH, "oci:%s: manifest %s is %zu bytes, index says %lld",
                             path, d.str, body->len - start, (long long)json_integer_value(size));
        goto out;
    }
    const char *mt = json_string_value(json_object_get(found, "mediaType"));
    if (mt && !(*media_type = strdup(mt))) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (digest_out) {
        *digest_out = d;
    }
out:
    json_decref(index);
    return rc;
}

/* Copy `fd_in` (or memory) into a temp file under blobs/<alg>, verify, fsync, rename. */
static int put_blob(const char *path, const berth_digest *d, int64_t size, int fd_in,
                    const void *data, size_t len)
{
    berth_buf dir = BERTH_BUF_INIT, tmp = BERTH_BUF_INIT, dst = BERTH_BUF_INIT;
    berth_hasher *h = NULL;
    berth_digest got;
    char chunk[65536];
    int fd = -1, rc;

    if ((rc = berth_buf_printf(&dir, "%s/blobs/%s", path, berth_digest_alg_name(d->alg))) < 0 ||
        (rc = mkdirs(dir.ptr)) < 0 || (rc = berth__layout_blob_path(&dst, path, d)) < 0 ||
        (rc = berth_hasher_new(&h, d->alg)) < 0 ||
        (rc = berth__fs_tmpfile(&fd, &tmp, dir.ptr, ".tmp-")) < 0) {
        goto out;
    }
    for (;;) {
        const char *p;
        ssize_t n;
        if (data) {
            p = data;
            n = (ssize_t)len;
            data = NULL;
            len = 0;
            if (n == 0) {
                break;
            }
        } else if (fd_in >= 0) {
            n = read(fd_in, chunk, sizeof(chunk));
            if (n < 0 && errno == EINTR) {
                continue;
            }
            if (n < 0) {
                rc = berth_error_set(BERTH_EIO, "read: %s", strerror(errno));
                goto out;
            }
            if (n == 0) {
                break;
            }
            p = chunk;
        } else {
            break;
        }
        if ((rc = berth_hasher_update(h, p, (size_t)n)) < 0) {
            goto out;
        }
        if ((rc = berth__fs_write_all(fd, tmp.ptr, p, (size_t)n)) < 0) {
            berth_error_prefix("%s: ", tmp.ptr);
            goto out;
        }
    }
    if ((rc = berth_hasher_peek(&got, h)) < 0) {
        goto out;
    }
    if (!berth_digest_equal(&got, d) || (size >= 0 && berth_hasher_count(h) != (uint64_t)size)) {
        rc = berth_error_set(BERTH_EMISMATCH, "blob %s: content has digest %s and %llu bytes",
                             d->str, got.str, (unsigned long long)berth_hasher_count(h));
        goto out;
    }
    /* berth__fs_commit() closes fd and removes tmp unless it renamed it */
    rc = berth__fs_commit(fd, tmp.ptr, dst.ptr, true);
    fd = -1;
out:
    if (fd >= 0) {
        close(fd);
        unlink(tmp.ptr);
    }
    berth_hasher_free(h);
    berth_buf_dispose(&dir);
    berth_buf_dispose(&tmp);
    berth_buf_dispose(&dst);
    return rc;
}

int berth__layout_put_blob_file(const char *path, const berth_digest *d, int64_t size,
                                const char *src)
{
    int fd = open(src, O_RDONLY), rc;
    if (fd < 0) {
        return berth_error_set(BERTH_EIO, "%s: %s", src, strerror(errno));
    }
    rc = put_blob(path, d, size, fd, NULL, 0);
    close(fd);
    return rc;
}

int berth__layout_put_blob_mem(const char *path, const berth_digest *d, const void *data,
                               size_t len)
{
    return put_blob(path, d, (int64_t)len, -1, data ? data : "", len);
}

int berth__layout_set_ref(const char *path, const char *media_type, const berth_digest *d,
                          uint64_t size, const char *tag)
{
    json_t *index = NULL, *entry = NULL;
    char *text = NULL;
    int rc;

    if ((rc = load_index(&index, path)) < 0) {
        goto out;
    }
    json_t *arr = json_object_get(index, "manifests");
    for (size_t i = 0; i < json_array_size(arr);) {
        json_t *e = json_array_get(arr, i);
        const char *name =
            json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
        const char *dg = json_string_value(json_object_get(e, "digest"));
        bool same_tag = tag && name && strcmp(name, tag) == 0;
        bool same_untagged = !tag && !name && dg && strcmp(dg, d->str) == 0;
        if (same_tag || same_untagged) {
            json_array_remove(arr, i);
        } else {
            i++;
        }
    }
    entry = json_pack("{s:s, s:s, s:I}", "mediaType", media_type, "digest", d->str, "size",
                      (json_int_t)size);
    if (!entry) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    if (tag) {
        json_object_set_new(entry, "annotations", json_pack("{s:s}", REF_NAME, tag));
    }
    if (json_array_append(arr, entry) < 0) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    text = json_dumps(index, JSON_COMPACT);
    if (!text) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    rc = write_atomic(path, "index.json", text, strlen(text));
out:
    free(text);
    json_decref(entry);
    json_decref(index);
    return rc;
}

int berth_layout_get_manifest(const char *path, const char *tag, berth_buf *body, char **media_type,
                              berth_digest *digest_out)
{
    berth_error_clear();
    return berth__layout_get_manifest(path, tag, body, media_type, digest_out);
}

int berth_layout_read_blob(const char *path, const berth_digest *d, berth_buf *body)
{
    berth_error_clear();
    return berth__layout_read_blob(path, d, body);
}

int berth_layout_list_tags(const char *path, berth_client_name_cb cb, void *payload)
{
    json_t *index = NULL, *e;
    size_t i;
    int rc;

    berth_error_clear();
    if ((rc = berth__layout_open(path, false)) < 0 || (rc = load_index(&index, path)) < 0) {
        goto out;
    }
    json_array_foreach(json_object_get(index, "manifests"), i, e)
    {
        const char *name =
            json_string_value(json_object_get(json_object_get(e, "annotations"), REF_NAME));
        json_t *prev;
        size_t k;
        bool seen = false;

        /* a name no reference can take (control bytes, a newline: a forged line on the user's
         * terminal) is not listed; a name listed twice in index.json once */
        if (!name || (berth_ref_name_validate(name) < 0 && berth_tag_validate(name) < 0)) {
            berth_error_clear();
            continue;
        }
        json_array_foreach(json_object_get(index, "manifests"), k, prev)
        {
            if (k >= i) {
                break;
            }
            const char *p =
                json_string_value(json_object_get(json_object_get(prev, "annotations"), REF_NAME));
            seen = seen || (p && strcmp(p, name) == 0);
        }
        if (!seen && cb(name, payload) != 0) {
            break;
        }
    }
out:
    json_decref(index);
    return rc;
}

int berth__layout_referrers(const char *path, const berth_digest *subject, berth_buf *body)
{
    json_t *index = NULL, *list = json_array(), *out_idx = NULL, *e;
    berth_buf m = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX);
    char *text = NULL;
    size_t i;
    int rc;

    if (!list) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if ((rc = load_index(&index, path)) < 0) {
        goto out;
    }
    json_array_foreach(json_object_get(index, "manifests"), i, e)
    {
        const char *dg = json_string_value(json_object_get(e, "digest"));
        const char *mt = json_string_value(json_object_get(e, "mediaType"));
        berth__doc doc = {0};
        berth_digest d;
        if (!dg || berth_digest_parse_str(&d, dg) < 0) {
            berth_error_clear();
            continue;
        }
        berth_buf_clear(&m);
        if (berth__layout_read_blob(path, &d, &m) < 0 ||
            berth__doc_parse(&doc, mt, berth_buf_cstr(&m), m.len) < 0) {
            berth_error_clear(); /* not a manifest we can read: not a referrer we know */
            continue;
        }
        if (doc.has_subject && berth_digest_equal(&doc.subject, subject)) {
            json_t *desc = json_pack("{s:s, s:s, s:I}", "mediaType", doc.media_type, "digest",
                                     d.str, "size", (json_int_t)m.len);
            json_t *mj = json_loadb(berth_buf_cstr(&m), m.len, 0, NULL);
            const char *at = json_string_value(json_object_get(mj, "artifactType"));
            json_t *ann = json_object_get(mj, "annotations");
            if (!at) {
                at = json_string_value(json_object_get(json_object_get(mj, "config"), "mediaType"));
            }
            if (desc && at) {
                json_object_set_new(desc, "artifactType", json_string(at));
            }
            if (desc && json_is_object(ann) && json_object_size(ann) > 0) {
                json_object_set(desc, "annotations", ann);
            }
            json_decref(mj);
            if (!desc || json_array_append_new(list, desc) < 0) {
                berth__doc_dispose(&doc);
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
                goto out;
            }
        }
        berth__doc_dispose(&doc);
    }
    out_idx = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType",
                        "application/vnd.oci.image.index.v1+json", "manifests", list);
    text = out_idx ? json_dumps(out_idx, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    rc = text ? berth_buf_puts(body, text) : berth_error_set(BERTH_ENOMEM, "out of memory");
out:
    free(text);
    json_decref(out_idx);
    json_decref(list);
    json_decref(index);
    berth_buf_dispose(&m);
    return rc;
}
