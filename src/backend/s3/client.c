/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The S3 client of the s3 backend (see client.h): requests built from decoded parts, signed
 * with sigv4.c (so the URL sent is the URL signed), one curl easy handle per thread, bounded
 * retries, and a small bounded reader for the few XML elements S3 answers with.
 */
#define _DEFAULT_SOURCE /* TCP_QUICKACK */
#include "backend/s3/client.h"

#include "backend/s3/sigv4.h"

#include <berth/buf.h>
#include <berth/errors.h>

#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XML_MAX     (8u * 1024u * 1024u) /* a list page of 1000 keys is ~300 KiB */
#define ERRBODY_MAX (64u * 1024u)
#define MAXQ        8
#define MAXH        8
#define POOL_MAX    16 /* idle curl handles kept per client */
/* After a request timed out (the service stalled: a frozen process, a black-holed network),
   requests fail at once for this long, and then one at a time tries the service again, seconds
   (see stall_gate) */
#define STALL_HOLD_S 5

/* Parts and streamed reads move through libcurl in buffers of this size (its default: 16 KiB
 * down, 64 KiB up), bodies of BIG_BODY bytes or more. */
#define BIG_BUFFER (256 * 1024)
#define BIG_BODY   (1024 * 1024)

/* The operations, for berth__s3_count(). */
static const char *const op_names[] = {"AbortMultipartUpload",
                                       "CompleteMultipartUpload",
                                       "CopyObject",
                                       "CreateMultipartUpload",
                                       "DeleteObject",
                                       "GetObject",
                                       "HeadObject",
                                       "ListMultipartUploads",
                                       "ListObjectsV2",
                                       "ListParts",
                                       "PutObject",
                                       "UploadPart",
                                       "UploadPartCopy"};

static int op_index(const char *op)
{
    for (size_t i = 0; op && i < sizeof(op_names) / sizeof(op_names[0]); i++) {
        if (strcmp(op_names[i], op) == 0) {
            return (int)i;
        }
    }
    return -1;
}

struct berth__s3 {
    char *scheme; /* "http" or "https" */
    char *host;   /* host[:port] of the endpoint */
    char *bucket;
    char *region;
    bool path_style;
    long connect_timeout, low_speed_time;
    unsigned retries;
    char list_page[16]; /* "" for the service's default */
    char *access_key, *secret_key, *session_token;
    atomic_bool no_conditional_put;  /* the service answered 501 to If-None-Match: * */
    pthread_mutex_t pool_mu;         /* guards pool */
    CURL *pool[POOL_MAX];            /* idle handles, each with its connection cache */
    curl_socket_t pool_fd[POOL_MAX]; /* the socket of each one's connection (see ack_now) */
    size_t npool;
    atomic_ullong counts[sizeof(op_names) / sizeof(op_names[0])]; /* requests per operation */
    _Atomic int64_t stalled_until; /* 0: answering; else when a request may try again */
    atomic_bool probing;           /* a request is trying a stalled service */
};

/* ---- curl handles: a pool per client ------------------------------------------------------ */

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURL_LAST;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* A handle for one request: the last one given back (its connections still open), else new. */
static CURL *take_handle(berth__s3 *c, curl_socket_t *fd)
{
    CURL *h = NULL;
    *fd = CURL_SOCKET_BAD;
    pthread_mutex_lock(&c->pool_mu);
    if (c->npool) {
        h = c->pool[--c->npool];
        *fd = c->pool_fd[c->npool];
    }
    pthread_mutex_unlock(&c->pool_mu);
    if (h) {
        curl_easy_reset(h); /* keeps the connection cache */
        return h;
    }
    return curl_easy_init();
}

static void give_handle(berth__s3 *c, CURL *h, curl_socket_t fd)
{
    if (!h) {
        return;
    }
    pthread_mutex_lock(&c->pool_mu);
    if (c->npool < POOL_MAX) {
        c->pool_fd[c->npool] = fd;
        c->pool[c->npool++] = h;
        h = NULL;
    }
    pthread_mutex_unlock(&c->pool_mu);
    curl_easy_cleanup(h);
}

/* ---- small helpers ------------------------------------------------------------------------ */

static char *dup_range(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static bool ieq_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char a = s[i], b = prefix[i];
        if (a >= 'A' && a <= 'Z') {
            a = (char)(a - 'A' + 'a');
        }
        if (a != b) {
            return false;
        }
    }
    return true;
}

/* Days since 1970-01-01 of a civil date (H. Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* "2026-11-30T03:50:00.000Z" (XML) -> Unix seconds; 0 when unreadable. */
static int64_t parse_iso8601(const char *s)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 19 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &se) || mo < 1 || mo > 12 || d < 1) {
        return 0;
    }
    return days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
}

/* "Mon, 30 Nov 2026 03:50:00 GMT" (Last-Modified) -> Unix seconds; 0 when unreadable. */
static int64_t parse_http_date(const char *s, size_t len)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int d, y, h, mi, se;
    unsigned mo = 0;
    if (len < 29 || s[3] != ',' || !digits(s + 5, 2, &d) || !digits(s + 12, 4, &y) ||
        !digits(s + 17, 2, &h) || !digits(s + 20, 2, &mi) || !digits(s + 23, 2, &se)) {
        return 0;
    }
    for (unsigned i = 0; i < 12; i++) {
        if (memcmp(s + 8, months + 3 * i, 3) == 0) {
            mo = i + 1;
        }
    }
    if (mo == 0 || d < 1) {
        return 0;
    }
    return days_from_civil(y, mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se;
}

/* An ETag as S3 gives it in a header ("\"hex\"") whether it came quoted or not (RGW answers
 * UploadPartCopy without the quotes). Takes `e`. */
static char *quoted_etag(char *e)
{
    size_t n;
    char *q;
    if (!e || (e[0] == '"' && (n = strlen(e)) >= 2 && e[n - 1] == '"')) {
        return e;
    }
    n = strlen(e);
    q = malloc(n + 3);
    if (q) {
        q[0] = '"';
        memcpy(q + 1, e, n);
        q[n + 1] = '"';
        q[n + 2] = '\0';
    }
    free(e);
    return q;
}

/* ---- XML: the few leaf elements S3 answers with --------------------------------------------- */

