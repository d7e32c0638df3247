/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests: the serve configuration: defaults, YAML loading, errors with positions, units,
 * dotted-key and environment overrides, validation, and print -> load round trips. */
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
#include <unistd.h>

static const char full_yaml[] = "listen: 0.0.0.0:5443\n"
                                "root: /var/lib/berth\n"
                                "threads: 8\n"
                                "max_connections: 1000\n"
                                "timeouts:\n"
                                "  read: 30s\n"
                                "  write: 10m\n"
                                "  idle: 2h\n"
                                "limits:\n"
                                "  manifest_size: 4MiB\n"
                                "  body_size: 10GiB\n"
                                "  concurrent_uploads: 16\n"
                                "  requests_per_second: 50\n"
                                "  burst: 100\n"
                                "log:\n"
                                "  format: json\n"
                                "  level: debug\n"
                                "tls:\n"
                                "  cert: /etc/berth/cert.pem\n"
                                "  key: /etc/berth/key.pem\n"
                                "  client_ca: /etc/berth/ca.pem\n"
                                "auth:\n"
                                "  htpasswd: /etc/berth/htpasswd\n"
                                "  token:\n"
                                "    realm: https://registry.example/token\n"
                                "    service: registry.example\n"
                                "    issuer: berth-issuer\n"
                                "    private_key: /etc/berth/token.pem\n"
                                "    lifetime: 15m\n"
                                "groups:\n"
                                "  admins: [alice]\n"
                                "  devs: [bob, carol]\n"
                                "access:\n"
                                "  - repositories: \"*\"\n"
                                "    groups: [admins]\n"
                                "    actions: [pull, push, delete]\n"
                                "  - repositories: \"team/*\"\n"
                                "    groups: [devs]\n"
                                "    users: [dave]\n"
                                "    actions: [pull, push]\n"
                                "  - repositories: \"public/*\"\n"
                                "    anonymous: true\n"
                                "    actions: [pull]\n"
                                "gc:\n"
                                "  interval: 12h\n"
                                "  grace: 1h\n"
                                "  retention:\n"
                                "    - repositories: \"ci/*\"\n"
                                "      tags: \"pr-*\"\n"
                                "      keep_last: 10\n"
                                "      max_tag_age: 7d\n"
                                "      max_untagged_age: 1d\n";

static berth_config *load(const char *text)
{
    berth_config *cfg = NULL;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "test.yaml", text, strlen(text)), 0);
    return cfg;
}

static void test_config__defaults(void **state)
{
    berth_config *cfg = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_string_equal(cfg->listen, "127.0.0.1:5000");
    assert_string_equal(cfg->root, "./data");
    assert_int_equal(cfg->limits.manifest_size, 4 * 1024 * 1024);
    assert_int_equal(cfg->log.level, 2);
    assert_int_equal(cfg->auth.token.lifetime, 300);
    assert_true(cfg->storage.automatic_mount);
    assert_null(cfg->tls.cert);
    assert_int_equal(cfg->access_count, 0);
    assert_int_equal(berth_config_validate(cfg), 0);
    berth_config_free(cfg);
    berth_config_free(NULL);
}

