/* SPDX-License-Identifier: Apache-2.0 */
/*
 * config.c: the settings of `berth serve`. Every scalar setting is one row of `keys`: its dotted
 * name, its type and its offset in berth_config. The YAML loader, berth_config_set(), the
 * environment overrides and the printer all go through that one table, so a key can never be
 * known to one of them and not to the others. The lists (access, groups, gc.retention,
 * proxy.upstreams) are YAML-only. Strings in the struct are always heap-owned or NULL.
 */
#include <berth/config.h>
#include <berth/errors.h>
#include <berth/reference.h>
#include <berth/store.h>

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

typedef enum key_type {
    T_STRING,
    T_U64,
    T_DURATION,
    T_SIZE,
    T_LOGFORMAT,
    T_LOGLEVEL,
    T_BOOL,
} key_type;

typedef struct key_def {
    const char *name;
    key_type type;
    size_t offset;
} key_def;

#define KEY(n, t, field)                                                                           \
    {                                                                                              \
        n, t, offsetof(berth_config, field)                                                        \
    }

static const key_def keys[] = {
    KEY("listen", T_STRING, listen),
    KEY("root", T_STRING, root),
    KEY("sparse_manifests", T_STRING, sparse_manifests),
    KEY("threads", T_U64, threads),
    KEY("max_connections", T_U64, max_connections),
    KEY("timeouts.read", T_DURATION, timeouts.read),
    KEY("timeouts.write", T_DURATION, timeouts.write),
    KEY("timeouts.idle", T_DURATION, timeouts.idle),
    KEY("timeouts.header", T_DURATION, timeouts.header),
    KEY("timeouts.drain", T_DURATION, timeouts.drain),
    KEY("limits.manifest_size", T_SIZE, limits.manifest_size),
    KEY("limits.body_size", T_SIZE, limits.body_size),
    KEY("limits.upload_requests", T_U64, limits.upload_requests),
    KEY("limits.upload_sessions", T_U64, limits.upload_sessions),
    KEY("limits.upload_sessions_per_repository", T_U64, limits.upload_sessions_per_repository),
    KEY("limits.upload_sessions_per_client", T_U64, limits.upload_sessions_per_client),
    KEY("limits.upload_idle_ttl", T_DURATION, limits.upload_idle_ttl),
    KEY("limits.requests_per_second", T_U64, limits.requests_per_second),
    KEY("limits.burst", T_U64, limits.burst),
    KEY("limits.connections_per_address", T_U64, limits.connections_per_address),
    KEY("log.format", T_LOGFORMAT, log.format),
    KEY("log.level", T_LOGLEVEL, log.level),
    KEY("tls.cert", T_STRING, tls.cert),
    KEY("tls.key", T_STRING, tls.key),
    KEY("tls.client_ca", T_STRING, tls.client_ca),
    KEY("tls.min_version", T_STRING, tls.min_version),
    KEY("tls.priorities", T_STRING, tls.priorities),
    KEY("auth.htpasswd", T_STRING, auth.htpasswd),
    KEY("auth.token.realm", T_STRING, auth.token.realm),
    KEY("auth.token.service", T_STRING, auth.token.service),
    KEY("auth.token.issuer", T_STRING, auth.token.issuer),
    KEY("auth.token.private_key", T_STRING, auth.token.private_key),
    KEY("auth.token.public_key", T_STRING, auth.token.public_key),
    KEY("auth.token.lifetime", T_DURATION, auth.token.lifetime),
    KEY("storage.automatic_mount", T_BOOL, storage.automatic_mount),
    KEY("storage.read_only", T_BOOL, storage.read_only),
    KEY("storage.delete_enabled", T_BOOL, storage.delete_enabled),
    KEY("storage.s3.endpoint", T_STRING, storage.s3.endpoint),
    KEY("storage.s3.bucket", T_STRING, storage.s3.bucket),
    KEY("storage.s3.region", T_STRING, storage.s3.region),
    KEY("storage.s3.prefix", T_STRING, storage.s3.prefix),
    KEY("storage.s3.path_style", T_BOOL, storage.s3.path_style),
    KEY("storage.s3.redirect", T_BOOL, storage.s3.redirect),
    KEY("storage.s3.public_endpoint", T_STRING, storage.s3.public_endpoint),
    KEY("storage.s3.part_size", T_SIZE, storage.s3.part_size),
    KEY("database.url", T_STRING, database.url),
    KEY("database.pool_size", T_U64, database.pool_size),
    KEY("gc.interval", T_DURATION, gc.interval),
    KEY("gc.grace", T_DURATION, gc.grace),
    KEY("gc.untagged_delay", T_DURATION, gc.untagged_delay),
    KEY("ui.enabled", T_BOOL, ui.enabled),
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))

/* Old names still read (file, environment, berth_config_set), never printed. */
static const struct {
    const char *old, *key;
} aliases[] = {
    /* it always meant to bound uploads in progress, i.e. open sessions */
    {"limits.concurrent_uploads", "limits.upload_sessions"},
};

#define NALIASES (sizeof(aliases) / sizeof(aliases[0]))

/* Where each key was set: key -> "file:line:col", "BERTH_...", "--flag". */
struct berth_config_places {
    size_t n, cap;
    struct {
        char *key, *where;
    } * v;
};

/* Longest group name: a name is printed as a YAML key, quoted (up to 4 bytes a byte). */
#define GROUP_NAME_MAX 128

static const char *level_names[] = {"error", "warn", "info", "debug"};

static const key_def *find_key(const char *name)
{
    for (size_t i = 0; i < NALIASES; i++) {
        if (strcmp(aliases[i].old, name) == 0) {
            name = aliases[i].key;
        }
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (strcmp(keys[i].name, name) == 0) {
            return &keys[i];
        }
    }
    return NULL;
}

static void places_free(struct berth_config_places *p)
{
    for (size_t i = 0; p && i < p->n; i++) {
        free(p->v[i].key);
        free(p->v[i].where);
    }
    if (p) {
        free(p->v);
    }
    free(p);
}

