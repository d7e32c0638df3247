/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry client: the OCI distribution API over libcurl.
 *
 * One CURLSH shares the connection cache, DNS cache and TLS sessions between the easy handles
 * of all threads of a run (each request uses its own easy handle, so the client is usable from
 * the copy engine's worker threads). Authentication is lazy: a request goes out with what is
 * cached for its registry and scope; a 401 challenge is answered once (Basic with the
 * configured credentials or those of the auth files (creds.c), or a Bearer token fetched from
 * the challenge's realm and cached by registry and scope until shortly before it expires) and
 * the request is replayed. Request bodies are memory or a file range, so every attempt can be
 * replayed from the start. Connection errors are retried with doubling backoff, a bounded
 * number of times, and only while no response bytes have reached the caller. Each registry's
 * scheme and TLS settings are settled on first use (decide_scheme, tls.c); an upload that
 * breaks resumes from its session's Range (upload_blob).
 */
#include "client/client_internal.h"

#include <berth/api.h>
#include <berth/errors.h>
#include <berth/reference.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SIZE          (8u * 1024u * 1024u)
#define MONOLITHIC_MAX      (4u * 1024u * 1024u)
#define MONOLITHIC_POST_MAX (1024u * 1024u)
#define ERRBODY_MAX         (64u * 1024u)

typedef struct token_entry {
    struct token_entry *next;
    char *key;               /* "registry scope" or "registry" for Basic */
    char *value;             /* full Authorization header value */
    int64_t expires_ms;      /* wall clock; 0: does not expire */
    int64_t renew_ms;        /* refresh from then on */
    berth_auth_challenge ch; /* what a token was fetched for (realm NULL: not a token) */
} token_entry;

/* What the client knows of one registry: its TLS settings, whether registries.conf marks it
 * insecure, the scheme it answered on, and its credentials once looked up. */
typedef struct reg_state {
    struct reg_state *next;
    char *registry;
    int tls_rc; /* < 0: its certificate directory is unusable; tls_msg says why */
    char *tls_msg;
    berth__tls tls;
    bool insecure;
    const char *scheme; /* "https" or "http"; NULL until decided */
    bool creds_loaded;
    int creds_rc;
    char *user, *pass, *creds_msg;
} reg_state;

struct berth_client {
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t mu;       /* guards tokens and regs */
    pthread_mutex_t probe_mu; /* one scheme probe at a time */
    token_entry *tokens;
    reg_state *regs;
    char *user, *pass;
    char *authfile; /* --authfile or NULL */
    char *cert_dir; /* --cert-dir or NULL */
    int tls_verify;
    bool plain_http;
    unsigned retries, delay_ms;
    unsigned timeout_s; /* 0: 15 s to connect, 60 s without progress */
    bool verbose;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_OK;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void share_lock(CURL *h, curl_lock_data data, curl_lock_access access, void *p)
{
    berth_client *c = p;
    (void)h;
    (void)access;
    pthread_mutex_lock(&c->share_locks[data]);
}

static void share_unlock(CURL *h, curl_lock_data data, void *p)
{
    berth_client *c = p;
    (void)h;
    pthread_mutex_unlock(&c->share_locks[data]);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

int berth_client_new(berth_client **out, const berth_client_options *opts)
{
    berth_client_options none = {0};
    berth_client *c = NULL;
    int rc = 0;

    *out = NULL;
    if (!opts) {
        opts = &none;
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        return berth_error_set(BERTH_ERROR, "libcurl: %s", curl_easy_strerror(global_rc));
    }
    if (!(c = calloc(1, sizeof(*c)))) {
        return BERTH_ENOMEM;
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_init(&c->share_locks[i], NULL);
    }
    pthread_mutex_init(&c->mu, NULL);
    pthread_mutex_init(&c->probe_mu, NULL);
    c->share = curl_share_init();
    if (!c->share) {
        rc = berth_error_set(BERTH_ERROR, "libcurl: cannot create a share handle");
        goto out;
    }
    curl_share_setopt(c->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(c->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(c->share, CURLSHOPT_USERDATA, c);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(c->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    c->user = dup_or_null(opts->username);
    c->pass = dup_or_null(opts->password);
    c->plain_http = opts->plain_http;
    c->retries = opts->no_retries ? 0 : opts->retries ? opts->retries : 4;
    c->delay_ms = opts->retry_delay_ms ? opts->retry_delay_ms : 200;
    c->verbose = opts->verbose;
    c->timeout_s = opts->timeout_s;
    c->tls_verify = opts->tls_verify;
    c->authfile = dup_or_null(opts->docker_config);
    c->cert_dir = dup_or_null(opts->cert_dir);
    if ((opts->docker_config && !c->authfile) || (opts->cert_dir && !c->cert_dir) ||
        (opts->username && !c->user) || (opts->password && !c->pass)) {
        rc = BERTH_ENOMEM;
        goto out;
    }
    *out = c;
    c = NULL;
out:
    berth_client_free(c);
    return rc;
}

void berth_client_free(berth_client *c)
{
    if (!c) {
        return;
    }
    if (c->share) {
        curl_share_cleanup(c->share);
    }
    while (c->tokens) {
        token_entry *t = c->tokens;
        c->tokens = t->next;
        free(t->key);
        free(t->value);
        berth_auth_challenge_dispose(&t->ch);
        free(t);
    }
    while (c->regs) {
        reg_state *g = c->regs;
        c->regs = g->next;
        free(g->registry);
        free(g->tls_msg);
        berth__tls_dispose(&g->tls);
        free(g->user);
        free(g->pass);
        free(g->creds_msg);
        free(g);
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&c->share_locks[i]);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->probe_mu);
    free(c->user);
    free(c->pass);
    free(c->authfile);
    free(c->cert_dir);
    free(c);
}

/* ---- token cache ---- */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int challenge_copy(berth_auth_challenge *dst, const berth_auth_challenge *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->scheme = dup_or_null(src->scheme);
    dst->realm = dup_or_null(src->realm);
    dst->service = dup_or_null(src->service);
    dst->scope = dup_or_null(src->scope);
    if ((src->scheme && !dst->scheme) || (src->realm && !dst->realm) ||
        (src->service && !dst->service) || (src->scope && !dst->scope)) {
        berth_auth_challenge_dispose(dst);
        return BERTH_ENOMEM;
    }
    return 0;
}

/*
 * The cached value of `key`. A token that is due for renewal is not returned: when `renew` is
 * not NULL it receives a copy of the challenge the token answered (realm NULL when there is
 * none), so that the caller fetches a new token before the old one expires.
 */
static char *cache_lookup(berth_client *c, const char *key, berth_auth_challenge *renew)
{
    char *v = NULL;
    if (renew) {
        memset(renew, 0, sizeof(*renew));
    }
    pthread_mutex_lock(&c->mu);
    for (token_entry *t = c->tokens; t; t = t->next) {
        if (strcmp(t->key, key) == 0) {
            if (t->renew_ms && now_ms() >= t->renew_ms) {
                if (renew && t->ch.realm) {
                    (void)challenge_copy(renew, &t->ch);
                }
                break;
            }
            v = strdup(t->value);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

static char *cache_get(berth_client *c, const char *key)
{
    return cache_lookup(c, key, NULL);
}

/* Cache `value` under `key`; a token with its expiry (0: none) and the challenge it answers. */
static void cache_put_token(berth_client *c, const char *key, const char *value, int64_t expires_ms,
                            const berth_auth_challenge *ch)
{
    token_entry *t;
    char *v = strdup(value);
    berth_auth_challenge chc = {0};

    if (!v || (ch && challenge_copy(&chc, ch) < 0)) {
        free(v);
        return;
    }
    pthread_mutex_lock(&c->mu);
    for (t = c->tokens; t; t = t->next) {
        if (strcmp(t->key, key) == 0) {
            break;
        }
    }
    if (!t && (t = calloc(1, sizeof(*t)))) {
        if (!(t->key = strdup(key))) {
            free(t);
            t = NULL;
        } else {
            t->next = c->tokens;
            c->tokens = t;
        }
    }
    if (t) {
        int64_t now = now_ms(), life = expires_ms - now, margin;
        free(t->value);
        t->value = v;
        v = NULL;
        berth_auth_challenge_dispose(&t->ch);
        t->ch = chc;
        memset(&chc, 0, sizeof(chc));
        t->expires_ms = expires_ms;
        /* renew with a tenth of the lifetime left, at least 1 s and at most 30 s before the
         * end, and never later than half-way for a token of under 2 s */
        margin = life / 10;
        if (margin < 1000) {
            margin = life < 2000 ? life / 2 : 1000;
        }
        if (margin > 30000) {
            margin = 30000;
        }
        t->renew_ms = expires_ms ? expires_ms - margin : 0;
    }
    pthread_mutex_unlock(&c->mu);
    free(v);
    berth_auth_challenge_dispose(&chc);
}

static void cache_put(berth_client *c, const char *key, const char *value)
{
    cache_put_token(c, key, value, 0, NULL);
}

/* The state of `registry`, made (and its certs.d / --cert-dir and registries.conf read) on
 * first use. NULL only when out of memory. */
static reg_state *reg_get(berth_client *c, const char *registry)
{
    reg_state *g;
    pthread_mutex_lock(&c->mu);
    for (g = c->regs; g; g = g->next) {
        if (strcmp(g->registry, registry) == 0) {
            goto out;
        }
    }
    if (!(g = calloc(1, sizeof(*g))) || !(g->registry = strdup(registry))) {
        free(g);
        g = NULL;
        goto out;
    }
    {
        berth_buf dir = BERTH_BUF_INIT;
        int rc = 0;
        if (c->cert_dir) {
            rc = berth_buf_puts(&dir, c->cert_dir);
        } else {
            rc = berth__certs_d_find(&dir, registry);
        }
        if (rc == 0) {
            rc = berth__tls_load_dir(&g->tls, dir.ptr);
            if (rc < 0) {
                g->tls_rc = rc;
                g->tls_msg = strdup(berth_error_last());
            } else if (c->verbose) {
                fprintf(stderr, "berth: %s: certificates from %s%s%s\n", registry, dir.ptr,
                        g->tls.ca_pem ? " (CAs)" : "", g->tls.cert ? " (client certificate)" : "");
            }
        }
        berth_error_clear();
        berth_buf_dispose(&dir);
    }
    g->insecure = berth__registry_insecure(registry);
    g->next = c->regs;
    c->regs = g;
out:
    pthread_mutex_unlock(&c->mu);
    return g;
}

/*
 * The Basic credentials for a registry: the options', else what berth_auth_lookup() finds
 * (looked up once per registry and client: a credential helper runs once).
 * @return 0, BERTH_ENOTFOUND, or the lookup's error (*why, when not NULL, gets its message)
 */
static int creds_for(berth_client *c, const char *registry, char **user, char **pass, char **why)
{
    const char *u = c->user, *p = c->pass;
    reg_state *g = NULL;
    int rc = 0;

    *user = *pass = NULL;
    if (why) {
        *why = NULL;
    }
    if (!u) {
        if (!(g = reg_get(c, registry))) {
            return BERTH_ENOMEM;
        }
        pthread_mutex_lock(&c->mu);
        if (!g->creds_loaded) {
            char *src = NULL;
            g->creds_rc = berth_auth_lookup(&g->user, &g->pass, &src, c->authfile, registry);
            if (g->creds_rc < 0 && g->creds_rc != BERTH_ENOTFOUND) {
                g->creds_msg = strdup(berth_error_last());
            }
            if (g->creds_rc == 0 && c->verbose) {
                fprintf(stderr, "berth: %s: credentials from %s\n", registry, src);
            }
            berth_error_clear();
            free(src);
            g->creds_loaded = true;
        }
        rc = g->creds_rc;
        u = g->user;
        p = g->pass;
        if (rc < 0 && why && g->creds_msg) {
            *why = strdup(g->creds_msg);
        }
        pthread_mutex_unlock(&c->mu);
        if (rc < 0) {
            return rc;
        }
    }
    *user = strdup(u);
    *pass = strdup(p ? p : "");
    if (!*user || !*pass) {
        free(*user);
        free(*pass);
        *user = *pass = NULL;
        return BERTH_ENOMEM;
    }
    return 0;
}

/* ---- one HTTP exchange ---- */

#define CLEANUP_TIMEOUT 10L /* seconds a cancelling DELETE may take */

static volatile sig_atomic_t interrupted;

void berth_client_interrupt(void)
{
    interrupted = 1;
}

bool berth_client_interrupted(void)
{
    return interrupted != 0;
}

/* curl's progress hook: a nonzero answer aborts the transfer (CURLE_ABORTED_BY_CALLBACK). */
static int on_progress(void *p, curl_off_t dlt, curl_off_t dln, curl_off_t ult, curl_off_t uln)
{
    (void)p;
    (void)dlt;
    (void)dln;
    (void)ult;
    (void)uln;
    return interrupted ? 1 : 0;
}

typedef struct request {
    const char *method; /* GET HEAD PUT POST PATCH DELETE */
    const char *registry;
    const char *scope; /* "repository:NAME:pull" etc., or NULL */
    berth_buf url;
    const char *accept;
    const char *content_type;
    const char *content_range;
    /* body: memory, or a range of a file */
    const char *body;
    size_t body_len;
    int fd;
    uint64_t fd_off, fd_len;
    berth__growing *grow; /* the file is still being written: wait for its bytes */
    bool has_body;
    /* response */
    berth_buf *resp; /* body of a 2xx (may be NULL: dropped) */
    berth_client_sink_cb sink;
    void *sink_payload;
    bool follow;
    bool cleanup; /* cancels a session: goes even after an interrupt, within CLEANUP_TIMEOUT */
    bool foreign; /* the URL is not on the registry's origin: sent without credentials */
    /* state of the current attempt */
    uint64_t sent;
    long status;
    bool delivered;   /* response bytes went to the caller */
    bool net_retried; /* an attempt failed on the connection and was repeated */
    bool sink_failed;
    berth_buf errbody;
    char *location, *www_auth, *link, *ctype, *dcd, *range;
    int64_t clen;
} request;

static void request_reset_response(request *r)
{
    free(r->location);
    free(r->www_auth);
    free(r->link);
    free(r->ctype);
    free(r->dcd);
    free(r->range);
    r->location = r->www_auth = r->link = r->ctype = r->dcd = r->range = NULL;
    r->clen = -1;
    berth_buf_clear(&r->errbody);
}

static void request_dispose(request *r)
{
    request_reset_response(r);
    berth_buf_dispose(&r->errbody);
    berth_buf_dispose(&r->url);
}

static size_t on_read(char *dst, size_t size, size_t n, void *p)
{
    request *r = p;
    size_t want = size * n, left;
    if (r->body) {
        left = r->body_len - (size_t)r->sent;
        if (want > left) {
            want = left;
        }
        memcpy(dst, r->body + r->sent, want);
        r->sent += want;
        return want;
    }
    left = (size_t)(r->fd_len - r->sent);
    if (want > left) {
        want = left;
    }
    if (want == 0) {
        return 0;
    }
    if (r->grow) {
        uint64_t need = r->fd_off + r->sent + want;
        if (berth__growing_wait(r->grow, need) < need) {
            return CURL_READFUNC_ABORT; /* the download failed: so does the upload */
        }
    }
    ssize_t got = pread(r->fd, dst, want, (off_t)(r->fd_off + r->sent));
    if (got <= 0) {
        return CURL_READFUNC_ABORT;
    }
    r->sent += (uint64_t)got;
    berth__upload_progress(r->fd_off + r->sent);
    return (size_t)got;
}

static char *trimmed_dup(const char *s, size_t len)
{
    while (len && (*s == ' ' || *s == '\t')) {
        s++;
        len--;
    }
    while (len && (s[len - 1] == '\r' || s[len - 1] == '\n' || s[len - 1] == ' ')) {
        len--;
    }
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

static bool header_is(const char *line, size_t len, const char *name, size_t *vstart)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':') {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char a = line[i], b = name[i];
        if (a >= 'A' && a <= 'Z') {
            a = (char)(a - 'A' + 'a');
        }
        if (b >= 'A' && b <= 'Z') {
            b = (char)(b - 'A' + 'a');
        }
        if (a != b) {
            return false;
        }
    }
    *vstart = n + 1;
    return true;
}

static void set_header(char **slot, const char *v, size_t len)
{
    free(*slot);
    *slot = trimmed_dup(v, len);
}

/* Retry-After of the last response this thread received (berth_client_retry_after). */
static _Thread_local uint64_t last_retry_after;

uint64_t berth_client_retry_after(void)
{
    return last_retry_after;
}

/* Content-Length of the response whose body a sink receives (berth_client_content_length). */
static _Thread_local int64_t last_content_length = -1;

int64_t berth_client_content_length(void)
{
    return last_content_length;
}

static size_t on_header(char *line, size_t size, size_t n, void *p)
{
    request *r = p;
    size_t len = size * n, v;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        request_reset_response(r); /* a new response (after a redirect or 100) */
        last_retry_after = 0;
        return len;
    }
    if (header_is(line, len, "retry-after", &v)) {
        char *t = trimmed_dup(line + v, len - v);
        uint64_t val;
        if (t && berth_parse_u64(&val, t, strlen(t), UINT32_MAX) == 0) {
            last_retry_after = val;
        } else {
            berth_error_clear();
            last_retry_after = 60; /* an HTTP date: a minute */
        }
        free(t);
    }
    if (header_is(line, len, "location", &v)) {
        set_header(&r->location, line + v, len - v);
    } else if (header_is(line, len, "www-authenticate", &v)) {
        if (!r->www_auth) {
            set_header(&r->www_auth, line + v, len - v);
        }
    } else if (header_is(line, len, "link", &v)) {
        set_header(&r->link, line + v, len - v);
    } else if (header_is(line, len, "content-type", &v)) {
        set_header(&r->ctype, line + v, len - v);
    } else if (header_is(line, len, "range", &v)) {
        set_header(&r->range, line + v, len - v);
    } else if (header_is(line, len, "docker-content-digest", &v)) {
        set_header(&r->dcd, line + v, len - v);
    } else if (header_is(line, len, "content-length", &v)) {
        char *t = trimmed_dup(line + v, len - v);
        uint64_t val;
        if (t && berth_parse_u64(&val, t, strlen(t), INT64_MAX) == 0) {
            r->clen = (int64_t)val;
        } else {
            berth_error_clear();
        }
        free(t);
    }
    return len;
}

static size_t on_write(char *data, size_t size, size_t n, void *p)
{
    request *r = p;
    size_t len = size * n;
    if (r->status < 200 || r->status > 299) {
        size_t room = ERRBODY_MAX - r->errbody.len;
        (void)berth_buf_put(&r->errbody, data, len < room ? len : room);
        return len;
    }
    if (r->sink) {
        r->delivered = true;
        last_content_length = r->clen;
        if (r->sink(data, len, r->sink_payload) != 0) {
            r->sink_failed = true;
            return 0;
        }
        return len;
    }
    if (r->resp) {
        r->delivered = true;
        if (berth_buf_put(r->resp, data, len) < 0) {
            r->sink_failed = true;
            return 0;
        }
    }
    return len;
}

/* The status is needed inside on_write; curl tells it through this header-done hook. */
static size_t on_header_status(char *line, size_t size, size_t n, void *p)
{
    request *r = p;
    size_t len = size * n;
    if (len >= 12 && memcmp(line, "HTTP/", 5) == 0) {
        const char *sp = memchr(line, ' ', len);
        uint64_t st;
        if (sp && (size_t)(sp - line) + 4 <= len && berth_parse_u64(&st, sp + 1, 3, 999) == 0) {
            r->status = (long)st;
        } else {
            berth_error_clear();
        }
    }
    return on_header(line, size, n, p);
}

static bool loopback_host(const char *registry)
{
    static const char *const hosts[] = {"localhost", "127.0.0.1", "[::1]"};
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
        size_t n = strlen(hosts[i]);
        if (strncmp(registry, hosts[i], n) == 0 && (registry[n] == '\0' || registry[n] == ':')) {
            return true;
        }
    }
    return false;
}

static const char *scheme_for(berth_client *c, const char *registry)
{
    reg_state *g;
    const char *s = NULL;
    if (c->plain_http) {
        return "http";
    }
    if ((g = reg_get(c, registry))) {
        pthread_mutex_lock(&c->mu);
        s = g->scheme;
        pthread_mutex_unlock(&c->mu);
    }
    return s ? s : "https";
}

static int decide_scheme(berth_client *c, const char *registry);

static const char *api_host(const char *registry)
{
    return strcmp(registry, "docker.io") == 0 ? "registry-1.docker.io" : registry;
}

static int url_start(berth_client *c, request *r, const char *registry)
{
    int rc;
    r->registry = registry;
    if ((rc = decide_scheme(c, registry)) < 0) {
        return rc;
    }
    return berth_buf_printf(&r->url, "%s://%s/v2/", scheme_for(c, registry), api_host(registry));
}

/* The registry's error body, as "CODE: message", or the HTTP status. */
static void describe_error(berth_buf *out, const request *r)
{
    berth_error_response *er = NULL;
    const berth_error_info *first = NULL;
    if (r->errbody.len && berth_error_response_parse(&er, r->errbody.ptr, r->errbody.len) == 0 &&
        er->nerrors > 0) {
        first = &er->errors[0];
    }
    berth_error_clear();
    if (first && first->code) {
        (void)berth_buf_printf(out, "HTTP %ld %s%s%s", r->status, first->code,
                               first->message ? ": " : "", first->message ? first->message : "");
    } else {
        (void)berth_buf_printf(out, "HTTP %ld", r->status);
    }
    berth_error_response_free(er);
}

static int status_error(const request *r, const char *what)
{
    berth_buf d = BERTH_BUF_INIT;
    int code;
    describe_error(&d, r);
    switch (r->status) {
    case 401:
        code = BERTH_EUNAUTHORIZED;
        break;
    case 403:
        code = BERTH_EDENIED;
        break;
    case 404:
        code = BERTH_ENOTFOUND;
        break;
    case 400:
        code = BERTH_EINVALID;
        break;
    case 405:
        code = BERTH_EUNSUPPORTED;
        break;
    case 429:
        code = BERTH_EBUSY;
        break;
    default:
        code = BERTH_ERROR;
    }
    berth_error_set(code, "%s %s: %s%s", what, r->url.ptr ? r->url.ptr : "", berth_buf_cstr(&d),
                    r->status == 401 && r->foreign
                        ? " (the registry sent the client to another origin; credentials go "
                          "only to the registry's own scheme, host and port)"
                        : "");
    berth_buf_dispose(&d);
    return code;
}

static bool retryable(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_OPERATION_TIMEDOUT:
        return true;
    default:
        return false;
    }
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* One attempt; `auth` is an Authorization header value or NULL; `basic` sets user/pass. */
/* Append "Name: value" to a curl header list (`tmp` is scratch). */
static int add_header(struct curl_slist **hdrs, berth_buf *tmp, const char *name, const char *value)
{
    struct curl_slist *more;
    berth_buf_clear(tmp);
    if (berth_buf_printf(tmp, "%s: %s", name, value) < 0 ||
        !(more = curl_slist_append(*hdrs, tmp->ptr))) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    *hdrs = more;
    return 0;
}

static int perform_once(berth_client *c, request *r, const char *auth, const char *buser,
                        const char *bpass, CURLcode *cc_out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    berth_buf tmp = BERTH_BUF_INIT;
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = 0;

    *cc_out = CURLE_OK;
    if (interrupted && !r->cleanup) {
        curl_easy_cleanup(h);
        return berth_error_set(BERTH_ERROR, "%s %s: interrupted", r->method, r->url.ptr);
    }
    if (!h) {
        return berth_error_set(BERTH_ENOMEM, "libcurl: cannot create a handle");
    }
    if (r->registry) {
        reg_state *g = reg_get(c, r->registry);
        if (!g) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        if (g->tls_rc < 0) {
            rc = berth_error_set(g->tls_rc, "%s", g->tls_msg ? g->tls_msg : "certificates");
            goto out;
        }
        if (g->tls.ca_pem) {
            struct curl_blob blob = {g->tls.ca_pem, g->tls.ca_len, CURL_BLOB_COPY};
            curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &blob);
        }
        if (g->tls.cert) {
            curl_easy_setopt(h, CURLOPT_SSLCERT, g->tls.cert);
            curl_easy_setopt(h, CURLOPT_SSLKEY, g->tls.key);
        }
    }
    if (c->tls_verify == BERTH_TLS_VERIFY_OFF) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    r->sent = 0;
    r->status = 0;
    last_retry_after = 0;
    request_reset_response(r);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_URL, r->url.ptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT,
                     c->timeout_s && c->timeout_s < 15 ? (long)c->timeout_s : 15L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->timeout_s ? (long)c->timeout_s : 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    /* a realm, Location or redirect a registry names: HTTP(S) only, not file:, ftp: ... */
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_status);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    /* a blob streamed to a sink: larger pieces, fewer calls (libcurl's default is 16 KiB) */
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, r->sink ? 256L * 1024 : 16L * 1024);
    if (r->cleanup) {
        curl_easy_setopt(h, CURLOPT_TIMEOUT, CLEANUP_TIMEOUT);
    } else {
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    }
    if (c->verbose && getenv("BERTH_CURL_VERBOSE")) {
        curl_easy_setopt(h, CURLOPT_VERBOSE, 1L);
    }
    if (r->follow) {
        curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
        curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    }
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    if (r->has_body || strcmp(r->method, "PUT") == 0 || strcmp(r->method, "PATCH") == 0 ||
        strcmp(r->method, "POST") == 0) {
        curl_off_t len =
            r->body ? (curl_off_t)r->body_len : (r->has_body ? (curl_off_t)r->fd_len : 0);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        if (strcmp(r->method, "POST") == 0) {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, len);
        } else {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, len);
        }
        hdrs = curl_slist_append(hdrs, "Expect:");
        if (!r->body && !r->has_body) {
            r->body = "";
            r->body_len = 0;
        }
    }
    if (r->accept && (rc = add_header(&hdrs, &tmp, "Accept", r->accept)) < 0) {
        goto out;
    }
    if (r->content_type && (rc = add_header(&hdrs, &tmp, "Content-Type", r->content_type)) < 0) {
        goto out;
    }
    if (r->content_range && (rc = add_header(&hdrs, &tmp, "Content-Range", r->content_range)) < 0) {
        goto out;
    }
    if (auth) {
        if ((rc = add_header(&hdrs, &tmp, "Authorization", auth)) < 0) {
            goto out;
        }
    } else if (buser) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BASIC);
        curl_easy_setopt(h, CURLOPT_USERNAME, buser);
        curl_easy_setopt(h, CURLOPT_PASSWORD, bpass ? bpass : "");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    if (c->verbose) {
        fprintf(stderr, "berth: %s %s\n", r->method, r->url.ptr);
    }
    CURLcode cc = curl_easy_perform(h);
    *cc_out = cc;
    long st = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &st);
    r->status = st;
    if (cc != CURLE_OK) {
        if (r->sink_failed && cc == CURLE_WRITE_ERROR) {
            rc = berth_error_last_code() != BERTH_OK ? berth_error_last_code() : BERTH_ERROR;
            if (rc == BERTH_OK) {
                rc = BERTH_ERROR;
            }
            goto out;
        }
        if (cc == CURLE_ABORTED_BY_CALLBACK && interrupted) {
            rc = berth_error_set(BERTH_ERROR, "%s %s: interrupted", r->method, r->url.ptr);
            goto out;
        }
        bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
                   cc == CURLE_SSL_CERTPROBLEM || cc == CURLE_SSL_CACERT_BADFILE;
        rc = berth_error_set(BERTH_ENETWORK, "%s %s: %s%s", r->method, r->url.ptr,
                             errbuf[0] ? errbuf : curl_easy_strerror(cc),
                             tls ? " (trust the registry's CA with --cert-dir DIR or a certs.d "
                                   "directory, or skip verification with --tls-verify=false)"
                                 : "");
    }
