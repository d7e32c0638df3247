/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: digest grammar, known answers for SHA-256/SHA-512, the streaming hasher and
 * digests of files and descriptors. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/digest.h>
#include <berth/errors.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define E256   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ABC256 "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define MIL256 "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
#define E512                                                                                       \
    "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d28"    \
    "77eec2f63b931bd47417a81a538327af927da3e"
#define ABC512                                                                                     \
    "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a"    \
    "3feebbd454d4423643ce80e2a9ac94fa54ca49f"
#define MIL512                                                                                     \
    "e718483d0ce769644e2e42c7bc15b4638e1f98b13b2044285632a803afa973ebde0ff244877ea60a4cb0432ce"    \
    "577c31beb009c5c2c49aa2e4eadb217ad8cc09b"

typedef struct grammar_case {
    const char *input;
    int code;
} grammar_case;

static void test_digest__grammar_table(void **state)
{
    static const grammar_case cases[] = {
        {"sha256:" E256, 0},
        {"sha256:" ABC256, 0},
        {"sha512:" E512, 0},
        /* the algorithm's encoding */
        {"sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855", BERTH_EINVALID},
        {"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85", BERTH_EINVALID},
        {"sha256:" E256 "0", BERTH_EINVALID},
        {"sha256:zzb0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", BERTH_EINVALID},
        {"sha512:" E256, BERTH_EINVALID},
        {"sha256:" E512, BERTH_EINVALID},
        /* other algorithms: grammatical but unsupported */
        {"md5:d41d8cd98f00b204e9800998ecf8427e", BERTH_EUNSUPPORTED},
        {"sha384:abc", BERTH_EUNSUPPORTED},
        {"sha256+b64u:LCa0a2j_xo_5m0U8HTBBNBNCLXBkg7-g-YpeiGJm564", BERTH_EUNSUPPORTED},
        {"multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8", BERTH_EUNSUPPORTED},
        {"a.b_c-d:x=", BERTH_EUNSUPPORTED},
        /* grammar */
        {"", BERTH_EINVALID},
        {"sha256", BERTH_EINVALID},
        {":" E256, BERTH_EINVALID},
        {"sha256:", BERTH_EINVALID},
        {"SHA256:" E256, BERTH_EINVALID},
        {"sha256-:" E256, BERTH_EINVALID},
        {"-sha256:" E256, BERTH_EINVALID},
        {"sha..256:abc", BERTH_EINVALID},
        {"sha256 :" E256, BERTH_EINVALID},
        {"sha256: " E256, BERTH_EINVALID},
        {"sha256=" E256, BERTH_EINVALID},
        {"sha256@" E256, BERTH_EINVALID},
        {"foo:a+b", BERTH_EINVALID},
        {"foo:a/b", BERTH_EINVALID},
        {"foo:a:b", BERTH_EINVALID},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_digest d;
        memset(&d, 0x5a, sizeof(d));
        int rc = berth_digest_parse_str(&d, cases[i].input);
        if (rc != cases[i].code) {
            print_error("digest '%s': got %d want %d (%s)\n", cases[i].input, rc, cases[i].code,
                        berth_error_last());
        }
        assert_int_equal(rc, cases[i].code);
        if (rc == 0) {
            assert_string_equal(d.str, cases[i].input);
            assert_true(d.alg == (strncmp(cases[i].input, "sha256", 6) == 0 ? BERTH_DIGEST_SHA256
                                                                            : BERTH_DIGEST_SHA512));
        } else {
            assert_true(berth_error_last()[0] != '\0');
            assert_int_equal(d.str[0], 0x5a); /* untouched on failure */
        }
    }
    assert_int_equal(berth_digest_parse_str(NULL, NULL), BERTH_EINVALID);
}

static void test_digest__parse_messages(void **state)
{
    berth_digest d;
    (void)state;
    assert_int_equal(berth_digest_parse_str(&d, "sha256:" E512), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "64 hex digits"));
    assert_int_equal(berth_digest_parse_str(&d, "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E46"
                                                "49B934CA495991B7852B855"),
                     BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "lowercase"));
    assert_int_equal(berth_digest_parse_str(&d, "md5:abc"), BERTH_EUNSUPPORTED);
    assert_non_null(strstr(berth_error_last(), "md5"));
}

