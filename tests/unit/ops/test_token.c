/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: token scopes, challenges, ES256/RS256 JWT signing and verification (every check
 * refused on its own), the libtrust key id form, and the token endpoint's grant logic. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base64.h"
#include "server/ops/token.h"

#include <berth/errors.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW 1700000000

/* A fresh key as PEM: private (with_private) or public. */
static berth_token_key *make_key(EVP_PKEY *pkey, bool with_private)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long len = 0;
    berth_token_key *key = NULL;
    assert_non_null(bio);
    if (with_private) {
        assert_int_equal(PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL), 1);
    } else {
        assert_int_equal(PEM_write_bio_PUBKEY(bio, pkey), 1);
    }
    len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(berth_token_key_from_pem(&key, pem, (size_t)len), 0);
    BIO_free(bio);
    return key;
}

static EVP_PKEY *ec_pkey;
static EVP_PKEY *rsa_pkey;
static EVP_PKEY *ec_other;

static int group_setup(void **state)
{
    (void)state;
    ec_pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ec_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    rsa_pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    return ec_pkey && rsa_pkey && ec_other ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(ec_pkey);
    EVP_PKEY_free(ec_other);
    EVP_PKEY_free(rsa_pkey);
    return 0;
}

static void test_token__scopes(void **state)
{
    berth_token_scopes s = BERTH_TOKEN_SCOPES_INIT;
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_token_scopes_parse(&s, "repository:library/alpine:pull,push"), 0);
    assert_int_equal(s.count, 1);
    assert_string_equal(s.items[0].type, "repository");
    assert_string_equal(s.items[0].name, "library/alpine");
    assert_int_equal(s.items[0].actions, BERTH_ACTION_PULL | BERTH_ACTION_PUSH);
    assert_int_equal(
        berth_token_scopes_parse(&s, "repository:localhost:5000/x:delete  registry:catalog:* "
                                     "repository:library/alpine:delete,fly"),
        0);
    assert_int_equal(s.count, 3);
    assert_string_equal(s.items[1].name, "localhost:5000/x");
    assert_int_equal(s.items[1].actions, BERTH_ACTION_DELETE);
    assert_string_equal(s.items[2].type, "registry");
    assert_int_equal(s.items[2].actions, 7);
    /* merged into the first */
    assert_int_equal(s.items[0].actions, 7);
    assert_int_equal(berth_token_scopes_format(&out, &s), 0);
    assert_string_equal(out.ptr, "repository:library/alpine:pull,push,delete "
                                 "repository:localhost:5000/x:delete "
                                 "registry:catalog:pull,push,delete");
    static const char *bad[] = {"repository",       "repository:x",         ":x:pull",
                                "repository::pull", "repository:a\"b:pull", "repository:a\tb:pull"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (berth_token_scopes_parse(&s, bad[i]) != BERTH_EINVALID) {
            fail_msg("scope '%s' was accepted", bad[i]);
        }
    }
    assert_int_equal(berth_token_scopes_parse(&s, "   "), 0);
    assert_int_equal(s.count, 3);
    berth_buf_dispose(&out);
    berth_token_scopes_dispose(&s);
}

static void test_token__challenges(void **state)
{
    berth_buf out = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth_token_challenge_bearer(&out, "https://r.example/token", "r.example",
                                                  "repository:a/b:pull", NULL),
                     0);
    assert_string_equal(out.ptr, "Bearer realm=\"https://r.example/token\",service=\"r.example\","
                                 "scope=\"repository:a/b:pull\"");
    berth_buf_clear(&out);
    assert_int_equal(berth_token_challenge_bearer(&out, "r\"x", "s\\", NULL, "insufficient_scope"),
                     0);
    assert_string_equal(out.ptr,
                        "Bearer realm=\"r\\\"x\",service=\"s\\\\\",error=\"insufficient_scope\"");
    berth_buf_clear(&out);
    assert_int_equal(berth_token_challenge_basic(&out, "berth"), 0);
    assert_string_equal(out.ptr, "Basic realm=\"berth\",charset=\"UTF-8\"");
    berth_buf_dispose(&out);
}