out:
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    berth_buf_dispose(&tmp);
    return rc;
}

static int url_escape_append(berth_buf *out, const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    int rc;
    if (!e) {
        return BERTH_ENOMEM;
    }
    rc = berth_buf_puts(out, e);
    curl_free(e);
    return rc;
}

/* An RFC 3339 time ("2026-11-30T06:28:27.5Z", "...+02:00") in ms since the epoch, or -1. */
static int64_t parse_rfc3339_ms(const char *s)
{
    int v[6] = {0}, widths[6] = {4, 2, 2, 2, 2, 2};
    const char seps[6] = {'-', '-', 'T', ':', ':', '\0'};
    const char *p = s;
    int64_t ms = 0, off = 0;

    for (int i = 0; i < 6; i++) {
        for (int k = 0; k < widths[i]; k++, p++) {
            if (*p < '0' || *p > '9') {
                return -1;
            }
            v[i] = v[i] * 10 + (*p - '0');
        }
        if (seps[i] && *p != seps[i] && !(i == 2 && (*p == 't' || *p == ' '))) {
            return -1;
        }
        if (seps[i]) {
            p++;
        }
    }
    if (*p == '.') {
        int scale = 100;
        for (p++; *p >= '0' && *p <= '9'; p++) {
            ms += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1;
        if (strlen(p) < 6 || p[3] != ':') {
            return -1;
        }
        off = sign * (((p[1] - '0') * 10 + (p[2] - '0')) * 60 + (p[4] - '0') * 10 + (p[5] - '0'));
    } else if (*p != 'Z' && *p != 'z') {
        return -1;
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60) {
        return -1;
    }
    /* days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's days_from_civil) */
    int64_t y = v[0] - (v[1] <= 2), era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400, mp = (v[1] + 9) % 12;
    int64_t doy = (153 * mp + 2) / 5 + v[2] - 1, doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    int64_t days = era * 146097 + doe - 719468;
    int64_t t = days * 86400 + v[3] * 3600 + v[4] * 60 + v[5];
    return (t - off * 60) * 1000 + ms;
}

/*
 * A token realm in plain HTTP on a host that is not loopback, for a registry the client
 * reaches over HTTPS (and --tls-verify=false not given): credentials must not go there in
 * clear text. podman and docker send them anyway; berth refuses, as the registry's HTTPS
 * promised otherwise.
 */
static bool plain_realm_refused(berth_client *c, const char *registry, const char *realm)
{
    char host[256];
    size_t n;

    if (strncasecmp(realm, "http://", 7) != 0 || c->tls_verify == BERTH_TLS_VERIFY_OFF ||
        strcmp(scheme_for(c, registry), "https") != 0) {
        return false;
    }
    realm += 7;
    n = strcspn(realm, "/?#");
    if (n == 0 || n >= sizeof(host) || memchr(realm, '@', n)) {
        return true;
    }
    memcpy(host, realm, n);
    host[n] = '\0';
    return !loopback_host(host);
}

/*
 * Fetch a bearer token for a challenge; on success *header is "Bearer TOKEN" (free()) and
 * *expires_ms when it expires: expires_in seconds (60 when absent, as the token spec says)
 * after issued_at, or after the request when issued_at is absent, in the future or older
 * than the lifetime (a skewed clock).
 */
static int fetch_token(berth_client *c, const char *registry, const berth_auth_challenge *ch,
                       char **header, int64_t *expires_ms)
{
    request t = {0};
    berth_buf body = BERTH_BUF_INIT_MAX(1024 * 1024);
    char *user = NULL, *pass = NULL, *why = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    CURLcode cc;
    int rc;

    int64_t start = now_ms(), life = 60000, issued;

    *header = NULL;
    *expires_ms = 0;
    t.method = "GET";
    t.registry = registry;
    t.follow = true;
    t.resp = &body;
    t.clen = -1;
    t.fd = -1;
    if ((rc = berth_buf_puts(&t.url, ch->realm)) < 0) {
        goto out;
    }
    char sep = strchr(ch->realm, '?') ? '&' : '?';
    if (ch->service) {
        if ((rc = berth_buf_printf(&t.url, "%cservice=", sep)) < 0 ||
            (rc = url_escape_append(&t.url, ch->service)) < 0) {
            goto out;
        }
        sep = '&';
    }
    if (ch->scope) {
        if ((rc = berth_buf_printf(&t.url, "%cscope=", sep)) < 0 ||
            (rc = url_escape_append(&t.url, ch->scope)) < 0) {
            goto out;
        }
    }
    (void)creds_for(c, registry, &user, &pass, &why);
    if (user && plain_realm_refused(c, registry, ch->realm)) {
        rc = berth_error_set(BERTH_EUNAUTHORIZED,
                             "%s: the token realm %s is plain HTTP: credentials are not sent "
                             "there (--tls-verify=false allows it)",
                             registry, ch->realm);
        goto out;
    }
    if (c->verbose) {
        fprintf(stderr, "berth: token for %s%s\n", ch->scope ? ch->scope : registry,
                user ? " (with credentials)" : "");
    }
    if ((rc = perform_once(c, &t, NULL, user, pass, &cc)) < 0) {
        berth_error_prefix("token endpoint: ");
        goto out;
    }
    if (t.status != 200) {
        rc = status_error(&t, "token request");
        if (rc == BERTH_ENOTFOUND || rc == BERTH_ERROR) {
            rc = BERTH_EUNAUTHORIZED;
            berth_error_set(rc, "token request to %s failed with HTTP %ld", ch->realm, t.status);
        }
        if (why) { /* the credentials that could not be read say more than the 401 */
            rc = berth_error_set(BERTH_EUNAUTHORIZED, "%s: %s", registry, why);
        }
        goto out;
    }
    root = json_loadb(body.ptr ? body.ptr : "", body.len, 0, &jerr);
    const char *tok = root ? json_string_value(json_object_get(root, "token")) : NULL;
    if (!tok || !*tok) {
        tok = root ? json_string_value(json_object_get(root, "access_token")) : NULL;
    }
    if (!tok || !*tok) {
        rc = berth_error_set(BERTH_EUNAUTHORIZED, "token endpoint %s returned no token", ch->realm);
        goto out;
    }
    json_t *ein = json_object_get(root, "expires_in");
    if (json_is_integer(ein) && json_integer_value(ein) > 0 &&
        json_integer_value(ein) < 100 * 365 * 86400LL) {
        life = (int64_t)json_integer_value(ein) * 1000;
    }
    const char *iat = json_string_value(json_object_get(root, "issued_at"));
    issued = iat ? parse_rfc3339_ms(iat) : -1;
    *expires_ms = (issued >= 0 && issued <= start && start - issued < life ? issued : start) + life;
    berth_buf_clear(&body);
    body.max = 0;
    if ((rc = berth_buf_printf(&body, "Bearer %s", tok)) < 0) {
        goto out;
    }
    *header = berth_buf_detach(&body);
    rc = *header ? 0 : BERTH_ENOMEM;
out:
    json_decref(root);
    free(user);
    free(pass);
    free(why);
    berth_buf_dispose(&body);
    request_dispose(&t);
    return rc;
}

static bool cache_get_flag(berth_client *c, const char *key)
{
    char *v = cache_get(c, key);
    bool found = v != NULL;
    free(v);
    return found;
}

/*
 * True when `url` is on the registry's own origin (scheme, host and port as the client talks
 * to it; an explicit default port counts as the same). Credentials and tokens go only there:
 * an upload Location or a Link on another host, or in plain HTTP on an HTTPS registry, gets
 * the request without them, as docker's client does (its challenges are kept per host).
 */
static bool same_origin(berth_client *c, const char *registry, const char *url)
{
    const char *scheme = scheme_for(c, registry), *host = api_host(registry), *p = url;
    size_t n = strlen(scheme), hn = strlen(host);

    if (strncmp(p, scheme, n) != 0 || strncmp(p + n, "://", 3) != 0) {
        return false;
    }
    p += n + 3;
    if (strncasecmp(p, host, hn) != 0) {
        return false;
    }
    p += hn;
    const char *close = host[0] == '[' ? strchr(host, ']') : NULL;
    if (!strchr(close ? close : host, ':')) { /* no port given: the scheme's default may be */
        const char *def = strcmp(scheme, "https") == 0 ? ":443" : ":80";
        if (strncmp(p, def, strlen(def)) == 0) {
            p += strlen(def);
        }
    }
    return *p == '\0' || *p == '/' || *p == '?' || *p == '#';
}

/*
 * Perform a request with authentication and retries. Returns 0 when the exchange completed
 * (whatever the status, which the caller reads in r->status), or an error.
 */
static int perform(berth_client *c, request *r)
{
    berth_buf key = BERTH_BUF_INIT;
    char *auth = NULL, *user = NULL, *pass = NULL;
    bool answered = false, use_basic = false;
    unsigned attempt = 0, delay = c->delay_ms;
    berth_auth_challenge renew = {0};
    int64_t expires = 0;
    bool own = same_origin(c, r->registry, berth_buf_cstr(&r->url));
    r->foreign = !own;
    CURLcode cc;
    int rc;

    r->clen = -1;
    if ((rc = berth_buf_printf(&key, "%s %s", r->registry, r->scope ? r->scope : "")) < 0) {
        goto out;
    }
    auth = own ? cache_lookup(c, key.ptr, &renew) : NULL;
    if (!auth && renew.realm) {
        /* the cached token is about to expire: a new one now, not a 401 in the middle */
        if (fetch_token(c, r->registry, &renew, &auth, &expires) == 0) {
            cache_put_token(c, key.ptr, auth, expires, &renew);
        } else {
            berth_error_clear(); /* the request goes without; a 401 will tell */
        }
    }
    if (!auth && own) {
        berth_buf bkey = BERTH_BUF_INIT;
        if (berth_buf_printf(&bkey, "%s basic", r->registry) == 0 && cache_get_flag(c, bkey.ptr)) {
            use_basic = true;
        }
        berth_buf_dispose(&bkey);
    }
    for (;;) {
        if (use_basic && !user) {
            (void)creds_for(c, r->registry, &user, &pass, NULL);
        }
        rc = perform_once(c, r, auth, use_basic ? user : NULL, pass, &cc);
        if (rc < 0) {
            if (rc == BERTH_ENETWORK && retryable(cc) && !r->delivered && attempt < c->retries) {
                attempt++;
                r->net_retried = true;
                if (c->verbose) {
                    fprintf(stderr, "berth: %s; retrying in %u ms\n", berth_error_last(), delay);
                }
                sleep_ms(delay);
                delay *= 2;
                continue;
            }
            goto out;
        }
        if (r->status == 401 && !answered && r->www_auth && own) {
            berth_auth_challenge ch = {0};
            answered = true;
            if (berth_auth_challenge_parse(&ch, r->www_auth) < 0) {
                rc = berth_error_set(BERTH_EUNAUTHORIZED, "%s: unreadable challenge: %s",
                                     r->url.ptr, r->www_auth);
                goto out;
            }
            if (strcmp(ch.scheme, "bearer") == 0 || strcmp(ch.scheme, "Bearer") == 0) {
                free(auth);
                auth = NULL;
                rc = fetch_token(c, r->registry, &ch, &auth, &expires);
                if (rc == 0) {
                    cache_put_token(c, key.ptr, auth, expires, &ch);
                }
            } else {
                char *why = NULL;
                free(user);
                free(pass);
                rc = creds_for(c, r->registry, &user, &pass, &why);
                if (rc < 0) {
                    rc = berth_error_set(BERTH_EUNAUTHORIZED,
                                         "%s asks for credentials (--user/--password or "
                                         "berth login)%s%s",
                                         r->registry, why ? ": " : "", why ? why : "");
                    free(why);
                } else {
                    berth_buf bkey = BERTH_BUF_INIT;
                    use_basic = true;
                    free(auth);
                    auth = NULL;
                    if (berth_buf_printf(&bkey, "%s basic", r->registry) == 0) {
                        cache_put(c, bkey.ptr, "1");
                    }
                    berth_buf_dispose(&bkey);
                }
            }
            berth_auth_challenge_dispose(&ch);
            if (rc < 0) {
                goto out;
            }
            continue;
        }
        if ((r->status >= 500 || r->status == 429) && !r->delivered && attempt < c->retries) {
            attempt++;
            sleep_ms(delay);
            delay *= 2;
            continue;
        }
        break;
    }
    rc = 0;
out:
    berth_auth_challenge_dispose(&renew);
    free(auth);
    free(user);
    free(pass);
    berth_buf_dispose(&key);
    return rc;
}

static void request_init(request *r, const char *method, const char *scope)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    r->scope = scope;
    r->fd = -1;
    r->clen = -1;
    r->errbody.max = ERRBODY_MAX + 1;
}

