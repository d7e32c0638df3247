/* SPDX-License-Identifier: Apache-2.0 */
/* berth/config.h: every setting of `berth serve`, loaded from YAML, environment and flags. */
#ifndef BERTH_CONFIG_H
#define BERTH_CONFIG_H

#include <stdio.h>

#include "common.h"

/** Access actions, a bit set. */
#define BERTH_ACTION_PULL   1u
#define BERTH_ACTION_PUSH   2u
#define BERTH_ACTION_DELETE 4u

/** Log output format. */
typedef enum berth_config_log_format {
    BERTH_CONFIG_LOG_TEXT = 0,
    BERTH_CONFIG_LOG_JSON = 1,
} berth_config_log_format;

/** One access rule: who may do what on the repositories matching a glob. */
typedef struct berth_config_rule {
    char *repositories; /* fnmatch(3) glob on the repository name, e.g. "team/..." */
    char **users;       /* user names (NULL-terminated array, may be empty) */
    char **groups;      /* group names (NULL-terminated array, may be empty) */
    bool anonymous;     /* the rule also applies to unauthenticated clients */
    unsigned actions;   /* BERTH_ACTION_* bits */
} berth_config_rule;

/** A named group of users. */
typedef struct berth_config_group {
    char *name;
    char **users; /* NULL-terminated */
} berth_config_group;

/** One garbage-collection retention rule. 0 means "no limit" for every number. */
typedef struct berth_config_retention {
    char *repositories;        /* glob, default "*" */
    char *tags;                /* glob, default "*" */
    uint64_t keep_last;        /* keep at least the newest N matching tags */
    uint64_t max_tag_age;      /* seconds */
    uint64_t max_untagged_age; /* seconds */
} berth_config_retention;

/** One upstream of the pull-through cache (proxy.upstreams). */
typedef struct berth_config_upstream {
    char *prefix;          /* local path it is served under: PREFIX/NAME is NAME upstream */
    char *url;             /* "https://registry-1.docker.io", "http://127.0.0.1:5001" */
    char *registry;        /* host[:port] of `url` (derived) */
    bool plain_http;       /* `url` is http:// (derived) */
    uint64_t ttl;          /* seconds a cached tag is answered without asking (default 300) */
    uint64_t timeout;      /* seconds an upstream request may make no progress (default 30) */
    char **immutable_tags; /* fnmatch(3) globs of tags never revalidated (NULL-terminated) */
    char *credentials;     /* path of an auth file (podman auth.json, docker config.json) */
    uint64_t max_size;     /* bytes of cached content kept (gc evicts the least recently
                              pulled beyond it); 0: no cap */
} berth_config_upstream;

/**
 * The effective configuration. Strings are owned by the struct (NULL when unset); durations
 * are in seconds, sizes in bytes. Read the fields directly; change them only through
 * berth_config_set() or the loaders so that ownership stays consistent.
 */
