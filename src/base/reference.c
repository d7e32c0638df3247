/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Names, tags and references. Each grammar is a hand-written scanner over (pointer, length),
 * so that callers can check a span of a URL path without copying it. Reference parsing follows
 * github.com/distribution/reference (ParseNormalizedNamed): split the digest at the first '@',
 * the tag at the last ':' that comes after the last '/', then decide whether the first path
 * component is a registry. A parsed berth_reference always holds a valid registry, a valid
 * repository name, a valid tag or NULL, and formats to text that parses back to itself.
 */
#include <berth/errors.h>
#include <berth/reference.h>

#include <stdlib.h>
#include <string.h>

static bool is_lower_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool is_upper(char c)
{
    return c >= 'A' && c <= 'Z';
}

static bool is_alnum(char c)
{
    return is_lower_alnum(c) || is_upper(c);
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char *dup_span(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static const void *find_char(const char *s, size_t len, char c)
{
    return len ? memchr(s, c, len) : NULL;
}

static const char *find_last(const char *s, size_t len, char c)
{
    while (len > 0) {
        len--;
        if (s[len] == c) {
            return s + len;
        }
    }
    return NULL;
}

int berth_name_validate_len(const char *name, size_t len)
{
    /* `need` is true at the start of a path component and after a separator: the next byte
     * must then be [a-z0-9]. `after_slash` tells the two apart for the message. */
    bool need = true, after_slash = true;
    size_t i = 0;

    if (!name || len == 0) {
        return berth_error_set(BERTH_EINVALID, "repository name is empty");
    }
    if (len > BERTH_NAME_MAX) {
        return berth_error_set(BERTH_EINVALID, "repository name is longer than %d bytes",
                               BERTH_NAME_MAX);
    }
    while (i < len) {
        char c = name[i];
        if (is_lower_alnum(c)) {
            need = false;
            after_slash = false;
            i++;
            continue;
        }
        if (c == '/' || c == '.' || c == '_' || c == '-') {
            if (need) {
                return berth_error_set(BERTH_EINVALID,
                                       after_slash
                                           ? "repository name: empty path component at byte %zu"
                                           : "repository name: two separators in a row at byte "
                                             "%zu",
                                       i);
            }
            need = true;
            after_slash = c == '/';
            if (c == '_' && i + 1 < len && name[i + 1] == '_') {
                i++; /* "__" is one separator */
            } else if (c == '-') {
                while (i + 1 < len && name[i + 1] == '-') {
                    i++; /* "-+" is one separator */
                }
            }
            i++;
            continue;
        }
        if (is_upper(c)) {
            return berth_error_set(BERTH_EINVALID,
                                   "repository name must be lowercase (byte %zu is '%c')", i, c);
        }
        return berth_error_set(BERTH_EINVALID, "repository name: invalid character at byte %zu", i);
    }
    if (need) {
        return berth_error_set(BERTH_EINVALID, after_slash
                                                   ? "repository name ends with '/'"
                                                   : "repository name ends with a separator");
    }
    return 0;
}

int berth_name_validate(const char *name)
{
    return berth_name_validate_len(name, name ? strlen(name) : 0);
}

int berth_tag_validate_len(const char *tag, size_t len)
{
    if (!tag || len == 0) {
        return berth_error_set(BERTH_EINVALID, "tag is empty");
    }
    if (len > BERTH_TAG_MAX) {
        return berth_error_set(BERTH_EINVALID, "tag is longer than %d bytes", BERTH_TAG_MAX);
    }
    if (!(is_alnum(tag[0]) || tag[0] == '_')) {
        return berth_error_set(BERTH_EINVALID, "tag must start with a letter, digit or '_'");
    }
    for (size_t i = 1; i < len; i++) {
        char c = tag[i];
        if (!(is_alnum(c) || c == '_' || c == '.' || c == '-')) {
            return berth_error_set(BERTH_EINVALID, "tag: invalid character at byte %zu", i);
        }
    }
    return 0;
}

int berth_tag_validate(const char *tag)
{
    return berth_tag_validate_len(tag, tag ? strlen(tag) : 0);
}

/* A registry: `host[:port]`, host being dot-separated labels of [a-zA-Z0-9-] that neither
 * start nor end with '-', or a bracketed IPv6 address `[hex and colons]`; port is decimal. */
static int registry_validate(const char *s, size_t len)
{
    size_t i = 0;

    if (len == 0) {
        return berth_error_set(BERTH_EINVALID, "registry is empty");
    }
    if (s[0] == '[') {
        for (i = 1; i < len && s[i] != ']'; i++) {
            if (!is_hex(s[i]) && s[i] != ':') {
                return berth_error_set(BERTH_EINVALID, "registry: invalid IPv6 address");
            }
        }
        if (i == len || i == 1) {
            return berth_error_set(BERTH_EINVALID, "registry: invalid IPv6 address");
        }
        i++;
    } else {
        size_t label = 0;
        for (; i < len && s[i] != ':'; i++) {
            if (s[i] == '.') {
                if (label == 0 || s[i - 1] == '-') {
                    return berth_error_set(BERTH_EINVALID, "registry: invalid host name");
                }
                label = 0;
            } else if (is_alnum(s[i]) || (s[i] == '-' && label > 0)) {
                label++;
            } else {
                return berth_error_set(BERTH_EINVALID, "registry: invalid host name");
            }
        }
        if (label == 0 || s[i - 1] == '-') {
            return berth_error_set(BERTH_EINVALID, "registry: invalid host name");
        }
    }
    if (i < len) {
        uint64_t port;
        if (s[i] != ':' || berth_parse_u64(&port, s + i + 1, len - i - 1, 65535) < 0) {
            return berth_error_set(BERTH_EINVALID, "registry: invalid port");
        }
    }
    return 0;
}

static bool all_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return false;
        }
    }
    return true;
}