static int scope_for(berth_buf *out, const char *repo, bool push)
{
    return berth_buf_printf(out, "repository:%s:%s", repo, push ? "pull,push" : "pull");
}

static bool connect_failed(CURLcode cc)
{
    return cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST ||
           cc == CURLE_OPERATION_TIMEDOUT;
}

/* One GET /v2/ over `scheme` without credentials. */
static int probe_once(berth_client *c, reg_state *g, const char *scheme, long *status, CURLcode *cc)
{
    request r;
    int rc;
    request_init(&r, "GET", NULL);
    r.registry = g->registry;
    *status = 0;
    if ((rc = berth_buf_printf(&r.url, "%s://%s/v2/", scheme, api_host(g->registry))) == 0) {
        rc = perform_once(c, &r, NULL, NULL, NULL, cc);
        *status = r.status;
    }
    request_dispose(&r);
    return rc;
}

/*
 * Settle the scheme of a registry before its first request. HTTPS, always, unless plain HTTP
 * may be tried: for a loopback host, a registry registries.conf marks insecure, or with
 * --tls-verify=false (never with --tls-verify=true), as podman does. Then HTTPS is tried
 * first, and plain HTTP when HTTPS fails and a registry answers /v2/ (200 or 401) in plain
 * HTTP; otherwise the HTTPS failure is the error. A registry that does not listen yet is
 * waited for with the usual backoff.
 */