/*
 * Find the next element <tag>...</tag> in [*pos, end) and give its inner text range. No
 * attributes are expected on the elements read; nested elements are returned raw (for
 * containers such as <Contents>). @return true when found (and *pos moves past it)
 */
static bool xml_next(const char **pos, const char *end, const char *tag, const char **vs,
                     const char **ve)
{
    char open[64], close[64];
    size_t tl = strlen(tag);
    const char *p = *pos;
    if (tl + 3 >= sizeof(open)) {
        return false;
    }
    snprintf(open, sizeof(open), "<%s>", tag);
    snprintf(close, sizeof(close), "</%s>", tag);
    size_t ol = tl + 2, cl = tl + 3;
    while (p + ol <= end) {
        const char *a = memchr(p, '<', (size_t)(end - p));
        if (!a || a + ol > end) {
            return false;
        }
        if (memcmp(a, open, ol) != 0) {
            p = a + 1;
            continue;
        }
        const char *s = a + ol;
        for (const char *q = s; q + cl <= end; q++) {
            q = memchr(q, '<', (size_t)(end - q));
            if (!q || q + cl > end) {
                return false;
            }
            if (memcmp(q, close, cl) == 0) {
                *vs = s;
                *ve = q;
                *pos = q + cl;
                return true;
            }
        }
        return false;
    }
    return false;
}

/* The text of [s, e) with XML's five entities and numeric references (ASCII) decoded. */
static char *xml_text(const char *s, const char *e)
{
    static const struct {
        const char *ent;
        char c;
    } ents[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
    char *out = malloc((size_t)(e - s) + 1), *o = out;
    if (!out) {
        return NULL;
    }
    while (s < e) {
        bool done = false;
        if (*s == '&') {
            for (size_t i = 0; i < sizeof(ents) / sizeof(ents[0]) && !done; i++) {
                size_t n = strlen(ents[i].ent);
                if ((size_t)(e - s) >= n && memcmp(s, ents[i].ent, n) == 0) {
                    *o++ = ents[i].c;
                    s += n;
                    done = true;
                }
            }
            if (!done && e - s >= 4 && s[1] == '#') {
                const char *semi = memchr(s, ';', (size_t)(e - s));
                int v = 0;
                if (semi && semi - s <= 5 && digits(s + 2, (int)(semi - s - 2), &v) && v > 0 &&
                    v < 128) {
                    *o++ = (char)v;
                    s = semi + 1;
                    done = true;
                }
            }
        }
        if (!done) {
            *o++ = *s++;
        }
    }
    *o = '\0';
    return out;
}

/* The decoded text of the first <tag> in [s, e), or NULL (absent or out of memory). */
static char *xml_get(const char *s, const char *e, const char *tag)
{
    const char *p = s, *vs, *ve;
    return xml_next(&p, e, tag, &vs, &ve) ? xml_text(vs, ve) : NULL;
}

static int xml_escape(berth_buf *b, const char *s)
{
    int rc = 0;
    for (; rc == 0 && *s; s++) {
        switch (*s) {
        case '&':
            rc = berth_buf_puts(b, "&amp;");
            break;
        case '<':
            rc = berth_buf_puts(b, "&lt;");
            break;
        case '>':
            rc = berth_buf_puts(b, "&gt;");
            break;
        case '"':
            rc = berth_buf_puts(b, "&quot;");
            break;
        default:
            rc = berth_buf_put(b, s, 1);
        }
    }
    return rc;
}

/* ---- one request ------------------------------------------------------------------------- */

typedef struct s3_req {
    CURL *h;
    curl_socket_t fd; /* the socket of the handle's connection, as last opened */
    const char *op;   /* "GetObject": for messages */
    const char *method;
    const char *key; /* NULL: the bucket */
    berth__sigv4_pair query[MAXQ];
    size_t nquery;
    berth__sigv4_pair headers[MAXH]; /* extra headers, all signed */
    size_t nheaders;
    const void *body;
    size_t body_len;
    berth__s3_body_cb body_cb; /* a PUT body pulled as it comes (instead of `body`) */
    void *body_payload;
    bool sign_body; /* hash the body into x-amz-content-sha256 (else UNSIGNED-PAYLOAD) */
    bool safe;      /* may be repeated */
    long silence;   /* seconds the service may send nothing (0: the client's low-speed time) */

    berth_blob_sink sink; /* 2xx body, when set */
    void *sink_payload;
    berth_buf *xml; /* 2xx body, when set (bounded) */

    /* per attempt */
    long status;
    size_t body_off;
    uint64_t delivered; /* bytes given to the sink */
    int sink_rc;
    bool overflow;
    berth_buf err; /* error body (bounded) */
    char *etag;
    uint64_t content_length;
    bool have_length;
    int64_t last_modified;
    bool timed_out; /* the last attempt gave up on a service that did not answer */
} s3_req;

/*
 * Acknowledge what the socket has received now, not after the delayed-ACK timer: a service
 * that writes a response's headers and its body separately without TCP_NODELAY (Ceph RGW's
 * beast frontend by default) holds the body back under Nagle's algorithm until the headers
 * are acknowledged, and the client's delayed ACK then costs 40 ms a response (measured: a
 * ListParts took 43 ms instead of 2). Called on the status line of each response.
 */
static void ack_now(curl_socket_t fd)
{
#ifdef TCP_QUICKACK
    int one = 1;
    if (fd != CURL_SOCKET_BAD) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
#else
    (void)fd;
#endif
}

/* A new connection's socket: remembered, for ack_now (curl_easy_reset() forgets it). */
static int on_socket(void *p, curl_socket_t fd, curlsocktype purpose)
{
    s3_req *r = p;
    if (purpose == CURLSOCKTYPE_IPCXN) {
        r->fd = fd;
    }
    return CURL_SOCKOPT_OK;
}

static size_t on_header(char *data, size_t size, size_t n, void *p)
{
    s3_req *r = p;
    size_t len = size * n;
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        ack_now(r->fd);
        /* a new response (after 100 Continue or a redirect): forget the last one */
        free(r->etag);
        r->etag = NULL;
        r->have_length = false;
        r->last_modified = 0;
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (!colon) {
        return len;
    }
    const char *v = colon + 1, *e = data + len;
    while (v < e && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' ')) {
        e--;
    }
    size_t nl = (size_t)(colon - data);
    if (nl == 4 && ieq_prefix(data, nl, "etag")) {
        free(r->etag);
        r->etag = dup_range(v, (size_t)(e - v));
    } else if (nl == 14 && ieq_prefix(data, nl, "content-length")) {
        uint64_t cl;
        if (berth_parse_u64(&cl, v, (size_t)(e - v), UINT64_MAX) == 0) {
            r->content_length = cl;
            r->have_length = true;
        }
        berth_error_clear();
    } else if (nl == 13 && ieq_prefix(data, nl, "last-modified")) {
        r->last_modified = parse_http_date(v, (size_t)(e - v));
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *p)
{
    s3_req *r = p;
    size_t len = size * n;
    if (r->status == 0) {
        curl_easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
    }
    if (r->status >= 200 && r->status < 300) {
        if (r->sink) {
            int rc = r->sink(data, len, r->sink_payload);
            if (rc != 0) {
                r->sink_rc = rc;
                return 0;
            }
            r->delivered += len;
            return len;
        }
        if (r->xml) {
            if (berth_buf_put(r->xml, data, len) != 0) {
                r->overflow = true;
                return 0;
            }
        }
        return len;
    }
    if (berth_buf_put(&r->err, data, len) != 0) {
        berth_error_clear();
    }
    return len;
}

static size_t on_read(char *out, size_t size, size_t n, void *p)
{
    s3_req *r = p;
    size_t want = size * n, left = r->body_len - r->body_off;
    if (want > left) {
        want = left;
    }
    if (want && r->body_cb) {
        want = r->body_cb(out, want, r->body_payload);
        if (want == 0) {
            return CURL_READFUNC_ABORT;
        }
        r->body_off += want;
    } else if (want) {
        memcpy(out, (const char *)r->body + r->body_off, want);
        r->body_off += want;
    }
    return want;
}

/* The Host header and the request path (decoded) of `key`. */
static int target(const berth__s3 *c, const char *key, berth_buf *host, berth_buf *path)
{
    int rc;
    if (c->path_style) {
        rc = berth_buf_puts(host, c->host);
        if (rc == 0) {
            rc = berth_buf_printf(path, "/%s%s%s", c->bucket, key ? "/" : "", key ? key : "");
        }
    } else {
        rc = berth_buf_printf(host, "%s.%s", c->bucket, c->host);
        if (rc == 0) {
            rc = berth_buf_printf(path, "/%s", key ? key : "");
        }
    }
    return rc;
}

static bool network_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return true;
    default:
        return false;
    }
}