static void test_token__key_properties(void **state)
{
    berth_token_key *ec = make_key(ec_pkey, true);
    berth_token_key *ec_pub = make_key(ec_pkey, false);
    berth_token_key *rsa = make_key(rsa_pkey, true);
    berth_token_key *bad = NULL;
    const char *kid = berth_token_key_id(ec);
    (void)state;
    assert_string_equal(berth_token_key_alg(ec), "ES256");
    assert_string_equal(berth_token_key_alg(rsa), "RS256");
    assert_true(berth_token_key_can_sign(ec));
    assert_false(berth_token_key_can_sign(ec_pub));
    /* libtrust form: 12 groups of 4 base32 characters */
    assert_int_equal(strlen(kid), 59);
    for (size_t i = 0; i < 59; i++) {
        if (i % 5 == 4) {
            assert_int_equal(kid[i], ':');
        } else {
            assert_true((kid[i] >= 'A' && kid[i] <= 'Z') || (kid[i] >= '2' && kid[i] <= '7'));
        }
    }
    /* the same public key gives the same id */
    assert_string_equal(kid, berth_token_key_id(ec_pub));
    assert_int_equal(berth_token_key_from_pem(&bad, "not pem", 7), BERTH_EINVALID);
    assert_int_equal(berth_token_key_load(&bad, "/nonexistent/key.pem"), BERTH_EIO);
    assert_null(bad);
    berth_token_key_free(ec);
    berth_token_key_free(ec_pub);
    berth_token_key_free(rsa);
}

static void test_token__unsupported_keys(void **state)
{
    EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    BIO *bio = BIO_new(BIO_s_mem());
    berth_token_key *key = NULL;
    char *pem = NULL;
    long len = 0;
    (void)state;
    assert_int_equal(PEM_write_bio_PrivateKey(bio, p384, NULL, NULL, 0, NULL, NULL), 1);
    len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(berth_token_key_from_pem(&key, pem, (size_t)len), BERTH_EUNSUPPORTED);
    (void)BIO_reset(bio);
    assert_int_equal(PEM_write_bio_PrivateKey(bio, small, NULL, NULL, 0, NULL, NULL), 1);
    len = BIO_get_mem_data(bio, &pem);
    assert_int_equal(berth_token_key_from_pem(&key, pem, (size_t)len), BERTH_EUNSUPPORTED);
    assert_null(key);
    BIO_free(bio);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(small);
}

static char *sign(const berth_token_key *key, int64_t iat, int64_t exp, const char *aud,
                  const char *iss)
{
    berth_token_claims c = {0};
    char *jwt = NULL;
    c.issuer = strdup(iss);
    c.subject = strdup("alice");
    c.audience = strdup(aud);
    c.issued_at = iat;
    c.not_before = iat;
    c.expires = exp;
    assert_int_equal(berth_token_scopes_parse(&c.access, "repository:team/app:pull,push"), 0);
    assert_int_equal(berth_token_sign(&jwt, key, &c), 0);
    berth_token_claims_dispose(&c);
    return jwt;
}

static void round_trip(berth_token_key *signer, berth_token_key *verifier, size_t sig_len)
{
    char *jwt = sign(signer, NOW, NOW + 300, "reg", "berth");
    berth_token_claims c = {0};
    berth_buf part = BERTH_BUF_INIT;
    const char *last = strrchr(jwt, '.');
    json_t *header = NULL;

    assert_int_equal(berth_token_verify(&c, verifier, jwt, "berth", "reg", NOW + 10), 0);
    assert_string_equal(c.subject, "alice");
    assert_string_equal(c.issuer, "berth");
    assert_string_equal(c.audience, "reg");
    assert_int_equal(c.expires, NOW + 300);
    assert_non_null(c.jti);
    assert_true(strlen(c.jti) >= 16);
    assert_true(berth_token_claims_allow(&c, "team/app", BERTH_ACTION_PUSH));
    assert_false(berth_token_claims_allow(&c, "team/app", BERTH_ACTION_DELETE));
    assert_false(berth_token_claims_allow(&c, "team/other", BERTH_ACTION_PULL));
    berth_token_claims_dispose(&c);
    /* the signature's size: JOSE r||s (64 bytes) for ES256, the modulus size for RS256 */
    assert_int_equal(berth__base64_decode(&part, last + 1, strlen(last + 1), BERTH__BASE64_URL), 0);
    assert_int_equal(part.len, sig_len);
    berth_buf_clear(&part);
    assert_int_equal(
        berth__base64_decode(&part, jwt, (size_t)(strchr(jwt, '.') - jwt), BERTH__BASE64_URL), 0);
    header = json_loads(part.ptr, 0, NULL);
    assert_non_null(header);
    assert_string_equal(json_string_value(json_object_get(header, "typ")), "JWT");
    assert_string_equal(json_string_value(json_object_get(header, "alg")),
                        berth_token_key_alg(signer));
    assert_string_equal(json_string_value(json_object_get(header, "kid")),
                        berth_token_key_id(signer));
    json_decref(header);
    berth_buf_dispose(&part);
    free(jwt);
}

