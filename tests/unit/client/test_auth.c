/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the WWW-Authenticate challenge parser, the Link rel="next" parser and the
 * docker config.json credentials reader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/client.h>
#include <berth/errors.h>

#include <stdlib.h>
#include <string.h>

typedef struct challenge_case {
    const char *input;
    int code;
    const char *scheme, *realm, *service, *scope;
} challenge_case;

static const challenge_case challenges[] = {
    {"Bearer realm=\"https://auth.docker.io/token\",service=\"registry.docker.io\","
     "scope=\"repository:library/alpine:pull\"",
     0, "Bearer", "https://auth.docker.io/token", "registry.docker.io",
     "repository:library/alpine:pull"},
    {"bearer realm=\"http://127.0.0.1:1/t\"", 0, "Bearer", "http://127.0.0.1:1/t", NULL, NULL},
    {"Bearer  realm = \"r\" , service=svc ,scope=\"a:b:pull,push\"", 0, "Bearer", "r", "svc",
     "a:b:pull,push"},
    {"Bearer realm=\"a\\\"b\\\\c\"", 0, "Bearer", "a\"b\\c", NULL, NULL},
    {"Basic realm=\"Registry Realm\"", 0, "Basic", "Registry Realm", NULL, NULL},
    {"BASIC realm=x", 0, "Basic", "x", NULL, NULL},
    {"Bearer realm=\"r\",error=\"insufficient_scope\"", 0, "Bearer", "r", NULL, NULL},
    /* only the first challenge of several is read */
    {"Bearer realm=\"r1\", Basic realm=\"r2\"", 0, "Bearer", "r1", NULL, NULL},
    {"Bearer service=\"s\"", BERTH_EINVALID, NULL, NULL, NULL, NULL},
    {"Bearer realm=\"unterminated", BERTH_EINVALID, NULL, NULL, NULL, NULL},
    {"", BERTH_EINVALID, NULL, NULL, NULL, NULL},
    {"=x", BERTH_EINVALID, NULL, NULL, NULL, NULL},
    {"Bearer realm", BERTH_EINVALID, NULL, NULL, NULL, NULL},
};

static void assert_opt_string(const char *got, const char *want)
{
    if (!want) {
        assert_null(got);
    } else {
        assert_non_null(got);
        assert_string_equal(got, want);
    }
}

static void test_auth__challenge_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(challenges) / sizeof(challenges[0]); i++) {
        const challenge_case *t = &challenges[i];
        berth_auth_challenge ch;
        int rc = berth_auth_challenge_parse(&ch, t->input);
        if (rc != t->code) {
            fail_msg("case %zu '%s': got %d want %d (%s)", i, t->input, rc, t->code,
                     berth_error_last());
        }
        if (rc == 0) {
            assert_string_equal(ch.scheme, t->scheme);
            assert_opt_string(ch.realm, t->realm);
            assert_opt_string(ch.service, t->service);
            assert_opt_string(ch.scope, t->scope);
        } else {
            assert_true(strncmp(berth_error_last(), "challenge: ", 11) == 0);
            assert_null(ch.scheme);
        }
        berth_auth_challenge_dispose(&ch);
    }
}

typedef struct link_case {
    const char *input;
    int code;
    const char *url;
} link_case;

static const link_case links[] = {
    {"</v2/_catalog?last=b&n=2>; rel=\"next\"", 0, "/v2/_catalog?last=b&n=2"},
    {"</v2/x/tags/list?n=1&last=a>; rel=next", 0, "/v2/x/tags/list?n=1&last=a"},
    {"<https://h/a>; rel=\"prev\", <https://h/b>; rel=\"next\"", 0, "https://h/b"},
    {"<https://h/b>; title=\"x, y\"; REL=\"last next\"", 0, "https://h/b"},
    {"<https://h/a>; rel=\"prev\"", BERTH_ENOTFOUND, NULL},
    {"", BERTH_ENOTFOUND, NULL},
    {"/v2/_catalog; rel=next", BERTH_EINVALID, NULL},
    {"</v2/_catalog; rel=next", BERTH_EINVALID, NULL},
    {"<>; rel=next", BERTH_EINVALID, NULL},
    {"<a>; rel=\"next", BERTH_EINVALID, NULL},
};

static void test_auth__link_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(links) / sizeof(links[0]); i++) {
        berth_buf out = BERTH_BUF_INIT;
        int rc = berth_link_next_parse(&out, links[i].input);
        if (rc != links[i].code) {
            fail_msg("case %zu '%s': got %d want %d (%s)", i, links[i].input, rc, links[i].code,
                     berth_error_last());
        }
        if (rc == 0) {
            assert_string_equal(berth_buf_cstr(&out), links[i].url);
        } else {
            assert_int_equal(out.len, 0);
            assert_true(strncmp(berth_error_last(), "Link: ", 6) == 0);
        }
        berth_buf_dispose(&out);
    }
}