typedef struct berth_config {
    char *listen;           /* "127.0.0.1:5000" */
    char *root;             /* "./data" */
    char *sparse_manifests; /* comma-separated globs of repositories accepting sparse
                               manifests (content deliberately absent); NULL: none */
    uint64_t threads;
    uint64_t max_connections; /* 0: from the file-descriptor limit */
    struct {
        uint64_t read;   /* without a request body byte */
        uint64_t write;  /* without a response byte sent */
        uint64_t idle;   /* a keep-alive connection between requests */
        uint64_t header; /* to receive a request line and headers (total) */
        uint64_t drain;  /* at shutdown, for requests in flight to finish */
    } timeouts;
    struct {
        uint64_t manifest_size;
        uint64_t body_size;
        uint64_t upload_requests; /* upload requests streaming at once, per process; 0 = no
                                     limit (`limits.concurrent_uploads` was its old name) */
        uint64_t upload_sessions; /* open upload sessions in all (limits.concurrent_uploads);
                                     0 = no limit */
        uint64_t upload_sessions_per_repository; /* ... per repository; 0 = no limit */
        uint64_t upload_sessions_per_client;     /* ... per user (else address); 0 = no limit */
        uint64_t upload_idle_ttl;     /* seconds a session may stay idle before it is reaped */
        uint64_t requests_per_second; /* per client address; 0 = unlimited */
        uint64_t burst;
        uint64_t connections_per_address; /* 0: no cap */
    } limits;
    struct {
        berth_config_log_format format;
        int level; /* 0 error, 1 warn, 2 info, 3 debug (as the internal log levels) */
    } log;
    struct {
        char *cert;
        char *key;
        char *client_ca;   /* set: clients must present a certificate signed by it (mTLS) */
        char *min_version; /* "1.2" (default) or "1.3" */
        char *priorities;  /* a GnuTLS priority string, replacing the default policy */
    } tls;
    struct {
        char *htpasswd; /* bcrypt htpasswd file for Basic auth */
        struct {
            char *realm;       /* URL of the token endpoint announced in challenges */
            char *service;     /* the audience */
            char *issuer;      /* iss claim */
            char *private_key; /* PEM (EC P-256 -> ES256, RSA -> RS256): berth issues tokens */
            char *public_key;  /* PEM of a trusted external issuer (when no private_key) */
            uint64_t lifetime; /* seconds */
        } token;
    } auth;
    struct {
        /* POST ?mount= without `from` looks for the blob; with authentication, only in the
           repositories the caller may pull (default true) */
        bool automatic_mount;
        bool read_only;      /* maintenance: pulls only; writes and deletes refused (405) */
        bool delete_enabled; /* DELETE of manifests, tags and blobs allowed (default true) */
        struct {
            /* blobs in an S3-compatible bucket (with database.url; credentials from
               AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the shared credentials file) */
            char *endpoint;  /* "http://127.0.0.1:7480", "https://s3.<region>.amazonaws.com" */
            char *bucket;    /* set: the s3 blob backend is used */
            char *region;    /* "us-east-1" */
            char *prefix;    /* key prefix inside the bucket ("" by default) */
            bool path_style; /* bucket in the path, not the host name (default true) */
            bool redirect;   /* blob GET answers 307 to a presigned URL */
            char *public_endpoint; /* endpoint clients reach for redirects (default endpoint) */
            uint64_t part_size;    /* bytes of an upload's first multipart parts, 5 MiB to
                                      5 GiB (0: 8 MiB); doubled every 1,000 parts */
        } s3;
    } storage;
    struct {
        char *url;          /* libpq connection string or URI; set: metadata in PostgreSQL */
        uint64_t pool_size; /* connections per process (default 8) */
    } database;
    struct berth_config_places *places; /* where each setting came from (berth_config_origin) */
    berth_config_rule *access;          /* `access_count` rules, in file order */
    size_t access_count;
    berth_config_group *groups;
    size_t groups_count;
    struct {
        uint64_t interval;       /* seconds; 0 = no periodic gc (default 1h) */
        uint64_t grace;          /* seconds */
        uint64_t untagged_delay; /* seconds an untagged manifest stays; 0 = kept (default 1d) */
        berth_config_retention *retention;
        size_t retention_count;
    } gc;
    struct {
        berth_config_upstream *upstreams; /* `upstreams_count` of them; none: no cache */
        size_t upstreams_count;
    } proxy;
    struct {
        bool enabled; /* the web UI and its JSON API under /ui/ (default true) */
    } ui;
} berth_config;

/**
 * A configuration holding every default.
 * @param out  receives the configuration; free it with berth_config_free()
 * @return 0 or BERTH_ENOMEM
 */
int berth_config_new(berth_config **out);

/**
 * Read a YAML file over `cfg` (keys present in the file replace the current values; lists
 * given in the file replace the lists). Unknown keys, wrong types and bad values are refused
 * with a message `file:line:col: key: reason`; `cfg` may then be partly updated and should be
 * freed.
 * @return 0, BERTH_EIO (unreadable file) or BERTH_EINVALID
 */