/* The error of a finished non-2xx attempt. */
static int status_error(s3_req *r)
{
    const char *b = r->err.ptr ? r->err.ptr : "";
    char *code = xml_get(b, b + r->err.len, "Code");
    const char *cs = code ? code : "";
    int rc;
    if (r->status == 404) {
        rc = berth_error_set(BERTH_ENOTFOUND, "s3: %s: not found (%s)", r->op, code ? cs : "404");
    } else if (r->status == 412) {
        rc = berth_error_set(BERTH_EEXISTS, "s3: %s: precondition failed", r->op);
    } else if (r->status == 416) {
        rc = berth_error_set(BERTH_ERANGE, "s3: %s: range not satisfiable", r->op);
    } else if (r->status == 507 || strcmp(cs, "QuotaExceeded") == 0 ||
               strcmp(cs, "EntityTooLarge") == 0) {
        rc = berth_error_set(BERTH_ENOSPACE, "s3: %s: no space (%s)", r->op, code ? cs : "507");
    } else if (r->status >= 500) {
        rc = berth_error_set(BERTH_ENETWORK, "s3: %s: service unavailable (HTTP %ld %s)", r->op,
                             r->status, cs);
    } else if (strcmp(cs, "InvalidPart") == 0 || strcmp(cs, "InvalidPartOrder") == 0 ||
               strcmp(cs, "EntityTooSmall") == 0) {
        rc = berth_error_set(BERTH_EINVALID, "s3: %s: refused (%s)", r->op, cs);
    } else {
        rc = berth_error_set(BERTH_EIO, "s3: %s: HTTP %ld %s", r->op, r->status, cs);
    }
    free(code);
    return rc;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static int attempt(berth__s3 *c, s3_req *r, bool *retry)
{
    CURL *h = take_handle(c, &r->fd);
    berth_buf host = BERTH_BUF_INIT, path = BERTH_BUF_INIT, url = BERTH_BUF_INIT;
    berth_buf auth = BERTH_BUF_INIT, line = BERTH_BUF_INIT;
    struct curl_slist *hl = NULL;
    berth__sigv4_pair sh[MAXH + 4];
    char date[17], hash[65], errbuf[CURL_ERROR_SIZE] = "";
    size_t nh = 0;
    int rc = 0;

    r->timed_out = false;
    *retry = false;
    r->status = 0;
    r->body_off = 0;
    r->sink_rc = 0;
    r->overflow = false;
    r->have_length = false;
    r->last_modified = 0;
    free(r->etag);
    r->etag = NULL;
    berth_buf_clear(&r->err);
    if (r->xml) {
        berth_buf_clear(r->xml);
    }
    if (!h) {
        return berth_error_set(BERTH_ENOMEM, "s3: cannot initialise libcurl");
    }
    r->h = h;

    rc = target(c, r->key, &host, &path);
    if (rc == 0) {
        rc = berth_buf_printf(&url, "%s://%s", c->scheme, berth_buf_cstr(&host));
    }
    if (rc == 0) {
        rc = berth__sigv4_uri_encode(&url, path.ptr, path.len, true);
    }
    if (rc == 0 && r->nquery) {
        rc = berth_buf_put(&url, "?", 1);
        if (rc == 0) {
            rc = berth__sigv4_query(&url, r->query, r->nquery);
        }
    }
    if (rc != 0) {
        goto out;
    }
    berth__sigv4_date(date, time(NULL));
    if (r->sign_body || r->body_len == 0) {
        rc = berth__sigv4_sha256_hex(hash, r->body ? r->body : "", r->body_len);
        if (rc != 0) {
            goto out;
        }
    } else {
        snprintf(hash, sizeof(hash), "%s", BERTH_SIGV4_UNSIGNED);
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        sh[nh++] = r->headers[i];
    }
    sh[nh++] = (berth__sigv4_pair){"host", berth_buf_cstr(&host)};
    sh[nh++] = (berth__sigv4_pair){"x-amz-date", date};
    sh[nh++] = (berth__sigv4_pair){"x-amz-content-sha256", hash};
    if (c->session_token) {
        sh[nh++] = (berth__sigv4_pair){"x-amz-security-token", c->session_token};
    }
    {
        berth__sigv4_creds cr = {c->access_key, c->secret_key, c->session_token};
        berth__sigv4_request sr = {r->method, berth_buf_cstr(&path), r->query, r->nquery, sh, nh,
                                   hash};
        rc = berth__sigv4_authorization(&auth, &sr, date, c->region, "s3", &cr);
    }
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        berth_buf_clear(&line);
        rc = berth_buf_printf(&line, "%s: %s", sh[i].name, sh[i].value);
        struct curl_slist *t = rc == 0 ? curl_slist_append(hl, berth_buf_cstr(&line)) : NULL;
        if (rc == 0 && !t) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
        hl = t ? t : hl;
    }
    if (rc == 0) {
        berth_buf_clear(&line);
        rc = berth_buf_printf(&line, "Authorization: %s", berth_buf_cstr(&auth));
    }
    if (rc == 0) {
        const char *extra[] = {berth_buf_cstr(&line), "Expect:", "Accept:", NULL, NULL};
        if (strcmp(r->method, "POST") == 0 || strcmp(r->method, "PUT") == 0) {
            extra[3] = "Content-Type:";
            for (size_t i = 0; i < r->nheaders; i++) {
                if (ieq_prefix(r->headers[i].name, strlen(r->headers[i].name), "content-type")) {
                    extra[3] = NULL;
                }
            }
        }
        for (size_t i = 0; rc == 0 && extra[i]; i++) {
            struct curl_slist *t = curl_slist_append(hl, extra[i]);
            if (!t) {
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            }
            hl = t ? t : hl;
        }
    }
    if (rc != 0) {
        goto out;
    }

    curl_easy_setopt(h, CURLOPT_URL, url.ptr);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, c->connect_timeout);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME,
                     r->silence > c->low_speed_time ? r->silence : c->low_speed_time);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "berth/" BERTH_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_socket);
    curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    if (r->sink) {
        /* bodies of any size come through the sink: fewer, larger reads and callbacks */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, (long)BIG_BUFFER);
    }
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    if (strcmp(r->method, "HEAD") == 0) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "PUT") == 0) {
        if (r->body_len >= BIG_BODY) {
            curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, (long)BIG_BUFFER);
        }
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "POST") == 0) {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    } else if (strcmp(r->method, "GET") != 0) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }

    CURLcode cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    r->timed_out = cc == CURLE_OPERATION_TIMEDOUT;
    if (r->sink_rc != 0) {
        rc = r->sink_rc;
    } else if (r->overflow) {
        rc = berth_error_set(BERTH_EIO, "s3: %s: response too large", r->op);
    } else if (cc != CURLE_OK) {
        bool net = network_error(cc);
        rc = berth_error_set(net ? BERTH_ENETWORK : BERTH_EIO, "s3: %s: %s", r->op,
                             curl_easy_strerror(cc));
        /* a timeout is not retried: a service that stalls once stalls again, and the caller
         * should hear of it in seconds, not minutes */
        *retry = net && cc != CURLE_OPERATION_TIMEDOUT && r->safe && r->delivered == 0;
    } else if (r->status < 200 || r->status >= 300) {
        rc = status_error(r);
        *retry = r->status >= 500 && r->safe && r->delivered == 0;
    } else if (r->err.len == 0 && r->xml && r->xml->len && strstr(r->xml->ptr, "<Error>")) {
        /* CopyObject and CompleteMultipartUpload may fail after a 200 */
        berth_buf_put(&r->err, r->xml->ptr, r->xml->len);
        r->status = 500;
        rc = status_error(r);
        *retry = r->safe;
    }
