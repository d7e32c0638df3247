/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: base/base64.c, the one base64 codec: RFC 4648 section 10 vectors in every mode,
 * and the strictness each caller relies on (Basic credentials and descriptor `data`: STD; JWTs:
 * URL; docker config files: LAX). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "base/base64.h"

#include <berth/errors.h>

#include <string.h>

typedef struct vector {
    const char *plain;
    const char *std; /* RFC 4648 section 10, padded */
    const char *url; /* the same, without padding */
} vector;

static const vector rfc4648[] = {
    {"", "", ""},
    {"f", "Zg==", "Zg"},
    {"fo", "Zm8=", "Zm8"},
    {"foo", "Zm9v", "Zm9v"},
    {"foob", "Zm9vYg==", "Zm9vYg"},
    {"fooba", "Zm9vYmE=", "Zm9vYmE"},
    {"foobar", "Zm9vYmFy", "Zm9vYmFy"},
};

static void check_encode(const void *data, size_t len, berth__base64_mode mode, const char *want)
{
    berth_buf b = BERTH_BUF_INIT;
    assert_int_equal(berth__base64_encode(&b, data, len, mode), 0);
    assert_string_equal(berth_buf_cstr(&b), want);
    assert_int_equal(b.len, strlen(want));
    berth_buf_dispose(&b);
}

static void check_decode(const char *text, berth__base64_mode mode, int code, const void *want,
                         size_t want_len)
{
    berth_buf b = BERTH_BUF_INIT;
    int rc;

    /* what was in the buffer stays in front, and a refusal leaves it as it was */
    assert_int_equal(berth_buf_puts(&b, "x"), 0);
    rc = berth__base64_decode(&b, text, strlen(text), mode);
    if (rc != code) {
        fail_msg("\"%s\" mode %d: got %d want %d (%s)", text, (int)mode, rc, code,
                 berth_error_last());
    }
    if (code == 0) {
        assert_int_equal(b.len, 1 + want_len);
        assert_memory_equal(b.ptr + 1, want, want_len);
    } else {
        assert_int_equal(b.len, 1);
        assert_string_equal(b.ptr, "x");
        assert_non_null(strstr(berth_error_last(), "base64"));
    }
    assert_int_equal(b.ptr[b.len], '\0');
    berth_buf_dispose(&b);
}

static void test_base64__rfc4648_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rfc4648) / sizeof(rfc4648[0]); i++) {
        const vector *v = &rfc4648[i];
        size_t n = strlen(v->plain);
        check_encode(v->plain, n, BERTH__BASE64_STD, v->std);
        check_encode(v->plain, n, BERTH__BASE64_LAX, v->std);
        check_encode(v->plain, n, BERTH__BASE64_URL, v->url);
        check_decode(v->std, BERTH__BASE64_STD, 0, v->plain, n);
        check_decode(v->url, BERTH__BASE64_URL, 0, v->plain, n);
        check_decode(v->std, BERTH__BASE64_LAX, 0, v->plain, n);
        check_decode(v->url, BERTH__BASE64_LAX, 0, v->plain, n);
    }
}

static void test_base64__alphabets(void **state)
{
    static const unsigned char hi[] = {0xfb, 0xff, 0xbf}; /* 62 63 62 63 */
    (void)state;
    check_encode(hi, sizeof(hi), BERTH__BASE64_STD, "+/+/");
    check_encode(hi, sizeof(hi), BERTH__BASE64_URL, "-_-_");
    check_decode("+/+/", BERTH__BASE64_STD, 0, hi, sizeof(hi));
    check_decode("-_-_", BERTH__BASE64_URL, 0, hi, sizeof(hi));
    check_decode("-_-_", BERTH__BASE64_STD, BERTH_EINVALID, NULL, 0);
    check_decode("+/+/", BERTH__BASE64_URL, BERTH_EINVALID, NULL, 0);
    /* LAX takes both, even mixed */
    check_decode("+_-/", BERTH__BASE64_LAX, 0, hi, sizeof(hi));
}

static void test_base64__every_byte_round_trips(void **state)
{
    unsigned char all[256];
    berth__base64_mode modes[] = {BERTH__BASE64_STD, BERTH__BASE64_URL};
    (void)state;
    for (size_t i = 0; i < sizeof(all); i++) {
        all[i] = (unsigned char)i;
    }
    for (size_t m = 0; m < 2; m++) {
        for (size_t len = 0; len <= sizeof(all); len += 1 + len / 8) {
            berth_buf enc = BERTH_BUF_INIT, dec = BERTH_BUF_INIT;
            assert_int_equal(berth__base64_encode(&enc, all + 256 - len, len, modes[m]), 0);
            assert_int_equal(berth__base64_decode(&dec, enc.ptr, enc.len, modes[m]), 0);
            assert_int_equal(dec.len, len);
            assert_memory_equal(dec.ptr, all + 256 - len, len);
            berth_buf_dispose(&enc);
            berth_buf_dispose(&dec);
        }
    }
}

