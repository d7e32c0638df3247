/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Digests: the image-spec grammar, and SHA-256/SHA-512 through OpenSSL. A berth_digest
 * only ever holds a supported algorithm with a well-formed lowercase hex value, so that its
 * `str` can be used directly in paths and headers.
 */
#include <berth/digest.h>
#include <berth/errors.h>

#include <errno.h>
#include <fcntl.h>
/* the SHA-256/512 block functions: deprecated in OpenSSL 3 for EVP, which cannot give its state */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct berth_hasher {
    union {
        SHA256_CTX sha256;
        SHA512_CTX sha512;
    } u;
    berth_digest_alg alg;
    uint64_t count;
};

static bool alg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool alg_sep(char c)
{
    return c == '+' || c == '.' || c == '_' || c == '-';
}

static bool enc_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '=' ||
           c == '_' || c == '-';
}

static size_t hex_len(berth_digest_alg alg)
{
    return alg == BERTH_DIGEST_SHA256 ? 64 : alg == BERTH_DIGEST_SHA512 ? 128 : 0;
}

const char *berth_digest_alg_name(berth_digest_alg alg)
{
    switch (alg) {
    case BERTH_DIGEST_SHA256:
        return "sha256";
    case BERTH_DIGEST_SHA512:
        return "sha512";
    default:
        return "";
    }
}

int berth_digest_parse(berth_digest *out, const char *s, size_t len)
{
    size_t i = 0, colon;
    berth_digest_alg alg;
    bool need_comp = true;

    if (!s || len == 0) {
        return berth_error_set(BERTH_EINVALID, "empty digest");
    }
    /* algorithm: component (separator component)* */
    for (; i < len && s[i] != ':'; i++) {
        if (alg_char(s[i])) {
            need_comp = false;
        } else if (alg_sep(s[i]) && !need_comp) {
            need_comp = true;
        } else {
            return berth_error_set(BERTH_EINVALID, "invalid digest algorithm character at %zu", i);
        }
    }
    if (i == len) {
        return berth_error_set(BERTH_EINVALID, "digest has no ':'");
    }
    if (i == 0 || need_comp) {
        return berth_error_set(BERTH_EINVALID, "invalid digest algorithm");
    }
    colon = i;
    if (colon + 1 == len) {
        return berth_error_set(BERTH_EINVALID, "digest has an empty encoded part");
    }
    for (i = colon + 1; i < len; i++) {
        if (!enc_char(s[i])) {
            return berth_error_set(BERTH_EINVALID, "invalid digest character at %zu", i);
        }
    }
    if (colon == 6 && memcmp(s, "sha256", 6) == 0) {
        alg = BERTH_DIGEST_SHA256;
    } else if (colon == 6 && memcmp(s, "sha512", 6) == 0) {
        alg = BERTH_DIGEST_SHA512;
    } else {
        return berth_error_set(BERTH_EUNSUPPORTED, "unsupported digest algorithm '%.*s'",
                               (int)(colon > 32 ? 32 : colon), s);
    }
    if (len - colon - 1 != hex_len(alg)) {
        return berth_error_set(BERTH_EINVALID, "%s digest must have %zu hex digits, not %zu",
                               berth_digest_alg_name(alg), hex_len(alg), len - colon - 1);
    }
    for (i = colon + 1; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return berth_error_set(BERTH_EINVALID, "%s digest must be lowercase hex",
                                   berth_digest_alg_name(alg));
        }
    }
    out->alg = alg;
    memcpy(out->str, s, len);
    out->str[len] = '\0';
    return 0;
}

int berth_digest_parse_str(berth_digest *out, const char *s)
{
    return berth_digest_parse(out, s, s ? strlen(s) : 0);
}

const char *berth_digest_hex(const berth_digest *d)
{
    return d->str + 7;
}

bool berth_digest_equal(const berth_digest *a, const berth_digest *b)
{
    return a->alg == b->alg && strcmp(a->str, b->str) == 0;
}

/*
 * The hasher runs OpenSSL's SHA-256/SHA-512 block functions directly (the same assembly EVP
 * uses), because their state is a plain struct: an upload's hash state can then be written
 * down (berth_hasher_export) and continued by another process (berth_hasher_import).
 */
int berth_hasher_new(berth_hasher **out, berth_digest_alg alg)
{
    berth_hasher *h;

    if (alg != BERTH_DIGEST_SHA256 && alg != BERTH_DIGEST_SHA512) {
        return berth_error_set(BERTH_EUNSUPPORTED, "unsupported digest algorithm");
    }
    h = calloc(1, sizeof(*h));
    if (!h) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    if (alg == BERTH_DIGEST_SHA256) {
        SHA256_Init(&h->u.sha256);
    } else {
        SHA512_Init(&h->u.sha512);
    }
    h->alg = alg;
    *out = h;
    return 0;
}

int berth_hasher_update(berth_hasher *h, const void *data, size_t len)
{
    if (len) {
        if (h->alg == BERTH_DIGEST_SHA256) {
            SHA256_Update(&h->u.sha256, data, len);
        } else {
            SHA512_Update(&h->u.sha512, data, len);
        }
    }
    h->count += len;
    return 0;
}

static void to_hex(char *dst, const unsigned char *src, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hex[src[i] >> 4];
        dst[2 * i + 1] = hex[src[i] & 15];
    }
    dst[2 * n] = '\0';
}