/* Record (where != NULL) or forget (NULL) where `key` was set. */
static int place_set(berth_config *cfg, const char *key, const char *where)
{
    struct berth_config_places *p = cfg->places;
    char *k = NULL, *w = NULL;
    size_t i;

    if (!p && !where) {
        return 0;
    }
    if (!p && !(p = cfg->places = calloc(1, sizeof(*p)))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (i = 0; i < p->n && strcmp(p->v[i].key, key) != 0; i++) {
    }
    if (!where) {
        if (i < p->n) {
            free(p->v[i].key);
            free(p->v[i].where);
            p->v[i] = p->v[--p->n];
        }
        return 0;
    }
    if (!(w = strdup(where))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (i < p->n) {
        free(p->v[i].where);
        p->v[i].where = w;
        return 0;
    }
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        void *grown = realloc(p->v, cap * sizeof(*p->v));
        if (!grown) {
            free(w);
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        p->v = grown;
        p->cap = cap;
    }
    if (!(k = strdup(key))) {
        free(w);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    p->v[p->n].key = k;
    p->v[p->n].where = w;
    p->n++;
    return 0;
}

const char *berth_config_origin(const berth_config *cfg, const char *key)
{
    const struct berth_config_places *p = cfg ? cfg->places : NULL;

    for (size_t i = 0; p && key && i < p->n; i++) {
        if (strcmp(p->v[i].key, key) == 0) {
            return p->v[i].where;
        }
    }
    return NULL;
}

/* Is `name` a section, i.e. a proper prefix "name." of some key? */
static bool is_section(const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < NKEYS; i++) {
        if (strncmp(keys[i].name, name, n) == 0 && keys[i].name[n] == '.') {
            return true;
        }
    }
    return false;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v && v[i]; i++) {
        free(v[i]);
    }
    free(v);
}

/* Each list is replaced whole: free the one in `cfg` and put `items` in its place (NULL, or zeroed
 * room for a new list, whose count its loader raises item by item), counting none. */
static void replace_access(berth_config *cfg, void *items)
{
    for (size_t i = 0; i < cfg->access_count; i++) {
        free(cfg->access[i].repositories);
        free_strv(cfg->access[i].users);
        free_strv(cfg->access[i].groups);
    }
    free(cfg->access);
    cfg->access = items;
    cfg->access_count = 0;
}

static void free_lists_groups(berth_config *cfg)
{
    for (size_t i = 0; i < cfg->groups_count; i++) {
        free(cfg->groups[i].name);
        free_strv(cfg->groups[i].users);
    }
    free(cfg->groups);
    cfg->groups = NULL;
    cfg->groups_count = 0;
}

static void replace_retention(berth_config *cfg, void *items)
{
    for (size_t i = 0; i < cfg->gc.retention_count; i++) {
        free(cfg->gc.retention[i].repositories);
        free(cfg->gc.retention[i].tags);
    }
    free(cfg->gc.retention);
    cfg->gc.retention = items;
    cfg->gc.retention_count = 0;
}

static void replace_upstreams(berth_config *cfg, void *items)
{
    for (size_t i = 0; i < cfg->proxy.upstreams_count; i++) {
        berth_config_upstream *u = &cfg->proxy.upstreams[i];
        free(u->prefix);
        free(u->url);
        free(u->registry);
        free_strv(u->immutable_tags);
        free(u->credentials);
    }
    free(cfg->proxy.upstreams);
    cfg->proxy.upstreams = items;
    cfg->proxy.upstreams_count = 0;
}

void berth_config_free(berth_config *cfg)
{
    if (!cfg) {
        return;
    }
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].type == T_STRING) {
            free(*(char **)(void *)((char *)cfg + keys[i].offset));
        }
    }
    replace_access(cfg, NULL);
    free_lists_groups(cfg);
    replace_retention(cfg, NULL);
    places_free(cfg->places);
    replace_upstreams(cfg, NULL);
    free(cfg);
}

int berth_config_new(berth_config **out)
{
    berth_config *cfg = NULL;
    int error = BERTH_ENOMEM;

    if (!out) {
        return berth_error_set(BERTH_EINVALID, "berth_config_new: no output");
    }
    *out = NULL;
    berth_error_clear();
    cfg = calloc(1, sizeof(*cfg));
    if (!cfg) {
        goto out;
    }
    cfg->threads = 0;         /* one per core */
    cfg->max_connections = 0; /* from the descriptor limit (berth serve resolves it) */
    cfg->limits.connections_per_address = 0; /* no cap */
    cfg->timeouts.header = 20;
    cfg->timeouts.drain = 5;
    cfg->timeouts.read = 60;
    cfg->timeouts.write = 300;
    cfg->timeouts.idle = 120;
    cfg->limits.manifest_size = BERTH_MANIFEST_MAX_DEFAULT;
    cfg->limits.body_size = 0;
    cfg->limits.upload_requests = 64;
    cfg->limits.upload_sessions = 4096;
    cfg->limits.upload_sessions_per_repository = 256;
    cfg->limits.upload_sessions_per_client = 128;
    cfg->limits.upload_idle_ttl = 3600;
    cfg->limits.requests_per_second = 0;
    cfg->limits.burst = 0;
    cfg->log.format = BERTH_CONFIG_LOG_TEXT;
    cfg->log.level = 2;
    cfg->auth.token.lifetime = 300;
    cfg->storage.automatic_mount = true;
    cfg->storage.delete_enabled = true;
    cfg->storage.s3.path_style = true;
    cfg->database.pool_size = 8;
    /* as zot: collect every hour, keep what is younger than an hour, untagged manifests a day */
    cfg->gc.interval = 3600;
    cfg->gc.grace = 3600;
    cfg->gc.untagged_delay = 86400;
    cfg->ui.enabled = true;
    if (berth_config_set(cfg, "listen", "127.0.0.1:5000") < 0 ||
        berth_config_set(cfg, "root", "./data") < 0 ||
        berth_config_set(cfg, "auth.token.service", "berth") < 0 ||
        berth_config_set(cfg, "auth.token.issuer", "berth") < 0) {
        goto out;
    }
    *out = cfg;
    cfg = NULL;
    error = 0;
out:
    if (error) {
        berth_error_set(error, "out of memory");
    }
    berth_config_free(cfg);
    return error;
}

int berth_config_parse_duration(uint64_t *out, const char *text)
{
    return berth_parse_duration(out, text);
}

int berth_config_parse_size(uint64_t *out, const char *text)
{
    return berth_parse_size(out, text);
}

static int parse_bool(bool *out, const char *text)
{
    if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "on") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0 || strcmp(text, "off") == 0) {
        *out = false;
        return 0;
    }
    return berth_error_set(BERTH_EINVALID, "invalid boolean '%s' (true or false)", text);
}

