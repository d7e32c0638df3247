/* SPDX-License-Identifier: Apache-2.0 */
/*
 * token.c: the Docker registry token authentication scheme. Tokens are JWS compact
 * serialisations (header.claims.signature, base64url without padding) signed with ES256 (ECDSA
 * P-256 + SHA-256, signature as the 64-byte r||s of RFC 7518 section 3.4, not DER) or RS256
 * (RSASSA-PKCS1-v1_5 + SHA-256). The key id is libtrust's, which Distribution's token verifier
 * matches against its trusted keys. Verification trusts only the configured key and the alg
 * that key implies: the header's alg must agree, so "none" or an HMAC swap cannot pass.
 */
#include "token.h"

#include "base/base64.h"

#include <berth/errors.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct berth_token_key {
    EVP_PKEY *pkey;
    bool is_ec;
    bool can_sign;
    char kid[64];
};

/* ---- scopes ---- */

static unsigned parse_actions(const char *s, size_t len)
{
    unsigned actions = 0;
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && s[j] != ',') {
            j++;
        }
        if (j - i == 4 && memcmp(s + i, "pull", 4) == 0) {
            actions |= BERTH_ACTION_PULL;
        } else if (j - i == 4 && memcmp(s + i, "push", 4) == 0) {
            actions |= BERTH_ACTION_PUSH;
        } else if (j - i == 6 && memcmp(s + i, "delete", 6) == 0) {
            actions |= BERTH_ACTION_DELETE;
        } else if (j - i == 1 && s[i] == '*') {
            actions |= BERTH_ACTION_PULL | BERTH_ACTION_PUSH | BERTH_ACTION_DELETE;
        }
        i = j + 1;
    }
    return actions;
}