int berth_hasher_peek(berth_digest *out, const berth_hasher *h)
{
    unsigned char md[SHA512_DIGEST_LENGTH];
    const char *name = berth_digest_alg_name(h->alg);
    size_t n;

    if (h->alg == BERTH_DIGEST_SHA256) {
        SHA256_CTX c = h->u.sha256;
        SHA256_Final(md, &c);
        n = SHA256_DIGEST_LENGTH;
    } else {
        SHA512_CTX c = h->u.sha512;
        SHA512_Final(md, &c);
        n = SHA512_DIGEST_LENGTH;
    }
    out->alg = h->alg;
    memcpy(out->str, name, 6);
    out->str[6] = ':';
    to_hex(out->str + 7, md, n);
    return 0;
}

uint64_t berth_hasher_count(const berth_hasher *h)
{
    return h->count;
}

int berth_hasher_dup(berth_hasher **out, const berth_hasher *h)
{
    berth_hasher *c = malloc(sizeof(*c));

    if (!c) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    *c = *h;
    *out = c;
    return 0;
}

void berth_hasher_free(berth_hasher *h)
{
    if (h) {
        OPENSSL_cleanse(h, sizeof(*h));
        free(h);
    }
}

/* The state as text: "<alg>.1.<bytes fed>.<hex of the context struct>". */
int berth_hasher_export(const berth_hasher *h, char **out)
{
    const void *ctx =
        h->alg == BERTH_DIGEST_SHA256 ? (const void *)&h->u.sha256 : (const void *)&h->u.sha512;
    size_t n = h->alg == BERTH_DIGEST_SHA256 ? sizeof(SHA256_CTX) : sizeof(SHA512_CTX);
    size_t cap = 6 + 3 + 21 + 1 + 2 * n + 1;
    char *text = malloc(cap);
    int len;

    if (!text) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    len = snprintf(text, cap, "%s.1.%llu.", berth_digest_alg_name(h->alg),
                   (unsigned long long)h->count);
    to_hex(text + len, ctx, n);
    *out = text;
    return 0;
}

static int hex_value(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int berth_hasher_import(berth_hasher **out, const char *text)
{
    berth_hasher *h;
    berth_digest_alg alg;
    const char *p;
    unsigned char *ctx;
    uint64_t count = 0;
    size_t n;

    if (!text) {
        return berth_error_set(BERTH_EINVALID, "no hash state");
    }
    if (strncmp(text, "sha256.1.", 9) == 0) {
        alg = BERTH_DIGEST_SHA256;
        n = sizeof(SHA256_CTX);
    } else if (strncmp(text, "sha512.1.", 9) == 0) {
        alg = BERTH_DIGEST_SHA512;
        n = sizeof(SHA512_CTX);
    } else {
        return berth_error_set(BERTH_EINVALID, "unknown hash state format");
    }
    p = text + 9;
    while (*p >= '0' && *p <= '9' && count < UINT64_MAX / 10) {
        count = count * 10 + (uint64_t)(*p++ - '0');
    }
    if (*p++ != '.' || strlen(p) != 2 * n) {
        return berth_error_set(BERTH_EINVALID, "malformed hash state");
    }
    if (berth_hasher_new(&h, alg) < 0) {
        return BERTH_ENOMEM;
    }
    ctx =
        alg == BERTH_DIGEST_SHA256 ? (unsigned char *)&h->u.sha256 : (unsigned char *)&h->u.sha512;
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(p[2 * i]), lo = hex_value(p[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            berth_hasher_free(h);
            return berth_error_set(BERTH_EINVALID, "malformed hash state");
        }
        ctx[i] = (unsigned char)(hi << 4 | lo);
    }
    h->count = count;
    *out = h;
    return 0;
}

int berth_digest_buffer(berth_digest *out, berth_digest_alg alg, const void *data, size_t len)
{
    berth_hasher *h = NULL;
    int rc = berth_hasher_new(&h, alg);
    if (rc == 0) {
        rc = berth_hasher_update(h, data, len);
    }
    if (rc == 0) {
        rc = berth_hasher_peek(out, h);
    }
    berth_hasher_free(h);
    return rc;
}

int berth_digest_fd(berth_digest *out, berth_digest_alg alg, int fd, uint64_t *size_out)
{
    berth_hasher *h = NULL;
    char *chunk = NULL;
    const size_t chunk_size = 1 << 20;
    int rc = berth_hasher_new(&h, alg);

    if (rc < 0) {
        goto out;
    }
    chunk = malloc(chunk_size);
    if (!chunk) {
        rc = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, chunk, chunk_size);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            rc = berth_error_set(BERTH_EIO, "read: %s", strerror(errno));
            goto out;
        }
        if (n == 0) {
            break;
        }
        rc = berth_hasher_update(h, chunk, (size_t)n);
        if (rc < 0) {
            goto out;
        }
    }
    rc = berth_hasher_peek(out, h);
    if (rc == 0 && size_out) {
        *size_out = h->count;
    }
out:
    free(chunk);
    berth_hasher_free(h);
    return rc;
}

int berth_digest_file(berth_digest *out, berth_digest_alg alg, const char *path, uint64_t *size_out)
{
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return berth_error_set(errno == ENOENT ? BERTH_ENOTFOUND : BERTH_EIO, "%s: %s", path,
                               strerror(errno));
    }
    rc = berth_digest_fd(out, alg, fd, size_out);
    close(fd);
    return rc;
}