static int set_key(berth_config *cfg, const key_def *k, const char *value)
{
    void *field = (char *)cfg + k->offset;
    uint64_t n = 0;
    int error = 0;

    switch (k->type) {
    case T_STRING: {
        char *copy = NULL;
        if (value[0]) {
            copy = strdup(value);
            if (!copy) {
                return berth_error_set(BERTH_ENOMEM, "out of memory");
            }
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    case T_U64:
        error = berth_parse_u64(&n, value, strlen(value), UINT64_MAX);
        if (error < 0) {
            return berth_error_set(BERTH_EINVALID, "invalid number '%s'", value);
        }
        *(uint64_t *)field = n;
        return 0;
    case T_DURATION:
        error = berth_config_parse_duration(&n, value);
        if (error == 0) {
            *(uint64_t *)field = n;
        }
        return error;
    case T_SIZE:
        error = berth_config_parse_size(&n, value);
        if (error == 0) {
            *(uint64_t *)field = n;
        }
        return error;
    case T_LOGFORMAT:
        if (strcmp(value, "text") == 0) {
            *(berth_config_log_format *)field = BERTH_CONFIG_LOG_TEXT;
        } else if (strcmp(value, "json") == 0) {
            *(berth_config_log_format *)field = BERTH_CONFIG_LOG_JSON;
        } else {
            return berth_error_set(BERTH_EINVALID, "invalid log format '%s' (text or json)", value);
        }
        return 0;
    case T_LOGLEVEL:
        for (int i = 0; i < 4; i++) {
            if (strcmp(value, level_names[i]) == 0) {
                *(int *)field = i;
                return 0;
            }
        }
        return berth_error_set(BERTH_EINVALID,
                               "invalid log level '%s' (error, warn, info or debug)", value);
    case T_BOOL:
        return parse_bool((bool *)field, value);
    }
    return berth_error_set(BERTH_ERROR, "internal: bad key type");
}

int berth_config_set_at(berth_config *cfg, const char *key, const char *value, const char *origin)
{
    const key_def *k = NULL;

    if (!cfg || !key || !value) {
        return berth_error_set(BERTH_EINVALID, "berth_config_set: missing argument");
    }
    k = find_key(key);
    if (!k) {
        berth_error_set(BERTH_ENOTFOUND, "%s: unknown setting", key);
    } else if (set_key(cfg, k, value) < 0) {
        berth_error_prefix("%s: ", key);
    } else {
        return place_set(cfg, k->name, origin);
    }
    if (origin) {
        berth_error_prefix("%s: ", origin);
    }
    return berth_error_last_code();
}

int berth_config_set(berth_config *cfg, const char *key, const char *value)
{
    return berth_config_set_at(cfg, key, value, NULL);
}

int berth_config_env_name(char *out, size_t out_size, const char *key)
{
    size_t n = 0;
    static const char prefix[] = "BERTH_";

    if (!out || !key || out_size < sizeof(prefix) + strlen(key)) {
        return berth_error_set(BERTH_EINVALID, "environment name does not fit");
    }
    memcpy(out, prefix, sizeof(prefix) - 1);
    n = sizeof(prefix) - 1;
    for (const char *p = key; *p; p++) {
        out[n++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    }
    out[n] = '\0';
    return 0;
}

int berth_config_apply_env(berth_config *cfg, const char *(*getenv_fn)(const char *name))
{
    char name[128];

    if (!cfg) {
        return berth_error_set(BERTH_EINVALID, "berth_config_apply_env: no configuration");
    }
    berth_error_clear();
    for (size_t i = 0; i < NKEYS; i++) {
        const char *value = NULL;
        if (berth_config_env_name(name, sizeof(name), keys[i].name) < 0) {
            return berth_error_last_code();
        }
        value = getenv_fn ? getenv_fn(name) : getenv(name);
        if (value && berth_config_set_at(cfg, keys[i].name, value, name) < 0) {
            return berth_error_last_code();
        }
    }
    for (size_t i = 0; i < NALIASES; i++) {
        const char *value = NULL;
        if (berth_config_env_name(name, sizeof(name), aliases[i].old) < 0) {
            return berth_error_last_code();
        }
        value = getenv_fn ? getenv_fn(name) : getenv(name);
        if (value) {
            char other[128];
            if (berth_config_env_name(other, sizeof(other), aliases[i].key) < 0) {
                return berth_error_last_code();
            }
            if (getenv_fn ? getenv_fn(other) : getenv(other)) {
                return berth_error_set(BERTH_EINVALID, "%s is the old name of %s: set one of them",
                                       name, other);
            }
        }
        if (value && berth_config_set_at(cfg, aliases[i].key, value, name) < 0) {
            return berth_error_last_code();
        }
    }
    return 0;
}

/* ---- YAML ---- */

typedef struct loader {
    yaml_document_t *doc;
    const char *name;
    berth_config *cfg;
} loader;

static int fail_at(const loader *ld, const yaml_node_t *node, const char *key, const char *fmt,
                   const char *detail)
{
    return berth_error_set(BERTH_EINVALID, "%s:%zu:%zu: %s: %s%s", ld->name,
                           (size_t)node->start_mark.line + 1, (size_t)node->start_mark.column + 1,
                           key, fmt, detail ? detail : "");
}

/* Record that `key` was set at `node`. */
static int place_at(const loader *ld, const yaml_node_t *node, const char *key)
{
    char where[512];

    snprintf(where, sizeof(where), "%s:%zu:%zu", ld->name, (size_t)node->start_mark.line + 1,
             (size_t)node->start_mark.column + 1);
    return place_set(ld->cfg, key, where);
}

static const char *scalar(const yaml_node_t *node)
{
    return node && node->type == YAML_SCALAR_NODE ? (const char *)node->data.scalar.value : NULL;
}

/* Does a pair before `p` in `map` have the same scalar key? (YAML forbids it; libyaml does not
 * check, and a repeated key in a configuration is a mistake worth reporting.) */
static bool repeated_key(const loader *ld, const yaml_node_t *map, const yaml_node_pair_t *p)
{
    const char *name = scalar(yaml_document_get_node(ld->doc, p->key));
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; name && q < p; q++) {
        const char *other = scalar(yaml_document_get_node(ld->doc, q->key));
        if (other && strcmp(other, name) == 0) {
            return true;
        }
    }
    return false;
}

/* A sequence of scalars (or a single scalar) into a NULL-terminated string array. */
static int load_strv(char ***out, const loader *ld, yaml_node_t *node, const char *key)
{
    size_t count = 0;
    char **v = NULL;
    int error = 0;

    if (node->type == YAML_SCALAR_NODE) {
        count = 1;
    } else if (node->type == YAML_SEQUENCE_NODE) {
        count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    } else {
        return fail_at(ld, node, key, "expected a list of strings", NULL);
    }
    v = calloc(count + 1, sizeof(*v));
    if (!v) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *item =
            node->type == YAML_SCALAR_NODE
                ? node
                : yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
        const char *s = scalar(item);
        if (!s) {
            error = fail_at(ld, item ? item : node, key, "expected a string", NULL);
            goto out;
        }
        v[i] = strdup(s);
        if (!v[i]) {
            error = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    }
    free_strv(*out);
    *out = v;
    v = NULL;
out:
    free_strv(v);
    return error;
}

static int load_actions(unsigned *out, const loader *ld, yaml_node_t *node, const char *key)
{
    char **v = NULL;
    unsigned actions = 0;
    int error = load_strv(&v, ld, node, key);

    for (size_t i = 0; error == 0 && v[i]; i++) {
        if (strcmp(v[i], "pull") == 0) {
            actions |= BERTH_ACTION_PULL;
        } else if (strcmp(v[i], "push") == 0) {
            actions |= BERTH_ACTION_PUSH;
        } else if (strcmp(v[i], "delete") == 0) {
            actions |= BERTH_ACTION_DELETE;
        } else if (strcmp(v[i], "*") == 0) {
            actions |= BERTH_ACTION_PULL | BERTH_ACTION_PUSH | BERTH_ACTION_DELETE;
        } else {
            error = fail_at(ld, node, key, "unknown action ", v[i]);
        }
    }
    if (error == 0) {
        *out = actions;
    }
    free_strv(v);
    return error;
}

static int load_string_field(char **out, const loader *ld, yaml_node_t *node, const char *key)
{
    const char *s = scalar(node);
    char *copy = NULL;

    if (!s) {
        return fail_at(ld, node, key, "expected a string", NULL);
    }
    copy = strdup(s);
    if (!copy) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    free(*out);
    *out = copy;
    return 0;
}

/* What a field_fn returns for a name that its element does not have. */
#define NO_SUCH_FIELD 1

/* Load the value `v` of the field `name` (its dotted path: `key`) into the list element `elem`.
 * @return 0, a negative error code (message set) or NO_SUCH_FIELD */
typedef int (*field_fn)(void *elem, const loader *ld, const char *name, yaml_node_t *v,
                        const char *key);

/*
 * A list element at `path`: a mapping, each of whose keys is given once to `field`. `init` (or
 * NULL) sets the element's defaults first, once `node` is known to be a mapping.
 */
static int load_fields(void *elem, const loader *ld, yaml_node_t *node, const char *path,
                       void (*init)(void *elem), field_fn field)
{
    char key[96];
    int error = 0;

    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ld, node, path, "expected a mapping", NULL);
    }
    if (init) {
        init(elem);
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         error == 0 && p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        const char *name = scalar(k);
        if (!name) {
            return fail_at(ld, k, path, "keys must be strings", NULL);
        }
        snprintf(key, sizeof(key), "%s.%s", path, name);
        if (repeated_key(ld, node, p)) {
            error = fail_at(ld, k, key, "repeated key", NULL);
        } else if ((error = field(elem, ld, name, v, key)) == NO_SUCH_FIELD) {
            error = fail_at(ld, k, key, "unknown key", NULL);
        }
    }
    return error;
}