static int scopes_add(berth_token_scopes *scopes, const char *type, size_t type_len,
                      const char *name, size_t name_len, unsigned actions)
{
    berth_token_scope *grown = NULL;
    berth_token_scope *s = NULL;

    for (size_t i = 0; i < scopes->count; i++) {
        s = &scopes->items[i];
        if (strlen(s->type) == type_len && memcmp(s->type, type, type_len) == 0 &&
            strlen(s->name) == name_len && memcmp(s->name, name, name_len) == 0) {
            s->actions |= actions;
            return 0;
        }
    }
    grown = realloc(scopes->items, (scopes->count + 1) * sizeof(*grown));
    if (!grown) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    scopes->items = grown;
    s = &grown[scopes->count];
    s->type = strndup(type, type_len);
    s->name = strndup(name, name_len);
    s->actions = actions;
    if (!s->type || !s->name) {
        free(s->type);
        free(s->name);
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    scopes->count++;
    return 0;
}

int berth_token_scopes_parse(berth_token_scopes *scopes, const char *text)
{
    const char *p = text;
    int error = 0;

    if (!scopes || !text) {
        return berth_error_set(BERTH_EINVALID, "berth_token_scopes_parse: missing argument");
    }
    while (error == 0 && *p) {
        const char *end = NULL, *first = NULL, *last = NULL;
        size_t len = 0;
        while (*p == ' ') {
            p++;
        }
        if (!*p) {
            break;
        }
        end = strchr(p, ' ');
        len = end ? (size_t)(end - p) : strlen(p);
        first = memchr(p, ':', len);
        last = NULL;
        for (size_t i = len; i > 0; i--) {
            if (p[i - 1] == ':') {
                last = p + i - 1;
                break;
            }
        }
        if (!first || first == last || first == p || last == first + 1) {
            return berth_error_set(BERTH_EINVALID, "scope '%.*s': expected type:name:actions",
                                   (int)(len > 200 ? 200 : len), p);
        }
        for (const char *c = p; c < p + len; c++) {
            if ((unsigned char)*c < 0x21 || *c == '"' || *c == '\\' || *c == 0x7f) {
                return berth_error_set(BERTH_EINVALID, "scope: invalid character");
            }
        }
        error = scopes_add(scopes, p, (size_t)(first - p), first + 1, (size_t)(last - first - 1),
                           parse_actions(last + 1, (size_t)(p + len - last - 1)));
        p += len;
    }
    return error;
}

static int format_actions(berth_buf *out, unsigned actions)
{
    static const char *names[] = {"pull", "push", "delete"};
    bool first = true;
    int error = 0;
    for (unsigned b = 0; error == 0 && b < 3; b++) {
        if (actions & (1u << b)) {
            error = berth_buf_printf(out, "%s%s", first ? "" : ",", names[b]);
            first = false;
        }
    }
    return error;
}

int berth_token_scopes_format(berth_buf *out, const berth_token_scopes *scopes)
{
    int error = 0;
    for (size_t i = 0; error == 0 && scopes && i < scopes->count; i++) {
        error = berth_buf_printf(out, "%s%s:%s:", i ? " " : "", scopes->items[i].type,
                                 scopes->items[i].name);
        if (error == 0) {
            error = format_actions(out, scopes->items[i].actions);
        }
    }
    return error;
}

void berth_token_scopes_dispose(berth_token_scopes *scopes)
{
    if (!scopes) {
        return;
    }
    for (size_t i = 0; i < scopes->count; i++) {
        free(scopes->items[i].type);
        free(scopes->items[i].name);
    }
    free(scopes->items);
    scopes->items = NULL;
    scopes->count = 0;
}

/* ---- keys ---- */

static int set_kid(berth_token_key *key)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    unsigned char *der = NULL;
    unsigned char md[32];
    unsigned int mdlen = 0;
    int derlen = i2d_PUBKEY(key->pkey, &der);
    size_t n = 0;

    if (derlen <= 0 || EVP_Digest(der, (size_t)derlen, md, &mdlen, EVP_sha256(), NULL) != 1) {
        OPENSSL_free(der);
        return berth_error_set(BERTH_ERROR, "token key: cannot compute the key id");
    }
    OPENSSL_free(der);
    /* libtrust: base32 of the first 240 bits (30 bytes = 48 characters), groups of 4 */
    for (size_t bit = 0, c = 0; bit < 240; bit += 5, c++) {
        size_t byte = bit / 8, off = bit % 8;
        unsigned v = ((unsigned)md[byte] << 8 | (byte + 1 < 32 ? md[byte + 1] : 0)) >> (11 - off);
        if (c && c % 4 == 0) {
            key->kid[n++] = ':';
        }
        key->kid[n++] = alpha[v & 31];
    }
    key->kid[n] = '\0';
    return 0;
}

