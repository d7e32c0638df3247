/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the containers tools configure per registry, read the way they read it: the certs.d
 * directory of a registry (containers-certs.d(5): *.crt are CAs added to the system's, a
 * *.cert and *.key of the same stem a client certificate), and whether registries.conf(5)
 * marks the registry `insecure` (plain HTTP allowed, certificates not verified).
 */
#include "client/client_internal.h"

#include <berth/errors.h>

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PEM_MAX (16u * 1024u * 1024u)

void berth__tls_dispose(berth__tls *t)
{
    free(t->ca_pem);
    free(t->cert);
    free(t->key);
    free(t->dir);
    memset(t, 0, sizeof(*t));
}

static int append_file(berth_buf *out, const char *path)
{
    char tmp[4096];
    size_t n;
    int rc = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        return berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if ((rc = berth_buf_put(out, tmp, n)) < 0) {
            break;
        }
    }
    fclose(f);
    return rc < 0 ? rc : berth_buf_puts(out, "\n");
}

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n > m && strcmp(s + n - m, suf) == 0;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The system's CA bundle, as libcurl would use it. */
static int append_system_cas(berth_buf *out)
{
    CURL *h = curl_easy_init();
    char *path = NULL;
    int rc = 0;
    if (h && curl_easy_getinfo(h, CURLINFO_CAINFO, &path) == CURLE_OK && path &&
        access(path, R_OK) == 0) {
        rc = append_file(out, path);
    }
    if (h) {
        curl_easy_cleanup(h);
    }
    return rc;
}

int berth__tls_load_dir(berth__tls *t, const char *dir)
{
    berth_buf ca = BERTH_BUF_INIT_MAX(PEM_MAX), p = BERTH_BUF_INIT;
    DIR *d = opendir(dir);
    char **names = NULL;
    size_t n = 0, cap = 0;
    bool any_ca = false;
    struct dirent *e;
    int rc = 0;

    if (!d) {
        return berth_error_set(errno == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO, "%s: %s", dir,
                               strerror(errno));
    }
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') {
            continue;
        }
        if (n == cap) {
            char **more = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*names));
            if (!more) {
                rc = BERTH_ENOMEM;
                goto out;
            }
            names = more;
        }
        if (!(names[n] = strdup(e->d_name))) {
            rc = BERTH_ENOMEM;
            goto out;
        }
        n++;
    }
    qsort(names, n, sizeof(*names), cmp_names);
    for (size_t i = 0; i < n; i++) {
        const char *name = names[i];
        size_t stem = strlen(name);
        berth_buf_clear(&p);
        if (has_suffix(name, ".crt")) {
            if (!any_ca && (rc = append_system_cas(&ca)) < 0) {
                goto out;
            }
            any_ca = true;
            if ((rc = berth_buf_printf(&p, "%s/%s", dir, name)) < 0 ||
                (rc = append_file(&ca, p.ptr)) < 0) {
                goto out;
            }
        } else if (has_suffix(name, ".cert") || has_suffix(name, ".key")) {
            /* a pair: X.cert and X.key; one without the other is an error (as podman says) */
            bool is_cert = has_suffix(name, ".cert");
            struct stat st;
            stem -= is_cert ? 5 : 4;
            if ((rc = berth_buf_printf(&p, "%s/%.*s%s", dir, (int)stem, name,
                                       is_cert ? ".key" : ".cert")) < 0) {
                goto out;
            }
            if (stat(p.ptr, &st) != 0) {
                rc = berth_error_set(BERTH_EINVALID, "%s/%s: missing %s%s for it", dir, name,
                                     is_cert ? "key " : "client certificate ",
                                     strrchr(p.ptr, '/') + 1);
                goto out;
            }
            if (is_cert && !t->cert) {
                t->key = berth_buf_detach(&p);
                if ((rc = berth_buf_printf(&p, "%s/%s", dir, name)) < 0) {
                    goto out;
                }
                t->cert = berth_buf_detach(&p);
                if (!t->cert || !t->key) {
                    rc = BERTH_ENOMEM;
                    goto out;
                }
            }
        }
    }
    if (any_ca) {
        t->ca_pem = berth_buf_detach(&ca);
        t->ca_len = t->ca_pem ? strlen(t->ca_pem) : 0;
        if (!t->ca_pem) {
            rc = BERTH_ENOMEM;
            goto out;
        }
    }
    if (!(t->dir = strdup(dir))) {
        rc = BERTH_ENOMEM;
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(names[i]);
    }
    free(names);
    closedir(d);
    berth_buf_dispose(&ca);
    berth_buf_dispose(&p);
    return rc;
}