/* A YAML list of mappings in berth_config: access, gc.retention, proxy.upstreams. */
typedef struct list_def {
    const char *key;      /* its dotted name, and item i's path is "key[i]" */
    const char *expected; /* the message for a node that is not a sequence */
    size_t size;          /* of one element */
    void (*replace)(berth_config *cfg, void *items);
    /* Count item i in (so that berth_config_free() frees it, loaded or not), then load it. */
    int (*load)(const loader *ld, yaml_node_t *item, size_t i, const char *path);
} list_def;

/* Replace the list `def` in ld->cfg with the sequence `node`. */
static int load_list(const loader *ld, yaml_node_t *node, const list_def *def)
{
    size_t count = 0;
    char path[64];
    void *items = NULL;
    int error = 0;

    if (node->type != YAML_SEQUENCE_NODE) {
        return fail_at(ld, node, def->key, def->expected, NULL);
    }
    def->replace(ld->cfg, NULL);
    count = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    if (count == 0) {
        return 0;
    }
    items = calloc(count, def->size);
    if (!items) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    def->replace(ld->cfg, items);
    for (size_t i = 0; error == 0 && i < count; i++) {
        yaml_node_t *item = yaml_document_get_node(ld->doc, node->data.sequence.items.start[i]);
        snprintf(path, sizeof(path), "%s[%zu]", def->key, i);
        error = def->load(ld, item, i, path);
    }
    return error;
}

static void rule_init(void *elem)
{
    berth_config_rule *rule = elem;
    rule->actions = BERTH_ACTION_PULL;
}

static int rule_field(void *elem, const loader *ld, const char *name, yaml_node_t *v,
                      const char *key)
{
    berth_config_rule *rule = elem;
    int error = 0;

    if (strcmp(name, "repositories") == 0) {
        error = load_string_field(&rule->repositories, ld, v, key);
    } else if (strcmp(name, "users") == 0) {
        error = load_strv(&rule->users, ld, v, key);
    } else if (strcmp(name, "groups") == 0) {
        error = load_strv(&rule->groups, ld, v, key);
        if (error == 0) {
            error = place_at(ld, v, key);
        }
    } else if (strcmp(name, "anonymous") == 0) {
        const char *s = scalar(v);
        if (!s || parse_bool(&rule->anonymous, s) < 0) {
            error = fail_at(ld, v, key, "expected true or false", NULL);
        }
    } else if (strcmp(name, "actions") == 0) {
        error = load_actions(&rule->actions, ld, v, key);
    } else {
        error = NO_SUCH_FIELD;
    }
    return error;
}

/* access[i]: a rule, and where it is (messages about it name the place). */
static int load_access_item(const loader *ld, yaml_node_t *item, size_t i, const char *path)
{
    berth_config_rule *rule = &ld->cfg->access[i];
    int error = 0;

    ld->cfg->access_count = i + 1;
    error = load_fields(rule, ld, item, path, rule_init, rule_field);
    if (error == 0 && !rule->repositories) {
        error = fail_at(ld, item, path, "missing 'repositories'", NULL);
    }
    if (error == 0) {
        error = place_at(ld, item, path);
    }
    return error;
}

static int load_groups(const loader *ld, yaml_node_t *node)
{
    berth_config *cfg = ld->cfg;
    size_t count = 0;
    char key[GROUP_NAME_MAX + 16];
    int error = 0;

    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ld, node, "groups", "expected a mapping of group names to users", NULL);
    }
    free_lists_groups(cfg);
    count = (size_t)(node->data.mapping.pairs.top - node->data.mapping.pairs.start);
    if (count == 0) {
        return 0;
    }
    cfg->groups = calloc(count, sizeof(*cfg->groups));
    if (!cfg->groups) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (size_t i = 0; error == 0 && i < count; i++) {
        yaml_node_pair_t *p = &node->data.mapping.pairs.start[i];
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        const char *name = scalar(k);
        cfg->groups_count = i + 1;
        if (!name) {
            return fail_at(ld, k, "groups", "group names must be strings", NULL);
        }
        if (strlen(name) > GROUP_NAME_MAX) {
            /* and printed, a longer name could pass YAML's 1024-character limit on keys */
            return fail_at(ld, k, "groups", "group names are at most 128 bytes", NULL);
        }
        snprintf(key, sizeof(key), "groups.%s", name);
        if (repeated_key(ld, node, p)) {
            return fail_at(ld, k, key, "repeated group", NULL);
        }
        error = load_string_field(&cfg->groups[i].name, ld, k, key);
        if (error == 0) {
            error = load_strv(&cfg->groups[i].users, ld, v, key);
        }
    }
    return error;
}

static int retention_field(void *elem, const loader *ld, const char *name, yaml_node_t *v,
                           const char *key)
{
    berth_config_retention *r = elem;
    const char *s = scalar(v);
    int error = 0;

    if (strcmp(name, "repositories") == 0) {
        error = load_string_field(&r->repositories, ld, v, key);
    } else if (strcmp(name, "tags") == 0) {
        error = load_string_field(&r->tags, ld, v, key);
    } else if (strcmp(name, "keep_last") == 0) {
        if (!s || berth_parse_u64(&r->keep_last, s, strlen(s), UINT64_MAX) < 0) {
            error = fail_at(ld, v, key, "expected a number", NULL);
        }
    } else if (strcmp(name, "max_tag_age") == 0 || strcmp(name, "max_untagged_age") == 0) {
        uint64_t *field = name[4] == 't' ? &r->max_tag_age : &r->max_untagged_age;
        if (!s || berth_config_parse_duration(field, s) < 0) {
            error = fail_at(ld, v, key, "expected a duration (30s, 5m, 12h, 7d)", NULL);
        }
    } else {
        error = NO_SUCH_FIELD;
    }
    return error;
}

static int load_retention_item(const loader *ld, yaml_node_t *item, size_t i, const char *path)
{
    berth_config_retention *r = &ld->cfg->gc.retention[i];
    int error = 0;

    ld->cfg->gc.retention_count = i + 1;
    error = load_fields(r, ld, item, path, NULL, retention_field);
    if (error == 0 && !r->repositories) {
        r->repositories = strdup("*");
    }
    if (error == 0 && !r->tags) {
        r->tags = strdup("*");
    }
    if (error == 0 && (!r->repositories || !r->tags)) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return error;
}

/* Default seconds a cached tag is fresh (proxy.upstreams[].ttl). */
#define UPSTREAM_TTL_DEFAULT 300
/* Default seconds an upstream request may go without progress (proxy.upstreams[].timeout). */
#define UPSTREAM_TIMEOUT_DEFAULT 30

/*
 * The registry of an upstream URL: `http://` or `https://`, then host[:port] (a name, IPv4 or a
 * bracketed IPv6 address), optionally one '/', nothing else (no user, path or query: the API
 * is always at /v2/). Sets u->registry and u->plain_http. @return 0 or BERTH_EINVALID
 */