static void test_digest__parse_len(void **state)
{
    berth_digest d;
    const char *text = "sha256:" E256 "trailing";
    (void)state;
    assert_int_equal(berth_digest_parse(&d, text, 71), 0);
    assert_string_equal(d.str, "sha256:" E256);
    assert_string_equal(berth_digest_hex(&d), E256);
    assert_int_equal(berth_digest_parse(&d, text, 70), BERTH_EINVALID);
    assert_int_equal(berth_digest_parse(&d, text, 72), BERTH_EINVALID);
}

static void test_digest__helpers(void **state)
{
    berth_digest a, b, c;
    (void)state;
    assert_string_equal(berth_digest_alg_name(BERTH_DIGEST_SHA256), "sha256");
    assert_string_equal(berth_digest_alg_name(BERTH_DIGEST_SHA512), "sha512");
    assert_string_equal(berth_digest_alg_name(BERTH_DIGEST_NONE), "");
    assert_int_equal(berth_digest_parse_str(&a, "sha256:" E256), 0);
    assert_int_equal(berth_digest_parse_str(&b, "sha256:" E256), 0);
    assert_int_equal(berth_digest_parse_str(&c, "sha256:" ABC256), 0);
    assert_true(berth_digest_equal(&a, &b));
    assert_false(berth_digest_equal(&a, &c));
    assert_int_equal(berth_digest_parse_str(&c, "sha512:" E512), 0);
    assert_false(berth_digest_equal(&a, &c));
    assert_string_equal(berth_digest_hex(&c), E512);
}

static void test_digest__known_answers(void **state)
{
    berth_digest d;
    (void)state;
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "", 0), 0);
    assert_string_equal(d.str, "sha256:" E256);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA256, "abc", 3), 0);
    assert_string_equal(d.str, "sha256:" ABC256);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA512, "", 0), 0);
    assert_string_equal(d.str, "sha512:" E512);
    assert_int_equal(d.alg, BERTH_DIGEST_SHA512);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_SHA512, "abc", 3), 0);
    assert_string_equal(d.str, "sha512:" ABC512);
    assert_int_equal(berth_digest_buffer(&d, BERTH_DIGEST_NONE, "abc", 3), BERTH_EUNSUPPORTED);
}

/* One million 'a' through the streaming hasher in odd chunk sizes (1, 2, 3, ... 997). */
static void million_a(berth_digest_alg alg, const char *want)
{
    static char chunk[1000];
    berth_hasher *h = NULL;
    berth_digest d;
    size_t fed = 0, step = 1;

    memset(chunk, 'a', sizeof(chunk));
    assert_int_equal(berth_hasher_new(&h, alg), 0);
    while (fed < 1000000) {
        size_t n = step;
        if (n > 1000000 - fed) {
            n = 1000000 - fed;
        }
        assert_int_equal(berth_hasher_update(h, chunk, n), 0);
        fed += n;
        step = step % 997 + 2; /* odd-ish sizes wandering over 1..998 */
    }
    assert_true(berth_hasher_count(h) == 1000000);
    assert_int_equal(berth_hasher_peek(&d, h), 0);
    assert_string_equal(d.str, want);
    berth_hasher_free(h);
}

static void test_digest__million_a(void **state)
{
    (void)state;
    million_a(BERTH_DIGEST_SHA256, "sha256:" MIL256);
    million_a(BERTH_DIGEST_SHA512, "sha512:" MIL512);
}

static void test_digest__peek_then_continue(void **state)
{
    berth_hasher *h = NULL;
    berth_digest d;
    (void)state;
    assert_int_equal(berth_hasher_new(&h, BERTH_DIGEST_SHA256), 0);
    assert_int_equal(berth_hasher_peek(&d, h), 0);
    assert_string_equal(d.str, "sha256:" E256);
    assert_int_equal(berth_hasher_update(h, "a", 1), 0);
    assert_int_equal(berth_hasher_update(h, "", 0), 0);
    assert_int_equal(berth_hasher_update(h, "bc", 2), 0);
    assert_true(berth_hasher_count(h) == 3);
    assert_int_equal(berth_hasher_peek(&d, h), 0);
    assert_string_equal(d.str, "sha256:" ABC256);
    assert_int_equal(berth_hasher_peek(&d, h), 0); /* peeking twice changes nothing */
    assert_string_equal(d.str, "sha256:" ABC256);
    berth_hasher_free(h);
    berth_hasher_free(NULL);
    h = NULL;
    assert_int_equal(berth_hasher_new(&h, BERTH_DIGEST_NONE), BERTH_EUNSUPPORTED);
    assert_null(h);
}