static void test_config__full_file(void **state)
{
    berth_config *cfg = load(full_yaml);
    (void)state;
    assert_string_equal(cfg->listen, "0.0.0.0:5443");
    assert_string_equal(cfg->root, "/var/lib/berth");
    assert_int_equal(cfg->threads, 8);
    assert_int_equal(cfg->max_connections, 1000);
    assert_int_equal(cfg->timeouts.read, 30);
    assert_int_equal(cfg->timeouts.write, 600);
    assert_int_equal(cfg->timeouts.idle, 7200);
    assert_int_equal(cfg->limits.body_size, 10ull << 30);
    /* the old name of limits.upload_sessions (open sessions) */
    assert_int_equal(cfg->limits.upload_sessions, 16);
    assert_int_equal(cfg->limits.requests_per_second, 50);
    assert_int_equal(cfg->limits.burst, 100);
    assert_int_equal(cfg->log.format, BERTH_CONFIG_LOG_JSON);
    assert_int_equal(cfg->log.level, 3);
    assert_string_equal(cfg->tls.client_ca, "/etc/berth/ca.pem");
    assert_string_equal(cfg->auth.token.realm, "https://registry.example/token");
    assert_string_equal(cfg->auth.token.issuer, "berth-issuer");
    assert_int_equal(cfg->auth.token.lifetime, 900);
    assert_int_equal(cfg->groups_count, 2);
    assert_string_equal(cfg->groups[1].name, "devs");
    assert_string_equal(cfg->groups[1].users[1], "carol");
    assert_null(cfg->groups[1].users[2]);
    assert_int_equal(cfg->access_count, 3);
    assert_string_equal(cfg->access[1].repositories, "team/*");
    assert_string_equal(cfg->access[1].users[0], "dave");
    assert_int_equal(cfg->access[1].actions, BERTH_ACTION_PULL | BERTH_ACTION_PUSH);
    assert_true(cfg->access[2].anonymous);
    assert_null(cfg->access[2].users);
    assert_int_equal(cfg->gc.interval, 12 * 3600);
    assert_int_equal(cfg->gc.retention_count, 1);
    assert_string_equal(cfg->gc.retention[0].tags, "pr-*");
    assert_int_equal(cfg->gc.retention[0].keep_last, 10);
    assert_int_equal(cfg->gc.retention[0].max_tag_age, 7 * 86400);
    assert_int_equal(cfg->gc.retention[0].max_untagged_age, 86400);
    assert_int_equal(berth_config_validate(cfg), 0);
    berth_config_free(cfg);
}

typedef struct bad_case {
    const char *yaml;
    const char *message; /* expected prefix of berth_error_last() */
} bad_case;