static void test_token__sign_verify_es256_rs256(void **state)
{
    berth_token_key *ec = make_key(ec_pkey, true);
    berth_token_key *ec_pub = make_key(ec_pkey, false);
    berth_token_key *rsa = make_key(rsa_pkey, true);
    berth_token_key *rsa_pub = make_key(rsa_pkey, false);
    char *jwt = NULL;
    berth_token_claims c = {0};
    (void)state;
    round_trip(ec, ec_pub, 64);
    round_trip(ec, ec, 64);
    round_trip(rsa, rsa_pub, 256);
    assert_int_equal(berth_token_sign(&jwt, ec_pub, &c), BERTH_EINVALID);
    assert_null(jwt);
    berth_token_key_free(ec);
    berth_token_key_free(ec_pub);
    berth_token_key_free(rsa);
    berth_token_key_free(rsa_pub);
}

/* Replace the header of `jwt` by `header_json`, keeping claims and signature. */
static char *with_header(const char *jwt, const char *header_json)
{
    berth_buf b = BERTH_BUF_INIT;
    assert_int_equal(berth__base64_encode(&b, header_json, strlen(header_json), BERTH__BASE64_URL),
                     0);
    assert_int_equal(berth_buf_puts(&b, strchr(jwt, '.')), 0);
    return berth_buf_detach(&b);
}

static void expect_refused(berth_token_key *key, const char *jwt, const char *iss, const char *aud,
                           int64_t now, const char *why)
{
    berth_token_claims c = {0};
    assert_int_equal(berth_token_verify(&c, key, jwt, iss, aud, now), BERTH_EUNAUTHORIZED);
    if (!strstr(berth_error_last(), why)) {
        fail_msg("got '%s', want '%s'", berth_error_last(), why);
    }
    berth_token_claims_dispose(&c);
}

static void test_token__verify_refusals(void **state)
{
    berth_token_key *ec = make_key(ec_pkey, true);
    berth_token_key *other = make_key(ec_other, false);
    berth_token_key *rsa = make_key(rsa_pkey, true);
    char *jwt = sign(ec, NOW, NOW + 300, "reg", "berth");
    char *tampered = strdup(jwt);
    char *none = with_header(jwt, "{\"typ\":\"JWT\",\"alg\":\"none\"}");
    char *hs = with_header(jwt, "{\"typ\":\"JWT\",\"alg\":\"HS256\"}");
    char *stripped = strdup(jwt);
    char *rsa_jwt = sign(rsa, NOW, NOW + 300, "reg", "berth");
    berth_token_claims c = {0};
    (void)state;

    /* flip one character of the claims */
    tampered[strchr(jwt, '.') - jwt + 5] ^= 1;
    expect_refused(ec, tampered, "berth", "reg", NOW, "");
    expect_refused(other, jwt, "berth", "reg", NOW, "invalid signature");
    expect_refused(ec, none, "berth", "reg", NOW, "alg is not ES256");
    expect_refused(ec, hs, "berth", "reg", NOW, "alg is not ES256");
    expect_refused(ec, rsa_jwt, "berth", "reg", NOW, "alg is not ES256");
    expect_refused(rsa, jwt, "berth", "reg", NOW, "alg is not RS256");
    *strrchr(stripped, '.') = '\0';
    expect_refused(ec, stripped, "berth", "reg", NOW, "not a JWS");
    expect_refused(ec, "a.b.c", "berth", "reg", NOW, "malformed header");
    expect_refused(ec, "", "berth", "reg", NOW, "not a JWS");
    expect_refused(ec, jwt, "berth", "other-service", NOW, "audience is not other-service");
    expect_refused(ec, jwt, "someone-else", "reg", NOW, "issuer is not someone-else");
    /* expiry and not-before, with the leeway */
    expect_refused(ec, jwt, "berth", "reg", NOW + 300 + BERTH_TOKEN_LEEWAY + 1, "expired");
    assert_int_equal(berth_token_verify(&c, ec, jwt, "berth", "reg", NOW + 300 + 30), 0);
    berth_token_claims_dispose(&c);
    expect_refused(ec, jwt, "berth", "reg", NOW - BERTH_TOKEN_LEEWAY - 1, "not valid yet");
    assert_int_equal(berth_token_verify(&c, ec, jwt, "berth", "reg", NOW - 30), 0);
    berth_token_claims_dispose(&c);
    /* NULL issuer skips the issuer check */
    assert_int_equal(berth_token_verify(&c, ec, jwt, NULL, "reg", NOW), 0);
    berth_token_claims_dispose(&c);

    free(jwt);
    free(tampered);
    free(none);
    free(hs);
    free(stripped);
    free(rsa_jwt);
    berth_token_key_free(ec);
    berth_token_key_free(other);
    berth_token_key_free(rsa);
}