static void test_digest__file_and_fd(void **state)
{
    char path[] = "/tmp/berth-test-digest-XXXXXX";
    berth_digest d, want;
    uint64_t size = 0;
    int fd = mkstemp(path);
    static char data[300000];
    (void)state;

    assert_true(fd >= 0);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (char)(i * 7 + 3);
    }
    assert_int_equal(write(fd, data, sizeof(data)), (ssize_t)sizeof(data));
    close(fd);

    assert_int_equal(berth_digest_buffer(&want, BERTH_DIGEST_SHA256, data, sizeof(data)), 0);
    assert_int_equal(berth_digest_file(&d, BERTH_DIGEST_SHA256, path, &size), 0);
    assert_true(berth_digest_equal(&d, &want));
    assert_true(size == sizeof(data));
    assert_int_equal(berth_digest_file(&d, BERTH_DIGEST_SHA512, path, NULL), 0);
    assert_int_equal(berth_digest_buffer(&want, BERTH_DIGEST_SHA512, data, sizeof(data)), 0);
    assert_true(berth_digest_equal(&d, &want));

    /* from the descriptor's current offset */
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_true(lseek(fd, 1000, SEEK_SET) == 1000);
    assert_int_equal(berth_digest_fd(&d, BERTH_DIGEST_SHA256, fd, &size), 0);
    assert_true(size == sizeof(data) - 1000);
    assert_int_equal(
        berth_digest_buffer(&want, BERTH_DIGEST_SHA256, data + 1000, sizeof(data) - 1000), 0);
    assert_true(berth_digest_equal(&d, &want));
    close(fd);

    /* an empty file */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(berth_digest_file(&d, BERTH_DIGEST_SHA256, path, &size), 0);
    assert_string_equal(d.str, "sha256:" E256);
    assert_true(size == 0);

    unlink(path);
    assert_int_equal(berth_digest_file(&d, BERTH_DIGEST_SHA256, path, &size), BERTH_ENOTFOUND);
    assert_non_null(strstr(berth_error_last(), path));
    assert_int_equal(berth_digest_file(&d, BERTH_DIGEST_SHA256, "/", &size), BERTH_EIO);
}

/* A hash written down mid-stream and continued elsewhere gives the digest of the whole stream. */
static void test_digest__export_import(void **state)
{
    static const berth_digest_alg algs[] = {BERTH_DIGEST_SHA256, BERTH_DIGEST_SHA512};
    char data[1000];
    (void)state;
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (char)(i * 7 + 3);
    }
    for (size_t a = 0; a < 2; a++) {
        for (size_t cut = 0; cut <= sizeof(data); cut += 77) {
            berth_hasher *h = NULL, *again = NULL;
            berth_digest whole, continued;
            char *text = NULL;
            assert_int_equal(berth_digest_buffer(&whole, algs[a], data, sizeof(data)), 0);
            assert_int_equal(berth_hasher_new(&h, algs[a]), 0);
            berth_hasher_update(h, data, cut);
            assert_int_equal(berth_hasher_export(h, &text), 0);
            berth_hasher_free(h);
            assert_int_equal(berth_hasher_import(&again, text), 0);
            assert_int_equal(berth_hasher_count(again), cut);
            berth_hasher_update(again, data + cut, sizeof(data) - cut);
            assert_int_equal(berth_hasher_peek(&continued, again), 0);
            assert_string_equal(continued.str, whole.str);
            berth_hasher_free(again);
            free(text);
        }
    }
    {
        berth_hasher *h = NULL;
        assert_int_equal(berth_hasher_import(&h, "sha256.1.5.00"), BERTH_EINVALID);
        assert_int_equal(berth_hasher_import(&h, "md5.1.0."), BERTH_EINVALID);
        assert_int_equal(berth_hasher_import(&h, NULL), BERTH_EINVALID);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_digest__grammar_table),
        cmocka_unit_test(test_digest__parse_messages),
        cmocka_unit_test(test_digest__parse_len),
        cmocka_unit_test(test_digest__helpers),
        cmocka_unit_test(test_digest__known_answers),
        cmocka_unit_test(test_digest__million_a),
        cmocka_unit_test(test_digest__peek_then_continue),
        cmocka_unit_test(test_digest__file_and_fd),
        cmocka_unit_test(test_digest__export_import),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