static void test_config__errors_name_position_and_key(void **state)
{
    static const bad_case cases[] = {
        {"listen: a\nbogus: 1\n", "t.yaml:2:1: bogus: unknown key"},
        {"limits:\n  body_size: 4 MiB\n", "t.yaml:2:14: limits.body_size: invalid size"},
        {"limits:\n  bodysize: 1\n", "t.yaml:2:3: limits.bodysize: unknown key"},
        {"timeouts:\n  read: 5w\n", "t.yaml:2:9: timeouts.read: invalid duration"},
        {"threads: -1\n", "t.yaml:1:10: threads: invalid number"},
        {"threads: [1]\n", "t.yaml:1:10: threads: expected a scalar value"},
        {"log:\n  format: xml\n", "t.yaml:2:11: log.format: invalid log format"},
        {"log:\n  level: loud\n", "t.yaml:2:10: log.level: invalid log level"},
        {"limits: 5\n", "t.yaml:1:9: limits: expected a mapping"},
        {"access:\n  - users: [a]\n", "t.yaml:2:5: access[0]: missing 'repositories'"},
        {"access:\n  - repositories: x\n    actions: [pull, fly]\n",
         "t.yaml:3:14: access[0].actions: unknown action fly"},
        {"access:\n  - repositories: x\n    anonymous: maybe\n",
         "t.yaml:3:16: access[0].anonymous: expected true or false"},
        {"access:\n  - repositories: x\n    color: red\n",
         "t.yaml:3:5: access[0].color: unknown key"},
        {"groups: [a]\n", "t.yaml:1:9: groups: expected a mapping"},
        {"gc:\n  retention:\n    - keep_last: x\n",
         "t.yaml:3:18: gc.retention[0].keep_last: expected a number"},
        {"listen: [\n", "t.yaml:2:1: (yaml):"},
        {"- a\n- b\n", "t.yaml:1:1: (document): expected a mapping"},
        {"root: a\nlisten: b\nroot: c\n", "t.yaml:3:1: root: repeated key"},
        {"log:\n  level: info\n  level: warn\n", "t.yaml:3:3: log.level: repeated key"},
        {"access:\n  - repositories: a\n    users: [x]\n    users: [y]\n",
         "t.yaml:4:5: access[0].users: repeated key"},
        {"groups:\n  a: [x]\n  a: [y]\n", "t.yaml:3:3: groups.a: repeated group"},
        /* the old name and the new one of one setting */
        {"limits:\n  concurrent_uploads: 3\n  upload_sessions: 100\n",
         "t.yaml:3:3: limits.upload_sessions: repeated key: the same setting as "
         "limits.concurrent_uploads"},
        {"limits:\n  upload_sessions: 100\n  concurrent_uploads: 3\n",
         "t.yaml:3:3: limits.concurrent_uploads: repeated key: the same setting as "
         "limits.upload_sessions"},
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

static void test_config__units(void **state)
{
    static const struct {
        const char *text;
        int size_code;
        uint64_t size;
        int dur_code;
        uint64_t dur;
    } cases[] = {
        {"0", 0, 0, 0, 0},
        {"17", 0, 17, 0, 17},
        {"30s", BERTH_EINVALID, 0, 0, 30},
        {"5m", BERTH_EINVALID, 0, 0, 300},
        {"12h", BERTH_EINVALID, 0, 0, 43200},
        {"7d", BERTH_EINVALID, 0, 0, 604800},
        {"4MiB", 0, 4194304, BERTH_EINVALID, 0},
        {"4MB", 0, 4000000, BERTH_EINVALID, 0},
        {"512KiB", 0, 524288, BERTH_EINVALID, 0},
        {"2G", 0, 2147483648ull, BERTH_EINVALID, 0},
        {"1TiB", 0, 1099511627776ull, BERTH_EINVALID, 0},
        {"100B", 0, 100, BERTH_EINVALID, 0},
        {"", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"m", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"-5s", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"5 s", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"1.5h", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"99999999999999999999", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"99999999999999TiB", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
        {"9999999999999999999d", BERTH_EINVALID, 0, BERTH_EINVALID, 0},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 12345;
        int rc = berth_config_parse_size(&v, cases[i].text);
        if (rc != cases[i].size_code || (rc == 0 && v != cases[i].size)) {
            fail_msg("size '%s': rc %d value %llu", cases[i].text, rc, (unsigned long long)v);
        }
        v = 12345;
        rc = berth_config_parse_duration(&v, cases[i].text);
        if (rc != cases[i].dur_code || (rc == 0 && v != cases[i].dur)) {
            fail_msg("duration '%s': rc %d value %llu", cases[i].text, rc, (unsigned long long)v);
        }
    }
}

static void test_config__set_by_dotted_key(void **state)
{
    berth_config *cfg = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_set(cfg, "limits.body_size", "1GiB"), 0);
    assert_int_equal(cfg->limits.body_size, 1ull << 30);
    assert_int_equal(berth_config_set(cfg, "storage.s3.part_size", "16MiB"), 0);
    assert_int_equal(cfg->storage.s3.part_size, 16ull << 20);
    assert_int_equal(berth_config_set(cfg, "auth.token.realm", "https://x/token"), 0);
    assert_string_equal(cfg->auth.token.realm, "https://x/token");
    assert_int_equal(berth_config_set(cfg, "auth.token.realm", ""), 0);
    assert_null(cfg->auth.token.realm);
    assert_int_equal(berth_config_set(cfg, "nope", "1"), BERTH_ENOTFOUND);
    assert_string_equal(berth_error_last(), "nope: unknown setting");
    assert_int_equal(berth_config_set(cfg, "limits", "1"), BERTH_ENOTFOUND);
    assert_int_equal(berth_config_set(cfg, "threads", "x"), BERTH_EINVALID);
    assert_string_equal(berth_error_last(), "threads: invalid number 'x'");
    assert_int_equal(cfg->threads, 0); /* unchanged: the default, one per core */
    berth_config_free(cfg);
}

static const char *fake_env(const char *name)
{
    if (strcmp(name, "BERTH_LISTEN") == 0) {
        return "[::1]:6000";
    }
    if (strcmp(name, "BERTH_LIMITS_REQUESTS_PER_SECOND") == 0) {
        return "20";
    }
    if (strcmp(name, "BERTH_AUTH_TOKEN_LIFETIME") == 0) {
        return "1h";
    }
    return NULL;
}

static const char *bad_env(const char *name)
{
    return strcmp(name, "BERTH_GC_GRACE") == 0 ? "soon" : NULL;
}

static const char *both_names_env(const char *name)
{
    return strcmp(name, "BERTH_LIMITS_CONCURRENT_UPLOADS") == 0 ? "3"
           : strcmp(name, "BERTH_LIMITS_UPLOAD_SESSIONS") == 0  ? "100"
                                                                : NULL;
}

static const char *old_name_env(const char *name)
{
    return strcmp(name, "BERTH_LIMITS_CONCURRENT_UPLOADS") == 0 ? "3" : NULL;
}

/* storage.automatic_mount: a boolean from the file, by key and from the environment */
static void test_config__automatic_mount(void **state)
{
    static const char yaml[] = "storage:\n  automatic_mount: false\n";
    berth_config *cfg = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_string(cfg, "m.yaml", yaml, strlen(yaml)), 0);
    assert_false(cfg->storage.automatic_mount);
    assert_int_equal(berth_config_set(cfg, "storage.automatic_mount", "true"), 0);
    assert_true(cfg->storage.automatic_mount);
    assert_int_equal(berth_config_set(cfg, "storage.automatic_mount", "maybe"), BERTH_EINVALID);
    assert_string_equal(berth_error_last(),
                        "storage.automatic_mount: invalid boolean 'maybe' (true or false)");
    assert_true(cfg->storage.automatic_mount);
    berth_config_free(cfg);
}

static const char *ui_off_env(const char *name)
{
    return strcmp(name, "BERTH_UI_ENABLED") == 0 ? "false" : NULL;
}

/* ui.enabled: on by default, off from the file or BERTH_UI_ENABLED, printed */
static void test_config__ui_enabled(void **state)
{
    static const char yaml[] = "ui:\n  enabled: false\n";
    berth_config *cfg = NULL;
    char *text = NULL;
    size_t len = 0;
    FILE *f;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_true(cfg->ui.enabled);
    assert_int_equal(berth_config_apply_env(cfg, ui_off_env), 0);
    assert_false(cfg->ui.enabled);
    assert_int_equal(berth_config_set(cfg, "ui.enabled", "true"), 0);
    assert_true(cfg->ui.enabled);
    assert_int_equal(berth_config_load_string(cfg, "u.yaml", yaml, strlen(yaml)), 0);
    assert_false(cfg->ui.enabled);
    assert_non_null(f = open_memstream(&text, &len));
    assert_int_equal(berth_config_print(cfg, f), 0);
    fclose(f);
    assert_non_null(strstr(text, "\nui:\n  enabled: false\n"));
    free(text);
    berth_config_free(cfg);
}

static void test_config__environment(void **state)
{
    berth_config *cfg = load("listen: 1.2.3.4:5\nthreads: 2\n");
    char name[64];
    (void)state;
    assert_int_equal(berth_config_apply_env(cfg, fake_env), 0);
    assert_string_equal(cfg->listen, "[::1]:6000");
    assert_int_equal(cfg->threads, 2);
    assert_int_equal(cfg->limits.requests_per_second, 20);
    assert_int_equal(cfg->auth.token.lifetime, 3600);
    assert_int_equal(berth_config_apply_env(cfg, bad_env), BERTH_EINVALID);
    assert_non_null(
        strstr(berth_error_last(), "BERTH_GC_GRACE: gc.grace: invalid duration 'soon' ("));
    /* one setting under its old and its new name: refused, neither silently wins */
    assert_int_equal(berth_config_apply_env(cfg, both_names_env), BERTH_EINVALID);
    assert_string_equal(berth_error_last(), "BERTH_LIMITS_CONCURRENT_UPLOADS is the old name of "
                                            "BERTH_LIMITS_UPLOAD_SESSIONS: set one of them");
    assert_int_equal(berth_config_apply_env(cfg, old_name_env), 0);
    assert_int_equal(cfg->limits.upload_sessions, 3);
    assert_int_equal(berth_config_env_name(name, sizeof(name), "auth.token.private_key"), 0);
    assert_string_equal(name, "BERTH_AUTH_TOKEN_PRIVATE_KEY");
    assert_int_equal(berth_config_env_name(name, 8, "auth.token.private_key"), BERTH_EINVALID);
    berth_config_free(cfg);
}

static void test_config__validate(void **state)
{
    static const struct {
        const char *yaml;
        const char *message;
    } cases[] = {
        {"tls:\n  cert: c.pem\n", "test.yaml:2:9: tls.cert: tls.cert and tls.key must be set"},
        {"tls:\n  client_ca: ca.pem\n",
         "test.yaml:2:14: tls.client_ca: needs tls.cert and tls.key"},
        {"auth:\n  token:\n    realm: https://x/token\n",
         "test.yaml:3:12: auth.token.realm: needs"},
        {"auth:\n  token:\n    public_key: k.pem\n",
         "test.yaml:3:17: auth.token.public_key: needs auth.token.realm"},
        {"auth:\n  token:\n    realm: r\n    private_key: k.pem\n",
         "test.yaml:4:18: auth.token.private_key: the token endpoint needs auth.htpasswd"},
        {"threads: 1025\n", "test.yaml:1:10: threads: must be between"},
        /* the place of the rule's groups, though the check runs once every list is read */
        {"access:\n  - repositories: x\n    groups: [ghosts]\n",
         "test.yaml:3:13: access[0].groups: unknown group 'ghosts'"},
        {"access:\n  - repositories: x\n", "test.yaml:2:5: access[0]: names no users"},
        {"storage:\n  s3:\n    bucket: b\n    endpoint: http://s3\n",
         "test.yaml:3:13: storage.s3.bucket: needs database.url"},
        {"database:\n  url: postgresql://db/berth\n",
         "test.yaml:2:8: database.url: needs storage.s3.bucket"},
        {"storage:\n  s3:\n    bucket: b\ndatabase:\n  url: postgresql://db/berth\n",
         "test.yaml:3:13: storage.s3.bucket: needs storage.s3.endpoint"},
        {"storage:\n  s3:\n    bucket: b\n    endpoint: http://s3\ndatabase:\n  url: x\n"
         "  pool_size: 0\n",
         "test.yaml:7:14: database.pool_size: must be 1 to 1024"},
        {"storage:\n  s3:\n    bucket: b\n    endpoint: http://s3\n    part_size: 4MiB\n"
         "database:\n  url: x\n",
         "test.yaml:5:16: storage.s3.part_size: must be 5MiB to 5GiB"},
        {"storage:\n  s3:\n    bucket: b\n    endpoint: http://s3\n    part_size: 6GiB\n"
         "database:\n  url: x\n",
         "test.yaml:5:16: storage.s3.part_size: must be 5MiB to 5GiB"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        berth_config *cfg = load(cases[i].yaml);
        assert_int_equal(berth_config_validate(cfg), BERTH_EINVALID);
        if (strncmp(berth_error_last(), cases[i].message, strlen(cases[i].message)) != 0) {
            fail_msg("case %zu: got '%s'", i, berth_error_last());
        }
        berth_config_free(cfg);
    }
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

static void test_config__print_round_trip(void **state)
{
    berth_config *cfg = load(full_yaml);
    berth_config *again = NULL;
    char *first = NULL, *second = NULL;
    (void)state;
    assert_int_equal(berth_config_set(cfg, "root", "/tmp/with \"quotes\" and \\"), 0);
    first = print_to_string(cfg);
    assert_non_null(strstr(first, "limits:\n  manifest_size: 4MiB\n"));
    assert_non_null(strstr(first, "auth:\n  htpasswd: \"/etc/berth/htpasswd\"\n  token:\n"
                                  "    realm: \"https://registry.example/token\"\n"));
    assert_non_null(strstr(first, "gc:\n  interval: 12h\n"));
    again = load(first);
    second = print_to_string(again);
    assert_string_equal(first, second);
    assert_string_equal(again->root, "/tmp/with \"quotes\" and \\");
    assert_int_equal(again->access_count, 3);
    assert_int_equal(again->gc.retention[0].max_tag_age, 7 * 86400);
    free(first);
    free(second);
    berth_config_free(again);
    berth_config_free(cfg);
}

static void test_config__print_defaults_round_trip(void **state)
{
    berth_config *cfg = NULL, *again = NULL;
    char *first = NULL, *second = NULL;
    (void)state;
    assert_int_equal(berth_config_new(&cfg), 0);
    first = print_to_string(cfg);
    again = load(first);
    second = print_to_string(again);
    assert_string_equal(first, second);
    assert_null(again->tls.cert);
    free(first);
    free(second);
    berth_config_free(again);
    berth_config_free(cfg);
}

static void test_config__print_escapes_what_yaml_cannot_hold(void **state)
{
    /* C0 and C1 controls, NEL, LS, PS, BOM, U+FFFE and quotes must survive print -> load */
    static const char yaml[] =
        "root: \"a\\x01\\x81\\x85\\u2028\\u2029\\uFEFF\\uFFFE\\\"\\\\\\t\"\n";
    berth_config *cfg = load(yaml);
    berth_config *again = NULL;
    char *text = NULL;
    (void)state;
    assert_string_equal(cfg->root, "a\x01\xc2\x81\xc2\x85\xe2\x80\xa8\xe2\x80\xa9\xef\xbb\xbf"
                                   "\xef\xbf\xbe\"\\\t");
    text = print_to_string(cfg);
    again = load(text);
    assert_string_equal(again->root, cfg->root);
    free(text);
    berth_config_free(again);
    berth_config_free(cfg);
}

static void test_config__mask_secrets(void **state)
{
    static const struct {
        const char *in, *out;
        bool conninfo;
    } cases[] = {
        {"postgres://u:pw@h/db", "postgres://u:****@h/db", true},
        {"postgres://u:p@w@h:5432/db", "postgres://u:****@h:5432/db", true},
        {"postgres://u@h/db", "postgres://u@h/db", true},
        {"postgres://h/db?user=u&password=pw&sslmode=require",
         "postgres://h/db?user=u&password=****&sslmode=require", true},
        {"host=h password=pw dbname=d", "host=h password=**** dbname=d", true},
        {"password = 'a \\' b' host=h", "password = **** host=h", true},
        {"host=h mypassword=x passwordx=y", "host=h mypassword=x passwordx=y", true},
        {"https://ak:sk@s3.example", "https://ak:****@s3.example", false},
        {"https://s3.example/password=x", "https://s3.example/password=x", false},
        {"/var/lib/berth", "/var/lib/berth", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *m = berth_config_mask_secrets(cases[i].in, cases[i].conninfo);
        assert_non_null(m);
        if (strcmp(m, cases[i].out) != 0) {
            fail_msg("case %zu: got '%s', want '%s'", i, m, cases[i].out);
        }
        free(m);
    }
}

static void test_config__print_masks_secrets(void **state)
{
    static const char yaml[] = "database:\n  url: \"postgres://u:SECRET@h/db\"\n"
                               "auth:\n  token:\n    realm: \"https://a:SECRET@r/token\"\n";
    berth_config *cfg = load(yaml);
    berth_config *again = NULL;
    char *text = NULL;
    (void)state;
    text = print_to_string(cfg);
    assert_null(strstr(text, "SECRET"));
    assert_non_null(strstr(text, "  url: \"postgres://u:****@h/db\"\n"));
    assert_non_null(strstr(text, "    realm: \"https://a:****@r/token\"\n"));
    again = load(text); /* still a configuration: only the password differs */
    assert_string_equal(again->database.url, "postgres://u:****@h/db");
    free(text);
    berth_config_free(again);
    berth_config_free(cfg);
}

static void test_config__file(void **state)
{
    char path[] = "/tmp/berth-config-XXXXXX";
    int fd = mkstemp(path);
    berth_config *cfg = NULL;
    FILE *f = NULL;
    (void)state;
    assert_true(fd >= 0);
    f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("root: /srv\nlimits:\n  burst: nope\n", f);
    fclose(f);
    assert_int_equal(berth_config_new(&cfg), 0);
    assert_int_equal(berth_config_load_file(cfg, path), BERTH_EINVALID);
    assert_non_null(strstr(berth_error_last(), ":3:10: limits.burst: invalid number"));
    assert_int_equal(strncmp(berth_error_last(), path, strlen(path)), 0);
    assert_int_equal(berth_config_load_file(cfg, "/nonexistent/berth.yaml"), BERTH_EIO);
    unlink(path);
    berth_config_free(cfg);
}

static void test_config__empty_document(void **state)
{
    berth_config *cfg = load("");
    (void)state;
    assert_string_equal(cfg->listen, "127.0.0.1:5000");
    berth_config_free(cfg);
    cfg = load("# only a comment\n");
    assert_string_equal(cfg->root, "./data");
    berth_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config__defaults),
        cmocka_unit_test(test_config__full_file),
        cmocka_unit_test(test_config__errors_name_position_and_key),
        cmocka_unit_test(test_config__units),
        cmocka_unit_test(test_config__set_by_dotted_key),
        cmocka_unit_test(test_config__automatic_mount),
        cmocka_unit_test(test_config__environment),
        cmocka_unit_test(test_config__validate),
        cmocka_unit_test(test_config__print_round_trip),
        cmocka_unit_test(test_config__print_defaults_round_trip),
        cmocka_unit_test(test_config__print_escapes_what_yaml_cannot_hold),
        cmocka_unit_test(test_config__mask_secrets),
        cmocka_unit_test(test_config__print_masks_secrets),
        cmocka_unit_test(test_config__file),
        cmocka_unit_test(test_config__ui_enabled),
        cmocka_unit_test(test_config__empty_document),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