int berth_token_key_from_pem(berth_token_key **out, const char *pem, size_t len)
{
    berth_token_key *key = NULL;
    BIO *bio = NULL;
    X509 *cert = NULL;
    int error = 0;

    if (!out || !pem || len > INT32_MAX) {
        return berth_error_set(BERTH_EINVALID, "berth_token_key_from_pem: missing argument");
    }
    *out = NULL;
    key = calloc(1, sizeof(*key));
    bio = BIO_new_mem_buf(pem, (int)len);
    if (!key || !bio) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    key->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    key->can_sign = key->pkey != NULL;
    if (!key->pkey && BIO_reset(bio) == 1) {
        key->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    }
    if (!key->pkey && BIO_reset(bio) == 1 && (cert = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
        key->pkey = X509_get_pubkey(cert);
    }
    ERR_clear_error();
    if (!key->pkey) {
        error = berth_error_set(BERTH_EINVALID,
                                "token key: not a PEM private key, public key or certificate");
        goto out;
    }
    if (EVP_PKEY_get_base_id(key->pkey) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(key->pkey, group, sizeof(group), &glen) != 1 ||
            (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
            error = berth_error_set(BERTH_EUNSUPPORTED, "token key: EC curve %s (need P-256)",
                                    group[0] ? group : "unknown");
            goto out;
        }
        key->is_ec = true;
    } else if (EVP_PKEY_get_base_id(key->pkey) == EVP_PKEY_RSA) {
        if (EVP_PKEY_get_bits(key->pkey) < 2048) {
            error = berth_error_set(BERTH_EUNSUPPORTED, "token key: RSA key under 2048 bits");
            goto out;
        }
    } else {
        error = berth_error_set(BERTH_EUNSUPPORTED, "token key: neither EC P-256 nor RSA");
        goto out;
    }
    if ((error = set_kid(key)) < 0) {
        goto out;
    }
    *out = key;
    key = NULL;
out:
    X509_free(cert);
    BIO_free(bio);
    berth_token_key_free(key);
    return error;
}

int berth_token_key_load(berth_token_key **out, const char *path)
{
    berth_buf text = BERTH_BUF_INIT_MAX(1u << 20);
    FILE *f = NULL;
    char chunk[4096];
    size_t n = 0;
    int error = 0;

    if (!out || !path) {
        return berth_error_set(BERTH_EINVALID, "berth_token_key_load: missing argument");
    }
    berth_error_clear();
    f = fopen(path, "rb");
    if (!f) {
        return berth_error_set(BERTH_EIO, "%s: cannot open", path);
    }
    while (error == 0 && (n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        error = berth_buf_put(&text, chunk, n);
    }
    if (error == 0 && ferror(f)) {
        error = berth_error_set(BERTH_EIO, "%s: read error", path);
    }
    fclose(f);
    if (error == 0) {
        error = berth_token_key_from_pem(out, berth_buf_cstr(&text), text.len);
        if (error < 0) {
            berth_error_prefix("%s: ", path);
        }
    }
    OPENSSL_cleanse(chunk, sizeof(chunk));
    if (text.ptr) {
        OPENSSL_cleanse(text.ptr, text.len);
    }
    berth_buf_dispose(&text);
    return error;
}

const char *berth_token_key_alg(const berth_token_key *key)
{
    return key && key->is_ec ? "ES256" : "RS256";
}

const char *berth_token_key_id(const berth_token_key *key)
{
    return key ? key->kid : "";
}

bool berth_token_key_can_sign(const berth_token_key *key)
{
    return key && key->can_sign;
}

void berth_token_key_free(berth_token_key *key)
{
    if (key) {
        EVP_PKEY_free(key->pkey);
        free(key);
    }
}

/* ---- JWT ---- */

void berth_token_claims_dispose(berth_token_claims *claims)
{
    if (!claims) {
        return;
    }
    free(claims->issuer);
    free(claims->subject);
    free(claims->audience);
    free(claims->jti);
    berth_token_scopes_dispose(&claims->access);
    memset(claims, 0, sizeof(*claims));
}

static int append_json_b64(berth_buf *out, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    int error = 0;
    if (!text) {
        return berth_error_set(BERTH_ENOMEM, "out of memory");
    }
    error = berth__base64_encode(out, text, strlen(text), BERTH__BASE64_URL);
    free(text);
    return error;
}

static json_t *access_json(const berth_token_scopes *scopes)
{
    static const char *names[] = {"pull", "push", "delete"};
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < scopes->count; i++) {
        json_t *actions = json_array();
        for (unsigned b = 0; actions && b < 3; b++) {
            if (scopes->items[i].actions & (1u << b)) {
                json_array_append_new(actions, json_string(names[b]));
            }
        }
        if (!actions || json_array_append_new(
                            arr, json_pack("{s:s, s:s, s:o}", "type", scopes->items[i].type, "name",
                                           scopes->items[i].name, "actions", actions)) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    return arr;
}

static int sign_bytes(berth_buf *sig, const berth_token_key *key, const char *data, size_t len)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    size_t derlen = 0;
    ECDSA_SIG *es = NULL;
    int error = 0;

    if (!ctx || EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) != 1 ||
        EVP_DigestSign(ctx, NULL, &derlen, (const unsigned char *)data, len) != 1 ||
        !(der = OPENSSL_malloc(derlen)) ||
        EVP_DigestSign(ctx, der, &derlen, (const unsigned char *)data, len) != 1) {
        error = berth_error_set(BERTH_ERROR, "token: signing failed");
        goto out;
    }
    if (key->is_ec) {
        const unsigned char *p = der;
        const BIGNUM *r = NULL, *s = NULL;
        unsigned char rs[64];
        es = d2i_ECDSA_SIG(NULL, &p, (long)derlen);
        if (!es) {
            error = berth_error_set(BERTH_ERROR, "token: bad ECDSA signature");
            goto out;
        }
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, rs, 32) != 32 || BN_bn2binpad(s, rs + 32, 32) != 32) {
            error = berth_error_set(BERTH_ERROR, "token: bad ECDSA signature");
            goto out;
        }
        error = berth__base64_encode(sig, rs, sizeof(rs), BERTH__BASE64_URL);
    } else {
        error = berth__base64_encode(sig, der, derlen, BERTH__BASE64_URL);
    }
