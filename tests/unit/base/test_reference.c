/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: repository names, tags, image references (docker's normalisation, with cases
 * from distribution/reference's reference_test.go and normalize_test.go) and oci: references. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/errors.h>
#include <berth/reference.h>

#include <string.h>

#define D256 "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
#define H64  "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"

typedef struct grammar_case {
    const char *input;
    int code;
    const char *msg; /* a word the message must contain, or NULL */
} grammar_case;

static char *repeat(char c, size_t n)
{
    static char buf[1024];
    assert_true(n < sizeof(buf));
    memset(buf, c, n);
    buf[n] = '\0';
    return buf;
}

static void test_reference__name_grammar(void **state)
{
    static const grammar_case cases[] = {
        {"a", 0, NULL},
        {"alpine", 0, NULL},
        {"library/alpine", 0, NULL},
        {"a/b/c/d", 0, NULL},
        {"foo.bar", 0, NULL},
        {"foo_bar", 0, NULL},
        {"foo__bar", 0, NULL},
        {"foo-bar", 0, NULL},
        {"foo---bar", 0, NULL},
        {"f00/b4r-1.2_3__4", 0, NULL},
        {"0", 0, NULL},
        {"", BERTH_EINVALID, "empty"},
        {"Foo", BERTH_EINVALID, "lowercase"},
        {"foo/Bar", BERTH_EINVALID, "lowercase"},
        {"foo___bar", BERTH_EINVALID, "separators"},
        {"foo._bar", BERTH_EINVALID, "separators"},
        {"foo.-bar", BERTH_EINVALID, "separators"},
        {"foo-.bar", BERTH_EINVALID, "separators"},
        {"-foo", BERTH_EINVALID, "empty path component"},
        {".foo", BERTH_EINVALID, "empty path component"},
        {"_foo", BERTH_EINVALID, "empty path component"},
        {"/foo", BERTH_EINVALID, "empty path component"},
        {"foo//bar", BERTH_EINVALID, "empty path component"},
        {"foo/", BERTH_EINVALID, "ends with '/'"},
        {"foo-", BERTH_EINVALID, "ends with a separator"},
        {"foo.", BERTH_EINVALID, "ends with a separator"},
        {"foo/-bar", BERTH_EINVALID, "empty path component"},
        {"foo:bar", BERTH_EINVALID, "invalid character"},
        {"foo bar", BERTH_EINVALID, "invalid character"},
        {"foo@bar", BERTH_EINVALID, "invalid character"},
        {"f\xc3\xa9", BERTH_EINVALID, "invalid character"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = berth_name_validate(cases[i].input);
        if (rc != cases[i].code) {
            print_error("name '%s': got %d want %d (%s)\n", cases[i].input, rc, cases[i].code,
                        berth_error_last());
        }
        assert_int_equal(rc, cases[i].code);
        if (cases[i].msg) {
            assert_non_null(strstr(berth_error_last(), cases[i].msg));
        }
    }
    assert_int_equal(berth_name_validate(NULL), BERTH_EINVALID);
}

static void test_reference__name_length(void **state)
{
    (void)state;
    assert_int_equal(berth_name_validate(repeat('a', 255)), 0);
    assert_int_equal(berth_name_validate(repeat('a', 256)), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "255"));
    /* the _len variant looks only at its span */
    assert_int_equal(berth_name_validate_len("foo/bar:tag", 7), 0);
    assert_int_equal(berth_name_validate_len("foo/", 4), BERTH_EINVALID);
}

static void test_reference__tag_grammar(void **state)
{
    static const grammar_case cases[] = {
        {"latest", 0, NULL},
        {"v1.2.3", 0, NULL},
        {"_hidden", 0, NULL},
        {"A-Z_a-z.0-9", 0, NULL},
        {"3", 0, NULL},
        {"UPPER", 0, NULL},
        {"", BERTH_EINVALID, "empty"},
        {".hidden", BERTH_EINVALID, "start"},
        {"-dash", BERTH_EINVALID, "start"},
        {"a:b", BERTH_EINVALID, "invalid character"},
        {"a/b", BERTH_EINVALID, "invalid character"},
        {"a b", BERTH_EINVALID, "invalid character"},
        {"a+b", BERTH_EINVALID, "invalid character"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = berth_tag_validate(cases[i].input);
        if (rc != cases[i].code) {
            print_error("tag '%s': got %d want %d\n", cases[i].input, rc, cases[i].code);
        }
        assert_int_equal(rc, cases[i].code);
        if (cases[i].msg) {
            assert_non_null(strstr(berth_error_last(), cases[i].msg));
        }
    }
    assert_int_equal(berth_tag_validate(repeat('t', 128)), 0);
    assert_int_equal(berth_tag_validate(repeat('t', 129)), BERTH_EINVALID);
    assert_int_equal(berth_tag_validate(NULL), BERTH_EINVALID);
}

typedef struct ref_case {
    const char *input;
    int code;
    const char *registry;
    const char *repository;
    const char *tag;
    const char *digest;
    const char *canonical;
} ref_case;

static void test_reference__parse_table(void **state)
{
    static const ref_case cases[] = {
        /* docker hub normalisation */
        {"alpine", 0, "docker.io", "library/alpine", "latest", NULL,
         "docker.io/library/alpine:latest"},
        {"alpine:3.19", 0, "docker.io", "library/alpine", "3.19", NULL, NULL},
        {"library/debian", 0, "docker.io", "library/debian", "latest", NULL, NULL},
        {"docker/docker", 0, "docker.io", "docker/docker", "latest", NULL, NULL},
        {"docker.io/debian", 0, "docker.io", "library/debian", "latest", NULL, NULL},
        {"docker.io/library/debian", 0, "docker.io", "library/debian", "latest", NULL, NULL},
        {"index.docker.io/debian", 0, "docker.io", "library/debian", "latest", NULL, NULL},
        {"index.docker.io/docker/docker", 0, "docker.io", "docker/docker", "latest", NULL, NULL},
        {"test_com", 0, "docker.io", "library/test_com", "latest", NULL, NULL},
        {"test.com:tag", 0, "docker.io", "library/test.com", "tag", NULL, NULL},
        {"test.com:5000", 0, "docker.io", "library/test.com", "5000", NULL, NULL},
        {"localhost:5000", 0, "docker.io", "library/localhost", "5000", NULL, NULL},
        {"foo/bar/baz", 0, "docker.io", "foo/bar/baz", "latest", NULL, NULL},
        /* explicit registries */
        {"test.com/repo:tag", 0, "test.com", "repo", "tag", NULL, "test.com/repo:tag"},
        {"test:5000/repo", 0, "test:5000", "repo", "latest", NULL, NULL},
        {"test:5000/repo:tag", 0, "test:5000", "repo", "tag", NULL, NULL},
        {"localhost/foo", 0, "localhost", "foo", "latest", NULL, "localhost/foo:latest"},
        {"localhost:5000/foo/bar:v1", 0, "localhost:5000", "foo/bar", "v1", NULL, NULL},
        {"127.0.0.1:5000/app", 0, "127.0.0.1:5000", "app", "latest", NULL, NULL},
        {"[::1]:5000/app:x", 0, "[::1]:5000", "app", "x", NULL, NULL},
        {"[2001:db8::1]/app", 0, "[2001:db8::1]", "app", "latest", NULL, NULL},
        {"sub-dom1.foo.com/bar/baz/quux", 0, "sub-dom1.foo.com", "bar/baz/quux", "latest", NULL,
         NULL},
        {"ghcr.io/owner/app", 0, "ghcr.io", "owner/app", "latest", NULL, NULL},
        /* digests */
        {"test:5000/repo@" D256, 0, "test:5000", "repo", NULL, D256, "test:5000/repo@" D256},
        {"test:5000/repo:tag@" D256, 0, "test:5000", "repo", "tag", D256, NULL},
        {"busybox@" D256, 0, "docker.io", "library/busybox", NULL, D256, NULL},
        {"busybox:latest@" D256, 0, "docker.io", "library/busybox", "latest", D256, NULL},
        /* errors */
        {"", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {":justtag", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"@" D256, BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"repo@sha256:ffff", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"repo@md5:ffffffffffffffffffffffffffffffff", BERTH_EUNSUPPORTED, NULL, NULL, NULL, NULL,
         NULL},
        {"repo@", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"validname@invaliddigest:ffffffffffffffffffffffffffffffff", BERTH_EUNSUPPORTED, NULL, NULL,
         NULL, NULL, NULL},
        {"Uppercase:tag", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"Uppercase/lower", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"Example.COM/lower", 0, "Example.COM", "lower", "latest", NULL, NULL},
        {"test.com/Upper", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"aa/asdf$$^/aa", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"foo:", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"foo:.bad", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"test.com/", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"-bad.com/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"bad-.com/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"a..com/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"host:/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"host:99999/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"host:5x/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"[zz::1]/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"[::1/foo", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"foo/bar:a:b", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"docker://alpine", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {H64, BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {" alpine", BERTH_EINVALID, NULL, NULL, NULL, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const ref_case *c = &cases[i];
        berth_reference *r = NULL;
        int rc = berth_reference_parse(&r, c->input);
        if (rc != c->code) {
            print_error("reference '%s': got %d want %d (%s)\n", c->input, rc, c->code,
                        berth_error_last());
        }
        assert_int_equal(rc, c->code);
        if (rc < 0) {
            assert_null(r);
            assert_true(berth_error_last()[0] != '\0');
            continue;
        }
        assert_string_equal(r->registry, c->registry);
        assert_string_equal(r->repository, c->repository);
        if (c->tag) {
            assert_non_null(r->tag);
            assert_string_equal(r->tag, c->tag);
        } else {
            assert_null(r->tag);
        }
        assert_int_equal(r->has_digest, c->digest != NULL);
        if (c->digest) {
            assert_string_equal(r->digest.str, c->digest);
        }
        /* canonical text, and it parses back to the same */
        berth_buf b = BERTH_BUF_INIT;
        assert_int_equal(berth_reference_format(&b, r), 0);
        if (c->canonical) {
            assert_string_equal(berth_buf_cstr(&b), c->canonical);
        }
        berth_reference *again = NULL;
        assert_int_equal(berth_reference_parse(&again, berth_buf_cstr(&b)), 0);
        assert_string_equal(again->registry, r->registry);
        assert_string_equal(again->repository, r->repository);
        assert_true((again->tag == NULL) == (r->tag == NULL));
        if (r->tag) {
            assert_string_equal(again->tag, r->tag);
        }
        assert_int_equal(again->has_digest, r->has_digest);
        berth_reference_free(again);
        berth_buf_dispose(&b);
        berth_reference_free(r);
    }
}

static void test_reference__parse_messages(void **state)
{
    berth_reference *r = NULL;
    (void)state;
    assert_int_equal(berth_reference_parse(&r, "Foo:tag"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "lowercase"));
    assert_int_equal(berth_reference_parse(&r, "Foo/bar"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "lowercase"));
    assert_int_equal(berth_reference_parse(&r, "foo@sha256:abc"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "reference digest: "));
    assert_int_equal(berth_reference_parse(&r, "foo:-x"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "tag"));
    assert_int_equal(berth_reference_parse(&r, "host:70000/foo"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "port"));
    assert_int_equal(berth_reference_parse(&r, H64), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "hex"));
    assert_int_equal(berth_reference_parse(NULL, "alpine"), BERTH_EINVALID);
    assert_int_equal(berth_reference_parse(&r, NULL), BERTH_EINVALID);
    assert_null(r);
    berth_reference_free(NULL);
    /* a success leaves no stale message behind */
    assert_int_equal(berth_reference_parse(&r, "alpine"), 0);
    assert_string_equal(berth_error_last(), "");
    assert_int_equal(berth_error_last_code(), BERTH_OK);
    berth_reference_free(r);
}

static void test_reference__total_length(void **state)
{
    char text[600];
    berth_reference *r = NULL;
    (void)state;
    /* "example.com/" (12) + 243 = 255: accepted; one more byte is refused */
    memcpy(text, "example.com/", 12);
    memcpy(text + 12, repeat('a', 243), 244);
    assert_int_equal(berth_reference_parse(&r, text), 0);
    assert_int_equal(strlen(r->repository), 243);
    berth_reference_free(r);
    r = NULL;
    memcpy(text + 12, repeat('a', 244), 245);
    assert_int_equal(berth_reference_parse(&r, text), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "255"));
    /* "docker.io/library/" counts too: 18 + 237 = 255 */
    assert_int_equal(berth_reference_parse(&r, repeat('b', 237)), 0);
    berth_reference_free(r);
    r = NULL;
    assert_int_equal(berth_reference_parse(&r, repeat('b', 238)), BERTH_EINVALID);
}

static void test_reference__loopback(void **state)
{
    static const struct {
        const char *input;
        bool loopback;
    } cases[] = {
        {"localhost/foo", true},
        {"localhost:5000/foo", true},
        {"LOCALHOST:5000/foo", true},
        {"127.0.0.1/foo", true},
        {"127.0.0.1:43210/foo:t", true},
        {"[::1]/foo", true},
        {"[::1]:5000/foo", true},
        {"alpine", false},
        {"docker.io/library/alpine", false},
        {"127.0.0.10:5000/foo", false},
        {"localhost.example.com/foo", false},
        {"10.0.0.1:5000/foo", false},
        {"[::2]:5000/foo", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_reference *r = NULL;
        assert_int_equal(berth_reference_parse(&r, cases[i].input), 0);
        if (berth_reference_is_loopback_registry(r) != cases[i].loopback) {
            print_error("loopback '%s'\n", cases[i].input);
        }
        assert_int_equal(berth_reference_is_loopback_registry(r), cases[i].loopback);
        berth_reference_free(r);
    }
    assert_false(berth_reference_is_loopback_registry(NULL));
}

static void test_reference__ref_name_grammar(void **state)
{
    /* the image-spec ref.name grammar, checked against skopeo 1.9's "Invalid image" verdicts */
    static const grammar_case cases[] = {
        {"v1", 0, NULL},
        {"latest", 0, NULL},
        {"UPPER", 0, NULL},
        {"1.0.0-rc.1", 0, NULL},
        {"a--b", 0, NULL},
        {"a@b+c", 0, NULL},
        {"a:b", 0, NULL},
        {"a/b", 0, NULL},
        {"example.com:5000/app:v1", 0, NULL},
        {"", BERTH_EINVALID, "empty"},
        {"_x", BERTH_EINVALID, "separator"},
        {".x", BERTH_EINVALID, "separator"},
        {"a_", BERTH_EINVALID, "ends with"},
        {"a/", BERTH_EINVALID, "ends with"},
        {"a---b", BERTH_EINVALID, "separator"},
        {"a//b", BERTH_EINVALID, "separator"},
        {"a..b", BERTH_EINVALID, "separator"},
        {"a b", BERTH_EINVALID, "invalid character"},
        {"a=b", BERTH_EINVALID, "invalid character"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = berth_ref_name_validate(cases[i].input);
        if (rc != cases[i].code) {
            print_error("ref name '%s': got %d want %d\n", cases[i].input, rc, cases[i].code);
        }
        assert_int_equal(rc, cases[i].code);
        if (cases[i].msg) {
            assert_non_null(strstr(berth_error_last(), cases[i].msg));
        }
    }
    assert_int_equal(berth_ref_name_validate(NULL), BERTH_EINVALID);
}

static void test_reference__layout_refs(void **state)
{
    /* cases from skopeo 1.9: the path ends at the first ':'; the rest is a ref.name */
    static const struct {
        const char *input;
        int code;
        const char *path;
        const char *tag;
        const char *canonical;
    } cases[] = {
        {"oci:/tmp/layout", 0, "/tmp/layout", NULL, NULL},
        {"oci:/tmp/layout:v1", 0, "/tmp/layout", "v1", NULL},
        {"oci:layout:latest", 0, "layout", "latest", NULL},
        {"oci:./rel/dir:x.y-z", 0, "./rel/dir", "x.y-z", NULL},
        {"oci:/path with space", 0, "/path with space", NULL, NULL},
        {"oci:/tmp/x:a:b", 0, "/tmp/x", "a:b", NULL},
        {"oci:/tmp/x:a/b", 0, "/tmp/x", "a/b", NULL},
        {"oci:/tmp/x:ex.com:5000/app:v1", 0, "/tmp/x", "ex.com:5000/app:v1", NULL},
        {"oci:/tmp/x:", 0, "/tmp/x", NULL, "oci:/tmp/x"},
        {"oci:", BERTH_EINVALID, NULL, NULL, NULL},
        {"oci::tag", BERTH_EINVALID, NULL, NULL, NULL},
        {"oci:/tmp/x:.bad", BERTH_EINVALID, NULL, NULL, NULL},
        {"oci:/tmp/x:-t", BERTH_EINVALID, NULL, NULL, NULL},
        {"oci:/tmp/x:_x", BERTH_EINVALID, NULL, NULL, NULL},
        {"oci:/tmp/x:a//b", BERTH_EINVALID, NULL, NULL, NULL},
        {"docker://alpine", BERTH_EINVALID, NULL, NULL, NULL},
        {"/tmp/layout", BERTH_EINVALID, NULL, NULL, NULL},
        {"OCI:/tmp/layout", BERTH_EINVALID, NULL, NULL, NULL},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_layout_ref *r = NULL;
        int rc = berth_layout_ref_parse(&r, cases[i].input);
        if (rc != cases[i].code) {
            print_error("layout ref '%s': got %d want %d\n", cases[i].input, rc, cases[i].code);
        }
        assert_int_equal(rc, cases[i].code);
        if (rc < 0) {
            assert_null(r);
            continue;
        }
        assert_true(berth_layout_ref_is(cases[i].input));
        assert_string_equal(r->path, cases[i].path);
        if (cases[i].tag) {
            assert_string_equal(r->tag, cases[i].tag);
        } else {
            assert_null(r->tag);
        }
        berth_buf b = BERTH_BUF_INIT;
        assert_int_equal(berth_layout_ref_format(&b, r), 0);
        assert_string_equal(berth_buf_cstr(&b),
                            cases[i].canonical ? cases[i].canonical : cases[i].input);
        berth_buf_dispose(&b);
        berth_layout_ref_free(r);
    }
    assert_false(berth_layout_ref_is("alpine"));
    assert_false(berth_layout_ref_is(NULL));
    berth_layout_ref_free(NULL);
    berth_layout_ref *r = NULL;
    assert_int_equal(berth_layout_ref_parse(&r, "oci:x:-t"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "layout reference name"));
    assert_int_equal(berth_layout_ref_parse(&r, "oci::t"), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), "empty path"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference__name_grammar),
        cmocka_unit_test(test_reference__name_length),
        cmocka_unit_test(test_reference__tag_grammar),
        cmocka_unit_test(test_reference__parse_table),
        cmocka_unit_test(test_reference__parse_messages),
        cmocka_unit_test(test_reference__total_length),
        cmocka_unit_test(test_reference__loopback),
        cmocka_unit_test(test_reference__ref_name_grammar),
        cmocka_unit_test(test_reference__layout_refs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