int berth__certs_d_find(berth_buf *out, const char *registry)
{
    const char *list = getenv("BERTH_CERTS_D");
    berth_buf bases = BERTH_BUF_INIT;
    int rc = 0;

    if (list) {
        rc = berth_buf_puts(&bases, list);
    } else {
        const char *cfg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (cfg && *cfg) {
            rc = berth_buf_printf(&bases, "%s/containers/certs.d:", cfg);
        } else if (home && *home) {
            rc = berth_buf_printf(&bases, "%s/.config/containers/certs.d:", home);
        }
        if (rc == 0) {
            rc = berth_buf_puts(&bases, "/etc/containers/certs.d:/etc/docker/certs.d");
        }
    }
    if (rc < 0) {
        goto out;
    }
    rc = BERTH_ENOTFOUND;
    for (char *s = bases.ptr; s && *s;) {
        char *colon = strchr(s, ':');
        struct stat st;
        if (colon) {
            *colon = '\0';
        }
        if (*s) {
            berth_buf_clear(out);
            if (berth_buf_printf(out, "%s/%s", s, registry) < 0) {
                rc = BERTH_ENOMEM;
                break;
            }
            if (stat(out->ptr, &st) == 0 && S_ISDIR(st.st_mode)) {
                rc = 0;
                break;
            }
        }
        s = colon ? colon + 1 : NULL;
    }
    if (rc == BERTH_ENOTFOUND) {
        berth_buf_clear(out);
    }
out:
    berth_buf_dispose(&bases);
    return rc;
}

/* ---- registries.conf: a TOML subset ---- */

/* The value of `key = "..."` / `key = true` on a line, or NULL; copied into `out`. */
static bool line_value(const char *line, const char *key, berth_buf *out)
{
    size_t n = strlen(key);
    const char *p = line;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (strncmp(p, key, n) != 0) {
        return false;
    }
    p += n;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p != '=') {
        return false;
    }
    p++;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    berth_buf_clear(out);
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        const char *e = strchr(p, q);
        if (!e) {
            return false;
        }
        return berth_buf_put(out, p, (size_t)(e - p)) == 0;
    }
    const char *e = p;
    while (*e && *e != ' ' && *e != '\t' && *e != '#' && *e != '\r' && *e != '\n') {
        e++;
    }
    return berth_buf_put(out, p, (size_t)(e - p)) == 0;
}

/* Does a registries.conf `location`/`prefix` name `registry`? "*.example.com" matches its
 * subdomains; "host[:port]/namespace" matches the host (the transport decides per host). */
static bool location_matches(const char *loc, const char *registry)
{
    size_t n = strcspn(loc, "/");
    if (strncmp(loc, "docker://", 9) == 0) {
        loc += 9;
        n = strcspn(loc, "/");
    }
    if (n > 2 && loc[0] == '*' && loc[1] == '.') {
        size_t rl = strcspn(registry, ":"), sl = n - 1;
        return rl > sl && strncmp(registry + rl - sl, loc + 1, sl) == 0;
    }
    return strlen(registry) == n && strncmp(loc, registry, n) == 0;
}

/* Items of a v1 `registries = ['a', "b"]` array on one line (or continued: `text` is all of
 * them gathered). */
static bool array_has(const char *text, const char *registry)
{
    const char *p = text;
    while ((p = strpbrk(p, "\"'"))) {
        char q = *p++;
        const char *e = strchr(p, q);
        if (!e) {
            return false;
        }
        char *item = strndup(p, (size_t)(e - p));
        bool hit = item && location_matches(item, registry);
        free(item);
        if (hit) {
            return true;
        }
        p = e + 1;
    }
    return false;
}