out:
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return error;
}

int berth_token_sign(char **jwt_out, const berth_token_key *key, const berth_token_claims *claims)
{
    berth_buf jwt = BERTH_BUF_INIT;
    berth_buf jti = BERTH_BUF_INIT;
    json_t *header = NULL, *body = NULL, *access = NULL;
    unsigned char rnd[16];
    int error = 0;

    if (!jwt_out || !key || !claims) {
        return berth_error_set(BERTH_EINVALID, "berth_token_sign: missing argument");
    }
    *jwt_out = NULL;
    berth_error_clear();
    if (!key->can_sign) {
        return berth_error_set(BERTH_EINVALID, "token: the key has no private part");
    }
    if (!claims->jti) {
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            error = berth_error_set(BERTH_ERROR, "token: no random bytes");
            goto out;
        }
        if ((error = berth__base64_encode(&jti, rnd, sizeof(rnd), BERTH__BASE64_URL)) < 0) {
            goto out;
        }
    }
    header = json_pack("{s:s, s:s, s:s}", "typ", "JWT", "alg", berth_token_key_alg(key), "kid",
                       key->kid);
    access = access_json(&claims->access);
    body = access ? json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:O}", "iss",
                              claims->issuer ? claims->issuer : "", "sub",
                              claims->subject ? claims->subject : "", "aud",
                              claims->audience ? claims->audience : "", "exp",
                              (json_int_t)claims->expires, "nbf", (json_int_t)claims->not_before,
                              "iat", (json_int_t)claims->issued_at, "jti",
                              claims->jti ? claims->jti : berth_buf_cstr(&jti), "access", access)
                  : NULL;
    if (!header || !body) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    if ((error = append_json_b64(&jwt, header)) < 0 || (error = berth_buf_puts(&jwt, ".")) < 0 ||
        (error = append_json_b64(&jwt, body)) < 0) {
        goto out;
    }
    {
        size_t signed_len = jwt.len;
        if ((error = berth_buf_puts(&jwt, ".")) < 0 ||
            (error = sign_bytes(&jwt, key, jwt.ptr, signed_len)) < 0) {
            goto out;
        }
    }
    *jwt_out = berth_buf_detach(&jwt);
    if (!*jwt_out) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    json_decref(header);
    json_decref(body);
    json_decref(access);
    berth_buf_dispose(&jwt);
    berth_buf_dispose(&jti);
    return error;
}