out:
    curl_slist_free_all(hl);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    berth_buf_dispose(&host);
    berth_buf_dispose(&path);
    berth_buf_dispose(&url);
    berth_buf_dispose(&auth);
    berth_buf_dispose(&line);
    give_handle(c, h, r->fd);
    return rc;
}

/*
 * A stalled service costs one timeout, not one per request: after a request timed out, others
 * fail at once (BERTH_ENETWORK: the server answers 503) for STALL_HOLD_S seconds; then one
 * request at a time (`*probe`) tries the service, the others still failing at once, until one
 * gets an answer (any answer, or a refused connection) and the service counts as answering.
 */
static int stall_gate(berth__s3 *c, const s3_req *r, bool *probe)
{
    int64_t until = atomic_load(&c->stalled_until);
    *probe = false;
    if (until == 0) {
        return 0;
    }
    if ((int64_t)time(NULL) >= until && !atomic_exchange(&c->probing, true)) {
        *probe = true;
        return 0;
    }
    return berth_error_set(BERTH_ENETWORK, "s3: %s: the service did not answer a moment ago",
                           r->op);
}

static void stall_note(berth__s3 *c, const s3_req *r, bool probe)
{
    if (r->timed_out) {
        atomic_store(&c->stalled_until, (int64_t)time(NULL) + STALL_HOLD_S);
    } else {
        atomic_store(&c->stalled_until, 0);
    }
    if (probe) {
        atomic_store(&c->probing, false);
    }
}

static int perform(berth__s3 *c, s3_req *r)
{
    unsigned delay = 100;
    int rc;
    bool retry = false, probe;
    int op = op_index(r->op);
    if ((rc = stall_gate(c, r, &probe)) < 0) {
        return rc;
    }
    if (op >= 0) {
        atomic_fetch_add(&c->counts[op], 1);
    }
    r->err.max = ERRBODY_MAX;
    for (unsigned i = 0;; i++) {
        rc = attempt(c, r, &retry);
        if (rc == 0 || !retry || i >= c->retries) {
            break;
        }
        sleep_ms(delay);
        delay = delay < 3200 ? delay * 2 : delay;
    }
    stall_note(c, r, probe);
    berth_buf_dispose(&r->err);
    return rc;
}

static void req_done(s3_req *r)
{
    free(r->etag);
    r->etag = NULL;
}

/* ---- the client ------------------------------------------------------------------------ */

static char *trim_dup(const char *s, size_t n)
{
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        n--;
    }
    return dup_range(s, n);
}

