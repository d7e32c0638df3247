/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests: the s3 backend's SigV4 signer against AWS's published vectors.
 *
 * 1. The Signature Version 4 test suite (aws-sig-v4-test-suite, once in the AWS General
 *    Reference; AKIDEXAMPLE, region us-east-1, service "service", 20150830T123600Z, host
 *    example.amazonaws.com): get-vanilla, get-vanilla-query-order-key-case,
 *    get-vanilla-query-order-value, get-vanilla-query-order-encoded, get-vanilla-query-unreserved,
 *    get-vanilla-utf8-query, get-vanilla-empty-query-key, get-unreserved, get-utf8,
 *    normalize-path/get-space, get-header-key-duplicate, get-header-value-order,
 *    get-header-value-trim, post-vanilla, post-vanilla-query, post-header-key-sort,
 *    post-header-value-case, post-x-www-form-urlencoded, post-x-www-form-urlencoded-parameters,
 *    post-sts-token/post-sts-header-before.
 * 2. The S3 examples of "Authenticating Requests: Using the Authorization Header" (GET Object
 *    with Range, PUT Object, GET Bucket Lifecycle, GET Bucket list objects) and of
 *    "Authenticating Requests: Using Query Parameters" (the presigned GET of test.txt), with
 *    AKIAIOSFODNN7EXAMPLE on examplebucket, 20130524T000000Z.
 * The expected signatures are the published ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "backend/s3/sigv4.h"

#include <berth/errors.h>

#include <string.h>

#define SUITE_DATE "20150830T123600Z"
#define SUITE_HOST "example.amazonaws.com"
#define UNRESERVED "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#define U1234      "\xe1\x88\xb4" /* U+1234 in UTF-8 */
#define EMPTY      BERTH_SIGV4_EMPTY_SHA256

static const berth__sigv4_creds SUITE_CREDS = {"AKIDEXAMPLE",
                                               "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", NULL};