static bool span_is(const char *s, size_t len, const char *lit)
{
    return strlen(lit) == len && memcmp(s, lit, len) == 0;
}

int berth_reference_parse(berth_reference **out, const char *s)
{
    berth_reference *r = NULL;
    const char *at, *slash, *colon, *remote;
    const char *tag = NULL, *reg = BERTH_DEFAULT_REGISTRY;
    size_t len, name_len, remote_len, reg_len = strlen(BERTH_DEFAULT_REGISTRY), tag_len = 0;
    bool library = false;
    int rc;

    berth_error_clear();
    if (!out || !s || !*s) {
        return berth_error_set(BERTH_EINVALID, "reference is empty");
    }
    len = strlen(s);
    if (len == 64 && all_lower_hex(s, len)) {
        return berth_error_set(BERTH_EINVALID,
                               "reference is a 64-digit hex string (an image id), not a name");
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }

    /* NAME[:TAG]@DIGEST: a name never contains '@', so the first one starts the digest. */
    at = find_char(s, len, '@');
    name_len = at ? (size_t)(at - s) : len;
    if (at) {
        rc = berth_digest_parse(&r->digest, at + 1, len - name_len - 1);
        if (rc < 0) {
            berth_error_prefix("reference digest: ");
            goto out;
        }
        r->has_digest = true;
    }
    if (name_len == 0) {
        rc = berth_error_set(BERTH_EINVALID, "reference has no repository name");
        goto out;
    }

    /* The tag follows the last ':' when no '/' comes after it ("host:5000/x" has no tag). */
    slash = find_last(s, name_len, '/');
    colon = find_last(s, name_len, ':');
    if (colon && (!slash || colon > slash)) {
        tag = colon + 1;
        tag_len = name_len - (size_t)(tag - s);
        name_len = (size_t)(colon - s);
        rc = berth_tag_validate_len(tag, tag_len);
        if (rc < 0) {
            berth_error_prefix("reference ");
            goto out;
        }
    }

    /* Is the first component a registry? (distribution/reference splitDockerDomain, as
     * containers/image and skopeo 1.9 have it: without the later rule that also makes an
     * uppercase first component a registry, so "Foo/bar" is an invalid docker.io name.) */
    remote = s;
    remote_len = name_len;
    slash = find_char(s, name_len, '/');
    if (slash) {
        size_t first = (size_t)(slash - s);
        if (span_is(s, first, "index.docker.io")) {
            remote = slash + 1;
            remote_len = name_len - first - 1;
        } else if (span_is(s, first, "localhost") || find_char(s, first, '.') ||
                   find_char(s, first, ':')) {
            reg = s;
            reg_len = first;
            remote = slash + 1;
            remote_len = name_len - first - 1;
        }
    }
    rc = registry_validate(reg, reg_len);
    if (rc < 0) {
        goto out;
    }
    rc = berth_name_validate_len(remote, remote_len);
    if (rc < 0) {
        goto out;
    }
    if (span_is(reg, reg_len, BERTH_DEFAULT_REGISTRY) && !find_char(remote, remote_len, '/')) {
        library = true;
    }
    if (reg_len + 1 + (library ? 8 : 0) + remote_len > BERTH_NAME_MAX) {
        rc = berth_error_set(BERTH_EINVALID, "reference name is longer than %d bytes",
                             BERTH_NAME_MAX);
        goto out;
    }

    r->registry = dup_span(reg, reg_len);
    r->repository = malloc(remote_len + 9);
    if (r->repository) {
        size_t off = library ? 8 : 0;
        memcpy(r->repository, "library/", off);
        memcpy(r->repository + off, remote, remote_len);
        r->repository[off + remote_len] = '\0';
    }
    if (tag) {
        r->tag = dup_span(tag, tag_len);
    } else if (!r->has_digest) {
        r->tag = dup_span(BERTH_DEFAULT_TAG, strlen(BERTH_DEFAULT_TAG));
    }
    if (!r->registry || !r->repository || ((tag || !r->has_digest) && !r->tag)) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    berth_reference_free(r);
    return rc;
}