/* aws_access_key_id & co. of [profile] in the shared credentials file. */
static int read_credentials_file(berth__s3 *c)
{
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE");
    const char *profile = getenv("AWS_PROFILE");
    berth_buf path = BERTH_BUF_INIT;
    char line[4096];
    bool in = false;
    FILE *f = NULL;

    if (!profile || !*profile) {
        profile = "default";
    }
    if (!file || !*file) {
        const char *home = getenv("HOME");
        if (!home || !*home || berth_buf_printf(&path, "%s/.aws/credentials", home) != 0) {
            berth_buf_dispose(&path);
            return 0;
        }
        file = path.ptr;
    }
    f = fopen(file, "r");
    berth_buf_dispose(&path);
    if (!f) {
        return 0;
    }
    while (fgets(line, sizeof(line), f)) {
        char *s = line;
        while (*s == ' ' || *s == '\t') {
            s++;
        }
        if (*s == '#' || *s == ';' || *s == '\n' || *s == '\0') {
            continue;
        }
        if (*s == '[') {
            char *e = strchr(s, ']');
            char *name = e ? trim_dup(s + 1, (size_t)(e - s - 1)) : NULL;
            in = name && strcmp(name, profile) == 0;
            free(name);
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq) {
            continue;
        }
        char *k = trim_dup(s, (size_t)(eq - s)), *v = trim_dup(eq + 1, strlen(eq + 1));
        char **slot = NULL;
        if (k && strcmp(k, "aws_access_key_id") == 0) {
            slot = &c->access_key;
        } else if (k && strcmp(k, "aws_secret_access_key") == 0) {
            slot = &c->secret_key;
        } else if (k && strcmp(k, "aws_session_token") == 0) {
            slot = &c->session_token;
        }
        if (slot && v) {
            free(*slot);
            *slot = v;
            v = NULL;
        }
        free(k);
        free(v);
    }
    fclose(f);
    return 0;
}

/* Split "scheme://host[:port][/]" into scheme and host. */
static int parse_endpoint(const char *ep, char **scheme, char **host)
{
    const char *h;
    size_t n;
    if (!ep) {
        return berth_error_set(BERTH_EINVALID, "s3: no endpoint");
    }
    if (strncmp(ep, "http://", 7) == 0) {
        *scheme = strdup("http");
        h = ep + 7;
    } else if (strncmp(ep, "https://", 8) == 0) {
        *scheme = strdup("https");
        h = ep + 8;
    } else {
        return berth_error_set(BERTH_EINVALID, "s3: the endpoint is not an http(s) URL");
    }
    n = strcspn(h, "/?#");
    if (n == 0 || (h[n] && !(h[n] == '/' && h[n + 1] == '\0')) || memchr(h, '@', n)) {
        free(*scheme);
        *scheme = NULL;
        return berth_error_set(BERTH_EINVALID, "s3: the endpoint must be scheme://host[:port]");
    }
    *host = dup_range(h, n);
    if (!*scheme || !*host) {
        free(*scheme);
        free(*host);
        *scheme = *host = NULL;
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    return 0;
}

void berth__s3_free(berth__s3 *c)
{
    if (!c) {
        return;
    }
    free(c->scheme);
    free(c->host);
    free(c->bucket);
    free(c->region);
    free(c->access_key);
    if (c->secret_key) {
        memset(c->secret_key, 0, strlen(c->secret_key));
    }
    free(c->secret_key);
    free(c->session_token);
    for (size_t i = 0; i < c->npool; i++) {
        curl_easy_cleanup(c->pool[i]);
    }
    pthread_mutex_destroy(&c->pool_mu);
    free(c);
}

static char *env_dup(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? strdup(v) : NULL;
}

int berth__s3_new(berth__s3 **out, const berth__s3_config *cfg)
{
    berth__s3 *c;
    int rc;
    *out = NULL;
    if (!cfg || !cfg->bucket || !*cfg->bucket || strchr(cfg->bucket, '/')) {
        return berth_error_set(BERTH_EINVALID, "s3: a bucket name is required");
    }
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        return berth_error_set(BERTH_ERROR, "s3: cannot initialise libcurl");
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    pthread_mutex_init(&c->pool_mu, NULL);
    atomic_init(&c->stalled_until, 0);
    atomic_init(&c->probing, false);
    atomic_init(&c->no_conditional_put, false);
    rc = parse_endpoint(cfg->endpoint, &c->scheme, &c->host);
    if (rc != 0) {
        goto out;
    }
    c->bucket = strdup(cfg->bucket);
    c->region = strdup(cfg->region && *cfg->region ? cfg->region : "us-east-1");
    c->path_style = cfg->path_style;
    c->connect_timeout = cfg->connect_timeout_s ? (long)cfg->connect_timeout_s : 5L;
    c->low_speed_time = cfg->low_speed_time_s ? (long)cfg->low_speed_time_s : 30L;
    c->retries = cfg->retries;
    if (cfg->list_page) {
        snprintf(c->list_page, sizeof(c->list_page), "%u", cfg->list_page);
    }
    if (!c->bucket || !c->region) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    c->access_key = env_dup("AWS_ACCESS_KEY_ID");
    c->secret_key = env_dup("AWS_SECRET_ACCESS_KEY");
    if (c->access_key && c->secret_key) {
        c->session_token = env_dup("AWS_SESSION_TOKEN");
    } else {
        free(c->access_key);
        free(c->secret_key);
        c->access_key = c->secret_key = NULL;
        read_credentials_file(c);
    }
    if (!c->access_key || !c->secret_key) {
        rc = berth_error_set(BERTH_EUNAUTHORIZED,
                             "s3: no credentials (set AWS_ACCESS_KEY_ID and "
                             "AWS_SECRET_ACCESS_KEY, or a shared credentials file)");
        goto out;
    }
out:
    if (rc != 0) {
        berth__s3_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- operations -------------------------------------------------------------------------- */

int berth__s3_head(berth__s3 *c, const char *key, berth__s3_stat *out)
{
    s3_req r = {.op = "HeadObject", .method = "HEAD", .key = key, .safe = true};
    int rc = perform(c, &r);
    if (rc == 0) {
        out->size = r.have_length ? r.content_length : 0;
        out->mtime = r.last_modified;
    }
    req_done(&r);
    return rc;
}

int berth__s3_get(berth__s3 *c, const char *key, uint64_t offset, uint64_t len,
                  berth_blob_sink sink, void *payload)
{
    s3_req r = {.op = "GetObject",
                .method = "GET",
                .key = key,
                .safe = true,
                .sink = sink,
                .sink_payload = payload};
    char range[64];
    int rc;
    if (len == 0) {
        return 0;
    }
    if (offset != 0 || len != UINT64_MAX) {
        if (len == UINT64_MAX || offset + len < offset) {
            snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)offset);
        } else {
            snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)offset,
                     (unsigned long long)(offset + len - 1));
        }
        r.headers[r.nheaders++] = (berth__sigv4_pair){"range", range};
    }
    rc = perform(c, &r);
    req_done(&r);
    return rc;
}

