/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the pull-through cache's settings (proxy.upstreams): loading, defaults, errors
 * with file:line:col, overlapping prefixes, and the print -> load round trip. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <berth/config.h>
#include <berth/errors.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char two_yaml[] = "proxy:\n"
                               "  upstreams:\n"
                               "    - prefix: docker.io\n"
                               "      url: https://registry-1.docker.io\n"
                               "      ttl: 10m\n"
                               "      timeout: 5s\n"
                               "      immutable_tags: [\"v*.*.*\", \"*-stable\"]\n"
                               "      credentials: /etc/berth/hub-auth.json\n"
                               "      max_size: 20GiB\n"
                               "    - prefix: mirror/internal\n"
                               "      url: http://127.0.0.1:5001/\n";

static berth_config *load(const char *yaml)
{
    berth_config *cfg = NULL;
    assert_int_equal(berth_config_new(&cfg), 0);
    if (berth_config_load_string(cfg, "t.yaml", yaml, strlen(yaml)) != 0) {
        fail_msg("load: %s", berth_error_last());
    }
    return cfg;
}

static char *print_to_string(const berth_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(berth_config_print(cfg, f), 0);
    fclose(f);
    return text;
}

static void test_proxy_config__none_by_default(void **state)
{
    berth_config *cfg = load("root: /x\n");
    char *text = print_to_string(cfg);
    (void)state;
    assert_int_equal(cfg->proxy.upstreams_count, 0);
    assert_null(cfg->proxy.upstreams);
    /* a configuration without a cache prints as before: no proxy section */
    assert_null(strstr(text, "proxy"));
    free(text);
    berth_config_free(cfg);
}

static void test_proxy_config__upstreams(void **state)
{
    berth_config *cfg = load(two_yaml);
    const berth_config_upstream *a, *b;
    (void)state;
    assert_int_equal(cfg->proxy.upstreams_count, 2);
    a = &cfg->proxy.upstreams[0];
    b = &cfg->proxy.upstreams[1];
    assert_string_equal(a->prefix, "docker.io");
    assert_string_equal(a->url, "https://registry-1.docker.io");
    assert_string_equal(a->registry, "registry-1.docker.io");
    assert_false(a->plain_http);
    assert_int_equal(a->ttl, 600);
    assert_int_equal(a->timeout, 5);
    assert_string_equal(a->immutable_tags[0], "v*.*.*");
    assert_string_equal(a->immutable_tags[1], "*-stable");
    assert_null(a->immutable_tags[2]);
    assert_string_equal(a->credentials, "/etc/berth/hub-auth.json");
    assert_true(a->max_size == 20ull * 1024 * 1024 * 1024);
    assert_true(b->max_size == 0); /* no cap */
    assert_string_equal(b->prefix, "mirror/internal");
    assert_string_equal(b->registry, "127.0.0.1:5001");
    assert_true(b->plain_http);
    assert_int_equal(b->ttl, 300);    /* the default */
    assert_int_equal(b->timeout, 30); /* the default */
    assert_null(b->immutable_tags);
    assert_null(b->credentials);
    assert_int_equal(berth_config_validate(cfg), 0);
    berth_config_free(cfg);
}

static void test_proxy_config__print_round_trip(void **state)
{
    berth_config *cfg = load(two_yaml), *again;
    char *first = print_to_string(cfg), *second;
    (void)state;
    assert_non_null(strstr(first, "proxy:\n  upstreams:\n    - prefix: \"docker.io\"\n"
                                  "      url: \"https://registry-1.docker.io\"\n"
                                  "      ttl: 10m\n"
                                  "      timeout: 5s\n"
                                  "      immutable_tags: [\"v*.*.*\", \"*-stable\"]\n"
                                  "      credentials: \"/etc/berth/hub-auth.json\"\n"
                                  "      max_size: 20GiB\n"));
    again = load(first);
    second = print_to_string(again);
    assert_string_equal(first, second);
    assert_int_equal(again->proxy.upstreams_count, 2);
    free(first);
    free(second);
    berth_config_free(again);
    berth_config_free(cfg);
}

typedef struct bad_case {
    const char *yaml;
    const char *message;
} bad_case;