/* Basic credentials and descriptor `data` (STD): one spelling per value. */
static void test_base64__std_is_strict(void **state)
{
    static const char *const bad[] = {
        "Zg",       /* padding required */
        "Zm8",      /* padding required */
        "Zg=",      /* short padding */
        "Zg===",    /* long padding */
        "Z===",     /* three '=' */
        "====",     /* only padding */
        "=Zg=",     /* '=' not at the end */
        "Zg==Zg==", /* padding in the middle */
        "Zh==",     /* unused bits set (canonical: Zg==) */
        "Zm9=",     /* unused bits set (canonical: Zm8=) */
        "Zm9v\n",   /* no whitespace */
        " Zm9v",    /* no whitespace */
        "Zm 9v",    /* no whitespace */
        "Zm9v\r\n", /* no line ends */
        "Zm9v!",    /* not the alphabet */
        "e3!=",     /* not the alphabet */
        "Zm9vY",    /* dangling character */
        "Zm9v-_==", /* URL alphabet */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_decode(bad[i], BERTH__BASE64_STD, BERTH_EINVALID, NULL, 0);
    }
    /* a NUL inside the text is a character like any other, not an end */
    {
        berth_buf b = BERTH_BUF_INIT;
        assert_int_equal(berth__base64_decode(&b, "Zg\0=", 4, BERTH__BASE64_STD), BERTH_EINVALID);
        berth_buf_dispose(&b);
    }
}

/* JWT segments (URL): no padding at all, unused bits zero. */
static void test_base64__url_is_strict(void **state)
{
    static const char *const bad[] = {
        "Zg==",  /* no padding in JWS */
        "Zm8=",  /* no padding in JWS */
        "Z",     /* dangling character */
        "Zm9vY", /* dangling character */
        "Zh",    /* unused bits set */
        "Zm9",   /* unused bits set */
        "Zm+v",  /* standard alphabet */
        "Zm/v",  /* standard alphabet */
        "Zm9v.", /* the JWS separator is not part of a segment */
        "Zm9v\n",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        check_decode(bad[i], BERTH__BASE64_URL, BERTH_EINVALID, NULL, 0);
    }
}

/* docker config.json `auth` (LAX): as users write it by hand, but still base64. */
static void test_base64__lax_reads_what_people_write(void **state)
{
    (void)state;
    check_decode("YTpi", BERTH__BASE64_LAX, 0, "a:b", 3);
    check_decode("YTpiYw", BERTH__BASE64_LAX, 0, "a:bc", 4);
    check_decode("YTpiYw=", BERTH__BASE64_LAX, 0, "a:bc", 4);
    check_decode("YTpiYw==", BERTH__BASE64_LAX, 0, "a:bc", 4);
    check_decode("YTpiYw==\n", BERTH__BASE64_LAX, 0, "a:bc", 4);
    check_decode("YTpiYw==\r\n", BERTH__BASE64_LAX, 0, "a:bc", 4);
    check_decode("Zh==", BERTH__BASE64_LAX, 0, "f", 1); /* unused bits ignored */
    check_decode("", BERTH__BASE64_LAX, 0, "", 0);
    check_decode("!!!", BERTH__BASE64_LAX, BERTH_EINVALID, NULL, 0);
    check_decode("YTpiY", BERTH__BASE64_LAX, BERTH_EINVALID, NULL, 0); /* dangling */
    check_decode("YT=pi", BERTH__BASE64_LAX, BERTH_EINVALID, NULL, 0); /* '=' inside */
    check_decode("YT pi", BERTH__BASE64_LAX, BERTH_EINVALID, NULL, 0); /* space inside */
}

static void test_base64__ceiling(void **state)
{
    berth_buf b = BERTH_BUF_INIT_MAX(3);
    (void)state;
    /* the ceiling counts the decoded bytes, not an estimate from the text's length */
    assert_int_equal(berth__base64_decode(&b, "Zm8=", 4, BERTH__BASE64_STD), 0);
    assert_int_equal(b.len, 2);
    assert_int_equal(berth__base64_decode(&b, "Zm8=", 4, BERTH__BASE64_STD), BERTH_ETOOBIG);
    assert_int_equal(b.len, 2);
    berth_buf_dispose(&b);
    assert_int_equal(berth__base64_encode(&b, "fo", 2, BERTH__BASE64_URL), 0);
    assert_string_equal(b.ptr, "Zm8");
    assert_int_equal(berth__base64_encode(&b, "f", 1, BERTH__BASE64_URL), BERTH_ETOOBIG);
    assert_string_equal(b.ptr, "Zm8");
    berth_buf_dispose(&b);
}

static void test_base64__message_names_the_offset(void **state)
{
    berth_buf b = BERTH_BUF_INIT;
    (void)state;
    assert_int_equal(berth__base64_decode(&b, "Zm9v*m9v", 8, BERTH__BASE64_STD), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "at 4"));
    berth_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64__rfc4648_vectors),
        cmocka_unit_test(test_base64__alphabets),
        cmocka_unit_test(test_base64__every_byte_round_trips),
        cmocka_unit_test(test_base64__std_is_strict),
        cmocka_unit_test(test_base64__url_is_strict),
        cmocka_unit_test(test_base64__lax_reads_what_people_write),
        cmocka_unit_test(test_base64__ceiling),
        cmocka_unit_test(test_base64__message_names_the_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
