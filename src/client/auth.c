/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parsers of the registry protocol's small grammars: the WWW-Authenticate challenge
 * (RFC 7235 auth-params, quoted strings with backslash escapes), the Link header's rel="next"
 * target (RFC 8288), and the Basic credentials of a docker config.json. They see text from
 * the network or from disk, so each checks bounds and never trusts a length it did not count.
 */
#include "client/client_internal.h"

#include "base/base64.h"

#include <berth/errors.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool is_space(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_tchar(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("!#$%&'*+-.^_`|~/:", ch) != NULL);
}

static bool ieq(const char *a, size_t alen, const char *b)
{
    size_t n = strlen(b);
    if (alen != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') {
            x = (char)(x - 'A' + 'a');
        }
        if (x != y) {
            return false;
        }
    }
    return true;
}

void berth_auth_challenge_dispose(berth_auth_challenge *ch)
{
    if (!ch) {
        return;
    }
    free(ch->scheme);
    free(ch->realm);
    free(ch->service);
    free(ch->scope);
    memset(ch, 0, sizeof(*ch));
}

int berth_auth_challenge_parse(berth_auth_challenge *out, const char *value)
{
    berth_auth_challenge ch = {0};
    berth_buf val = BERTH_BUF_INIT_MAX(8192);
    const char *p = value;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!value) {
        return berth_error_set(BERTH_EINVALID, "challenge: empty");
    }
    while (is_space(*p)) {
        p++;
    }
    const char *s = p;
    while (is_tchar(*p) && *p != '/' && *p != ':') {
        p++;
    }
    if (p == s || (*p && !is_space(*p))) {
        rc = berth_error_set(BERTH_EINVALID, "challenge: no scheme");
        goto out;
    }
    if (ieq(s, (size_t)(p - s), "bearer")) {
        ch.scheme = strdup("Bearer");
    } else if (ieq(s, (size_t)(p - s), "basic")) {
        ch.scheme = strdup("Basic");
    } else {
        ch.scheme = strndup(s, (size_t)(p - s));
    }
    if (!ch.scheme) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    for (;;) {
        while (is_space(*p) || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        const char *k = p;
        while (is_tchar(*p) && *p != '/' && *p != ':') {
            p++;
        }
        size_t klen = (size_t)(p - k);
        while (is_space(*p)) {
            p++;
        }
        if (klen == 0 || *p != '=') {
            /* Another challenge (a new scheme) starts: only the first is read. */
            if (klen && ch.realm) {
                break;
            }
            rc = berth_error_set(BERTH_EINVALID, "challenge: expected name=value at '%.20s'", k);
            goto out;
        }
        p++;
        while (is_space(*p)) {
            p++;
        }
        berth_buf_clear(&val);
        if (*p == '"') {
            p++;
            while (*p && *p != '"') {
                if (*p == '\\' && p[1]) {
                    p++;
                }
                if ((rc = berth_buf_put(&val, p, 1)) < 0) {
                    goto out;
                }
                p++;
            }
            if (*p != '"') {
                rc = berth_error_set(BERTH_EINVALID, "challenge: unterminated quoted string");
                goto out;
            }
            p++;
        } else {
            const char *v = p;
            while (is_tchar(*p)) {
                p++;
            }
            if ((rc = berth_buf_put(&val, v, (size_t)(p - v))) < 0) {
                goto out;
            }
        }
        char **slot = NULL;
        if (ieq(k, klen, "realm")) {
            slot = &ch.realm;
        } else if (ieq(k, klen, "service")) {
            slot = &ch.service;
        } else if (ieq(k, klen, "scope")) {
            slot = &ch.scope;
        }
        if (slot && !*slot) {
            if (!(*slot = strdup(berth_buf_cstr(&val)))) {
                rc = BERTH_ENOMEM;
                goto out;
            }
        }
    }
    if (strcmp(ch.scheme, "Bearer") == 0 && (!ch.realm || !*ch.realm)) {
        rc = berth_error_set(BERTH_EINVALID, "challenge: Bearer without realm");
        goto out;
    }
    *out = ch;
    memset(&ch, 0, sizeof(ch));
out:
    berth_auth_challenge_dispose(&ch);
    berth_buf_dispose(&val);
    return rc;
}

int berth_link_next_parse(berth_buf *out, const char *value)
{
    const char *p = value;

    if (!value) {
        return berth_error_set(BERTH_ENOTFOUND, "no Link");
    }
    while (*p) {
        while (is_space(*p) || *p == ',') {
            p++;
        }
        if (!*p) {
            break;
        }
        if (*p != '<') {
            return berth_error_set(BERTH_EINVALID, "Link: expected '<' at '%.20s'", p);
        }
        const char *u = ++p;
        while (*p && *p != '>') {
            p++;
        }
        if (*p != '>') {
            return berth_error_set(BERTH_EINVALID, "Link: unterminated <URL>");
        }
        size_t ulen = (size_t)(p - u);
        bool next = false;
        p++;
        /* parameters up to the next ',' outside quotes */
        while (*p && *p != ',') {
            while (is_space(*p) || *p == ';') {
                p++;
            }
            const char *k = p;
            while (is_tchar(*p) && *p != '/' && *p != ':') {
                p++;
            }
            size_t klen = (size_t)(p - k);
            while (is_space(*p)) {
                p++;
            }
            if (klen == 0) {
                if (*p && *p != ',') {
                    return berth_error_set(BERTH_EINVALID, "Link: bad parameter at '%.20s'", p);
                }
                break;
            }
            const char *v = "";
            size_t vlen = 0;
            if (*p == '=') {
                p++;
                while (is_space(*p)) {
                    p++;
                }
                if (*p == '"') {
                    v = ++p;
                    while (*p && *p != '"') {
                        p++;
                    }
                    if (*p != '"') {
                        return berth_error_set(BERTH_EINVALID, "Link: unterminated quote");
                    }
                    vlen = (size_t)(p - v);
                    p++;
                } else {
                    v = p;
                    while (is_tchar(*p)) {
                        p++;
                    }
                    vlen = (size_t)(p - v);
                }
            }
            if (ieq(k, klen, "rel")) {
                /* rel may hold several space-separated relation types */
                const char *q = v, *end = v + vlen;
                while (q < end) {
                    const char *w = q;
                    while (q < end && *q != ' ') {
                        q++;
                    }
                    if (ieq(w, (size_t)(q - w), "next")) {
                        next = true;
                    }
                    while (q < end && *q == ' ') {
                        q++;
                    }
                }
            }
        }
        if (next) {
            if (ulen == 0) {
                return berth_error_set(BERTH_EINVALID, "Link: empty next URL");
            }
            return berth_buf_put(out, u, ulen);
        }
    }
    return berth_error_set(BERTH_ENOTFOUND, "Link: no rel=\"next\"");
}

