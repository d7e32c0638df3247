/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AWS Signature Version 4 with OpenSSL (see sigv4.h for why not libcurl's): canonical request,
 * string to sign, signing key (HMAC chain over date, region, service, "aws4_request"),
 * Authorization header and presigned query.
 */
#include "backend/s3/sigv4.h"

#include <berth/errors.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

static const char HEX_UPPER[] = "0123456789ABCDEF";
static const char HEX_LOWER[] = "0123456789abcdef";

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

int berth__sigv4_uri_encode(berth_buf *out, const char *s, size_t len, bool keep_slash)
{
    int rc = berth_buf_grow(out, len);
    for (size_t i = 0; rc == 0 && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            rc = berth_buf_put(out, &s[i], 1);
        } else {
            char esc[3] = {'%', HEX_UPPER[c >> 4], HEX_UPPER[c & 15]};
            rc = berth_buf_put(out, esc, 3);
        }
    }
    return rc;
}

static void hex_lower(char *out, const unsigned char *md, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = HEX_LOWER[md[i] >> 4];
        out[2 * i + 1] = HEX_LOWER[md[i] & 15];
    }
    out[2 * n] = '\0';
}

int berth__sigv4_sha256_hex(char out[65], const void *data, size_t len)
{
    unsigned char md[32];
    unsigned int n = 0;
    if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1 || n != 32) {
        out[0] = '\0';
        return berth_error_set(BERTH_ERROR, "sigv4: SHA-256 failed");
    }
    hex_lower(out, md, 32);
    return 0;
}