int berth_reference_format(berth_buf *out, const berth_reference *r)
{
    int rc;

    if (!out || !r || !r->registry || !r->repository) {
        return berth_error_set(BERTH_EINVALID, "no reference to format");
    }
    rc = berth_buf_printf(out, "%s/%s", r->registry, r->repository);
    if (rc == 0 && r->tag) {
        rc = berth_buf_printf(out, ":%s", r->tag);
    }
    if (rc == 0 && r->has_digest) {
        rc = berth_buf_printf(out, "@%s", r->digest.str);
    }
    return rc;
}

void berth_reference_free(berth_reference *r)
{
    if (!r) {
        return;
    }
    free(r->registry);
    free(r->repository);
    free(r->tag);
    free(r);
}

static bool span_is_nocase(const char *s, size_t len, const char *lit)
{
    if (strlen(lit) != len) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        char c = is_upper(s[i]) ? (char)(s[i] - 'A' + 'a') : s[i];
        if (c != lit[i]) {
            return false;
        }
    }
    return true;
}

bool berth_reference_is_loopback_registry(const berth_reference *r)
{
    const char *reg, *end;
    size_t host_len;

    if (!r || !r->registry) {
        return false;
    }
    reg = r->registry;
    if (reg[0] == '[') {
        end = strchr(reg, ']');
        host_len = end ? (size_t)(end - reg) + 1 : strlen(reg);
    } else {
        end = strchr(reg, ':');
        host_len = end ? (size_t)(end - reg) : strlen(reg);
    }
    return span_is_nocase(reg, host_len, "localhost") || span_is(reg, host_len, "127.0.0.1") ||
           span_is(reg, host_len, "[::1]");
}

bool berth_layout_ref_is(const char *s)
{
    return s && strncmp(s, "oci:", 4) == 0;
}

int berth_ref_name_validate(const char *name)
{
    /* `need` is true where the next byte must be [A-Za-z0-9]: at the start of a component and
     * after a separator. */
    bool need = true;
    size_t i = 0;

    if (!name || !*name) {
        return berth_error_set(BERTH_EINVALID, "reference name is empty");
    }
    for (; name[i]; i++) {
        char c = name[i];
        if (is_alnum(c)) {
            need = false;
            continue;
        }
        if (c == '/' || c == '-' || c == '.' || c == '_' || c == ':' || c == '@' || c == '+') {
            if (need) {
                return berth_error_set(BERTH_EINVALID,
                                       "reference name: misplaced separator at byte %zu", i);
            }
            if (c == '-' && name[i + 1] == '-') {
                i++; /* "--" is one separator */
            }
            need = true;
            continue;
        }
        return berth_error_set(BERTH_EINVALID, "reference name: invalid character at byte %zu", i);
    }
    if (need) {
        return berth_error_set(BERTH_EINVALID, "reference name ends with a separator");
    }
    return 0;
}

int berth_layout_ref_parse(berth_layout_ref **out, const char *s)
{
    berth_layout_ref *r = NULL;
    const char *path, *colon, *name = NULL;
    size_t path_len;
    int rc;

    berth_error_clear();
    if (!out || !berth_layout_ref_is(s)) {
        return berth_error_set(BERTH_EINVALID, "layout reference must start with 'oci:'");
    }
    path = s + 4;
    colon = strchr(path, ':');
    path_len = colon ? (size_t)(colon - path) : strlen(path);
    if (path_len == 0) {
        return berth_error_set(BERTH_EINVALID, "layout reference has an empty path");
    }
    if (colon && colon[1]) {
        name = colon + 1;
        rc = berth_ref_name_validate(name);
        if (rc < 0) {
            berth_error_prefix("layout ");
            return rc;
        }
    }
    r = calloc(1, sizeof(*r));
    if (!r) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    r->path = dup_span(path, path_len);
    if (name) {
        r->tag = dup_span(name, strlen(name));
    }
    if (!r->path || (name && !r->tag)) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    *out = r;
    r = NULL;
    rc = 0;
out:
    berth_layout_ref_free(r);
    return rc;
}

int berth_layout_ref_format(berth_buf *out, const berth_layout_ref *r)
{
    int rc;

    if (!out || !r || !r->path) {
        return berth_error_set(BERTH_EINVALID, "no layout reference to format");
    }
    rc = berth_buf_printf(out, "oci:%s", r->path);
    if (rc == 0 && r->tag) {
        rc = berth_buf_printf(out, ":%s", r->tag);
    }
    return rc;
}

void berth_layout_ref_free(berth_layout_ref *r)
{
    if (!r) {
        return;
    }
    free(r->path);
    free(r->tag);
    free(r);
}