int berth__s3_put(berth__s3 *c, const char *key, const void *data, size_t len, bool if_none_match)
{
    bool cond = if_none_match && !atomic_load(&c->no_conditional_put);
    s3_req r = {.op = "PutObject",
                .method = "PUT",
                .key = key,
                .body = data,
                .body_len = len,
                .safe = !cond};
    int rc;
    if (cond) {
        r.headers[r.nheaders++] = (berth__sigv4_pair){"if-none-match", "*"};
    }
    if (if_none_match && !cond) {
        goto check_then_put;
    }
    rc = perform(c, &r);
    if (!(cond && rc != 0 && r.status == 501)) {
        req_done(&r);
        return rc;
    }
    /* 501: a service without conditional writes (OpenStack Swift's s3api answers
     * NotImplemented): a HEAD, then an unconditional PUT, from now on */
    berth_error_clear();
    atomic_store(&c->no_conditional_put, true);
check_then_put:
    req_done(&r);
    berth__s3_stat st;
    rc = berth__s3_head(c, key, &st);
    if (rc == 0) {
        return berth_error_set(BERTH_EEXISTS, "s3: PutObject: the key exists");
    }
    if (rc != BERTH_ENOTFOUND) {
        return rc;
    }
    berth_error_clear();
    return berth__s3_put(c, key, data, len, false);
}

int berth__s3_delete(berth__s3 *c, const char *key)
{
    s3_req r = {.op = "DeleteObject", .method = "DELETE", .key = key, .safe = true};
    int rc = perform(c, &r);
    req_done(&r);
    if (rc == BERTH_ENOTFOUND) {
        berth_error_clear();
        rc = 0;
    }
    return rc;
}

/* "/bucket/key" encoded, for x-amz-copy-source. */
static int copy_source(berth__s3 *c, berth_buf *out, const char *src)
{
    int rc = berth_buf_put(out, "/", 1);
    if (rc == 0) {
        rc = berth__sigv4_uri_encode(out, c->bucket, strlen(c->bucket), false);
    }
    if (rc == 0) {
        rc = berth_buf_put(out, "/", 1);
    }
    if (rc == 0) {
        rc = berth__sigv4_uri_encode(out, src, strlen(src), true);
    }
    return rc;
}

/* The silence a server-side copy of `bytes` may keep: it answers when done, and Swift's s3api
 * sends nothing meanwhile (RGW sends whitespace): the low-speed time plus the bytes at
 * COPY_RATE. */
#define COPY_RATE (16u * 1024u * 1024u)
static long copy_silence(const berth__s3 *c, uint64_t bytes)
{
    return c->low_speed_time + (long)(bytes / COPY_RATE);
}

int berth__s3_copy(berth__s3 *c, const char *dst, const char *src)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(ERRBODY_MAX), cs = BERTH_BUF_INIT;
    s3_req r = {.op = "CopyObject", .method = "PUT", .key = dst, .safe = true, .xml = &xml};
    berth__s3_stat st;
    int rc = berth__s3_head(c, src, &st); /* its size: how long the copy may be silent */
    if (rc == 0) {
        r.silence = copy_silence(c, st.size);
        rc = copy_source(c, &cs, src);
    }
    if (rc == 0) {
        r.headers[r.nheaders++] = (berth__sigv4_pair){"x-amz-copy-source", cs.ptr};
        rc = perform(c, &r);
    }
    req_done(&r);
    berth_buf_dispose(&xml);
    berth_buf_dispose(&cs);
    return rc;
}

int berth__s3_mpu_create(berth__s3 *c, const char *key, char **upload_id_out)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(ERRBODY_MAX);
    s3_req r = {.op = "CreateMultipartUpload", .method = "POST", .key = key, .xml = &xml};
    int rc;
    r.query[r.nquery++] = (berth__sigv4_pair){"uploads", ""};
    *upload_id_out = NULL;
    rc = perform(c, &r);
    if (rc == 0) {
        *upload_id_out =
            xml_get(xml.ptr ? xml.ptr : "", (xml.ptr ? xml.ptr : "") + xml.len, "UploadId");
        if (!*upload_id_out || !**upload_id_out) {
            free(*upload_id_out);
            *upload_id_out = NULL;
            rc = berth_error_set(BERTH_EIO, "s3: CreateMultipartUpload: no upload id");
        }
    }
    req_done(&r);
    berth_buf_dispose(&xml);
    return rc;
}

static int upload_part(berth__s3 *c, s3_req *rq, const char *upload_id, unsigned number,
                       char **etag_out);

int berth__s3_mpu_part(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                       const void *data, size_t len, char **etag_out)
{
    s3_req r = {.op = "UploadPart",
                .method = "PUT",
                .key = key,
                .body = data,
                .body_len = len,
                .safe = true};
    return upload_part(c, &r, upload_id, number, etag_out);
}

int berth__s3_mpu_part_stream(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                              size_t len, berth__s3_body_cb body, void *payload, char **etag_out)
{
    s3_req r = {.op = "UploadPart",
                .method = "PUT",
                .key = key,
                .body_len = len,
                .body_cb = body,
                .body_payload = payload,
                .safe = false}; /* the bytes cannot be asked for again */
    return upload_part(c, &r, upload_id, number, etag_out);
}

static int upload_part(berth__s3 *c, s3_req *rq, const char *upload_id, unsigned number,
                       char **etag_out)
{
    s3_req r = *rq;
    char num[16];
    int rc;
    snprintf(num, sizeof(num), "%u", number);
    r.query[r.nquery++] = (berth__sigv4_pair){"partNumber", num};
    r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
    *etag_out = NULL;
    rc = perform(c, &r);
    if (rc == 0) {
        if (!r.etag || !*r.etag) {
            rc = berth_error_set(BERTH_EIO, "s3: UploadPart: no ETag");
        } else {
            *etag_out = quoted_etag(r.etag);
            r.etag = NULL;
            if (!*etag_out) {
                rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            }
        }
    }
    req_done(&r);
    return rc;
}