int berth_config_load_file(berth_config *cfg, const char *path);

/**
 * As berth_config_load_file() on an in-memory document; `name` is used in messages.
 */
int berth_config_load_string(berth_config *cfg, const char *name, const char *text, size_t len);

/**
 * Set one scalar key by its dotted name ("limits.body_size", "auth.token.realm") from text,
 * parsed as the key's type (durations "30s", "5m", "12h", "7d" or plain seconds; sizes
 * "4MiB", "512KiB", "1GB" or plain bytes; booleans true/false; log.format text|json;
 * log.level error|warn|info|debug). An empty value unsets a string key.
 * @return 0, BERTH_ENOTFOUND (no such scalar key) or BERTH_EINVALID (bad value); message set
 */
int berth_config_set(berth_config *cfg, const char *key, const char *value);

/**
 * As berth_config_set(), recording where the value came from ("--timeout", a variable name):
 * errors found later about this key (berth_config_validate(), berth_config_check_files()) name
 * that place. Messages of this call are prefixed with it.
 * @return as berth_config_set()
 */
int berth_config_set_at(berth_config *cfg, const char *key, const char *value, const char *origin);

/**
 * Where a key was last set: "FILE:LINE:COL" for a file, "BERTH_..." for the environment, the
 * flag for a command line; NULL for a default.
 * @return a string borrowed from `cfg`, valid until the key is set again or `cfg` is freed
 */
const char *berth_config_origin(const berth_config *cfg, const char *key);

/**
 * Check that every file the configuration names (tls.cert, tls.key, tls.client_ca,
 * auth.htpasswd, auth.token.private_key and public_key) is a regular file that can be read.
 * @return 0 or BERTH_EINVALID, message `PLACE: key: PATH: reason`
 */
int berth_config_check_files(const berth_config *cfg);

/**
 * Apply environment overrides: for each scalar key, BERTH_ + the dotted name upper-cased with
 * dots replaced by underscores (limits.body_size -> BERTH_LIMITS_BODY_SIZE).
 * @param getenv_fn  the lookup, getenv(3) when NULL (tests pass their own)
 * @return 0 or the first error of berth_config_set(), message prefixed with the variable name
 */
int berth_config_apply_env(berth_config *cfg, const char *(*getenv_fn)(const char *name));

/**
 * Check the settings against each other (e.g. tls.cert without tls.key, token realm without a
 * key, rules naming unknown groups).
 * @return 0 or BERTH_EINVALID, message `PLACE: key: reason` (PLACE as berth_config_origin(),
 *         left out for a key at its default)
 */
int berth_config_validate(const berth_config *cfg);

/**
 * Write the effective settings as YAML that berth_config_load_file() accepts back, with the
 * secrets masked as "****" (berth_config_mask_secrets() of database.url, the S3 endpoints and
 * auth.token.realm): the printed file loads, but a masked password must be
 * put back before it is used.
 * @return 0 or BERTH_EIO
 */
int berth_config_print(const berth_config *cfg, FILE *out);

/**
 * A copy of `s` for display with the secrets it may hold as "****": the password of a URL's user
 * information (scheme://user:****@host) and, when `conninfo` (a libpq connection string or URL),
 * the value of its `password` keyword (password=****, password='****', ?password=****).
 * @return a string to free(), or NULL when out of memory
 */
char *berth_config_mask_secrets(const char *s, bool conninfo);

/**
 * The environment variable name of a dotted key, into `out` (`out_size` bytes).
 * @return 0, or BERTH_EINVALID when it does not fit
 */
int berth_config_env_name(char *out, size_t out_size, const char *key);

/** berth_parse_duration() (berth/common.h), the one duration grammar. */
int berth_config_parse_duration(uint64_t *out, const char *text);

/** berth_parse_size() (berth/common.h), the one size grammar. */
int berth_config_parse_size(uint64_t *out, const char *text);

/** Free a configuration and everything it owns; NULL is fine. */
void berth_config_free(berth_config *cfg);

#endif
