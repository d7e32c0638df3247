/* SPDX-License-Identifier: Apache-2.0 */
/*
 * oci/json.c: strict JSON reading and compact writing for the data model, on jansson.
 * Input is parsed with JSON_REJECT_DUPLICATES and must be one object; member readers check
 * JSON types and name the member in every message. Unknown members are kept as the compact
 * text of an object (berth_extra) and merged back when a document is written, after the known
 * members, so that a document survives a round trip. Also here: RFC 3339 (base64 is in
 * base/base64.c).
 */
#include "oci/json.h"

#include <stdlib.h>
#include <string.h>

#include "berth/errors.h"
#include "berth/mediatype.h"

int berth__json_load(json_t **out, const char *data, size_t len)
{
    json_error_t err;
    json_t *v;

    *out = NULL;
    if (!data && len) {
        return berth_error_set(BERTH_EINVALID, "no document");
    }
    v = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &err);
    if (!v) {
        return berth_error_set(BERTH_EINVALID, "invalid JSON at line %d column %d: %s", err.line,
                               err.column, err.text);
    }
    if (!json_is_object(v)) {
        json_decref(v);
        return berth_error_set(BERTH_EINVALID, "document is not a JSON object");
    }
    *out = v;
    return 0;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return berth_buf_put(data, buffer, size) < 0 ? -1 : 0;
}

int berth__json_dump(berth_buf *out, const json_t *v)
{
    if (json_dump_callback(v, dump_cb, out, JSON_COMPACT | JSON_PRESERVE_ORDER) != 0) {
        return berth_error_set(BERTH_ENOMEM, "out of memory writing JSON");
    }
    return 0;
}

void *berth__json_parse_doc(int *rc, const char *json, size_t len, size_t size,
                            int (*fill)(void *doc, const json_t *root), void (*free_doc)(void *doc))
{
    json_t *root = NULL;
    void *doc = NULL;

    berth_error_clear();
    if ((*rc = berth__json_load(&root, json, len)) < 0) {
        goto out;
    }
    if (!(doc = calloc(1, size))) {
        *rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if ((*rc = fill(doc, root)) < 0) {
        free_doc(doc);
        doc = NULL;
    }
out:
    json_decref(root);
    return doc;
}

int berth__json_finish(berth_buf *out, json_t *o, int rc)
{
    if (!o || rc < 0) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    } else {
        rc = berth__json_dump(out, o);
    }
    json_decref(o);
    return rc;
}

/* The length of the one UTF-8 sequence at `p` (1 to 4), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t len)
{
    unsigned c = p[0];
    size_t n, k;
    uint32_t cp;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < n) {
        return 0;
    }
    for (k = 1; k < n && (p[k] & 0xC0) == 0x80; k++) {
        cp = (cp << 6) | (p[k] & 0x3F);
    }
    if (k < n || (n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return n;
}

size_t berth__utf8_valid_prefix(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, n;

    while (i < len && (n = utf8_seq(p + i, len - i)) > 0) {
        i += n;
    }
    return i;
}

int berth__utf8_repair(berth_buf *out, const char *s, size_t len)
{
    int rc = 0;

    while (rc == 0 && len > 0) {
        size_t valid = berth__utf8_valid_prefix(s, len);
        if ((rc = berth_buf_put(out, s, valid)) == 0 && valid < len) {
            rc = berth_buf_put(out, "\xEF\xBF\xBD", 3);
            valid++;
        }
        s += valid;
        len -= valid;
    }
    return rc;
}

int berth__json_put_string(berth_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t start = out->len, i = 0, run = 0;
    int rc;

    /* the common case (names, tags): nothing to escape, one copy */
    while (i < len && (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x80 && s[i] != '"' &&
           s[i] != '\\') {
        i++;
    }
    if (i == len) {
        if (len > SIZE_MAX - 2) {
            return berth_error_set(BERTH_ETOOBIG, "string too long");
        }
        if ((rc = berth_buf_grow(out, len + 2)) < 0) {
            return rc;
        }
        out->ptr[out->len] = '"';
        memcpy(out->ptr + out->len + 1, s, len);
        out->ptr[out->len + 1 + len] = '"';
        out->len += len + 2;
        out->ptr[out->len] = '\0';
        return 0;
    }
    rc = berth_buf_put(out, "\"", 1);

    while (rc == 0 && i < len) {
        unsigned char c = (unsigned char)s[i];
        char esc[6] = {'\\', 'u', '0', '0', 0, 0};
        size_t esclen = 2, valid;

        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0x80) {
            /* a UTF-8 sequence is copied as it is; a bad byte becomes U+FFFD */
            valid = utf8_seq((const unsigned char *)s + i, len - i);
            if (valid > 0) {
                i += valid;
                continue;
            }
        }
        if ((rc = berth_buf_put(out, s + run, i - run)) < 0) {
            break;
        }
        run = ++i;
        switch (c) {
        case '"':
        case '\\':
            esc[1] = (char)c;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            if (c >= 0x80) {
                rc = berth_buf_put(out, "\xEF\xBF\xBD", 3);
                continue;
            }
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            esclen = 6;
            break;
        }
        rc = berth_buf_put(out, esc, esclen);
    }
    if (rc == 0) {
        rc = berth_buf_put(out, s + run, i - run);
    }
    if (rc == 0) {
        rc = berth_buf_put(out, "\"", 1);
    }
    if (rc < 0) {
        out->len = start;
        if (out->ptr) {
            out->ptr[start] = '\0';
        }
    }
    return rc;
}