int berth__s3_mpu_part_copy(berth__s3 *c, const char *key, const char *upload_id, unsigned number,
                            const char *src, uint64_t offset, uint64_t len, char **etag_out)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(ERRBODY_MAX), cs = BERTH_BUF_INIT;
    s3_req r = {.op = "UploadPartCopy", .method = "PUT", .key = key, .safe = true, .xml = &xml};
    char num[16], range[64];
    int rc;
    *etag_out = NULL;
    if (len == 0) {
        return berth_error_set(BERTH_EINVALID, "s3: UploadPartCopy: empty range");
    }
    snprintf(num, sizeof(num), "%u", number);
    snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)offset,
             (unsigned long long)(offset + len - 1));
    r.query[r.nquery++] = (berth__sigv4_pair){"partNumber", num};
    r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
    r.silence = copy_silence(c, len);
    rc = copy_source(c, &cs, src);
    if (rc == 0) {
        r.headers[r.nheaders++] = (berth__sigv4_pair){"x-amz-copy-source", cs.ptr};
        r.headers[r.nheaders++] = (berth__sigv4_pair){"x-amz-copy-source-range", range};
        rc = perform(c, &r);
    }
    if (rc == 0) {
        *etag_out = quoted_etag(
            xml_get(xml.ptr ? xml.ptr : "", (xml.ptr ? xml.ptr : "") + xml.len, "ETag"));
        if (!*etag_out) {
            rc = berth_error_set(BERTH_EIO, "s3: UploadPartCopy: no ETag");
        }
    }
    req_done(&r);
    berth_buf_dispose(&xml);
    berth_buf_dispose(&cs);
    return rc;
}

int berth__s3_mpu_complete(berth__s3 *c, const char *key, const char *upload_id,
                           const berth__s3_part *parts, size_t nparts)
{
    berth_buf body = BERTH_BUF_INIT, xml = BERTH_BUF_INIT_MAX(ERRBODY_MAX);
    s3_req r = {.op = "CompleteMultipartUpload",
                .method = "POST",
                .key = key,
                .sign_body = true,
                .safe = true,
                .xml = &xml};
    int rc = berth_buf_puts(&body, "<CompleteMultipartUpload>");
    for (size_t i = 0; rc == 0 && i < nparts; i++) {
        rc = berth_buf_printf(&body, "<Part><PartNumber>%u</PartNumber><ETag>", parts[i].number);
        if (rc == 0) {
            rc = xml_escape(&body, parts[i].etag);
        }
        if (rc == 0) {
            rc = berth_buf_puts(&body, "</ETag></Part>");
        }
    }
    if (rc == 0) {
        rc = berth_buf_puts(&body, "</CompleteMultipartUpload>");
    }
    if (rc == 0) {
        r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
        r.headers[r.nheaders++] = (berth__sigv4_pair){"content-type", "application/xml"};
        r.body = body.ptr;
        r.body_len = body.len;
        rc = perform(c, &r);
    }
    req_done(&r);
    berth_buf_dispose(&body);
    berth_buf_dispose(&xml);
    return rc;
}

int berth__s3_mpu_abort(berth__s3 *c, const char *key, const char *upload_id)
{
    s3_req r = {.op = "AbortMultipartUpload", .method = "DELETE", .key = key, .safe = true};
    int rc;
    r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
    rc = perform(c, &r);
    req_done(&r);
    return rc;
}

int berth__s3_mpu_exists(berth__s3 *c, const char *key, const char *upload_id)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(XML_MAX);
    s3_req r = {.op = "ListParts", .method = "GET", .key = key, .safe = true, .xml = &xml};
    int rc;
    r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
    r.query[r.nquery++] = (berth__sigv4_pair){"max-parts", "1"};
    rc = perform(c, &r);
    req_done(&r);
    berth_buf_dispose(&xml);
    return rc;
}

static bool truncated(const char *s, const char *e)
{
    char *t = xml_get(s, e, "IsTruncated");
    bool yes = t && strcmp(t, "true") == 0;
    free(t);
    return yes;
}

int berth__s3_mpu_parts(berth__s3 *c, const char *key, const char *upload_id, berth__s3_part_cb cb,
                        void *payload)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(XML_MAX);
    char *marker = NULL;
    int rc = 0;
    for (;;) {
        s3_req r = {.op = "ListParts", .method = "GET", .key = key, .safe = true, .xml = &xml};
        r.query[r.nquery++] = (berth__sigv4_pair){"uploadId", upload_id};
        if (marker) {
            r.query[r.nquery++] = (berth__sigv4_pair){"part-number-marker", marker};
        }
        if (c->list_page[0]) {
            r.query[r.nquery++] = (berth__sigv4_pair){"max-parts", c->list_page};
        }
        rc = perform(c, &r);
        req_done(&r);
        if (rc != 0) {
            break;
        }
        const char *s = xml.ptr ? xml.ptr : "", *e = s + xml.len, *p = s, *ps, *pe;
        while (rc == 0 && xml_next(&p, e, "Part", &ps, &pe)) {
            char *num = xml_get(ps, pe, "PartNumber"), *sz = xml_get(ps, pe, "Size");
            char *etag = quoted_etag(xml_get(ps, pe, "ETag"));
            uint64_t n = 0, size = 0;
            if (!num || !sz || !etag || berth_parse_u64(&n, num, strlen(num), 10000) != 0 ||
                berth_parse_u64(&size, sz, strlen(sz), UINT64_MAX) != 0 || n == 0) {
                rc = berth_error_set(BERTH_EIO, "s3: ListParts: unreadable part");
            } else {
                rc = cb((unsigned)n, etag, size, payload);
            }
            free(num);
            free(sz);
            free(etag);
        }
        bool more = rc == 0 && truncated(s, e);
        free(marker);
        marker = more ? xml_get(s, e, "NextPartNumberMarker") : NULL;
        if (!more || !marker || !*marker) {
            break;
        }
    }
    free(marker);
    berth_buf_dispose(&xml);
    return rc;
}