static void test_token__endpoint(void **state)
{
    static const char yaml[] = "groups:\n  devs: [bob]\n"
                               "access:\n"
                               "  - repositories: \"team/*\"\n    groups: [devs]\n"
                               "    actions: [pull, push]\n"
                               "  - repositories: \"public/*\"\n    anonymous: true\n"
                               "    actions: [pull]\n";
    berth_config *cfg = NULL;
    berth_acl *acl = NULL;
    berth_token_key *key = make_key(ec_pkey, true);
    berth_buf body = BERTH_BUF_INIT;
    berth_token_claims c = {0};
    const char *scopes[] = {"repository:team/app:pull,push,delete repository:secret/x:pull",
                            "repository:public/img:pull,push registry:catalog:*"};
    json_t *json = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "t", yaml, strlen(yaml)), 0);
    assert_int_equal(berth_acl_new(&acl, cfg), 0);

    assert_int_equal(
        berth_token_endpoint(&body, key, acl, "berth", "reg", 600, "bob", scopes, 2, NOW), 0);
    json = json_loads(body.ptr, 0, NULL);
    assert_non_null(json);
    assert_string_equal(json_string_value(json_object_get(json, "token")),
                        json_string_value(json_object_get(json, "access_token")));
    assert_int_equal(json_integer_value(json_object_get(json, "expires_in")), 600);
    assert_string_equal(json_string_value(json_object_get(json, "issued_at")),
                        "2023-11-14T22:13:20Z");
    assert_int_equal(berth_token_verify(&c, key, json_string_value(json_object_get(json, "token")),
                                        "berth", "reg", NOW),
                     0);
    assert_string_equal(c.subject, "bob");
    assert_int_equal(c.expires, NOW + 600);
    /* bob: team/app pull+push (not delete), nothing on secret/x, nothing on public/img
     * (bob is not anonymous and no rule names him there), registry scope left out */
    assert_int_equal(c.access.count, 1);
    assert_string_equal(c.access.items[0].name, "team/app");
    assert_int_equal(c.access.items[0].actions, BERTH_ACTION_PULL | BERTH_ACTION_PUSH);
    berth_token_claims_dispose(&c);
    json_decref(json);

    /* anonymous: public/img pull only */
    berth_buf_clear(&body);
    assert_int_equal(
        berth_token_endpoint(&body, key, acl, "berth", "reg", 600, NULL, scopes, 2, NOW), 0);
    json = json_loads(body.ptr, 0, NULL);
    assert_int_equal(berth_token_verify(&c, key, json_string_value(json_object_get(json, "token")),
                                        "berth", "reg", NOW),
                     0);
    assert_string_equal(c.subject, "");
    assert_int_equal(c.access.count, 1);
    assert_string_equal(c.access.items[0].name, "public/img");
    assert_int_equal(c.access.items[0].actions, BERTH_ACTION_PULL);
    berth_token_claims_dispose(&c);
    json_decref(json);

    /* no scope: a token with an empty access list (docker login does this) */
    berth_buf_clear(&body);
    assert_int_equal(berth_token_endpoint(&body, key, acl, "berth", "reg", 60, "bob", NULL, 0, NOW),
                     0);
    /* a malformed scope is an error */
    const char *bad[] = {"repository"};
    assert_int_equal(berth_token_endpoint(&body, key, acl, "berth", "reg", 60, "bob", bad, 1, NOW),
                     BERTH_EINVALID);

    berth_buf_dispose(&body);
    berth_token_key_free(key);
    berth_acl_free(acl);
    berth_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token__scopes),
        cmocka_unit_test(test_token__challenges),
        cmocka_unit_test(test_token__key_properties),
        cmocka_unit_test(test_token__unsupported_keys),
        cmocka_unit_test(test_token__sign_verify_es256_rs256),
        cmocka_unit_test(test_token__verify_refusals),
        cmocka_unit_test(test_token__endpoint),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