static int parse_upstream_url(berth_config_upstream *u)
{
    const char *p = u->url, *host;
    size_t len;
    bool bracket;

    if (strncmp(p, "https://", 8) == 0) {
        p += 8;
        u->plain_http = false;
    } else if (strncmp(p, "http://", 7) == 0) {
        p += 7;
        u->plain_http = true;
    } else {
        return BERTH_EINVALID;
    }
    host = p;
    bracket = *p == '[';
    if (bracket) {
        p += strspn(p + 1, "0123456789abcdefABCDEF:.") + 1;
        if (*p++ != ']' || p - host < 4) {
            return BERTH_EINVALID;
        }
    } else {
        p += strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (p == host || *host == '.' || *host == '-') {
            return BERTH_EINVALID;
        }
    }
    if (*p == ':') {
        uint64_t port;
        size_t digits = strspn(p + 1, "0123456789");
        if (berth_parse_u64(&port, p + 1, digits, 65535) < 0 || port == 0) {
            berth_error_clear();
            return BERTH_EINVALID;
        }
        p += 1 + digits;
    }
    len = (size_t)(p - host);
    if (*p == '/') {
        p++;
    }
    if (*p != '\0') {
        return BERTH_EINVALID;
    }
    free(u->registry);
    if (!(u->registry = strndup(host, len))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (char *c = u->registry; *c; c++) {
        *c = (char)tolower((unsigned char)*c);
    }
    return 0;
}

static void upstream_init(void *elem)
{
    berth_config_upstream *u = elem;
    u->ttl = UPSTREAM_TTL_DEFAULT;
    u->timeout = UPSTREAM_TIMEOUT_DEFAULT;
}

static int upstream_field(void *elem, const loader *ld, const char *name, yaml_node_t *v,
                          const char *key)
{
    berth_config_upstream *u = elem;
    const char *s = scalar(v);
    int error = 0;

    if (strcmp(name, "prefix") == 0) {
        error = load_string_field(&u->prefix, ld, v, key);
        if (error == 0 && berth_name_validate(u->prefix) < 0) {
            error =
                fail_at(ld, v, key, "not a repository name (e.g. docker.io, ghcr.io/org)", NULL);
        }
    } else if (strcmp(name, "url") == 0) {
        error = load_string_field(&u->url, ld, v, key);
        if (error == 0 && parse_upstream_url(u) < 0) {
            error = fail_at(ld, v, key, "expected http[s]://HOST[:PORT] (no user, path or query)",
                            NULL);
        }
    } else if (strcmp(name, "ttl") == 0) {
        if (!s || berth_config_parse_duration(&u->ttl, s) < 0) {
            error = fail_at(ld, v, key, "expected a duration (30s, 5m, 12h, 7d)", NULL);
        }
    } else if (strcmp(name, "timeout") == 0) {
        if (!s || berth_config_parse_duration(&u->timeout, s) < 0 || u->timeout == 0 ||
            u->timeout > 3600) {
            error = fail_at(ld, v, key, "expected a duration from 1s to 1h", NULL);
        }
    } else if (strcmp(name, "immutable_tags") == 0) {
        error = load_strv(&u->immutable_tags, ld, v, key);
    } else if (strcmp(name, "max_size") == 0) {
        if (!s || berth_config_parse_size(&u->max_size, s) < 0 || u->max_size == 0) {
            error = fail_at(ld, v, key, "expected a size above 0 (500MiB, 20GiB)", NULL);
        }
    } else if (strcmp(name, "credentials") == 0) {
        error = load_string_field(&u->credentials, ld, v, key);
        if (error == 0 && u->credentials[0] == '\0') {
            error = fail_at(ld, v, key, "expected the path of an auth file", NULL);
        }
    } else {
        error = NO_SUCH_FIELD;
    }
    return error;
}

/* Is `a` the same path as `b`, or a path below it (a prefix ending at a '/')? */
static bool path_within(const char *a, const char *b)
{
    size_t n = strlen(b);
    return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

static int load_upstream_item(const loader *ld, yaml_node_t *item, size_t i, const char *path)
{
    berth_config_upstream *u = &ld->cfg->proxy.upstreams[i];
    int error = 0;

    ld->cfg->proxy.upstreams_count = i + 1;
    error = load_fields(u, ld, item, path, upstream_init, upstream_field);
    if (error == 0 && !u->prefix) {
        error = fail_at(ld, item, path, "missing 'prefix'", NULL);
    }
    if (error == 0 && !u->url) {
        error = fail_at(ld, item, path, "missing 'url'", NULL);
    }
    /* one upstream per path: a prefix may not equal nor contain another */
    for (size_t j = 0; error == 0 && j < i; j++) {
        const char *a = u->prefix, *b = ld->cfg->proxy.upstreams[j].prefix;
        if (path_within(a, b) || path_within(b, a)) {
            char key[96], detail[96];
            snprintf(key, sizeof(key), "%s.prefix", path);
            snprintf(detail, sizeof(detail), "proxy.upstreams[%zu].prefix", j);
            error = fail_at(ld, item, key, "overlaps ", detail);
        }
    }
    return error;
}

static const list_def lists[] = {
    {.key = "access",
     .expected = "expected a list of rules",
     .size = sizeof(berth_config_rule),
     .replace = replace_access,
     .load = load_access_item},
    {.key = "gc.retention",
     .expected = "expected a list of rules",
     .size = sizeof(berth_config_retention),
     .replace = replace_retention,
     .load = load_retention_item},
    {.key = "proxy.upstreams",
     .expected = "expected a list of upstreams",
     .size = sizeof(berth_config_upstream),
     .replace = replace_upstreams,
     .load = load_upstream_item},
};

#define NLISTS (sizeof(lists) / sizeof(lists[0]))

/* The list named `path`, or NULL. */
static const list_def *find_list(const char *path)
{
    for (size_t i = 0; i < NLISTS; i++) {
        if (strcmp(lists[i].key, path) == 0) {
            return &lists[i];
        }
    }
    return NULL;
}

/* Does a pair before `p` in `map` (the section `prefix`) set the key `def` under another name
 * (an alias: limits.concurrent_uploads and limits.upload_sessions)? Its dotted name goes to
 * `other`. */
static bool same_setting_before(const loader *ld, const yaml_node_t *map, const yaml_node_pair_t *p,
                                const char *prefix, const key_def *def, char *other, size_t cap)
{
    for (const yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
        const char *name = scalar(yaml_document_get_node(ld->doc, q->key));
        if (name &&
            (size_t)snprintf(other, cap, "%s%s%s", prefix, prefix[0] ? "." : "", name) < cap &&
            find_key(other) == def) {
            return true;
        }
    }
    return false;
}

static int load_mapping(const loader *ld, yaml_node_t *node, const char *prefix)
{
    char other[128];
    char path[128];
    int error = 0;

    if (node->type != YAML_MAPPING_NODE) {
        return fail_at(ld, node, prefix[0] ? prefix : "(document)", "expected a mapping", NULL);
    }
    for (yaml_node_pair_t *p = node->data.mapping.pairs.start;
         error == 0 && p < node->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(ld->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(ld->doc, p->value);
        const char *name = scalar(k);
        const key_def *def = NULL;
        const list_def *list = NULL;
        if (!name) {
            return fail_at(ld, k, prefix[0] ? prefix : "(document)", "keys must be strings", NULL);
        }
        if ((size_t)snprintf(path, sizeof(path), "%s%s%s", prefix, prefix[0] ? "." : "", name) >=
            sizeof(path)) {
            return fail_at(ld, k, prefix, "key too long", NULL);
        }
        if (repeated_key(ld, node, p)) {
            error = fail_at(ld, k, path, "repeated key", NULL);
        } else if ((list = find_list(path)) != NULL) {
            error = load_list(ld, v, list);
        } else if (strcmp(path, "groups") == 0) {
            error = load_groups(ld, v);
        } else if (strcmp(path, "proxy") == 0) {
            error = load_mapping(ld, v, path);
        } else if ((def = find_key(path)) != NULL) {
            const char *s = scalar(v);
            if (same_setting_before(ld, node, p, prefix, def, other, sizeof(other))) {
                /* one setting under its old and its new name: neither may silently win */
                error = fail_at(ld, k, path, "repeated key: the same setting as ", other);
            } else if (!s) {
                error = fail_at(ld, v, path, "expected a scalar value", NULL);
            } else if (set_key(ld->cfg, def, s) < 0) {
                char detail[256];
                snprintf(detail, sizeof(detail), "%s", berth_error_last());
                error = fail_at(ld, v, path, detail, NULL);
            } else {
                error = place_at(ld, v, def->name);
            }
        } else if (is_section(path)) {
            error = load_mapping(ld, v, path);
        } else {
            error = fail_at(ld, k, path, "unknown key", NULL);
        }
    }
    return error;
}

int berth_config_load_string(berth_config *cfg, const char *name, const char *text, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc;
    bool have_parser = false, have_doc = false;
    loader ld = {&doc, name ? name : "(config)", cfg};
    yaml_node_t *root = NULL;
    int error = 0;

    if (!cfg || (!text && len)) {
        return berth_error_set(BERTH_EINVALID, "berth_config_load_string: missing argument");
    }
    berth_error_clear();
    if (!yaml_parser_initialize(&parser)) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    have_parser = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        error = berth_error_set(BERTH_EINVALID, "%s:%zu:%zu: (yaml): %s%s%s", ld.name,
                                parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                                parser.problem ? parser.problem : "syntax error",
                                parser.context ? " " : "", parser.context ? parser.context : "");
        goto out;
    }
    have_doc = true;
    root = yaml_document_get_root_node(&doc);
    if (!root) {
        goto out; /* an empty file: all defaults */
    }
    if (root->type == YAML_SCALAR_NODE && root->data.scalar.length == 0) {
        goto out;
    }
    error = load_mapping(&ld, root, "");
out:
    if (have_doc) {
        yaml_document_delete(&doc);
    }
    if (have_parser) {
        yaml_parser_delete(&parser);
    }
    return error;
}

int berth_config_load_file(berth_config *cfg, const char *path)
{
    FILE *f = NULL;
    char *text = NULL;
    size_t len = 0, cap = 0;
    int error = 0;

    if (!cfg || !path) {
        return berth_error_set(BERTH_EINVALID, "berth_config_load_file: missing argument");
    }
    f = fopen(path, "rb");
    if (!f) {
        error = berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    for (;;) {
        size_t n = 0;
        if (len + 4096 + 1 > cap) {
            char *grown = NULL;
            if (cap > (16u << 20)) {
                error = berth_error_set(BERTH_ETOOBIG, "%s: larger than 16 MiB", path);
                goto out;
            }
            cap = cap ? cap * 2 : 8192;
            grown = realloc(text, cap);
            if (!grown) {
                error = berth_error_set(BERTH_ENOMEM, "out of memory");
                goto out;
            }
            text = grown;
        }
        n = fread(text + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0) {
            break;
        }
    }
    if (ferror(f)) {
        error = berth_error_set(BERTH_EIO, "%s: read error", path);
        goto out;
    }
    error = berth_config_load_string(cfg, path, text, len);
out:
    if (f) {
        fclose(f);
    }
    free(text);
    return error;
}

static bool in_list(char *const *v, const char *s)
{
    for (size_t i = 0; v && v[i]; i++) {
        if (strcmp(v[i], s) == 0) {
            return true;
        }
    }
    return false;
}

/* Refuse the configuration because of `key`: "PLACE: key: reason", PLACE where it was set. */
static int bad(const berth_config *cfg, const char *key, const char *fmt, ...) BERTH_PRINTF(3, 4);

static int bad(const berth_config *cfg, const char *key, const char *fmt, ...)
{
    const char *where = berth_config_origin(cfg, key);
    char reason[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    return berth_error_set(BERTH_EINVALID, "%s%s%s: %s", where ? where : "", where ? ": " : "", key,
                           reason);
}

int berth_config_validate(const berth_config *cfg)
{
    char key[64];

    if (!cfg) {
        return berth_error_set(BERTH_EINVALID, "no configuration");
    }
    berth_error_clear();
    if (!cfg->listen) {
        return bad(cfg, "listen", "must be set");
    }
    if (!cfg->root) {
        return bad(cfg, "root", "must be set");
    }
    if ((cfg->storage.s3.bucket || cfg->storage.s3.endpoint) && !cfg->database.url) {
        return bad(cfg, cfg->storage.s3.bucket ? "storage.s3.bucket" : "storage.s3.endpoint",
                   "needs database.url (with blobs in object storage, the metadata lives in "
                   "PostgreSQL)");
    }
    if (cfg->storage.s3.bucket && !cfg->storage.s3.endpoint) {
        return bad(cfg, "storage.s3.bucket",
                   "needs storage.s3.endpoint (for AWS: https://s3.<region>.amazonaws.com)");
    }
    if (cfg->database.url && !cfg->storage.s3.bucket) {
        return bad(cfg, "database.url",
                   "needs storage.s3.bucket (the metadata in PostgreSQL goes with blobs in "
                   "object storage)");
    }
    if (cfg->storage.s3.part_size &&
        (cfg->storage.s3.part_size < 5 * 1048576ull || cfg->storage.s3.part_size > 5ull << 30)) {
        return bad(cfg, "storage.s3.part_size", "must be 5MiB to 5GiB (S3's part sizes)");
    }
    if (cfg->database.pool_size == 0 || cfg->database.pool_size > 1024) {
        return bad(cfg, "database.pool_size", "must be 1 to 1024");
    }
    if (cfg->threads > 1024) {
        return bad(cfg, "threads", "must be between 0 (one per core) and 1024");
    }
    if (cfg->tls.min_version && strcmp(cfg->tls.min_version, "1.2") != 0 &&
        strcmp(cfg->tls.min_version, "1.3") != 0) {
        return bad(cfg, "tls.min_version", "must be 1.2 or 1.3");
    }
    if (cfg->tls.min_version && cfg->tls.priorities) {
        return bad(cfg, "tls.priorities", "set either it or tls.min_version, not both");
    }
    if (cfg->limits.manifest_size == 0) {
        return bad(cfg, "limits.manifest_size", "must be at least 1");
    }
    if (cfg->limits.upload_idle_ttl == 0 || cfg->limits.upload_idle_ttl > UINT32_MAX) {
        return bad(cfg, "limits.upload_idle_ttl", "must be 1s to 136 years");
    }
    if (!cfg->tls.cert != !cfg->tls.key) {
        return bad(cfg, cfg->tls.cert ? "tls.cert" : "tls.key",
                   "tls.cert and tls.key must be set together");
    }
    if (cfg->tls.client_ca && !cfg->tls.cert) {
        return bad(cfg, "tls.client_ca", "needs tls.cert and tls.key");
    }
    if (cfg->auth.token.realm && !cfg->auth.token.private_key && !cfg->auth.token.public_key) {
        return bad(cfg, "auth.token.realm", "needs auth.token.private_key or public_key");
    }
    if ((cfg->auth.token.private_key || cfg->auth.token.public_key) && !cfg->auth.token.realm) {
        return bad(cfg,
                   cfg->auth.token.private_key ? "auth.token.private_key" : "auth.token.public_key",
                   "needs auth.token.realm");
    }
    if (cfg->auth.token.private_key && cfg->auth.token.public_key) {
        return bad(cfg, "auth.token.public_key", "private_key and public_key are exclusive");
    }
    if (cfg->auth.token.private_key && !cfg->auth.htpasswd) {
        return bad(cfg, "auth.token.private_key", "the token endpoint needs auth.htpasswd");
    }
    if (cfg->auth.token.lifetime == 0) {
        return bad(cfg, "auth.token.lifetime", "must be at least 1s");
    }
    for (size_t i = 0; i < cfg->access_count; i++) {
        snprintf(key, sizeof(key), "access[%zu].groups", i);
        for (size_t j = 0; cfg->access[i].groups && cfg->access[i].groups[j]; j++) {
            bool found = false;
            for (size_t g = 0; g < cfg->groups_count; g++) {
                found = found || strcmp(cfg->groups[g].name, cfg->access[i].groups[j]) == 0;
            }
            if (!found) {
                return bad(cfg, key, "unknown group '%s' (not under groups:)",
                           cfg->access[i].groups[j]);
            }
        }
        if (!cfg->access[i].anonymous && !cfg->access[i].users && !cfg->access[i].groups) {
            snprintf(key, sizeof(key), "access[%zu]", i);
            return bad(cfg, key, "names no users, groups nor anonymous");
        }
        if (in_list(cfg->access[i].users, "")) {
            snprintf(key, sizeof(key), "access[%zu].users", i);
            return bad(cfg, key, "empty user name");
        }
    }
    return 0;
}

int berth_config_check_files(const berth_config *cfg)
{
    static const char *file_keys[] = {"tls.cert",
                                      "tls.key",
                                      "tls.client_ca",
                                      "auth.htpasswd",
                                      "auth.token.private_key",
                                      "auth.token.public_key"};

    if (!cfg) {
        return berth_error_set(BERTH_EINVALID, "no configuration");
    }
    berth_error_clear();
    for (size_t i = 0; i < sizeof(file_keys) / sizeof(file_keys[0]); i++) {
        const key_def *k = find_key(file_keys[i]);
        const char *path = *(char *const *)(const void *)((const char *)cfg + k->offset);
        struct stat st;
        FILE *f = NULL;

        if (!path) {
            continue;
        }
        if (stat(path, &st) != 0) {
            return bad(cfg, k->name, "%s: %s", path, strerror(errno));
        }
        if (!S_ISREG(st.st_mode)) {
            return bad(cfg, k->name, "%s: not a regular file", path);
        }
        if (!(f = fopen(path, "rb"))) {
            return bad(cfg, k->name, "%s: %s", path, strerror(errno));
        }
        fclose(f);
    }
    return 0;
}

/* ---- printing ---- */

/* Print a string as a YAML double-quoted scalar that reads back as the same bytes. Strings come
 * from libyaml, so they are valid UTF-8; code points YAML does not allow unescaped (C0 and C1
 * controls, DEL, U+FFFE, U+FFFF) and the ones it reads as line breaks even inside quotes (NEL,
 * LS, PS) are escaped. */
static void print_quoted(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
            fprintf(out, "\\x%02x", p[1]); /* U+0080..U+009F, NEL included */
            p++;
        } else if (p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9)) {
            fputs(p[2] == 0xa8 ? "\\L" : "\\P", out);
            p += 2;
        } else if (p[0] == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf)) {
            fputs(p[2] == 0xbe ? "\\uFFFE" : "\\uFFFF", out);
            p += 2;
        } else if (p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
            fputs("\\uFEFF", out); /* a BOM inside a document is not content for libyaml */
            p += 2;
        } else if (*p == '"' || *p == '\\') {
            fprintf(out, "\\%c", *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            fprintf(out, "\\x%02x", *p);
        } else {
            fputc(*p, out);
        }
    }
    fputc('"', out);
}

/* Where the password of a URL's user information (scheme://user:PASSWORD@host) starts in `s`
 * at or after `from`, with its length; NULL when there is none. */
static const char *url_password(const char *from, size_t *len)
{
    for (const char *scheme = strstr(from, "://"); scheme; scheme = strstr(scheme + 3, "://")) {
        const char *auth = scheme + 3;
        size_t end = strcspn(auth, "/?#");
        const char *at = NULL, *colon = NULL;
        for (size_t i = 0; i < end; i++) {
            if (auth[i] == '@') {
                at = auth + i; /* the last one: an unencoded '@' belongs to the password */
            }
        }
        if (at) {
            colon = memchr(auth, ':', (size_t)(at - auth));
        }
        if (colon) {
            *len = (size_t)(at - colon - 1);
            return colon + 1;
        }
    }
    return NULL;
}

/* Where the value of a libpq `password` keyword starts in `s` at or after `from`, with its
 * length: `password=X` or `password = 'X \' Y'` of a connection string (up to white space or
 * the closing quote), or `password=X` in a URL's query (up to '&' or '#'); NULL when none. */
static const char *keyword_password(const char *s, const char *from, size_t *len)
{
    for (const char *k = strstr(from, "password"); k; k = strstr(k + 8, "password")) {
        bool query = k > s && (k[-1] == '?' || k[-1] == '&');
        const char *v = k + 8;
        if (k > s && !query && !isspace((unsigned char)k[-1])) {
            continue;
        }
        while (!query && isspace((unsigned char)*v)) {
            v++;
        }
        if (*v != '=') {
            continue;
        }
        v++;
        while (!query && isspace((unsigned char)*v)) {
            v++;
        }
        if (query) {
            *len = strcspn(v, "&#");
        } else if (*v == '\'') {
            const char *e = v + 1;
            while (*e && *e != '\'') {
                e += e[0] == '\\' && e[1] ? 2 : 1;
            }
            *len = (size_t)(e - v) + (*e == '\'');
        } else {
            *len = strcspn(v, " \t\r\n\f\v");
        }
        return v;
    }
    return NULL;
}

char *berth_config_mask_secrets(const char *s, bool conninfo)
{
    size_t n = strlen(s), cap = 2 * n + 8, o = 0;
    char *out = malloc(cap);
    const char *p = s;

    if (!out) {
        return NULL;
    }
    for (;;) {
        size_t ulen = 0, klen = 0;
        const char *u = url_password(p, &ulen);
        const char *k = conninfo ? keyword_password(s, p, &klen) : NULL;
        const char *hit = u && (!k || u < k) ? u : k;
        size_t hlen = hit == u ? ulen : klen;
        if (!hit) {
            break;
        }
        memcpy(out + o, p, (size_t)(hit - p));
        o += (size_t)(hit - p);
        memcpy(out + o, "****", 4);
        o += 4;
        p = hit + hlen;
    }
    memcpy(out + o, p, strlen(p) + 1);
    return out;
}

/* Does the string key `name` hold a URL (or a connection string) whose secrets are masked? (An
 * upstream's url cannot hold user information: refused when loaded.) */
static bool masked_key(const char *name, bool *conninfo)
{
    static const char *const urls[] = {"database.url", "storage.s3.endpoint",
                                       "storage.s3.public_endpoint", "auth.token.realm"};
    *conninfo = strcmp(name, "database.url") == 0;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        if (strcmp(name, urls[i]) == 0) {
            return true;
        }
    }
    return false;
}