static void test_proxy_config__errors_name_position_and_key(void **state)
{
    static const bad_case cases[] = {
        {"proxy: 1\n", "t.yaml:1:8: proxy: expected a mapping"},
        {"proxy:\n  mirrors: []\n", "t.yaml:2:3: proxy.mirrors: unknown key"},
        {"proxy:\n  upstreams: {}\n", "t.yaml:2:14: proxy.upstreams: expected a list"},
        {"proxy:\n  upstreams:\n    - url: http://a\n",
         "t.yaml:3:7: proxy.upstreams[0]: missing 'prefix'"},
        {"proxy:\n  upstreams:\n    - prefix: a\n",
         "t.yaml:3:7: proxy.upstreams[0]: missing 'url'"},
        {"proxy:\n  upstreams:\n    - prefix: Docker.IO\n      url: http://a\n",
         "t.yaml:3:15: proxy.upstreams[0].prefix: not a repository name"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: ftp://a\n",
         "t.yaml:4:12: proxy.upstreams[0].url: expected http[s]://HOST[:PORT]"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: https://u:p@a\n",
         "t.yaml:4:12: proxy.upstreams[0].url: expected"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: https://a/v2/x\n",
         "t.yaml:4:12: proxy.upstreams[0].url: expected"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a:99999\n",
         "t.yaml:4:12: proxy.upstreams[0].url: expected"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      ttl: soon\n",
         "t.yaml:5:12: proxy.upstreams[0].ttl: expected a duration"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      timeout: 0\n",
         "t.yaml:5:16: proxy.upstreams[0].timeout: expected a duration from 1s to 1h"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      max_size: 0\n",
         "t.yaml:5:17: proxy.upstreams[0].max_size: expected a size above 0"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      max_size: lots\n",
         "t.yaml:5:17: proxy.upstreams[0].max_size: expected a size"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      colour: red\n",
         "t.yaml:5:7: proxy.upstreams[0].colour: unknown key"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      prefix: b\n",
         "t.yaml:5:7: proxy.upstreams[0].prefix: repeated key"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n"
         "      immutable_tags: {x: 1}\n",
         "t.yaml:5:23: proxy.upstreams[0].immutable_tags: expected a list of strings"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n      credentials: \"\"\n",
         "t.yaml:5:20: proxy.upstreams[0].credentials: expected the path of an auth file"},
        {"proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n"
         "    - prefix: a/b\n      url: http://b\n",
         "t.yaml:5:7: proxy.upstreams[1].prefix: overlaps proxy.upstreams[0].prefix"},
        {"proxy:\n  upstreams:\n    - prefix: a/b\n      url: http://a\n"
         "    - prefix: a\n      url: http://b\n",
         "t.yaml:5:7: proxy.upstreams[1].prefix: overlaps proxy.upstreams[0].prefix"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_config *cfg = NULL;
        assert_int_equal(berth_config_new(&cfg), 0);
        assert_int_equal(
            berth_config_load_string(cfg, "t.yaml", cases[i].yaml, strlen(cases[i].yaml)),
            BERTH_EINVALID);
        if (strncmp(berth_error_last(), cases[i].message, strlen(cases[i].message)) != 0) {
            fail_msg("case %zu: got '%s', want '%s...'", i, berth_error_last(), cases[i].message);
        }
        berth_config_free(cfg);
    }
}

static void test_proxy_config__prefixes_that_share_text_do_not_overlap(void **state)
{
    /* "ab" is not under "a": only whole components count */
    berth_config *cfg = load("proxy:\n  upstreams:\n    - prefix: a\n      url: http://a\n"
                             "    - prefix: ab\n      url: http://[::1]:5000\n");
    (void)state;
    assert_int_equal(cfg->proxy.upstreams_count, 2);
    assert_string_equal(cfg->proxy.upstreams[1].registry, "[::1]:5000");
    berth_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proxy_config__none_by_default),
        cmocka_unit_test(test_proxy_config__upstreams),
        cmocka_unit_test(test_proxy_config__print_round_trip),
        cmocka_unit_test(test_proxy_config__errors_name_position_and_key),
        cmocka_unit_test(test_proxy_config__prefixes_that_share_text_do_not_overlap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
