/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The registry client: the OCI distribution API over libcurl.
 *
 * One CURLSH shares the connection cache, DNS cache and TLS sessions between the easy handles
 * of all threads of a run (each request uses its own easy handle, so the client is usable from
 * the copy engine's worker threads). Authentication is lazy: a request goes out with what is
 * cached for its registry and scope; a 401 challenge is answered once (Basic with the
 * configured or docker-config credentials, or a Bearer token fetched from the challenge's
 * realm and cached by registry and scope) and the request is replayed. Request bodies are
 * memory or a file range, so every attempt can be replayed from the start. Connection errors
 * are retried with doubling backoff, a bounded number of times, and only while no response
 * bytes have reached the caller.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CHUNK_SIZE          (8u * 1024u * 1024u)
#define MONOLITHIC_MAX      (4u * 1024u * 1024u)
#define MONOLITHIC_POST_MAX (1024u * 1024u)
#define ERRBODY_MAX         (64u * 1024u)

typedef struct token_entry {
    struct token_entry *next;
    char *key;   /* "registry scope" or "registry" for Basic */
    char *value; /* full Authorization header value */
} token_entry;

struct berth_client {
    CURLSH *share;
    pthread_mutex_t share_locks[CURL_LOCK_DATA_LAST];
    pthread_mutex_t mu; /* guards tokens */
    token_entry *tokens;
    char *user, *pass;
    char *docker_config; /* JSON text or NULL */
    bool plain_http;
    unsigned retries, delay_ms;
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

static int read_file_text(char **out, const char *path)
{
    berth_buf b = BERTH_BUF_INIT_MAX(1024 * 1024);
    FILE *f = fopen(path, "rb");
    char tmp[4096];
    size_t n;
    int rc = 0;

    *out = NULL;
    if (!f) {
        return BERTH_ENOTFOUND;
    }
    while ((n = fread(tmp, 1, sizeof(tmp), f)) > 0) {
        if ((rc = berth_buf_put(&b, tmp, n)) < 0) {
            goto out;
        }
    }
    *out = berth_buf_detach(&b);
    rc = *out ? 0 : BERTH_ENOMEM;
out:
    fclose(f);
    berth_buf_dispose(&b);
    return rc;
}

int berth_client_new(berth_client **out, const berth_client_options *opts)
{
    berth_client_options none = {0};
    berth_client *c = NULL;
    berth_buf path = BERTH_BUF_INIT;
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
    c->retries = opts->retries ? opts->retries : 4;
    c->delay_ms = opts->retry_delay_ms ? opts->retry_delay_ms : 200;
    c->verbose = opts->verbose;
    if (opts->docker_config) {
        rc = berth_buf_puts(&path, opts->docker_config);
    } else if (getenv("DOCKER_CONFIG")) {
        rc = berth_buf_printf(&path, "%s/config.json", getenv("DOCKER_CONFIG"));
    } else if (getenv("HOME")) {
        rc = berth_buf_printf(&path, "%s/.docker/config.json", getenv("HOME"));
    }
    if (rc < 0) {
        goto out;
    }
    if (path.len && !c->user) {
        (void)read_file_text(&c->docker_config, path.ptr);
    }
    *out = c;
    c = NULL;
out:
    berth_buf_dispose(&path);
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
        free(t);
    }
    for (int i = 0; i < CURL_LOCK_DATA_LAST; i++) {
        pthread_mutex_destroy(&c->share_locks[i]);
    }
    pthread_mutex_destroy(&c->mu);
    free(c->user);
    free(c->pass);
    free(c->docker_config);
    free(c);
}

/* ---- token cache ---- */

static char *cache_get(berth_client *c, const char *key)
{
    char *v = NULL;
    pthread_mutex_lock(&c->mu);
    for (token_entry *t = c->tokens; t; t = t->next) {
        if (strcmp(t->key, key) == 0) {
            v = strdup(t->value);
            break;
        }
    }
    pthread_mutex_unlock(&c->mu);
    return v;
}

static void cache_put(berth_client *c, const char *key, const char *value)
{
    token_entry *t;
    pthread_mutex_lock(&c->mu);
    for (t = c->tokens; t; t = t->next) {
        if (strcmp(t->key, key) == 0) {
            char *v = strdup(value);
            if (v) {
                free(t->value);
                t->value = v;
            }
            goto out;
        }
    }
    t = calloc(1, sizeof(*t));
    if (t) {
        t->key = strdup(key);
        t->value = strdup(value);
        if (!t->key || !t->value) {
            free(t->key);
            free(t->value);
            free(t);
            goto out;
        }
        t->next = c->tokens;
        c->tokens = t;
    }
out:
    pthread_mutex_unlock(&c->mu);
}

/* The Basic credentials for a registry: the options', else docker config.json's. */
static int creds_for(const berth_client *c, const char *registry, char **user, char **pass)
{
    *user = NULL;
    *pass = NULL;
    if (c->user) {
        *user = strdup(c->user);
        *pass = strdup(c->pass ? c->pass : "");
        if (!*user || !*pass) {
            free(*user);
            free(*pass);
            *user = *pass = NULL;
            return BERTH_ENOMEM;
        }
        return 0;
    }
    if (c->docker_config) {
        int rc = berth_docker_config_auth(user, pass, c->docker_config, strlen(c->docker_config),
                                          registry);
        if (rc < 0) {
            berth_error_clear();
        }
        return rc == 0 ? 0 : BERTH_ENOTFOUND;
    }
    return BERTH_ENOTFOUND;
}

/* ---- one HTTP exchange ---- */

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
    /* state of the current attempt */
    uint64_t sent;
    long status;
    bool delivered; /* response bytes went to the caller */
    bool sink_failed;
    berth_buf errbody;
    char *location, *www_auth, *link, *ctype, *dcd;
    int64_t clen;
} request;