static int decide_scheme(berth_client *c, const char *registry)
{
    reg_state *g = reg_get(c, registry);
    berth_buf https_err = BERTH_BUF_INIT;
    unsigned attempt = 0, delay = c->delay_ms;
    const char *scheme;
    long status;
    CURLcode cc;
    int rc = 0;

    if (!g) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (c->plain_http) {
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    scheme = g->scheme;
    if (!scheme &&
        (c->tls_verify == BERTH_TLS_VERIFY_ON ||
         (c->tls_verify != BERTH_TLS_VERIFY_OFF && !loopback_host(registry) && !g->insecure))) {
        scheme = g->scheme = "https";
    }
    pthread_mutex_unlock(&c->mu);
    if (scheme) {
        return 0;
    }
    pthread_mutex_lock(&c->probe_mu);
    pthread_mutex_lock(&c->mu);
    scheme = g->scheme; /* another thread may have settled it meanwhile */
    pthread_mutex_unlock(&c->mu);
    while (!scheme) {
        rc = probe_once(c, g, "https", &status, &cc);
        if (rc == 0) {
            scheme = "https";
            break;
        }
        if (rc != BERTH_ENETWORK) {
            break;
        }
        if (!connect_failed(cc)) {
            berth_buf_clear(&https_err);
            (void)berth_buf_puts(&https_err, berth_error_last());
            rc = probe_once(c, g, "http", &status, &cc);
            if (rc == 0 && (status == 200 || status == 401)) {
                scheme = "http";
                if (c->verbose) {
                    fprintf(stderr, "berth: %s: HTTPS failed, plain HTTP answers: using it\n",
                            registry);
                }
                break;
            }
            if (rc < 0 && rc != BERTH_ENETWORK) {
                break; /* not the network (interrupted, out of memory): its own message */
            }
            if (rc == 0 || !connect_failed(cc)) {
                rc = berth_error_set(BERTH_ENETWORK, "%s", berth_buf_cstr(&https_err));
                break;
            }
        }
        if (attempt >= c->retries) {
            break;
        }
        attempt++;
        if (c->verbose) {
            fprintf(stderr, "berth: %s; retrying in %u ms\n", berth_error_last(), delay);
        }
        sleep_ms(delay);
        delay *= 2;
    }
    if (scheme) {
        rc = 0;
        berth_error_clear();
        pthread_mutex_lock(&c->mu);
        g->scheme = scheme;
        pthread_mutex_unlock(&c->mu);
    }
    pthread_mutex_unlock(&c->probe_mu);
    berth_buf_dispose(&https_err);
    return rc;
}

const char *berth_client_transport_version(void)
{
    return curl_version_info(CURLVERSION_NOW)->version;
}

int berth_client_ping(berth_client *c, const char *registry)
{
    request r;
    int rc;
    request_init(&r, "GET", NULL);
    if ((rc = url_start(c, &r, registry)) < 0 || (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 200) {
        rc = status_error(&r, "GET");
    }
out:
    request_dispose(&r);
    return rc;
}

static int manifest_request(berth_client *c, const char *method, const char *registry,
                            const char *repo, const char *ref, berth_buf *body, char **ctype,
                            berth_digest *digest_out, uint64_t *size_out)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    berth_digest want = {0}, got = {0};
    bool pinned = false;
    int rc;

    request_init(&r, method, NULL);
    if (ctype) {
        *ctype = NULL;
    }
    if (strchr(ref, ':')) {
        if ((rc = berth_digest_parse_str(&want, ref)) < 0) {
            goto out;
        }
        pinned = true;
    }
    r.accept = BERTH_CLIENT_MANIFEST_ACCEPT;
    r.resp = body;
    r.follow = true;
    if ((rc = scope_for(&scope, repo, false)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/manifests/%s", repo, ref)) < 0) {
        goto out;
    }
    size_t start = body ? body->len : 0;
    if ((rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 200) {
        rc = status_error(&r, method);
        goto out;
    }
    if (body) {
        berth_digest_alg alg = pinned ? want.alg : BERTH_DIGEST_SHA256;
        if ((rc = berth_digest_buffer(&got, alg, body->ptr + start, body->len - start)) < 0) {
            goto out;
        }
        if (pinned && !berth_digest_equal(&got, &want)) {
            rc = berth_error_set(BERTH_EMISMATCH, "manifest %s/%s@%s: content has digest %s",
                                 registry, repo, want.str, got.str);
            goto out;
        }
    } else if (r.dcd) {
        if (berth_digest_parse_str(&got, r.dcd) < 0) {
            berth_error_clear();
            memset(&got, 0, sizeof(got));
        }
    } else if (pinned) {
        got = want;
    }
    if (digest_out) {
        *digest_out = got;
    }
    if (size_out) {
        *size_out = r.clen >= 0 ? (uint64_t)r.clen : 0;
    }
    if (ctype && r.ctype) {
        char *semi = strchr(r.ctype, ';');
        if (semi) {
            *semi = '\0';
        }
        *ctype = strdup(r.ctype);
    }
out:
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}

int berth_client_get_manifest(berth_client *c, const char *registry, const char *repo,
                              const char *ref, berth_buf *body, char **content_type,
                              berth_digest *digest_out)
{
    berth_error_clear();
    if (body->max == 0 || body->max > BERTH_CLIENT_MANIFEST_MAX) {
        body->max = BERTH_CLIENT_MANIFEST_MAX;
    }
    return manifest_request(c, "GET", registry, repo, ref, body, content_type, digest_out, NULL);
}

int berth_client_head_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, berth_digest *digest_out, uint64_t *size_out)
{
    berth_error_clear();
    return manifest_request(c, "HEAD", registry, repo, ref, NULL, NULL, digest_out, size_out);
}

typedef struct verify_ctx {
    berth_hasher *h; /* NULL: not hashed (the caller verifies) */
    berth_client_sink_cb sink;
    void *payload;
    int64_t size;
    bool too_long;
    uint64_t count; /* bytes received */
} verify_ctx;

static int verify_sink(const void *data, size_t len, void *p)
{
    verify_ctx *v = p;
    if (v->size >= 0 && v->count + len > (uint64_t)v->size) {
        v->too_long = true;
        return berth_error_set(BERTH_EMISMATCH, "blob is longer than its declared %lld bytes",
                               (long long)v->size);
    }
    if (v->h && berth_hasher_update(v->h, data, len) < 0) {
        return -1;
    }
    v->count += len;
    return v->sink ? v->sink(data, len, v->payload) : 0;
}

static int get_blob(berth_client *c, const char *registry, const char *repo,
                    const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                    void *payload, bool hash)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    verify_ctx v = {NULL, sink, payload, size, false, 0};
    berth_digest got;
    int rc;

    berth_error_clear();
    request_init(&r, "GET", NULL);
    if ((hash && (rc = berth_hasher_new(&v.h, digest->alg)) < 0) ||
        (rc = scope_for(&scope, repo, false)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    r.follow = true;
    r.sink = verify_sink;
    r.sink_payload = &v;
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/blobs/%s", repo, digest->str)) < 0) {
        goto out;
    }
    if ((rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 200) {
        rc = status_error(&r, "GET");
        goto out;
    }
    if (size >= 0 && v.count != (uint64_t)size) {
        rc = berth_error_set(BERTH_EMISMATCH, "blob %s: got %llu bytes, expected %lld", digest->str,
                             (unsigned long long)v.count, (long long)size);
        goto out;
    }
    if (!hash) {
        goto out; /* the caller checks the digest */
    }
    if ((rc = berth_hasher_peek(&got, v.h)) < 0) {
        goto out;
    }
    if (!berth_digest_equal(&got, digest)) {
        rc = berth_error_set(BERTH_EMISMATCH, "blob %s: content has digest %s", digest->str,
                             got.str);
    }
out:
    berth_hasher_free(v.h);
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}

int berth_client_get_blob(berth_client *c, const char *registry, const char *repo,
                          const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                          void *payload)
{
    return get_blob(c, registry, repo, digest, size, sink, payload, true);
}

int berth_client_get_blob_unhashed(berth_client *c, const char *registry, const char *repo,
                                   const berth_digest *digest, int64_t size,
                                   berth_client_sink_cb sink, void *payload)
{
    return get_blob(c, registry, repo, digest, size, sink, payload, false);
}

int berth_client_head_blob(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, uint64_t *size_out)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    int rc;

    berth_error_clear();
    request_init(&r, "HEAD", NULL);
    if ((rc = scope_for(&scope, repo, false)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    r.follow = true;
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/blobs/%s", repo, digest->str)) < 0 ||
        (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 200) {
        rc = status_error(&r, "HEAD");
        goto out;
    }
    if (size_out) {
        *size_out = r.clen >= 0 ? (uint64_t)r.clen : 0;
    }
out:
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}

/* True when the registry was marked with `what` ("nomono": no monolithic POST). */
static bool registry_flag(berth_client *c, const char *registry, const char *what)
{
    berth_buf key = BERTH_BUF_INIT;
    bool set = berth_buf_printf(&key, "%s %s", registry, what) == 0 && cache_get_flag(c, key.ptr);
    berth_buf_dispose(&key);
    return set;
}

/* Make an absolute URL of a Location header (it may be relative to the registry). */
static int absolute_location(berth_buf *out, berth_client *c, const char *registry, const char *loc)
{
    berth_buf_clear(out);
    if (strncmp(loc, "http://", 7) == 0 || strncmp(loc, "https://", 8) == 0) {
        return berth_buf_puts(out, loc);
    }
    return berth_buf_printf(out, "%s://%s%s%s", scheme_for(c, registry), api_host(registry),
                            loc[0] == '/' ? "" : "/", loc);
}

/*
 * Follow the `Link: <...>; rel="next"` of a list page (distribution spec, pagination): point
 * r->url at the next page, using `next` as scratch. At most 100,000 pages are followed (more,
 * or a Link to the page itself, is an error: the list would be cut short).
 * @return 1 (there is a next page), 0 (the list is complete) or an error
 */
static int next_page(request *r, berth_buf *next, berth_client *c, const char *registry, int *pages)
{
    int rc;

    berth_buf_clear(next);
    if (!r->link) {
        return 0;
    }
    if (++*pages > 100000) {
        return berth_error_set(BERTH_ERROR, "GET %s: more than 100,000 pages", r->url.ptr);
    }
    rc = berth_link_next_parse(next, r->link);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        return 0;
    }
    if (rc < 0) {
        return rc;
    }
    berth_buf prev = BERTH_BUF_INIT;
    if ((rc = berth_buf_puts(&prev, berth_buf_cstr(&r->url))) == 0 &&
        (rc = absolute_location(&r->url, c, registry, next->ptr)) == 0 &&
        strcmp(prev.ptr, r->url.ptr) == 0) {
        /* a registry that would keep the client on one page for 100,000 requests */
        rc = berth_error_set(BERTH_ERROR, "GET %s: its Link rel=\"next\" names the same page",
                             prev.ptr);
    }
    berth_buf_dispose(&prev);
    return rc < 0 ? rc : 1;
}

/* Append `key=value` to a URL that may already have a query. */
static int url_add_query(berth_buf *url, const char *key, const char *value)
{
    int rc = berth_buf_printf(url, "%c%s=", strchr(berth_buf_cstr(url), '?') ? '&' : '?', key);
    return rc < 0 ? rc : url_escape_append(url, value);
}

/* POST an upload session (with a mount when `from`); *location gets the session URL. */
static int start_upload(berth_client *c, const char *registry, const char *repo, const char *scope,
                        const char *from, const berth_digest *d, berth_buf *location, bool *mounted)
{
    request r;
    int rc;

    *mounted = false;
    request_init(&r, "POST", scope);
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/blobs/uploads/", repo)) < 0) {
        goto out;
    }
    if (from && ((rc = url_add_query(&r.url, "mount", d->str)) < 0 ||
                 (rc = url_add_query(&r.url, "from", from)) < 0)) {
        goto out;
    }
    if ((rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status == 201 && from) {
        *mounted = true;
        goto out;
    }
    if (r.status != 202 || !r.location) {
        rc = r.status == 202 ? berth_error_set(BERTH_ERROR, "POST %s: no Location", r.url.ptr)
                             : status_error(&r, "POST");
        goto out;
    }
    rc = absolute_location(location, c, registry, r.location);
out:
    request_dispose(&r);
    return rc;
}

int berth__client_mount(berth_client *c, const char *registry, const char *repo, const char *from,
                        const berth_digest *d)
{
    berth_buf scope = BERTH_BUF_INIT, loc = BERTH_BUF_INIT;
    bool mounted = false;
    int rc;

    /* The token scope is the destination's push scope, which is what a token registry's
     * challenge names; a registry that also wants pull on `from` declines the mount, and the
     * caller uploads instead. */
    if ((rc = scope_for(&scope, repo, true)) < 0) {
        goto out;
    }
    rc = start_upload(c, registry, repo, scope.ptr, from, d, &loc, &mounted);
    if (rc == 0 && !mounted) {
        /* cancel the session the registry opened instead; a failure here changes nothing */
        request del;
        request_init(&del, "DELETE", scope.ptr);
        del.registry = registry;
        if (berth_buf_puts(&del.url, loc.ptr) == 0) {
            (void)perform(c, &del);
        }
        request_dispose(&del);
        berth_error_clear();
        rc = BERTH_ENOTFOUND;
    }
out:
    berth_buf_dispose(&scope);
    berth_buf_dispose(&loc);
    return rc;
}

/*
 * A monolithic POST ?digest= with the bytes (a single request). A registry that answers 202
 * instead (Distribution 2.8 does) gave an upload session: *loc receives it, and the registry is
 * remembered so that later blobs do not send their bytes twice.
 */
static int post_monolithic(berth_client *c, const char *registry, const char *repo,
                           const char *scope, const berth_digest *d, uint64_t size,
                           const void *data, int fd, berth_buf *loc, bool *done)
{
    berth_buf key = BERTH_BUF_INIT;
    request r;
    int rc;

    *done = false;
    request_init(&r, "POST", scope);
    r.content_type = "application/octet-stream";
    r.has_body = true;
    if (data) {
        r.body = data;
        r.body_len = (size_t)size;
    } else {
        r.fd = fd;
        r.fd_len = size;
    }
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/blobs/uploads/", repo)) < 0 ||
        (rc = url_add_query(&r.url, "digest", d->str)) < 0 || (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status == 201) {
        *done = true;
    } else if (r.status == 202 && r.location) {
        if ((rc = berth_buf_printf(&key, "%s nomono", registry)) == 0) {
            cache_put(c, key.ptr, "1");
        }
        rc = absolute_location(loc, c, registry, r.location);
    } else {
        rc = status_error(&r, "POST");
    }
out:
    berth_buf_dispose(&key);
    request_dispose(&r);
    return rc;
}

/* Push from memory (`data`) or a file (`fd`), `size` bytes. */
/* PATCH bytes [off, off+n) of an upload session, from memory or a file (that `grow` may say
 * is still being written); follows the Location the answer gives. */
static int patch_chunk(berth_client *c, const char *registry, const char *scope, berth_buf *loc,
                       uint64_t off, uint64_t n, const void *data, int fd, berth__growing *grow,
                       long *status, bool *net)
{
    berth_buf range = BERTH_BUF_INIT;
    request p;
    int rc;

    request_init(&p, "PATCH", scope);
    p.registry = registry;
    p.content_type = "application/octet-stream";
    if ((rc = berth_buf_puts(&p.url, loc->ptr)) < 0 ||
        (rc = berth_buf_printf(&range, "%llu-%llu", (unsigned long long)off,
                               (unsigned long long)(off + n - 1))) < 0) {
        goto out;
    }
    p.content_range = range.ptr;
    p.has_body = true;
    if (data) {
        p.body = (const char *)data + off;
        p.body_len = (size_t)n;
    } else {
        p.fd = fd;
        p.fd_off = off;
        p.fd_len = n;
        p.grow = grow;
    }
    rc = perform(c, &p);
    *status = p.status;
    *net = *net || p.net_retried || rc == BERTH_ENETWORK;
    if (rc == 0 && p.status != 202) {
        rc = status_error(&p, "PATCH");
    }
    if (rc == 0 && p.location) {
        rc = absolute_location(loc, c, registry, p.location);
    }
out:
    berth_buf_dispose(&range);
    request_dispose(&p);
    return rc;
}

/* Close an upload session with PUT ?digest=, carrying bytes [off, off+len) (from memory or a
 * file; none when both are absent); a Content-Range when they do not start at 0. */
static int put_close(berth_client *c, const char *registry, const char *scope, const berth_buf *loc,
                     const berth_digest *d, const void *data, int fd, uint64_t off, uint64_t len,
                     long *status, bool *net)
{
    berth_buf range = BERTH_BUF_INIT;
    request r;
    int rc = 0;

    request_init(&r, "PUT", scope);
    r.registry = registry;
    r.content_type = "application/octet-stream";
    r.has_body = true;
    if (data || fd < 0) {
        r.body = data ? (const char *)data + off : "";
        r.body_len = data ? (size_t)len : 0;
    } else {
        r.fd = fd;
        r.fd_off = off;
        r.fd_len = len;
    }
    if (off > 0 && len > 0) {
        rc = berth_buf_printf(&range, "%llu-%llu", (unsigned long long)off,
                              (unsigned long long)(off + len - 1));
        r.content_range = range.ptr;
    }
    if (rc == 0 && (rc = berth_buf_puts(&r.url, loc->ptr)) == 0 &&
        (rc = url_add_query(&r.url, "digest", d->str)) == 0 && (rc = perform(c, &r)) == 0 &&
        r.status != 201) {
        rc = status_error(&r, "PUT");
    }
    *status = r.status;
    *net = *net || r.net_retried || rc == BERTH_ENETWORK;
    request_dispose(&r);
    berth_buf_dispose(&range);
    return rc;
}

/*
 * Ask an upload session where it stands (GET on its URL): *next receives the offset of the
 * next byte it expects, from its Range "0-<last>" ("0-0" is read as 0 bytes: the caller
 * tries 1 when 0 is refused), and `loc` the Location it gives.
 * @return 0; BERTH_ENOTFOUND (the registry no longer knows the session); another error
 */
static int upload_status(berth_client *c, const char *registry, const char *scope, berth_buf *loc,
                         uint64_t *next)
{
    request r;
    uint64_t a = 0, b = 0;
    int rc;

    request_init(&r, "GET", scope);
    r.registry = registry;
    if ((rc = berth_buf_puts(&r.url, loc->ptr)) < 0 || (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status == 404 || r.status == 400) {
        /* unknown, or (Distribution) cancelled because it holds more than its state says */
        rc = berth_error_set(BERTH_ENOTFOUND, "upload session gone");
        goto out;
    }
    if ((r.status != 204 && r.status != 202 && r.status != 200) || !r.range) {
        rc = r.range ? status_error(&r, "GET")
                     : berth_error_set(BERTH_ERROR, "GET %s: no Range", r.url.ptr);
        goto out;
    }
    const char *dash = strchr(r.range, '-');
    const char *start = strncmp(r.range, "bytes=", 6) == 0 ? r.range + 6 : r.range;
    if (!dash || berth_parse_u64(&a, start, (size_t)(dash - start), UINT64_MAX) < 0 ||
        berth_parse_u64(&b, dash + 1, strlen(dash + 1), UINT64_MAX - 1) < 0 || a != 0) {
        rc = berth_error_set(BERTH_ERROR, "GET %s: unreadable Range '%s'", r.url.ptr, r.range);
        goto out;
    }
    *next = b == 0 ? 0 : b + 1;
    if (r.location) {
        rc = absolute_location(loc, c, registry, r.location);
    }
out:
    request_dispose(&r);
    return rc;
}

/* Cancel an upload session (DELETE), keeping the error that made it necessary. */
static void cancel_upload(berth_client *c, const char *registry, const char *scope,
                          const berth_buf *loc)
{
    berth_buf saved = BERTH_BUF_INIT;
    int code = berth_error_last_code();
    request del;

    (void)berth_buf_puts(&saved, berth_error_last());
    request_init(&del, "DELETE", scope);
    del.registry = registry;
    del.cleanup = true;
    /* the registry may not have noticed yet that the request writing to the session went
     * away, and refuse it as in use for a moment (berth serve: 429 with Retry-After; 400
     * before it said so) */
    for (unsigned i = 0, delay = 50; i < 6 && berth_buf_puts(&del.url, loc->ptr) == 0; i++) {
        if (perform(c, &del) < 0 || (del.status != 400 && del.status != 429)) {
            break;
        }
        sleep_ms(delay);
        delay *= 2;
        berth_buf_clear(&del.url);
    }
    if (c->verbose) {
        fprintf(stderr, "berth: cancelling upload session %s: HTTP %ld\n", loc->ptr, del.status);
    }
    request_dispose(&del);
    berth_error_set(code, "%s", berth_buf_cstr(&saved));
    berth_buf_dispose(&saved);
}

static bool growing_failed(berth__growing *g)
{
    bool failed;
    if (!g) {
        return false;
    }
    pthread_mutex_lock(&g->mu);
    failed = g->state < 0;
    pthread_mutex_unlock(&g->mu);
    return failed;
}

#define RESUME_MAX 8

/*
 * Send a blob's bytes into the upload session at `loc` and close it with its digest: in PATCH
 * chunks (`chunked`; one streamed PATCH with `grow`) and an empty closing PUT, or all in the
 * closing PUT. After a broken connection or a 416 (the session holds other bytes than the
 * chunk assumed: a request the registry half-received), ask the session where it stands and
 * go on from there, at most RESUME_MAX times, waiting longer each time. A session the registry
 * lost is started anew, unless the blob is there (the closing PUT went through and only its
 * answer was lost). `loc` is the session in use on return.
 */
static int upload_blob(berth_client *c, const char *registry, const char *repo, const char *scope,
                       berth_buf *loc, const berth_digest *d, uint64_t size, const void *data,
                       int fd, berth__growing *grow, bool chunked)
{
    uint64_t off = 0, next = 0;
    unsigned resumes = 0, delay = c->delay_ms;
    bool refused_at_zero = false, net = false, anew;
    long status = 0;
    int rc, st, verdict;

    for (;;) {
        rc = 0;
        status = 0;
        if (chunked) {
            while (rc == 0 && off < size) {
                uint64_t n = grow || size - off < CHUNK_SIZE ? size - off : CHUNK_SIZE;
                rc = patch_chunk(c, registry, scope, loc, off, n, data, fd, grow, &status, &net);
                if (rc == 0) {
                    off += n;
                }
            }
            if (rc == 0 && grow && (verdict = berth__growing_verdict(grow)) < 0) {
                return verdict; /* commit only what the download verified */
            }
            if (rc == 0) {
                rc = put_close(c, registry, scope, loc, d, NULL, -1, 0, 0, &status, &net);
            }
        } else {
            rc = put_close(c, registry, scope, loc, d, data, fd, off, size - off, &status, &net);
        }
        /* resumable: a broken connection; a 416; after a broken connection, a session the
         * registry no longer takes (404, or Distribution's 400 BLOB_UPLOAD_INVALID) */
        if (rc == 0 || growing_failed(grow) || resumes >= RESUME_MAX ||
            !(rc == BERTH_ENETWORK || status == 416 || (net && (status == 404 || status == 400)))) {
            return rc;
        }
        resumes++;
        refused_at_zero = status == 416 && off == 0;
        if (c->verbose) {
            fprintf(stderr, "berth: %s; asking the upload session where it stands in %u ms\n",
                    berth_error_last(), delay);
        }
        sleep_ms(delay);
        delay = delay < 4000 ? delay * 2 : delay;
        berth_buf saved = BERTH_BUF_INIT;
        int code = berth_error_last_code();
        (void)berth_buf_puts(&saved, berth_error_last());
        st = upload_status(c, registry, scope, loc, &next);
        anew = st == BERTH_ENOTFOUND;
        if (anew) {
            bool mounted = false;
            if (berth_client_head_blob(c, registry, repo, d, NULL) == 0) {
                berth_buf_dispose(&saved);
                berth_error_clear();
                return 0;
            }
            st = start_upload(c, registry, repo, scope, NULL, d, loc, &mounted);
            next = 0;
        }
        if (st < 0) {
            berth_error_set(code, "%s", berth_buf_cstr(&saved));
            berth_buf_dispose(&saved);
            return code;
        }
        berth_buf_dispose(&saved);
        if (next == 0 && refused_at_zero && !anew) {
            next = 1; /* "0-0" meant one byte */
        }
        if (next > size) {
            return berth_error_set(BERTH_ERROR,
                                   "upload session holds %llu bytes of a %llu-byte "
                                   "blob",
                                   (unsigned long long)next, (unsigned long long)size);
        }
        if (c->verbose) {
            fprintf(stderr, "berth: %s blob %s at byte %llu\n",
                    anew ? "the registry lost the upload session: restarting" : "resuming", d->str,
                    (unsigned long long)next);
        }
        off = next;
    }
}

static int push_blob(berth_client *c, const char *registry, const char *repo, const berth_digest *d,
                     uint64_t size, const void *data, int fd, const char *mount_from)
{
    berth_buf scope = BERTH_BUF_INIT, loc = BERTH_BUF_INIT;
    bool mounted = false;
    int rc;

    if ((rc = scope_for(&scope, repo, true)) < 0) {
        goto out;
    }
    if (mount_from && strcmp(mount_from, repo) != 0) {
        rc = start_upload(c, registry, repo, scope.ptr, mount_from, d, &loc, &mounted);
    } else if (size <= MONOLITHIC_POST_MAX && !registry_flag(c, registry, "nomono")) {
        rc = post_monolithic(c, registry, repo, scope.ptr, d, size, data, fd, &loc, &mounted);
    } else {
        rc = start_upload(c, registry, repo, scope.ptr, NULL, d, &loc, &mounted);
    }
    if (rc < 0 || mounted) {
        goto out;
    }
    /* large blobs in PATCH chunks (following the Location each answer gives), small ones in
     * the closing PUT */
    rc = upload_blob(c, registry, repo, scope.ptr, &loc, d, size, data, fd, NULL,
                     size > MONOLITHIC_MAX);
out:
    if (rc < 0 && loc.len) {
        cancel_upload(c, registry, scope.ptr, &loc); /* leave no session behind */
    }
    if (rc < 0) {
        berth_error_prefix("pushing blob %s to %s/%s: ", d->str, registry, repo);
    }
    berth_buf_dispose(&scope);
    berth_buf_dispose(&loc);
    return rc;
}

int berth_client_push_blob_file(berth_client *c, const char *registry, const char *repo,
                                const berth_digest *digest, uint64_t size, const char *path,
                                const char *mount_from)
{
    int fd, rc;
    berth_error_clear();
    fd = open(path, O_RDONLY);
    if (fd < 0) {
        return berth_error_set(BERTH_EIO, "%s: %s", path, strerror(errno));
    }
    rc = push_blob(c, registry, repo, digest, size, NULL, fd, mount_from);
    close(fd);
    return rc;
}

int berth_client_push_blob_mem(berth_client *c, const char *registry, const char *repo,
                               const berth_digest *digest, const void *data, size_t len)
{
    berth_error_clear();
    return push_blob(c, registry, repo, digest, len, data, -1, NULL);
}

void berth__growing_init(berth__growing *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->avail = 0;
    g->state = 0;
}

void berth__growing_dispose(berth__growing *g)
{
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

void berth__growing_advance(berth__growing *g, uint64_t avail)
{
    pthread_mutex_lock(&g->mu);
    g->avail = avail;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void berth__growing_end(berth__growing *g, int state)
{
    pthread_mutex_lock(&g->mu);
    g->state = state;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

uint64_t berth__growing_wait(berth__growing *g, uint64_t need)
{
    uint64_t avail;
    pthread_mutex_lock(&g->mu);
    while (g->avail < need && g->state == 0) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    avail = g->state < 0 ? 0 : g->avail;
    pthread_mutex_unlock(&g->mu);
    return avail;
}

int berth__growing_verdict(berth__growing *g)
{
    int state;
    pthread_mutex_lock(&g->mu);
    while (g->state == 0) {
        pthread_cond_wait(&g->cv, &g->mu);
    }
    state = g->state;
    pthread_mutex_unlock(&g->mu);
    return state;
}

int berth__client_push_blob_growing(berth_client *c, const char *registry, const char *repo,
                                    const berth_digest *d, uint64_t size, int fd,
                                    berth__growing *grow)
{
    berth_buf scope = BERTH_BUF_INIT, loc = BERTH_BUF_INIT;
    bool mounted = false;
    int rc, verdict;

    berth_error_clear();
    if ((rc = scope_for(&scope, repo, true)) < 0 ||
        (rc = start_upload(c, registry, repo, scope.ptr, NULL, d, &loc, &mounted)) < 0 || mounted) {
        goto out;
    }
    /* the whole blob in one PATCH, read from the file as the download writes it; the closing
     * PUT only once the download verified it */
    rc = upload_blob(c, registry, repo, scope.ptr, &loc, d, size, NULL, fd, grow, true);
out:
    /* a failed download may have stopped the upload first: its verdict is the cause */
    if (rc < 0 && !mounted && (verdict = berth__growing_verdict(grow)) < 0) {
        rc = verdict;
    }
    if (rc < 0 && loc.len) {
        cancel_upload(c, registry, scope.ptr, &loc); /* leave no session behind */
    }
    if (rc < 0) {
        berth_error_prefix("pushing blob %s to %s/%s: ", d->str, registry, repo);
    }
    berth_buf_dispose(&scope);
    berth_buf_dispose(&loc);
    return rc;
}

int berth_client_push_manifest(berth_client *c, const char *registry, const char *repo,
                               const char *ref, const char *media_type, const void *data,
                               size_t len)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    int rc;

    berth_error_clear();
    request_init(&r, "PUT", NULL);
    if ((rc = scope_for(&scope, repo, true)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    r.content_type = media_type;
    r.has_body = true;
    r.body = data;
    r.body_len = len;
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/manifests/%s", repo, ref)) < 0 ||
        (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 201 && r.status != 200) {
        rc = status_error(&r, "PUT");
    }
out:
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}

/* GET a tag list (or, `tags` false, a repository list) page by page, following Link
 * rel="next"; names out of the tag (repository name) grammar are skipped. */
static int list_paged(berth_client *c, const char *registry, const char *scope,
                      const char *first_path, bool tags, berth_client_name_cb cb, void *payload)
{
    berth_buf body = BERTH_BUF_INIT_MAX(BERTH_CLIENT_MANIFEST_MAX * 4);
    berth_buf next = BERTH_BUF_INIT;
    request r;
    berth_tag_list *tl = NULL;
    berth_repository_list *rl = NULL;
    int rc = 0, pages = 0;

    request_init(&r, "GET", scope);
    if ((rc = url_start(c, &r, registry)) < 0 || (rc = berth_buf_puts(&r.url, first_path)) < 0) {
        goto out;
    }
    for (;;) {
        berth_buf_clear(&body);
        r.resp = &body;
        if ((rc = perform(c, &r)) < 0) {
            goto out;
        }
        if (r.status != 200) {
            rc = status_error(&r, "GET");
            goto out;
        }
        berth_tag_list_free(tl);
        berth_repository_list_free(rl);
        tl = NULL;
        rl = NULL;
        rc = tags ? berth_tag_list_parse(&tl, berth_buf_cstr(&body), body.len)
                  : berth_repository_list_parse(&rl, berth_buf_cstr(&body), body.len);
        if (rc < 0) {
            berth_error_prefix("GET %s: ", r.url.ptr);
            goto out;
        }
        const berth_strlist *names = tags ? &tl->tags : &rl->repositories;
        for (size_t i = 0; i < names->count; i++) {
            const char *name = names->items[i];
            /* a name out of the grammar (an escape sequence, a newline: what a hostile
             * registry would send to the user's terminal) is no tag or repository: skipped */
            if ((tags ? berth_tag_validate(name) : berth_name_validate(name)) < 0) {
                berth_error_clear();
                if (c->verbose) {
                    fprintf(stderr, "berth: GET %s: an invalid %s skipped\n", r.url.ptr,
                            tags ? "tag" : "repository name");
                }
                continue;
            }
            if (cb(name, payload) != 0) {
                goto out;
            }
        }
        if ((rc = next_page(&r, &next, c, registry, &pages)) <= 0) {
            goto out;
        }
    }
out:
    berth_tag_list_free(tl);
    berth_repository_list_free(rl);
    berth_buf_dispose(&body);
    berth_buf_dispose(&next);
    request_dispose(&r);
    return rc;
}

int berth_client_list_tags(berth_client *c, const char *registry, const char *repo,
                           berth_client_name_cb cb, void *payload)
{
    berth_buf scope = BERTH_BUF_INIT, path = BERTH_BUF_INIT;
    int rc;
    berth_error_clear();
    if ((rc = scope_for(&scope, repo, false)) == 0 &&
        (rc = berth_buf_printf(&path, "%s/tags/list", repo)) == 0) {
        rc = list_paged(c, registry, scope.ptr, path.ptr, true, cb, payload);
    }
    berth_buf_dispose(&scope);
    berth_buf_dispose(&path);
    return rc;
}

int berth_client_catalog(berth_client *c, const char *registry, berth_client_name_cb cb,
                         void *payload)
{
    berth_error_clear();
    return list_paged(c, registry, "registry:catalog:*", "_catalog", false, cb, payload);
}

int berth_client_delete_manifest(berth_client *c, const char *registry, const char *repo,
                                 const char *ref)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    int rc;

    berth_error_clear();
    request_init(&r, "DELETE", NULL);
    if ((rc = berth_buf_printf(&scope, "repository:%s:delete", repo)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/manifests/%s", repo, ref)) < 0 ||
        (rc = perform(c, &r)) < 0) {
        goto out;
    }
    if (r.status != 202 && r.status != 200 && r.status != 204) {
        rc = status_error(&r, "DELETE");
    }
out:
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}

int berth_client_referrers(berth_client *c, const char *registry, const char *repo,
                           const berth_digest *digest, berth_buf *body)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT, page = BERTH_BUF_INIT, next = BERTH_BUF_INIT;
    json_t *all = json_array(), *doc = NULL;
    char *text = NULL;
    int rc, pages = 0;

    berth_error_clear();
    request_init(&r, "GET", NULL);
    if (body->max == 0) {
        body->max = BERTH_CLIENT_MANIFEST_MAX;
    }
    page.max = body->max;
    if (!all) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = scope_for(&scope, repo, false)) < 0) {
        goto out;
    }
    r.scope = scope.ptr;
    r.accept = "application/vnd.oci.image.index.v1+json";
    if ((rc = url_start(c, &r, registry)) < 0 ||
        (rc = berth_buf_printf(&r.url, "%s/referrers/%s", repo, digest->str)) < 0) {
        goto out;
    }
    /* page by page, following Link rel="next"; the pages' descriptors make one index */
    for (;;) {
        json_t *list;
        berth_buf_clear(&page);
        r.resp = &page;
        if ((rc = perform(c, &r)) < 0) {
            goto out;
        }
        if (pages == 0 && (r.status == 404 || r.status == 405)) {
            rc = berth_error_set(BERTH_EUNSUPPORTED, "%s has no referrers API", registry);
            goto out;
        }
        if (r.status != 200) {
            rc = status_error(&r, "GET");
            goto out;
        }
        json_decref(doc);
        doc = json_loadb(berth_buf_cstr(&page), page.len, 0, NULL);
        list = json_object_get(doc, "manifests");
        if (!json_is_array(list)) {
            rc = berth_error_set(BERTH_EINVALID, "GET %s: not an OCI index", r.url.ptr);
            goto out;
        }
        if (json_array_extend(all, list) != 0) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        if ((rc = next_page(&r, &next, c, registry, &pages)) < 0) {
            goto out;
        }
        if (rc == 0) {
            break;
        }
    }
    json_decref(doc);
    doc = json_pack("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType",
                    "application/vnd.oci.image.index.v1+json", "manifests", all);
    text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    rc = text ? berth_buf_puts(body, text) : berth_error_set(BERTH_ENOMEM, "out of memory");
out:
    free(text);
    json_decref(doc);
    json_decref(all);
    berth_buf_dispose(&page);
    berth_buf_dispose(&next);
    berth_buf_dispose(&scope);
    request_dispose(&r);
    return rc;
}