/* print_quoted() of a string with its secrets masked. */
static void print_masked(FILE *out, const char *s, bool conninfo)
{
    char *m = berth_config_mask_secrets(s, conninfo);
    print_quoted(out, m ? m : "****");
    free(m);
}

static void print_duration(FILE *out, uint64_t s)
{
    if (s && s % 86400 == 0) {
        fprintf(out, "%llud", (unsigned long long)(s / 86400));
    } else if (s && s % 3600 == 0) {
        fprintf(out, "%lluh", (unsigned long long)(s / 3600));
    } else if (s && s % 60 == 0) {
        fprintf(out, "%llum", (unsigned long long)(s / 60));
    } else {
        fprintf(out, "%llus", (unsigned long long)s);
    }
}

static void print_size(FILE *out, uint64_t n)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (u < 4 && n && n % 1024 == 0) {
        n /= 1024;
        u++;
    }
    fprintf(out, "%llu%s", (unsigned long long)n, units[u]);
}

static void print_value(FILE *out, const berth_config *cfg, const key_def *k)
{
    const void *field = (const char *)cfg + k->offset;
    switch (k->type) {
    case T_STRING: {
        const char *s = *(char *const *)field;
        bool conninfo = false;
        if (s && masked_key(k->name, &conninfo)) {
            print_masked(out, s, conninfo);
        } else if (s) {
            print_quoted(out, s);
        } else {
            fputs("\"\"", out);
        }
        break;
    }
    case T_U64:
        fprintf(out, "%llu", (unsigned long long)*(const uint64_t *)field);
        break;
    case T_DURATION:
        print_duration(out, *(const uint64_t *)field);
        break;
    case T_SIZE:
        print_size(out, *(const uint64_t *)field);
        break;
    case T_LOGFORMAT:
        fputs(*(const berth_config_log_format *)field == BERTH_CONFIG_LOG_JSON ? "json" : "text",
              out);
        break;
    case T_LOGLEVEL: {
        int l = *(const int *)field;
        fputs(l >= 0 && l < 4 ? level_names[l] : "info", out);
        break;
    }
    case T_BOOL:
        fputs(*(const bool *)field ? "true" : "false", out);
        break;
    }
}