static int verify_bytes(const berth_token_key *key, const char *data, size_t len,
                        const berth_buf *sig)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char *der = NULL;
    int derlen = 0;
    ECDSA_SIG *es = NULL;
    BIGNUM *r = NULL, *s = NULL;
    const unsigned char *sigp = (const unsigned char *)sig->ptr;
    size_t siglen = sig->len;
    int ok = 0;

    if (!ctx) {
        goto out;
    }
    if (key->is_ec) {
        if (sig->len != 64) {
            goto out;
        }
        es = ECDSA_SIG_new();
        r = BN_bin2bn(sigp, 32, NULL);
        s = BN_bin2bn(sigp + 32, 32, NULL);
        if (!es || !r || !s || ECDSA_SIG_set0(es, r, s) != 1) {
            BN_free(r);
            BN_free(s);
            goto out;
        }
        r = s = NULL; /* owned by es now */
        derlen = i2d_ECDSA_SIG(es, &der);
        if (derlen <= 0) {
            goto out;
        }
        sigp = der;
        siglen = (size_t)derlen;
    }
    ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
         EVP_DigestVerify(ctx, sigp, siglen, (const unsigned char *)data, len) == 1;
out:
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();
    return ok;
}

static json_t *decode_part(const char *text, size_t len)
{
    berth_buf raw = BERTH_BUF_INIT_MAX(64 * 1024);
    json_t *obj = NULL;
    if (berth__base64_decode(&raw, text, len, BERTH__BASE64_URL) == 0 && raw.ptr) {
        obj = json_loadb(raw.ptr, raw.len, JSON_REJECT_DUPLICATES, NULL);
    }
    berth_buf_dispose(&raw);
    if (obj && !json_is_object(obj)) {
        json_decref(obj);
        obj = NULL;
    }
    return obj;
}

static int dup_string(char **out, json_t *obj, const char *name)
{
    json_t *v = json_object_get(obj, name);
    if (!v) {
        return 0;
    }
    if (!json_is_string(v)) {
        return berth_error_set(BERTH_EUNAUTHORIZED, "token: %s is not a string", name);
    }
    *out = strdup(json_string_value(v));
    return *out ? 0 : berth_error_set(BERTH_ENOMEM, "out of memory");
}

static int get_time(int64_t *out, json_t *obj, const char *name, bool required)
{
    json_t *v = json_object_get(obj, name);
    if (!v) {
        return required ? berth_error_set(BERTH_EUNAUTHORIZED, "token: no %s claim", name) : 0;
    }
    if (!json_is_integer(v)) {
        return berth_error_set(BERTH_EUNAUTHORIZED, "token: %s is not an integer", name);
    }
    *out = (int64_t)json_integer_value(v);
    return 0;
}

static int read_access(berth_token_scopes *out, json_t *arr)
{
    size_t i = 0;
    json_t *item = NULL;
    int error = 0;

    if (!arr) {
        return 0;
    }
    if (!json_is_array(arr)) {
        return berth_error_set(BERTH_EUNAUTHORIZED, "token: access is not an array");
    }
    json_array_foreach(arr, i, item)
    {
        json_t *type = json_object_get(item, "type"), *name = json_object_get(item, "name");
        json_t *actions = json_object_get(item, "actions"), *a = NULL;
        unsigned bits = 0;
        size_t k = 0;
        if (!json_is_string(type) || !json_is_string(name) || !json_is_array(actions)) {
            return berth_error_set(BERTH_EUNAUTHORIZED, "token: access[%zu] is malformed", i);
        }
        json_array_foreach(actions, k, a)
        {
            if (json_is_string(a)) {
                bits |= parse_actions(json_string_value(a), strlen(json_string_value(a)));
            }
        }
        error = scopes_add(out, json_string_value(type), strlen(json_string_value(type)),
                           json_string_value(name), strlen(json_string_value(name)), bits);
        if (error < 0) {
            return error;
        }
    }
    return 0;
}