static void request_reset_response(request *r)
{
    free(r->location);
    free(r->www_auth);
    free(r->link);
    free(r->ctype);
    free(r->dcd);
    r->location = r->www_auth = r->link = r->ctype = r->dcd = NULL;
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

static size_t on_header(char *line, size_t size, size_t n, void *p)
{
    request *r = p;
    size_t len = size * n, v;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        request_reset_response(r); /* a new response (after a redirect or 100) */
        return len;
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

static const char *scheme_for(const berth_client *c, const char *registry)
{
    return (c->plain_http || loopback_host(registry)) ? "http" : "https";
}

static const char *api_host(const char *registry)
{
    return strcmp(registry, "docker.io") == 0 ? "registry-1.docker.io" : registry;
}

static int url_start(berth_client *c, request *r, const char *registry)
{
    r->registry = registry;
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
    berth_error_set(code, "%s %s: %s", what, r->url.ptr ? r->url.ptr : "", berth_buf_cstr(&d));
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
    if (!h) {
        return berth_error_set(BERTH_ENOMEM, "libcurl: cannot create a handle");
    }
    r->sent = 0;
    r->status = 0;
    request_reset_response(r);
    curl_easy_setopt(h, CURLOPT_SHARE, c->share);
    curl_easy_setopt(h, CURLOPT_URL, r->url.ptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 15L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header_status);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
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
        rc = berth_error_set(BERTH_ENETWORK, "%s %s: %s", r->method, r->url.ptr,
                             errbuf[0] ? errbuf : curl_easy_strerror(cc));
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

/* Fetch a bearer token for a challenge; on success *header is "Bearer TOKEN" (free()). */
static int fetch_token(berth_client *c, const char *registry, const berth_auth_challenge *ch,
                       char **header)
{
    request t = {0};
    berth_buf body = BERTH_BUF_INIT_MAX(1024 * 1024);
    char *user = NULL, *pass = NULL;
    json_t *root = NULL;
    json_error_t jerr;
    CURLcode cc;
    int rc;

    *header = NULL;
    t.method = "GET";
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
    (void)creds_for(c, registry, &user, &pass);
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
 * Perform a request with authentication and retries. Returns 0 when the exchange completed
 * (whatever the status, which the caller reads in r->status), or an error.
 */
static int perform(berth_client *c, request *r)
{
    berth_buf key = BERTH_BUF_INIT;
    char *auth = NULL, *user = NULL, *pass = NULL;
    bool answered = false, use_basic = false;
    unsigned attempt = 0, delay = c->delay_ms;
    CURLcode cc;
    int rc;

    r->clen = -1;
    if ((rc = berth_buf_printf(&key, "%s %s", r->registry, r->scope ? r->scope : "")) < 0) {
        goto out;
    }
    auth = cache_get(c, key.ptr);
    if (!auth) {
        berth_buf bkey = BERTH_BUF_INIT;
        if (berth_buf_printf(&bkey, "%s basic", r->registry) == 0 && cache_get_flag(c, bkey.ptr)) {
            use_basic = true;
        }
        berth_buf_dispose(&bkey);
    }
    for (;;) {
        if (use_basic && !user) {
            (void)creds_for(c, r->registry, &user, &pass);
        }
        rc = perform_once(c, r, auth, use_basic ? user : NULL, pass, &cc);
        if (rc < 0) {
            if (rc == BERTH_ENETWORK && retryable(cc) && !r->delivered && attempt < c->retries) {
                attempt++;
                if (c->verbose) {
                    fprintf(stderr, "berth: %s; retrying in %u ms\n", berth_error_last(), delay);
                }
                sleep_ms(delay);
                delay *= 2;
                continue;
            }
            goto out;
        }
        if (r->status == 401 && !answered && r->www_auth) {
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
                rc = fetch_token(c, r->registry, &ch, &auth);
                if (rc == 0) {
                    cache_put(c, key.ptr, auth);
                }
            } else {
                rc = creds_for(c, r->registry, &user, &pass);
                if (rc < 0) {
                    rc = berth_error_set(BERTH_EUNAUTHORIZED,
                                         "%s asks for credentials (--user/--password or "
                                         "docker login)",
                                         r->registry);
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
    berth_hasher *h;
    berth_client_sink_cb sink;
    void *payload;
    int64_t size;
    bool too_long;
} verify_ctx;

static int verify_sink(const void *data, size_t len, void *p)
{
    verify_ctx *v = p;
    if (v->size >= 0 && berth_hasher_count(v->h) + len > (uint64_t)v->size) {
        v->too_long = true;
        return berth_error_set(BERTH_EMISMATCH, "blob is longer than its declared %lld bytes",
                               (long long)v->size);
    }
    if (berth_hasher_update(v->h, data, len) < 0) {
        return -1;
    }
    return v->sink ? v->sink(data, len, v->payload) : 0;
}

int berth_client_get_blob(berth_client *c, const char *registry, const char *repo,
                          const berth_digest *digest, int64_t size, berth_client_sink_cb sink,
                          void *payload)
{
    request r;
    berth_buf scope = BERTH_BUF_INIT;
    verify_ctx v = {NULL, sink, payload, size, false};
    berth_digest got;
    int rc;

    berth_error_clear();
    request_init(&r, "GET", NULL);
    if ((rc = berth_hasher_new(&v.h, digest->alg)) < 0 ||
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
    if (size >= 0 && berth_hasher_count(v.h) != (uint64_t)size) {
        rc = berth_error_set(BERTH_EMISMATCH, "blob %s: got %llu bytes, expected %lld", digest->str,
                             (unsigned long long)berth_hasher_count(v.h), (long long)size);
        goto out;
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
 * r->url at the next page, using `next` as scratch. At most 100,000 pages are followed.
 * @return 1 (there is a next page), 0 (the list is complete) or an error
 */
static int next_page(request *r, berth_buf *next, berth_client *c, const char *registry, int *pages)
{
    int rc;

    berth_buf_clear(next);
    if (!r->link || ++*pages > 100000) {
        return 0;
    }
    rc = berth_link_next_parse(next, r->link);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        return 0;
    }
    if (rc < 0 || (rc = absolute_location(&r->url, c, registry, next->ptr)) < 0) {
        return rc;
    }
    return 1;
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
                       uint64_t off, uint64_t n, const void *data, int fd, berth__growing *grow)
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

/* Close an upload session with PUT ?digest=, carrying the last `len` bytes (from memory or a
 * file; none when both are absent). */
static int put_close(berth_client *c, const char *registry, const char *scope, const berth_buf *loc,
                     const berth_digest *d, const void *data, int fd, uint64_t len)
{
    request r;
    int rc;

    request_init(&r, "PUT", scope);
    r.registry = registry;
    r.content_type = "application/octet-stream";
    r.has_body = true;
    if (data || fd < 0) {
        r.body = data ? data : "";
        r.body_len = data ? (size_t)len : 0;
    } else {
        r.fd = fd;
        r.fd_len = len;
    }
    if ((rc = berth_buf_puts(&r.url, loc->ptr)) == 0 &&
        (rc = url_add_query(&r.url, "digest", d->str)) == 0 && (rc = perform(c, &r)) == 0 &&
        r.status != 201) {
        rc = status_error(&r, "PUT");
    }
    request_dispose(&r);
    return rc;
}

static int push_blob(berth_client *c, const char *registry, const char *repo, const berth_digest *d,
                     uint64_t size, const void *data, int fd, const char *mount_from)
{
    berth_buf scope = BERTH_BUF_INIT, loc = BERTH_BUF_INIT;
    bool mounted = false;
    uint64_t off = 0;
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
    if (size > MONOLITHIC_MAX) {
        /* PATCH the bytes in chunks, following the Location each response gives. */
        for (; off < size && rc == 0; off += CHUNK_SIZE) {
            uint64_t n = size - off < CHUNK_SIZE ? size - off : CHUNK_SIZE;
            rc = patch_chunk(c, registry, scope.ptr, &loc, off, n, data, fd, NULL);
        }
        if (rc < 0) {
            goto out;
        }
    }
    rc = off < size ? put_close(c, registry, scope.ptr, &loc, d, data, fd, size)
                    : put_close(c, registry, scope.ptr, &loc, d, NULL, -1, 0);
out:
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
    if (size > 0) {
        /* the whole blob in one PATCH, read from the file as the download writes it */
        rc = patch_chunk(c, registry, scope.ptr, &loc, 0, size, NULL, fd, grow);
    }
    /* commit only what the download verified */
    verdict = berth__growing_verdict(grow);
    if (verdict < 0) {
        rc = verdict;
    }
    if (rc == 0) {
        rc = put_close(c, registry, scope.ptr, &loc, d, NULL, -1, 0);
    }
out:
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