static void check_config(const char *json, const char *registry, int code, const char *user,
                         const char *pass)
{
    char *u = NULL, *p = NULL;
    int rc = berth_docker_config_auth(&u, &p, json, strlen(json), registry);
    if (rc != code) {
        fail_msg("%s / %s: got %d want %d (%s)", json, registry, rc, code, berth_error_last());
    }
    assert_opt_string(u, user);
    assert_opt_string(p, pass);
    free(u);
    free(p);
}

static void test_auth__docker_config(void **state)
{
    (void)state;
    /* "alice:s3cret" and "bob:pa:ss" (a password may hold ':') */
    check_config("{\"auths\":{\"127.0.0.1:5000\":{\"auth\":\"YWxpY2U6czNjcmV0\"}}}",
                 "127.0.0.1:5000", 0, "alice", "s3cret");
    check_config("{\"auths\":{\"reg.example\":{\"auth\":\"Ym9iOnBhOnNz\"}}}", "reg.example", 0,
                 "bob", "pa:ss");
    /* unpadded base64 */
    check_config("{\"auths\":{\"r\":{\"auth\":\"Ym9iOnBhOnNz\"}}}", "r", 0, "bob", "pa:ss");
    check_config("{\"auths\":{\"r\":{\"auth\":\"YTpi\"}}}", "r", 0, "a", "b");
    /* docker.io is stored under the v1 index URL */
    check_config("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"YTpi\"}}}", "docker.io",
                 0, "a", "b");
    /* keys written as URLs */
    check_config("{\"auths\":{\"https://reg.example:8443\":{\"auth\":\"YTpi\"}}}",
                 "reg.example:8443", 0, "a", "b");
    check_config("{\"auths\":{\"https://reg.example:8443\":{\"auth\":\"YTpi\"}}}", "reg.example",
                 BERTH_ENOTFOUND, NULL, NULL);
    /* username and password members */
    check_config("{\"auths\":{\"r\":{\"username\":\"u\",\"password\":\"p\"}}}", "r", 0, "u", "p");
    check_config("{\"auths\":{\"other\":{\"auth\":\"YTpi\"}}}", "r", BERTH_ENOTFOUND, NULL, NULL);
    check_config("{\"credsStore\":\"desktop\"}", "r", BERTH_ENOTFOUND, NULL, NULL);
    check_config("{\"auths\":{\"r\":{}}}", "r", BERTH_ENOTFOUND, NULL, NULL);
    check_config("{\"auths\":{\"r\":{\"auth\":\"bm9jb2xvbg==\"}}}", "r", BERTH_EINVALID, NULL,
                 NULL);
    assert_non_null(strstr(berth_error_last(), "auths[r].auth"));
    check_config("{\"auths\":{\"r\":{\"auth\":\"!!!\"}}}", "r", BERTH_EINVALID, NULL, NULL);
    assert_non_null(strstr(berth_error_last(), "base64"));
    check_config("{not json", "r", BERTH_EINVALID, NULL, NULL);
    check_config("[]", "r", BERTH_EINVALID, NULL, NULL);
    assert_string_equal(berth_error_last(), "docker config: an array, not an object "
                                            "({\"auths\": {...}})");
    /* members of the wrong type are errors, not silently no credentials */
    check_config("{\"auths\":{\"r\":{\"auth\":42}}}", "r", BERTH_EINVALID, NULL, NULL);
    assert_string_equal(berth_error_last(), "docker config: auths[r].auth: a number, not a "
                                            "string (the base64 of user:password)");
    check_config("{\"auths\":{\"r\":{\"username\":\"u\",\"password\":7}}}", "r", BERTH_EINVALID,
                 NULL, NULL);
    assert_string_equal(berth_error_last(), "docker config: auths[r].password: a number, not a "
                                            "string");
    check_config("{\"auths\":[]}", "r", BERTH_EINVALID, NULL, NULL);
    assert_string_equal(berth_error_last(), "docker config: auths: an array, not an object");
    check_config("{\"auths\":{\"r\":\"YTpi\"}}", "r", BERTH_EINVALID, NULL, NULL);
    assert_string_equal(berth_error_last(), "docker config: auths[r]: a string, not an object");
    /* another registry's odd entry is not this one's business */
    check_config("{\"auths\":{\"o\":{\"auth\":42},\"r\":{\"auth\":\"YTpi\"}}}", "r", 0, "a", "b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth__challenge_table),
        cmocka_unit_test(test_auth__link_table),
        cmocka_unit_test(test_auth__docker_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