int berth__registries_conf_insecure(bool *out, const char *path, const char *registry)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    berth_buf v = BERTH_BUF_INIT, loc = BERTH_BUF_INIT, prefix = BERTH_BUF_INIT,
              arr = BERTH_BUF_INIT;
    bool in_registry = false, in_v1_insecure = false, insecure = false, in_array = false;
    int rc = 0;

    *out = false;
    if (!f) {
        return BERTH_ENOTFOUND;
    }
    for (bool more = true; more;) {
        more = fgets(line, sizeof(line), f) != NULL;
        const char *p = line;
        if (!more) {
            line[0] = '\0';
        }
        char *hash = strchr(line, '#');
        if (hash && !memchr(line, '"', (size_t)(hash - line)) &&
            !memchr(line, '\'', (size_t)(hash - line))) {
            *hash = '\0';
        }
        while (*p == ' ' || *p == '\t') {
            p++;
        }
        if (in_array) {
            (void)berth_buf_puts(&arr, p);
            if (strchr(p, ']')) {
                in_array = false;
                if (array_has(berth_buf_cstr(&arr), registry)) {
                    *out = true;
                }
            }
            continue;
        }
        if (!more || *p == '[') {
            /* a table ends: settle the [[registry]] that was open */
            if (in_registry && insecure &&
                location_matches(prefix.len ? prefix.ptr : berth_buf_cstr(&loc), registry)) {
                *out = true;
            }
            in_registry = strncmp(p, "[[registry]]", 12) == 0;
            in_v1_insecure = strncmp(p, "[registries.insecure]", 21) == 0;
            insecure = false;
            berth_buf_clear(&loc);
            berth_buf_clear(&prefix);
            continue;
        }
        if (in_registry) {
            if (line_value(p, "location", &v)) {
                berth_buf_clear(&loc);
                (void)berth_buf_puts(&loc, v.ptr);
            } else if (line_value(p, "prefix", &v)) {
                berth_buf_clear(&prefix);
                (void)berth_buf_puts(&prefix, v.ptr);
            } else if (line_value(p, "insecure", &v)) {
                insecure = strcmp(berth_buf_cstr(&v), "true") == 0;
            }
        } else if (in_v1_insecure && strncmp(p, "registries", 10) == 0 && strchr(p, '[')) {
            berth_buf_clear(&arr);
            (void)berth_buf_puts(&arr, p);
            if (strchr(strchr(p, '['), ']')) {
                if (array_has(strchr(p, '['), registry)) {
                    *out = true;
                }
            } else {
                in_array = true;
            }
        }
    }
    fclose(f);
    berth_buf_dispose(&v);
    berth_buf_dispose(&loc);
    berth_buf_dispose(&prefix);
    berth_buf_dispose(&arr);
    return rc;
}

bool berth__registry_insecure(const char *registry)
{
    const char *env = getenv("CONTAINERS_REGISTRIES_CONF"), *home = getenv("HOME");
    berth_buf path = BERTH_BUF_INIT;
    bool insecure = false;
    struct stat st;

    if (env && *env) {
        (void)berth_buf_puts(&path, env);
    } else {
        const char *cfg = getenv("XDG_CONFIG_HOME");
        if (cfg && *cfg) {
            (void)berth_buf_printf(&path, "%s/containers/registries.conf", cfg);
        } else if (home && *home) {
            (void)berth_buf_printf(&path, "%s/.config/containers/registries.conf", home);
        }
        /* the user's file replaces the system's, as in containers-registries.conf(5) */
        if (!path.len || stat(path.ptr, &st) != 0) {
            berth_buf_clear(&path);
            (void)berth_buf_puts(&path, "/etc/containers/registries.conf");
        }
    }
    if (path.len && berth__registries_conf_insecure(&insecure, path.ptr, registry) < 0) {
        insecure = false;
    }
    berth_error_clear();
    berth_buf_dispose(&path);
    return insecure;
}