/* The number of dot-separated components of `name` that are sections (all but the leaf). */
static size_t section_depth(const char *name)
{
    size_t d = 0;
    for (const char *p = name; *p; p++) {
        d += *p == '.';
    }
    return d;
}

/* The number of leading section components that `a` and `b` share. */
static size_t common_sections(const char *a, const char *b)
{
    size_t n = 0;
    for (size_t i = 0; a[i] && a[i] == b[i]; i++) {
        if (a[i] == '.') {
            n++;
        }
    }
    return n;
}

/* Print the keys whose name starts with `only` (or does not, when `invert`), opening nested
 * sections as their names change (the table keeps each section's keys together). */
static void print_keys(FILE *out, const berth_config *cfg, const char *only, bool invert)
{
    const char *prev = "";

    for (size_t i = 0; i < NKEYS; i++) {
        const char *name = keys[i].name;
        bool match = strncmp(name, only, strlen(only)) == 0;
        size_t depth = section_depth(name);
        size_t common = common_sections(prev, name);
        const char *p = name;
        if (match == invert) {
            continue;
        }
        if (common > section_depth(prev)) {
            common = section_depth(prev);
        }
        for (size_t c = 0; c < depth; c++) {
            const char *dot = strchr(p, '.');
            if (c >= common) {
                fprintf(out, "%*s%.*s:\n", (int)(c * 2), "", (int)(dot - p), p);
            }
            p = dot + 1;
        }
        fprintf(out, "%*s%s: ", (int)(depth * 2), "", p);
        print_value(out, cfg, &keys[i]);
        fputc('\n', out);
        prev = name;
    }
}