static const berth__sigv4_creds S3_CREDS = {"AKIAIOSFODNN7EXAMPLE",
                                            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", NULL};

#define MAXP 6

typedef struct vector {
    const char *name;
    const char *method;
    const char *path;
    berth__sigv4_pair query[MAXP];
    berth__sigv4_pair headers[MAXP]; /* besides host and x-amz-date */
    const char *body;
    const char *signed_headers;
    const char *signature;
} vector;

static size_t count(const berth__sigv4_pair *p)
{
    size_t n = 0;
    while (n < MAXP && p[n].name) {
        n++;
    }
    return n;
}

/* Sign `v` and return the Authorization value in `out`. */
static void sign(berth_buf *out, const vector *v, const char *date, const char *host,
                 const char *region, const char *service, const berth__sigv4_creds *creds,
                 const char *payload_hash)
{
    berth__sigv4_pair h[MAXP + 2];
    size_t nh = count(v->headers);
    memcpy(h, v->headers, nh * sizeof(h[0]));
    h[nh++] = (berth__sigv4_pair){"Host", host};
    h[nh++] = (berth__sigv4_pair){"X-Amz-Date", date};
    berth__sigv4_request r = {v->method, v->path, v->query, count(v->query), h, nh, payload_hash};
    assert_int_equal(berth__sigv4_authorization(out, &r, date, region, service, creds), 0);
}

static void check_auth(const berth_buf *auth, const char *scope, const char *signed_headers,
                       const char *signature, const char *name)
{
    berth_buf want = BERTH_BUF_INIT;
    assert_int_equal(berth_buf_printf(&want,
                                      "AWS4-HMAC-SHA256 Credential=%s, SignedHeaders=%s, "
                                      "Signature=%s",
                                      scope, signed_headers, signature),
                     0);
    if (strcmp(berth_buf_cstr(auth), berth_buf_cstr(&want)) != 0) {
        print_error("%s:\n  got  %s\n  want %s\n", name, berth_buf_cstr(auth),
                    berth_buf_cstr(&want));
        fail();
    }
    berth_buf_dispose(&want);
}

static void test_s3_sigv4__aws_test_suite(void **state)
{
    static const vector cases[] = {
        {"get-vanilla",
         "GET",
         "/",
         {{0}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
        {"get-vanilla-query-order-key-case",
         "GET",
         "/",
         {{"Param2", "value2"}, {"Param1", "value1"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
        {"get-vanilla-query-order-value",
         "GET",
         "/",
         {{"Param1", "value2"}, {"Param1", "value1"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
        {"get-vanilla-query-order-encoded",
         "GET",
         "/",
         {{"Param-3", "Value3"}, {"Param", "Value2"}, {U1234, "Value1"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "371d3713e185cc334048618a97f809c9ffe339c62934c032af5a0e595648fcac"},
        {"get-vanilla-query-unreserved",
         "GET",
         "/",
         {{UNRESERVED, UNRESERVED}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
        {"get-vanilla-utf8-query",
         "GET",
         "/",
         {{U1234, "bar"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
        {"get-vanilla-empty-query-key",
         "GET",
         "/",
         {{"Param1", "value1"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
        {"get-unreserved",
         "GET",
         "/" UNRESERVED,
         {{0}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
        {"get-utf8",
         "GET",
         "/" U1234,
         {{0}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
        {"normalize-path/get-space",
         "GET",
         "/example space/",
         {{0}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741"},
        {"get-header-key-duplicate",
         "GET",
         "/",
         {{0}},
         {{"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"}},
         NULL,
         "host;my-header1;x-amz-date",
         "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
        {"get-header-value-order",
         "GET",
         "/",
         {{0}},
         {{"My-Header1", "value4"},
          {"My-Header1", "value1"},
          {"My-Header1", "value3"},
          {"My-Header1", "value2"}},
         NULL,
         "host;my-header1;x-amz-date",
         "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
        {"get-header-value-trim",
         "GET",
         "/",
         {{0}},
         {{"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}},
         NULL,
         "host;my-header1;my-header2;x-amz-date",
         "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
        {"post-vanilla",
         "POST",
         "/",
         {{0}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
        {"post-vanilla-query",
         "POST",
         "/",
         {{"Param1", "value1"}},
         {{0}},
         NULL,
         "host;x-amz-date",
         "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
        {"post-header-key-sort",
         "POST",
         "/",
         {{0}},
         {{"My-Header1", "value1"}},
         NULL,
         "host;my-header1;x-amz-date",
         "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
        {"post-header-value-case",
         "POST",
         "/",
         {{0}},
         {{"My-Header1", "VALUE1"}},
         NULL,
         "host;my-header1;x-amz-date",
         "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
        {"post-x-www-form-urlencoded",
         "POST",
         "/",
         {{0}},
         {{"Content-Type", "application/x-www-form-urlencoded"}},
         "Param1=value1",
         "content-type;host;x-amz-date",
         "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
        {"post-x-www-form-urlencoded-parameters",
         "POST",
         "/",
         {{0}},
         {{"Content-Type", "application/x-www-form-urlencoded; charset=utf8"}},
         "Param1=value1",
         "content-type;host;x-amz-date",
         "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe"},
        {"post-sts-header-before",
         "POST",
         "/",
         {{0}},
         {{"X-Amz-Security-Token",
           "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicR"
           "XmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsbu"
           "rEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPP"
           "kUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="}},
         NULL,
         "host;x-amz-date;x-amz-security-token",
         "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const vector *v = &cases[i];
        berth_buf auth = BERTH_BUF_INIT;
        char hash[65];
        const char *body = v->body ? v->body : "";
        assert_int_equal(berth__sigv4_sha256_hex(hash, body, strlen(body)), 0);
        sign(&auth, v, SUITE_DATE, SUITE_HOST, "us-east-1", "service", &SUITE_CREDS, hash);
        check_auth(&auth, "AKIDEXAMPLE/20150830/us-east-1/service/aws4_request", v->signed_headers,
                   v->signature, v->name);
        berth_buf_dispose(&auth);
    }
}

/* The canonical requests the suite publishes for two of its cases, byte for byte. */
static void test_s3_sigv4__canonical_requests(void **state)
{
    berth__sigv4_pair q[] = {{"Param-3", "Value3"}, {"Param", "Value2"}, {U1234, "Value1"}};
    berth__sigv4_pair h[] = {{"X-Amz-Date", SUITE_DATE}, {"Host", SUITE_HOST}};
    berth__sigv4_request r = {"GET", "/", q, 3, h, 2, EMPTY};
    berth_buf creq = BERTH_BUF_INIT, names = BERTH_BUF_INIT;
    (void)state;

    assert_int_equal(berth__sigv4_canonical_request(&creq, &names, &r), 0);
    assert_string_equal(berth_buf_cstr(&creq),
                        "GET\n/\n%E1%88%B4=Value1&Param=Value2&Param-3=Value3\n"
                        "host:example.amazonaws.com\n"
                        "x-amz-date:20150830T123600Z\n\n"
                        "host;x-amz-date\n" EMPTY);
    assert_string_equal(berth_buf_cstr(&names), "host;x-amz-date");

    berth_buf_clear(&creq);
    berth__sigv4_pair q2[] = {{"Param2", "value2"}, {"Param1", "value1"}};
    r.query = q2;
    r.nquery = 2;
    assert_int_equal(berth__sigv4_canonical_request(&creq, NULL, &r), 0);
    assert_string_equal(berth_buf_cstr(&creq), "GET\n/\nParam1=value1&Param2=value2\n"
                                               "host:example.amazonaws.com\n"
                                               "x-amz-date:20150830T123600Z\n\n"
                                               "host;x-amz-date\n" EMPTY);
    berth_buf_dispose(&creq);
    berth_buf_dispose(&names);
}

#define S3_DATE  "20130524T000000Z"
#define S3_HOST  "examplebucket.s3.amazonaws.com"
#define S3_SCOPE "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request"

static void test_s3_sigv4__s3_header_examples(void **state)
{
    char welcome[65];
    (void)state;
    assert_int_equal(berth__sigv4_sha256_hex(welcome, "Welcome to Amazon S3.", 21), 0);
    assert_string_equal(welcome,
                        "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
    const vector cases[] = {
        {"GET Object (Range)",
         "GET",
         "/test.txt",
         {{0}},
         {{"Range", "bytes=0-9"}, {"x-amz-content-sha256", EMPTY}},
         NULL,
         "host;range;x-amz-content-sha256;x-amz-date",
         "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
        {"PUT Object",
         "PUT",
         "/test$file.text",
         {{0}},
         {{"Date", "Fri, 24 May 2013 00:00:00 GMT"},
          {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
          {"x-amz-content-sha256", welcome}},
         NULL,
         "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
         "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
        {"GET Bucket Lifecycle",
         "GET",
         "/",
         {{"lifecycle", ""}},
         {{"x-amz-content-sha256", EMPTY}},
         NULL,
         "host;x-amz-content-sha256;x-amz-date",
         "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
        {"GET Bucket (List Objects)",
         "GET",
         "/",
         {{"prefix", "J"}, {"max-keys", "2"}},
         {{"x-amz-content-sha256", EMPTY}},
         NULL,
         "host;x-amz-content-sha256;x-amz-date",
         "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_buf auth = BERTH_BUF_INIT;
        const char *hash = i == 1 ? welcome : EMPTY;
        sign(&auth, &cases[i], S3_DATE, S3_HOST, "us-east-1", "s3", &S3_CREDS, hash);
        check_auth(&auth, S3_SCOPE, cases[i].signed_headers, cases[i].signature, cases[i].name);
        berth_buf_dispose(&auth);
    }
}

static void test_s3_sigv4__s3_presigned_example(void **state)
{
    berth_buf q = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth__sigv4_presign(&q, "GET", "/test.txt", NULL, 0, S3_HOST, S3_DATE, 86400,
                                          "us-east-1", "s3", &S3_CREDS),
                     0);
    assert_string_equal(
        berth_buf_cstr(&q),
        "X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
        "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature="
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    berth_buf_dispose(&q);

    /* a session token is part of the signed query */
    berth__sigv4_creds tok = S3_CREDS;
    tok.session_token = "token/with+chars";
    assert_int_equal(berth__sigv4_presign(&q, "GET", "/test.txt", NULL, 0, S3_HOST, S3_DATE, 86400,
                                          "us-east-1", "s3", &tok),
                     0);
    assert_non_null(strstr(berth_buf_cstr(&q), "&X-Amz-Security-Token=token%2Fwith%2Bchars&"));
    assert_null(strstr(berth_buf_cstr(&q), "aeeed9bbccd4d02ee5c0109b86d86835f995330d"));
    berth_buf_dispose(&q);
}

static void test_s3_sigv4__encoding(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    const char s[] = "a b/c+d~e%f\xc3\xa9=&";
    (void)state;
    assert_int_equal(berth__sigv4_uri_encode(&b, s, strlen(s), true), 0);
    assert_string_equal(berth_buf_cstr(&b), "a%20b/c%2Bd~e%25f%C3%A9%3D%26");
    berth_buf_clear(&b);
    assert_int_equal(berth__sigv4_uri_encode(&b, s, strlen(s), false), 0);
    assert_string_equal(berth_buf_cstr(&b), "a%20b%2Fc%2Bd~e%25f%C3%A9%3D%26");
    berth_buf_clear(&b);

    berth__sigv4_pair q[] = {{"uploads", ""}, {"prefix", "x/y z"}, {"list-type", "2"}};
    assert_int_equal(berth__sigv4_query(&b, q, 3), 0);
    assert_string_equal(berth_buf_cstr(&b), "list-type=2&prefix=x%2Fy%20z&uploads=");
    berth_buf_dispose(&b);

    char d[17];
    berth__sigv4_date(d, 1369353600); /* 2013-05-24T00:00:00Z */
    assert_string_equal(d, S3_DATE);
}

static void test_s3_sigv4__refuses_bad_input(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    berth__sigv4_pair h[] = {{"", "x"}};
    berth__sigv4_request r = {"GET", "/", NULL, 0, h, 1, EMPTY};
    (void)state;
    assert_int_equal(berth__sigv4_canonical_request(&b, NULL, &r), BERTH_EINVALID);
    r.nheaders = 0;
    assert_int_equal(berth__sigv4_authorization(&b, &r, "2013-05-24", "us-east-1", "s3", &S3_CREDS),
                     BERTH_EINVALID);
    assert_int_equal(berth__sigv4_authorization(&b, &r, S3_DATE, "us-east-1", "s3", NULL),
                     BERTH_EINVALID);
    berth_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_sigv4__aws_test_suite),
        cmocka_unit_test(test_s3_sigv4__canonical_requests),
        cmocka_unit_test(test_s3_sigv4__s3_header_examples),
        cmocka_unit_test(test_s3_sigv4__s3_presigned_example),
        cmocka_unit_test(test_s3_sigv4__encoding),
        cmocka_unit_test(test_s3_sigv4__refuses_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