int berth__json_want_object(const json_t *v, const char *what)
{
    if (!json_is_object(v)) {
        return berth_error_set(BERTH_EINVALID, "%s: not a JSON object", what);
    }
    return 0;
}

static char *dup_str(const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

int berth__json_str(char **out, const json_t *obj, const char *key, bool required)
{
    const json_t *v = json_object_get(obj, key);

    *out = NULL;
    if (!v) {
        return required ? berth_error_set(BERTH_EINVALID, "%s: required", key) : 0;
    }
    if (!json_is_string(v)) {
        return berth_error_set(BERTH_EINVALID, "%s: not a string", key);
    }
    if (!(*out = dup_str(v))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return 0;
}

int berth__json_size(int64_t *out, bool *present, const json_t *obj, const char *key, bool required)
{
    const json_t *v = json_object_get(obj, key);

    if (present) {
        *present = v != NULL;
    }
    if (!v) {
        return required ? berth_error_set(BERTH_EINVALID, "%s: required", key) : 0;
    }
    if (!json_is_integer(v)) {
        return berth_error_set(BERTH_EINVALID, "%s: not an integer", key);
    }
    if (json_integer_value(v) < 0) {
        return berth_error_set(BERTH_EINVALID, "%s: negative", key);
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

int berth__json_bool(bool *out, bool *present, const json_t *obj, const char *key)
{
    const json_t *v = json_object_get(obj, key);

    *present = v != NULL;
    if (!v) {
        return 0;
    }
    if (!json_is_boolean(v)) {
        return berth_error_set(BERTH_EINVALID, "%s: not a boolean", key);
    }
    *out = json_is_true(v);
    return 0;
}

/*
 * The optional member `key` of `obj`, a JSON array (`array`) or object, to be read into a list
 * of elements of `size` bytes. @param v receives the member @param n receives its number of
 * elements @param rc receives 0 or the failure's code (message set) @return a zeroed array for
 * them, or NULL: when the member is absent, null or empty (*rc 0), or on failure
 */
static void *member_items(const json_t **v, size_t *n, int *rc, const json_t *obj, const char *key,
                          bool array, size_t size)
{
    void *items = NULL;

    *v = json_object_get(obj, key);
    *n = 0;
    *rc = 0;
    if (!*v || json_is_null(*v)) {
        return NULL;
    }
    if (array ? !json_is_array(*v) : !json_is_object(*v)) {
        *rc = berth_error_set(BERTH_EINVALID, "%s: not an %s", key, array ? "array" : "object");
        return NULL;
    }
    *n = array ? json_array_size(*v) : json_object_size(*v);
    if (*n > 0 && !(items = calloc(*n, size))) {
        *rc = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return items;
}

int berth__json_strlist(berth_strlist *out, const json_t *obj, const char *key)
{
    const json_t *v;
    size_t i, n;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!(out->items = member_items(&v, &n, &rc, obj, key, true, sizeof(char *)))) {
        return rc;
    }
    for (i = 0; i < n; i++) {
        const json_t *e = json_array_get(v, i);
        if (!json_is_string(e)) {
            return berth_error_set(BERTH_EINVALID, "%s[%zu]: not a string", key, i);
        }
        if (!(out->items[i] = dup_str(e))) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        out->count++;
    }
    return 0;
}

int berth__json_map(berth_map *out, const json_t *obj, const char *key)
{
    const json_t *v;
    const char *k;
    json_t *e;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!(out->items = member_items(&v, &n, &rc, obj, key, false, sizeof(berth_kv)))) {
        return rc;
    }
    json_object_foreach((json_t *)(uintptr_t)v, k, e)
    {
        berth_kv *kv = &out->items[out->count];
        if (!json_is_string(e)) {
            return berth_error_set(BERTH_EINVALID, "%s.%s: not a string", key, k);
        }
        kv->key = strdup(k);
        kv->value = dup_str(e);
        out->count++;
        if (!kv->key || !kv->value) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    return 0;
}

int berth__json_keyset(berth_strlist *out, const json_t *obj, const char *key)
{
    const json_t *v;
    const char *k;
    json_t *e;
    size_t n;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!(out->items = member_items(&v, &n, &rc, obj, key, false, sizeof(char *)))) {
        return rc;
    }
    json_object_foreach((json_t *)(uintptr_t)v, k, e)
    {
        if (!json_is_object(e)) {
            return berth_error_set(BERTH_EINVALID, "%s.%s: not an object", key, k);
        }
        if (!(out->items[out->count] = strdup(k))) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        out->count++;
    }
    return 0;
}

static bool is_known(const char *k, const char *const *known)
{
    for (; *known; known++) {
        if (strcmp(k, *known) == 0) {
            return true;
        }
    }
    return false;
}

int berth__json_extra(berth_extra *out, const json_t *obj, const char *const *known)
{
    json_t *x = NULL;
    const char *k;
    json_t *e;
    int rc = 0;

    *out = NULL;
    json_object_foreach((json_t *)(uintptr_t)obj, k, e)
    {
        if (is_known(k, known)) {
            continue;
        }
        if (!x && !(x = json_object())) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        if (json_object_set(x, k, e) != 0) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    if (x && !(*out = json_dumps(x, JSON_COMPACT | JSON_PRESERVE_ORDER))) {
        rc = BERTH_ENOMEM;
    }
out:
    json_decref(x);
    return rc < 0 ? berth_error_set(rc, "out of memory") : 0;
}

void berth__json_put_extra(json_t *obj, berth_extra extra, int *rc)
{
    json_t *x;

    if (!extra) {
        return;
    }
    x = json_loads(extra, JSON_DECODE_ANY, NULL);
    if (!x || json_object_update_missing(obj, x) != 0) {
        *rc = BERTH_ENOMEM;
    }
    json_decref(x);
}

void berth__json_set(json_t *obj, const char *key, json_t *v, int *rc)
{
    if (!v || json_object_set_new(obj, key, v) != 0) {
        *rc = BERTH_ENOMEM;
    }
}

void berth__json_set_str(json_t *obj, const char *key, const char *s, int *rc)
{
    if (s) {
        berth__json_set(obj, key, json_string(s), rc);
    }
}

void berth__json_set_strlist(json_t *obj, const char *key, const berth_strlist *l, int *rc)
{
    json_t *a;
    size_t i;

    if (l->count == 0) {
        return;
    }
    a = json_array();
    for (i = 0; a && i < l->count; i++) {
        if (json_array_append_new(a, json_string(l->items[i])) != 0) {
            *rc = BERTH_ENOMEM;
        }
    }
    berth__json_set(obj, key, a, rc);
}

void berth__json_set_map(json_t *obj, const char *key, const berth_map *m, int *rc)
{
    json_t *o;
    size_t i;

    if (m->count == 0) {
        return;
    }
    o = json_object();
    for (i = 0; o && i < m->count; i++) {
        berth__json_set(o, m->items[i].key, json_string(m->items[i].value), rc);
    }
    berth__json_set(obj, key, o, rc);
}

void berth__json_set_keyset(json_t *obj, const char *key, const berth_strlist *l, int *rc)
{
    json_t *o;
    size_t i;

    if (l->count == 0) {
        return;
    }
    o = json_object();
    for (i = 0; o && i < l->count; i++) {
        berth__json_set(o, l->items[i], json_object(), rc);
    }
    berth__json_set(obj, key, o, rc);
}

json_t *berth__json_from_text(const char *text)
{
    return json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
}

char *berth__json_to_text(const json_t *v)
{
    return json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
}

/* RFC 3339 section 5.6: full-date "T" full-time, with "t"/" " not accepted for "T" except
 * the lowercase forms the RFC allows ("t", "z"). */
static bool digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
    }
    return true;
}

static int num2(const char *s)
{
    return (s[0] - '0') * 10 + (s[1] - '0');
}

bool berth__rfc3339_valid(const char *s)
{
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int month, day;

    if (!s || strlen(s) < 20 || !digits(s, 4) || s[4] != '-' || !digits(s + 5, 2) || s[7] != '-' ||
        !digits(s + 8, 2) || (s[10] != 'T' && s[10] != 't') || !digits(s + 11, 2) || s[13] != ':' ||
        !digits(s + 14, 2) || s[16] != ':' || !digits(s + 17, 2)) {
        return false;
    }
    month = num2(s + 5);
    day = num2(s + 8);
    if (month < 1 || month > 12 || day < 1 || day > mdays[month - 1] || num2(s + 11) > 23 ||
        num2(s + 14) > 59 || num2(s + 17) > 60) {
        return false;
    }
    s += 19;
    if (*s == '.') {
        s++;
        if (!digits(s, 1)) {
            return false;
        }
        while (*s >= '0' && *s <= '9') {
            s++;
        }
    }
    if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
        return true;
    }
    return (s[0] == '+' || s[0] == '-') && digits(s + 1, 2) && s[3] == ':' && digits(s + 4, 2) &&
           s[6] == '\0' && num2(s + 1) <= 23 && num2(s + 4) <= 59;
}

int berth__json_doc_common(int64_t *schema_version, char **media_type, char **artifact_type,
                           berth_descriptor **subject, const json_t *root)
{
    const json_t *v;
    int rc;

    if ((rc = berth__json_size(schema_version, NULL, root, "schemaVersion", true)) < 0 ||
        (rc = berth__json_str(media_type, root, "mediaType", false)) < 0 ||
        (rc = berth__json_str(artifact_type, root, "artifactType", false)) < 0) {
        return rc;
    }
    if ((v = json_object_get(root, "subject")) == NULL) {
        return 0;
    }
    if (!(*subject = calloc(1, sizeof(**subject)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if ((rc = berth__descriptor_from_json(*subject, v)) < 0) {
        berth_error_prefix(json_is_object(v) ? "subject." : "subject: ");
    }
    return rc;
}

int berth__doc_common_validate(int64_t schema_version, const char *media_type, bool docker,
                               const char *oci_type, const char *kind, const char *artifact_type,
                               const berth_descriptor *subject)
{
    int rc;

    if (schema_version != 2) {
        return berth_error_set(BERTH_EINVALID, "schemaVersion: must be 2, not %lld",
                               (long long)schema_version);
    }
    if (media_type && !docker && strcmp(media_type, oci_type) != 0) {
        return berth_error_set(BERTH_EINVALID, "mediaType: '%.200s' is not %s %s type", media_type,
                               strcmp(kind, "index") == 0 ? "an" : "a", kind);
    }
    if (artifact_type && !berth_media_type_valid(artifact_type)) {
        return berth_error_set(BERTH_EINVALID, "artifactType: '%.200s' is not a media type",
                               artifact_type);
    }
    if (subject && (rc = berth_descriptor_validate(subject)) < 0) {
        berth_error_prefix("subject.");
        return rc;
    }
    return 0;
}