int berth__s3_mpu_list(berth__s3 *c, const char *prefix, berth__s3_upload_cb cb, void *payload)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(XML_MAX);
    char *key_marker = NULL, *id_marker = NULL;
    int rc = 0;
    for (;;) {
        s3_req r = {.op = "ListMultipartUploads", .method = "GET", .safe = true, .xml = &xml};
        r.query[r.nquery++] = (berth__sigv4_pair){"uploads", ""};
        r.query[r.nquery++] = (berth__sigv4_pair){"prefix", prefix ? prefix : ""};
        if (key_marker) {
            r.query[r.nquery++] = (berth__sigv4_pair){"key-marker", key_marker};
        }
        if (id_marker) {
            r.query[r.nquery++] = (berth__sigv4_pair){"upload-id-marker", id_marker};
        }
        if (c->list_page[0]) {
            r.query[r.nquery++] = (berth__sigv4_pair){"max-uploads", c->list_page};
        }
        rc = perform(c, &r);
        req_done(&r);
        if (rc != 0) {
            break;
        }
        const char *s = xml.ptr ? xml.ptr : "", *e = s + xml.len, *p = s, *us, *ue;
        char *last_k = NULL, *last_id = NULL;
        while (rc == 0 && xml_next(&p, e, "Upload", &us, &ue)) {
            char *k = xml_get(us, ue, "Key"), *id = xml_get(us, ue, "UploadId");
            char *ini = xml_get(us, ue, "Initiated");
            if (k && id) {
                rc = cb(k, id, ini ? parse_iso8601(ini) : 0, payload);
            }
            free(last_k);
            free(last_id);
            last_k = k;
            last_id = id;
            free(ini);
        }
        bool more = rc == 0 && truncated(s, e);
        free(key_marker);
        free(id_marker);
        key_marker = more ? xml_get(s, e, "NextKeyMarker") : NULL;
        id_marker = more ? xml_get(s, e, "NextUploadIdMarker") : NULL;
        if (more && (!key_marker || !*key_marker) && last_k && last_id) {
            /* a truncated page without the next markers (Swift's s3api leaves them empty on a
             * page of one upload): continue after the page's last upload */
            free(key_marker);
            free(id_marker);
            key_marker = last_k;
            id_marker = last_id;
            last_k = last_id = NULL;
        }
        free(last_k);
        free(last_id);
        if (!more || !key_marker || !*key_marker) {
            break;
        }
    }
    free(key_marker);
    free(id_marker);
    berth_buf_dispose(&xml);
    return rc;
}

int berth__s3_list(berth__s3 *c, const char *prefix, berth__s3_object_cb cb, void *payload)
{
    berth_buf xml = BERTH_BUF_INIT_MAX(XML_MAX);
    char *token = NULL;
    int rc = 0;
    for (;;) {
        s3_req r = {.op = "ListObjectsV2", .method = "GET", .safe = true, .xml = &xml};
        r.query[r.nquery++] = (berth__sigv4_pair){"list-type", "2"};
        r.query[r.nquery++] = (berth__sigv4_pair){"prefix", prefix ? prefix : ""};
        if (token) {
            r.query[r.nquery++] = (berth__sigv4_pair){"continuation-token", token};
        }
        if (c->list_page[0]) {
            r.query[r.nquery++] = (berth__sigv4_pair){"max-keys", c->list_page};
        }
        rc = perform(c, &r);
        req_done(&r);
        if (rc != 0) {
            break;
        }
        const char *s = xml.ptr ? xml.ptr : "", *e = s + xml.len, *p = s, *cs, *ce;
        while (rc == 0 && xml_next(&p, e, "Contents", &cs, &ce)) {
            char *k = xml_get(cs, ce, "Key"), *sz = xml_get(cs, ce, "Size");
            char *lm = xml_get(cs, ce, "LastModified");
            uint64_t size = 0;
            if (sz && berth_parse_u64(&size, sz, strlen(sz), UINT64_MAX) != 0) {
                berth_error_clear();
                size = 0;
            }
            if (k) {
                rc = cb(k, size, lm ? parse_iso8601(lm) : 0, payload);
            }
            free(k);
            free(sz);
            free(lm);
        }
        bool more = rc == 0 && truncated(s, e);
        free(token);
        token = more ? xml_get(s, e, "NextContinuationToken") : NULL;
        if (!more || !token || !*token) {
            break;
        }
    }
    free(token);
    berth_buf_dispose(&xml);
    return rc;
}

int berth__s3_presign_get(berth__s3 *c, const char *key, unsigned seconds,
                          const char *public_endpoint, char **url_out)
{
    char *scheme = NULL, *ephost = NULL, date[17];
    berth_buf host = BERTH_BUF_INIT, path = BERTH_BUF_INIT, url = BERTH_BUF_INIT;
    berth__s3 view;
    berth__sigv4_creds cr = {c->access_key, c->secret_key, c->session_token};
    int rc = 0;

    *url_out = NULL;
    if (public_endpoint && *public_endpoint) {
        rc = parse_endpoint(public_endpoint, &scheme, &ephost);
        if (rc != 0) {
            return rc;
        }
    }
    view = *c;
    if (ephost) {
        view.scheme = scheme;
        view.host = ephost;
    }
    berth__sigv4_date(date, time(NULL));
    rc = target(&view, key, &host, &path);
    if (rc == 0) {
        rc = berth_buf_printf(&url, "%s://%s", view.scheme, berth_buf_cstr(&host));
    }
    if (rc == 0) {
        rc = berth__sigv4_uri_encode(&url, path.ptr, path.len, true);
    }
    if (rc == 0) {
        rc = berth_buf_put(&url, "?", 1);
    }
    if (rc == 0) {
        rc = berth__sigv4_presign(&url, "GET", berth_buf_cstr(&path), NULL, 0,
                                  berth_buf_cstr(&host), date, seconds, c->region, "s3", &cr);
    }
    if (rc == 0) {
        *url_out = berth_buf_detach(&url);
        if (!*url_out) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    free(scheme);
    free(ephost);
    berth_buf_dispose(&host);
    berth_buf_dispose(&path);
    berth_buf_dispose(&url);
    return rc;
}

uint64_t berth__s3_count(berth__s3 *c, const char *op)
{
    int i = op_index(op);
    return c && i >= 0 ? (uint64_t)atomic_load(&c->counts[i]) : 0;
}