void berth__sigv4_date(char out[17], time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

/* ---- query ---------------------------------------------------------------------------- */

typedef struct enc_pair {
    char *name;
    char *value;
} enc_pair;

static int cmp_pair(const void *a, const void *b)
{
    const enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static char *encode_dup(const char *s)
{
    berth_buf b = BERTH_BUF_INIT;
    if (berth__sigv4_uri_encode(&b, s, strlen(s), false) != 0) {
        berth_buf_dispose(&b);
        return NULL;
    }
    return berth_buf_detach(&b);
}

int berth__sigv4_query(berth_buf *out, const berth__sigv4_pair *query, size_t nquery)
{
    enc_pair *v = NULL;
    size_t n = 0;
    int rc = 0;
    if (nquery == 0) {
        return 0;
    }
    v = calloc(nquery, sizeof(*v));
    if (!v) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (n = 0; n < nquery; n++) {
        v[n].name = encode_dup(query[n].name);
        v[n].value = encode_dup(query[n].value ? query[n].value : "");
        if (!v[n].name || !v[n].value) {
            n++;
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
    }
    qsort(v, n, sizeof(*v), cmp_pair);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = berth_buf_printf(out, "%s%s=%s", i ? "&" : "", v[i].name, v[i].value);
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(v[i].name);
        free(v[i].value);
    }
    free(v);
    return rc;
}

/* ---- headers -------------------------------------------------------------------------- */

typedef struct hdr {
    char *name; /* lowercase */
    const char *value;
    size_t order;
} hdr;

static int cmp_hdr(const void *a, const void *b)
{
    const hdr *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    if (c) {
        return c;
    }
    return x->order < y->order ? -1 : x->order > y->order;
}

static bool space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* A header value as SigV4 wants it: trimmed, inner runs of whitespace made one space. */
static int put_value(berth_buf *out, const char *v)
{
    size_t len = strlen(v), a = 0, b = len;
    bool gap = false;
    int rc = 0;
    while (a < b && space(v[a])) {
        a++;
    }
    while (b > a && space(v[b - 1])) {
        b--;
    }
    for (size_t i = a; rc == 0 && i < b; i++) {
        if (space(v[i])) {
            gap = true;
            continue;
        }
        if (gap) {
            rc = berth_buf_put(out, " ", 1);
            gap = false;
        }
        if (rc == 0) {
            rc = berth_buf_put(out, &v[i], 1);
        }
    }
    return rc;
}

int berth__sigv4_canonical_request(berth_buf *out, berth_buf *signed_out,
                                   const berth__sigv4_request *r)
{
    hdr *h = NULL;
    berth_buf names = BERTH_BUF_INIT;
    size_t n = 0;
    int rc = 0;

    if (!r || !r->method || !r->path || !r->payload_hash) {
        return berth_error_set(BERTH_EINVALID, "sigv4: incomplete request");
    }
    if (r->nheaders) {
        h = calloc(r->nheaders, sizeof(*h));
        if (!h) {
            return berth_error_set(BERTH_ENOMEM, "out of memory");
        }
    }
    for (n = 0; n < r->nheaders; n++) {
        const char *name = r->headers[n].name;
        size_t len = name ? strlen(name) : 0;
        if (len == 0) {
            rc = berth_error_set(BERTH_EINVALID, "sigv4: a header without a name");
            goto out;
        }
        h[n].name = malloc(len + 1);
        if (!h[n].name) {
            rc = berth_error_set(BERTH_ENOMEM, "out of memory");
            goto out;
        }
        for (size_t i = 0; i <= len; i++) {
            char c = name[i];
            h[n].name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        h[n].value = r->headers[n].value ? r->headers[n].value : "";
        h[n].order = n;
    }
    if (n) {
        qsort(h, n, sizeof(*h), cmp_hdr);
    }

    rc = berth_buf_printf(out, "%s\n", r->method);
    if (rc == 0) {
        rc = berth__sigv4_uri_encode(out, r->path, strlen(r->path), true);
    }
    if (rc == 0) {
        rc = berth_buf_put(out, "\n", 1);
    }
    if (rc == 0) {
        rc = berth__sigv4_query(out, r->query, r->nquery);
    }
    if (rc == 0) {
        rc = berth_buf_put(out, "\n", 1);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool first = i == 0 || strcmp(h[i].name, h[i - 1].name) != 0;
        bool last = i + 1 == n || strcmp(h[i].name, h[i + 1].name) != 0;
        if (first) {
            rc = berth_buf_printf(out, "%s:", h[i].name);
            if (rc == 0) {
                rc = berth_buf_printf(&names, "%s%s", names.len ? ";" : "", h[i].name);
            }
        } else {
            rc = berth_buf_put(out, ",", 1);
        }
        if (rc == 0) {
            rc = put_value(out, h[i].value);
        }
        if (rc == 0 && last) {
            rc = berth_buf_put(out, "\n", 1);
        }
    }
    if (rc == 0) {
        rc = berth_buf_printf(out, "\n%s\n%s", berth_buf_cstr(&names), r->payload_hash);
    }
    if (rc == 0 && signed_out) {
        rc = berth_buf_puts(signed_out, berth_buf_cstr(&names));
    }
out:
    for (size_t i = 0; i < n; i++) {
        free(h[i].name);
    }
    free(h);
    berth_buf_dispose(&names);
    return rc;
}

/* ---- signature ------------------------------------------------------------------------ */

static int hmac(unsigned char out[32], const void *key, size_t keylen, const char *msg)
{
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &n) ||
        n != 32) {
        return berth_error_set(BERTH_ERROR, "sigv4: HMAC-SHA256 failed");
    }
    return 0;
}

static bool valid_date(const char *d)
{
    if (!d || strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z') {
        return false;
    }
    for (int i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9')) {
            return false;
        }
    }
    return true;
}

/* The hex signature of canonical request `creq`, and the scope "date/region/service/aws4_request".
 */
static int signature(char sig[65], berth_buf *scope, const char *creq, const char *amz_date,
                     const char *region, const char *service, const char *secret)
{
    char day[9], creq_hash[65];
    unsigned char k[32];
    berth_buf key0 = BERTH_BUF_INIT, sts = BERTH_BUF_INIT;
    int rc;

    if (!valid_date(amz_date) || !region || !*region || !service || !*service || !secret) {
        return berth_error_set(BERTH_EINVALID, "sigv4: bad date, region, service or secret");
    }
    memcpy(day, amz_date, 8);
    day[8] = '\0';
    rc = berth_buf_printf(scope, "%s/%s/%s/aws4_request", day, region, service);
    if (rc == 0) {
        rc = berth__sigv4_sha256_hex(creq_hash, creq, strlen(creq));
    }
    if (rc == 0) {
        rc = berth_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s\n%s", amz_date, berth_buf_cstr(scope),
                              creq_hash);
    }
    if (rc == 0) {
        rc = berth_buf_printf(&key0, "AWS4%s", secret);
    }
    if (rc == 0) {
        rc = hmac(k, key0.ptr, key0.len, day);
    }
    if (rc == 0) {
        rc = hmac(k, k, 32, region);
    }
    if (rc == 0) {
        rc = hmac(k, k, 32, service);
    }
    if (rc == 0) {
        rc = hmac(k, k, 32, "aws4_request");
    }
    if (rc == 0) {
        rc = hmac(k, k, 32, berth_buf_cstr(&sts));
    }
    if (rc == 0) {
        hex_lower(sig, k, 32);
    }
    if (key0.ptr) {
        OPENSSL_cleanse(key0.ptr, key0.len);
    }
    OPENSSL_cleanse(k, sizeof(k));
    berth_buf_dispose(&key0);
    berth_buf_dispose(&sts);
    return rc;
}