int berth_token_verify(berth_token_claims *out, const berth_token_key *key, const char *jwt,
                       const char *issuer, const char *audience, int64_t now)
{
    const char *dot1 = NULL, *dot2 = NULL;
    json_t *header = NULL, *body = NULL, *aud = NULL, *alg = NULL;
    berth_buf sig = BERTH_BUF_INIT_MAX(4096);
    int error = 0;

    if (!out || !key || !jwt) {
        return berth_error_set(BERTH_EINVALID, "berth_token_verify: missing argument");
    }
    memset(out, 0, sizeof(*out));
    berth_error_clear();
    dot1 = strchr(jwt, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (!dot1 || !dot2 || strchr(dot2 + 1, '.') || strlen(jwt) > 64 * 1024) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: not a JWS compact serialisation");
        goto out;
    }
    header = decode_part(jwt, (size_t)(dot1 - jwt));
    if (!header) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: malformed header");
        goto out;
    }
    alg = json_object_get(header, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), berth_token_key_alg(key)) != 0) {
        error =
            berth_error_set(BERTH_EUNAUTHORIZED, "token: alg is not %s", berth_token_key_alg(key));
        goto out;
    }
    if (berth__base64_decode(&sig, dot2 + 1, strlen(dot2 + 1), BERTH__BASE64_URL) < 0 ||
        sig.len == 0 || !verify_bytes(key, jwt, (size_t)(dot2 - jwt), &sig)) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: invalid signature");
        goto out;
    }
    body = decode_part(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!body) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: malformed claims");
        goto out;
    }
    if ((error = dup_string(&out->issuer, body, "iss")) < 0 ||
        (error = dup_string(&out->subject, body, "sub")) < 0 ||
        (error = dup_string(&out->jti, body, "jti")) < 0 ||
        (error = get_time(&out->expires, body, "exp", true)) < 0 ||
        (error = get_time(&out->not_before, body, "nbf", false)) < 0 ||
        (error = get_time(&out->issued_at, body, "iat", false)) < 0 ||
        (error = read_access(&out->access, json_object_get(body, "access"))) < 0) {
        goto out;
    }
    aud = json_object_get(body, "aud");
    if (json_is_string(aud)) {
        out->audience = strdup(json_string_value(aud));
    } else if (json_is_array(aud) && audience) {
        size_t i = 0;
        json_t *a = NULL;
        json_array_foreach(aud, i, a)
        {
            if (json_is_string(a) && strcmp(json_string_value(a), audience) == 0) {
                out->audience = strdup(audience);
            }
        }
    }
    if (audience && (!out->audience || strcmp(out->audience, audience) != 0)) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: audience is not %s", audience);
        goto out;
    }
    if (issuer && (!out->issuer || strcmp(out->issuer, issuer) != 0)) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: issuer is not %s", issuer);
        goto out;
    }
    if (now > out->expires + BERTH_TOKEN_LEEWAY) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: expired");
        goto out;
    }
    if (out->not_before > now + BERTH_TOKEN_LEEWAY) {
        error = berth_error_set(BERTH_EUNAUTHORIZED, "token: not valid yet");
        goto out;
    }
    if (!out->subject && !(out->subject = strdup(""))) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
    }
out:
    json_decref(header);
    json_decref(body);
    berth_buf_dispose(&sig);
    return error;
}

bool berth_token_claims_allow(const berth_token_claims *claims, const char *repo, unsigned action)
{
    for (size_t i = 0; claims && repo && action && i < claims->access.count; i++) {
        const berth_token_scope *s = &claims->access.items[i];
        if (strcmp(s->type, "repository") == 0 && strcmp(s->name, repo) == 0 &&
            (s->actions & action) == action) {
            return true;
        }
    }
    return false;
}

/* ---- challenges ---- */

static int put_quoted(berth_buf *out, const char *name, const char *value)
{
    int error = berth_buf_printf(out, "%s=\"", name);
    for (const char *p = value; error == 0 && *p; p++) {
        if (*p == '"' || *p == '\\') {
            error = berth_buf_put(out, "\\", 1);
        }
        if (error == 0 && (unsigned char)*p >= 0x20 && *p != 0x7f) {
            error = berth_buf_put(out, p, 1);
        }
    }
    return error ? error : berth_buf_puts(out, "\"");
}