static json_t *find_auth(json_t *auths, const char *registry)
{
    json_t *e = json_object_get(auths, registry);
    const char *key;
    json_t *v;
    if (e) {
        return e;
    }
    if (strcmp(registry, "docker.io") == 0) {
        static const char *const alts[] = {"https://index.docker.io/v1/", "index.docker.io",
                                           "registry-1.docker.io", "https://index.docker.io/v1"};
        for (size_t i = 0; i < sizeof(alts) / sizeof(alts[0]); i++) {
            if ((e = json_object_get(auths, alts[i]))) {
                return e;
            }
        }
    }
    /* keys written as URLs: "https://host[:port]" or with a trailing path */
    json_object_foreach(auths, key, v)
    {
        const char *h = key;
        if (strncmp(h, "https://", 8) == 0) {
            h += 8;
        } else if (strncmp(h, "http://", 7) == 0) {
            h += 7;
        }
        size_t n = strlen(registry);
        if (strncmp(h, registry, n) == 0 && (h[n] == '\0' || h[n] == '/')) {
            return v;
        }
    }
    return NULL;
}

/* "an array", "a number", ...: what a JSON value is, for a message. */
const char *berth__json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    default:
        return "null";
    }
}

int berth_docker_config_auth(char **user, char **pass, const char *json, size_t len,
                             const char *registry)
{
    json_error_t jerr;
    json_t *root = NULL;
    berth_buf dec = BERTH_BUF_INIT_MAX(64 * 1024);
    int rc = 0;

    *user = *pass = NULL;
    root = json_loadb(json, len, 0, &jerr);
    if (!root) {
        rc = berth_error_set(BERTH_EINVALID, "docker config: line %d: %s", jerr.line, jerr.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc =
            berth_error_set(BERTH_EINVALID, "docker config: %s, not an object ({\"auths\": {...}})",
                            berth__json_kind(root));
        goto out;
    }
    json_t *auths = json_object_get(root, "auths");
    if (auths && !json_is_object(auths)) {
        rc = berth_error_set(BERTH_EINVALID, "docker config: auths: %s, not an object",
                             berth__json_kind(auths));
        goto out;
    }
    json_t *e = auths ? find_auth(auths, registry) : NULL;
    if (e && !json_is_object(e)) {
        rc = berth_error_set(BERTH_EINVALID, "docker config: auths[%s]: %s, not an object",
                             registry, berth__json_kind(e));
        goto out;
    }
    if (!e) {
        rc = berth_error_set(BERTH_ENOTFOUND, "docker config: no credentials for %s", registry);
        goto out;
    }
    static const char *const members[] = {"auth", "username", "password"};
    for (size_t i = 0; i < 3; i++) {
        json_t *m = json_object_get(e, members[i]);
        if (m && !json_is_string(m) && !json_is_null(m)) {
            rc = berth_error_set(BERTH_EINVALID, "docker config: auths[%s].%s: %s, not a string%s",
                                 registry, members[i], berth__json_kind(m),
                                 i == 0 ? " (the base64 of user:password)" : "");
            goto out;
        }
    }
    const char *a = json_string_value(json_object_get(e, "auth"));
    if (a && *a) {
        /* written by hand as often as by `docker login`: padding optional, either alphabet */
        if ((rc = berth__base64_decode(&dec, a, strlen(a), BERTH__BASE64_LAX)) < 0) {
            berth_error_prefix("docker config: auths[%s].auth: ", registry);
            goto out;
        }
        const char *colon = memchr(dec.ptr, ':', dec.len);
        if (!colon) {
            rc = berth_error_set(
                BERTH_EINVALID, "docker config: auths[%s].auth: no ':' in user:password", registry);
            goto out;
        }
        *user = strndup(dec.ptr, (size_t)(colon - dec.ptr));
        *pass = strndup(colon + 1, dec.len - (size_t)(colon + 1 - dec.ptr));
    } else {
        const char *u = json_string_value(json_object_get(e, "username"));
        const char *pw = json_string_value(json_object_get(e, "password"));
        if (!u || !pw) {
            rc = berth_error_set(BERTH_ENOTFOUND, "docker config: no credentials for %s", registry);
            goto out;
        }
        *user = strdup(u);
        *pass = strdup(pw);
    }
    if (!*user || !*pass) {
        free(*user);
        free(*pass);
        *user = *pass = NULL;
        rc = BERTH_ENOMEM;
    }
out:
    json_decref(root);
    berth_buf_dispose(&dec);
    return rc;
}