static void print_strv(FILE *out, char *const *v)
{
    fputc('[', out);
    for (size_t i = 0; v && v[i]; i++) {
        if (i) {
            fputs(", ", out);
        }
        print_quoted(out, v[i]);
    }
    fputc(']', out);
}

int berth_config_print(const berth_config *cfg, FILE *out)
{
    if (!cfg || !out) {
        return berth_error_set(BERTH_EINVALID, "berth_config_print: missing argument");
    }
    berth_error_clear();
    print_keys(out, cfg, "gc.", true);
    fputs(cfg->access_count ? "access:\n" : "access: []\n", out);
    for (size_t i = 0; i < cfg->access_count; i++) {
        const berth_config_rule *r = &cfg->access[i];
        static const char *names[] = {"pull", "push", "delete"};
        bool first = true;
        fputs("  - repositories: ", out);
        print_quoted(out, r->repositories);
        fputs("\n    users: ", out);
        print_strv(out, r->users);
        fputs("\n    groups: ", out);
        print_strv(out, r->groups);
        fprintf(out, "\n    anonymous: %s\n    actions: [", r->anonymous ? "true" : "false");
        for (unsigned b = 0; b < 3; b++) {
            if (r->actions & (1u << b)) {
                fprintf(out, "%s%s", first ? "" : ", ", names[b]);
                first = false;
            }
        }
        fputs("]\n", out);
    }
    fputs(cfg->groups_count ? "groups:\n" : "groups: {}\n", out);
    for (size_t i = 0; i < cfg->groups_count; i++) {
        fputs("  ", out);
        print_quoted(out, cfg->groups[i].name);
        fputs(": ", out);
        print_strv(out, cfg->groups[i].users);
        fputc('\n', out);
    }
    print_keys(out, cfg, "gc.", false);
    fputs(cfg->gc.retention_count ? "  retention:\n" : "  retention: []\n", out);
    for (size_t i = 0; i < cfg->gc.retention_count; i++) {
        const berth_config_retention *r = &cfg->gc.retention[i];
        fputs("    - repositories: ", out);
        print_quoted(out, r->repositories);
        fputs("\n      tags: ", out);
        print_quoted(out, r->tags);
        fprintf(out,
                "\n      keep_last: %llu\n      max_tag_age: ", (unsigned long long)r->keep_last);
        print_duration(out, r->max_tag_age);
        fputs("\n      max_untagged_age: ", out);
        print_duration(out, r->max_untagged_age);
        fputc('\n', out);
    }
    /* printed only when set, so that a configuration without a cache prints as it always did */
    if (cfg->proxy.upstreams_count) {
        fputs("proxy:\n  upstreams:\n", out);
    }
    for (size_t i = 0; i < cfg->proxy.upstreams_count; i++) {
        const berth_config_upstream *u = &cfg->proxy.upstreams[i];
        fputs("    - prefix: ", out);
        print_quoted(out, u->prefix);
        fputs("\n      url: ", out);
        print_quoted(out, u->url);
        fputs("\n      ttl: ", out);
        print_duration(out, u->ttl);
        fputs("\n      timeout: ", out);
        print_duration(out, u->timeout);
        fputs("\n      immutable_tags: ", out);
        print_strv(out, u->immutable_tags);
        if (u->credentials) {
            fputs("\n      credentials: ", out);
            print_quoted(out, u->credentials);
        }
        if (u->max_size) {
            fputs("\n      max_size: ", out);
            print_size(out, u->max_size);
        }
        fputc('\n', out);
    }
    if (fflush(out) != 0 || ferror(out)) {
        return berth_error_set(BERTH_EIO, "cannot write the configuration");
    }
    return 0;
}