int berth_token_challenge_bearer(berth_buf *out, const char *realm, const char *service,
                                 const char *scope, const char *error_code)
{
    int error = 0;
    if (!out || !realm || !service) {
        return berth_error_set(BERTH_EINVALID, "berth_token_challenge_bearer: missing argument");
    }
    if ((error = berth_buf_puts(out, "Bearer ")) < 0 ||
        (error = put_quoted(out, "realm", realm)) < 0 || (error = berth_buf_puts(out, ",")) < 0 ||
        (error = put_quoted(out, "service", service)) < 0) {
        return error;
    }
    if (scope && scope[0] &&
        ((error = berth_buf_puts(out, ",")) < 0 || (error = put_quoted(out, "scope", scope)) < 0)) {
        return error;
    }
    if (error_code && error_code[0] &&
        ((error = berth_buf_puts(out, ",")) < 0 ||
         (error = put_quoted(out, "error", error_code)) < 0)) {
        return error;
    }
    return 0;
}

int berth_token_challenge_basic(berth_buf *out, const char *realm)
{
    int error = 0;
    if (!out || !realm) {
        return berth_error_set(BERTH_EINVALID, "berth_token_challenge_basic: missing argument");
    }
    if ((error = berth_buf_puts(out, "Basic ")) < 0 ||
        (error = put_quoted(out, "realm", realm)) < 0) {
        return error;
    }
    return berth_buf_puts(out, ",charset=\"UTF-8\"");
}

/* ---- token endpoint ---- */

int berth_token_endpoint(berth_buf *out_json, const berth_token_key *key, const berth_acl *acl,
                         const char *issuer, const char *service, uint64_t lifetime,
                         const char *user, const char *const *scope_params, size_t nscopes,
                         int64_t now)
{
    berth_token_scopes requested = BERTH_TOKEN_SCOPES_INIT;
    berth_token_claims claims = {0};
    char *jwt = NULL;
    char issued[32];
    struct tm tm;
    time_t t = (time_t)now;
    json_t *body = NULL;
    char *text = NULL;
    int error = 0;

    if (!out_json || !key || !acl || !service || lifetime == 0 || (nscopes && !scope_params)) {
        return berth_error_set(BERTH_EINVALID, "berth_token_endpoint: missing argument");
    }
    berth_error_clear();
    for (size_t i = 0; i < nscopes; i++) {
        if ((error = berth_token_scopes_parse(&requested, scope_params[i])) < 0) {
            goto out;
        }
    }
    for (size_t i = 0; i < requested.count; i++) {
        berth_token_scope *s = &requested.items[i];
        unsigned granted = 0;
        if (strcmp(s->type, "repository") != 0) {
            continue;
        }
        granted = berth_acl_granted(acl, user, s->name, s->actions);
        if (granted && (error = scopes_add(&claims.access, s->type, strlen(s->type), s->name,
                                           strlen(s->name), granted)) < 0) {
            goto out;
        }
    }
    claims.issuer = strdup(issuer ? issuer : "berth");
    claims.subject = strdup(user ? user : "");
    claims.audience = strdup(service);
    if (!claims.issuer || !claims.subject || !claims.audience) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    claims.issued_at = now;
    claims.not_before = now;
    claims.expires = now + (int64_t)lifetime;
    if ((error = berth_token_sign(&jwt, key, &claims)) < 0) {
        goto out;
    }
    if (!gmtime_r(&t, &tm) || strftime(issued, sizeof(issued), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        error = berth_error_set(BERTH_ERROR, "token: bad time");
        goto out;
    }
    body = json_pack("{s:s, s:s, s:I, s:s}", "token", jwt, "access_token", jwt, "expires_in",
                     (json_int_t)lifetime, "issued_at", issued);
    text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (!text) {
        error = berth_error_set(BERTH_ENOMEM, "out of memory");
        goto out;
    }
    error = berth_buf_puts(out_json, text);
out:
    free(text);
    json_decref(body);
    free(jwt);
    berth_token_claims_dispose(&claims);
    berth_token_scopes_dispose(&requested);
    return error;
}