int berth__sigv4_authorization(berth_buf *out, const berth__sigv4_request *r, const char *amz_date,
                               const char *region, const char *service,
                               const berth__sigv4_creds *creds)
{
    berth_buf creq = BERTH_BUF_INIT, names = BERTH_BUF_INIT, scope = BERTH_BUF_INIT;
    char sig[65];
    int rc;

    if (!creds || !creds->access_key || !creds->secret_key) {
        return berth_error_set(BERTH_EINVALID, "sigv4: no credentials");
    }
    rc = berth__sigv4_canonical_request(&creq, &names, r);
    if (rc == 0) {
        rc = signature(sig, &scope, berth_buf_cstr(&creq), amz_date, region, service,
                       creds->secret_key);
    }
    if (rc == 0) {
        rc = berth_buf_printf(
            out, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
            creds->access_key, berth_buf_cstr(&scope), berth_buf_cstr(&names), sig);
    }
    berth_buf_dispose(&creq);
    berth_buf_dispose(&names);
    berth_buf_dispose(&scope);
    return rc;
}

int berth__sigv4_presign(berth_buf *query_out, const char *method, const char *path,
                         const berth__sigv4_pair *query, size_t nquery, const char *host,
                         const char *amz_date, unsigned expires, const char *region,
                         const char *service, const berth__sigv4_creds *creds)
{
    berth__sigv4_pair *q = NULL;
    berth_buf cred = BERTH_BUF_INIT, creq = BERTH_BUF_INIT, scope = BERTH_BUF_INIT;
    char exp[24], sig[65];
    size_t n = 0;
    int rc = 0;

    if (!creds || !creds->access_key || !creds->secret_key || !host || !valid_date(amz_date) ||
        !region) {
        return berth_error_set(BERTH_EINVALID, "sigv4: incomplete presign request");
    }
    q = calloc(nquery + 6, sizeof(*q));
    if (!q) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    for (n = 0; n < nquery; n++) {
        q[n] = query[n];
    }
    rc = berth_buf_printf(&cred, "%s/%.8s/%s/%s/aws4_request", creds->access_key, amz_date, region,
                          service);
    snprintf(exp, sizeof(exp), "%u", expires);
    q[n++] = (berth__sigv4_pair){"X-Amz-Algorithm", "AWS4-HMAC-SHA256"};
    q[n++] = (berth__sigv4_pair){"X-Amz-Credential", berth_buf_cstr(&cred)};
    q[n++] = (berth__sigv4_pair){"X-Amz-Date", amz_date};
    q[n++] = (berth__sigv4_pair){"X-Amz-Expires", exp};
    q[n++] = (berth__sigv4_pair){"X-Amz-SignedHeaders", "host"};
    if (creds->session_token) {
        q[n++] = (berth__sigv4_pair){"X-Amz-Security-Token", creds->session_token};
    }
    if (rc == 0) {
        berth__sigv4_pair h = {"host", host};
        berth__sigv4_request r = {method, path, q, n, &h, 1, BERTH_SIGV4_UNSIGNED};
        rc = berth__sigv4_canonical_request(&creq, NULL, &r);
    }
    if (rc == 0) {
        rc = signature(sig, &scope, berth_buf_cstr(&creq), amz_date, region, service,
                       creds->secret_key);
    }
    if (rc == 0) {
        rc = berth__sigv4_query(query_out, q, n);
    }
    if (rc == 0) {
        rc = berth_buf_printf(query_out, "&X-Amz-Signature=%s", sig);
    }
    free(q);
    berth_buf_dispose(&cred);
    berth_buf_dispose(&creq);
    berth_buf_dispose(&scope);
    return rc;
}
